"""An app setting that is a Key Vault reference App Service could not resolve reaches the app
as the reference's own text, ``@Microsoft.KeyVault(...)`` (Microsoft Learn, "Use Key Vault
references as app settings in Azure App Service and Azure Functions", Troubleshooting: "If a
reference isn't resolved properly, the reference string is used instead"). It is a
configuration error naming the setting and what to check, never a value: no POST goes to
that text, no group list or mode is read from it. The resolved webhook URL is a secret like
any other (``logsafety.remember_secret``)."""

import logging
from pathlib import Path

import pytest

from remediation.config import ConfigError, Settings
from remediation.entrypoints import functions
from tests import cli_helpers
from tests.cli_helpers import clean_environment  # noqa: F401 (a fixture)

TENANT = "8f6d1c2e-5b4a-4e3f-9a1b-7c2d3e4f5a6b"
WEBHOOK_REFERENCE = ("@Microsoft.KeyVault(SecretUri=https://kvabc.vault.azure.net/secrets/"
                     "escalation-webhook-url/0f1e2d3c4b5a69788796a5b4c3d2e1f0)")
UNRESOLVED = ("an unresolved Key Vault reference (@Microsoft.KeyVault(...)): App Service could "
              "not read the secret; the app's Environment variables page in the Azure portal "
              "shows the reference's status (the vault, the secret, the identity's Key Vault "
              "Secrets User role, keyVaultReferenceIdentity); fix it, then restart the app")


@pytest.fixture(autouse=True)
def environment(clean_environment: None,  # noqa: F811 (the fixture imported above)
                monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REMEDIATION_DB", str(tmp_path / "state.db"))


@pytest.mark.parametrize("name", ["ESCALATION_WEBHOOK_URL", "PROTECTED_GROUP_IDS",
                                  "REMEDIATION_MODE", "VERIFY_DELAYS", "ALERT_POLL_SCHEDULE",
                                  "SWEEP_RESTRICTED_USERS", "MAX_REMEDIATIONS_PER_HOUR"])
def test_an_unresolved_reference_is_one_line_naming_the_setting(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        name: str) -> None:
    reference = WEBHOOK_REFERENCE.replace("escalation-webhook-url", name.lower())
    status, out, err = cli_helpers.run_cli(monkeypatch, capsys, {name: reference}, "status")

    assert (status, out) == (2, "")
    assert err == f"remediation: configuration error: {name}: {UNRESOLVED}\n"


@pytest.mark.parametrize("reference", [
    "@Microsoft.KeyVault(VaultName=kvabc;SecretName=escalation-webhook-url)",
    " @microsoft.keyvault(SecretUri=https://kvabc.vault.azure.net/secrets/x/)"])
def test_every_form_of_the_reference_is_recognised(reference: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"ESCALATION_WEBHOOK_URL": reference})

    assert str(raised.value) == f"ESCALATION_WEBHOOK_URL: {UNRESOLVED}"


def test_an_unresolved_app_configuration_reference_is_named_too() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"PROTECTED_GROUP_IDS": "@Microsoft.AppConfiguration(Endpoint="
                           "https://appcs.azconfig.io; Key=protected-groups)"})

    assert str(raised.value).startswith(
        "PROTECTED_GROUP_IDS: an unresolved App Configuration reference "
        "(@Microsoft.AppConfiguration(...)): App Service could not read the value;")


def test_the_functions_app_refuses_to_start_on_it_and_posts_nothing(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """function_app.py checks the settings when the host indexes it: the import fails, no
    trigger listens, and no escalation is ever posted to the reference's text."""
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("ServiceBusConnection__fullyQualifiedNamespace",
                       "sb-remed.servicebus.windows.net")
    monkeypatch.setenv("ESCALATION_WEBHOOK_URL", WEBHOOK_REFERENCE)

    with pytest.raises(ConfigError):
        functions.check_settings_at_start()

    [record] = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert record.getMessage() == f"configuration error: ESCALATION_WEBHOOK_URL: {UNRESOLVED}"
    assert "kvabc" not in record.getMessage()


def test_a_resolved_webhook_url_is_masked_wherever_it_would_be_logged(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        tmp_path: Path) -> None:
    """Resolved, the reference is the URL itself in the environment: the composition root
    remembers it as a secret, so a log line, a journal step or a doctor cell that quotes it
    (an error text echoing the request) shows ``<redacted>``."""
    from remediation.bootstrap import bootstrap
    from remediation.logsafety import RedactingFilter, redact

    url = "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual?sig=Zm9vYmFy"
    settings = Settings.from_env({"ESCALATION_WEBHOOK_URL": url,
                                  "REMEDIATION_DB": str(tmp_path / "state.db")})
    app = bootstrap(settings)
    try:
        logger = logging.getLogger("remediation.test_key_vault_references")
        caplog.handler.addFilter(RedactingFilter())
        logger.warning("webhook %s answered 500", url)
        assert url not in caplog.text
        quoted = redact(f"POST /workflows/abc/triggers/manual?sig=Zm9vYmFy failed: {url}")
        assert "Zm9vYmFy" not in quoted and "/workflows/abc" not in quoted
        assert "<redacted>" in caplog.text
    finally:
        import asyncio

        asyncio.run(app.aclose())
