"""Closing the SQLite database while a cancelled task's work still runs in its thread
(``asyncio.to_thread`` cannot stop it): close waits for the work, which ends as it would
have, instead of closing the connection under it (with SQLite busy in C, a segfault of the
worker: seen once in CI, ``libsqlite3`` in the kernel log, when the storm bench's runtime
and a test worker died at once)."""

import asyncio
import sqlite3
import time
from pathlib import Path

from remediation.adapters.sqlite_db import SqliteDatabase


async def test_close_waits_for_work_a_cancelled_task_left_running(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "state.db")

    def slow_write(connection: sqlite3.Connection) -> None:
        time.sleep(0.3)
        connection.execute("INSERT INTO sources (source, doc) VALUES ('left-running', '{}')")

    task = asyncio.create_task(db.write(slow_write))
    await asyncio.sleep(0.1)  # the work is in its thread now
    task.cancel()
    db.close()

    reopened = sqlite3.connect(tmp_path / "state.db")
    try:
        rows = reopened.execute(
            "SELECT source FROM sources WHERE source = 'left-running'").fetchall()
    finally:
        reopened.close()
    assert rows == [("left-running",)]
