"""SqliteJournal specifics on a real SQLite file (ordering ties, several processes).

The behaviour every journal shares is in test_journal_contract.py, run against SQLite,
Table Storage and the fake; these tests also hold the fake to the SQLite-only rules.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.adapters.sqlite_journal import SqliteJournal
from remediation.domain.cases import Case, Step, StepStatus
from remediation.domain.errors import ConcurrentUpdate
from remediation.service.ports import Journal
from tests.fakes import FakeJournal
from tests.journal_cases import ROB, T0, make_case, seed, stored


@pytest.fixture
def sqlite_journal(database: SqliteDatabase) -> SqliteJournal:
    return SqliteJournal(database)


@pytest.fixture(params=["sqlite", "fake"])
def journal(request: pytest.FixtureRequest, sqlite_journal: SqliteJournal) -> Journal:
    return sqlite_journal if request.param == "sqlite" else FakeJournal()


async def test_steps_belong_to_their_own_case(journal: Journal) -> None:
    await seed(journal, make_case("c1"))
    await seed(journal, make_case("c2"))
    await journal.add_step("c1", Step("one", StepStatus.INFO, T0))
    await journal.add_step("c2", Step("two", StepStatus.INFO, T0))

    assert [s.name for s in (await stored(journal, "c1")).steps] == ["one"]
    assert [s.name for s in (await stored(journal, "c2")).steps] == ["two"]


async def test_latest_case_breaks_a_tie_by_insertion(journal: Journal) -> None:
    await seed(journal, make_case("open"))
    await seed(journal, make_case("forced", force=True))  # same second, opened later

    latest = await journal.latest_case(ROB)

    assert latest is not None
    assert latest.case_id == "forced"


async def test_latest_case_orders_sub_second_times(journal: Journal) -> None:
    await seed(journal, make_case("b", at=T0 + timedelta(microseconds=500_000)))
    await seed(journal, make_case("a", at=T0))  # whole second: no fraction in isoformat

    latest = await journal.latest_case(ROB)

    assert latest is not None
    assert latest.case_id == "b"


async def test_updating_a_missing_case_is_refused(journal: Journal) -> None:
    with pytest.raises(ConcurrentUpdate):
        await journal.update_case(make_case("ghost"))


async def test_concurrent_updates_from_two_processes_let_exactly_one_win(
        db_path: Path, sqlite_journal: SqliteJournal) -> None:
    await seed(sqlite_journal, make_case("c1"))
    other = SqliteDatabase(db_path)
    try:
        journals = [sqlite_journal, SqliteJournal(other)]
        views = [await stored(j, "c1") for j in journals]
        results = await asyncio.gather(
            *(j.update_case(v.evolve(reason=f"writer {n}"))
              for n, (j, v) in enumerate(zip(journals, views, strict=True))),
            return_exceptions=True)
    finally:
        other.close()

    assert sorted(type(r).__name__ for r in results) == ["Case", "ConcurrentUpdate"]
    winner = next(r for r in results if isinstance(r, Case))
    assert (await stored(sqlite_journal, "c1")).reason == winner.reason

