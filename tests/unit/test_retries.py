"""Delayed retries are ours (Service Bus offers an abandoned message again at once): a
transient failure schedules a copy of the message for later, with a new message id and the
attempts so far, and completes the original;
MAX_DELIVERY_COUNT counts attempts across copies. Also the per-delivery time budget."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from remediation.domain.cases import Case, CaseState, StepStatus
from remediation.domain.errors import TransientError
from remediation.domain.requests import RemediationRequest, parse_request
from remediation.service.handler import (
    ATTEMPTS,
    RETRY_OF,
    Delivery,
    MessageHandler,
    Retrying,
    RetryPolicy,
)
from remediation.service.messages import AlertUpdate, VerificationCheck, parse_follow_up
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings
from tests.fakes import (
    FakeAlertNotifier,
    FakeAlertSource,
    FakeAlertUpdater,
    FakeJournal,
    FakeTenant,
)

ROB = "rob@contoso.com"
DELAYS = (timedelta(hours=1), timedelta(hours=4), timedelta(hours=24))
MAX = 4
BACKOFF = timedelta(seconds=30)


@dataclass
class Copy:
    body: bytes
    session_id: str | None
    properties: dict[str, Any]
    at: datetime
    message_id: str


@dataclass
class FakeRetries:
    """One queue's ``schedule_copy`` (the MessageRetries port): records each copy."""

    copies: list[Copy] = field(default_factory=list)

    async def schedule_copy(self, body: bytes, *, session_id: str | None,
                            properties: Mapping[str, str | int | float | bool],
                            at: datetime | None) -> str:
        assert at is not None, "a retry is always scheduled"
        message_id = f"copy-{len(self.copies) + 1}"
        self.copies.append(Copy(body, session_id, dict(properties), at, message_id))
        return message_id


@dataclass
class Harness:
    tenant: FakeTenant
    workflow: RemediationWorkflow
    handler: MessageHandler
    requests: FakeRetries
    follow_ups: FakeRetries
    alerts: FakeAlertUpdater
    notifier: FakeAlertNotifier

    def redeliver(self, copy: Copy, count: int = 1) -> Delivery:
        """What the broker hands the handler when a scheduled copy comes due."""
        return Delivery(body=copy.body, message_id=copy.message_id, delivery_count=count,
                        max_delivery_count=MAX, session_id=copy.session_id,
                        properties=copy.properties)

    async def only_case(self) -> Case:
        [case] = await self.tenant.journal.list_cases()
        return case


def make(budget: timedelta | None = None, journal: FakeJournal | None = None) -> Harness:
    tenant = FakeTenant() if journal is None else FakeTenant(journal=journal)
    tenant.directory.add_user(ROB)
    tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30))
    alerts, notifier = FakeAlertUpdater(), FakeAlertNotifier()
    workflow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=DELAYS), alerts=alerts, notifier=notifier,
        alert_source=FakeAlertSource(stand_in_sender=ROB))
    requests, follow_ups = FakeRetries(), FakeRetries()
    retrying = Retrying(requests=requests, follow_ups=follow_ups, clock=tenant.clock,
                        backoff=RetryPolicy(first=BACKOFF))
    handler = (MessageHandler(workflow, retrying=retrying) if budget is None else
               MessageHandler(workflow, retrying=retrying, time_budget=budget))
    return Harness(tenant, workflow, handler, requests, follow_ups, alerts, notifier)


@pytest.fixture
def h() -> Harness:
    return make()


def delivery(body: str | bytes, count: int = 1, message_id: str = "msg-1",
             **properties: Any) -> Delivery:
    raw = body.encode() if isinstance(body, str) else body
    return Delivery(body=raw, message_id=message_id, delivery_count=count,
                    max_delivery_count=MAX, session_id=ROB, properties=properties)


def retry_notes(case: Case) -> list[str]:
    return [s.detail for s in case.steps if s.name == "retry" and s.status is StepStatus.INFO]


# -- the back-off ---------------------------------------------------------------------------


def test_the_backoff_doubles_is_capped_and_honours_what_the_service_asked() -> None:
    policy = RetryPolicy(first=timedelta(seconds=30))
    assert [policy.delay(n).total_seconds() for n in range(1, 8)] == [
        30, 60, 120, 240, 480, 900, 900]
    assert policy.delay(2000) == timedelta(minutes=15)  # no overflow on a huge count
    assert policy.delay(1, retry_after=120) == timedelta(seconds=120)
    assert policy.delay(3, retry_after=5) == timedelta(seconds=120)
    assert policy.delay(9, retry_after=3600) == timedelta(hours=1)  # never shorter


