"""The case journal in SQLite: the local runtime's twin of the Table Storage journal.

Each case's steps carry a hash chain (``domain.journal_chain``): a step's ``seq``, ``prev``
and ``hash`` are written in the transaction that inserts it (BEGIN IMMEDIATE: one writer at a
time, across every process sharing the file), with the chain's head (``chain_heads``); the
case record's seal (``cases.seal``) in the transaction that writes the record, with the head
naming it (``domain.journal_head``). Steps written before the chain keep their numbers and
have no hash; the chain continues the numbering.
"""

import json
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.domain.case_states import WORKING, check_opening, check_transition
from remediation.domain.cases import Case, CaseState, Step
from remediation.domain.errors import ConcurrentUpdate
from remediation.domain.journal_head import (
    Found,
    case_opened,
    continuing,
    needs_rows,
    record_written,
    step_written,
)
from remediation.domain.journal_links import GENESIS, CaseSeal, ChainHead, StepLink
from remediation.domain.pause import KillSwitch, Paused
from remediation.domain.sources import SourceHealth


class SqliteJournal:
    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def add_case(self, case: Case) -> None:
        check_opening(case.case_id, case.state)
        links, seal, head = case_opened(case)

        def insert(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO cases (case_id, user, state, created_at, updated_at, version, doc,"
                " seal) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (case.case_id, case.user, case.state.value, case.created_at.isoformat(),
                 case.updated_at.isoformat(), case.version, json.dumps(case.to_dict()),
                 seal.to_json()))
            connection.executemany(
                "INSERT INTO steps (case_id, seq, doc, prev, hash) VALUES (?, ?, ?, ?, ?)",
                [(case.case_id, link.seq, json.dumps(step.to_dict()), link.prev, link.hash)
                 for step, link in zip(case.steps, links, strict=True)])
            _store_head(connection, case.case_id, head)
            _record_requests(connection, case)

        await self._db.write(insert)

    async def update_case(self, case: Case) -> Case:
        """Store ``case`` if its version is current and its state moved along the table of
        ``domain.case_states`` (else ForbiddenTransition); ConcurrentUpdate when stale."""
        stored = case.evolve(version=case.version + 1)

        def update(connection: sqlite3.Connection) -> tuple[CaseSeal, ChainHead]:
            row = connection.execute("SELECT state, version FROM cases WHERE case_id = ?",
                                     (case.case_id,)).fetchone()
            if row is not None and row["version"] == case.version:
                check_transition(case.case_id, CaseState(row["state"]), stored.state)
            seal, head = record_written(stored, _found(connection, case.case_id))
            # ``user`` too: a case opened under the name a request gave (an object id, an
            # alias) takes the account's primary address once the lookup found it.
            cursor = connection.execute(
                "UPDATE cases SET user = ?, state = ?, updated_at = ?, version = ?, doc = ?,"
                " seal = ? WHERE case_id = ? AND version = ?",
                (stored.user, stored.state.value, stored.updated_at.isoformat(),
                 stored.version, json.dumps(stored.to_dict()), seal.to_json(), case.case_id,
                 case.version))
            if cursor.rowcount != 1:
                raise ConcurrentUpdate(f"case {case.case_id} changed since it was read")
            _store_head(connection, case.case_id, head)
            _record_requests(connection, stored)
            return seal, head

        seal, head = await self._db.write(update)
        return stored.evolve(seal=seal, chain_head=head)

    async def add_step(self, case_id: str, step: Step) -> None:
        await self.add_steps(case_id, [step])

    async def add_steps(self, case_id: str, steps: Sequence[Step]) -> None:
        if not steps:
            raise ValueError("no steps to write")

        def insert(connection: sqlite3.Connection) -> None:
            for step in steps:  # one transaction: each goes on from the head the last wrote
                _insert_step(connection, case_id, step)

        await self._db.write(insert)

    async def get_case(self, case_id: str) -> Case | None:
        def select(connection: sqlite3.Connection) -> Case | None:
            row = connection.execute("SELECT * FROM cases WHERE case_id = ?",
                                     (case_id,)).fetchone()
            return None if row is None else _load(connection, row)

        return await self._db.read(select)

    async def case_with_request(self, request_id: str) -> Case | None:
        def select(connection: sqlite3.Connection) -> Case | None:
            row = connection.execute(
                "SELECT cases.* FROM case_requests JOIN cases USING (case_id)"
                " WHERE request_id = ?", (request_id,)).fetchone()
            return None if row is None else _load(connection, row)

        return await self._db.read(select)

    async def latest_case(self, user: str) -> Case | None:
        """The user's newest case but a request refused at the door (``rejected`` with no
        ``decided_by``: it named nobody for sure); one a person rejected counts."""
        def select(connection: sqlite3.Connection) -> Case | None:
            row = connection.execute(
                "SELECT * FROM cases WHERE user = ? AND (state != 'rejected'"
                " OR json_extract(doc, '$.decided_by') IS NOT NULL)"
                " ORDER BY created_at DESC, rowid DESC LIMIT 1", (user,)).fetchone()
            return None if row is None else _load(connection, row)

        return await self._db.read(select)

    async def list_cases(self, user: str | None = None, *,
                         states: Collection[CaseState] | None = None,
                         since: datetime | None = None,
                         limit: int | None = None) -> list[Case]:
        """Newest first, through the ``cases_newest`` index (``cases_by_state`` or
        ``cases_by_user`` when those narrow it), ``limit`` rows read at most."""
        if (limit is not None and limit <= 0) or (states is not None and not states):
            return []
        where, parameters = _filters(user, states, since)
        order = " ORDER BY julianday(created_at) DESC, rowid DESC"
        sql = f"SELECT * FROM cases{where}{order}"  # noqa: S608 (every value a parameter)
        if limit is not None:
            sql += " LIMIT ?"
            parameters.append(limit)

        def select(connection: sqlite3.Connection) -> list[Case]:
            rows = connection.execute(sql, parameters).fetchall()
            return [_load(connection, row) for row in rows]

        return await self._db.read(select)

    async def working_cases(self) -> list[Case]:
        """Through the ``cases_by_state`` index: the cost follows the working cases. A file
        written before the sweeper needs nothing: the ``state`` column it reads has been
        there from the start, and opening the file creates the index if it is missing."""
        return await self.list_cases(states=WORKING)

    async def count_cases(self, user: str | None = None, *,
                          since: datetime | None = None) -> dict[CaseState, int]:
        where, parameters = _filters(user, None, since)

        def count(connection: sqlite3.Connection) -> dict[CaseState, int]:
            rows = connection.execute(
                f"SELECT state, COUNT(*) AS n FROM cases{where} GROUP BY state",  # noqa: S608
                parameters).fetchall()
            return {CaseState(row["state"]): row["n"] for row in rows}

        return await self._db.read(count)

    async def users_known_as(self, name: str) -> frozenset[str]:
        """A scan of the cases: a substring test in SQL picks the rows that may match, and
        the case's own ``known_as`` decides."""
        wanted = name.lower()

        def select(connection: sqlite3.Connection) -> frozenset[str]:
            rows = connection.execute(
                "SELECT user, doc FROM cases WHERE instr(lower(doc), ?) > 0", (wanted,))
            return frozenset(row["user"] for row in rows
                             if wanted in Case.from_dict(json.loads(row["doc"])).known_as)

        return await self._db.read(select)

    async def current_episode(self, user_id: str) -> str | None:
        def select(connection: sqlite3.Connection) -> str | None:
            row = connection.execute("SELECT case_id FROM episodes WHERE user_id = ?",
                                     (user_id,)).fetchone()
            return None if row is None else str(row["case_id"])

        return await self._db.read(select)

    async def claim_episode(self, user_id: str, case_id: str, replaces: str | None) -> str:
        """Compare and set in one write transaction (BEGIN IMMEDIATE): atomic across every
        process sharing the file."""
        def claim(connection: sqlite3.Connection) -> str:
            row = connection.execute("SELECT case_id FROM episodes WHERE user_id = ?",
                                     (user_id,)).fetchone()
            if row is not None and row["case_id"] not in (replaces, case_id):
                return str(row["case_id"])  # another worker took the episode first
            connection.execute(
                "INSERT INTO episodes (user_id, case_id) VALUES (?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET case_id = excluded.case_id",
                (user_id, case_id))
            return case_id

        return await self._db.write(claim)

    async def claim_step(self, case_id: str, step: str, holder: str, now: datetime,
                         lease: timedelta) -> bool:
        at, until = _micros(now), _micros(now + lease)

        def claim(connection: sqlite3.Connection) -> bool:
            row = connection.execute(
                "SELECT holder, until FROM step_claims WHERE case_id = ? AND step = ?",
                (case_id, step)).fetchone()
            if row is not None and row["holder"] != holder and row["until"] > at:
                return False
            connection.execute(
                "INSERT INTO step_claims (case_id, step, holder, until) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (case_id, step) DO UPDATE SET holder = excluded.holder,"
                " until = excluded.until", (case_id, step, holder, until))
            return True

        return await self._db.write(claim)

    async def release_step(self, case_id: str, step: str, holder: str) -> None:
        await self._db.write(lambda connection: connection.execute(
            "DELETE FROM step_claims WHERE case_id = ? AND step = ? AND holder = ?",
            (case_id, step, holder)))

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

    async def pause(self, paused: Paused) -> Paused:
        """Read and write the switch in one write transaction (BEGIN IMMEDIATE): of two
        people pausing at once, the first one's pause stands."""
        def turn_on(connection: sqlite3.Connection) -> Paused:
            switch = _kill_switch(connection).pause(paused)
            _store_kill_switch(connection, switch)
            assert switch.paused is not None
            return switch.paused

        return await self._db.write(turn_on)

    async def resume(self, by: str, at: datetime) -> Paused | None:
        def turn_off(connection: sqlite3.Connection) -> Paused | None:
            switch = _kill_switch(connection)
            if switch.paused is not None:
                _store_kill_switch(connection, switch.resume(by, at))
            return switch.paused

        return await self._db.write(turn_off)

    async def pause_state(self) -> Paused | None:
        """``status`` opens the file read-only: a journal written before the switch existed
        has no such table until a worker opens it, and is not paused."""
        def select(connection: sqlite3.Connection) -> Paused | None:
            if connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                                  " AND name = 'kill_switch'").fetchone() is None:
                return None
            return _kill_switch(connection).paused

        return await self._db.read(select)

    async def record_source(self, source: str, at: datetime, failure: str | None = None) -> None:
        """Read, merge and write in one write transaction (BEGIN IMMEDIATE): no outcome is
        lost to another process writing at the same time."""
        def record(connection: sqlite3.Connection) -> None:
            row = connection.execute("SELECT doc FROM sources WHERE source = ?",
                                     (source,)).fetchone()
            known = (SourceHealth(source) if row is None
                     else SourceHealth.from_dict(json.loads(row["doc"])))
            updated = known.with_outcome(_utc(at), failure)
            if updated != known:
                connection.execute(
                    "INSERT INTO sources (source, doc) VALUES (?, ?) ON CONFLICT (source)"
                    " DO UPDATE SET doc = excluded.doc", (source, json.dumps(updated.to_dict())))

        await self._db.write(record)

    async def source_health(self) -> list[SourceHealth]:
        def select(connection: sqlite3.Connection) -> list[SourceHealth]:
            # ``status`` opens the file read-only, so a journal written before sources were
            # kept has no such table until a worker opens it: nothing on record yet.
            if connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                                  " AND name = 'sources'").fetchone() is None:
                return []
            rows = connection.execute("SELECT doc FROM sources").fetchall()
            return [SourceHealth.from_dict(json.loads(row["doc"])) for row in rows]

        return await self._db.read(select)


