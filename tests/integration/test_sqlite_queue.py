"""SqliteQueue on a real SQLite file: the Service Bus semantics the local worker relies on."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remediation.adapters.local_queue import LocalRequestSender, LocalVerificationScheduler
from remediation.adapters.queue_limits import (
    DUPLICATE_DETECTION_WINDOW,
    MAX_MESSAGE_BYTES,
    session_id_for,
)
from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.adapters.sqlite_queue import (
    MAX_DELIVERY_COUNT_EXCEEDED,
    QueueCounts,
    ReceivedMessage,
    SqliteQueue,
)
from remediation.domain.requests import RemediationRequest, parse_request
from remediation.service.messages import VerificationCheck

LOCK = 0.2
Q = "remediation-requests"
V = "remediation-verifications"


@pytest.fixture
def queue(database: SqliteDatabase) -> SqliteQueue:
    return SqliteQueue(database, lock_duration=LOCK, max_delivery_count=3)


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def receive(queue: SqliteQueue, *queues: str) -> ReceivedMessage:
    message = await queue.receive(queues or (Q,))
    assert message is not None, "expected a message"
    return message


async def test_send_receive_complete(queue: SqliteQueue) -> None:
    sequence = await queue.send(Q, '{"user": "rob@contoso.com"}', message_id="m1",
                                session_id="rob@contoso.com", properties={"kind": "remediate"})

    message = await receive(queue)

    assert message.sequence_number == sequence
    assert message.body == b'{"user": "rob@contoso.com"}'
    assert message.message_id == "m1"
    assert message.session_id == "rob@contoso.com"
    assert message.properties == {"kind": "remediate"}
    assert message.delivery_count == 1
    assert message.queue == Q
    await queue.complete(message)
    assert await queue.receive((Q,)) is None
    assert await queue.counts(Q) == QueueCounts(ready=0, scheduled=0, locked=0, completed=1,
                                                dead_lettered=0, cancelled=0)


async def test_queues_are_separate_and_bytes_bodies_survive(queue: SqliteQueue) -> None:
    await queue.send(V, b"\x00\xffbinary")

    assert await queue.receive((Q,)) is None
    message = await receive(queue, Q, V)
    assert message.queue == V
    assert message.body == b"\x00\xffbinary"


async def test_messages_come_out_in_order(queue: SqliteQueue) -> None:
    for n in range(3):
        await queue.send(Q, f"m{n}")

    bodies = []
    for _ in range(3):
        message = await receive(queue)
        bodies.append(message.body)
        await queue.complete(message)

    assert bodies == [b"m0", b"m1", b"m2"]


async def test_a_scheduled_message_is_not_receivable_before_its_time(queue: SqliteQueue) -> None:
    await queue.send(Q, "later", scheduled_at=soon(0.3))
    await queue.send(Q, "now")

    first = await receive(queue)
    assert first.body == b"now"
    await queue.complete(first)
    assert await queue.receive((Q,)) is None
    assert (await queue.counts(Q)).scheduled == 1

    await asyncio.sleep(0.35)
    later = await receive(queue)
    assert later.body == b"later"


async def test_a_lock_hides_the_message_until_it_expires(queue: SqliteQueue) -> None:
    await queue.send(Q, "work")
    first = await receive(queue)

    assert await queue.receive((Q,)) is None
    assert (await queue.counts(Q)).locked == 1

    await asyncio.sleep(LOCK + 0.05)
    second = await receive(queue)
    assert second.sequence_number == first.sequence_number
    assert second.delivery_count == 2
    assert second.lock_token != first.lock_token

    # The first receiver lost its lock: its late completion must not settle the message.
    await queue.complete(first)
    assert (await queue.counts(Q)).completed == 0
    await queue.complete(second)
    assert (await queue.counts(Q)).completed == 1


async def test_renewing_the_lock_keeps_the_message(queue: SqliteQueue) -> None:
    await queue.send(Q, "slow work")
    message = await receive(queue)

    for _ in range(3):
        await asyncio.sleep(LOCK / 2)
        await queue.renew_lock(message)
        assert await queue.receive((Q,)) is None


async def test_abandon_redelivers(queue: SqliteQueue) -> None:
    await queue.send(Q, "retry me")
    first = await receive(queue)

    dead = await queue.abandon(first, "throttled")

    assert dead is False
    second = await receive(queue)
    assert second.sequence_number == first.sequence_number
    assert second.delivery_count == 2


async def test_an_abandoned_message_is_offered_again_at_once(queue: SqliteQueue) -> None:
    """Like Service Bus: no hidden back-off (delayed retries are the handler's copies)."""
    await queue.send(Q, "retry me", message_id="m-1")
    await queue.abandon(await receive(queue), "429")

    assert (await queue.counts(Q)).scheduled == 0
    again = await receive(queue)
    assert (again.message_id, again.delivery_count) == ("m-1", 2)


async def test_abandon_on_the_last_delivery_dead_letters(queue: SqliteQueue) -> None:
    await queue.send(Q, "hopeless", message_id="m-hopeless", session_id="rob@contoso.com")
    for delivery in range(1, 4):
        message = await receive(queue)
        assert message.delivery_count == delivery
        dead = await queue.abandon(message, f"Graph returned 503 (attempt {delivery})")

    assert dead is True
    assert await queue.receive((Q,)) is None
    assert await queue.dead_letters(Q) == [{
        "queue": Q, "message_id": "m-hopeless", "session_id": "rob@contoso.com",
        "delivery_count": 3, "dead_letter_reason": MAX_DELIVERY_COUNT_EXCEEDED,
        "dead_letter_description": "Graph returned 503 (attempt 3)",
        "settled_at": pytest.approx(time.time(), abs=5)}]
    assert (await queue.counts(Q)).dead_lettered == 1


async def test_a_lock_expiring_on_the_last_delivery_dead_letters_at_the_next_receive(
        queue: SqliteQueue) -> None:
    await queue.send(Q, "crashes the worker", message_id="m-crash")
    await queue.send(Q, "fine", message_id="m-fine")
    for _ in range(3):
        message = await receive(queue)
        assert message.message_id == "m-crash"
        await asyncio.sleep(LOCK + 0.05)  # the worker died holding the lock

    message = await receive(queue)

    assert message.message_id == "m-fine"
    [dead] = await queue.dead_letters(Q)
    assert dead["message_id"] == "m-crash"
    assert dead["dead_letter_reason"] == MAX_DELIVERY_COUNT_EXCEEDED
    assert dead["dead_letter_description"] == "lock expired on the last delivery"
    assert dead["delivery_count"] == 3


async def test_explicit_dead_letter(queue: SqliteQueue) -> None:
    await queue.send(Q, "poison")

    await queue.dead_letter(await receive(queue), "InvalidMessage", "not JSON")

    assert await queue.receive((Q,)) is None
    [dead] = await queue.dead_letters()
    assert (dead["dead_letter_reason"], dead["dead_letter_description"]) == (
        "InvalidMessage", "not JSON")


async def test_a_duplicate_message_id_returns_the_original(queue: SqliteQueue) -> None:
    original = await queue.send(Q, "first", message_id="alert-42")
    duplicate = await queue.send(Q, "second", message_id="alert-42")
    other_queue = await queue.send(V, "same id, other queue", message_id="alert-42")

    assert duplicate == original
    assert other_queue != original
    message = await receive(queue)
    assert message.body == b"first"
    await queue.complete(message)
    # Still a duplicate after completion, as long as the window lasts.
    assert await queue.send(Q, "third", message_id="alert-42") == original
    assert await queue.receive((Q,)) is None
    assert (await queue.counts(Q)).completed == 1


async def test_the_duplicate_window_is_the_one_service_bus_has(database: SqliteDatabase) -> None:
    assert SqliteQueue(database).duplicate_window == DUPLICATE_DETECTION_WINDOW.total_seconds()


async def test_a_dead_lettered_id_is_held_for_the_window_and_a_new_id_resends(
        database: SqliteDatabase) -> None:
    """Service Bus keys duplicate detection on the message id within the window whatever
    became of the message; a person re-sends with a new id (``remediation enqueue`` always
    makes one), and the old id is accepted again once the window has passed."""
    queue = SqliteQueue(database, lock_duration=LOCK, max_delivery_count=1,
                        duplicate_window=0.3)
    first = await queue.send(Q, "doomed", message_id="req-1", session_id="rob@contoso.com")
    await queue.abandon(await receive(queue), "Graph returned 503")
    assert [d["message_id"] for d in await queue.dead_letters(Q)] == ["req-1"]

    assert await queue.send(Q, "again", message_id="req-1", session_id="rob@contoso.com") == first
    assert await queue.receive((Q,)) is None
    resent = await queue.send(Q, "again", message_id="req-2", session_id="rob@contoso.com")
    assert (await receive(queue)).sequence_number == resent
    await asyncio.sleep(0.35)
    assert await queue.send(Q, "later", message_id="req-1",
                            session_id="rob@contoso.com") not in (first, resent)


async def test_ids_longer_than_service_bus_takes_are_refused(queue: SqliteQueue) -> None:
    with pytest.raises(ValueError, match="message_id"):
        await queue.send(Q, "x", message_id="m" * 129)
    with pytest.raises(ValueError, match="session_id"):
        await queue.send(Q, "x", session_id="s" * 129)
    await queue.send(Q, "x", message_id="m" * 128, session_id="s" * 128)
    assert (await queue.counts(Q)).ready == 1


async def test_a_session_queue_refuses_a_message_without_a_session(
        database: SqliteDatabase) -> None:
    queue = SqliteQueue(database, session_queues=(Q,))

    with pytest.raises(ValueError, match="session"):
        await queue.send(Q, '{"user": "rob@contoso.com"}')
    await queue.send(V, "not a session queue")
    await queue.send(Q, '{"user": "rob@contoso.com"}', session_id="rob@contoso.com")
    assert (await queue.counts()).ready == 2


async def test_a_body_over_the_standard_tier_limit_is_refused(queue: SqliteQueue) -> None:
    with pytest.raises(ValueError, match="256 KB"):
        await queue.send(Q, b"x" * (MAX_MESSAGE_BYTES + 1))
    assert (await queue.counts(Q)).ready == 0


async def test_long_addresses_map_to_one_digest_session_on_both_queues(
        database: SqliteDatabase) -> None:
    queue = SqliteQueue(database, session_queues=(Q, V))
    long_user = "a" * 64 + "@" + "b" * 60 + "." + "c" * 50 + ".contoso.com"
    requests, follow_ups = LocalRequestSender(queue, Q), LocalVerificationScheduler(queue, V)

    await requests.send(RemediationRequest(user=long_user, request_id="x" * 200))
    await follow_ups.schedule(VerificationCheck("20240501-abcd", long_user, 0), soon(0))
    request = await receive(queue, Q)
    await queue.complete(request)  # (the twin locks a session across both queues)
    check = await receive(queue, V)

    assert request.session_id == check.session_id == session_id_for(long_user)
    assert request.session_id is not None and len(request.session_id) <= 128
    assert len(request.message_id) <= 128
    assert parse_request(request.body).request_id == "x" * 200
    assert session_id_for("rob@contoso.com") == "rob@contoso.com"


async def test_a_message_id_can_be_reused_after_the_window(database: SqliteDatabase) -> None:
    queue = SqliteQueue(database, lock_duration=LOCK, duplicate_window=0.1)
    first = await queue.send(Q, "first", message_id="alert-42")
    await asyncio.sleep(0.15)

    second = await queue.send(Q, "second", message_id="alert-42")

    assert second != first
    assert (await queue.counts(Q)).ready == 2


async def test_cancel_scheduled(queue: SqliteQueue) -> None:
    keep = await queue.send(V, "check 0", scheduled_at=soon(0.1))
    drop = await queue.send(V, "check 1", scheduled_at=soon(0.1))

    await queue.cancel_scheduled(drop)
    await asyncio.sleep(0.15)

    message = await receive(queue, V)
    assert message.sequence_number == keep
    await queue.complete(message)
    assert await queue.receive((V,)) is None
    counts = await queue.counts(V)
    assert (counts.cancelled, counts.completed) == (1, 1)


async def test_cancel_does_not_touch_a_message_already_delivered(queue: SqliteQueue) -> None:
    sequence = await queue.send(V, "check 0")
    message = await receive(queue, V)

    await queue.cancel_scheduled(sequence)
    await queue.abandon(message, "retry")

    assert (await receive(queue, V)).sequence_number == sequence


async def test_one_locked_message_per_session(queue: SqliteQueue) -> None:
    await queue.send(Q, "a1", session_id="a")
    await queue.send(Q, "a2", session_id="a")
    await queue.send(Q, "b1", session_id="b")
    await queue.send(Q, "none")

    a1 = await receive(queue)
    b1 = await receive(queue)
    free = await receive(queue)

    assert (a1.body, b1.body, free.body) == (b"a1", b"b1", b"none")
    assert await queue.receive((Q,)) is None  # a2 waits while a1 is locked
    await queue.complete(a1)
    a2 = await receive(queue)
    assert a2.body == b"a2"


async def test_receive_many_locks_up_to_its_limit_one_message_of_a_session_each(
        queue: SqliteQueue) -> None:
    """As Service Bus's ``receive_messages(max_message_count=...)``: oldest first, each
    message with its own lock token and delivery count, never two of one session."""
    await queue.send(Q, "adele 1", session_id="adele@contoso.com")
    await queue.send(Q, "adele 2", session_id="adele@contoso.com")
    await queue.send(Q, "rob 1", session_id="rob@contoso.com")
    await queue.send(Q, "megan 1", session_id="megan@contoso.com")
    await queue.send(Q, "later", session_id="lee@contoso.com", scheduled_at=soon(60))

    first = await queue.receive_many((Q,), 2)
    rest = await queue.receive_many((Q,), 10)

    assert [m.body for m in first] == [b"adele 1", b"rob 1"]
    assert [m.body for m in rest] == [b"megan 1"]  # adele's session is held
    taken = [*first, *rest]
    assert len({m.lock_token for m in taken}) == 3
    assert {m.delivery_count for m in taken} == {1}
    await queue.complete(first[0])  # each settles by its own lock
    assert [m.body for m in await queue.receive_many((Q,), 10)] == [b"adele 2"]
    assert await queue.receive_many((Q,), 10) == []
    assert (await queue.counts(Q)).locked == 3


async def test_a_session_is_free_again_when_its_lock_expires(queue: SqliteQueue) -> None:
    await queue.send(Q, "a1", session_id="a")
    await queue.send(Q, "a2", session_id="a", scheduled_at=soon(0.05))
    await receive(queue)
    await asyncio.sleep(0.1)
    assert await queue.receive((Q,)) is None

    await asyncio.sleep(LOCK)
    redelivered = await receive(queue)
    assert (redelivered.body, redelivered.delivery_count) == (b"a1", 2)


async def test_counts_and_next_visible_at(queue: SqliteQueue) -> None:
    assert await queue.next_visible_at((Q, V)) is None
    assert await queue.counts() == QueueCounts(0, 0, 0, 0, 0, 0)
    before = time.time()
    await queue.send(Q, "ready")
    await queue.send(Q, "locked")
    later = soon(30)
    await queue.send(V, "scheduled", scheduled_at=later)
    await receive(queue)  # locks "ready"

    assert await queue.counts() == QueueCounts(ready=1, scheduled=1, locked=1, completed=0,
                                               dead_lettered=0, cancelled=0)
    assert await queue.counts(V) == QueueCounts(0, 1, 0, 0, 0, 0)
    assert await queue.next_visible_at((V,)) == pytest.approx(later.timestamp())
    assert before <= (await queue.next_visible_at((Q, V)) or 0) <= time.time()


async def test_next_visible_at_includes_the_end_of_a_lock(queue: SqliteQueue) -> None:
    await queue.send(Q, "only")
    locked_at = time.time()
    await receive(queue)

    visible = await queue.next_visible_at((Q,))

    assert visible == pytest.approx(locked_at + LOCK, abs=0.05)


async def test_messages_survive_a_new_connection(db_path: Path) -> None:
    first = SqliteDatabase(db_path)
    await SqliteQueue(first).send(Q, "durable", message_id="m1")
    first.close()

    second = SqliteDatabase(db_path)
    try:
        message = await SqliteQueue(second).receive((Q,))
        assert message is not None
        assert message.body == b"durable"
    finally:
        second.close()


@pytest.fixture
async def two_processes(db_path: Path) -> AsyncIterator[tuple[SqliteQueue, SqliteQueue]]:
    """Two queues on one file, each with its own connections, as two processes would have."""
    databases = [SqliteDatabase(db_path), SqliteDatabase(db_path)]
    yield (SqliteQueue(databases[0], lock_duration=30), SqliteQueue(databases[1],
                                                                     lock_duration=30))
    for database in databases:
        database.close()


async def test_two_instances_never_receive_the_same_message(
        two_processes: tuple[SqliteQueue, SqliteQueue]) -> None:
    one, two = two_processes
    sent = {await one.send(Q, f"m{n}") for n in range(30)}

    received: list[ReceivedMessage] = []
    while True:
        batch = await asyncio.gather(*(q.receive((Q,)) for q in (one, two) for _ in range(4)))
        got = [m for m in batch if m is not None]
        if not got:
            break
        received += got

    numbers = [m.sequence_number for m in received]
    assert sorted(numbers) == sorted(sent)  # every message exactly once
    assert len(set(numbers)) == len(numbers)


async def test_two_instances_respect_each_others_session_locks(
        two_processes: tuple[SqliteQueue, SqliteQueue]) -> None:
    one, two = two_processes
    for n in range(4):
        await one.send(Q, f"a{n}", session_id="a")
    await one.send(Q, "b0", session_id="b")

    batch = await asyncio.gather(*(q.receive((Q,)) for q in (one, two, one, two)))

    sessions = sorted(m.session_id or "" for m in batch if m is not None)
    assert sessions == ["a", "b"]


async def test_first_use_of_a_fresh_file_waits_for_another_writer(db_path: Path) -> None:
    other = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # the file's first writer, not in WAL mode yet
    asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
    database = SqliteDatabase(db_path)
    try:
        started = time.monotonic()
        await SqliteQueue(database).send(Q, "first")
        assert time.monotonic() - started >= 0.25
        assert (await SqliteQueue(database).counts(Q)).ready == 1
    finally:
        database.close()
        await asyncio.sleep(0.35)  # let the pending COMMIT run before closing
        other.close()
