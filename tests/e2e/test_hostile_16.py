"""Hostile round on issue 16, end to end against the sandbox tenant: least privilege the
operator chose, undo, the kill switch. Each test failed on the code it was written against
(main at 37ef452)."""

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from remediation.adapters.local_worker import LocalWorker
from remediation.bootstrap import bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.domain.requests import RemediationRequest
from remediation.domain.roles import EXCHANGE_ADMINISTRATOR
from remediation.sandbox import SandboxTenant
from remediation.sandbox.clock import utc_now
from remediation.sandbox.seed import BREAK_GLASS_GROUP_ID
from remediation.sandbox.signin_methods import phone
from tests.cli_helpers import clean_environment
from tests.conftest import sandbox_settings
from tests.e2e.test_admin_unit_scope import ADELE, UNIT
from tests.e2e.test_decisions import Operator
from tests.e2e.test_signin_methods import ATTACKER_PHONE, register
from tests.e2e.test_undo import BY, LYNNE, Lynne, lynne, mailbox_state, writes
from tests.journal_cases import seed

__all__ = ["clean_environment", "lynne"]

RENAMED = "lynne.smith@contoso.com"  # Lynne's primary address after a name change


def writes_since(tenant: SandboxTenant, mark: int) -> list[Any]:
    """Every request after the first ``mark`` that asked the tenant to change something."""
    return [r for r in tenant.requests()[mark:]
            if r.method in ("PATCH", "POST", "PUT", "DELETE")
            and not (r.cmdlet or "").startswith(("Get-", "Search-"))]


def lynne_in_the_unit(tenant: SandboxTenant) -> None:
    """The operator chose SCOPE_ADMINISTRATIVE_UNIT_ID: Lynne is a member, the app holds User
    Administrator over the unit (and Directory Readers tenant-wide)."""
    tenant.admin_units.add(UNIT, "Remediation scope", {tenant.user(LYNNE).id})
    tenant.app_user_administrator_scopes = (f"/administrativeUnits/{UNIT}",)
    tenant.app_directory_readers = True


async def test_an_undo_never_touches_an_account_that_left_the_unit(lynne: Lynne) -> None:
    """README, Configuration: with SCOPE_ADMINISTRATIVE_UNIT_ID "only its direct members are
    ever changed, any other account is escalated out_of_scope before any change"; Permissions:
    "the robot never reaches anyone outside the unit". Lynne's case ran while she was a
    member; she has since been moved out of the unit (to an executives' unit, say). An undo
    re-enables the inbox rules, sets the forwarding and grants the consent again: changes to
    an account outside the unit, which the worker must refuse as it refuses a protected one."""
    tenant = lynne.tenant
    lynne_in_the_unit(tenant)
    case = await lynne.remediated(scope_administrative_unit_id=UNIT)
    assert case.state is CaseState.VERIFIED, case.reason
    acted = mailbox_state(tenant)
    tenant.admin_units.remove_member(UNIT, tenant.user(LYNNE).id)
    mark = len(tenant.requests())

    code, _, _ = await lynne.cli("undo", case.case_id, "--by", BY,
                                 SCOPE_ADMINISTRATIVE_UNIT_ID=UNIT)
    if code == 0:  # queued: the worker, which holds the app's identity, must refuse it
        await lynne.work(scope_administrative_unit_id=UNIT)

    assert writes(tenant, mark) == []
    assert mailbox_state(tenant) == acted


