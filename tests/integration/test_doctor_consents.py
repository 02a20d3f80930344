"""`remediation doctor` reads what every case's plan reads for app consents: the grants and
the directory audit log. Without them every case escalates before any change."""

from pathlib import Path

import pytest

from remediation.sandbox import SandboxTenant
from tests.cli_helpers import clean_environment, run_cli  # noqa: F401 (fixtures)
from tests.conftest import sandbox_env
from tests.integration.test_doctor import GRANT, doctor, row

REFUSED = "refused: every case will escalate because"


@pytest.fixture
def env(clean_environment: None,  # noqa: F811 (the fixture imported above)
        threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> dict[str, str]:
    return {**sandbox_env(threaded_sandbox_url, tenant, tmp_path / "state.db"),
            "HTTP_MAX_RETRIES": "0"}


def test_the_consent_reads_pass_and_ask_only_what_graph_takes(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    status, out = doctor(monkeypatch, capsys, env, None)

    assert status == 0, out
    for check in ("read consent grants", "read the directory audit log"):
        assert row(out, check).startswith("ok "), row(out, check)
    reads = {r.path: r for r in tenant.requests() if r.method == "GET"}
    assert reads["/v1.0/auditLogs/directoryAudits"].query["$top"] == "1"
    # List oAuth2PermissionGrants takes only $filter: a principal no grant names.
    grants = reads["/v1.0/oauth2PermissionGrants"].query
    assert set(grants) == {"$filter"}
    assert grants["$filter"] == "principalId eq '00000000-0000-0000-0000-000000000000'"


@pytest.mark.parametrize(("check", "permission"), [
    ("read consent grants", "Directory.Read.All"),
    ("read the directory audit log", "AuditLog.Read.All"),
])
def test_a_consent_read_without_its_permission_fails_naming_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant, check: str, permission: str) -> None:
    tenant.denied_permissions.add(permission)

    status, out = doctor(monkeypatch, capsys, env, tenant.token)

    assert status == 1
    line = row(out, check)
    assert line.startswith("FAIL ") and f"{REFUSED} Graph answered 403" in line, line
    assert f"grant {permission}" in line and GRANT in line
