"""The local database holds the journal (who was reset, what was found in their mailbox): its
file is readable by its owner only, and so is a directory we create for it."""

import asyncio
import os
import stat
from pathlib import Path

import pytest

from remediation.adapters.sqlite_db import SqliteDatabase


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def generous_umask() -> object:
    """The usual 022 (or looser): the files must not depend on the caller's umask."""
    old = os.umask(0o002)
    yield None
    os.umask(old)


def test_a_new_database_file_and_its_new_directory_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "state.db"
    database = SqliteDatabase(path)
    try:
        asyncio.run(database.write(lambda c: c.execute(
            "INSERT INTO reset_places (case_id, reserved_at) VALUES ('c', 1)")))
    finally:
        database.close()

    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    for sidecar in (path.with_name("state.db-wal"), path.with_name("state.db-shm")):
        if sidecar.exists():
            assert mode(sidecar) & 0o077 == 0, sidecar


def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    database = SqliteDatabase(tmp_path / "state.db")
    try:
        asyncio.run(database.read(lambda c: c.execute("SELECT 1").fetchone()))
    finally:
        database.close()

    assert mode(tmp_path) == 0o755
    assert mode(tmp_path / "state.db") == 0o600
