"""A recording stand-in for azure-servicebus's async client, at the SDK boundary: our
adapter builds real ``ServiceBusMessage`` objects and this records what it would send."""

import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Scheduled:
    message: Any
    at: datetime
    sequence_number: int


@dataclass
class RecordingSender:
    queue: str
    numbers: "itertools.count[int]"
    sent: list[Any] = field(default_factory=list)
    scheduled: list[Scheduled] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)

    async def send_messages(self, message: Any) -> None:
        self.sent.append(message)

    async def schedule_messages(self, messages: Any, schedule_time_utc: datetime) -> list[int]:
        number = next(self.numbers)
        self.scheduled.append(Scheduled(messages, schedule_time_utc, number))
        return [number]

    async def cancel_scheduled_messages(self, sequence_numbers: int) -> None:
        self.cancelled.append(sequence_numbers)

    async def close(self) -> None:
        return None


class RecordingServiceBusClient:
    def __init__(self) -> None:
        self._numbers = itertools.count(1000)
        self.senders: dict[str, RecordingSender] = {}

    def get_queue_sender(self, queue_name: str) -> RecordingSender:
        return self.senders.setdefault(queue_name, RecordingSender(queue_name, self._numbers))

    async def close(self) -> None:
        return None


def body_of(message: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(b"".join(message.body))
    return decoded


def properties_of(message: Any) -> dict[str, Any]:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes)
                                                          else v)
            for k, v in (message.application_properties or {}).items()}
