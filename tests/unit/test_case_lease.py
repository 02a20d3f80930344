"""One worker at a time on a case (``service.case_lease``): a worker that finds its case held
by another changes nothing in the tenant, journals no failure, never gives up on the case,
and its message is kept (a copy that uses no attempt) until the case is free again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from remediation.domain.cases import Case, CaseState, StepStatus
from remediation.domain.errors import TransientError
from remediation.domain.requests import RemediationRequest
from remediation.service.case_lease import CASE_CLAIM, CASE_LEASE, CaseLease
from remediation.service.handler import ATTEMPTS, DEFERRED, RETRY_OF
from remediation.service.journaling import SCHEDULE
from remediation.service.messages import VerificationCheck
from tests.fakes import FakeJournal
from tests.unit.test_retries import (
    BACKOFF,
    DELAYS,
    MAX,
    ROB,
    Harness,
    delivery,
    make,
    retry_notes,
)


def unblocks(h: Harness) -> int:
    return len(h.tenant.exchange.unblocks)


class SchedulingJournal(FakeJournal):
    """Shows a case as a worker read it while its securing still journaled the checks it
    had just scheduled (in progress; the schedule step started, or also done when
    ``journaled``), while ``scheduling``."""

    scheduling = False
    journaled = False

    async def get_case(self, case_id: str) -> Case | None:
        case = await super().get_case(case_id)
        if case is None or not self.scheduling:
            return case
        return case.evolve(state=CaseState.IN_PROGRESS, steps=tuple(
            step for step in case.steps if self.journaled
            or not (step.name == SCHEDULE and step.status is StepStatus.DONE)))


async def held_in_progress(h: Harness) -> tuple[str, bytes]:
    """A case reset and left in progress (its revoke failed once), then taken by another
    worker: the case id and the request's body."""
    h.tenant.directory.fail(ROB, TransientError("Graph returned 503"), on="revoke_sessions",
                            times=1)
    body = RemediationRequest(user=ROB, request_id="req-1").to_json().encode()
    await h.handler.on_request(delivery(body))
    case = await h.only_case()
    assert case.state is CaseState.IN_PROGRESS
    assert await h.tenant.journal.claim_step(case.case_id, CASE_CLAIM, "other-worker",
                                             h.tenant.clock.now(), CASE_LEASE)
    return case.case_id, body


async def test_a_case_another_worker_holds_is_left_to_it_even_on_the_last_attempt() -> None:
    h = make()
    case_id, body = await held_in_progress(h)
    before = await h.only_case()

    # The same request on another path (its last attempt): the holder works the case.
    settled = await h.handler.on_request(delivery(body, count=MAX, message_id="msg-2"))

    assert settled is None
    case = await h.only_case()
    assert case.state is CaseState.IN_PROGRESS  # not escalated, not given up on
    assert case.steps == before.steps  # no failure, no retry journaled
    assert h.tenant.directory.count("revoke_sessions") == 1  # the failed first attempt
    assert unblocks(h) == 0
    kept = h.requests.copies[-1]
    assert kept.body == body
    assert kept.properties == {ATTEMPTS: MAX - 1, RETRY_OF: "msg-2", DEFERRED: 1}
    assert kept.at == h.tenant.clock.now() + BACKOFF

    # Still held when the copy comes: kept again, the wait doubling, no attempt used.
    await h.handler.on_request(h.redeliver(kept))
    again = h.requests.copies[-1]
    assert again.properties == {ATTEMPTS: MAX - 1, RETRY_OF: "msg-2", DEFERRED: 2}
    assert again.at == h.tenant.clock.now() + 2 * BACKOFF

    # The holder died: once its lease runs out, the kept message takes the case on.
    h.tenant.clock.advance(CASE_LEASE)
    done = await h.handler.on_request(h.redeliver(again))

    assert done is not None and done.case_id == case_id
    assert done.state is CaseState.AWAITING_VERIFICATION
    assert unblocks(h) == 1
    assert h.tenant.directory.count("reset_password") == 1
    assert retry_notes(done) == retry_notes(before)
    assert not [s for s in done.steps if s.status is StepStatus.FAILED
                and s.name != "revoke_sessions"]


async def test_a_copy_of_a_secured_case_does_not_wait_for_nor_take_it() -> None:
    h = make()
    body = RemediationRequest(user=ROB, request_id="req-1").to_json().encode()
    case = await h.handler.on_request(delivery(body))
    assert case is not None and case.state is CaseState.AWAITING_VERIFICATION
    assert await h.tenant.journal.claim_step(case.case_id, CASE_CLAIM, "checking",
                                             h.tenant.clock.now(), CASE_LEASE)

    again = await h.handler.on_request(delivery(body, message_id="msg-2"))

    assert again is not None and again.state is CaseState.AWAITING_VERIFICATION
    assert h.requests.copies == []
    assert unblocks(h) == 1


async def test_the_holder_gives_the_case_up_however_its_work_ends() -> None:
    h = make()
    case_id, body = await held_in_progress(h)
    await h.tenant.journal.release_step(case_id, CASE_CLAIM, "other-worker")
    h.tenant.exchange.fail(ROB, TransientError("Exchange returned 503"), on="unblock",
                           times=1)

    await h.handler.on_request(delivery(body, message_id="msg-2"))  # fails: a retry
    assert (await h.only_case()).state is CaseState.IN_PROGRESS
    # Its claim was given up as it failed: the next worker is not held back.
    assert await h.tenant.journal.claim_step(case_id, CASE_CLAIM, "next-worker",
                                             h.tenant.clock.now(), CASE_LEASE)


@pytest.mark.parametrize("journaled", [False, True], ids=["scheduling", "not yet saved"])
async def test_a_check_that_comes_while_its_case_journals_the_schedule_waits_for_it(
        journaled: bool) -> None:
    journal = SchedulingJournal()
    journal.journaled = journaled
    h = make(journal=journal)
    body = RemediationRequest(user=ROB, request_id="req-1").to_json().encode()
    case = await h.handler.on_request(delivery(body))
    assert case is not None and case.state is CaseState.AWAITING_VERIFICATION
    check = VerificationCheck(case.case_id, ROB, 0)
    h.tenant.clock.advance(DELAYS[0])

    journal.scheduling = True  # compressed time: the check is due before its schedule lands
    kept = await h.handler.on_verification(delivery(check.to_json(), message_id="check-0"))
    journal.scheduling = False

    assert kept is None
    [copy] = h.follow_ups.copies
    assert copy.properties == {ATTEMPTS: 0, RETRY_OF: "check-0", DEFERRED: 1}
    assert not [s for s in (await h.only_case()).steps if s.name == "verification_refused"]
    verified = await h.handler.on_verification(h.redeliver(copy))
    assert verified is not None and verified.state is CaseState.VERIFIED


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


async def test_a_worker_still_working_keeps_its_case_past_the_lease_and_gives_it_up_after(
        ) -> None:
    """The claim lasts one lease (the message lock's length) unless renewed: a worker whose
    case takes longer keeps it for as long as it works (renewed every third of the lease),
    and another takes it on as soon as it is given up."""
    journal, clock = FakeJournal(), WallClock()
    lease = CaseLease(journal, clock, timedelta(seconds=0.3))
    async with lease.hold("case-1"):
        await asyncio.sleep(0.8)  # more than two leases
        assert not await journal.claim_step("case-1", CASE_CLAIM, "other-worker",
                                            clock.now(), timedelta(seconds=0.3))
    assert await journal.claim_step("case-1", CASE_CLAIM, "other-worker", clock.now(),
                                    timedelta(seconds=0.3))
