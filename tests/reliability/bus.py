"""Service Bus for several Functions instances, at the SDK boundary: what each instance's
recording client (tests/service_bus_fake.py) sent or scheduled is delivered to the
instances' triggers (``functions.delivery`` then the handler, as ``remediate`` and ``verify``
do), as soon as due, never a cancelled one, one message at a time per session (but for the
test's own deliveries of one message at once: a lost session lock), to the instances in
turn; a message whose handler raised is delivered again with its delivery
count raised, up to the queue's maximum (then dead-lettered, as the broker does)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.functions.servicebus import ServiceBusMessage

from remediation.bootstrap import Application
from remediation.entrypoints.functions import delivery
from tests.service_bus_fake import RecordingServiceBusClient, properties_of

REQUESTS, VERIFICATIONS = "remediation-requests", "remediation-verifications"
TICK = 0.01


def recording_client(instance: int) -> RecordingServiceBusClient:
    """A recording client whose sequence numbers no other instance's client uses."""
    client = RecordingServiceBusClient()
    client._numbers = itertools.count(1000 + 1_000_000 * instance)
    return client


@dataclass
class Instance:
    app: Application
    bus: RecordingServiceBusClient


@dataclass
class Broker:
    instances: list[Instance]
    taken: set[int] = field(default_factory=set)  # id() of each message already delivered
    dead: list[tuple[str, str]] = field(default_factory=list)  # (message id, reason)

    async def deliver(self, queue: str, message: Any, instance: Instance,
                      delivery_count: int = 1) -> None:
        """One delivery of a message the SDK would hand the trigger; raised: abandoned."""
        body = b"".join(message.body)
        handed = ServiceBusMessage(body=body, message_id=message.message_id,
                                   session_id=message.session_id,
                                   delivery_count=delivery_count,
                                   application_properties=properties_of(message),
                                   user_properties={})
        app = instance.app
        handler: Callable[[Any], Awaitable[Any]] = (
            app.handler.on_request if queue == REQUESTS else app.handler.on_verification)
        await handler(delivery(handed, app.settings))

    async def deliver_until_done(self, queue: str, message: Any, turn: int) -> None:
        """Deliver until the handler returns, or dead-letter after the maximum."""
        most = self.instances[0].app.settings.broker_max_delivery_count
        for count in range(1, most + 1):
            instance = self.instances[(turn + count - 1) % len(self.instances)]
            try:
                await self.deliver(queue, message, instance, count)
                return
            except Exception as error:  # abandoned: the broker offers it again
                reason = str(getattr(error, "reason", type(error).__name__))
        self.dead.append((str(message.message_id), reason))

    def due(self) -> tuple[list[tuple[str, Any]], float | None]:
        """Messages due now, in the order sent; and the next scheduled time (epoch s)."""
        now = datetime.now(UTC)
        ready: list[tuple[str, Any]] = []
        later: list[float] = []
        for instance in self.instances:
            for queue, sender in instance.bus.senders.items():
                candidates = [(message, None) for message in sender.sent] + [
                    (s.message, s.at) for s in sender.scheduled
                    if s.sequence_number not in sender.cancelled]
                for message, at in candidates:
                    if id(message) in self.taken:
                        continue
                    if at is not None and at > now:
                        later.append(at.timestamp())
                        continue
                    ready.append((queue, message))
        return ready, min(later, default=None)

    async def drain(self, first: Sequence[tuple[str, Any, int]] = ()) -> None:
        """Deliver ``first`` (queue, message, turn: deliveries the test makes itself, at once,
        its session lock lost) and, meanwhile and after, everything sent or scheduled as soon
        as it is due and its session free (the sessions of ``first`` are busy until all of
        their deliveries end), until nothing is running, due or scheduled."""
        holders: Counter[tuple[str, str | None]] = Counter(
            (queue, message.session_id) for queue, message, _ in first)
        running: set[asyncio.Task[None]] = set()
        turn = 0

        async def deliver_in_session(queue: str, message: Any, at_turn: int) -> None:
            try:
                await self.deliver_until_done(queue, message, at_turn)
            finally:
                holders[(queue, message.session_id)] -= 1

        for queue, message, at_turn in first:
            self.taken.add(id(message))
            running.add(asyncio.ensure_future(deliver_in_session(queue, message, at_turn)))
        while True:
            ready, next_at = self.due()
            for queue, message in ready:
                if holders[(queue, message.session_id)] > 0:
                    continue
                holders[(queue, message.session_id)] += 1
                self.taken.add(id(message))
                running.add(asyncio.ensure_future(deliver_in_session(queue, message, turn)))
                turn += 1
            for task in [task for task in running if task.done()]:
                running.discard(task)
                task.result()
            if not running and not ready and next_at is None:
                return
            await asyncio.sleep(TICK)
