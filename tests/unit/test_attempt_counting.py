"""Counting attempts (handler.Delivery): what a copy's ``delivery_attempts`` property may say,
the broker's own maximum, and a message offered again after its last attempt."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from remediation.adapters.local_worker import LocalWorker
from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.adapters.sqlite_queue import MAX_DELIVERY_COUNT_EXCEEDED, SqliteQueue
from remediation.domain.cases import CaseState
from remediation.domain.errors import TransientError
from remediation.domain.requests import RemediationRequest
from remediation.service.handler import ATTEMPTS, Delivery
from tests.unit.test_retries import MAX, ROB, Harness, delivery, make

Q = "remediation-requests"
GAVE_UP = f"remediation gave up after {MAX} deliveries: Graph returned 503"


@pytest.fixture
def h() -> Harness:
    return make()


def request_body() -> str:
    return RemediationRequest(user=ROB, request_id="req-1").to_json()


# -- the delivery_attempts property: ASCII digits only ----------------------------------------


@pytest.mark.parametrize(("value", "attempt"), [
    (3, 4), ("3", 4), ("\u00b2", 1), ("\u0663", 1), ("\uff13", 1), ("-1", 1), ("", 1),
    (True, 1), (None, 1), (3.0, 1)])
def test_only_a_whole_number_in_ascii_digits_counts_as_earlier_attempts(
        value: Any, attempt: int) -> None:
    # "²".isdigit() is True but int("²") raises; int("٣") is 3.
    assert Delivery(b"{}", "m", 1, MAX, properties={ATTEMPTS: value}).attempt == attempt


async def test_a_superscript_attempts_property_does_not_escape_the_handler(h: Harness) -> None:
    case = await h.handler.on_request(delivery(request_body(), **{ATTEMPTS: "\u00b2"}))

    assert case is not None and case.state is CaseState.AWAITING_VERIFICATION


# -- the broker's own maximum ----------------------------------------------------------------


async def test_the_brokers_last_delivery_escalates_whatever_max_delivery_count_says(
        h: Harness) -> None:
    """MAX_DELIVERY_COUNT 20 on a queue whose maxDeliveryCount is 10: the tenth delivery is
    the last (the broker dead-letters the message after it), so the case is escalated then."""
    h.tenant.directory.fail(ROB, RuntimeError("bug"), on="reset_password")  # type: ignore[arg-type]
    body = request_body().encode()
    for count in range(1, 10):
        with pytest.raises(RuntimeError):
            await h.handler.on_request(Delivery(body, "m", count, 20, ROB,
                                                broker_max_delivery_count=10))
        assert (await h.only_case()).state is not CaseState.ESCALATED

    with pytest.raises(RuntimeError):
        await h.handler.on_request(Delivery(body, "m", 10, 20, ROB, broker_max_delivery_count=10))

    case = await h.only_case()
    assert case.state is CaseState.ESCALATED
    assert case.reason == "remediation gave up after 10 deliveries: unexpected RuntimeError"


# -- past the last attempt: no second give-up, the real reason kept ---------------------------


async def test_redeliveries_after_the_last_attempt_give_up_no_more_and_keep_the_reason(
        h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h.tenant.directory.fail(ROB, TransientError("Graph returned 503"), on="reset_password")
    with pytest.raises(TransientError, match=r"^Graph returned 503$"):
        await h.handler.on_request(delivery(request_body(), count=MAX))  # the last attempt
    case = await h.only_case()
    assert (case.state, case.reason) == (CaseState.ESCALATED, GAVE_UP)
    steps = case.steps
    caplog.clear()

    for count in range(MAX + 1, MAX + 4):  # Service Bus offers the abandoned message again
        with pytest.raises(TransientError) as raised:
            await h.handler.on_request(delivery(request_body(), count=count))
        assert raised.value.reason == (f"no attempt left (attempt {count} of {MAX}): given up "
                                       f"already: {GAVE_UP}")

    assert (await h.only_case()).steps == steps  # nothing journaled, nobody told again
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_the_twin_dead_letters_a_copy_with_the_real_reason(h: Harness,
                                                                  tmp_path: Path) -> None:
    """A copy on its last attempt gives up; the twin offers it again at once until its own
    maximum, and the dead-letter's description still says why."""
    database = SqliteDatabase(tmp_path / "state.db")
    queue = SqliteQueue(database, lock_duration=1.0, max_delivery_count=MAX)
    h.tenant.directory.fail(ROB, TransientError("Graph returned 503"), on="reset_password")
    await queue.send(Q, request_body(), message_id="copy-1", session_id=ROB,
                     properties={ATTEMPTS: MAX - 1})
    try:
        async with asyncio.timeout(10):
            await LocalWorker(queue, {Q: h.handler.on_request},
                              poll_interval=0.05).run(until_idle=True)
        [dead] = await queue.dead_letters(Q)
    finally:
        database.close()

    assert dead["dead_letter_reason"] == MAX_DELIVERY_COUNT_EXCEEDED
    assert dead["dead_letter_description"].endswith(f"given up already: remediation gave up "
                                                    f"after {MAX} deliveries: Graph returned 503")
    assert [s.name for s in (await h.only_case()).steps].count("escalated") == 1
