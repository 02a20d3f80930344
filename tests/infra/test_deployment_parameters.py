"""What `azd up` passes the template: every parameter main.bicep requires comes from the azd
environment (infra/main.parameters.json), every app setting an operator would change is a
parameter taken from the azd environment under the app setting's name with ``AZURE_`` in
front (a shell variable of the app setting's own name, left from a local run, must never reach
a deployment: azd falls back to the process environment for a name its .env lacks), with the
template's default, so that a value set with `azd env set` survives every `azd up` (the
template writes the app settings whole: one set in the portal is overwritten), and the
README's deployment steps say what to set and why the tenant is the subscription's own.

A new app setting written by main.bicep fails these tests until it is either an operator
setting (a parameter, mapped in main.parameters.json as ``${AZURE_NAME=default}``, listed in the
README) or named in ``FIXED_WIRING`` with the reason it is not the operator's to change.
"""

import json
import re
from typing import Any

import pytest

from remediation.config import MAILBOX_ACCESS
from remediation.service.settings import (
    HYGIENE_MODES,
    MODES,
    RATE_LIMIT_MODES,
    RETURN_ACTIONS,
    SIGNIN_CLEANUP_MODES,
    WEBHOOK_FORMATS,
)
from tests.infra.bicep import INFRA, INTERPOLATION, ROOT, Template, main
from tests.infra.test_bicep import app_settings

PARAMETERS = INFRA / "main.parameters.json"
# azd substitutes ${NAME} and ${NAME=default} (Go envsubst syntax: "To set location to the
# value eastus2 if AZURE_LOCATION is not set, the syntax ${AZURE_LOCATION=eastus2} can be
# used", MicrosoftDocs/azure-dev-docs, articles/azure-developer-cli/
# manage-environment-variables.md). The default ends at the first "}".
AZD_VARIABLE = re.compile(r"^\$\{(\w+)(?:=([^}]*))?\}$")

# App settings the template writes that are wiring, not the operator's to change: each is
# tied to a resource the template creates, or a deliberate choice explained here.
FIXED_WIRING = {
    "AZURE_TENANT_ID": "the subscription's tenant: the managed identity gets tokens from no "
                       "other (tenantId is a parameter azd never passes, README)",
    "AZURE_CLIENT_ID": "the user-assigned identity the template creates",
    "ServiceBusConnection__fullyQualifiedNamespace": "the namespace the template creates",
    "ServiceBusConnection__credential": "identity-based connection",
    "ServiceBusConnection__clientId": "the user-assigned identity the template creates",
    "REMEDIATION_QUEUE": "the queue the template creates",
    "VERIFICATION_QUEUE": "the queue the template creates",
    "MAX_DELIVERY_COUNT": "one number with the queues' maxDeliveryCount",
    "QUEUE_MAX_DELIVERY_COUNT": "the queues' own maxDeliveryCount",
    "RETRY_BACKOFF": "tuned with the queue lock and the delivery's time budget (host.json)",
    "JOURNAL_TABLE_NAME": "the table the template creates",
    "DEFENDER_STREAM_HUB": "the Defender stream needs a tenant's Event Hub, wired in the "
                           "template when used",
    "AzureWebJobs.receive_defender_stream.Disabled": "off until the Event Hub is wired",
    "AzureWebJobsStorage__accountName": "the storage account the template creates",
    "AzureWebJobsStorage__credential": "identity-based host storage",
    "AzureWebJobsStorage__clientId": "the user-assigned identity the template creates",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "the Application Insights the template creates",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Entra-only ingestion with the identity",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "the worker sends the app's OpenTelemetry "
                                                   "(host.json's telemetryMode)",
    "PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME": "the exporter's log handler on the app's "
                                              "logger: no library's lines exported",
    "OTEL_TRACES_SAMPLER": "every trace kept: a case is a few dozen spans",
    "OTEL_TRACES_SAMPLER_ARG": "every trace kept: a case is a few dozen spans",
}

