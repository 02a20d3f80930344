"""The hash chain held against both real journals, SQLite and Table Storage (Azurite): what
the app writes is intact, concurrent writers keep it intact, and a step edited or deleted by
hand in the file or the table (sqlite3, the Azure Tables SDK) is named by ``chain_problems``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path

from azure.data.tables.aio import TableClient

from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.adapters.sqlite_journal import SqliteJournal
from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.journal_chain import chain_notes, chain_problems
from remediation.service.ports import Journal
from tests.journal_cases import ROB, T0, make_case, stored, updated_over_races
from tests.journal_tampering import Store, store  # noqa: F401 (a fixture)

NAMES = ["lookup_user", "guardrails", "reset_password", "revoke_sessions", "unblock",
         "schedule_verification", "verify"]


async def journaled(journal: Journal, case_id: str = "c1") -> Case:
    """A case opened with one step, seven more added and the record updated twice between."""
    await journal.add_case(make_case(case_id, steps=(
        Step("received", StepStatus.INFO, T0, "manual request", {"by": "soc@contoso.com"}),)))
    for n, name in enumerate(NAMES, start=2):
        await journal.add_step(case_id, Step(name, StepStatus.DONE, T0 + timedelta(seconds=n),
                                             f"{name}: done ✓", {"n": n}))
        if name in ("guardrails", "unblock"):
            case = await stored(journal, case_id)
            await journal.update_case(case.evolve(
                state=CaseState.IN_PROGRESS if name == "guardrails"
                else CaseState.AWAITING_VERIFICATION, reason="rate-limit “block”"))
    return await stored(journal, case_id)


def numbers(case: Case) -> list[int]:
    return [step.link.seq for step in case.steps if step.link is not None]


async def test_what_the_app_writes_is_intact(store: Store) -> None:  # noqa: F811
    case = await journaled(store.journal())

    assert numbers(case) == list(range(1, 9))
    assert chain_problems(case) == []
    assert chain_notes(case) == []
    [listed] = await store.journal().list_cases(ROB)
    assert chain_problems(listed) == []
    assert chain_problems(await store.journal().update_case(case.evolve(
        state=CaseState.VERIFIED))) == []


async def test_an_edited_step_is_named(store: Store) -> None:  # noqa: F811
    await journaled(store.journal())

    await store.edit_step("c1", 4, detail="reset_password: skipped")

    assert chain_problems(await stored(store.journal(), "c1")) == [
        "step 4 (reset_password) was changed after it was written"]


async def test_a_deleted_step_is_named(store: Store) -> None:  # noqa: F811
    await journaled(store.journal())

    await store.delete_step("c1", 5)

    assert chain_problems(await stored(store.journal(), "c1")) == [
        "a step between 4 and 6 is missing"]


async def test_a_step_deleted_from_the_end_is_named(store: Store) -> None:  # noqa: F811
    await journaled(store.journal())

    await store.delete_step("c1", 8)

    assert chain_problems(await stored(store.journal(), "c1")) == [
        "the last step (step 8) is missing"]


async def test_an_edited_case_record_is_named(store: Store) -> None:  # noqa: F811
    await journaled(store.journal())

    await store.edit_case("c1", state="verified")

    case = await stored(store.journal(), "c1")
    assert case.state is CaseState.VERIFIED
    assert chain_problems(case) == [
        "the case record (state verified) was changed after it was written"]


async def test_steps_added_after_a_deletion_keep_the_gap_visible(
        store: Store) -> None:  # noqa: F811
    journal = store.journal()
    await journaled(journal)
    await store.delete_step("c1", 8)

    await journal.add_step("c1", Step("verify", StepStatus.DONE, T0, "again"))

    case = await stored(journal, "c1")
    assert numbers(case)[-2:] == [7, 9]
    assert chain_problems(case) == ["a step between 7 and 9 is missing"]


async def test_two_writers_appending_at_once_keep_the_chain_whole(
        store: Store) -> None:  # noqa: F811
    writers = [store.journal(), store.journal()]
    await writers[0].add_case(make_case("c1", steps=(Step("received", StepStatus.INFO, T0),)))

    await asyncio.gather(*(writers[n % 2].add_step(
        "c1", Step(f"step-{n}", StepStatus.INFO, T0, data={"n": n})) for n in range(40)))

    case = await stored(writers[1], "c1")
    assert sorted(step.data["n"] for step in case.steps[1:]) == list(range(40))
    assert numbers(case) == list(range(1, 42))
    assert chain_problems(case) == []


async def test_record_updates_racing_appends_keep_the_chain_whole(
        store: Store) -> None:  # noqa: F811
    writers = [store.journal(), store.journal()]
    await writers[0].add_case(make_case("c1"))

    await asyncio.gather(
        *(writers[n % 2].add_step("c1", Step(f"s{n}", StepStatus.INFO, T0)) for n in range(10)),
        *(updated_over_races(writers[n % 2], "c1", f"update {n}", tries=20) for n in range(4)))

    case = await stored(writers[0], "c1")
    assert numbers(case) == list(range(1, 11))
    assert case.version == 4
    assert chain_problems(case) == []


async def test_table_steps_written_before_the_chain_are_counted_and_the_chain_follows(
        azurite_table_connection_string: str, tmp_path: Path) -> None:
    """A case the previous version wrote: no seal, steps keyed by time without a hash."""
    table_name = f"journal{uuid.uuid4().hex[:16]}"
    table = Store("table", tmp_path / "unused.db", azurite_table_connection_string, table_name)
    journal = table.journal()
    await journal.add_case(make_case("c1"))  # creates the table
    async with TableClient.from_connection_string(azurite_table_connection_string,
                                                  table_name) as raw:
        old = make_case("old")
        await raw.create_entity({"PartitionKey": "case:old", "RowKey": "case",
                                   "user": ROB, "state": "received", "version": 0,
                                   "created_at": T0, "updated_at": T0, "names": ROB,
                                   "doc": json.dumps(old.to_dict())})
        for n, name in enumerate(("received", "lookup_user")):
            step = Step(name, StepStatus.INFO, T0)
            await raw.create_entity({
                "PartitionKey": "case:old", "RowKey": f"step-{1714554000000000000 + n:020d}-ab12",
                "name": name, "status": "info", "doc": json.dumps(step.to_dict())})

    await journal.add_step("old", Step("guardrails", StepStatus.DONE, T0, "passed"))

    case = await stored(journal, "old")
    assert [step.name for step in case.steps] == ["received", "lookup_user", "guardrails"]
    assert numbers(case) == [1]
    assert chain_problems(case) == []
    assert chain_notes(case) == ["2 steps written before the chain (not verifiable)",
                                 "the case record was written before the chain (not verifiable)"]
    sealed = await journal.update_case(case.evolve(state=CaseState.IN_PROGRESS))
    assert chain_notes(await stored(journal, "old")) == [
        "2 steps written before the chain (not verifiable)"]
    assert sealed.seal is not None
    await table.aclose()


# The schema before the chain (steps without prev/hash, cases without seal, no chain_heads).
OLD_SCHEMA = """
CREATE TABLE cases (case_id TEXT PRIMARY KEY, user TEXT NOT NULL, state TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL,
    doc TEXT NOT NULL);
