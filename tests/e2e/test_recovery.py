"""Recovery from every escalation reason, as the README's "When a case escalates" table
documents it (issue 14, point 1): for each reason a case is driven into it against the
sandbox over HTTP, the documented recovery is applied, and the case (or the one that takes
over) ends as the table says. One scenario per row; the delays are compressed."""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.domain.errors import InvalidRequest, TransientError
from remediation.domain.escalation_kinds import EscalationKind as Kind
from remediation.domain.requests import RemediationRequest
from remediation.entrypoints.cli import _send_approval
from remediation.sandbox import SandboxTenant
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence
from remediation.sandbox.clock import utc_now
from remediation.sandbox.consents import ServicePrincipal, give_consent
from remediation.sandbox.faults import Fault
from remediation.sandbox.seed import BREAK_GLASS_GROUP_ID, NEWSLETTER, SHARED_MAILBOX
from remediation.sandbox.state import BlockBehaviour
from remediation.service.intake import AMBIGUOUS_SENDER
from tests.conftest import sandbox_settings

ADELE, LYNNE, MEGAN = ("adele.vance@contoso.com", "lynne.robbins@contoso.com",
                       "megan.bowen@contoso.com")
GRACE, PATTI, ISAIAH = ("grace.taylor@contoso.com", "patti.fernandez@contoso.com",
                        "isaiah.langer@contoso.com")
GUEST = "pradeep.gupta@fabrikam.com"
MIRIAM, NESTOR = "miriam.graham@contoso.com", "nestor.wilke@contoso.com"
# Graph's password reset: PATCH /users/{id} with a passwordProfile.
RESET = r"^/v1\.0/users/[^/]+$"


@dataclass
class Tenant:
    """One scenario's sandbox tenant, journal and application."""

    url: str
    sandbox: SandboxTenant
    db: Path
    app: Application | None = None

    def start(self, **changes: Any) -> Application:
        settings = sandbox_settings(
            self.url, self.sandbox, self.db, sweep_restricted_users=False,
            http_max_retries=0, protected_group_ids=frozenset({BREAK_GLASS_GROUP_ID}),
            **changes)
        self.app = bootstrap(settings)
        return self.app

    async def request(self, user: str, **fields: Any) -> None:
        """What `remediation enqueue --user USER [--force] [--alert-id ID]` queues."""
        assert self.app is not None
        fields.setdefault("requested_by", "soc analyst")
        await self.app.requests.send(RemediationRequest(user=user, source="manual",
                                                        request_id=uuid.uuid4().hex, **fields))

    async def run(self) -> None:
        assert self.app is not None
        await self.app.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=True)

    async def cases(self) -> list[Case]:
        """Every case that is not a request merged into another, oldest first."""
        assert self.app is not None
        cases = await self.app.journal.list_cases()
        return [case for case in reversed(cases) if case.state is not CaseState.SKIPPED]

    async def escalated(self, user: str, reason: str, kind: Kind) -> Case:
        """The account's one case, escalated with ``reason`` in its reason, of ``kind``."""
        [case] = [c for c in await self.cases() if c.user == user]
        return escalated_as(case, reason, kind)

    async def after(self, escalated: Case) -> list[Case]:
        """The escalated case as it is now, then the cases opened after it."""
        cases = await self.cases()
        at = [c.case_id for c in cases].index(escalated.case_id)
        return cases[at:]

    def resets(self, user: str) -> int:
        return len(self.sandbox.user(user).password_changes)

    def writes(self, user: str) -> list[str]:
        return [f"{r.method} {r.cmdlet or r.path}" for r in self.sandbox.requests()
                if r.target == user and r.method in ("PATCH", "POST", "PUT", "DELETE")
                and r.cmdlet not in ("Get-BlockedSenderAddress", "Get-Mailbox")]


def escalated_as(case: Case, reason: str, kind: Kind) -> Case:
    assert case.state is CaseState.ESCALATED, show([case])
    assert reason in (case.reason or ""), case.reason
    [step] = [step for step in case.steps if step.name == "escalated"]
    assert step.data["kind"] == kind.value, (step.data, kind)
    return case


