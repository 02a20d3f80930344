"""`remediation doctor` checks the least privilege the operator chose (README, Permissions):
the User Administrator role at the administrative unit's scope, the unit itself, and, with
MAILBOX_ACCESS=exchange-rbac, mailbox access through Exchange RBAC for Applications instead
of tenant-wide Graph permissions. The sandbox answers as Graph does (sandbox/admin_units.py,
sandbox/mailbox_rbac.py)."""

from pathlib import Path

import pytest

from remediation.permissions import EXCHANGE_APPLICATION_ROLES
from remediation.sandbox import SandboxTenant
from tests.cli_helpers import clean_environment, run_cli  # noqa: F401 (a fixture)
from tests.conftest import sandbox_env
from tests.integration.test_doctor import row

UNIT = "4d819ce9-9257-44a5-8d6e-2f1b3c5a7e90"
MEMBERS = ("adele.vance@contoso.com", "diego.siciliani@contoso.com")
REPLACED = sorted(role.replaces for role in EXCHANGE_APPLICATION_ROLES)


@pytest.fixture
def env(clean_environment: None,  # noqa: F811 (the fixture imported above)
        threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> dict[str, str]:
    tenant.admin_units.add(UNIT, "Remediation scope", {tenant.user(m).id for m in MEMBERS})
    return {**sandbox_env(threaded_sandbox_url, tenant, tmp_path / "state.db"),
            "HTTP_MAX_RETRIES": "0", "SCOPE_ADMINISTRATIVE_UNIT_ID": UNIT}


def au_scoped(tenant: SandboxTenant, *, tenant_wide_too: bool = False) -> None:
    tenant.app_user_administrator_scopes = (
        ("/",) if tenant_wide_too else ()) + (f"/administrativeUnits/{UNIT}",)
    tenant.app_directory_readers = True


def exchange_scoped(tenant: SandboxTenant, *, graph_grants_too: bool = False) -> None:
    if not graph_grants_too:
        tenant.denied_permissions.update(REPLACED)
    tenant.mailbox_rbac.update(dict.fromkeys(REPLACED, UNIT))


def doctor(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           env: dict[str, str]) -> tuple[int, str]:
    status, out, err = run_cli(monkeypatch, capsys, env, "doctor")
    assert "Traceback" not in out + err
    return status, out


def test_the_role_at_the_units_scope_passes(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str],
                                            env: dict[str, str], tenant: SandboxTenant) -> None:
    au_scoped(tenant)

    status, out = doctor(monkeypatch, capsys, env)

    assert status == 0, out
    assert row(out, "role User Administrator").startswith(
        f"ok role User Administrator: assigned at /administrativeUnits/{UNIT}")
    assert row(out, "role Directory Readers").startswith("ok ")
    assert row(out, "read the administrative unit").startswith(f"ok read the administrative "
                                                               f"unit: {UNIT} (Remediation")
    assert "broader than chosen" not in out


def test_a_tenant_wide_role_alone_is_not_the_chosen_scope(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    status, out = doctor(monkeypatch, capsys, env)  # granted without --scope-au

    assert status == 1
    role = row(out, "role User Administrator")
    assert role.startswith(f"FAIL role User Administrator: not assigned at "
                           f"/administrativeUnits/{UNIT}")
    assert (f"bash infra/grant-permissions.sh --scope-au {UNIT} {tenant.app_object_id}"
            in role)
    assert row(out, "role Directory Readers").startswith("FAIL ")
    assert row(out, "broader than chosen: User Administrator").startswith("info ")


def test_the_tenant_wide_role_besides_is_broader_than_chosen(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    au_scoped(tenant, tenant_wide_too=True)

    status, out = doctor(monkeypatch, capsys, env)

    assert status == 0, out
    broader = row(out, "broader than chosen: User Administrator")
    assert broader.startswith("info ") and "also assigned tenant-wide" in broader
    assert "remove the tenant-wide User Administrator assignment" in broader


def test_a_unit_that_does_not_exist_fails(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str],
                                          env: dict[str, str], tenant: SandboxTenant) -> None:
    au_scoped(tenant)
    other = "11111111-2222-3333-4444-555555555555"

    status, out = doctor(monkeypatch, capsys, {**env, "SCOPE_ADMINISTRATIVE_UNIT_ID": other})

    assert status == 1
    assert row(out, "read the administrative unit").startswith(
        f"FAIL read the administrative unit: no administrative unit {other}")


def test_exchange_rbac_needs_no_graph_mailbox_permission_and_proves_the_scope(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    au_scoped(tenant)
    exchange_scoped(tenant)

    status, out = doctor(monkeypatch, capsys, {**env, "MAILBOX_ACCESS": "exchange-rbac"})

    assert status == 0, out
    read = row(out, "read a member's inbox rules and folders (Exchange RBAC scope)")
    assert read.startswith("ok ") and "inbox rules readable" in read
    for name in REPLACED:
        assert row(out, f"permission {name}").startswith(f"ok permission {name}: not needed "
                                                         "in Graph")


def test_exchange_rbac_with_the_graph_grants_left_in_place_is_broader_than_chosen(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    au_scoped(tenant)
    exchange_scoped(tenant, graph_grants_too=True)

    status, out = doctor(monkeypatch, capsys, {**env, "MAILBOX_ACCESS": "exchange-rbac"})

    assert status == 0, out
    for name in REPLACED:
        assert row(out, f"permission {name}").startswith(
            f"info permission {name}: broader than chosen")


def test_exchange_rbac_without_the_scoped_roles_names_the_script(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    au_scoped(tenant)
    tenant.denied_permissions.update(REPLACED)  # --mailbox-scope, but the .ps1 never ran

    status, out = doctor(monkeypatch, capsys, {**env, "MAILBOX_ACCESS": "exchange-rbac"})

    assert status == 1
    read = row(out, "read a member's inbox rules and folders (Exchange RBAC scope)")
    assert read.startswith("FAIL ") and "403" in read
    assert "pwsh infra/grant-exchange-scope.ps1" in read and UNIT in read
    for name in REPLACED:
        assert row(out, f"permission {name}").startswith("UNVERIFIED ")
