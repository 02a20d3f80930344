"""Decisions and notices after the hostile round on issue 16 (fix16d), against in-memory
fakes: an expiry the sweep did not store is not counted; an approval given in time holds the
approval timeout off until it arrives (and not for ever); a late escalation notice, or the
circuit breaker's grouped post, still names a case a person closed; `doctor`'s first-run
warning ends only with a case that was planned."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.escalation_kinds import EscalationKind
from remediation.domain.requests import RemediationRequest
from remediation.entrypoints import cli
from remediation.service import approval_wait
from remediation.service.approval_wait import APPROVAL_QUEUED, EXPIRY_DEFERRED
from remediation.service.breaker_posts import WEBHOOK_ESCALATED, BreakerPosts
from remediation.service.doctor import Report, Status
from remediation.service.doctor_settings import MODE, with_settings_findings
from remediation.service.journaling import PLAN, CaseRecorder
from remediation.service.messages import Approval, BreakerPost
from remediation.service.sweeper import Sweeper
from remediation.service.workflow import APPROVAL_REFUSED, RemediationWorkflow
from tests.fakes import FakeTenant, FakeWebhook
from tests.journal_cases import make_case, seed
from tests.sweeping import FakeRequestsQueue
from tests.unit.test_decisions import (
    DELAYS,
    GRACE,
    ROB,
    TIMEOUT,
    Harness,
    harness,
    harness_enforcing,
    sweeper,
)


class RejectedMeanwhile:
    """The sweeper's workflow while a person rejects the case on the command line: the
    reject is stored after the sweeper's claim, before its escalation reads the case."""

    def __init__(self, flow: RemediationWorkflow) -> None:
        self._flow = flow
        self._rejected = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._flow, name)

    async def escalate(self, case_id: str, reason: str, *, kind: EscalationKind) -> Any:
        if not self._rejected:
            self._rejected = True
            await self._flow.reject_waiting(case_id, by="alice", reason="known mailing")
        return await self._flow.escalate(case_id, reason, kind=kind)


async def test_a_reject_stored_after_the_claim_is_no_expiry_in_the_sweep_report() -> None:
    h = harness()
    waiting = await h.waiting()
    h.tenant.clock.advance(TIMEOUT + timedelta(minutes=5))
    swept = Sweeper(journal=h.tenant.journal, workflow=RejectedMeanwhile(h.flow),  # type: ignore[arg-type]
                    resumes=FakeRequestsQueue(), clock=h.tenant.clock,
                    session_for=lambda user: user, approval_timeout=TIMEOUT)

    report = await swept.sweep()

    case = await h.case(waiting.case_id)
    assert case.state is CaseState.REJECTED and case.decided_by == "alice"
    assert report.escalated == []  # the expiry did not happen: it is not counted


async def queued_approval(h: Harness, case: Case, after: timedelta) -> None:
    """What `remediation approve` journals once it queued an approval (the message itself
    is held elsewhere: a pause keeps it, or it is lost)."""
    await h.tenant.journal.add_step(case.case_id, Step(
        APPROVAL_QUEUED, StepStatus.INFO, case.updated_at + after, "approval by bob queued",
        {"approved_by": "bob"}))


def steps_named(case: Case, name: str) -> list[Step]:
    return [step for step in case.steps if step.name == name]


async def test_an_approval_queued_in_time_holds_the_expiry_until_it_arrives() -> None:
    h = harness()
    waiting = await h.waiting()
    await queued_approval(h, waiting, timedelta(hours=23))
    h.tenant.clock.advance(TIMEOUT + timedelta(hours=3))  # a pause outlasted the deadline

    report = await sweeper(h).sweep()
    again = await sweeper(h).sweep()

    case = await h.case(waiting.case_id)
    assert report.escalated == again.escalated == []
    assert case.state is CaseState.AWAITING_APPROVAL
    [deferred] = steps_named(case, EXPIRY_DEFERRED)  # noted once
    assert "the approval by bob was queued in time" in deferred.detail
    assert "at most APPROVAL_TIMEOUT (24h) more" in deferred.detail

    await h.flow.approve(Approval(waiting.case_id, ROB, "bob"))  # the kept approval comes
    assert (await h.case(waiting.case_id)).state is CaseState.AWAITING_VERIFICATION
    assert h.tenant.directory.count("reset_password") == 1