def show(cases: list[Case]) -> list[tuple[str, str, str | None]]:
    return [(case.user, case.state.value, case.reason) for case in cases]


async def stays_escalated(t: Tenant, case: Case, user: str) -> None:
    """"Handle it by hand; the case stays escalated": a plain manual request is recorded on
    the escalated case and changes nothing in the tenant."""
    before, opened = t.writes(user), len(await t.cases())
    await t.request(user)
    await t.run()
    assert len(await t.cases()) == opened, show(await t.cases())
    now = (await t.after(case))[0]
    assert now.state is CaseState.ESCALATED and now.reason == case.reason, show([now])
    assert any(step.name == "merged" for step in now.steps), [s.name for s in now.steps]
    assert t.writes(user) == before


async def forced_again(t: Tenant, case: Case, user: str, resets: int,
                       **fields: Any) -> Case:
    """"--force": a new case opens the account's next episode, journaled as forced, and
    ends verified; the escalated case stays as it was."""
    await t.request(user, force=True, **fields)
    await t.run()
    old, *new = await t.after(case)
    assert old.state is CaseState.ESCALATED and old.reason == case.reason
    assert [c.state for c in new] == [CaseState.VERIFIED], show(new)
    step = next(s for s in new[0].steps if s.name == "new_episode")
    assert step.data["why"] == "forced", step.detail
    assert t.resets(user) == resets
    return new[0]


# -- the scenarios: one per row of the README's table -------------------------------------


async def protected_group(t: Tenant) -> None:
    t.start()
    await t.request(GRACE)
    await t.run()
    case = await t.escalated(GRACE, "protected group", Kind.GUARDRAIL)
    await stays_escalated(t, case, GRACE)
    # --force opens a new case that the guardrails stop again, changing nothing.
    await t.request(GRACE, force=True)
    await t.run()
    [_, again] = await t.after(case)
    escalated_as(again, "protected group", Kind.GUARDRAIL)
    assert t.writes(GRACE) == []


async def administrator(t: Tenant) -> None:
    t.start()
    await t.request(PATTI)
    await t.run()
    case = await t.escalated(PATTI, "holds directory role(s)", Kind.GUARDRAIL)
    await stays_escalated(t, case, PATTI)


async def guest(t: Tenant) -> None:
    t.start()
    await t.request(GUEST)
    await t.run()
    case = await t.escalated(GUEST, "guest account", Kind.GUARDRAIL)
    await stays_escalated(t, case, GUEST)


async def on_premises(t: Tenant) -> None:
    t.start()
    await t.request(ISAIAH)
    await t.run()
    case = await t.escalated(ISAIAH, "reset the password on-premises", Kind.ON_PREMISES)
    assert t.sandbox.user(ISAIAH).sessions_revoked == 1
    await stays_escalated(t, case, ISAIAH)
    assert t.sandbox.user(ISAIAH).sessions_revoked == 1
    await t.request(ISAIAH, force=True)
    await t.run()
    [_, again] = await t.after(case)
    escalated_as(again, "reset the password on-premises", Kind.ON_PREMISES)
    assert t.sandbox.user(ISAIAH).sessions_revoked == 2
    assert t.resets(ISAIAH) == 0


async def circuit_breaker(t: Tenant) -> None:
    t.start(max_remediations_per_hour=0)
    await t.request(ADELE)
    await t.run()
    case = await t.escalated(ADELE, "circuit breaker open", Kind.CIRCUIT_BREAKER)
    # `approve` moves only a case waiting for approval.
    assert t.app is not None
    with pytest.raises(InvalidRequest, match=f"case {case.case_id} is escalated, not "
                                             "awaiting approval"):
        await _send_approval(t.app.settings, case.case_id, "soc lead")
    await stays_escalated(t, case, ADELE)
    forced = await forced_again(t, case, ADELE, resets=1)
    breaker = forced.done("circuit_breaker")
    assert breaker is not None and "bypassed" in breaker.detail


async def no_account(t: Tenant) -> None:
    t.start()
    typo = "adele.vanse@contoso.com"
    await t.request(typo)
    await t.run()
    case = await t.escalated(typo, "not found in the directory", Kind.NO_ACCOUNT)
    await t.request(ADELE)
    await t.run()
    assert [c.state for c in await t.after(case)] == [CaseState.ESCALATED, CaseState.VERIFIED]
    assert t.resets(ADELE) == 1


