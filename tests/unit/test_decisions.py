"""A person's decisions on a case (issue 16, point 1) against in-memory fakes: a waiting case
rejected, an escalated one closed, approvals that expire, and the "approval needed" notice.
Each decision is journaled with who and why, refused with a reason where the case's state
does not allow it, and exactly one of two decisions racing over one waiting case wins."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from remediation.domain.case_states import WORKING, Event, ForbiddenTransition, next_state
from remediation.domain.cases import Case, CaseState
from remediation.domain.errors import InvalidRequest
from remediation.domain.escalation_kinds import EscalationKind
from remediation.domain.requests import RemediationRequest
from remediation.service.decisions import CLOSE_REFUSED, REJECT_REFUSED
from remediation.service.messages import AlertUpdate, Approval, VerificationCheck
from remediation.service.sweeper import Sweeper
from remediation.service.workflow import APPROVAL_REFUSED, RemediationWorkflow, WorkflowSettings
from tests.fakes import (
    FakeAlertNotifier,
    FakeAlertSource,
    FakeAlertUpdater,
    FakeTenant,
    FakeWebhook,
)
from tests.sweeping import FakeRequestsQueue

ROB = "rob@contoso.com"
GRACE = "grace@contoso.com"
BREAK_GLASS = "0b5c3f1e-0000-4000-8000-00000000b1a5"
DELAYS = (timedelta(hours=1), timedelta(hours=4), timedelta(hours=24))
TIMEOUT = timedelta(hours=24)
WHY = "known bulk mailing, the owner sent it"


@dataclass
class Harness:
    tenant: FakeTenant
    flow: RemediationWorkflow
    notifier: FakeAlertNotifier
    alerts: FakeAlertUpdater
    webhook: FakeWebhook
    source: FakeAlertSource

    async def waiting(self, user: str = ROB, alert_id: str = "fa-1") -> Case:
        self.source.stand_in_created[alert_id] = self.tenant.clock.now() - timedelta(minutes=20)
        case = await self.flow.remediate(RemediationRequest(
            user=user, source="alert", alert_ids=(alert_id,), request_id=f"alert-{alert_id}"))
        assert case.state is CaseState.AWAITING_APPROVAL, case.reason
        return case

    async def deliver(self) -> list[Case]:
        """Deliver every alert update queued (and those the deliveries queue)."""
        delivered = []
        while self.notifier.updates:
            queued, self.notifier.updates = self.notifier.updates, []
            delivered += [await self.flow.update_alerts(update) for update in queued]
        return delivered

    async def case(self, case_id: str) -> Case:
        case = await self.tenant.journal.get_case(case_id)
        assert case is not None
        return case

    def writes(self) -> list[str]:
        return [event for event in self.tenant.events
                if event in ("reset_password", "revoke_sessions", "unblock", "disable_rule")]


def harness(mode: str = "approve", **settings: Any) -> Harness:
    tenant = FakeTenant()
    for user in (ROB, GRACE):
        tenant.directory.add_user(user)
        tenant.exchange.block(user, created=tenant.clock.now() - timedelta(minutes=30))
    tenant.directory.set_memberships(GRACE, group_ids=(BREAK_GLASS,))
    notifier, alerts, webhook = FakeAlertNotifier(), FakeAlertUpdater(), FakeWebhook()
    source = FakeAlertSource(stand_in_sender=ROB)
    flow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=DELAYS, mode=mode,
                                  protected_group_ids=frozenset({BREAK_GLASS}),
                                  approval_timeout=TIMEOUT, **settings),
        alerts=alerts, notifier=notifier, webhook=webhook, alert_source=source)
    return Harness(tenant, flow, notifier, alerts, webhook, source)


@pytest.fixture
def h() -> Harness:
    return harness()


def names(case: Case) -> list[str]:
    return [step.name for step in case.steps]


# -- the state table --------------------------------------------------------------------------


def test_reject_leaves_only_a_waiting_case_and_close_only_an_escalated_one() -> None:
    assert next_state(CaseState.AWAITING_APPROVAL, Event.REJECT) is CaseState.REJECTED
    assert next_state(CaseState.ESCALATED, Event.CLOSE) is CaseState.CLOSED
    for state in set(CaseState) - {CaseState.AWAITING_APPROVAL}:
        with pytest.raises(ForbiddenTransition):
            next_state(state, Event.REJECT)
    for state in set(CaseState) - {CaseState.ESCALATED}:
        with pytest.raises(ForbiddenTransition):
            next_state(state, Event.CLOSE)
    # Closed is final, and an escalated case stays final (nothing but a person moves it).
    assert CaseState.CLOSED.is_final and CaseState.ESCALATED.is_final
    assert CaseState.ESCALATED not in WORKING and CaseState.CLOSED not in WORKING


# -- reject -----------------------------------------------------------------------------------


async def test_a_rejected_case_ends_rejected_with_who_and_why_and_nothing_changes(
        h: Harness) -> None:
    waiting = await h.waiting()
    await h.deliver()  # the approval notice

    decided = await h.flow.reject_waiting(waiting.case_id, by="alice@contoso.com", reason=WHY)

    case = await h.case(waiting.case_id)
    assert decided.now and decided.case.case_id == case.case_id
    assert case.state is CaseState.REJECTED
    assert case.decided_by == "alice@contoso.com"
    assert case.reason == f"rejected by alice@contoso.com: {WHY}"
    assert case.ended_at == h.tenant.clock.now()
    [step] = [step for step in case.steps if step.name == "rejected"]
    assert step.data == {"decided_by": "alice@contoso.com", "reason": WHY}
    assert h.writes() == []  # nothing changed in the tenant
    assert h.tenant.exchange.listed(ROB)

    # Told: the Defender alert gets a comment (its status left alone), the channel a post.
    await h.deliver()
    [comment] = h.alerts.comments_on("fa-1")
    assert "rejected by alice@contoso.com" in comment and WHY in comment
    assert "nothing was changed" in comment.lower()
    assert h.alerts.updates_of("fa-1") == []
    posted = json.dumps(h.webhook.payloads[-1])
    assert "rejected by alice@contoso.com" in posted and WHY in posted


@pytest.mark.parametrize("state", [CaseState.IN_PROGRESS, CaseState.AWAITING_VERIFICATION,
                                   CaseState.VERIFIED, CaseState.ESCALATED,
                                   CaseState.SKIPPED, CaseState.PLANNED])
async def test_only_a_waiting_case_can_be_rejected(state: CaseState) -> None:
    h = harness(mode="enforce")
    case = await seeded(h, state)

    with pytest.raises(InvalidRequest, match=f"case {case.case_id} is {state.value}, not "
                                             "awaiting approval"):
        await h.flow.reject_waiting(case.case_id, by="alice", reason=WHY)

    assert (await h.case(case.case_id)).state is state


async def seeded(h: Harness, state: CaseState) -> Case:
    from tests.journal_cases import make_case, seed

    case = make_case("20240501-0000abcd", state=state, at=h.tenant.clock.now())
    await seed(h.tenant.journal, case)
    return case


async def test_an_unknown_case_or_a_request_refused_at_the_door_is_not_rejected(
        h: Harness) -> None:
    with pytest.raises(InvalidRequest, match="no case '20990101-deadbeef' in the journal"):
        await h.flow.reject_waiting("20990101-deadbeef", by="alice", reason=WHY)
    invalid = await h.flow.reject("not-an-address", "not an email address or object id")
    with pytest.raises(InvalidRequest, match=r"is rejected, not awaiting approval"):
        await h.flow.reject_waiting(invalid.case_id, by="alice", reason=WHY)


@pytest.mark.parametrize(("by", "reason", "said"), [
    ("", WHY, "--by is blank"),
    ("alice\x1b[2J", WHY, "--by contains control characters"),
    ("a" * 257, WHY, "--by is longer than 256 characters"),
    ("alice", "  ", "--reason is blank"),
    ("alice", "why\r\nforged line", "--reason contains control characters"),
    ("alice", "x" * 1001, "--reason is longer than 1000 characters"),
])
async def test_who_and_why_are_checked_like_any_text_from_outside(
        h: Harness, by: str, reason: str, said: str) -> None:
    waiting = await h.waiting()

    with pytest.raises(InvalidRequest, match=said):
        await h.flow.reject_waiting(waiting.case_id, by=by, reason=reason)

    assert (await h.case(waiting.case_id)).state is CaseState.AWAITING_APPROVAL


async def test_a_secret_in_the_reason_is_never_journaled(h: Harness) -> None:
    waiting = await h.waiting()
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl"

    await h.flow.reject_waiting(waiting.case_id, by="alice", reason=f"pasted {token}")

    assert token not in h.tenant.journal.dump()


async def test_rejecting_again_says_so_and_changes_nothing(h: Harness) -> None:
    waiting = await h.waiting()
    await h.flow.reject_waiting(waiting.case_id, by="alice", reason=WHY)
    await h.deliver()
    posts = len(h.webhook.payloads)

    again = await h.flow.reject_waiting(waiting.case_id, by="bob", reason="me too")

    assert not again.now
    case = await h.case(waiting.case_id)
    assert (case.decided_by, case.reason) == ("alice", f"rejected by alice: {WHY}")
    await h.deliver()
    assert len(h.webhook.payloads) == posts


async def test_an_approval_after_a_reject_changes_nothing_and_is_journaled_refused(
        h: Harness) -> None:
    waiting = await h.waiting()
    await h.flow.reject_waiting(waiting.case_id, by="alice", reason=WHY)

    case = await h.flow.approve(Approval(waiting.case_id, ROB, "bob"))

    assert case.state is CaseState.REJECTED
    [refused] = [step for step in case.steps if step.name == APPROVAL_REFUSED]
    assert refused.detail == (f"approval by bob refused: case {waiting.case_id} was rejected "
                              f"by alice at {case.ended_at:%Y-%m-%d %H:%M:%S} UTC; nothing "
                              "was done")
    assert "approved" not in names(case)
    assert h.writes() == []


async def test_a_manual_request_after_a_reject_is_no_approval(h: Harness) -> None:
    """A plain manual request merges into the rejected case (a person owns its block) and
    changes nothing; ``--force`` is a person insisting: a new case, remediated."""
    waiting = await h.waiting()
    await h.flow.reject_waiting(waiting.case_id, by="alice", reason=WHY)

    h.source.stand_in_created["fa-2"] = h.tenant.clock.now() - timedelta(minutes=20)
    merged = await h.flow.remediate(RemediationRequest(
        user=ROB, source="manual", requested_by="helpdesk", request_id="manual-1"))
    again = await h.flow.remediate(RemediationRequest(
        user=ROB, source="alert", alert_ids=("fa-2",), request_id="alert-fa-2"))

    assert merged.case_id == again.case_id == waiting.case_id
    assert (await h.case(waiting.case_id)).state is CaseState.REJECTED
    # The requests' own records say "merged into case ...", as for an escalated case.
    assert [c.case_id for c in await h.tenant.journal.list_cases()
            if c.state is not CaseState.SKIPPED] == [waiting.case_id]
    assert h.writes() == []

    forced = await h.flow.remediate(RemediationRequest(
        user=ROB, source="manual", force=True, requested_by="helpdesk", request_id="forced-1"))
    assert forced.case_id != waiting.case_id
    assert forced.state is CaseState.AWAITING_VERIFICATION
    assert h.tenant.directory.count("reset_password") == 1


# -- the race: reject and approve over one waiting case ---------------------------------------


class Interleaved:
    """``journal`` with ``before`` run once, just before the first save of a case into
    ``state``: another worker's decision landing between this one's read and its write."""

    def __init__(self, journal: Any, state: CaseState,
                 before: Callable[[], Awaitable[object]]) -> None:
        self._journal = journal
        self._state = state
        self._before: Callable[[], Awaitable[object]] | None = before

    def __getattr__(self, name: str) -> Any:
        return getattr(self._journal, name)

    async def update_case(self, case: Case) -> Case:
        if case.state is self._state and self._before is not None:
            before, self._before = self._before, None
            await before()
        return await self._journal.update_case(case)


def interleaved(h: Harness, state: CaseState,
                before: Callable[[], Awaitable[object]]) -> RemediationWorkflow:
    """A second worker's workflow on the same journal, interleaved as ``Interleaved``."""
    journal = Interleaved(h.tenant.journal, state, before)
    return RemediationWorkflow(
        directory=h.tenant.directory, exchange=h.tenant.exchange, journal=journal,
        scheduler=h.tenant.scheduler, clock=h.tenant.clock,
        settings=WorkflowSettings(verify_delays=DELAYS, mode="approve"),
        alerts=h.alerts, notifier=h.notifier, webhook=h.webhook, alert_source=h.source)