# An operator setting whose values the code lists: the template allows exactly those.
ALLOWED = {"REMEDIATION_MODE": MODES, "MAILBOX_HYGIENE": HYGIENE_MODES,
           "SIGNIN_CLEANUP": SIGNIN_CLEANUP_MODES, "RETURN_ACTION": RETURN_ACTIONS,
           "RATE_LIMIT_BLOCKS": RATE_LIMIT_MODES, "ESCALATION_WEBHOOK_FORMAT": WEBHOOK_FORMATS,
           "MAILBOX_ACCESS": MAILBOX_ACCESS}
# The ones whose value is a secret: the parameter is @secure() and the app setting a Key Vault
# reference (tests/infra/test_bicep.py checks the reference).
SECRETS = {"ESCALATION_WEBHOOK_URL"}


def mapped() -> dict[str, str]:
    document = json.loads(PARAMETERS.read_text())
    return {name: entry["value"] for name, entry in document["parameters"].items()}


def _parameters_in(node: Any, declared: dict[str, Any]) -> set[str]:
    """The main.bicep parameters an expression reads (a property name after a dot is none;
    a string's ``${...}`` interpolations count)."""
    if isinstance(node, str):
        found = {node} & set(declared)
        for expression in INTERPOLATION.findall(node):
            found |= {expression.split(".")[0]} & set(declared)
        return found
    if isinstance(node, list):
        return set().union(*(_parameters_in(item, declared) for item in node))
    if not isinstance(node, dict):
        return set()
    operator = node.get("operator")
    if isinstance(operator, dict) and operator.get("type") == "property_accessor":
        return _parameters_in(operator["operands"]["operand_1"], declared)
    return set().union(*(_parameters_in(item, declared) for item in node.values()))


def operator_settings() -> dict[str, str]:
    """App setting -> the main.bicep parameter it is written from, for every app setting that
    is not fixed wiring."""
    template = main()
    declared = template.section("parameters")
    written = template.section("modules")["functionApp"]["config"]["params"]["appSettings"]
    found = {}
    for name, node in written.items():
        if name in FIXED_WIRING:
            continue
        parameters = _parameters_in(node, declared)
        if len(parameters) == 1:  # any other: test_every_app_setting_is_... says which
            [found[name]] = parameters
    return found


def bicep_default(parameter: str) -> str:
    """The parameter's default as azd's environment would hold it (text)."""
    default = main().value(main().section("parameters")[parameter]["default"])
    return str(default).lower() if isinstance(default, bool) else str(default)


def test_azd_passes_every_parameter_the_template_requires() -> None:
    declared = main().section("parameters")
    required = {name for name, parameter in declared.items() if parameter["default"] is None}
    assert required == {"environmentName"}
    assert set(mapped()) <= set(declared), "a parameter main.bicep does not declare"
    assert required <= set(mapped()), "azd would deploy without a required parameter"
    assert mapped()["environmentName"] == "${AZURE_ENV_NAME}"
    for name, value in mapped().items():
        assert AZD_VARIABLE.match(str(value)), f"{name}: not taken from the azd environment"


def test_every_app_setting_is_fixed_wiring_or_an_operator_setting() -> None:
    written = set(app_settings())
    assert sorted(set(FIXED_WIRING) - written) == [], "FIXED_WIRING names a setting no more"
    assert sorted(written - set(FIXED_WIRING) - set(operator_settings())) == []
    assert set(operator_settings()) >= {
        "REMEDIATION_MODE", "PROTECTED_GROUP_IDS", "MAX_REMEDIATIONS_PER_HOUR",
        "ESCALATION_WEBHOOK_URL", "ESCALATION_WEBHOOK_FORMAT", "VERIFY_DELAYS",
        "MAILBOX_HYGIENE", "COMPROMISE_WINDOW", "SIGNIN_CLEANUP", "RETURN_ACTION",
        "RATE_LIMIT_BLOCKS", "ALERT_POLL_SCHEDULE", "ALERT_LOOKBACK", "SWEEP_RESTRICTED_USERS",
        "TENANT_DOMAINS", "CASE_LINK_TEMPLATE", "ALERT_TITLES"}


