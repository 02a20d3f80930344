"""A journal's store as someone with write access to it would edit it by hand: through
sqlite3 on the file, or the Azure Tables SDK on the table, never through the app's journal.

Rows are found the way a person browsing would find them: a case's partition, a step by its
``seq`` property (column), the case row by its ``RowKey`` ``case``.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.adapters.sqlite_journal import SqliteJournal
from remediation.adapters.table_journal import build_table_journal
from remediation.service.ports import Journal


@dataclass
class Store:
    """One journal store (``kind`` sqlite or table): journals on it, its settings, and hands
    that edit it directly."""

    kind: str
    path: Path
    connection_string: str = ""
    table_name: str = ""
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def journal(self) -> Journal:
        """Another writer on the store (another process, as far as the store can tell)."""
        if self.kind == "sqlite":
            database = SqliteDatabase(self.path)
            self._closers.append(lambda: _closed(database))
            return SqliteJournal(database)
        journal = build_table_journal(endpoint=None, connection_string=self.connection_string,
                                      table_name=self.table_name)
        self._closers.append(journal.close)
        return journal

    @property
    def settings(self) -> dict[str, str]:
        """The environment that points ``remediation`` at this store."""
        if self.kind == "sqlite":
            return {"REMEDIATION_DB": str(self.path)}
        return {"REMEDIATION_DB": str(self.path),
                "JOURNAL_TABLE_CONNECTION_STRING": self.connection_string,
                "JOURNAL_TABLE_NAME": self.table_name}

    async def edit_step(self, case_id: str, seq: int, **changes: Any) -> None:
        """Change fields of step number ``seq``'s JSON (``detail="..."``) where it is stored."""
        if self.kind == "sqlite":
            with self._sqlite() as connection:
                [doc] = connection.execute("SELECT doc FROM steps WHERE case_id = ? AND seq = ?",
                                           (case_id, seq)).fetchone()
                connection.execute("UPDATE steps SET doc = ? WHERE case_id = ? AND seq = ?",
                                   (json.dumps({**json.loads(doc), **changes}), case_id, seq))
            return
        async with self._table() as table:
            row = await _step_row(table, case_id, seq)
            row["doc"] = json.dumps({**json.loads(row["doc"]), **changes})
            await table.update_entity(row, mode=UpdateMode.MERGE)

    async def delete_step(self, case_id: str, seq: int) -> None:
        if self.kind == "sqlite":
            with self._sqlite() as connection:
                connection.execute("DELETE FROM steps WHERE case_id = ? AND seq = ?",
                                   (case_id, seq))
            return
        async with self._table() as table:
            row = await _step_row(table, case_id, seq)
            await table.delete_entity(row["PartitionKey"], row["RowKey"])

    async def edit_case(self, case_id: str, **changes: Any) -> None:
        """Change fields of the case record's JSON (``state="verified"``), and the column or
        property of the same name where there is one, as a careful editor would."""
        if self.kind == "sqlite":
            with self._sqlite() as connection:
                [doc] = connection.execute("SELECT doc FROM cases WHERE case_id = ?",
                                           (case_id,)).fetchone()
                connection.execute("UPDATE cases SET doc = ? WHERE case_id = ?",
                                   (json.dumps({**json.loads(doc), **changes}), case_id))
                if "state" in changes:
                    connection.execute("UPDATE cases SET state = ? WHERE case_id = ?",
                                       (changes["state"], case_id))
            return
        async with self._table() as table:
            row = await table.get_entity(f"case:{case_id}", "case")
            row["doc"] = json.dumps({**json.loads(row["doc"]), **changes})
            row.update({name: value for name, value in changes.items() if name in row})
            await table.update_entity(row, mode=UpdateMode.MERGE)

    async def aclose(self) -> None:
        for close in self._closers:
            await close()

    @contextmanager
    def _sqlite(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own, committed and closed at the end."""
        with closing(sqlite3.connect(self.path, isolation_level="IMMEDIATE")) as connection, \
                connection:
            yield connection

    def _table(self) -> TableClient:
        return TableClient.from_connection_string(self.connection_string, self.table_name)


async def _step_row(table: TableClient, case_id: str, seq: int) -> dict[str, Any]:
    rows = [dict(row) async for row in table.query_entities(
        "PartitionKey eq @pk and seq eq @seq",
        parameters={"pk": f"case:{case_id}", "seq": seq})]
    [row] = [row for row in rows if str(row["RowKey"]).startswith("step-")]
    return row


async def _closed(database: SqliteDatabase) -> None:
    database.close()


@pytest.fixture(params=["sqlite", "table"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The SQLite file and (on Azurite) the table, each in turn."""
    if request.param == "sqlite":
        found = Store("sqlite", tmp_path / "state.db")
    else:
        found = Store("table", tmp_path / "unused.db",
                      request.getfixturevalue("azurite_table_connection_string"),
                      f"journal{uuid.uuid4().hex[:16]}")
    yield found
    await found.aclose()