async def refused(t: Tenant) -> None:
    t.sandbox.app_has_user_administrator = False  # the role was never granted
    t.start()
    await t.request(ADELE)
    await t.run()
    case = await t.escalated(ADELE, "Authorization_RequestDenied", Kind.REFUSED)
    t.sandbox.app_has_user_administrator = True  # granted (infra/grant-permissions.sh)
    await forced_again(t, case, ADELE, resets=1)


async def unblock_failed(t: Tenant) -> None:
    t.sandbox.user(ADELE).unblock_limit_reached = True
    t.start()
    await t.request(ADELE)
    await t.run()
    case = await t.escalated(ADELE, "unblock limit", Kind.UNBLOCK_FAILED)
    assert t.resets(ADELE) == 1
    await stays_escalated(t, case, ADELE)
    assert t.resets(ADELE) == 1


async def gave_up(t: Tenant) -> None:
    t.sandbox.add_fault(Fault(status=503, method="PATCH", path=RESET, times=2))
    t.start(max_delivery_count=2)
    await t.request(ADELE)
    await t.run()
    case = await t.escalated(ADELE, "remediation gave up after 2 deliveries", Kind.GAVE_UP)
    await stays_escalated(t, case, ADELE)
    await forced_again(t, case, ADELE, resets=1)


async def reblocked(t: Tenant) -> None:
    t.start()
    await t.request(MEGAN)
    await t.run()
    case = await t.escalated(MEGAN, "re-blocked at", Kind.REBLOCKED)
    await forced_again(t, case, MEGAN, resets=2)


async def still_listed(t: Tenant) -> None:
    t.sandbox.block(ADELE, behaviour=BlockBehaviour(linger_reads=1000))
    t.start()
    await t.request(ADELE)
    await t.run()
    case = await t.escalated(ADELE, "still on the Restricted users list", Kind.STILL_LISTED)
    await stays_escalated(t, case, ADELE)
    assert t.resets(ADELE) == 1


async def unverified(t: Tenant) -> None:
    app = t.start()
    await app.workflow.remediate(RemediationRequest(user=ADELE, request_id=uuid.uuid4().hex))
    # Exchange refuses every read from now on: the checks cannot be made.
    t.sandbox.add_fault(Fault(status=400, cmdlet="Get-BlockedSenderAddress", times=None,
                              code="BadRequest", message="refused"))
    await t.run()
    t.sandbox.clear_faults()
    case = await t.escalated(ADELE, "Get-BlockedSenderAddress", Kind.UNVERIFIED)
    assert ADELE not in t.sandbox.blocked_addresses()  # what a person checks by hand
    await stays_escalated(t, case, ADELE)
    assert t.resets(ADELE) == 1


async def new_evidence(t: Tenant) -> None:
    app = t.start(verify_delays=(timedelta(seconds=30),))
    await app.workflow.remediate(RemediationRequest(user=ADELE, request_id=uuid.uuid4().hex))
    raised = alert(RESTRICTED, [mailbox_evidence(ADELE)],
                   created=utc_now() + timedelta(seconds=1))
    t.sandbox.add_alert(raised)
    await app.workflow.remediate(RemediationRequest(
        user=ADELE, source="alert", alert_ids=(raised["id"],), request_id=uuid.uuid4().hex))
    case = await t.escalated(ADELE, "new evidence after the unblock", Kind.NEW_EVIDENCE)
    await app.aclose()
    t.start()  # the usual compressed delays: the forced case verifies at its first check
    forced = await forced_again(t, case, ADELE, resets=2, alert_ids=(raised["id"],))
    assert raised["id"] in forced.alert_ids
    assert t.sandbox.alert(raised["id"])["status"] == "resolved"


