"""LocalWorker with a real SqliteQueue and plain async handlers."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remediation.adapters import local_worker
from remediation.adapters.local_worker import Handler, LocalWorker
from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.adapters.sqlite_queue import MAX_DELIVERY_COUNT_EXCEEDED, SqliteQueue
from remediation.domain.cases import Case, CaseState
from remediation.domain.errors import TransientError
from remediation.service.handler import Delivery

Q = "remediation-requests"
V = "remediation-verifications"
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[SqliteDatabase]:
    database = SqliteDatabase(tmp_path / "state.db")
    yield database
    database.close()


@pytest.fixture
async def queue(database: SqliteDatabase) -> SqliteQueue:
    queue = SqliteQueue(database, lock_duration=1.0, max_delivery_count=3)
    # Create the file before the worker's loops race to open it: concurrent first use of a
    # fresh file is a known bug (see test_sqlite_queue.py), not what these tests are about.
    await queue.counts()
    return queue


def a_case(delivery: Delivery) -> Case:
    return Case(case_id=delivery.message_id, user="rob@contoso.com",
                state=CaseState.VERIFIED, created_at=T0, updated_at=T0)


def worker(queue: SqliteQueue, handlers: dict[str, Handler], *,
           concurrency: int = 4) -> LocalWorker:
    return LocalWorker(queue, handlers, concurrency=concurrency, poll_interval=0.05)


async def run_until_idle(work: LocalWorker, limit: float = 5.0) -> None:
    async with asyncio.timeout(limit):
        await work.run(until_idle=True)


async def test_sessions_run_in_parallel_but_never_overlap_with_themselves(
        queue: SqliteQueue) -> None:
    sessions = ["adele@contoso.com", "rob@contoso.com", "megan@contoso.com", "lee@contoso.com"]
    for n in range(3):
        for session in sessions:
            await queue.send(Q, f"{session}:{n}", session_id=session)
    active: Counter[str] = Counter()
    overlaps: list[str] = []
    peak = 0
    seen: list[str] = []

    async def handle(delivery: Delivery) -> Case:
        nonlocal peak
        session = delivery.body.decode().split(":")[0]
        active[session] += 1
        if active[session] > 1:
            overlaps.append(session)
        peak = max(peak, sum(active.values()))
        await asyncio.sleep(0.05)
        seen.append(delivery.body.decode())
        active[session] -= 1
        return a_case(delivery)

    work = worker(queue, {Q: handle}, concurrency=4)
    await run_until_idle(work)

    assert overlaps == []
    assert peak >= 2, "sessions should be processed concurrently"
    assert sorted(seen) == sorted(f"{s}:{n}" for s in sessions for n in range(3))
    assert work.processed == 12
    assert (await queue.counts(Q)).completed == 12


async def test_a_failing_message_is_abandoned_and_retried(queue: SqliteQueue) -> None:
    await queue.send(Q, "flaky")
    deliveries: list[int] = []

    async def handle(delivery: Delivery) -> Case:
        deliveries.append(delivery.delivery_count)
        assert delivery.max_delivery_count == 3
        if delivery.delivery_count == 1:
            raise TransientError("Graph returned 503")
        return a_case(delivery)

    await run_until_idle(worker(queue, {Q: handle}))

    assert deliveries == [1, 2]
    counts = await queue.counts(Q)
    assert (counts.completed, counts.dead_lettered) == (1, 0)


@pytest.mark.parametrize(("error", "description"), [
    (TransientError("Exchange throttled"), "Exchange throttled"),
    (ValueError("secret internals"), "unexpected ValueError"),
])
async def test_a_message_that_keeps_failing_is_dead_lettered_after_the_last_delivery(
        queue: SqliteQueue, error: Exception, description: str) -> None:
    await queue.send(Q, "hopeless", message_id="m-hopeless")
    await queue.send(Q, "fine", message_id="m-fine")
    attempts: list[tuple[int, float]] = []

    async def handle(delivery: Delivery) -> Case:
        if delivery.message_id == "m-fine":
            return a_case(delivery)
        attempts.append((delivery.delivery_count, time.monotonic()))
        raise error

    await run_until_idle(worker(queue, {Q: handle}))

    assert [count for count, _ in attempts] == [1, 2, 3]
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(attempts)]
    # Offered again at once, as Service Bus does: a delayed retry is the handler's to schedule.
    assert max(gaps) < 0.5  # (the old hidden back-off started at 2 s)
    [dead] = await queue.dead_letters(Q)
    assert dead["message_id"] == "m-hopeless"
    assert dead["dead_letter_reason"] == MAX_DELIVERY_COUNT_EXCEEDED
    assert dead["dead_letter_description"] == description
    assert (await queue.counts(Q)).completed == 1


async def test_the_handler_sees_the_session_and_the_application_properties(
        queue: SqliteQueue) -> None:
    await queue.send(Q, "copy", message_id="m-2", session_id="rob@contoso.com",
                     properties={"kind": "remediate", "delivery_attempts": 2, "retry_of": "m-1"})
    seen: list[Delivery] = []

    async def handle(delivery: Delivery) -> Case:
        seen.append(delivery)
        return a_case(delivery)

    await run_until_idle(worker(queue, {Q: handle}))

    [delivery] = seen
    assert delivery.session_id == "rob@contoso.com"
    assert delivery.properties == {"kind": "remediate", "delivery_attempts": 2, "retry_of": "m-1"}
    assert (delivery.attempt, delivery.first_message_id) == (3, "m-1")


async def test_run_until_idle_returns_at_once_when_nothing_is_queued(
        queue: SqliteQueue) -> None:
    async def handle(delivery: Delivery) -> Case:
        raise AssertionError("nothing should be delivered")

    started = time.monotonic()
    await run_until_idle(worker(queue, {Q: handle}), limit=1.0)

    assert time.monotonic() - started < 0.5


async def test_run_until_idle_waits_for_scheduled_follow_ups(queue: SqliteQueue) -> None:
    await queue.send(Q, "request", session_id="rob@contoso.com")
    handled: list[tuple[str, str]] = []

    async def on_request(delivery: Delivery) -> Case:
        handled.append((Q, delivery.body.decode()))
        await queue.send(V, "check", session_id="rob@contoso.com",
                         scheduled_at=datetime.now(UTC) + timedelta(seconds=0.3))
        return a_case(delivery)

    async def on_verification(delivery: Delivery) -> Case:
        handled.append((V, delivery.body.decode()))
        return a_case(delivery)

    started = time.monotonic()
    await run_until_idle(worker(queue, {Q: on_request, V: on_verification}))

    assert handled == [(Q, "request"), (V, "check")]
    assert time.monotonic() - started >= 0.3
    counts = await queue.counts()
    assert (counts.ready, counts.scheduled, counts.locked, counts.completed) == (0, 0, 0, 2)
    assert await queue.next_visible_at((Q, V)) is None


async def test_a_slow_handler_keeps_its_lock(database: SqliteDatabase) -> None:
    queue = SqliteQueue(database, lock_duration=0.15, max_delivery_count=3)
    await queue.send(Q, "slow")
    deliveries: list[int] = []

    async def handle(delivery: Delivery) -> Case:
        deliveries.append(delivery.delivery_count)
        await asyncio.sleep(0.5)  # more than three lock durations
        return a_case(delivery)

    await run_until_idle(worker(queue, {Q: handle}, concurrency=3))

    assert deliveries == [1]
    assert (await queue.counts(Q)).completed == 1


async def test_run_stops_when_asked(queue: SqliteQueue) -> None:
    stop = asyncio.Event()
    handled: list[bytes] = []

    async def handle(delivery: Delivery) -> Case:
        handled.append(delivery.body)
        stop.set()
        return a_case(delivery)

    work = worker(queue, {Q: handle}, concurrency=2)
    running = asyncio.create_task(work.run(stop=stop))
    await queue.send(Q, "one")

    await asyncio.wait_for(running, 2.0)

    assert handled == [b"one"]
    assert (await queue.counts(Q)).completed == 1


async def test_a_request_queued_into_an_idle_worker_is_taken_before_its_poll_interval(
        queue: SqliteQueue) -> None:
    # The loops' own poll interval is a minute: the looker wakes them.
    stop = asyncio.Event()
    handled: list[bytes] = []

    async def handle(delivery: Delivery) -> Case:
        handled.append(delivery.body)
        stop.set()
        return a_case(delivery)

    work = LocalWorker(queue, {Q: handle}, concurrency=4, poll_interval=60.0)
    running = asyncio.create_task(work.run(stop=stop))
    await asyncio.sleep(0.2)  # every loop has found the queue empty and is waiting
    await queue.send(Q, "one")

    await asyncio.wait_for(running, 10.0)

    assert handled == [b"one"]


async def test_no_new_message_is_taken_while_the_tenant_is_throttling(
        queue: SqliteQueue) -> None:
    stop = asyncio.Event()
    hold = [0.5]  # seconds until the throttling gates open, as the gates say
    handled: list[bytes] = []

    async def handle(delivery: Delivery) -> Case:
        handled.append(delivery.body)
        stop.set()
        return a_case(delivery)

    work = LocalWorker(queue, {Q: handle}, concurrency=2, poll_interval=0.01,
                       throttled=lambda: hold[0])
    running = asyncio.create_task(work.run(stop=stop))
    await queue.send(Q, "one")
    await asyncio.sleep(0.2)  # many polls' worth: the message stays on the queue
    assert handled == []
    assert (await queue.counts(Q)).ready == 1

    hold[0] = 0.0  # the gates opened: the loops take it once their wait ends
    await asyncio.wait_for(running, 10.0)

    assert handled == [b"one"]


async def test_throttling_longer_than_a_call_may_wait_holds_nothing_back(
        queue: SqliteQueue) -> None:
    # Ten minutes asked: a new case's first call fails at once without reaching the tenant,
    # and its retry is scheduled after the Retry-After; run --until-idle must not wait it out.
    await queue.send(Q, "one")
    handled: list[bytes] = []

    async def handle(delivery: Delivery) -> Case:
        handled.append(delivery.body)
        return a_case(delivery)

    work = LocalWorker(queue, {Q: handle}, concurrency=2, poll_interval=0.05,
                       throttled=lambda: 600.0)
    await run_until_idle(work)

    assert handled == [b"one"]


async def test_idle_loops_do_not_hammer_the_queue_while_a_message_waits_for_its_session(
        queue: SqliteQueue) -> None:
    """One user's message in hand, their next one ready but held by the session (the alert
    storm: three alerts of one account): the idle loops wait to be woken instead of asking
    the queue over and over, so the process's CPU goes to the work in hand."""
    for n in range(2):
        await queue.send(Q, f"adele:{n}", session_id="adele@contoso.com")
    release, in_hand = asyncio.Event(), asyncio.Event()
    handled: list[bytes] = []

    async def handle(delivery: Delivery) -> Case:
        handled.append(delivery.body)
        if delivery.body == b"adele:0":
            in_hand.set()
            await release.wait()
        return a_case(delivery)

    asked = 0
    receive = queue.receive_many

    async def counted(queues: tuple[str, ...], limit: int) -> object:
        nonlocal asked
        asked += 1
        return await receive(queues, limit)

    queue.receive_many = counted  # type: ignore[method-assign, assignment]
    # The runtime's poll interval (``remediation run``: 0.5 s), a loop's own fallback.
    work = LocalWorker(queue, {Q: handle}, concurrency=20, poll_interval=0.5)
    running = asyncio.create_task(run_until_idle(work))
    await in_hand.wait()
    asked_before = asked
    for _ in range(50):  # adele:1 is ready and its session held throughout
        await asyncio.sleep(0.01)
    asked_meanwhile = asked - asked_before
    release.set()
    await running

    assert handled == [b"adele:0", b"adele:1"]
    # Woken by the looker (every LOOK_INTERVAL), one loop at a time, and each loop's own
    # poll interval: 20 idle loops asking every 10 ms asked about a thousand times here.
    assert asked_meanwhile < 100, f"{asked_meanwhile} receives while nothing could be taken"