async def test_a_reject_landing_while_an_approval_is_processed_wins_and_the_approval_is_refused(
        h: Harness) -> None:
    waiting = await h.waiting()
    approving = interleaved(h, CaseState.IN_PROGRESS, lambda: h.flow.reject_waiting(
        waiting.case_id, by="alice", reason=WHY))

    case = await approving.approve(Approval(waiting.case_id, ROB, "bob"))

    assert case.state is CaseState.REJECTED and case.decided_by == "alice"
    refused = [step for step in case.steps if step.name == APPROVAL_REFUSED]
    assert len(refused) == 1 and "was rejected by alice" in refused[0].detail
    assert "approved" not in names(case)
    assert h.writes() == []


async def test_an_approval_landing_while_a_reject_is_decided_wins_and_the_reject_is_refused(
        h: Harness) -> None:
    waiting = await h.waiting()
    rejecting = interleaved(h, CaseState.REJECTED, lambda: h.flow.approve(
        Approval(waiting.case_id, ROB, "bob")))

    with pytest.raises(InvalidRequest) as refused:
        await rejecting.reject_waiting(waiting.case_id, by="alice", reason=WHY)

    case = await h.case(waiting.case_id)
    assert case.state is CaseState.AWAITING_VERIFICATION and case.decided_by is None
    assert refused.value.reason == (
        f"reject of case {waiting.case_id} refused: it was approved meanwhile (approved by "
        "bob) and is awaiting_verification; nothing was rejected")
    [noted] = [step for step in case.steps if step.name == REJECT_REFUSED]
    assert noted.detail == refused.value.reason
    assert h.tenant.directory.count("reset_password") == 1


