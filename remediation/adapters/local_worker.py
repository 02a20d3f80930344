"""The local runtime's worker loop: several users at once, one message per user at a time.

It gives the handler what the Functions host gives it in Azure: a locked message with a
delivery count, its session id and application properties, lock renewal while it works,
completion on return, abandonment (and dead-lettering after the last delivery) on an
exception. Like Service Bus, an abandoned message is offered again at once: back-off is the
handler's (a scheduled copy), the same code in Azure and here.

Idle loops do not each poll the queue: one looker reads when the next message is due every
LOOK_INTERVAL (one query for all the loops) and wakes one idle loop when one is, so a request
queued into an idle worker waits at most about LOOK_INTERVAL, not a loop's poll interval. A
loop that looks takes a message for itself and one for each loop idle at that moment, in one
write (``SqliteQueue.receive_many``, as a Service Bus receiver asks for up to that many), and
hands them over: a burst starts at once, where one message a loop, each waking the next,
had the last of 30 cases start some 0.2 s after the first (docs/BENCHMARKS.md). A loop that
found nothing it could take waits to be woken. A message
that is due but whose session another loop holds (the next alert of an account whose case is
in hand) is therefore asked for about once per LOOK_INTERVAL, not by every idle loop in turn:
before, in an alert storm, idle loops asking every 10 ms took the CPU the cases needed. While
the tenant is throttling this process (``throttled``: seconds until its Graph and Exchange
throttling gates open), no loop takes a new message: the cases already under way finish
first, and a new one would only wait at the gate and spend its call budget there. A longer
hold than a call may wait (DEFAULT_MAX_WAIT) holds nothing: a new case's first call then
fails at once without reaching the tenant and its retry is scheduled after the
``Retry-After``, as before; ``run --until-idle`` never waits out ten minutes of throttling.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from remediation.adapters.retrying import DEFAULT_MAX_WAIT
from remediation.adapters.sqlite_queue import ReceivedMessage, SqliteQueue
from remediation.domain.cases import Case
from remediation.domain.errors import RemediationError
from remediation.logsafety import redact
from remediation.service.handler import Delivery

log = logging.getLogger(__name__)

Handler = Callable[[Delivery], Awaitable[Case | None]]

LOOK_INTERVAL = 0.05  # seconds between the looker's reads of an idle queue


class LocalWorker:
    def __init__(self, queue: SqliteQueue, handlers: dict[str, Handler], *,
                 concurrency: int = 8, poll_interval: float = 0.5,
                 max_attempts: int | None = None,
                 paused: Callable[[], Awaitable[bool]] | None = None,
                 on_case: Callable[[Case], None] | None = None,
                 throttled: Callable[[], float] | None = None) -> None:
        """``max_attempts``: MAX_DELIVERY_COUNT, the attempts across copies (default: the
        queue's own maximum, after which it dead-letters a message). ``paused``: is the kill
        switch on? ``until_idle`` then ends once no message is due now: every message
        left is kept for the pause (asked again every few minutes), and waiting for them
        would never end. ``on_case``: told of each case a handler returns (what ``run``
        sums up at its end). ``throttled``: seconds until the tenant's throttling gates
        open (0.0 when open); no new message is taken before."""
        self._paused = paused
        self._queue = queue
        self._on_case = on_case
        self._max_attempts = max_attempts or queue.max_delivery_count
        self._handlers = handlers
        self._queues = tuple(handlers)
        self._concurrency = concurrency
        self._poll_interval = poll_interval
        self._throttled = throttled or (lambda: 0.0)
        self._idlers: deque[_Idler] = deque()  # one per idle loop, oldest first
        self.processed = 0

    async def run(self, *, until_idle: bool = False, stop: asyncio.Event | None = None,
                  fed: asyncio.Event | None = None) -> None:
        """Process messages until ``stop`` is set (or, with ``until_idle``, none are left
        once ``fed`` is set: while something still queues work, as a poll paging through
        alerts does, an empty queue is no reason to end)."""
        stop = stop or asyncio.Event()
        looker = asyncio.create_task(self._look(stop))
        try:
            await asyncio.gather(*(self._loop(until_idle, stop, fed)
                                   for _ in range(self._concurrency)))
        finally:
            looker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await looker

    async def _look(self, stop: asyncio.Event) -> None:
        """Wake the idle loops when a message is due (and the tenant is not throttling)."""
        while not stop.is_set():
            await asyncio.sleep(LOOK_INTERVAL)
            try:
                next_at = await self._queue.next_visible_at(self._queues)
            except Exception:  # the loops still poll on their own
                log.debug("could not look at the queue", exc_info=True)
                continue
            if next_at is not None and next_at <= time.time() and self._hold() <= 0:
                self._wake_one()

    def _wake_one(self) -> None:
        """Wake the idle loop that has waited longest, if any."""
        while self._idlers:
            idler = self._idlers.popleft()
            if not idler.woken.is_set():
                idler.woken.set()
                return

    def _hold(self) -> float:
        """Seconds to hold new messages back: the throttling gates' wait, when a call would
        wait it out anyway (at most DEFAULT_MAX_WAIT); 0.0 otherwise."""
        hold = self._throttled()
        return hold if 0 < hold <= DEFAULT_MAX_WAIT else 0.0

    async def _idle(self, stop: asyncio.Event, seconds: float) -> ReceivedMessage | None:
        """Wait ``seconds``, or less when stopped or woken (``_wake_one``); the message a
        looking loop handed over meanwhile (``_take``), if any: it is locked, so it is
        returned even when stopped (it is in hand)."""
        idler = _Idler()
        self._idlers.append(idler)
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(idler.woken.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idler.waiting = False
            for wait in waits:
                wait.cancel()
            with contextlib.suppress(ValueError):
                self._idlers.remove(idler)
        if idler.reserved:  # a looking loop counted on it: wait for what it hands over
            await idler.handed.wait()
        return idler.message

    async def _take(self) -> ReceivedMessage | None:
        """Receive a message for this loop and one for each loop idle now, in one write,
        and hand those over (the idle loops are reserved first: none leaves meanwhile
        without what it is handed; one handed nothing goes on waiting)."""
        reserved: list[_Idler] = []
        while self._idlers:
            idler = self._idlers.popleft()
            if not idler.woken.is_set():
                idler.reserved = True
                reserved.append(idler)
        messages: list[ReceivedMessage] = []
        try:
            messages = await self._queue.receive_many(self._queues, 1 + len(reserved))
        finally:
            given = max(len(messages) - 1, 0)
            handed, left = reserved[:given], reserved[given:]
            for idler, message in zip(handed, messages[1:], strict=True):
                idler.message = message
                idler.woken.set()
                idler.handed.set()
            for idler in reversed(left):
                idler.reserved = False
                if idler.waiting:  # back to the front of the line, as it was
                    self._idlers.appendleft(idler)
                else:  # its wait ended meanwhile: it waits to hear there is none
                    idler.handed.set()
        return messages[0] if messages else None

    async def _loop(self, until_idle: bool, stop: asyncio.Event,
                    fed: asyncio.Event | None = None) -> None:
        while not stop.is_set():
            if (hold := self._hold()) > 0:
                if (handed := await self._idle(stop, hold)) is not None:
                    await self._process(handed)
                continue
            message = await self._take()
            if message is not None:
                await self._process(message)
                continue
            next_at = await self._queue.next_visible_at(self._queues)
            if (until_idle and (fed is None or fed.is_set())
                    and (next_at is None or await self._is_paused())):
                return
            now = time.time()
            # Due now and still not taken: its session is held (or another loop took it);
            # the looker wakes a loop while something is due.
            wait = self._poll_interval if next_at is None or next_at <= now else max(
                0.01, min(self._poll_interval, next_at - now))
            if (handed := await self._idle(stop, wait)) is not None:
                await self._process(handed)

    async def _process(self, message: ReceivedMessage) -> None:
        delivery = Delivery(body=message.body, message_id=message.message_id,
                            delivery_count=message.delivery_count,
                            max_delivery_count=self._max_attempts,
                            session_id=message.session_id, properties=message.properties,
                            broker_max_delivery_count=self._queue.max_delivery_count)
        renewal = asyncio.create_task(self._keep_locked(message))
        try:
            case = await self._handlers[message.queue](delivery)
        except Exception as error:
            reason = error.reason if isinstance(error, RemediationError) else (
                f"unexpected {type(error).__name__}")
            dead = await self._queue.abandon(message, redact(reason))  # kept in the file
            log.warning("message %s on %s %s (delivery %d): %s", message.message_id,
                        message.queue, "dead-lettered" if dead else "offered again",
                        message.delivery_count, reason)
        else:
            await self._queue.complete(message)
            if case is not None and self._on_case is not None:
                self._on_case(case)
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
        self.processed += 1

    async def _is_paused(self) -> bool:
        if self._paused is None:
            return False
        try:
            return await self._paused()
        except Exception:  # the handler reads the switch too, and acts on nothing unread
            log.warning("could not read the kill switch", exc_info=True)
            return False

    async def _keep_locked(self, message: ReceivedMessage) -> None:
        while True:
            await asyncio.sleep(self._queue.lock_duration / 3)
            await self._queue.renew_lock(message)


class _Idler:
    """An idle loop: ``woken`` to look again (or to work the ``message`` handed over);
    ``reserved`` by a looking loop, which sets ``handed`` once it knows whether there is a
    message for it."""

    def __init__(self) -> None:
        self.woken = asyncio.Event()
        self.handed = asyncio.Event()
        self.reserved = False
        self.waiting = True  # still in its wait (else it waits for ``handed`` alone)
        self.message: ReceivedMessage | None = None
