"""The case journal in SQLite: the local runtime's twin of the Table Storage journal."""

import json
import sqlite3
from datetime import UTC, datetime, timedelta

from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.domain.cases import Case, Step
from remediation.domain.errors import ConcurrentUpdate


class SqliteJournal:
    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def add_case(self, case: Case) -> None:
        def insert(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO cases (case_id, user, state, created_at, updated_at, version, doc)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (case.case_id, case.user, case.state.value, case.created_at.isoformat(),
                 case.updated_at.isoformat(), case.version, json.dumps(case.to_dict())))
            for step in case.steps:
                _insert_step(connection, case.case_id, step)
            _record_requests(connection, case)

        await self._db.write(insert)

    async def update_case(self, case: Case) -> Case:
        stored = case.evolve(version=case.version + 1)

        def update(connection: sqlite3.Connection) -> None:
            cursor = connection.execute(
                "UPDATE cases SET state = ?, updated_at = ?, version = ?, doc = ?"
                " WHERE case_id = ? AND version = ?",
                (stored.state.value, stored.updated_at.isoformat(), stored.version,
                 json.dumps(stored.to_dict()), case.case_id, case.version))
            if cursor.rowcount != 1:
                raise ConcurrentUpdate(f"case {case.case_id} changed since it was read")
            _record_requests(connection, stored)

        await self._db.write(update)
        return stored

    async def add_step(self, case_id: str, step: Step) -> None:
        await self._db.write(lambda connection: _insert_step(connection, case_id, step))

    async def get_case(self, case_id: str) -> Case | None:
        def select(connection: sqlite3.Connection) -> Case | None:
            row = connection.execute("SELECT doc FROM cases WHERE case_id = ?",
                                     (case_id,)).fetchone()
            return None if row is None else _load(connection, row["doc"])

        return await self._db.read(select)

    async def case_with_request(self, request_id: str) -> Case | None:
        def select(connection: sqlite3.Connection) -> Case | None:
            row = connection.execute(
                "SELECT cases.doc FROM case_requests JOIN cases USING (case_id)"
                " WHERE request_id = ?", (request_id,)).fetchone()
            return None if row is None else _load(connection, row["doc"])

        return await self._db.read(select)

    async def latest_case(self, user: str) -> Case | None:
        def select(connection: sqlite3.Connection) -> Case | None:
            row = connection.execute(
                "SELECT doc FROM cases WHERE user = ? AND state != 'rejected'"
                " ORDER BY created_at DESC, rowid DESC LIMIT 1", (user,)).fetchone()
            return None if row is None else _load(connection, row["doc"])

        return await self._db.read(select)

    async def list_cases(self, user: str | None = None, limit: int = 500) -> list[Case]:
        def select(connection: sqlite3.Connection) -> list[Case]:
            if user is None:
                rows = connection.execute(
                    "SELECT doc FROM cases ORDER BY created_at, rowid LIMIT ?", (limit,))
            else:
                rows = connection.execute(
                    "SELECT doc FROM cases WHERE user = ? ORDER BY created_at, rowid LIMIT ?",
                    (user, limit))
            return [_load(connection, row["doc"]) for row in rows.fetchall()]

        return await self._db.read(select)

    async def reserve_reset(self, case_id: str, now: datetime, limit: int,
                            window: timedelta) -> bool:
        """One write transaction (BEGIN IMMEDIATE) counts and inserts: atomic across every
        process sharing the file."""
        at, cutoff = _micros(now), _micros(now - window)

        def reserve(connection: sqlite3.Connection) -> bool:
            connection.execute("DELETE FROM reset_places WHERE reserved_at < ?", (cutoff,))
            if connection.execute("SELECT 1 FROM reset_places WHERE case_id = ?",
                                  (case_id,)).fetchone() is not None:
                return True
            taken = connection.execute("SELECT COUNT(*) FROM reset_places").fetchone()[0]
            if taken >= limit:
                return False
            connection.execute("INSERT INTO reset_places (case_id, reserved_at) VALUES (?, ?)",
                               (case_id, at))
            return True

        return await self._db.write(reserve)


def _micros(value: datetime) -> int:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return (aware - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _record_requests(connection: sqlite3.Connection, case: Case) -> None:
    connection.executemany(
        "INSERT OR IGNORE INTO case_requests (request_id, case_id) VALUES (?, ?)",
        [(request_id, case.case_id) for request_id in case.request_ids])


def _insert_step(connection: sqlite3.Connection, case_id: str, step: Step) -> None:
    connection.execute(
        "INSERT INTO steps (case_id, seq, doc) VALUES"
        " (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM steps WHERE case_id = ?), ?)",
        (case_id, case_id, json.dumps(step.to_dict())))


def _load(connection: sqlite3.Connection, doc: str) -> Case:
    raw = json.loads(doc)
    rows = connection.execute("SELECT doc FROM steps WHERE case_id = ? ORDER BY seq",
                              (raw["case_id"],)).fetchall()
    return Case.from_dict(raw, tuple(Step.from_dict(json.loads(row["doc"])) for row in rows))