async def test_two_rejects_racing_end_in_one_decision(h: Harness) -> None:
    waiting = await h.waiting()
    second = interleaved(h, CaseState.REJECTED, lambda: h.flow.reject_waiting(
        waiting.case_id, by="alice", reason=WHY))

    again = await second.reject_waiting(waiting.case_id, by="bob", reason="also no")

    assert not again.now
    case = await h.case(waiting.case_id)
    assert case.decided_by == "alice"
    assert [step.data["decided_by"] for step in case.steps if step.name == "rejected"] == [
        "alice"]


# -- what a rejected case refuses -------------------------------------------------------------


async def test_a_rejected_case_refuses_verification_checks_and_start_notices(
        h: Harness) -> None:
    waiting = await h.waiting()
    await h.flow.reject_waiting(waiting.case_id, by="alice", reason=WHY)

    checked = await h.flow.verify(VerificationCheck(waiting.case_id, ROB, 0))
    started = await h.flow.update_alerts(AlertUpdate(waiting.case_id, ROB, "start", 1))

    assert started.state is CaseState.REJECTED
    assert [s.detail for s in checked.steps if s.name == "verification_refused"] == [
        f"verification check refused: case {waiting.case_id} was rejected by alice at "
        f"{checked.ended_at:%Y-%m-%d %H:%M:%S} UTC; nothing was done"]
    assert any(s.name == "alert_update_refused" for s in started.steps)
    assert h.writes() == [] and h.alerts.updates == []