@pytest.mark.parametrize("setting", sorted(operator_settings()))
def test_each_operator_setting_comes_from_the_azd_environment_under_its_azure_name(
        setting: str) -> None:
    """``azd env set AZURE_NAME value`` then ``azd up``: the app setting NAME gets the value.
    Unset, azd substitutes the default written after ``=``, which is the template's own (an
    empty default is written ``${AZURE_NAME}``: azd then leaves the parameter out and the template's
    default applies)."""
    parameter = operator_settings()[setting]
    assert parameter in mapped(), f"{setting}: main.parameters.json does not map {parameter}"
    match = AZD_VARIABLE.match(mapped()[parameter])
    assert match, f"{parameter}: {mapped()[parameter]!r} is not an azd variable"
    name, default = match[1], match[2]
    assert name == f"AZURE_{setting}", f"{parameter}: azd name {name}, app setting {setting}"
    assert (default or "") == bicep_default(parameter), f"{setting}: default {default!r}"
    assert default is not None or bicep_default(parameter) == "", setting


@pytest.mark.parametrize("setting", sorted(ALLOWED))
def test_a_setting_of_listed_values_allows_exactly_what_the_code_takes(setting: str) -> None:
    parameter = operator_settings()[setting]
    assert main().allowed(parameter) == list(ALLOWED[setting])
    assert bicep_default(parameter) in ALLOWED[setting]


def test_a_secret_setting_is_a_secure_parameter() -> None:
    declared = main().section("parameters")
    for setting in SECRETS:
        decorators = declared[operator_settings()[setting]]["decorators"]
        assert {"type": "secure"} in decorators, setting
    secure = {name for name, parameter in declared.items()
              if {"type": "secure"} in parameter["decorators"]}
    assert secure == {operator_settings()[setting] for setting in SECRETS}


def test_the_breaker_limit_cannot_be_deployed_as_zero() -> None:
    """A limit of 0 would escalate every case as a mass compromise: the template refuses it."""
    decorators = main().section("parameters")[operator_settings()[
        "MAX_REMEDIATIONS_PER_HOUR"]]["decorators"]
    assert {"type": "min_value", "argument": 1} in decorators, decorators


def test_the_tenant_is_left_to_the_subscriptions_own() -> None:
    """The managed identity lives in the subscription's tenant and gets tokens from no other:
    azd never passes another tenant id (its default is subscription().tenantId)."""
    assert "tenantId" not in mapped()
    default = main().section("parameters")["tenantId"]["default"]
    assert default["operator"]["operands"]["operand_1"]["function"]["type"] == "subscription"


def deployment_steps() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("### Deployment", 1)[1].split("\n## ", 1)[0]


def test_the_readme_deployment_steps_explain_what_to_set() -> None:
    steps = deployment_steps()
    for words in ("environmentName", "AZURE_ENV_NAME", "azd env set", "tenantId",
                  "subscription's tenant", "3 to 12"):
        assert words in steps, f"README, Deployment: say {words!r}"


@pytest.mark.parametrize("setting", sorted(operator_settings()))
def test_the_readme_lists_each_azd_setting_with_its_default(setting: str) -> None:
    default = bicep_default(operator_settings()[setting])
    rows = [line for line in deployment_steps().splitlines()
            if line.startswith(f"| `AZURE_{setting}` |")]
    assert len(rows) == 1, f"README, Deployment: one table row for {setting}"
    shown = f"`{default}`" if default else "empty"
    assert rows[0].split("|")[2].strip().startswith(shown), rows[0]


def test_the_readme_says_which_value_survives_a_redeploy_and_how_to_upgrade() -> None:
    steps = " ".join(deployment_steps().split())
    for words in ("survives every `azd up`", "set in the portal is overwritten",
                  "az functionapp config appsettings list", "@Microsoft.KeyVault(SecretUri=",
                  "Key Vault Secrets User", "keyVaultReferenceIdentity"):
        assert words in steps, f"README, Deployment: say {words!r}"


def test_an_unset_secret_leaves_the_webhook_off() -> None:
    """No ESCALATION_WEBHOOK_URL in the azd environment: no secret, no reference, no webhook
    (README: unset it to switch the webhook off)."""
    assert app_settings()["ESCALATION_WEBHOOK_URL"] == ""
    given = app_settings(Template(main().path, {"escalationWebhookUrl": "https://x.example/h"}))
    assert str(given["ESCALATION_WEBHOOK_URL"]).startswith("@Microsoft.KeyVault(SecretUri=")