def _kill_switch(connection: sqlite3.Connection) -> KillSwitch:
    row = connection.execute("SELECT doc FROM kill_switch WHERE id = 1").fetchone()
    return KillSwitch() if row is None else KillSwitch.from_dict(json.loads(row["doc"]))


def _store_kill_switch(connection: sqlite3.Connection, switch: KillSwitch) -> None:
    connection.execute(
        "INSERT INTO kill_switch (id, doc) VALUES (1, ?) ON CONFLICT (id)"
        " DO UPDATE SET doc = excluded.doc", (json.dumps(switch.to_dict()),))


def _filters(user: str | None, states: Collection[CaseState] | None,
             since: datetime | None) -> tuple[str, list[Any]]:
    """A WHERE clause (with its parameters) for list_cases and count_cases."""
    clauses: list[str] = []
    parameters: list[Any] = []
    if user is not None:
        clauses.append("user = ?")
        parameters.append(user)
    if states is not None:
        chosen = sorted({CaseState(state).value for state in states})
        clauses.append(f"state IN ({', '.join('?' * len(chosen))})")
        parameters += chosen
    if since is not None:
        clauses.append("julianday(created_at) >= julianday(?)")
        parameters.append(_utc(since).isoformat())
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), parameters


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _micros(value: datetime) -> int:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return (aware - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _record_requests(connection: sqlite3.Connection, case: Case) -> None:
    connection.executemany(
        "INSERT OR IGNORE INTO case_requests (request_id, case_id) VALUES (?, ?)",
        [(request_id, case.case_id) for request_id in case.request_ids])


def _insert_step(connection: sqlite3.Connection, case_id: str, step: Step) -> None:
    """Insert ``step`` as the case's next, chained where ``journal_head.continuing`` says,
    numbered after every step of the case (a file's steps from before the chain keep theirs),
    and move the head to it. The caller's write transaction (BEGIN IMMEDIATE) makes read,
    insert and head one atomic step."""
    after = continuing(case_id, _found(connection, case_id))
    last = connection.execute("SELECT COALESCE(MAX(seq), 0) FROM steps WHERE case_id = ?",
                              (case_id,)).fetchone()[0]
    seq = max(last, after.after.seq if after.after is not None else 0) + 1
    link, head = step_written(case_id, step, after, seq)
    connection.execute(
        "INSERT INTO steps (case_id, seq, doc, prev, hash) VALUES (?, ?, ?, ?, ?)",
        (case_id, link.seq, json.dumps(step.to_dict()), link.prev, link.hash))
    _store_head(connection, case_id, head)


def _found(connection: sqlite3.Connection, case_id: str) -> Found:
    """What a writer reads of the case's chain (``journal_head.Found``), the record's seal
    included."""
    head = _chain_head(connection, case_id)
    last: ChainHead | None = None
    first: str | None = None
    if needs_rows(head):
        row = connection.execute(
            "SELECT seq, hash FROM steps WHERE case_id = ? AND hash IS NOT NULL"
            " ORDER BY seq DESC LIMIT 1", (case_id,)).fetchone()
        last = None if row is None else ChainHead(int(row["seq"]), str(row["hash"]))
        row = connection.execute(
            "SELECT prev FROM steps WHERE case_id = ? AND hash IS NOT NULL"
            " ORDER BY seq LIMIT 1", (case_id,)).fetchone()
        first = None if row is None else str(row["prev"] or GENESIS)
    row = connection.execute("SELECT seal FROM cases WHERE case_id = ?",
                             (case_id,)).fetchone()
    return Found(head, last, first, CaseSeal.from_json(None if row is None else row["seal"]))


def _store_head(connection: sqlite3.Connection, case_id: str, head: ChainHead) -> None:
    connection.execute(
        "INSERT INTO chain_heads (case_id, seq, hash, record, flaw, digest)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (case_id) DO UPDATE SET seq = excluded.seq,"
        " hash = excluded.hash, record = excluded.record, flaw = excluded.flaw,"
        " digest = excluded.digest",
        (case_id, head.seq, head.hash, head.record, head.flaw, head.digest))


def _chain_head(connection: sqlite3.Connection, case_id: str) -> ChainHead | None:
    """The case's chain head; None when it has none, or the file (opened read-only, written
    before the chain) has no such table. A file from before heads carried a digest (read
    only) has none of the head's later columns."""
    try:
        row = connection.execute("SELECT * FROM chain_heads WHERE case_id = ?",
                                 (case_id,)).fetchone()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return None
        raise
    if row is None:
        return None
    later = {name: row[name] if _has(row, name) else None
             for name in ("record", "flaw", "digest")}
    return ChainHead(int(row["seq"]), str(row["hash"]), **later)


def _load(connection: sqlite3.Connection, row: sqlite3.Row) -> Case:
    """The case of a ``cases`` row (all its columns) with its steps, chain head and seal; a
    file written before the chain (read-only) has none of their columns."""
    raw = json.loads(row["doc"])
    seal = row["seal"] if _has(row, "seal") else None
    rows = connection.execute("SELECT * FROM steps WHERE case_id = ? ORDER BY seq",
                              (raw["case_id"],)).fetchall()
    chained = bool(rows) and _has(rows[0], "hash")
    steps = tuple(_step(step["doc"], step["seq"], step["prev"], step["hash"]) if chained
                  else _step(step["doc"], step["seq"], None, None) for step in rows)
    return Case.from_dict(raw, steps).evolve(
        chain_head=_chain_head(connection, raw["case_id"]), seal=CaseSeal.from_json(seal))


@lru_cache(maxsize=4096)
def _step(doc: str, seq: int, prev: str | None, hash_: str | None) -> Step:
    """The step a stored row holds (its ``doc``, and its link when it has a ``hash``). A case
    is read many times while it is worked on and its steps never change once written, so
    the same row is parsed once: the key is the whole row, and a step is frozen (its
    ``data`` is never changed in place)."""
    link = None if hash_ is None else StepLink(int(seq), str(prev or GENESIS), str(hash_))
    return replace(Step.from_dict(json.loads(doc)), link=link)


def _has(row: sqlite3.Row, column: str) -> bool:
    """Whether the row has ``column`` (``in`` on a Row looks at its values, not its names)."""
    return column in set(row.keys())

