"""SqliteJournal on a real SQLite file: cases, ordered steps, and optimistic concurrency.

The behavioural tests also run against tests.fakes.FakeJournal, so the fake the workflow
tests rely on is held to the same contract as the real journal.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.adapters.sqlite_journal import SqliteJournal
from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.errors import ConcurrentUpdate
from remediation.service.ports import Journal
from tests.fakes import FakeJournal

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
ROB = "rob@contoso.com"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def database(db_path: Path) -> Iterator[SqliteDatabase]:
    database = SqliteDatabase(db_path)
    yield database
    database.close()


@pytest.fixture
def sqlite_journal(database: SqliteDatabase) -> SqliteJournal:
    return SqliteJournal(database)


@pytest.fixture(params=["sqlite", "fake"])
def journal(request: pytest.FixtureRequest, sqlite_journal: SqliteJournal) -> Journal:
    return sqlite_journal if request.param == "sqlite" else FakeJournal()


def make_case(case_id: str, user: str = ROB, *, at: datetime = T0,
              state: CaseState = CaseState.RECEIVED, **fields: Any) -> Case:
    return Case(case_id=case_id, user=user, state=state, created_at=at, updated_at=at,
                **fields)


async def stored(journal: Journal, case_id: str) -> Case:
    case = await journal.get_case(case_id)
    assert case is not None
    return case


async def test_a_case_round_trips_with_every_field(journal: Journal) -> None:
    case = make_case(
        "c1", source="alert", reason="phished", requested_by="soc@contoso.com",
        alert_ids=("da1", "da2"), request_ids=("r1",), force=True,
        user_id="3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b", sender=ROB,
        block_created=T0 - timedelta(hours=1), unblocked_at=T0 + timedelta(minutes=1),
        steps=(Step("received", StepStatus.INFO, T0, "manual request", {"force": True}),))

    await journal.add_case(case)

    assert await journal.get_case("c1") == case
    assert await journal.get_case("missing") is None


async def test_a_case_id_is_stored_once(sqlite_journal: SqliteJournal) -> None:
    await sqlite_journal.add_case(make_case("c1"))

    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        await sqlite_journal.add_case(make_case("c1", user="other@contoso.com"))
    assert (await stored(sqlite_journal, "c1")).user == ROB


async def test_steps_are_kept_in_the_order_they_were_added(journal: Journal) -> None:
    await journal.add_case(make_case("c1"))
    # Timestamps out of order on purpose: the journal keeps arrival order, not clock order.
    steps = [Step("lookup_user", StepStatus.STARTED, T0 + timedelta(seconds=5)),
             Step("lookup_user", StepStatus.DONE, T0 + timedelta(seconds=1), "found rob",
                  {"user_id": "u1", "sender": ROB}),
             Step("reset_password", StepStatus.FAILED, T0, "429 Too Many Requests")]
    for step in steps:
        await journal.add_step("c1", step)

    case = await stored(journal, "c1")

    assert case.steps == tuple(steps)
    assert case.done("lookup_user") == steps[1]
    assert case.done("reset_password") is None


async def test_steps_belong_to_their_own_case(journal: Journal) -> None:
    await journal.add_case(make_case("c1"))
    await journal.add_case(make_case("c2"))
    await journal.add_step("c1", Step("one", StepStatus.INFO, T0))
    await journal.add_step("c2", Step("two", StepStatus.INFO, T0))

    assert [s.name for s in (await stored(journal, "c1")).steps] == ["one"]
    assert [s.name for s in (await stored(journal, "c2")).steps] == ["two"]


async def test_list_cases_by_user_in_creation_order(journal: Journal) -> None:
    await journal.add_case(make_case("late", at=T0 + timedelta(hours=2)))
    await journal.add_case(make_case("early", at=T0))
    await journal.add_case(make_case("adele", "adele@contoso.com", at=T0 + timedelta(hours=1)))
    await journal.add_case(make_case("bad", state=CaseState.REJECTED,
                                     at=T0 + timedelta(hours=3)))

    assert [c.case_id for c in await journal.list_cases(ROB)] == ["early", "late", "bad"]
    assert [c.case_id for c in await journal.list_cases()] == ["early", "adele", "late", "bad"]
    assert [c.case_id for c in await journal.list_cases(limit=2)] == ["early", "adele"]
    assert await journal.list_cases("nobody@contoso.com") == []


async def test_latest_case_ignores_rejected_cases(journal: Journal) -> None:
    assert await journal.latest_case(ROB) is None
    await journal.add_case(make_case("first", at=T0, state=CaseState.VERIFIED))
    await journal.add_case(make_case("second", at=T0 + timedelta(hours=1),
                                     state=CaseState.ESCALATED))
    await journal.add_case(make_case("rejected", at=T0 + timedelta(hours=2),
                                     state=CaseState.REJECTED))
    await journal.add_case(make_case("adele", "adele@contoso.com", at=T0 + timedelta(hours=3)))

    latest = await journal.latest_case(ROB)

    assert latest is not None
    assert latest.case_id == "second"


async def test_latest_case_breaks_a_tie_by_insertion(journal: Journal) -> None:
    await journal.add_case(make_case("open"))
    await journal.add_case(make_case("forced", force=True))  # same second, opened later

    latest = await journal.latest_case(ROB)

    assert latest is not None
    assert latest.case_id == "forced"


async def test_latest_case_orders_sub_second_times(journal: Journal) -> None:
    await journal.add_case(make_case("b", at=T0 + timedelta(microseconds=500_000)))
    await journal.add_case(make_case("a", at=T0))  # whole second: no fraction in isoformat

    latest = await journal.latest_case(ROB)

    assert latest is not None
    assert latest.case_id == "b"


async def test_update_case_bumps_the_version_and_keeps_the_steps(
        journal: Journal) -> None:
    await journal.add_case(make_case("c1"))
    await journal.add_step("c1", Step("received", StepStatus.INFO, T0))
    case = await stored(journal, "c1")

    saved = await journal.update_case(case.evolve(state=CaseState.IN_PROGRESS,
                                                  updated_at=T0 + timedelta(minutes=1)))

    assert saved.version == case.version + 1
    again = await stored(journal, "c1")
    assert again.state is CaseState.IN_PROGRESS
    assert again.version == saved.version
    assert again.updated_at == T0 + timedelta(minutes=1)
    assert [s.name for s in again.steps] == ["received"]
    assert await journal.update_case(again.evolve(state=CaseState.VERIFIED)) is not None
    assert (await stored(journal, "c1")).state is CaseState.VERIFIED


async def test_a_stale_writer_gets_concurrent_update(journal: Journal) -> None:
    await journal.add_case(make_case("c1"))
    writer_a = await stored(journal, "c1")
    writer_b = await stored(journal, "c1")
    assert writer_a.version == writer_b.version

    await journal.update_case(writer_a.evolve(state=CaseState.VERIFIED))
    with pytest.raises(ConcurrentUpdate, match="c1"):
        await journal.update_case(writer_b.evolve(state=CaseState.ESCALATED,
                                                  reason="stale view"))

    case = await stored(journal, "c1")
    assert case.state is CaseState.VERIFIED
    assert case.reason is None


async def test_updating_a_missing_case_is_refused(journal: Journal) -> None:
    with pytest.raises(ConcurrentUpdate):
        await journal.update_case(make_case("ghost"))


async def test_concurrent_updates_from_two_processes_let_exactly_one_win(
        db_path: Path, sqlite_journal: SqliteJournal) -> None:
    await sqlite_journal.add_case(make_case("c1"))
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


async def test_concurrent_add_step_keeps_every_step(journal: Journal) -> None:
    await journal.add_case(make_case("c1"))

    await asyncio.gather(*(journal.add_step("c1", Step(f"step-{n}", StepStatus.INFO, T0,
                                                       data={"n": n}))
                           for n in range(60)))

    steps = (await stored(journal, "c1")).steps
    assert len(steps) == 60
    assert sorted(step.data["n"] for step in steps) == list(range(60))