async def ambiguous_alert(t: Tenant) -> None:
    raised = alert(RESTRICTED, [mailbox_evidence(ADELE), mailbox_evidence(LYNNE)])
    t.sandbox.add_alert(raised)
    app = t.start()
    await app.intake.poll()
    await t.run()
    case = await t.escalated(AMBIGUOUS_SENDER, "names 2 different accounts", Kind.AMBIGUOUS_ALERT)
    # A person chose Adele. Naming the alert too changes nothing: it names another account
    # as well, so Adele's case never comments on it nor resolves it (journaled ignored).
    await t.request(ADELE, alert_ids=(raised["id"],))
    await t.run()
    cases = await t.after(case)
    assert [(c.user, c.state) for c in cases] == [
        (AMBIGUOUS_SENDER, CaseState.ESCALATED), (ADELE, CaseState.VERIFIED)], show(cases)
    assert t.resets(ADELE) == 1 and t.resets(LYNNE) == 0
    assert raised["id"] not in cases[1].alert_ids
    assert any(s.name == "alert_ignored" for s in cases[1].steps)
    # The alert stays as the escalation left it, for the person to resolve in Defender.
    assert t.sandbox.alert(raised["id"])["status"] == "inProgress"


async def stuck(t: Tenant) -> None:
    app = t.start()
    t.sandbox.add_fault(Fault(status=503, method="PATCH", path=RESET, times=1))
    # The worker died after the reset failed, before any retry was scheduled; every resume
    # the sweeper queues is lost too.
    with pytest.raises(TransientError):
        await app.workflow.remediate(RemediationRequest(user=ADELE,
                                                        request_id=uuid.uuid4().hex))
    sweeper = app.intake.sweeper
    assert sweeper is not None
    for _ in range(4):
        await sweeper.sweep(idle=True)
    case = await t.escalated(ADELE, "stuck in_progress", Kind.STUCK)
    await forced_again(t, case, ADELE, resets=1)


async def handed_over(t: Tenant) -> None:
    """New evidence while a person owns an escalated case's block: a case of its own."""
    t.start()
    await t.request(GRACE)
    await t.run()
    first = await t.escalated(GRACE, "protected group", Kind.GUARDRAIL)
    raised = alert(RESTRICTED, [mailbox_evidence(GRACE)],
                   created=utc_now() + timedelta(seconds=1))
    t.sandbox.add_alert(raised)
    await t.request(GRACE, alert_ids=(raised["id"],))
    await t.run()
    [_, case] = await t.after(first)
    escalated_as(case, "a human owns it", Kind.NEW_EVIDENCE)
    # The earlier case's recovery (here: by hand) is the one to follow; a manual request
    # goes to that case, which holds the account's block.
    await stays_escalated(t, first, GRACE)
    assert (await t.after(case))[0].steps == case.steps


def mail_reader_consent(t: Tenant, user: str, ago: timedelta) -> dict[str, Any]:
    """The account consents to an unverified mail-reading app ``ago`` (the attacker)."""
    account = t.sandbox.user(user)
    reader = t.sandbox.consents.add_app(ServicePrincipal("Mail Reader Pro",
                                                        publisher_name="Mail Reader Pro"))
    return give_consent(t.sandbox.consents, t.sandbox.audit_log, user_id=account.id,
                        upn=account.user_principal_name, app=reader, scope=" Mail.Read",
                        at=utc_now() - ago)


def granted(t: Tenant) -> set[str]:
    return {grant["id"] for grant in t.sandbox.consents.grants()}


async def leftover_stayed(t: Tenant) -> None:
    planted = mail_reader_consent(t, ADELE, timedelta(hours=3))
    t.sandbox.denied_permissions.add("DelegatedPermissionGrant.ReadWrite.All")
    t.start()
    await t.request(ADELE)
    await t.run()
    case = await t.escalated(ADELE, "stayed", Kind.LEFTOVER_STAYED)
    assert t.resets(ADELE) == 1 and planted["id"] in granted(t)
    assert ADELE in t.sandbox.blocked_addresses()  # the block stays until a person decides
    await stays_escalated(t, case, ADELE)
    # The table: remove it by hand (a person revokes the consent in Entra), then --force.
    t.sandbox.consents.revoke(planted["id"])
    await forced_again(t, case, ADELE, resets=2)
    assert planted["id"] not in granted(t)


