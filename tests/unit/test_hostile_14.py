"""Hostile tester, issue 14: what still lets a case stay stuck, against in-memory fakes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from remediation.domain.cases import CaseState
from remediation.service.handler import Delivery
from remediation.service.messages import Resume, VerificationCheck
from remediation.service.sweeper import STALL_AFTER
from remediation.service.workflow import RESUME_REFUSED
from tests.fakes import FakeClock
from tests.unit.test_sweeper import Swept, s, stuck_in_progress  # noqa: F401
from tests.unit.test_workflow import ROB


def forged(body: str) -> Delivery:
    return Delivery(body=body.encode(), message_id="forged", delivery_count=1,
                    max_delivery_count=5)


async def test_refused_forged_resumes_do_not_hide_a_stuck_case_from_the_sweeper(
        s: Swept) -> None:  # noqa: F811
    """A refused message "changes nothing", yet its journaled refusal counts as the case
    moving: a forged resume every 20 minutes keeps a stuck case from ever being swept."""
    case = await stuck_in_progress(s)
    for _ in range(6):  # two hours, one forged resume (an unknown token) every 20 minutes
        s.h.tenant.clock.advance(timedelta(minutes=20))
        await s.handler.on_request(forged(Resume(case.case_id, ROB, "f0f0f0f0").to_json()))
        await s.sweeper.sweep()  # every poll sweeps
    stored = await s.h.case(case.case_id)
    assert stored.state is CaseState.IN_PROGRESS
    assert [step.name for step in stored.steps].count(RESUME_REFUSED) >= 1

    report = await s.sweeper.sweep()

    # Nothing but refused messages for two hours: the case is overdue by any measure.
    assert report.resumed == [case.case_id], [(st.name, st.at) for st in stored.steps]


async def test_refused_forged_checks_do_not_hide_a_stuck_case_from_the_sweeper(
        s: Swept) -> None:  # noqa: F811
    """The same with verification checks naming an attempt the case never scheduled."""
    case = await stuck_in_progress(s)
    for _ in range(6):
        s.h.tenant.clock.advance(timedelta(minutes=20))
        await s.handler.on_verification(forged(
            VerificationCheck(case.case_id, ROB, 7).to_json()))
    report = await s.sweeper.sweep()
    assert report.resumed == [case.case_id]


async def test_a_worker_whose_clock_jumped_ahead_does_not_put_a_stuck_case_off_for_days(
        s: Swept) -> None:  # noqa: F811
    """Every worker sweeps. One whose clock jumped two days ahead claims the stuck case
    (its ``updated_at`` now two days on) and schedules the resume for its own "now": the
    broker holds it for two days, and every other sweeper sees the case as moved just now
    (in the future) and leaves it alone. One bad clock stalls the case for as long."""
    case = await stuck_in_progress(s)
    s.h.tenant.clock.advance(STALL_AFTER + timedelta(seconds=1))
    skewed = FakeClock(s.h.tenant.clock.now() + timedelta(days=2))
    jumped = replace(s.sweeper, clock=skewed)
    assert (await jumped.sweep()).resumed == [case.case_id]
    [queued] = s.queue.sent
    s.queue.sent.clear()

    s.h.tenant.clock.advance(STALL_AFTER + timedelta(minutes=5))  # the others, an hour on
    honest = await s.sweeper.sweep()

    # Either the resume is deliverable now, or an honest sweeper resumes the case itself.
    assert queued.at <= s.h.tenant.clock.now() or honest.resumed == [case.case_id], (
        queued.at, honest)