async def test_return_action_disable_never_blocks_an_account_that_left_the_unit(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """RETURN_ACTION=disable blocks sign-in when a verification check finds the attacker
    back: a change to the account, hours after the case's guardrails ran. With
    SCOPE_ADMINISTRATIVE_UNIT_ID, an account no longer in the unit is "never touched"
    (README, Configuration and Permissions), whatever Graph would allow: here the app's role
    is tenant-wide as well, as the README's "broader than chosen" doctor line allows."""
    tenant.admin_units.add(UNIT, "Remediation scope", {tenant.user(ADELE).id})
    tenant.app_user_administrator_scopes = ("/", f"/administrativeUnits/{UNIT}")
    tenant.app_directory_readers = True
    register(tenant, ADELE, phone(ATTACKER_PHONE, registered=utc_now() - timedelta(hours=3)))
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db",
                                     sweep_restricted_users=False, return_action="disable",
                                     scope_administrative_unit_id=UNIT))
    await app.requests.send(RemediationRequest(user=ADELE, request_id=uuid.uuid4().hex))
    assert app.queue is not None
    await LocalWorker(app.queue, {app.settings.remediation_queue: app.handler.on_request},
                      poll_interval=0.05).run(until_idle=True)
    [case] = await app.journal.list_cases()
    assert case.state is CaseState.AWAITING_VERIFICATION, case.reason
    # Moved out of the unit after the case acted; the attacker registers the phone again.
    tenant.admin_units.remove_member(UNIT, tenant.user(ADELE).id)
    register(tenant, ADELE, phone(ATTACKER_PHONE))
    mark = len(tenant.requests())

    await app.worker(poll_interval=0.05).run(until_idle=True)
    [case] = await app.journal.list_cases()
    await app.aclose()

    assert case.state is CaseState.ESCALATED  # the attacker back is still a person's to see
    assert tenant.user(ADELE).account_enabled is True
    assert [r.path for r in writes_since(tenant, mark)] == []


async def test_an_undo_sees_a_newer_case_of_the_account_under_its_new_address(
        lynne: Lynne) -> None:
    """README, "Undoing a case": the command and the worker refuse while "a newer case of the
    account" is still working, "undoing under a case at work would fight it". Lynne's
    primary address changed after her case (a name change: the old address stays an alias),
    and a newer case of her account, journaled under the new primary address as every case
    is once its lookup ran, is awaiting its checks. `status --user` with her old address
    lists that newer case; the undo must see it too."""
    tenant = lynne.tenant
    case = await lynne.remediated()
    assert case.state is CaseState.VERIFIED, case.reason
    acted = mailbox_state(tenant)
    later = case.created_at + timedelta(hours=2)
    newer = Case(case_id=f"{later:%Y%m%d}-0000beef", user=RENAMED,
                 state=CaseState.AWAITING_VERIFICATION, created_at=later, updated_at=later,
                 user_id=case.user_id, sender=RENAMED, aliases=(RENAMED, LYNNE))
    app = lynne.app()
    try:
        await seed(app.journal, newer)
    finally:
        await app.aclose()
    code, out, _ = await lynne.cli("status", "--user", LYNNE)
    assert newer.case_id in out  # what a person sees: a newer case of the account, working
    mark = len(tenant.requests())

    code, _, err = await lynne.cli("undo", case.case_id, "--by", BY)
    if code == 0:  # queued: the worker checks again before it acts
        await lynne.work()

    assert writes(tenant, mark) == [], "undo fought a newer case of the account"
    assert mailbox_state(tenant) == acted
    assert code == 2 and newer.case_id in err, err


TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl"


async def test_a_token_pasted_into_the_pause_reason_is_masked_like_a_rejects(
        lynne: Lynne) -> None:
    """A person pauses in an emergency and pastes what they were looking at: a bearer token.
    The reason of `reject` and `close` is "masked if it holds a secret" (README, Command line)
    and nothing the journal keeps or `status` prints may hold a token (STYLE). The pause's
    reason is kept in the journal (the kill switch's row) and shown on the first line of
    `status`, of `status --json --with-total`, and on every case the pause holds."""
    code, out, err = await lynne.cli("pause", "--by", BY, "--reason",
                                     f"incident 42, token seen: Bearer {TOKEN}")
    assert code == 0, err
    assert TOKEN not in out

    code, out, err = await lynne.cli("status")
    assert code == 0, err
    assert out.startswith("PAUSED since ")
    assert TOKEN not in out
    code, out, err = await lynne.cli("status", "--json", "--with-total")
    assert code == 0, err
    assert TOKEN not in out
    assert TOKEN.encode() not in lynne.db.read_bytes()