# -- close ------------------------------------------------------------------------------------


async def escalated(h: Harness) -> Case:
    h.source.stand_in_sender = GRACE
    h.source.stand_in_created["fa-g"] = h.tenant.clock.now() - timedelta(minutes=20)
    flow = harness_enforcing(h)
    case = await flow.remediate(RemediationRequest(
        user=GRACE, source="alert", alert_ids=("fa-g",), request_id="alert-fa-g"))
    assert case.state is CaseState.ESCALATED, case.reason
    await h.deliver()
    return case


def harness_enforcing(h: Harness) -> RemediationWorkflow:
    return RemediationWorkflow(
        directory=h.tenant.directory, exchange=h.tenant.exchange, journal=h.tenant.journal,
        scheduler=h.tenant.scheduler, clock=h.tenant.clock,
        settings=WorkflowSettings(verify_delays=DELAYS,
                                  protected_group_ids=frozenset({BREAK_GLASS})),
        alerts=h.alerts, notifier=h.notifier, webhook=h.webhook, alert_source=h.source)


async def test_an_escalated_case_a_person_handled_ends_closed(h: Harness) -> None:
    case = await escalated(h)
    escalated_at, kind, posts = case.ended_at, case.escalation_kind, len(h.webhook.payloads)
    h.tenant.clock.advance(hours=3)

    decided = await h.flow.close_escalated(case.case_id, by="bob", reason="reset by phone")

    closed = await h.case(case.case_id)
    assert decided.now and closed.state is CaseState.CLOSED
    assert (closed.decided_by, closed.reason) == ("bob", "closed by bob: reset by phone")
    # When it ended and why it escalated stay as they were: the record of what happened.
    assert (closed.ended_at, closed.escalation_kind) == (escalated_at, kind)
    [step] = [step for step in closed.steps if step.name == "closed"]
    assert step.at == h.tenant.clock.now()
    await h.deliver()
    comments = h.alerts.comments_on("fa-g")
    assert "closed by bob" in comments[-1] and "reset by phone" in comments[-1]
    # Comment only: the robot never classifies an alert on a person's behalf.
    assert [u for u in h.alerts.updates_of("fa-g") if u.get("status") == "resolved"] == []
    assert len(h.webhook.payloads) == posts + 1
    assert "closed by bob" in json.dumps(h.webhook.payloads[-1])

    again = await h.flow.close_escalated(case.case_id, by="carol", reason="again")
    assert not again.now and (await h.case(case.case_id)).decided_by == "bob"


