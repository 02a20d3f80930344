"""Writes that wait for the writer thread share one transaction (group commit), each in a
savepoint of its own: what one write did is undone with it when it fails, never with the
others, and each caller hears its own outcome."""

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from remediation.adapters.sqlite_db import SqliteDatabase


def sources(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return sorted(row[0] for row in connection.execute("SELECT source FROM sources"))


async def test_a_write_that_fails_in_a_burst_is_undone_alone(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "state.db")

    def slow(connection: sqlite3.Connection) -> str:  # the others queue up behind it
        time.sleep(0.2)
        connection.execute("INSERT INTO sources (source, doc) VALUES ('first', '{}')")
        return "first"

    def insert(name: str, *, fail: bool = False) -> object:
        def work(connection: sqlite3.Connection) -> str:
            connection.execute("INSERT INTO sources (source, doc) VALUES (?, '{}')", (name,))
            if fail:
                raise ValueError(f"{name} refused after its insert")
            return name
        return work

    try:
        first = asyncio.create_task(db.write(slow))
        await asyncio.sleep(0.05)  # the writer thread is busy: the burst waits together
        names = [f"w{n:02}" for n in range(30)]
        outcomes = await asyncio.gather(
            *(db.write(insert(name, fail=name == "w13")) for name in names),  # type: ignore[arg-type]
            return_exceptions=True)
        assert await first == "first"
    finally:
        db.close()

    assert [o for o in outcomes if isinstance(o, Exception)] and isinstance(
        outcomes[13], ValueError)
    assert [o for n, o in enumerate(outcomes) if n != 13] == [
        name for name in names if name != "w13"]
    assert sources(tmp_path / "state.db") == sorted(
        ["first", *(name for name in names if name != "w13")])


async def test_a_write_that_breaks_a_constraint_leaves_the_rest_of_its_batch(
        tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "state.db")

    def insert(name: str) -> object:
        def work(connection: sqlite3.Connection) -> None:
            connection.execute("INSERT INTO sources (source, doc) VALUES (?, '{}')", (name,))
        return work

    try:
        await db.write(insert("taken"))  # type: ignore[arg-type]
        results = await asyncio.gather(*(db.write(insert(name))  # type: ignore[arg-type]
                                         for name in ("a", "taken", "b")),
                                       return_exceptions=True)
    finally:
        db.close()
    assert results[0] is None and results[2] is None
    with pytest.raises(sqlite3.IntegrityError):
        raise results[1]  # type: ignore[misc]
    assert sources(tmp_path / "state.db") == ["a", "b", "taken"]


async def test_a_writer_whose_turn_is_held_elsewhere_fails_in_time_instead_of_hanging(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process stopped (Ctrl-Z) while it holds the writers' turn: a write fails
    after the wait, as SQLite's own "database is locked", and the next one goes through
    once the turn is free."""
    import fcntl
    import os

    from remediation.adapters import sqlite_db

    monkeypatch.setattr(sqlite_db, "TURN_WAIT", 0.3)
    db = SqliteDatabase(tmp_path / "state.db")
    try:
        await db.write(lambda c: c.execute("INSERT INTO sources VALUES ('before', '{}')"))
        held = os.open(f"{tmp_path / 'state.db'}-writer", os.O_RDWR)
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await db.write(lambda c: c.execute("INSERT INTO sources VALUES ('held', '{}')"))
        fcntl.flock(held, fcntl.LOCK_UN)
        os.close(held)
        await db.write(lambda c: c.execute("INSERT INTO sources VALUES ('after', '{}')"))
    finally:
        db.close()
    assert sources(tmp_path / "state.db") == ["after", "before"]


class _Stop(BaseException):
    """Not an Exception: what a work should never raise, and must not wedge the writer."""


async def test_a_write_that_raises_a_base_exception_does_not_stop_the_later_ones(
        tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "state.db")

    def stop(connection: sqlite3.Connection) -> None:
        raise _Stop()

    try:
        with pytest.raises(_Stop):
            await db.write(stop)
        await asyncio.wait_for(
            db.write(lambda c: c.execute("INSERT INTO sources VALUES ('later', '{}')")), 10)
    finally:
        db.close()
    assert sources(tmp_path / "state.db") == ["later"]
