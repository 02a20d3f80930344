"""Nothing lost (issue 10, point 4): a case is journaled ``received`` before the first call
to the tenant, a request that never gets further is escalated with its reason on its last
attempt, and a credential that cannot give a token is a clear, transient reason: never a
crashed poll, never a traceback from ``run --until-idle``.

Reproduced on the code before: a Graph outage or a token failure on the first lookup
dead-lettered the request with a log line and no case; a credential failing with anything
but ClientAuthenticationError crashed the poll.
"""

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError

from remediation.bootstrap import bootstrap
from remediation.domain.cases import Case, CaseState, StepStatus
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import Fault, SandboxTenant
from tests.cli_helpers import clean_environment, run_cli  # noqa: F401 (a fixture)
from tests.conftest import sandbox_settings

ADELE = "adele.vance@contoso.com"


class FailingCredential:
    """A credential that never gives a token, failing the way ``error`` says."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        self.calls += 1
        raise self.error

    async def close(self) -> None:
        return None


async def test_a_request_whose_first_lookup_keeps_failing_is_escalated_not_lost(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    tenant.add_fault(Fault(status=503, method="GET", path=r"^/v1\.0/users", times=None))
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "state.db",
                                     max_delivery_count=3, http_max_retries=0,
                                     sweep_restricted_users=False))
    try:
        request = RemediationRequest(user=ADELE, request_id=uuid.uuid4().hex)
        await app.requests.send(request)
        await app.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=True)

        [case] = await app.journal.list_cases()
        assert case.request_ids == (request.request_id,)
        assert case.state is CaseState.ESCALATED
        assert case.reason is not None
        assert case.reason.startswith("remediation gave up after 3 deliveries: Graph: ")
        assert "503" in case.reason
        assert _names(case)[:3] == ["received", "lookup_user:started", "lookup_user:failed"]
        assert _names(case).count("retry:info") == 2
        assert tenant.user(ADELE).password_changes == []
        assert ADELE in tenant.blocked_addresses()
    finally:
        await app.aclose()


@pytest.mark.parametrize("error", [
    CredentialUnavailableError("ManagedIdentityCredential authentication unavailable"),
    ClientAuthenticationError("AADSTS7000215: Invalid client secret provided."),
    OSError("Network is unreachable"),
    ValueError("Invalid tenant id provided"),
], ids=lambda error: type(error).__name__)
async def test_a_credential_that_gives_no_token_is_a_clear_reason_never_a_crash(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, error: Exception) -> None:
    tenant.add_alert(_alert())
    credential = FailingCredential(error)
    settings = replace(sandbox_settings(sandbox_url, tenant, tmp_path / "state.db",
                                        max_delivery_count=2, http_max_retries=0),
                       sandbox_token=None)
    app = bootstrap(settings, credential=credential)  # type: ignore[arg-type]
    try:
        request = RemediationRequest(user=ADELE, request_id=uuid.uuid4().hex)
        await app.requests.send(request)

        report = await app.intake.poll()

        assert credential.calls > 0
        assert [problem.split(":")[0] for problem in report.errors] == [
            "alerts", "Restricted users list"]
        assert "cannot get a token for Graph: " in report.errors[0]
        assert "cannot get a token for Exchange: " in report.errors[1]
        await app.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=True)
        [case] = await app.journal.list_cases()
        assert case.state is CaseState.ESCALATED
        assert (case.reason or "").startswith(
            "remediation gave up after 2 deliveries: cannot get a token for Graph: ")
        assert type(error).__name__ in (case.reason or "")
        assert tenant.requests() == []  # no token, so nothing reached the tenant
    finally:
        await app.aclose()


def test_run_until_idle_without_a_token_escalates_and_prints_no_traceback(
        clean_environment: None, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str], threaded_sandbox_url: str,
        tenant: SandboxTenant, tmp_path: Path) -> None:
    """No SANDBOX_TOKEN: DefaultAzureCredential finds no identity on this machine."""
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_USERNAME",
                 "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    env = {"AZURE_TENANT_ID": tenant.tenant_id, "GRAPH_ENDPOINT": threaded_sandbox_url,
           "EXCHANGE_ENDPOINT": threaded_sandbox_url, "REMEDIATION_DB": str(tmp_path / "db"),
           "MAX_DELIVERY_COUNT": "2", "RETRY_BACKOFF": "0.1s", "HTTP_MAX_RETRIES": "0"}
    status, _, _ = run_cli(monkeypatch, capsys, env, "enqueue", "--user", ADELE)
    assert status == 0

    status, out, err = run_cli(monkeypatch, capsys, env, "run", "--until-idle")

    assert "Traceback" not in out + err
    assert status in (0, 1)
    status, out, err = run_cli(monkeypatch, capsys, env, "status", "--json")
    assert status == 0
    assert "cannot get a token for Graph" in out
    assert '"escalated"' in out


def _names(case: Case) -> list[str]:
    return [step.name if step.status is StepStatus.INFO and step.name == "received"
            else f"{step.name}:{step.status.value}" for step in case.steps]


def _alert() -> dict[str, Any]:
    from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence

    return alert(RESTRICTED, [mailbox_evidence(ADELE)])