@pytest.mark.parametrize("state", [CaseState.AWAITING_APPROVAL, CaseState.IN_PROGRESS,
                                   CaseState.VERIFIED, CaseState.REJECTED,
                                   CaseState.SKIPPED])
async def test_only_an_escalated_case_can_be_closed(state: CaseState) -> None:
    h = harness()
    case = await seeded(h, state)

    with pytest.raises(InvalidRequest, match=f"case {case.case_id} is {state.value}, not "
                                             "escalated"):
        await h.flow.close_escalated(case.case_id, by="bob", reason="done")

    assert CLOSE_REFUSED not in names(await h.case(case.case_id))


async def test_a_closed_case_keeps_its_block_for_the_person(h: Harness) -> None:
    case = await escalated(h)
    await h.flow.close_escalated(case.case_id, by="bob", reason="handled")

    merged = await harness_enforcing(h).remediate(RemediationRequest(
        user=GRACE, source="manual", request_id="manual-g"))

    assert merged.case_id == case.case_id and merged.state is CaseState.CLOSED
    assert h.writes() == []


# -- approval needed, and approvals that expire -----------------------------------------------


async def test_a_case_that_starts_waiting_posts_the_commands_once(h: Harness) -> None:
    waiting = await h.waiting()

    delivered = await h.deliver()
    again = await h.flow.update_alerts(AlertUpdate(waiting.case_id, ROB, "approval", 0))

    [post] = h.webhook.payloads
    text = json.dumps(post)
    assert f"remediation approve {waiting.case_id} --by" in text
    assert f"remediation reject {waiting.case_id} --by" in text
    assert "APPROVAL_TIMEOUT" in text
    assert delivered[-1].done("webhook:approval") is not None
    assert again.done("webhook:approval") is not None and len(h.webhook.payloads) == 1
    # No Defender comment: "resetting the password..." comes only once it acts.
    assert h.alerts.comments == []

    # Waiting again (a second alert merged, a case sent back to wait) posts nothing more.
    await h.waiting(alert_id="fa-2")
    await h.deliver()
    assert len(h.webhook.payloads) == 1


async def test_without_a_webhook_nothing_is_queued_for_a_waiting_case() -> None:
    h = harness()
    flow = RemediationWorkflow(
        directory=h.tenant.directory, exchange=h.tenant.exchange, journal=h.tenant.journal,
        scheduler=h.tenant.scheduler, clock=h.tenant.clock,
        settings=WorkflowSettings(verify_delays=DELAYS, mode="approve"),
        alerts=h.alerts, notifier=h.notifier, alert_source=h.source)
    h.flow = flow
    await h.waiting()
    assert h.notifier.updates == []


def sweeper(h: Harness, timeout: timedelta | None = TIMEOUT) -> Sweeper:
    return Sweeper(journal=h.tenant.journal, workflow=h.flow, resumes=FakeRequestsQueue(),
                   clock=h.tenant.clock, session_for=lambda user: user,
                   approval_timeout=timeout)


