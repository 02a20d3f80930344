"""The writer thread's edges: a write whose caller gave up before it began, a write that
fills the disk in the middle of a batch, and the writes around ``SqliteDatabase.close``."""

import asyncio
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from remediation.adapters.sqlite_db import SqliteDatabase


def sources(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return sorted(row[0] for row in connection.execute("SELECT source FROM sources"))


def insert(name: str, doc: str = "{}") -> Callable[[sqlite3.Connection], None]:
    def work(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO sources (source, doc) VALUES (?, ?)", (name, doc))
    return work


@contextmanager
def turn_held_elsewhere(path: Path) -> Iterator[None]:
    """Another process holds the writers' turn (the lock file beside the database)."""
    held = os.open(f"{path}-writer", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        yield
    finally:
        os.close(held)  # the turn is free again


def open_files(path: Path) -> list[str]:
    """What this process has open of the database (its file, -wal, -shm, -writer)."""
    found = []
    for descriptor in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{descriptor}")
        except OSError:  # the directory's own descriptor, closed meanwhile
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


async def test_a_write_whose_caller_gave_up_while_it_waited_is_not_made(
        tmp_path: Path) -> None:
    """A delivery's time budget runs out (or a second Ctrl-C cancels the work) while its
    write waits for the writer thread: the caller hears it failed, so the write is not made
    later behind its back (a receive would lock a message nobody works, and count a
    delivery that never was)."""
    path = tmp_path / "state.db"
    db = SqliteDatabase(path)
    try:
        await db.write(insert("before"))
        with turn_held_elsewhere(path):
            first = asyncio.create_task(db.write(insert("in hand")))
            await asyncio.sleep(0.1)  # the writer thread waits for its turn with it
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(db.write(insert("given up")), 0.1)
        await first
        await db.write(insert("after"))
    finally:
        db.close()
    assert sources(path) == ["after", "before", "in hand"]


async def test_a_write_that_fills_the_disk_in_a_batch_says_so(tmp_path: Path) -> None:
    """SQLite may roll the whole transaction back on a full disk (SQLITE_FULL: "Response To
    Errors Within A Transaction", https://www.sqlite.org/lang_transaction.html): every write
    of the batch is undone, and each caller hears why, not that a savepoint went missing."""
    path = tmp_path / "state.db"
    db = SqliteDatabase(path)

    def slow(connection: sqlite3.Connection) -> None:  # the others queue up behind it
        time.sleep(0.2)

    try:
        await db.write(insert("before"))
        first = asyncio.create_task(db.write(slow))
        await asyncio.sleep(0.05)
        outcomes = await asyncio.gather(db.write(insert("alongside")), db.write(fill_the_disk),
                                        return_exceptions=True)
        await first
    finally:
        db.close()
    assert [str(outcome) for outcome in outcomes] == ["database or disk is full"] * 2
    assert sources(path) == ["before"]


def fill_the_disk(connection: sqlite3.Connection) -> None:
    """A write that finds the disk full (SQLITE_FULL), the database's size capped just
    above what it holds."""
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {pages + 2}")
    insert("too big", "x" * 100_000)(connection)


async def test_a_rehearsal_on_a_full_disk_says_so(tmp_path: Path) -> None:
    """``doctor``'s probe (``rehearse``: a write rolled back) on a full disk names the
    cause, not the rollback SQLite had already done."""
    db = SqliteDatabase(tmp_path / "state.db")
    try:
        await db.write(insert("before"))
        with pytest.raises(sqlite3.OperationalError, match=r"^database or disk is full$"):
            await db.rehearse(fill_the_disk)
        await db.check_writable()  # the connection is fit for the next one
    finally:
        db.close()
    assert sources(tmp_path / "state.db") == ["before"]


async def test_what_is_asked_after_close_is_done_and_leaves_nothing_open(
        tmp_path: Path) -> None:
    """A late write (a cancelled task's clean-up, after the app closed its database) is
    made, and no connection nor lock file stays open after it: close() was the last call
    that closes anything."""
    path = tmp_path / "state.db"
    db = SqliteDatabase(path)
    await db.write(insert("before"))
    db.close()
    assert open_files(path) == []

    await db.write(insert("after close"))
    assert await db.read(lambda c: c.execute("SELECT COUNT(*) FROM sources").fetchone()[0]) == 2
    await db.check_writable()
    assert open_files(path) == []
    db.close()
    assert sources(path) == ["after close", "before"]


async def test_close_lets_the_writes_already_asked_finish(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes still queued for the writer thread when close() is called are made and
    answered, and then nothing of the database stays open."""
    from remediation.adapters import sqlite_db

    monkeypatch.setattr(sqlite_db, "GROUP_LIMIT", 1)  # one transaction each: close comes between
    path = tmp_path / "state.db"
    db = SqliteDatabase(path)
    await db.write(insert("before"))
    with turn_held_elsewhere(path):
        first = asyncio.create_task(db.write(insert("first")))
        await asyncio.sleep(0.1)  # the writer thread waits for its turn with it
        queued = [asyncio.create_task(db.write(insert(f"queued {n}"))) for n in range(3)]
        await asyncio.sleep(0.05)
        closing = asyncio.create_task(asyncio.to_thread(db.close))
        await asyncio.sleep(0.1)
    await closing
    await asyncio.gather(first, *queued)
    assert open_files(path) == []
    assert sources(path) == ["before", "first", "queued 0", "queued 1", "queued 2"]
