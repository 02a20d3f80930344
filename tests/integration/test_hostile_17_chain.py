"""Hostile round on issue 17, the journal's hash chain (README, Journal integrity): edits a
person with write access to the SQLite file or the table makes by hand, computing no hash,
that neither ``chain_problems`` (what doctor and report say) nor the report's order shows."""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from remediation.domain.cases import CaseState, Step, StepStatus
from remediation.domain.journal_chain import chain_problems
from tests.integration.test_journal_chain import journaled
from tests.journal_cases import T0, stored
from tests.journal_tampering import Store, store  # noqa: F401 (a fixture)

FORGED = Step("approved", StepStatus.INFO, T0 - timedelta(minutes=5),
              "approved by ceo@contoso.com", {"approved_by": "ceo@contoso.com"})


async def _insert_unhashed_first(store: Store, case_id: str) -> None:  # noqa: F811
    """A step row with no hash, placed before the case's first step: one INSERT."""
    doc = json.dumps(FORGED.to_dict())
    if store.kind == "sqlite":
        with closing(sqlite3.connect(store.path)) as connection, connection:
            connection.execute("INSERT INTO steps (case_id, seq, doc) VALUES (?, 0, ?)",
                               (case_id, doc))
        return
    async with TableClient.from_connection_string(store.connection_string,
                                                  store.table_name) as table:
        await table.create_entity({"PartitionKey": f"case:{case_id}",
                                   "RowKey": f"step-{1714554000000000000:020d}-ab12",
                                   "name": FORGED.name, "status": "info", "doc": doc})


async def test_a_step_forged_before_the_first_step_of_a_chained_case_shows(
        store: Store) -> None:  # noqa: F811
    # The case was written whole by this version (its first step is chained, number 1,
    # after nothing): no step of it can predate the chain. A row slipped in before it is
    # taken for "written before the chain (not verifiable)", and the case reads intact.
    await journaled(store.journal())

    await _insert_unhashed_first(store, "c1")

    case = await stored(store.journal(), "c1")
    assert case.steps[0].name == "approved"  # the report lists it first, as the journal's
    assert chain_problems(case) != [], "a forged step reads as intact"


async def test_table_steps_swapped_between_rows_show(
        azurite_table_connection_string: str, tmp_path: Path) -> None:
    # The table orders a case's steps by RowKey, the chain by the seq property: two rows'
    # properties swapped (RowKey kept) reorder the journal the report shows, hash intact.
    store = Store("table", tmp_path / "unused.db",  # noqa: F811
                  azurite_table_connection_string, f"journal{uuid.uuid4().hex[:16]}")
    await journaled(store.journal())
    async with TableClient.from_connection_string(store.connection_string,
                                                  store.table_name) as table:
        rows = {str(row["RowKey"]): dict(row) async for row in table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": "case:c1"})}
        reset, unblock = rows["step-s0000000004"], rows["step-s0000000006"]
        for row, other in ((reset, unblock), (unblock, reset)):
            swapped = {**{k: v for k, v in other.items() if k not in ("PartitionKey", "RowKey")},
                       "PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"]}
            await table.upsert_entity(swapped, mode=UpdateMode.REPLACE)

    case = await stored(store.journal(), "c1")
    await store.aclose()
    names = [step.name for step in case.steps]
    assert names.index("unblock") < names.index("reset_password")  # the journal now says so
    assert chain_problems(case) != [], "a reordered journal reads as intact"


async def test_steps_cut_from_the_end_with_the_head_copied_back_show(
        store: Store) -> None:  # noqa: F811
    # README: "a step deleted from the end shows too". Deleting the last step and copying
    # the step before it's number and hash into the head (two values read from its row, no
    # hash computed) hides it, as long as the case record was written before it.
    await journaled(store.journal())
    await store.delete_step("c1", 8)
    if store.kind == "sqlite":
        with closing(sqlite3.connect(store.path)) as connection, connection:
            connection.execute("UPDATE chain_heads SET seq = 7, hash = (SELECT hash FROM steps"
                               " WHERE case_id = 'c1' AND seq = 7) WHERE case_id = 'c1'")
    else:
        async with TableClient.from_connection_string(store.connection_string,
                                                      store.table_name) as table:
            seventh = await table.get_entity("case:c1", "step-s0000000007")
            await table.upsert_entity({"PartitionKey": "case:c1", "RowKey": "chain",
                                       "seq": 7, "hash": seventh["hash"]},
                                      mode=UpdateMode.REPLACE)

    case = await stored(store.journal(), "c1")
    assert [step.name for step in case.steps][-1] == "schedule_verification"
    assert chain_problems(case) != [], "a journal cut short reads as intact"


async def test_a_case_record_put_back_as_it_was_earlier_shows(
        store: Store) -> None:  # noqa: F811
    # README: "Whenever the case record is written (its state, its reason ...) it is sealed
    # ... with the head it was written after", so a replaced record shows. A copy of the
    # record taken while the case was in progress, written back over the verified one (one
    # row, seal included, no hash computed), reads as intact: the case is in progress again.
    journal = store.journal()
    await journaled(journal)  # its record last written after step 6 (awaiting_verification)
    earlier = await _case_row(store, "c1")
    case = await stored(journal, "c1")
    await journal.add_step("c1", Step("verify_0", StepStatus.DONE, T0 + timedelta(hours=1),
                                      "no longer blocked"))
    await journal.update_case((await stored(journal, "c1")).evolve(
        state=CaseState.VERIFIED, reason="verified"))

    await _put_case_row(store, "c1", earlier)

    rolled = await stored(store.journal(), "c1")
    assert rolled.state is case.state is CaseState.AWAITING_VERIFICATION
    assert chain_problems(rolled) != [], "a record rolled back reads as intact"


async def _case_row(store: Store, case_id: str) -> dict[str, Any]:  # noqa: F811
    if store.kind == "sqlite":
        with closing(sqlite3.connect(store.path)) as connection:
            connection.row_factory = sqlite3.Row
            return dict(connection.execute("SELECT * FROM cases WHERE case_id = ?",
                                           (case_id,)).fetchone())
    async with TableClient.from_connection_string(store.connection_string,
                                                  store.table_name) as table:
        return dict(await table.get_entity(f"case:{case_id}", "case"))


async def _put_case_row(store: Store, case_id: str,  # noqa: F811
                        row: dict[str, Any]) -> None:
    if store.kind == "sqlite":
        with closing(sqlite3.connect(store.path)) as connection, connection:
            names = [name for name in row if name != "case_id"]
            connection.execute(
                f"UPDATE cases SET {', '.join(f'{n} = ?' for n in names)} WHERE case_id = ?",  # noqa: S608 (our columns)
                (*(row[n] for n in names), case_id))
        return
    async with TableClient.from_connection_string(store.connection_string,
                                                  store.table_name) as table:
        await table.upsert_entity(row, mode=UpdateMode.REPLACE)
