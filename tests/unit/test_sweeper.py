"""The sweeper against in-memory fakes: a working case with nothing pending past the bound is
resumed from its journal (or, after its last resume, escalated); nothing else is touched."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest

from remediation.domain.cases import Case, CaseState
from remediation.domain.errors import TransientError
from remediation.domain.requests import RemediationRequest
from remediation.service.handler import Delivery, MessageHandler
from remediation.service.messages import Resume
from remediation.service.ports import Journal
from remediation.service.sweeper import MAX_RESUMES, STALL_AFTER, Sweeper
from remediation.service.workflow import (
    RESUME_QUEUED,
    RESUME_REFUSED,
    RemediationWorkflow,
    WorkflowSettings,
)
from tests.fakes import FakeTenant
from tests.sweeping import FakeRequestsQueue, ReadTogether
from tests.unit.test_workflow import ROB, Harness, make_harness

EVE = "eve@contoso.com"


@dataclass
class Swept:
    h: Harness
    queue: FakeRequestsQueue
    sweeper: Sweeper
    handler: MessageHandler

    async def deliver_resumes(self) -> list[Case | None]:
        sent, self.queue.sent = self.queue.sent, []
        return [await self.handler.on_request(Delivery(
            body=q.body, message_id="m", delivery_count=1, max_delivery_count=5))
            for q in sent]

    async def deliver_resumes_whose_retry_is_lost(self) -> None:
        """Deliver the resumes queued; a transient failure's retry is never scheduled."""
        sent, self.queue.sent = self.queue.sent, []
        for q in sent:
            with pytest.raises(TransientError):
                await self.handler.on_request(Delivery(
                    body=q.body, message_id="m", delivery_count=1, max_delivery_count=5))

    async def sweep_when_stalled(self) -> list[str]:
        """Move the clock past the bound and sweep; the cases resumed."""
        self.h.tenant.clock.advance(STALL_AFTER + timedelta(seconds=1))
        report = await self.sweeper.sweep()
        assert report.errors == report.escalated == []
        return report.resumed


@pytest.fixture
def s() -> Swept:
    h = make_harness(FakeTenant())
    queue = FakeRequestsQueue()
    sweeper = Sweeper(journal=h.tenant.journal, workflow=h.workflow, resumes=queue,
                      clock=h.tenant.clock, session_for=lambda user: user)
    return Swept(h, queue, sweeper, MessageHandler(h.workflow))


async def stuck_in_progress(s: Swept) -> Case:
    """A reset that failed and whose retry was never scheduled (lost)."""
    s.h.tenant.directory.fail(ROB, TransientError("Graph returned 503"), on="reset_password",
                              times=1)
    with pytest.raises(TransientError):
        await s.h.remediate()
    [case] = await s.h.tenant.journal.list_cases()
    assert case.state is CaseState.IN_PROGRESS
    return case


async def test_a_case_stuck_in_progress_is_resumed_once_past_the_bound(s: Swept) -> None:
    case = await stuck_in_progress(s)

    s.h.tenant.clock.advance(STALL_AFTER - timedelta(seconds=1))
    early = await s.sweeper.sweep()
    assert (early.resumed, s.queue.sent) == ([], [])

    s.h.tenant.clock.advance(seconds=2)
    report = await s.sweeper.sweep()
    assert report.resumed == [case.case_id]
    [queued] = s.queue.sent
    assert queued.session_id == ROB
    assert json.loads(queued.body)["kind"] == "resume"
    [resumed] = await s.deliver_resumes()

    assert resumed is not None
    assert resumed.state is CaseState.AWAITING_VERIFICATION
    assert s.h.tenant.directory.count("reset_password") == 2  # the failed one and this one
    assert (await s.sweeper.sweep()).resumed == []  # moving again: nothing to do


async def test_a_case_no_resume_moves_is_escalated_with_the_reason(s: Swept) -> None:
    case = await stuck_in_progress(s)
    s.h.tenant.directory.fail(ROB, TransientError("Graph returned 503"), on="reset_password")
    for _ in range(MAX_RESUMES):
        s.h.tenant.clock.advance(STALL_AFTER + timedelta(seconds=1))
        assert (await s.sweeper.sweep()).resumed == [case.case_id]
        s.queue.sent.clear()  # each resume lost (or failing) in turn

    s.h.tenant.clock.advance(STALL_AFTER + timedelta(seconds=1))
    report = await s.sweeper.sweep()

    assert report.escalated == [case.case_id]
    ended = await s.h.case(case.case_id)
    assert ended.state is CaseState.ESCALATED
    assert (ended.reason or "").startswith("stuck in_progress: nothing moved it since")