async def attacker_returned(t: Tenant) -> None:
    t.start(return_action="disable")
    assert t.app is not None
    case = await t.app.workflow.remediate(RemediationRequest(
        ADELE, source="manual", request_id=uuid.uuid4().hex))
    assert case.state is CaseState.AWAITING_VERIFICATION, case.reason
    back = mail_reader_consent(t, ADELE, timedelta(0))  # after the case acted
    await t.run()
    case = await t.escalated(ADELE, "the attacker is still active", Kind.ATTACKER_RETURNED)
    assert t.sandbox.user(ADELE).account_enabled is False
    # The table: investigate, re-enable the account yourself, then --force.
    t.sandbox.user(ADELE).account_enabled = True
    await forced_again(t, case, ADELE, resets=2)
    assert back["id"] not in granted(t)
    assert t.sandbox.user(ADELE).account_enabled is True  # never re-enabled by the robot


async def disabled_account(t: Tenant) -> None:
    t.start()
    await t.request(MIRIAM)  # disabled in the seed (an administrator, or attack disruption)
    await t.run()
    case = await t.escalated(MIRIAM, "account is disabled", Kind.DISABLED_ACCOUNT)
    assert t.resets(MIRIAM) == 0 and t.sandbox.user(MIRIAM).account_enabled is False
    await stays_escalated(t, case, MIRIAM)
    # The table: a person finds out why, secures and re-enables it, then --force.
    t.sandbox.user(MIRIAM).account_enabled = True
    await forced_again(t, case, MIRIAM, resets=1)


async def shared_mailbox(t: Tenant) -> None:
    t.start()
    await t.request(SHARED_MAILBOX)
    await t.run()
    case = await t.escalated(SHARED_MAILBOX, f"{NESTOR} (SendAs)", Kind.SHARED_MAILBOX)
    assert t.resets(SHARED_MAILBOX) == 0
    await stays_escalated(t, case, SHARED_MAILBOX)
    # The table: secure each delegate it names (a request each), then lift the block by hand.
    await t.request(NESTOR)
    await t.run()
    [nestor] = [c for c in await t.cases() if c.user == NESTOR]
    assert nestor.state is CaseState.VERIFIED, show([nestor])
    assert SHARED_MAILBOX in t.sandbox.blocked_addresses()  # never lifted by the robot


async def rate_limit(t: Tenant) -> None:
    t.start()
    await t.request(NEWSLETTER)
    await t.run()
    case = await t.escalated(NEWSLETTER, "releases itself", Kind.RATE_LIMIT)
    assert t.resets(NEWSLETTER) == 0 and NEWSLETTER in t.sandbox.blocked_addresses()
    await stays_escalated(t, case, NEWSLETTER)
    # The table: wait (it releases itself), or, if the sending was not the owner's, --force.
    await forced_again(t, case, NEWSLETTER, resets=1)


class Later:
    """The clock of a worker ``ahead`` of now: the sweeper a day on, without waiting a day."""

    def __init__(self, ahead: timedelta) -> None:
        self._ahead = ahead

    def now(self) -> datetime:
        return utc_now() + self._ahead


async def approval_expired(t: Tenant) -> None:
    app = t.start(mode="approve")
    await app.requests.send(RemediationRequest(user=ADELE, source="alert",
                                               request_id=uuid.uuid4().hex))
    await t.run()
    [waiting] = await t.cases()
    assert waiting.state is CaseState.AWAITING_APPROVAL, show([waiting])
    sweeper = app.intake.sweeper
    assert sweeper is not None and sweeper.approval_timeout == timedelta(hours=24)
    await replace(sweeper, clock=Later(timedelta(hours=23))).sweep()  # not yet
    assert [c.state for c in await t.cases()] == [CaseState.AWAITING_APPROVAL]
    await replace(sweeper, clock=Later(timedelta(hours=24, minutes=1))).sweep()
    case = await t.escalated(ADELE, "within APPROVAL_TIMEOUT (24h)", Kind.APPROVAL_EXPIRED)
    assert t.resets(ADELE) == 0 and ADELE in t.sandbox.blocked_addresses()
    # `approve` moves only a case waiting for approval.
    with pytest.raises(InvalidRequest, match=f"case {case.case_id} is escalated, not "
                                             "awaiting approval"):
        await _send_approval(app.settings, case.case_id, "soc lead")
    await stays_escalated(t, case, ADELE)
    # The table: decide now. To remediate, --force (a manual request proceeds at once) ...
    await forced_again(t, case, ADELE, resets=1)
    # ... or, handled by hand, close it: the record stays, closed.
    closed = await app.workflow.close_escalated(case.case_id, by="soc lead",
                                                reason="remediated by the forced case")
    assert closed.case.state is CaseState.CLOSED
    assert closed.case.escalation_kind == Kind.APPROVAL_EXPIRED.value