async def test_a_case_waiting_longer_than_the_approval_timeout_escalates(h: Harness) -> None:
    waiting = await h.waiting()
    h.tenant.clock.advance(TIMEOUT - timedelta(minutes=1))
    assert (await sweeper(h).sweep(idle=True)).escalated == []
    assert (await h.case(waiting.case_id)).state is CaseState.AWAITING_APPROVAL

    h.tenant.clock.advance(minutes=2)
    report = await sweeper(h).sweep()

    case = await h.case(waiting.case_id)
    assert report.escalated == [waiting.case_id]
    assert case.state is CaseState.ESCALATED
    assert case.escalation_kind == EscalationKind.APPROVAL_EXPIRED.value
    assert case.reason is not None and "APPROVAL_TIMEOUT (24h)" in case.reason
    assert "nothing was changed" in case.reason
    assert h.writes() == []
    # An approval that comes later changes nothing, and says why.
    late = await h.flow.approve(Approval(waiting.case_id, ROB, "bob"))
    assert late.state is CaseState.ESCALATED and APPROVAL_REFUSED in names(late)
    assert h.writes() == []


async def test_without_a_timeout_a_waiting_case_waits(h: Harness) -> None:
    waiting = await h.waiting()
    h.tenant.clock.advance(days=30)

    assert (await sweeper(h, timeout=None).sweep(idle=True)).escalated == []
    assert (await h.case(waiting.case_id)).state is CaseState.AWAITING_APPROVAL


# -- the sweep of the Restricted users list ---------------------------------------------------


@pytest.mark.parametrize("decision", ["reject", "close"])
async def test_the_sweep_leaves_a_block_a_person_decided_on(h: Harness, decision: str) -> None:
    """The block stays listed (nothing was lifted): a person owns it, as after an
    escalation; no new case waits for approval again, no second notice is posted."""
    from remediation.domain.alerts import DEFAULT_ALERT_TITLES
    from remediation.service.intake import Intake, IntakeSettings
    from tests.fakes import FakeRequestSender

    if decision == "reject":
        case = await h.waiting()
        await h.flow.reject_waiting(case.case_id, by="alice", reason=WHY)
        user = ROB
    else:
        case = await escalated(h)
        await h.flow.close_escalated(case.case_id, by="bob", reason="handled")
        user = GRACE
    sender = FakeRequestSender()
    intake = Intake(alerts=FakeAlertSource(), exchange=h.tenant.exchange,
                    journal=h.tenant.journal, requests=sender, workflow=h.flow,
                    clock=h.tenant.clock,
                    settings=IntakeSettings(titles=DEFAULT_ALERT_TITLES,
                                            lookback=timedelta(hours=2), sweep=True))
    h.tenant.clock.advance(days=3)

    await intake.poll()

    assert user not in sender.users()
    assert (await h.case(case.case_id)).state in (CaseState.REJECTED, CaseState.CLOSED)


async def test_a_slack_approval_notice_escapes_what_came_from_outside() -> None:
    h = harness(webhook_format="slack")
    waiting = await h.waiting()
    hostile = "<!channel> & <https://evil.example|click>"
    await h.tenant.journal.update_case(waiting.evolve(reason=f"waiting for approval: {hostile}"))

    await h.deliver()

    [post] = h.webhook.payloads
    text = post["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp;" in text
    assert f"`remediation approve {waiting.case_id} --by YOUR_NAME`" in text
    assert f"`remediation reject {waiting.case_id} --by YOUR_NAME --reason \"WHY\"`" in text


# -- APPROVAL_TIMEOUT ---------------------------------------------------------------------------


def test_the_approval_timeout_is_a_bounded_duration() -> None:
    from remediation.config import ConfigError, Settings

    assert Settings.from_env({}).approval_timeout == timedelta(hours=24)
    assert Settings.from_env({"APPROVAL_TIMEOUT": "90m"}).approval_timeout == timedelta(
        minutes=90)
    assert Settings.from_env({"APPROVAL_TIMEOUT": "7d"}).approval_timeout == timedelta(days=7)
    for bad, said in (("0s", "must be more than 0s and at most 7d"),
                      ("8d", "must be more than 0s and at most 7d"),
                      ("soon", "is not a duration"),
                      ("99999999999d", "must be more than 0s and at most 7d")):
        with pytest.raises(ConfigError, match=f"^APPROVAL_TIMEOUT: '{bad}' {said}"):
            Settings.from_env({"APPROVAL_TIMEOUT": bad})