CREATE TABLE steps (case_id TEXT NOT NULL, seq INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (case_id, seq));
"""


def old_file(path: Path) -> None:
    """A journal file the previous version wrote: one case, two steps."""
    case = make_case("old")
    with sqlite3.connect(path) as connection:
        connection.executescript(OLD_SCHEMA)
        connection.execute("INSERT INTO cases VALUES (?, ?, ?, ?, ?, 0, ?)",
                           ("old", ROB, "received", T0.isoformat(), T0.isoformat(),
                            json.dumps(case.to_dict())))
        for seq, name in ((1, "received"), (2, "lookup_user")):
            connection.execute("INSERT INTO steps VALUES ('old', ?, ?)", (seq, json.dumps(
                Step(name, StepStatus.INFO, T0).to_dict())))
    connection.close()


async def test_an_sqlite_file_from_before_the_chain_reads_and_continues_it(
        tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old_file(path)
    reader = SqliteDatabase(path, read_only=True)  # status: the file as it is
    try:
        before = await stored(SqliteJournal(reader), "old")
    finally:
        reader.close()
    assert [step.name for step in before.steps] == ["received", "lookup_user"]
    assert chain_problems(before) == []
    assert chain_notes(before) == ["2 steps written before the chain (not verifiable)",
                                   "the case record was written before the chain (not "
                                   "verifiable)"]

    writer = SqliteDatabase(path)  # a worker: the file gets the chain's columns
    try:
        journal = SqliteJournal(writer)
        await journal.add_step("old", Step("guardrails", StepStatus.DONE, T0))
        await journal.update_case((await stored(journal, "old")).evolve(
            state=CaseState.IN_PROGRESS))
        after = await stored(journal, "old")
    finally:
        writer.close()
    assert numbers(after) == [3]  # the file's own numbering goes on
    assert chain_problems(after) == []
    assert chain_notes(after) == ["2 steps written before the chain (not verifiable)"]
