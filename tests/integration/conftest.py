"""Fixtures shared by the queue and journal tests: SQLite files, and journals on one store."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.adapters.sqlite_journal import SqliteJournal
from remediation.adapters.table_journal import build_table_journal
from remediation.service.ports import Journal

OpenJournal = Callable[[], Journal]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def database(db_path: Path) -> Iterator[SqliteDatabase]:
    database = SqliteDatabase(db_path)
    yield database
    database.close()


@pytest.fixture(params=["sqlite", "table"])
async def open_journal(request: pytest.FixtureRequest,
                       tmp_path: Path) -> AsyncIterator[OpenJournal]:
    """Opens another journal (another writer) on the same store: one file or one table."""
    closers: list[Callable[[], Awaitable[None]]] = []
    if request.param == "sqlite":
        def opener() -> Journal:
            database = SqliteDatabase(tmp_path / "state.db")
            closers.append(lambda: asyncio.to_thread(database.close))
            return SqliteJournal(database)
    else:
        connection_string = request.getfixturevalue("azurite_table_connection_string")
        table_name = f"journal{uuid.uuid4().hex}"

        def opener() -> Journal:
            journal = build_table_journal(endpoint=None, connection_string=connection_string,
                                          table_name=table_name)
            closers.append(journal.close)
            return journal
    yield opener
    for close in closers:
        await close()


