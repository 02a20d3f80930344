"""The kill switch at the handler: while paused, every delivery of every kind is kept, not
acted on: a copy comes back after PAUSE_RECHECK carrying the attempts made before it (a pause
uses none up, however long it lasts), its case is told once per pause, and nothing is asked of
or changed in the tenant. After ``resume`` the copy does the work."""

from __future__ import annotations

import pytest

from remediation.domain.cases import Case, CaseState, StepStatus
from remediation.domain.errors import TransientError
from remediation.domain.pause import Paused
from remediation.domain.requests import RemediationRequest
from remediation.service.handler import ATTEMPTS, RETRY_OF
from remediation.service.messages import AlertUpdate, Approval
from remediation.service.pausing import PAUSE_RECHECK, PAUSED
from tests.fakes import FakeJournal
from tests.unit.test_retries import BACKOFF, MAX, ROB, Copy, Harness, delivery, make

LONG = 3 * MAX  # re-checks: more than MAX_DELIVERY_COUNT


@pytest.fixture
def h() -> Harness:
    return make()


async def pause(h: Harness, reason: str = "phishing wave under review") -> Paused:
    return await h.tenant.journal.pause(Paused("alice@contoso.com", reason, h.tenant.clock.now()))


def request_body(request_id: str = "req-1") -> str:
    return RemediationRequest(user=ROB, request_id=request_id).to_json()


def pause_notes(case: Case) -> list[str]:
    return [s.detail for s in case.steps if s.name == PAUSED]


def tenant_changes(h: Harness) -> list[str]:
    """What the fakes record as asked of or done in the tenant (reads and writes)."""
    return [*h.tenant.events, *(f"comment {c.alert_id}" for c in h.alerts.comments),
            *(f"update {c.alert_id}" for c in h.alerts.updates)]


async def held_again(h: Harness, copy: Copy, times: int,
                     retries: str = "requests") -> Copy:
    """Deliver ``copy`` as the broker would each time it comes due, ``times`` times, with the
    switch still on; return the last copy scheduled."""
    queue = getattr(h, retries)
    for _ in range(times):
        h.tenant.clock.advance(PAUSE_RECHECK)
        if retries == "requests":
            await h.handler.on_request(h.redeliver(copy))
        else:
            await h.handler.on_verification(h.redeliver(copy))
        copy = queue.copies[-1]
    return copy


async def test_a_request_while_paused_is_kept_journaled_once_and_done_after_resume(
        h: Harness) -> None:
    paused = await pause(h)

    case = await h.handler.on_request(delivery(request_body(), message_id="msg-1"))

    assert case is not None and case.state is CaseState.RECEIVED
    assert tenant_changes(h) == []  # not even a lookup
    [copy] = h.requests.copies
    assert copy.at == h.tenant.clock.now() + PAUSE_RECHECK
    assert copy.properties == {ATTEMPTS: 0, RETRY_OF: "msg-1"}
    assert copy.body == request_body().encode()
    [note] = pause_notes(case)
    assert "alice@contoso.com" in note and "phishing wave under review" in note
    assert [s.data for s in case.steps if s.name == PAUSED] == [paused.to_dict()]

    # Longer than MAX_DELIVERY_COUNT re-checks: nothing given up, nothing noted again.
    last = await held_again(h, copy, LONG)
    assert last.properties[ATTEMPTS] == 0
    case = await h.only_case()
    assert case.state is CaseState.RECEIVED
    assert len(pause_notes(case)) == 1
    assert [s.name for s in case.steps if s.name == "retry"] == []
    assert tenant_changes(h) == []

    assert await h.tenant.journal.resume("bob@contoso.com", h.tenant.clock.now()) == paused
    done = await h.handler.on_request(h.redeliver(last))

    assert done is not None and done.state is CaseState.AWAITING_VERIFICATION
    assert h.tenant.directory.count("reset_password") == 1
    assert [u.sender for u in h.tenant.exchange.unblocks] == [ROB]


async def test_a_verification_check_due_while_paused_waits_and_completes_after(
        h: Harness) -> None:
    case = await h.handler.on_request(delivery(request_body()))
    assert case is not None and case.state is CaseState.AWAITING_VERIFICATION
    [first] = h.tenant.scheduler.pending()[:1]
    h.tenant.clock.set(first.at)
    h.tenant.events.clear()
    await pause(h)

    held = await h.handler.on_verification(delivery(first.check.to_json(),
                                                    message_id=first.check.message_id))

    assert held is not None and held.state is CaseState.AWAITING_VERIFICATION
    assert tenant_changes(h) == []  # the list is not even read
    [copy] = h.follow_ups.copies
    assert copy.properties == {ATTEMPTS: 0, RETRY_OF: first.check.message_id}
    last = await held_again(h, copy, LONG, retries="follow_ups")
    assert (await h.only_case()).state is CaseState.AWAITING_VERIFICATION
    assert len(pause_notes(await h.only_case())) == 1

    await h.tenant.journal.resume("bob@contoso.com", h.tenant.clock.now())
    checked = await h.handler.on_verification(h.redeliver(last))

    assert checked is not None
    assert any(s.name == "verify_0" and s.status is StepStatus.DONE for s in checked.steps)


async def test_alert_updates_and_approvals_are_kept_too(h: Harness) -> None:
    request = RemediationRequest(user=ROB, request_id="alert:da1", alert_ids=("da1",),
                                 source="alert")
    case = await h.handler.on_request(delivery(request.to_json()))
    assert case is not None and case.alert_ids == ("da1",)
    await pause(h)
    h.tenant.events.clear()
    h.alerts.attempts.clear()
    update = AlertUpdate(case.case_id, ROB, "start", 1)
    approval = Approval(case.case_id, ROB, "carol@contoso.com")

    await h.handler.on_verification(delivery(update.to_json(), message_id=update.message_id))
    await h.handler.on_request(delivery(approval.to_json(), message_id=approval.message_id))

    assert tenant_changes(h) == []  # no comment, no status change on any alert
    assert h.alerts.attempts == []  # not even read
    assert len(h.follow_ups.copies) == 1 and len(h.requests.copies) == 1
    assert len(pause_notes(await h.only_case())) == 1  # once per case, whatever the kinds


async def test_each_pause_is_noted_once_on_the_case(h: Harness) -> None:
    await pause(h, "first")
    await h.handler.on_request(delivery(request_body()))
    [copy] = h.requests.copies
    await h.tenant.journal.resume("bob@contoso.com", h.tenant.clock.now())
    h.tenant.clock.advance(minutes=1)
    await pause(h, "second")

    await held_again(h, copy, 2)

    assert [note.split(": ", 1)[1][:6] for note in pause_notes(await h.only_case())] == [
        "first;", "second"]


async def test_a_journal_that_cannot_say_whether_it_is_paused_acts_on_nothing() -> None:
    """Fail closed: the switch unread is a transient failure like any other, retried later
    with its attempt counted, and nothing is done meanwhile."""
    class Unreadable(FakeJournal):
        async def pause_state(self) -> Paused | None:
            raise TransientError("Table Storage answered 503 while reading the kill switch")

    h = make(journal=Unreadable())

    await h.handler.on_request(delivery(request_body()))

    assert tenant_changes(h) == []
    [copy] = h.requests.copies
    assert copy.properties[ATTEMPTS] == 1  # a real failure: it counts
    assert copy.at == h.tenant.clock.now() + BACKOFF
