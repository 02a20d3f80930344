"""The guardrails run again before a change made after the case (an undo, the sign-in block
of RETURN_ACTION=disable), and what a person reads when they say no: the undo's
``undo_refused`` and the escalation's reason name why, in the words of the case's own
guardrails."""

import uuid
from datetime import timedelta
from pathlib import Path

from remediation.adapters.local_worker import LocalWorker
from remediation.bootstrap import bootstrap
from remediation.domain.cases import CaseState
from remediation.domain.requests import RemediationRequest
from remediation.domain.roles import EXCHANGE_ADMINISTRATOR
from remediation.sandbox import SandboxTenant
from remediation.sandbox.clock import utc_now
from remediation.sandbox.seed import BREAK_GLASS_GROUP_ID
from remediation.sandbox.signin_methods import phone
from tests.cli_helpers import clean_environment
from tests.conftest import sandbox_settings
from tests.e2e.test_admin_unit_scope import ADELE, UNIT
from tests.e2e.test_hostile_16 import lynne_in_the_unit
from tests.e2e.test_signin_methods import ATTACKER_PHONE, register
from tests.e2e.test_undo import BY, LYNNE, Lynne, lynne

__all__ = ["clean_environment", "lynne"]


async def refused_undo(lynne: Lynne, case_id: str, **env: str) -> str:
    code, _, err = await lynne.cli("undo", case_id, "--by", BY, **env)
    assert code == 0, err
    await lynne.work(**{name.lower(): value for name, value in env.items()})
    case = await lynne.case(case_id)
    assert not [s for s in case.steps if s.name == "undo_finished"]
    [refused] = [s for s in case.steps if s.name == "undo_refused"]
    return refused.detail


async def test_an_undo_of_an_account_that_left_the_unit_says_so(lynne: Lynne) -> None:
    lynne_in_the_unit(lynne.tenant)
    case = await lynne.remediated(scope_administrative_unit_id=UNIT)
    lynne.tenant.admin_units.remove_member(UNIT, lynne.tenant.user(LYNNE).id)

    detail = await refused_undo(lynne, case.case_id, SCOPE_ADMINISTRATIVE_UNIT_ID=UNIT)

    assert detail == (f"undo refused: {LYNNE} is not a member of administrative unit {UNIT} "
                      "(SCOPE_ADMINISTRATIVE_UNIT_ID), the part of the directory the robot "
                      "may change; nothing was done")


async def test_an_undo_of_an_account_made_an_administrator_names_the_role(
        lynne: Lynne) -> None:
    case = await lynne.remediated()
    lynne.tenant.user(LYNNE).role_template_ids.append(EXCHANGE_ADMINISTRATOR)

    detail = await refused_undo(lynne, case.case_id)

    assert detail.startswith("undo refused: holds directory role(s) Exchange Administrator")
    assert detail.endswith("; nothing was done")


async def test_an_undo_in_the_unit_still_restores(lynne: Lynne) -> None:
    """The unit is checked, not merely refused: a member's undo goes through."""
    lynne_in_the_unit(lynne.tenant)
    case = await lynne.remediated(scope_administrative_unit_id=UNIT)

    code, _, err = await lynne.cli("undo", case.case_id, "--by", BY,
                                   SCOPE_ADMINISTRATIVE_UNIT_ID=UNIT)
    assert code == 0, err
    await lynne.work(scope_administrative_unit_id=UNIT)

    undone = await lynne.case(case.case_id)
    assert not [s for s in undone.steps if s.name == "undo_refused"]
    [finished] = [s for s in undone.steps if s.name == "undo_finished"]
    assert finished.data["restored"] and not finished.data["not_restored"], finished.detail


async def attacker_back(sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
                        change: str) -> str:
    """Adele's case acts with RETURN_ACTION=disable; then ``change`` happens to her account
    (``protected``: the break-glass group; ``none``), the attacker registers a phone again,
    and the verification check finds it. The escalation's reason."""
    register(tenant, ADELE, phone(ATTACKER_PHONE, registered=utc_now() - timedelta(hours=3)))
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db",
                                     sweep_restricted_users=False, return_action="disable",
                                     protected_group_ids=frozenset({BREAK_GLASS_GROUP_ID})))
    try:
        await app.requests.send(RemediationRequest(user=ADELE, request_id=uuid.uuid4().hex))
        assert app.queue is not None
        await LocalWorker(app.queue, {app.settings.remediation_queue: app.handler.on_request},
                          poll_interval=0.05).run(until_idle=True)
        if change == "protected":
            tenant.user(ADELE).group_ids.append(BREAK_GLASS_GROUP_ID)
        register(tenant, ADELE, phone(ATTACKER_PHONE))
        await app.worker(poll_interval=0.05).run(until_idle=True)
        [case] = await app.journal.list_cases()
    finally:
        await app.aclose()
    assert case.state is CaseState.ESCALATED
    assert case.reason is not None
    return case.reason


async def test_the_escalation_says_why_sign_in_was_not_blocked(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    reason = await attacker_back(sandbox_url, tenant, tmp_path, "protected")

    assert tenant.user(ADELE).account_enabled is True
    assert reason.startswith("the attacker is still active: ")
    assert (f"; sign-in NOT blocked (RETURN_ACTION=disable): the guardrails, checked again "
            f"before it, say no: member of protected group(s) {BREAK_GLASS_GROUP_ID}: never "
            "changed automatically") in reason


async def test_an_ordinary_account_is_still_blocked(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    reason = await attacker_back(sandbox_url, tenant, tmp_path, "none")

    assert tenant.user(ADELE).account_enabled is False
    assert "; sign-in blocked (RETURN_ACTION=disable)" in reason