# -- the requests queue ---------------------------------------------------------------------


async def test_a_transient_failure_schedules_a_copy_and_completes_the_original(
        h: Harness) -> None:
    h.tenant.directory.fail(ROB, TransientError("Graph returned 503"), on="revoke_sessions",
                            times=1)
    body = '{"user": "rob@contoso.com"}'  # hand-written: its message id is its request id

    settled = await h.handler.on_request(delivery(body, kind="remediate"))  # no exception

    [copy] = h.requests.copies
    assert copy.body == body.encode()
    assert copy.session_id == ROB
    assert copy.properties == {"kind": "remediate", ATTEMPTS: 1, RETRY_OF: "msg-1"}
    assert copy.at == h.tenant.clock.now() + BACKOFF
    assert copy.message_id != "msg-1"
    assert h.follow_ups.copies == []
    case = await h.only_case()
    assert settled is not None and settled.case_id == case.case_id
    assert case.state is CaseState.IN_PROGRESS
    assert retry_notes(case) == [
        f"retry 1 at {copy.at:%Y-%m-%d %H:%M:%S} UTC: Graph returned 503"]

    resumed = await h.handler.on_request(h.redeliver(copy))

    assert resumed is not None and resumed.case_id == case.case_id
    assert resumed.state is CaseState.AWAITING_VERIFICATION
    assert resumed.request_ids == ("msg-1",)  # the copy found the case of the original
    assert h.tenant.directory.count("reset_password") == 1
    assert len(h.requests.copies) == 1


async def test_attempts_count_across_copies_and_the_last_one_escalates(h: Harness) -> None:
    h.tenant.directory.fail(ROB, TransientError("Graph returned 503"), on="reset_password")
    body = RemediationRequest(user=ROB, request_id="req-1").to_json()

    await h.handler.on_request(delivery(body))  # attempt 1: copy 1
    [first] = h.requests.copies
    h.tenant.directory.fail(ROB, RuntimeError("bug"), on="reset_password",  # type: ignore[arg-type]
                            times=1)
    with pytest.raises(RuntimeError):  # attempt 2, unexpected: abandoned, offered at once
        await h.handler.on_request(h.redeliver(first, count=1))
    h.tenant.directory.fail(ROB, TransientError("Graph returned 503"), on="reset_password")
    await h.handler.on_request(h.redeliver(first, count=2))  # attempt 3: copy 2

    assert [c.properties[ATTEMPTS] for c in h.requests.copies] == [1, 3]
    assert [c.at - h.tenant.clock.now() for c in h.requests.copies] == [BACKOFF, 4 * BACKOFF]
    assert (await h.only_case()).state is CaseState.IN_PROGRESS

    last = h.redeliver(h.requests.copies[1])
    assert last.attempt == MAX
    with pytest.raises(TransientError):  # left for the broker to dead-letter
        await h.handler.on_request(last)

    case = await h.only_case()
    assert case.state is CaseState.ESCALATED
    assert case.reason == f"remediation gave up after {MAX} deliveries: Graph returned 503"
    assert len(h.requests.copies) == 2
    assert [n.split(" at ")[0] for n in retry_notes(case)] == ["retry 1", "retry 3"]


async def test_a_copy_past_its_last_attempt_touches_nothing(h: Harness) -> None:
    body = RemediationRequest(user=ROB, request_id="req-1").to_json()

    with pytest.raises(TransientError, match="no attempt left"):
        await h.handler.on_request(delivery(body, count=2, **{ATTEMPTS: MAX}))

    assert h.tenant.events == []
    assert h.requests.copies == []


async def test_a_retry_of_a_failed_first_lookup_is_journaled_on_its_received_case(
        h: Harness) -> None:
    # The case is journaled before the first call to the tenant: the retry is on record.
    h.tenant.directory.fail(ROB, TransientError("Graph returned 429", retry_after=90),
                            on="find_user", times=1)
    body = RemediationRequest(user=ROB, request_id="req-1").to_json()

    received = await h.handler.on_request(delivery(body))

    [copy] = h.requests.copies
    assert copy.at == h.tenant.clock.now() + timedelta(seconds=90)  # Retry-After wins
    assert received is not None and received.state is CaseState.RECEIVED
    assert [n.split(" at ")[0] for n in retry_notes(received)] == ["retry 1"]
    case = await h.handler.on_request(h.redeliver(copy))
    assert case is not None and case.state is CaseState.AWAITING_VERIFICATION
    assert case.case_id == received.case_id
    assert [c.case_id for c in await h.tenant.journal.list_cases()] == [case.case_id]


