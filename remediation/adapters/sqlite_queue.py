"""A durable local queue in SQLite with the Service Bus semantics the worker relies on.

Scheduled delivery, a lock while a message is processed (renewable; it expires if the
worker dies), a delivery count, dead-lettering after a maximum with the reason, duplicate
detection on ``message_id``, and sessions: at most one locked message per session id at a
time, which is how one user's messages are never processed concurrently. Like the Service Bus
client with tracing on, a message sent carries the sender's trace context in its application
properties (``traceparent``, ``tracestate``), when telemetry is on.

Like Service Bus, and unlike a friendlier queue: an abandoned message is offered again at
once (a delayed retry is a scheduled copy the handler sends); ids longer than 128
characters, bodies over 256 KB and, on a session queue, messages without a session id are
refused (``queue_limits``); and a message id is a duplicate for the whole window
(``DUPLICATE_DETECTION_WINDOW``, as in infra/) whatever became of the message, dead-lettered
included: a request is re-sent under a new message id (``remediation enqueue`` makes one).
"""

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from remediation.adapters.queue_limits import DUPLICATE_DETECTION_WINDOW, check_message
from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.service import telemetry

MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"


@dataclass(frozen=True)
class ReceivedMessage:
    sequence_number: int
    queue: str
    message_id: str
    session_id: str | None
    body: bytes
    properties: dict[str, Any]
    delivery_count: int
    lock_token: str
    enqueued_at: float


@dataclass(frozen=True)
class QueueCounts:
    ready: int
    scheduled: int
    locked: int
    completed: int
    dead_lettered: int
    cancelled: int


@dataclass(frozen=True)
class Backlog:
    """What the active messages of some queues are doing now: ``ready`` to be taken,
    ``locked`` (a receiver has them), ``scheduled`` per ``kind`` application property
    (``"verify"``, ``"remediate"``...; ``""`` when none), and when the earliest scheduled one
    becomes receivable (epoch seconds, None if none is scheduled)."""

    ready: int = 0
    locked: int = 0
    scheduled: dict[str, int] = field(default_factory=dict)
    next_at: float | None = None