async def test_a_case_whose_checks_were_lost_is_verified_by_its_last_check(s: Swept) -> None:
    case = await s.h.remediate()
    assert case.state is CaseState.AWAITING_VERIFICATION
    s.h.tenant.scheduler.scheduled.clear()  # every check lost
    last_check = s.h.tenant.exchange.unblocks[0].at + timedelta(hours=24)

    s.h.tenant.clock.set(last_check + STALL_AFTER - timedelta(seconds=1))
    assert (await s.sweeper.sweep()).resumed == []
    s.h.tenant.clock.set(last_check + STALL_AFTER + timedelta(seconds=1))
    assert (await s.sweeper.sweep()).resumed == [case.case_id]
    [verified] = await s.deliver_resumes()

    assert verified is not None and verified.state is CaseState.VERIFIED


async def test_waiting_for_approval_and_final_cases_are_left_alone(s: Swept) -> None:
    tenant = s.h.tenant
    workflow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=(timedelta(hours=1),), mode="approve"))
    approve = Sweeper(journal=tenant.journal, workflow=workflow, resumes=s.queue,
                      clock=tenant.clock, session_for=str)
    await s.h.remediate(request_id="manual-1")
    [verified] = await s.h.checks_at(timedelta(hours=1))
    assert verified.state is CaseState.VERIFIED
    tenant.directory.add_user(EVE)
    tenant.exchange.block(EVE, created=tenant.clock.now() - timedelta(minutes=30))
    waiting = await workflow.remediate(RemediationRequest(user=EVE, source="alert",
                                                          request_id="alert-1"))
    assert waiting.state is CaseState.AWAITING_APPROVAL
    tenant.clock.advance(days=30)

    assert (await approve.sweep()).resumed == []
    assert (await approve.sweep(idle=True)).resumed == []
    assert (await s.h.case(waiting.case_id)).state is CaseState.AWAITING_APPROVAL
    assert (await s.h.case(verified.case_id)).steps == verified.steps


async def test_a_resume_the_case_never_queued_is_refused_and_changes_nothing(
        s: Swept) -> None:
    case = await stuck_in_progress(s)
    forged = Resume(case.case_id, ROB, "made-up-token").to_json().encode()

    after = await s.handler.on_request(Delivery(body=forged, message_id="x", delivery_count=1,
                                                max_delivery_count=5))

    assert after is not None
    stored = await s.h.case(case.case_id)
    assert stored.state is CaseState.IN_PROGRESS
    assert [step.name for step in stored.steps][-1] == RESUME_REFUSED
    assert not any(step.name == RESUME_QUEUED for step in stored.steps)
    assert s.h.tenant.directory.count("reset_password") == 1


async def test_a_retry_scheduled_far_ahead_is_pending_work(s: Swept) -> None:
    case = await stuck_in_progress(s)
    await s.h.workflow.journal_retry("retry 1 at ...", {
        "attempt": 2, "at": (s.h.tenant.clock.now() + timedelta(hours=6)).isoformat()},
        case_id=case.case_id)

    s.h.tenant.clock.advance(hours=6)
    assert (await s.sweeper.sweep()).resumed == []
    s.h.tenant.clock.advance(STALL_AFTER + timedelta(seconds=1))
    assert (await s.sweeper.sweep()).resumed == [case.case_id]


def sweepers_reading_together(s: Swept, count: int) -> list[Sweeper]:
    """``count`` sweepers (one per worker) that all read the working cases before any acts."""
    together = asyncio.Barrier(count)
    return [Sweeper(journal=cast(Journal, ReadTogether(s.h.tenant.journal, together)),
                    workflow=s.h.workflow, resumes=s.queue, clock=s.h.tenant.clock,
                    session_for=str) for _ in range(count)]