class Spied:
    """The queue's ``receive_many``, counted (the sizes of the calls that took something)
    and, with a ``gate``, held until it is set."""

    def __init__(self, queue: SqliteQueue, gate: asyncio.Event | None = None) -> None:
        self.receive = queue.receive_many
        self.took: list[int] = []
        self.gate = gate
        self.asked = asyncio.Event()
        queue.receive_many = self  # type: ignore[method-assign, assignment]

    async def __call__(self, queues: tuple[str, ...], limit: int) -> object:
        self.asked.set()
        if self.gate is not None:
            await self.gate.wait()
        taken = await self.receive(queues, limit)
        if taken:
            self.took.append(len(taken))
        return taken


async def test_a_burst_queued_into_idle_loops_is_taken_in_one_receive(
        queue: SqliteQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight requests into eight idle loops: the loop the looker wakes takes all eight at
    once and hands seven over, where one a loop, each waking the next, took eight receives
    one after another before the last case could start."""
    started: list[bytes] = []
    everyone = asyncio.Event()

    async def handle(delivery: Delivery) -> Case:
        started.append(delivery.body)
        if len(started) == 8:
            everyone.set()
        await everyone.wait()  # all eight in hand at once
        return a_case(delivery)

    spied = Spied(queue)
    stop = asyncio.Event()
    # The looker's first look comes once all eight are queued.
    monkeypatch.setattr(local_worker, "LOOK_INTERVAL", 0.5)
    work = LocalWorker(queue, {Q: handle}, concurrency=8, poll_interval=60.0)
    running = asyncio.create_task(work.run(stop=stop))
    await asyncio.sleep(0.1)  # every loop has found the queue empty and waits
    for n in range(8):
        await queue.send(Q, f"request {n}")
    await asyncio.wait_for(everyone.wait(), 5.0)
    stop.set()
    await asyncio.wait_for(running, 5.0)

    assert sorted(started) == sorted(f"request {n}".encode() for n in range(8))
    assert spied.took == [8]
    assert (await queue.counts(Q)).completed == 8


@pytest.mark.parametrize("stopped", [False, True])
async def test_messages_handed_to_idle_loops_are_worked_once_even_when_they_stop_waiting(
        queue: SqliteQueue, stopped: bool) -> None:
    """The receive a woken loop makes for the idle ones outlasts their own wait (0.3 s), or
    the worker is told to stop meanwhile: every message it took is worked, once, and none
    is left locked; so too for loops an earlier receive had counted on and handed nothing
    (it found one message)."""
    handled: list[bytes] = []
    first_done = asyncio.Event()

    async def handle(delivery: Delivery) -> Case:
        handled.append(delivery.body)
        first_done.set()
        return a_case(delivery)

    stop = asyncio.Event()
    work = LocalWorker(queue, {Q: handle}, concurrency=6, poll_interval=0.3)
    running = asyncio.create_task(work.run(stop=stop))
    await asyncio.sleep(0.05)  # every loop found the queue empty: idle for 0.3 s
    await queue.send(Q, "first")  # one loop takes it, the five others were counted on
    await asyncio.wait_for(first_done.wait(), 5.0)
    handled.clear()
    gate = asyncio.Event()
    spied = Spied(queue, gate)
    for n in range(6):
        await queue.send(Q, f"request {n}")
    await asyncio.wait_for(spied.asked.wait(), 5.0)  # woken by the looker
    if stopped:
        stop.set()
    await asyncio.sleep(0.4)  # the idle loops' waits end
    gate.set()
    for _ in range(200):
        if len(handled) == 6:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(running, 5.0)

    assert sorted(handled) == sorted(f"request {n}".encode() for n in range(6))
    assert spied.took == [6]  # one loop took them all and handed five over
    counts = await queue.counts(Q)
    assert (counts.completed, counts.locked, counts.ready) == (7, 0, 0)