async def test_an_approval_given_in_time_while_paused_is_not_expired_at_resume(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, clean_environment: None,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A case waits for approval; the robot is paused (an incident); within APPROVAL_TIMEOUT
    bob approves it (`remediation approve` journals `approval_queued` and queues it; the pause
    keeps it, "requests and checks are kept and wait"). The pause is lifted after the
    timeout: the first poll's sweep must not escalate the case "approval timed out: nobody
    approved or rejected the case within APPROVAL_TIMEOUT", which the journal itself
    contradicts, and the kept approval must not then be refused."""
    operator = Operator(sandbox_url, tenant, tmp_path / "state.db", "", monkeypatch, capsys,
                        mode="approve", approval_timeout=timedelta(seconds=2))
    operator.app.handler = operator.app.handler.with_pause_recheck(timedelta(seconds=0.05))
    try:
        await operator.alert(ADELE)
        waiting = await operator.case(ADELE)
        assert waiting.state is CaseState.AWAITING_APPROVAL
        code, _, err = await operator.cli("pause", "--by", BY, "--reason", "incident")
        assert code == 0, err
        code, _, err = await operator.cli("approve", waiting.case_id, "--by", "bob")
        assert code == 0, err
        await operator.run()  # the approval is kept by the pause
        await asyncio.sleep(2.5)  # the pause outlasts the rest of APPROVAL_TIMEOUT
        code, _, err = await operator.cli("resume", "--by", BY)
        assert code == 0, err

        sweeper = operator.app.intake.sweeper
        assert sweeper is not None
        await sweeper.sweep()  # the first poll after resume (every 2 minutes)
        await operator.run()  # the kept approval comes back (within 5 minutes)

        case = await operator.case(ADELE)
        assert case.escalation_kind != "approval_expired", case.reason
        assert operator.resets(ADELE) == 1, case.reason
    finally:
        await operator.app.aclose()


async def test_an_undo_never_touches_an_account_that_became_an_administrator(
        lynne: Lynne) -> None:
    """README, Safety: the robot never touches "holders of any directory role ... whatever
    the input": before any change it reads the account's roles. An undo is a change (rules
    enabled, forwarding set, a consent granted), yet the worker checks only the protected
    groups: Lynne, made an Exchange Administrator since her case, has her mailbox forwarded
    outside and her rules enabled again by the robot."""
    tenant = lynne.tenant
    case = await lynne.remediated()
    assert case.state is CaseState.VERIFIED, case.reason
    acted = mailbox_state(tenant)
    tenant.user(LYNNE).role_template_ids.append(EXCHANGE_ADMINISTRATOR)
    mark = len(tenant.requests())

    code, _, _ = await lynne.cli("undo", case.case_id, "--by", BY)
    if code == 0:
        await lynne.work()

    assert writes(tenant, mark) == []
    assert mailbox_state(tenant) == acted


async def test_return_action_disable_never_blocks_an_account_now_in_a_protected_group(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """README, Safety: whoever is a member of a group in PROTECTED_GROUP_IDS (break-glass
    accounts) is never changed, "whatever the input"; the guardrails read the groups "before
    any change". Blocking sign-in (RETURN_ACTION=disable) is a change made hours after the
    case's guardrails ran: Adele, added to the break-glass group since, is locked out."""
    register(tenant, ADELE, phone(ATTACKER_PHONE, registered=utc_now() - timedelta(hours=3)))
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db",
                                     sweep_restricted_users=False, return_action="disable",
                                     protected_group_ids=frozenset({BREAK_GLASS_GROUP_ID})))
    await app.requests.send(RemediationRequest(user=ADELE, request_id=uuid.uuid4().hex))
    assert app.queue is not None
    await LocalWorker(app.queue, {app.settings.remediation_queue: app.handler.on_request},
                      poll_interval=0.05).run(until_idle=True)
    tenant.user(ADELE).group_ids.append(BREAK_GLASS_GROUP_ID)  # a break-glass account now
    register(tenant, ADELE, phone(ATTACKER_PHONE))

    await app.worker(poll_interval=0.05).run(until_idle=True)
    [case] = await app.journal.list_cases()
    await app.aclose()

    assert case.state is CaseState.ESCALATED
    assert tenant.user(ADELE).account_enabled is True
