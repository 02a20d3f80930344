"""Least privilege the operator chose: the User Administrator role scoped to an administrative
unit (SCOPE_ADMINISTRATIVE_UNIT_ID). An account outside the unit is escalated before any
change and never touched, whatever Graph would allow; an account inside is secured as usual.
The sandbox answers as Graph does for an AU-scoped role (sandbox/admin_units.py)."""

from pathlib import Path

from remediation.domain.cases import CaseState
from remediation.permissions import EXCHANGE_APPLICATION_ROLES
from remediation.sandbox import SandboxTenant
from remediation.service.messages import Approval
from tests.e2e.test_safety import app_for, changed, remediate

ADELE, DIEGO, JOHANNA = ("adele.vance@contoso.com", "diego.siciliani@contoso.com",
                         "johanna.lorenz@contoso.com")
UNIT = "4d819ce9-9257-44a5-8d6e-2f1b3c5a7e90"


def scoped_tenant(tenant: SandboxTenant, *, tenant_wide_too: bool = False) -> None:
    """The app holds User Administrator over UNIT (and Directory Readers tenant-wide, as an
    AU-scoped role needs); Adele and Diego are members, Johanna is not."""
    members = {tenant.user(ADELE).id, tenant.user(DIEGO).id}
    tenant.admin_units.add(UNIT, "Remediation scope", members)
    tenant.app_user_administrator_scopes = (
        ("/", f"/administrativeUnits/{UNIT}") if tenant_wide_too
        else (f"/administrativeUnits/{UNIT}",))
    tenant.app_directory_readers = True


def kind(case: object) -> object:
    steps = [step for step in case.steps if step.name == "escalated"]  # type: ignore[attr-defined]
    return steps[-1].data.get("kind") if steps else None


async def test_an_account_outside_the_unit_is_escalated_untouched(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    scoped_tenant(tenant)
    app = app_for(sandbox_url, tenant, tmp_path / "db", scope_administrative_unit_id=UNIT)

    cases = await remediate(app, JOHANNA, ADELE)

    outside = cases[JOHANNA]
    assert outside.state is CaseState.ESCALATED
    assert kind(outside) == "out_of_scope"
    assert UNIT in (outside.reason or "") and "nothing was changed" in (outside.reason or "")
    assert changed(tenant, JOHANNA) == []
    assert tenant.user(JOHANNA).password_changes == []
    assert JOHANNA in tenant.blocked_addresses()
    inside = cases[ADELE]
    assert inside.state in (CaseState.AWAITING_VERIFICATION, CaseState.VERIFIED), inside.reason
    assert len(tenant.user(ADELE).password_changes) == 1
    await app.aclose()


async def test_the_unit_holds_even_where_graph_would_allow_the_change(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    # The role is tenant-wide as well: Graph would reset Johanna. The operator chose the unit.
    scoped_tenant(tenant, tenant_wide_too=True)
    app = app_for(sandbox_url, tenant, tmp_path / "db", scope_administrative_unit_id=UNIT)

    cases = await remediate(app, JOHANNA)

    assert kind(cases[JOHANNA]) == "out_of_scope"
    assert changed(tenant, JOHANNA) == []
    await app.aclose()


async def test_an_account_that_left_the_unit_while_its_case_waited_is_not_touched(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    scoped_tenant(tenant)
    app = app_for(sandbox_url, tenant, tmp_path / "db", scope_administrative_unit_id=UNIT,
                  mode="approve")
    waiting = (await remediate(app, DIEGO, source="alert"))[DIEGO]
    assert waiting.state is CaseState.AWAITING_APPROVAL
    tenant.admin_units.remove_member(UNIT, tenant.user(DIEGO).id)

    await app.requests.send_approval(Approval(waiting.case_id, DIEGO, "security lead"))
    await app.worker(poll_interval=0.05).run(until_idle=True)

    case = await app.journal.get_case(waiting.case_id)
    assert case is not None
    assert case.state is CaseState.ESCALATED and kind(case) == "out_of_scope"
    assert changed(tenant, DIEGO) == []
    await app.aclose()


async def test_with_exchange_rbac_a_member_is_secured_without_graph_mailbox_grants(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    scoped_tenant(tenant)
    replaced = [role.replaces for role in EXCHANGE_APPLICATION_ROLES]
    tenant.denied_permissions.update(replaced)  # --mailbox-scope
    tenant.mailbox_rbac.update(dict.fromkeys(replaced, UNIT))  # grant-exchange-scope.ps1
    app = app_for(sandbox_url, tenant, tmp_path / "db", scope_administrative_unit_id=UNIT,
                  mailbox_access="exchange-rbac")

    cases = await remediate(app, ADELE, JOHANNA)

    assert cases[ADELE].state in (CaseState.AWAITING_VERIFICATION, CaseState.VERIFIED)
    rules = [r for r in tenant.requests() if r.path.endswith("/messageRules")]
    assert rules and all(r.status == 200 for r in rules)
    assert kind(cases[JOHANNA]) == "out_of_scope"
    await app.aclose()
