"""SQLite fixtures shared by the queue and journal tests."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from remediation.adapters.sqlite_db import SqliteDatabase


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def database(db_path: Path) -> Iterator[SqliteDatabase]:
    database = SqliteDatabase(db_path)
    yield database
    database.close()