UNIT = "4d819ce9-9257-44a5-8d6e-2f1b3c5a7e90"


async def out_of_scope(t: Tenant) -> None:
    # The app may change only the unit's members (User Administrator over the unit);
    # Adele is not one.
    t.sandbox.admin_units.add(UNIT, "Remediation scope", set())
    t.sandbox.app_user_administrator_scopes = (f"/administrativeUnits/{UNIT}",)
    t.sandbox.app_directory_readers = True
    t.start(scope_administrative_unit_id=UNIT)
    await t.request(ADELE)
    await t.run()
    case = await t.escalated(ADELE, f"not a member of administrative unit {UNIT}",
                             Kind.OUT_OF_SCOPE)
    assert t.resets(ADELE) == 0 and ADELE in t.sandbox.blocked_addresses()
    assert t.writes(ADELE) == []
    await stays_escalated(t, case, ADELE)
    # The table: if it belongs in the unit, add it and --force.
    t.sandbox.admin_units.add_member(UNIT, t.sandbox.user(ADELE).id)
    await forced_again(t, case, ADELE, resets=1)

Scenario = Callable[[Tenant], Awaitable[None]]
# Each scenario, by the kind it escalates with (several rows may share one kind).
SCENARIOS: dict[str, tuple[Kind, Scenario]] = {
    "protected group": (Kind.GUARDRAIL, protected_group),
    "administrator": (Kind.GUARDRAIL, administrator),
    "guest": (Kind.GUARDRAIL, guest),
    "on-premises": (Kind.ON_PREMISES, on_premises),
    "circuit breaker": (Kind.CIRCUIT_BREAKER, circuit_breaker),
    "no account": (Kind.NO_ACCOUNT, no_account),
    "refused": (Kind.REFUSED, refused),
    "unblock failed": (Kind.UNBLOCK_FAILED, unblock_failed),
    "gave up": (Kind.GAVE_UP, gave_up),
    "re-blocked": (Kind.REBLOCKED, reblocked),
    "still listed": (Kind.STILL_LISTED, still_listed),
    "unverified": (Kind.UNVERIFIED, unverified),
    "new evidence": (Kind.NEW_EVIDENCE, new_evidence),
    "handed over": (Kind.NEW_EVIDENCE, handed_over),
    "ambiguous alert": (Kind.AMBIGUOUS_ALERT, ambiguous_alert),
    "stuck": (Kind.STUCK, stuck),
    "leftover stayed": (Kind.LEFTOVER_STAYED, leftover_stayed),
    "attacker returned": (Kind.ATTACKER_RETURNED, attacker_returned),
    "disabled account": (Kind.DISABLED_ACCOUNT, disabled_account),
    "shared mailbox": (Kind.SHARED_MAILBOX, shared_mailbox),
    "rate limit": (Kind.RATE_LIMIT, rate_limit),
    "approval expired": (Kind.APPROVAL_EXPIRED, approval_expired),
    "out of scope": (Kind.OUT_OF_SCOPE, out_of_scope),
}


def test_every_kind_of_escalation_has_a_scenario() -> None:
    assert {kind for kind, _ in SCENARIOS.values()} == set(Kind)


@pytest.mark.parametrize("scenario", [scenario for _, scenario in SCENARIOS.values()],
                         ids=SCENARIOS.keys())
async def test_the_documented_recovery_works(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, scenario: Scenario) -> None:
    t = Tenant(sandbox_url, tenant, tmp_path / "state.db")
    try:
        await scenario(t)
    finally:
        if t.app is not None:
            await t.app.aclose()

