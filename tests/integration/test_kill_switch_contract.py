"""The kill switch in the Journal contract, held against both real journals (SQLite, Table
Storage on Azurite) and the fake the unit tests use: a pause one writer sets is what every
other writer reads, with who, why and since, until one of them resumes."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.adapters.sqlite_journal import SqliteJournal
from remediation.domain.pause import Paused
from remediation.service.ports import Journal
from tests.fakes import FakeJournal
from tests.integration.conftest import OpenJournal
from tests.journal_cases import T0

ALICE = Paused("alice@contoso.com", "phishing wave: checking the alerts by hand", T0)


async def test_a_pause_set_by_one_worker_is_read_by_another(
        open_journal: OpenJournal) -> None:
    await _pause_and_resume(open_journal(), open_journal())


async def test_of_concurrent_pauses_the_first_one_stands(open_journal: OpenJournal) -> None:
    writers = [open_journal(), open_journal()]
    pauses = [Paused(f"op{n}@contoso.com", f"reason {n}", T0 + timedelta(seconds=n))
              for n in range(10)]

    answers = await asyncio.gather(*(writers[n % 2].pause(pause)
                                     for n, pause in enumerate(pauses)))

    [winner] = set(answers)
    assert winner in pauses
    assert await writers[0].pause_state() == winner
    assert await writers[1].pause_state() == winner


async def test_the_fake_journal_keeps_the_kill_switch_rules() -> None:
    fake = FakeJournal()
    await _pause_and_resume(fake, fake)


async def test_a_journal_file_from_before_the_switch_reads_as_not_paused(
        tmp_path: Path) -> None:
    """``status`` opens the file read-only; a file no worker of this version opened has no
    switch yet."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE cases (case_id TEXT PRIMARY KEY)")
    database = SqliteDatabase(path, read_only=True)
    try:
        assert await SqliteJournal(database).pause_state() is None
    finally:
        database.close()


async def _pause_and_resume(first: Journal, second: Journal) -> None:
    assert await first.pause_state() is None
    assert await second.resume("bob@contoso.com", T0) is None  # nothing to lift

    assert await first.pause(ALICE) == ALICE
    assert await second.pause_state() == ALICE
    # Paused again: the pause in force stands, who, why and since unchanged.
    later = Paused("bob@contoso.com", "another reason", T0 + timedelta(minutes=5))
    assert await second.pause(later) == ALICE
    assert await first.pause_state() == ALICE

    assert await second.resume("bob@contoso.com", T0 + timedelta(hours=1)) == ALICE
    assert await first.pause_state() is None
    assert await first.resume("bob@contoso.com", T0 + timedelta(hours=2)) is None

    # The next pause is a new one (its own since).
    assert await second.pause(later) == later
    assert await first.pause_state() == later
