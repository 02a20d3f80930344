"""What the sweeper tests share: the requests queue it queues resumes on, and a journal view
that makes concurrent sweepers read the same state before any of them writes."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from remediation.domain.cases import Case
from remediation.service.ports import Journal


@dataclass
class Queued:
    body: bytes
    session_id: str | None
    properties: dict[str, object]
    at: datetime | None  # None: deliverable at once


@dataclass
class FakeRequestsQueue:
    sent: list[Queued] = field(default_factory=list)

    async def schedule_copy(self, body: bytes, *, session_id: str | None,
                            properties: Mapping[str, str | int | float | bool],
                            at: datetime | None) -> str:
        self.sent.append(Queued(body, session_id, dict(properties), at))
        return f"resume-{len(self.sent)}"


class ReadTogether:
    """``journal`` as one sweeper sees it, except that ``working_cases`` answers only once
    every sweeper sharing ``barrier`` has read: they all work from the same state, the worst
    interleaving of sweepers on several workers, every time."""

    def __init__(self, journal: Journal, barrier: asyncio.Barrier) -> None:
        self._journal = journal
        self._barrier = barrier

    def __getattr__(self, name: str) -> Any:
        return getattr(self._journal, name)

    async def working_cases(self) -> list[Case]:
        cases = await self._journal.working_cases()
        await self._barrier.wait()
        return cases
