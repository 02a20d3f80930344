"""What the sweeper waits for (issue 14, point 1; found by a hostile tester), against
in-memory fakes: only what moves a case (never a refused message, a duplicate merged, a
note that changes nothing), by times no clock far ahead of its own wrote; and how far a
worker's clock may lag the broker's before a check is taken for an early one."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from remediation.domain.cases import CaseState, Step, StepStatus
from remediation.entrypoints.cli import APPROVAL_QUEUED
from remediation.service.admission import (
    ALERT_UPDATE_REFUSED,
    CLOCK_SKEW,
    VERIFICATION_REFUSED,
)
from remediation.service.claims import CONFIRMED, IGNORED
from remediation.service.episodes import MERGED_INTO
from remediation.service.handler import Delivery
from remediation.service.messages import Resume, VerificationCheck
from remediation.service.sweeper import STALL_AFTER, moves_case, pending_until
from remediation.service.workflow import (
    APPROVAL_REFUSED,
    RESUME_QUEUED,
    RESUME_REFUSED,
    RETRY,
)
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
    stuck_since = s.h.tenant.clock.now()
    resumed: list[str] = []
    for _ in range(6):  # two hours, one forged resume (an unknown token) every 20 minutes
        s.h.tenant.clock.advance(timedelta(minutes=20))
        await s.handler.on_request(forged(Resume(case.case_id, ROB, "f0f0f0f0").to_json()))
        resumed += (await s.sweeper.sweep()).resumed  # every poll sweeps
    stored = await s.h.case(case.case_id)
    assert stored.state is CaseState.IN_PROGRESS
    assert [step.name for step in stored.steps].count(RESUME_REFUSED) >= 1

    resumed += (await s.sweeper.sweep()).resumed

    # Nothing but refused messages for two hours: the case is overdue by any measure, and
    # the sweeper resumes it as soon as it would without them (the first poll past the
    # bound; the resumes queued here are never delivered).
    assert case.case_id in resumed, [(st.name, st.at) for st in stored.steps]
    first = next(step.at for step in stored.steps if step.name == RESUME_QUEUED)
    assert first - stuck_since <= STALL_AFTER + timedelta(minutes=20)


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
    deliverable_now = queued.at is None or queued.at <= s.h.tenant.clock.now()
    assert deliverable_now or honest.resumed == [case.case_id], (queued.at, honest)


async def test_duplicate_requests_do_not_hide_a_stuck_case_from_the_sweeper(
        s: Swept) -> None:  # noqa: F811
    """A request naming the account, sent every 20 minutes with a new id (anyone with send
    rights can): each merges into the stuck case as a duplicate, which moves nothing."""
    case = await stuck_in_progress(s)
    for n in range(3):
        s.h.tenant.clock.advance(timedelta(minutes=20))
        merged = await s.h.remediate(f"dup-{n}", source="restricted-list")
        assert merged.case_id == case.case_id
    assert (await s.h.case(case.case_id)).state is CaseState.IN_PROGRESS

    report = await s.sweeper.sweep()

    assert report.resumed == [case.case_id]


def test_no_refusal_or_note_that_changes_nothing_counts_as_progress() -> None:
    """The rule in one place: every ``*_refused`` note the product journals, and the other
    notes that record a message taken in without moving the case, never count."""
    now = FakeClock().now()
    refusals = [RESUME_REFUSED, APPROVAL_REFUSED, VERIFICATION_REFUSED, ALERT_UPDATE_REFUSED]
    assert all(name.endswith("_refused") for name in refusals)
    for name in [*refusals, "something_new_refused", "merged", MERGED_INTO, CONFIRMED,
                 IGNORED, APPROVAL_QUEUED, "alerts_queued:start:1"]:
        assert not moves_case(Step(name, StepStatus.INFO, now)), name
    for name in [RETRY, RESUME_QUEUED, "approved", "received"]:
        assert moves_case(Step(name, StepStatus.INFO, now)), name
    assert moves_case(Step("reset_password", StepStatus.FAILED, now))
    assert not moves_case(Step("alert_comment:start:fa-1", StepStatus.DONE, now))


async def test_times_a_little_ahead_count_as_now_and_far_ahead_not_at_all(
        s: Swept) -> None:  # noqa: F811
    case = await stuck_in_progress(s)
    now = s.h.tenant.clock.now()
    stuck = pending_until(case, now)
    assert stuck is not None and stuck <= now

    ahead = case.evolve(updated_at=now + CLOCK_SKEW)
    assert pending_until(ahead, now) == now  # a clock a little ahead: taken as now
    jumped = case.evolve(updated_at=now + timedelta(days=2), steps=(
        *case.steps, Step(RETRY, StepStatus.INFO, now + timedelta(days=2), "retry 2",
                          {"at": (now + timedelta(days=2, minutes=1)).isoformat()})))
    assert pending_until(jumped, now) == stuck  # a jumped clock, and what it scheduled
    assert pending_until(case.evolve(updated_at=now + timedelta(days=2), created_at=now
                                     + timedelta(days=2), steps=()), now) is None


@pytest.mark.parametrize(("lag", "acts"), [(timedelta(seconds=30), True),
                                           (CLOCK_SKEW, True),
                                           (CLOCK_SKEW + timedelta(minutes=1), False)])
async def test_a_check_delivered_to_a_worker_whose_clock_lags_acts_within_the_skew(
        s: Swept, lag: timedelta, acts: bool) -> None:  # noqa: F811
    """The broker delivers a check at its time by its own clock; a worker whose clock lags
    behind by up to the clock-skew allowance runs it (journaled ``verify_0``), never refuses
    the case's own check as "before its time". Further off, it is refused, as a forged
    early check is."""
    case = await s.h.remediate()
    [first] = [entry for entry in s.h.tenant.scheduler.pending() if entry.check.attempt == 0]
    s.h.tenant.clock.set(first.at - lag)  # the worker's clock, behind the broker's

    after = await s.h.workflow.verify(first.check)

    names = [step.name for step in after.steps]
    assert ("verify_0" in names) is acts, names
    assert (VERIFICATION_REFUSED in names) is not acts, names
    assert after.case_id == case.case_id