@pytest.mark.parametrize("idle", [False, True])
async def test_two_sweepers_reading_one_stalled_case_queue_one_resume(
        s: Swept, idle: bool) -> None:
    """The poll runs a sweeper on every worker, and ``run --until-idle`` runs one too."""
    case = await stuck_in_progress(s)
    s.h.tenant.clock.advance(STALL_AFTER + timedelta(seconds=1))
    sweepers = sweepers_reading_together(s, 2)

    reports = await asyncio.gather(*(sweeper.sweep(idle=idle) for sweeper in sweepers))

    assert sorted(report.resumed for report in reports) == [[], [case.case_id]]
    assert [report.errors for report in reports] == [[], []]
    assert len(s.queue.sent) == 1
    stored = await s.h.case(case.case_id)
    assert [step.name for step in stored.steps].count(RESUME_QUEUED) == 1
    [resumed] = await s.deliver_resumes()
    assert resumed is not None and resumed.state is CaseState.AWAITING_VERIFICATION


async def test_two_sweepers_escalate_a_case_once(s: Swept) -> None:
    case = await stuck_in_progress(s)
    for _ in range(MAX_RESUMES):  # every resume lost
        assert await s.sweep_when_stalled() == [case.case_id]
    s.queue.sent.clear()
    s.h.tenant.clock.advance(STALL_AFTER + timedelta(seconds=1))
    sweepers = sweepers_reading_together(s, 2)

    reports = await asyncio.gather(*(sweeper.sweep() for sweeper in sweepers))

    assert sorted(report.escalated for report in reports) == [[], [case.case_id]]
    assert [report.errors for report in reports] == [[], []]
    stored = await s.h.case(case.case_id)
    assert stored.state is CaseState.ESCALATED
    assert [step.name for step in stored.steps].count("escalated") == 1


async def test_resumes_that_each_moved_the_case_a_step_never_escalate_it(s: Swept) -> None:
    """Each resume takes one more step, then the next step fails and its retry is lost."""
    case = await stuck_in_progress(s)  # the reset failed
    failure = TransientError("Graph returned 503")
    s.h.tenant.directory.fail(ROB, failure, on="revoke_sessions", times=1)
    assert await s.sweep_when_stalled() == [case.case_id]
    await s.deliver_resumes_whose_retry_is_lost()  # reset done, revoking failed
    s.h.tenant.exchange.fail(ROB, failure, on="unblock", times=1)
    assert await s.sweep_when_stalled() == [case.case_id]
    await s.deliver_resumes_whose_retry_is_lost()  # revoked, unblocking failed
    assert await s.sweep_when_stalled() == [case.case_id]
    [unblocked] = await s.deliver_resumes()
    assert unblocked is not None and unblocked.state is CaseState.AWAITING_VERIFICATION
    s.h.tenant.scheduler.scheduled.clear()  # and every check lost
    last_check = s.h.tenant.exchange.unblocks[-1].at + timedelta(hours=24)
    s.h.tenant.clock.set(last_check)

    assert await s.sweep_when_stalled() == [case.case_id]  # a fourth resume
    [verified] = await s.deliver_resumes()

    assert verified is not None and verified.state is CaseState.VERIFIED, verified.reason
    assert [step.name for step in verified.steps].count(RESUME_QUEUED) == 4


async def test_only_the_resumes_since_the_case_last_moved_count(s: Swept) -> None:
    case = await stuck_in_progress(s)
    s.h.tenant.directory.fail(ROB, TransientError("Graph returned 503"),
                              on="revoke_sessions")
    assert await s.sweep_when_stalled() == [case.case_id]
    await s.deliver_resumes_whose_retry_is_lost()  # moved: the reset is done
    for _ in range(MAX_RESUMES):  # each fails at the same step: nothing moves
        assert await s.sweep_when_stalled() == [case.case_id]
        await s.deliver_resumes_whose_retry_is_lost()

    s.h.tenant.clock.advance(STALL_AFTER + timedelta(seconds=1))
    report = await s.sweeper.sweep()

    assert report.escalated == [case.case_id]
    ended = await s.h.case(case.case_id)
    assert ended.state is CaseState.ESCALATED
    assert f"{MAX_RESUMES} resumes later" in (ended.reason or ""), ended.reason
    assert [step.name for step in ended.steps].count(RESUME_QUEUED) == MAX_RESUMES + 1


def test_the_readme_gives_the_bound_in_minutes() -> None:
    """STALL_AFTER is no setting: the README is where an operator learns it."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    minutes = STALL_AFTER // timedelta(minutes=1)
    assert STALL_AFTER % timedelta(minutes=1) == timedelta(0)  # whole minutes
    assert f"back-off ({minutes} minutes, fixed: not a setting)" in " ".join(readme.split())