class SqliteQueue:
    def __init__(
        self,
        database: SqliteDatabase,
        *,
        lock_duration: float = 60.0,
        max_delivery_count: int = 10,
        duplicate_window: float = DUPLICATE_DETECTION_WINDOW.total_seconds(),
        session_queues: Iterable[str] = (),
    ) -> None:
        self._db = database
        self.lock_duration = lock_duration
        self.max_delivery_count = max_delivery_count
        self.duplicate_window = duplicate_window
        self.session_queues = frozenset(session_queues)

    async def send(self, queue: str, body: str | bytes, *, message_id: str | None = None,
                   session_id: str | None = None, scheduled_at: datetime | None = None,
                   properties: dict[str, Any] | None = None) -> int:
        """Enqueue (or schedule) a message; a duplicate ``message_id`` returns the original.

        Raises ValueError for what Service Bus refuses (see the module's docstring).
        """
        return await self._db.write(self._insert(queue, body, message_id=message_id,
                                                 session_id=session_id,
                                                 scheduled_at=scheduled_at,
                                                 properties=properties))

    async def rehearse_send(self, queue: str, body: str | bytes, *, message_id: str,
                            session_id: str | None = None, scheduled_at: datetime | None = None,
                            properties: dict[str, Any] | None = None) -> None:
        """Send as ``send`` would, then roll the write back: the queue would take the message,
        and no receiver, count or later run ever sees it (doctor's probe)."""
        await self._db.rehearse(self._insert(queue, body, message_id=message_id,
                                             session_id=session_id, scheduled_at=scheduled_at,
                                             properties=properties))

    def _insert(self, queue: str, body: str | bytes, *, message_id: str | None,
                session_id: str | None, scheduled_at: datetime | None,
                properties: dict[str, Any] | None) -> Callable[[sqlite3.Connection], int]:
        """The write that enqueues a message, checked first (ValueError)."""
        payload = body.encode() if isinstance(body, str) else body
        message_id = message_id or uuid.uuid4().hex
        properties = {**(properties or {}), **telemetry.current().carrier()}
        check_message(payload, message_id=message_id, session_id=session_id,
                      properties=properties)
        if queue in self.session_queues and not session_id:
            raise ValueError(f"queue {queue!r} is session-enabled: a message needs a session id")
        now = time.time()
        visible_at = scheduled_at.timestamp() if scheduled_at else now

        def insert(connection: sqlite3.Connection) -> int:
            duplicate = connection.execute(
                "SELECT sequence_number FROM messages WHERE queue = ? AND message_id = ?"
                " AND enqueued_at > ?", (queue, message_id, now - self.duplicate_window)
            ).fetchone()
            if duplicate is not None:
                return int(duplicate["sequence_number"])
            cursor = connection.execute(
                "INSERT INTO messages (queue, message_id, session_id, body, properties,"
                " enqueued_at, visible_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (queue, message_id, session_id, payload, json.dumps(properties or {}), now,
                 visible_at))
            return int(cursor.lastrowid or 0)

        return insert

    async def receive(self, queues: tuple[str, ...]) -> ReceivedMessage | None:
        """Lock the next ready message whose session is not locked by another receiver."""
        messages = await self.receive_many(queues, 1)
        return messages[0] if messages else None

    async def receive_many(self, queues: tuple[str, ...], limit: int) -> list[ReceivedMessage]:
        """Lock up to ``limit`` ready messages, oldest first, in one write: each with its own
        lock token and delivery count, at most one of a session (a session whose message
        this call locked is locked like any other), as Service Bus's
        ``receive_messages(max_message_count=...)`` answers up to that many."""
        now = time.time()
        names = json.dumps(queues)

        def claim(connection: sqlite3.Connection) -> list[ReceivedMessage]:
            taken: list[ReceivedMessage] = []
            while len(taken) < limit:
                message = self._claim_one(connection, names, now)
                if message is None:
                    break
                taken.append(message)
            return taken

        return await self._db.write(claim)

    def _claim_one(self, connection: sqlite3.Connection, names: str,
                   now: float) -> ReceivedMessage | None:
        """Lock the next ready message of the queues ``names`` (a JSON list), in the caller's
        write transaction; None if none."""
        while True:
            row = connection.execute(
                "SELECT * FROM messages WHERE queue IN (SELECT value FROM json_each(?))"
                " AND state = 'active'"
                " AND visible_at <= ? AND (locked_until IS NULL OR locked_until <= ?)"
                " AND (session_id IS NULL OR session_id NOT IN (SELECT session_id FROM"
                "  messages WHERE state = 'active' AND locked_until > ?"
                "  AND session_id IS NOT NULL))"
                " ORDER BY visible_at, sequence_number LIMIT 1",
                (names, now, now, now)).fetchone()
            if row is None:
                return None
            if row["delivery_count"] >= self.max_delivery_count:
                # Its last lock expired without settlement: the receiver died on it.
                _dead_letter(connection, row["sequence_number"], MAX_DELIVERY_COUNT_EXCEEDED,
                             "lock expired on the last delivery", now)
                continue
            token = uuid.uuid4().hex
            connection.execute(
                "UPDATE messages SET delivery_count = delivery_count + 1, locked_until = ?,"
                " lock_token = ? WHERE sequence_number = ?",
                (now + self.lock_duration, token, row["sequence_number"]))
            return ReceivedMessage(
                sequence_number=row["sequence_number"], queue=row["queue"],
                message_id=row["message_id"], session_id=row["session_id"],
                body=bytes(row["body"]), properties=json.loads(row["properties"]),
                delivery_count=row["delivery_count"] + 1, lock_token=token,
                enqueued_at=row["enqueued_at"])

    async def complete(self, message: ReceivedMessage) -> None:
        await self._settle(message, "UPDATE messages SET state = 'completed', locked_until = NULL,"
                           " settled_at = ? WHERE sequence_number = ? AND lock_token = ?")

    async def renew_lock(self, message: ReceivedMessage) -> None:
        until = time.time() + self.lock_duration
        await self._db.write(lambda connection: connection.execute(
            "UPDATE messages SET locked_until = ? WHERE sequence_number = ? AND lock_token = ?",
            (until, message.sequence_number, message.lock_token)))

    async def abandon(self, message: ReceivedMessage, reason: str) -> bool:
        """Release the lock for redelivery at once; dead-letter instead after the last delivery.

        Returns True when the message was dead-lettered.
        """
        now = time.time()

        def release(connection: sqlite3.Connection) -> bool:
            if message.delivery_count >= self.max_delivery_count:
                _dead_letter(connection, message.sequence_number, MAX_DELIVERY_COUNT_EXCEEDED,
                             reason, now)
                return True
            connection.execute(
                "UPDATE messages SET locked_until = NULL, lock_token = NULL"
                " WHERE sequence_number = ? AND lock_token = ?",
                (message.sequence_number, message.lock_token))
            return False

        return await self._db.write(release)

    async def dead_letter(self, message: ReceivedMessage, reason: str, description: str) -> None:
        now = time.time()
        await self._db.write(lambda connection: _dead_letter(
            connection, message.sequence_number, reason, description, now))

    async def cancel_scheduled(self, sequence_number: int) -> None:
        await self._db.write(lambda connection: connection.execute(
            "UPDATE messages SET state = 'cancelled', settled_at = ? WHERE sequence_number = ?"
            " AND state = 'active' AND delivery_count = 0", (time.time(), sequence_number)))

    async def counts(self, queue: str | None = None) -> QueueCounts:
        now = time.time()

        def count(connection: sqlite3.Connection) -> QueueCounts:
            row = connection.execute(
                "SELECT"
                " SUM(state = 'active' AND visible_at <= ? AND (locked_until IS NULL OR"
                "     locked_until <= ?)) AS ready,"
                " SUM(state = 'active' AND visible_at > ? AND (locked_until IS NULL OR"
                "     locked_until <= ?)) AS scheduled,"
                " SUM(state = 'active' AND locked_until > ?) AS locked,"
                " SUM(state = 'completed') AS completed, SUM(state = 'dead') AS dead,"
                " SUM(state = 'cancelled') AS cancelled FROM messages"
                " WHERE ? IS NULL OR queue = ?",
                (now, now, now, now, now, queue, queue)).fetchone()
            return QueueCounts(*(int(row[key] or 0) for key in (
                "ready", "scheduled", "locked", "completed", "dead", "cancelled")))

        return await self._db.read(count)

    async def next_visible_at(self, queues: tuple[str, ...]) -> float | None:
        """When the earliest active message becomes receivable (None if there is none)."""
        names = json.dumps(queues)

        def earliest(connection: sqlite3.Connection) -> float | None:
            row = connection.execute(
                "SELECT MIN(MAX(visible_at, COALESCE(locked_until, 0))) AS at FROM messages"
                " WHERE queue IN (SELECT value FROM json_each(?)) AND state = 'active'",
                (names,)).fetchone()
            return None if row["at"] is None else float(row["at"])

        return await self._db.read(earliest)

    async def backlog(self, queues: tuple[str, ...]) -> Backlog:
        """The active messages of ``queues`` as ``Backlog`` counts them (one read)."""
        now = time.time()
        names = json.dumps(queues)

        def count(connection: sqlite3.Connection) -> Backlog:
            rows = connection.execute(
                "SELECT COALESCE(json_extract(properties, '$.kind'), '') AS kind,"
                " SUM(locked_until > ?) AS locked,"
                " SUM(visible_at <= ? AND (locked_until IS NULL OR locked_until <= ?)) AS ready,"
                " SUM(visible_at > ? AND (locked_until IS NULL OR locked_until <= ?))"
                "  AS scheduled,"
                " MIN(CASE WHEN visible_at > ? AND (locked_until IS NULL OR locked_until <= ?)"
                "  THEN visible_at END) AS next_at"
                " FROM messages WHERE queue IN (SELECT value FROM json_each(?))"
                " AND state = 'active' GROUP BY kind",
                (now, now, now, now, now, now, now, names)).fetchall()
            times = [float(row["next_at"]) for row in rows if row["next_at"] is not None]
            return Backlog(
                ready=sum(int(row["ready"] or 0) for row in rows),
                locked=sum(int(row["locked"] or 0) for row in rows),
                scheduled={str(row["kind"]): int(row["scheduled"]) for row in rows
                           if row["scheduled"]},
                next_at=min(times, default=None))

        return await self._db.read(count)

    async def dead_letters(self, queue: str | None = None) -> list[dict[str, Any]]:
        def select(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = connection.execute(
                "SELECT queue, message_id, session_id, delivery_count, dead_letter_reason,"
                " dead_letter_description, settled_at FROM messages WHERE state = 'dead'"
                " AND (? IS NULL OR queue = ?) ORDER BY sequence_number",
                (queue, queue)).fetchall()
            return [dict(row) for row in rows]

        return await self._db.read(select)

    async def _settle(self, message: ReceivedMessage, statement: str) -> None:
        now = time.time()
        await self._db.write(lambda connection: connection.execute(
            statement, (now, message.sequence_number, message.lock_token)))


def _dead_letter(connection: sqlite3.Connection, sequence_number: int, reason: str,
                 description: str, now: float) -> None:
    connection.execute(
        "UPDATE messages SET state = 'dead', locked_until = NULL, dead_letter_reason = ?,"
        " dead_letter_description = ?, settled_at = ? WHERE sequence_number = ?",
        (reason, description[:1000], now, sequence_number))