async def test_without_a_retry_port_a_transient_failure_abandons() -> None:
    h = make()
    handler = MessageHandler(h.workflow)
    h.tenant.directory.fail(ROB, TransientError("503"), on="revoke_sessions", times=1)

    with pytest.raises(TransientError):
        await handler.on_request(delivery(RemediationRequest(user=ROB).to_json()))


async def test_a_failing_retry_schedule_abandons_the_message(h: Harness) -> None:
    async def refuse(*args: Any, **kwargs: Any) -> str:
        raise TransientError("Service Bus busy")

    h.requests.schedule_copy = refuse  # type: ignore[method-assign]
    h.tenant.directory.fail(ROB, TransientError("Graph returned 503"), on="revoke_sessions",
                            times=1)

    with pytest.raises(TransientError, match="Graph returned 503"):
        await h.handler.on_request(delivery(RemediationRequest(user=ROB).to_json()))


# -- the verifications queue ----------------------------------------------------------------


async def test_verification_and_alert_update_retries_go_to_the_verifications_queue(
        h: Harness) -> None:
    case = await h.workflow.remediate(RemediationRequest(
        user=ROB, request_id="alert-req", alert_ids=("fa-1",), source="alert"))
    [update] = h.notifier.updates
    h.alerts.fail("fa-1", TransientError("Graph returned 503"), on="comment", times=1)
    h.tenant.exchange.fail(ROB, TransientError("Exchange throttled", retry_after=5),
                           on="blocked_entries", times=1)
    check = VerificationCheck(case.case_id, ROB, 0)
    h.tenant.clock.advance(hours=1)  # the check is due (an early one is refused)

    await h.handler.on_verification(delivery(update.to_json(), message_id=update.message_id,
                                             kind="alerts", case_id=case.case_id))
    await h.handler.on_verification(delivery(check.to_json(), message_id=check.message_id,
                                             kind="verify", attempt=0))

    assert h.requests.copies == []
    first, second = h.follow_ups.copies
    assert isinstance(parse_follow_up(first.body), AlertUpdate)
    assert first.properties == {"kind": "alerts", "case_id": case.case_id, ATTEMPTS: 1,
                                RETRY_OF: update.message_id}
    # The verification's own "attempt" property (its place in VERIFY_DELAYS) is kept.
    assert second.properties == {"kind": "verify", "attempt": 0, ATTEMPTS: 1,
                                 RETRY_OF: check.message_id}
    notes = retry_notes(await h.workflow.case(case.case_id))
    assert [n.split(": ", 1)[1] for n in notes] == ["Graph returned 503", "Exchange throttled"]
    h.tenant.clock.set(h.tenant.exchange.unblocks[0].at + DELAYS[0])
    await h.handler.on_verification(h.redeliver(first))
    verified = await h.handler.on_verification(h.redeliver(second))
    assert verified is not None and verified.state is CaseState.VERIFIED


# -- bodies from people ---------------------------------------------------------------------


@pytest.mark.parametrize("body", [b'\xef\xbb\xbf{"user": "rob@contoso.com"}',
                                  '\ufeff{"user": "rob@contoso.com"}'])
def test_a_byte_order_mark_is_accepted(body: bytes | str) -> None:
    assert parse_request(body).user == ROB
    check = VerificationCheck("20240501-abcd", ROB, 1).to_json()
    assert parse_follow_up(b"\xef\xbb\xbf" + check.encode()) == VerificationCheck(
        "20240501-abcd", ROB, 1)


async def test_a_rejected_bom_body_still_names_its_user(h: Harness) -> None:
    case = await h.handler.on_request(delivery(
        b'\xef\xbb\xbf{"user": "rob@contoso.com", "admin": true}'))

    assert case is not None and case.state is CaseState.REJECTED
    assert case.user == ROB


# -- the time budget of one delivery ---------------------------------------------------------


async def test_a_delivery_that_outlives_its_time_budget_is_retried_later() -> None:
    h = make(budget=timedelta(seconds=0.2))
    hang = asyncio.Event()

    async def slow(user_id: str) -> None:
        await hang.wait()

    h.tenant.directory.revoke_sessions = slow  # type: ignore[method-assign]
    started = asyncio.get_running_loop().time()

    await h.handler.on_request(delivery(RemediationRequest(user=ROB).to_json()))

    assert asyncio.get_running_loop().time() - started < 1.0
    [copy] = h.requests.copies
    assert copy.properties[ATTEMPTS] == 1
    [note] = retry_notes(await h.only_case())
    assert note.endswith(": delivery time budget exhausted (0.2s)")