async def test_an_approval_that_never_arrives_expires_a_timeout_after_the_first_deferral(
) -> None:
    h = harness()
    waiting = await h.waiting()
    await queued_approval(h, waiting, timedelta(minutes=10))
    h.tenant.clock.advance(TIMEOUT + timedelta(minutes=5))
    await sweeper(h).sweep()  # deferred
    h.tenant.clock.advance(TIMEOUT - timedelta(minutes=1))
    assert (await sweeper(h).sweep()).escalated == []

    h.tenant.clock.advance(minutes=2)
    report = await sweeper(h).sweep()

    case = await h.case(waiting.case_id)
    assert report.escalated == [waiting.case_id]
    assert case.escalation_kind == EscalationKind.APPROVAL_EXPIRED.value
    assert case.reason is not None
    assert case.reason.startswith("approval timed out: the approval by bob was queued in "
                                  "time"), case.reason
    assert "never reached a worker" in case.reason and "nothing was changed" in case.reason
    assert h.writes() == []


async def test_an_approval_queued_after_the_deadline_or_refused_holds_nothing() -> None:
    late, refused = harness(), harness()
    for h, after in ((late, TIMEOUT + timedelta(minutes=1)),
                     (refused, timedelta(minutes=10))):
        waiting = await h.waiting()
        await queued_approval(h, waiting, after)
        if h is refused:  # delivered, and refused (it named another account, say)
            await h.tenant.journal.add_step(waiting.case_id, Step(
                APPROVAL_REFUSED, StepStatus.INFO, waiting.updated_at + timedelta(minutes=11),
                "approval refused"))
        h.tenant.clock.advance(TIMEOUT + timedelta(minutes=5))

        report = await sweeper(h).sweep()

        case = await h.case(waiting.case_id)
        assert report.escalated == [waiting.case_id]
        assert case.reason is not None and "nobody approved or rejected" in case.reason


def test_the_command_line_journals_the_step_the_sweeper_reads() -> None:
    assert cli.APPROVAL_QUEUED == approval_wait.APPROVAL_QUEUED


async def test_a_late_escalation_notice_on_a_closed_case_sets_no_alert_in_progress() -> None:
    h = harness()
    h.source.stand_in_sender = GRACE
    h.source.stand_in_created["fa-g"] = h.tenant.clock.now() - timedelta(minutes=20)
    case = await harness_enforcing(h).remediate(RemediationRequest(
        user=GRACE, source="alert", alert_ids=("fa-g",), request_id="alert-fa-g"))
    kept, h.notifier.updates = h.notifier.updates, []
    await h.flow.close_escalated(case.case_id, by="bob", reason="reset by phone")
    h.notifier.updates = [*kept, *h.notifier.updates]

    await h.deliver()

    # A person handled it: their alert is commented on, never set "in progress" again.
    assert h.alerts.updates_of("fa-g") == []
    [card] = [post for post in h.webhook.payloads if "needs a human" in json.dumps(post)]
    assert "protected group" in json.dumps(card)  # why it escalated, not "closed by bob"


async def held_case(tenant: FakeTenant, n: int, state: CaseState) -> Case:
    at = tenant.clock.now()
    case = make_case(f"{at:%Y%m%d}-0000b0{n:02x}", f"user{n}@contoso.com", at=at, state=state,
                     escalation_kind=EscalationKind.CIRCUIT_BREAKER.value, ended_at=at,
                     steps=(Step(WEBHOOK_ESCALATED, StepStatus.DONE, at, "held",
                                 {"grouped": True}),))
    await seed(tenant.journal, case)
    return case


async def test_the_grouped_breaker_post_names_a_held_case_closed_before_it() -> None:
    from remediation.service.settings import WorkflowSettings

    tenant = FakeTenant()
    webhook = FakeWebhook()
    posts = BreakerPosts(CaseRecorder(tenant.journal, tenant.clock), webhook,
                         FakeRequestsQueue(), WorkflowSettings(verify_delays=DELAYS))
    closed = await held_case(tenant, 1, CaseState.CLOSED)  # a person closed it already
    held = await held_case(tenant, 2, CaseState.ESCALATED)

    await posts.post(BreakerPost(closed.case_id, closed.user))

    [post] = webhook.payloads
    assert closed.case_id in json.dumps(post) and held.case_id in json.dumps(post)


async def test_only_a_planned_case_ends_the_first_run() -> None:
    """An escalated case whose plan was made (the circuit breaker held it, say) ends the
    first run; one escalated before any plan (no account found) does not."""
    for planned, status in ((False, Status.WARN), (True, Status.OK)):
        tenant = FakeTenant()
        at = tenant.clock.now()
        steps = (Step(PLAN, StepStatus.DONE, at, "reset, revoke, unblock"),) if planned else ()
        await seed(tenant.journal, make_case(f"{at:%Y%m%d}-0000c0de", at=at,
                                             state=CaseState.ESCALATED, steps=steps))

        report = await with_settings_findings(Report(()), {GRACE}, "enforce", tenant.journal)

        [mode] = [f for f in report.findings if f.check == MODE]
        assert mode.status is status, (planned, mode.result)
