"""The chain's head against both real journals (SQLite, Table Storage on Azurite): an edit by
hand that the head shows stays shown after the app writes again (its next step, its next
record write never launder it), and a case opened with no step is chained from its opening.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import timedelta

from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from remediation.domain.cases import CaseState, Step, StepStatus
from remediation.domain.journal_chain import chain_problems
from tests.integration.test_hostile_17_chain import (
    _case_row,
    _insert_unhashed_first,
    _put_case_row,
)
from tests.integration.test_journal_chain import journaled
from tests.journal_cases import T0, make_case, stored
from tests.journal_tampering import Store, store  # noqa: F401 (a fixture)

LATER = Step("verify_0", StepStatus.DONE, T0 + timedelta(hours=1), "no longer blocked")


async def _head_copied_from_step_7(store: Store) -> None:  # noqa: F811
    """Step 8 deleted and step 7's number and hash copied into the head, as a person would."""
    await store.delete_step("c1", 8)
    if store.kind == "sqlite":
        with closing(sqlite3.connect(store.path)) as connection, connection:
            connection.execute("UPDATE chain_heads SET seq = 7, hash = (SELECT hash FROM steps"
                               " WHERE case_id = 'c1' AND seq = 7) WHERE case_id = 'c1'")
        return
    async with TableClient.from_connection_string(store.connection_string,
                                                  store.table_name) as table:
        seventh = await table.get_entity("case:c1", "step-s0000000007")
        await table.upsert_entity({"PartitionKey": "case:c1", "RowKey": "chain", "seq": 7,
                                   "hash": seventh["hash"]}, mode=UpdateMode.REPLACE)


async def test_a_cut_end_stays_shown_after_the_app_appends_again(
        store: Store) -> None:  # noqa: F811
    journal = store.journal()
    await journaled(journal)
    await _head_copied_from_step_7(store)

    await journal.add_step("c1", LATER)  # takes number 8, chained after step 7
    await journal.add_step("c1", LATER)

    problems = chain_problems(await stored(store.journal(), "c1"))
    assert len(problems) == 1
    assert problems[0].startswith("the chain's head ")
    assert problems[0].endswith(" when step 8 was written")


async def test_a_record_put_back_stays_shown_after_the_app_writes_it_again(
        store: Store) -> None:  # noqa: F811
    journal = store.journal()
    await journaled(journal)
    earlier = await _case_row(store, "c1")
    await journal.add_step("c1", LATER)
    await journal.update_case((await stored(journal, "c1")).evolve(
        state=CaseState.VERIFIED, reason="verified"))
    await _put_case_row(store, "c1", earlier)

    rolled = await stored(journal, "c1")  # awaiting verification again, version 2
    await journal.update_case(rolled.evolve(reason="checked again"))

    assert chain_problems(await stored(store.journal(), "c1")) == [
        "the case record had been replaced outside the app (an earlier copy put back) when "
        "version 3 of the case record was written"]


async def test_a_case_opened_with_no_step_is_chained_from_its_opening(
        store: Store) -> None:  # noqa: F811
    journal = store.journal()
    await journal.add_case(make_case("c1"))
    assert chain_problems(await stored(journal, "c1")) == []

    await _insert_unhashed_first(store, "c1")

    assert chain_problems(await stored(store.journal(), "c1")) == [
        "a step (approved) has no hash: it was added outside the app (this case was chained "
        "from its opening)"]
