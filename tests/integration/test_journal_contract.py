"""The Journal contract, held against both real journals: SQLite (local runtime) and Azure
Table Storage (on Azurite). Whatever the workflow may rely on is asserted here, so switching
the journal never changes what an operator sees.

SQLite-only details (schema, integrity errors) stay in test_sqlite_journal.py; the few
Table-only checks at the end cover what SQLite cannot run into (service errors, size limits).
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Awaitable
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp import web
from azure.data.tables.aio import TableClient

from remediation.adapters.table_journal import TableJournal, build_table_journal
from remediation.config import ConfigError
from remediation.domain.case_states import (
    TRANSITIONS,
    WORKING,
    Event,
    ForbiddenTransition,
    next_state,
)
from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.errors import ConcurrentUpdate, PermanentError, TransientError
from remediation.domain.journal_chain import check_chain
from remediation.domain.sources import REASON_LIMIT, SourceHealth
from remediation.service.ports import Journal
from tests.integration.conftest import OpenJournal
from tests.journal_cases import ROB, T0, make_case, seed, stored


@pytest.fixture
def journal(open_journal: OpenJournal) -> Journal:
    return open_journal()


async def ids(cases: Awaitable[list[Case]]) -> list[str]:
    return [case.case_id for case in await cases]


async def test_every_case_field_round_trips(journal: Journal) -> None:
    paris = timezone(timedelta(hours=2))
    full = make_case(
        "full", at=datetime(2024, 5, 1, 11, 0, 0, 123456, tzinfo=paris), source="alert",
        reason="phished — “urgent invoice” ✉", requested_by="soc@contoso.com",
        alert_ids=("da1", "da2"), request_ids=("alert:da1", "alert:da2"), force=True,
        user_id="3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b", sender=ROB,
        aliases=("rob.young@contoso.com", "ryoung@contoso.onmicrosoft.com"),
        block_created=T0 - timedelta(hours=1), unblocked_at=T0 + timedelta(minutes=1),
        last_block_seen=T0 + timedelta(seconds=30, microseconds=7), version=3,
        steps=(Step("received", StepStatus.INFO, T0, "alert da1",
                    {"force": True, "rules": [{"name": "x", "n": 1}], "none": None}),))
    bare = make_case("bare", state=CaseState.SKIPPED)

    await seed(journal, full)
    await seed(journal, bare)

    again = await stored(journal, "full")
    assert again == full
    assert again.created_at.utcoffset() == timedelta(hours=2)
    assert isinstance(again.alert_ids, tuple)
    assert await journal.get_case("bare") == bare
    assert await journal.get_case("missing") is None


async def test_list_cases_newest_first(journal: Journal) -> None:
    await seed(journal, make_case("late", at=T0 + timedelta(hours=2)))
    await seed(journal, make_case("early", at=T0))
    await seed(journal, make_case("adele", "adele@contoso.com", at=T0 + timedelta(hours=1)))
    await seed(journal, make_case("bad", state=CaseState.REJECTED,
                                     at=T0 + timedelta(hours=3)))
    await journal.add_step("late", Step("received", StepStatus.INFO, T0))

    assert await ids(journal.list_cases(ROB)) == ["bad", "late", "early"]
    assert await ids(journal.list_cases(ROB, limit=2)) == ["bad", "late"]
    assert await ids(journal.list_cases()) == ["bad", "late", "adele", "early"]
    assert await ids(journal.list_cases(limit=2)) == ["bad", "late"]
    assert await journal.list_cases(limit=0) == []
    assert await journal.list_cases("nobody@contoso.com") == []
    listed = {case.case_id: case for case in await journal.list_cases()}
    assert [step.name for step in listed["late"].steps] == ["received"]


async def test_list_cases_newest_first_across_utc_offsets(journal: Journal) -> None:
    # 10:30 in Paris (+02:00) is 08:30 UTC: older than 09:00 UTC, though its text sorts later.
    paris = timezone(timedelta(hours=2))
    await seed(journal, make_case("utc", at=T0))
    await seed(journal, make_case("paris", at=datetime(2024, 5, 1, 10, 30, tzinfo=paris)))

    assert await ids(journal.list_cases()) == ["utc", "paris"]
    assert await ids(journal.list_cases(since=T0 - timedelta(minutes=15))) == ["utc"]


async def test_list_cases_narrowed_by_state_time_and_user(journal: Journal) -> None:
    states = [CaseState.SKIPPED, CaseState.ESCALATED, CaseState.AWAITING_APPROVAL,
              CaseState.IN_PROGRESS, CaseState.VERIFIED, CaseState.ESCALATED]
    for n, state in enumerate(states):
        await seed(journal, make_case(f"c{n}", ROB if n % 2 else "adele@contoso.com",
                                         state=state, at=T0 + timedelta(minutes=n)))
    # A state changed after the case was stored counts as it is now.
    await journal.update_case((await stored(journal, "c3")).evolve(state=CaseState.ESCALATED))
    escalated = {CaseState.ESCALATED}
    waiting = {CaseState.ESCALATED, CaseState.AWAITING_APPROVAL}

    assert await ids(journal.list_cases(states=escalated)) == ["c5", "c3", "c1"]
    assert await ids(journal.list_cases(states=waiting, limit=2)) == ["c5", "c3"]
    assert await ids(journal.list_cases(states=waiting, since=T0 + timedelta(minutes=2))) == [
        "c5", "c3", "c2"]
    assert await ids(journal.list_cases(ROB, states=escalated)) == ["c5", "c3", "c1"]
    assert await ids(journal.list_cases("adele@contoso.com", states=escalated)) == []
    assert await ids(journal.list_cases(ROB, since=T0 + timedelta(minutes=3))) == ["c5", "c3"]
    assert await ids(journal.list_cases(since=T0 + timedelta(minutes=4))) == ["c5", "c4"]
    assert await journal.list_cases(states=()) == []
    assert await journal.list_cases(since=T0 + timedelta(days=1)) == []

    assert await journal.count_cases() == {
        CaseState.SKIPPED: 1, CaseState.ESCALATED: 3, CaseState.AWAITING_APPROVAL: 1,
        CaseState.VERIFIED: 1}
    assert await journal.count_cases(ROB) == {CaseState.ESCALATED: 3}
    assert await journal.count_cases(since=T0 + timedelta(minutes=4)) == {
        CaseState.VERIFIED: 1, CaseState.ESCALATED: 1}
    assert await journal.count_cases("nobody@contoso.com") == {}


async def test_list_cases_reads_past_many_cases_in_pages(journal: Journal) -> None:
    # More than the old fixed cap (500): the newest are found, and the listing is whole.
    gate = asyncio.Semaphore(16)

    async def add(n: int) -> None:
        async with gate:
            await seed(journal, make_case(
                f"c{n:04d}", f"u{n % 7}@contoso.com",
                state=CaseState.ESCALATED if n == 3 else CaseState.SKIPPED,
                at=T0 + timedelta(seconds=n)))

    await asyncio.gather(*(add(n) for n in range(600)))

    assert await ids(journal.list_cases(limit=3)) == ["c0599", "c0598", "c0597"]
    assert await ids(journal.list_cases(states={CaseState.ESCALATED})) == ["c0003"]
    everything = await ids(journal.list_cases())
    assert everything == [f"c{n:04d}" for n in reversed(range(600))]
    assert await journal.count_cases() == {CaseState.SKIPPED: 599, CaseState.ESCALATED: 1}
    assert await ids(journal.list_cases("u3@contoso.com", states={CaseState.ESCALATED})) == [
        "c0003"]


async def test_steps_are_kept_in_the_order_they_were_added(journal: Journal) -> None:
    await seed(journal, make_case("c1", steps=(Step("received", StepStatus.INFO, T0),)))
    await seed(journal, make_case("c2"))
    # Timestamps out of order on purpose: the journal keeps arrival order, not clock order.
    steps = [Step("lookup_user", StepStatus.STARTED, T0 + timedelta(seconds=5)),
             Step("lookup_user", StepStatus.DONE, T0 + timedelta(seconds=1), "found rob",
                  {"user_id": "u1", "sender": ROB}),
             Step("reset_password", StepStatus.FAILED, T0, "429 Too Many Requests")]
    for step in steps:
        await journal.add_step("c1", step)
    await journal.add_step("c2", Step("other", StepStatus.INFO, T0))

    case = await stored(journal, "c1")

    assert [s.name for s in case.steps] == ["received", "lookup_user", "lookup_user",
                                            "reset_password"]
    assert case.steps[1:] == tuple(steps)
    assert case.done("lookup_user") == steps[1]
    assert [s.name for s in (await stored(journal, "c2")).steps] == ["other"]


async def test_steps_added_in_one_write_follow_in_order_and_keep_the_chain(
        journal: Journal) -> None:
    """``add_steps``: a step's ``done`` and the next one's ``started`` in one write (issue
    18) are journaled as ``add_step`` would one by one: in order, chained, the head after
    the last."""
    await seed(journal, make_case("c1", steps=(Step("received", StepStatus.INFO, T0),)))
    await journal.add_step("c1", Step("guardrails", StepStatus.STARTED, T0))
    together = [Step("guardrails", StepStatus.DONE, T0 + timedelta(seconds=1), "ok",
                     {"verdict": "proceed"}),
                Step("plan", StepStatus.STARTED, T0 + timedelta(seconds=1))]
    await journal.add_steps("c1", together)
    await journal.add_step("c1", Step("plan", StepStatus.DONE, T0 + timedelta(seconds=2)))
    await journal.add_steps("c1", [Step("circuit_breaker", StepStatus.STARTED, T0)])

    case = await stored(journal, "c1")

    assert [(s.name, s.status.value) for s in case.steps] == [
        ("received", "info"), ("guardrails", "started"), ("guardrails", "done"),
        ("plan", "started"), ("plan", "done"), ("circuit_breaker", "started")]
    assert case.steps[2:4] == tuple(together)
    assert [s.link.seq for s in case.steps if s.link is not None] == [1, 2, 3, 4, 5, 6]
    assert case.chain_head is not None and case.chain_head.seq == 6
    assert check_chain(case).problems == ()
    with pytest.raises(ValueError, match="no steps to write"):
        await journal.add_steps("c1", [])


async def test_latest_case_is_the_newest_one_not_rejected(journal: Journal) -> None:
    assert await journal.latest_case(ROB) is None
    await seed(journal, make_case("first", at=T0, state=CaseState.VERIFIED))
    await seed(journal, make_case("second", at=T0 + timedelta(hours=1),
                                     state=CaseState.ESCALATED))
    await seed(journal, make_case("rejected", at=T0 + timedelta(hours=2),
                                     state=CaseState.REJECTED))
    await seed(journal, make_case("adele", "adele@contoso.com", at=T0 + timedelta(hours=3)))
    await seed(journal, make_case("older", at=T0 - timedelta(days=1)))

    assert (await stored_latest(journal, ROB)).case_id == "second"

    await seed(journal, make_case("same-time", at=T0 + timedelta(hours=1)))
    await seed(journal, make_case("sub-second", at=T0 + timedelta(hours=1, microseconds=5)))
    assert (await stored_latest(journal, ROB)).case_id == "sub-second"
    await seed(journal, make_case("tie", at=T0 + timedelta(hours=1, microseconds=5)))
    assert (await stored_latest(journal, ROB)).case_id == "tie"  # same time: opened later


async def stored_latest(journal: Journal, user: str) -> Case:
    case = await journal.latest_case(user)
    assert case is not None
    return case


async def test_case_with_request_finds_request_ids_added_later(journal: Journal) -> None:
    await seed(journal, make_case("c1", request_ids=("alert:da1",)))
    await seed(journal, make_case("c2", request_ids=("manual:1",)))
    case = await stored(journal, "c1")

    await journal.update_case(case.evolve(request_ids=("alert:da1", "sweep:rob:2024-05-01")))
    await journal.update_case((await stored(journal, "c2")).evolve(
        request_ids=("manual:1", "alert:da1")))

    assert (await found(journal, "alert:da1")).case_id == "c1"  # first recorded keeps it
    assert (await found(journal, "sweep:rob:2024-05-01")).case_id == "c1"
    assert (await found(journal, "manual:1")).case_id == "c2"
    assert await journal.case_with_request("unknown") is None


async def found(journal: Journal, request_id: str) -> Case:
    case = await journal.case_with_request(request_id)
    assert case is not None
    return case


async def test_update_case_bumps_the_version_and_keeps_the_steps(journal: Journal) -> None:
    await seed(journal, make_case("c1"))
    await journal.add_step("c1", Step("received", StepStatus.INFO, T0))
    case = await stored(journal, "c1")

    saved = await journal.update_case(case.evolve(state=CaseState.IN_PROGRESS,
                                                  updated_at=T0 + timedelta(minutes=1)))

    assert saved.version == case.version + 1
    again = await stored(journal, "c1")
    assert (again.state, again.version) == (CaseState.IN_PROGRESS, saved.version)
    assert again.updated_at == T0 + timedelta(minutes=1)
    assert [s.name for s in again.steps] == ["received"]
    await journal.update_case(again.evolve(state=CaseState.ESCALATED))
    assert (await stored(journal, "c1")).state is CaseState.ESCALATED


async def test_a_stale_writer_gets_concurrent_update(journal: Journal) -> None:
    await seed(journal, make_case("c1"))
    view = await stored(journal, "c1")
    await journal.update_case(view.evolve(state=CaseState.IN_PROGRESS))

    with pytest.raises(ConcurrentUpdate, match="c1"):
        await journal.update_case(view.evolve(state=CaseState.ESCALATED, reason="stale"))
    with pytest.raises(ConcurrentUpdate, match="ghost"):
        await journal.update_case(make_case("ghost"))

    case = await stored(journal, "c1")
    assert (case.state, case.reason) == (CaseState.IN_PROGRESS, None)


async def test_every_transition_of_the_state_table_is_stored(journal: Journal) -> None:
    for n, ((before, event), after) in enumerate(TRANSITIONS.items()):
        await seed(journal, make_case(f"t{n}", state=before))
        await journal.update_case((await stored(journal, f"t{n}")).evolve(state=after))
        assert (await stored(journal, f"t{n}")).state is after, (before, event)


@pytest.mark.parametrize(("before", "after"), [
    (CaseState.AWAITING_VERIFICATION, CaseState.IN_PROGRESS),  # a retry going backwards
    (CaseState.ESCALATED, CaseState.VERIFIED),  # a late check over a human's case
    (CaseState.VERIFIED, CaseState.AWAITING_VERIFICATION),  # nothing leaves a final state
    (CaseState.RECEIVED, CaseState.VERIFIED),  # verified without ever acting
    (CaseState.AWAITING_APPROVAL, CaseState.AWAITING_VERIFICATION),  # unblocked unapproved
])
async def test_a_transition_not_in_the_table_is_refused_and_changes_nothing(
        journal: Journal, before: CaseState, after: CaseState) -> None:
    await seed(journal, make_case("c1", state=before, reason="as it was"))
    case = await stored(journal, "c1")

    with pytest.raises(ForbiddenTransition, match=f"c1.*{before.value}.*{after.value}"):
        await journal.update_case(case.evolve(state=after, reason="forged"))

    kept = await stored(journal, "c1")
    assert (kept.state, kept.reason, kept.version) == (before, "as it was", case.version)
    # The same state is no transition: anything else about the case may still change.
    await journal.update_case(kept.evolve(reason="a step later"))
    assert (await stored(journal, "c1")).reason == "a step later"


async def test_working_cases_are_the_cases_not_final_yet(journal: Journal) -> None:
    states = [CaseState.RECEIVED, CaseState.VERIFIED, CaseState.IN_PROGRESS,
              CaseState.AWAITING_APPROVAL, CaseState.REJECTED,
              CaseState.AWAITING_VERIFICATION]
    for n, state in enumerate(states):
        await seed(journal, make_case(f"w{n}", state=state, at=T0 + timedelta(minutes=n)))
    # Cases that end leave the working set; those still working stay in it.
    await journal.update_case((await stored(journal, "w2")).evolve(state=CaseState.ESCALATED))
    await journal.update_case((await stored(journal, "w0")).evolve(state=CaseState.IN_PROGRESS))

    assert await ids(journal.working_cases()) == ["w5", "w3", "w0"]


def test_the_state_table_leads_every_working_state_to_a_final_one() -> None:
    working = {CaseState.RECEIVED, CaseState.IN_PROGRESS, CaseState.AWAITING_APPROVAL,
               CaseState.AWAITING_VERIFICATION}
    assert set(WORKING) == working
    assert all(not state.is_final for state in WORKING)
    assert all(state.is_final for state in set(CaseState) - WORKING)
    for state in WORKING:  # escalation is always a way out
        assert next_state(state, Event.ESCALATE) is CaseState.ESCALATED
    with pytest.raises(ForbiddenTransition):
        next_state(CaseState.VERIFIED, Event.ESCALATE)


async def test_a_case_id_is_stored_once(journal: Journal) -> None:
    await seed(journal, make_case("c1"))

    with pytest.raises((ConcurrentUpdate, sqlite3.IntegrityError)):
        await seed(journal, make_case("c1", user="mallory@contoso.com"))

    assert (await stored(journal, "c1")).user == ROB
    assert await journal.latest_case("mallory@contoso.com") is None


async def test_two_concurrent_writers_on_one_case_exactly_one_wins(
        open_journal: OpenJournal) -> None:
    writers = [open_journal(), open_journal()]
    await writers[0].add_case(make_case("c1"))
    view = await stored(writers[1], "c1")

    results = await asyncio.gather(
        *(writer.update_case(view.evolve(reason=f"writer {n}"))
          for n, writer in enumerate(writers)), return_exceptions=True)

    assert sorted(type(result).__name__ for result in results) == ["Case", "ConcurrentUpdate"]
    winner = next(result for result in results if isinstance(result, Case))
    for writer in writers:
        assert (await stored(writer, "c1")).reason == winner.reason


async def test_concurrent_steps_from_two_writers_are_all_kept(
        open_journal: OpenJournal) -> None:
    writers = [open_journal(), open_journal()]
    await writers[0].add_case(make_case("c1"))

    await asyncio.gather(*(writers[n % 2].add_step(
        "c1", Step(f"step-{n}", StepStatus.INFO, T0, data={"n": n})) for n in range(40)))

    steps = (await stored(writers[1], "c1")).steps
    assert sorted(step.data["n"] for step in steps) == list(range(40))


async def test_addresses_with_characters_table_keys_forbid(journal: Journal) -> None:
    # '~' and '%' also appear because an escaping scheme could map two addresses to one key.
    users = ["o'brien#1@contoso.com", "o'brien~231@contoso.com", "o'brien%231@contoso.com",
             "a/b\\c?d@contoso.com", "tab\there@contoso.com", "zoë@contoso.com"]
    for n, user in enumerate(users):
        await seed(journal, make_case(f"case/{n}#?", user, request_ids=(f"manual/{user}",),
                                         at=T0 + timedelta(minutes=n)))

    for n, user in enumerate(users):
        assert (await stored_latest(journal, user)).user == user
        assert await ids(journal.list_cases(user)) == [f"case/{n}#?"]
        assert (await found(journal, f"manual/{user}")).case_id == f"case/{n}#?"
    assert await ids(journal.list_cases()) == [f"case/{n}#?" for n in reversed(range(6))]
    assert await journal.latest_case("o'brien@contoso.com") is None


async def test_large_cases_and_steps_are_kept_whole(journal: Journal) -> None:
    # Beyond Table Storage's 64 KiB per property: a long reason, a big inbox-rules report.
    rules = [{"name": f"rule {n}", "forwardTo": f"evil{n}@example.net", "body": "é" * 50}
             for n in range(400)]
    case = make_case("big", reason="r" * 70_000, alert_ids=tuple(f"da{n}" for n in range(2000)))
    step = Step("inspect_mailbox", StepStatus.DONE, T0, "400 rules", {"rules": rules})

    await seed(journal, case)
    await journal.add_step("big", step)
    await journal.update_case((await stored(journal, "big")).evolve(reason="s" * 80_000))

    again = await stored(journal, "big")
    assert again.reason == "s" * 80_000
    assert again.alert_ids == case.alert_ids
    assert again.steps == (step,)


# The reset breaker: places for password resets, shared by every worker.

HOUR = timedelta(hours=1)


async def test_the_reset_limit_holds_under_concurrent_reservations(
        open_journal: OpenJournal) -> None:
    writers = [open_journal(), open_journal()]

    granted = await asyncio.gather(*(writers[n % 2].reserve_reset(
        f"case-{n}", T0 + timedelta(seconds=n), 10, HOUR) for n in range(30)))

    assert granted.count(True) == 10
    winners = [f"case-{n}" for n, won in enumerate(granted) if won]
    later = T0 + timedelta(minutes=5)
    assert await writers[1].reserve_reset("case-late", later, 10, HOUR) is False
    assert all([await writers[n % 2].reserve_reset(case_id, later, 10, HOUR)
                for n, case_id in enumerate(winners)])


async def test_reset_places_expire_after_the_window(open_journal: OpenJournal) -> None:
    await _places_expire(open_journal(), open_journal())


async def test_one_case_reserved_twice_takes_one_place(open_journal: OpenJournal) -> None:
    await _one_place_per_case(open_journal(), open_journal())


async def test_the_fake_journal_keeps_the_breaker_rules() -> None:
    from tests.fakes import FakeJournal

    fake = FakeJournal()
    await _places_expire(fake, fake)
    fake = FakeJournal()
    await _one_place_per_case(fake, fake)


async def _places_expire(first: Journal, second: Journal) -> None:
    assert await first.reserve_reset("c1", T0, 2, HOUR)
    assert await second.reserve_reset("c2", T0 + timedelta(minutes=10), 2, HOUR)
    assert not await first.reserve_reset("c3", T0 + timedelta(minutes=30), 2, HOUR)
    # c1's place (taken at T0) no longer counts; c2's still does.
    assert await second.reserve_reset("c3", T0 + HOUR + timedelta(seconds=1), 2, HOUR)
    assert not await first.reserve_reset("c4", T0 + HOUR + timedelta(seconds=2), 2, HOUR)
    # A case whose place expired needs a new one, like any other.
    assert not await first.reserve_reset("c1", T0 + HOUR + timedelta(seconds=3), 2, HOUR)


async def _one_place_per_case(first: Journal, second: Journal) -> None:
    assert await first.reserve_reset("c1", T0, 2, HOUR)
    assert await second.reserve_reset("c1", T0 + timedelta(minutes=1), 2, HOUR)
    assert await second.reserve_reset("c2", T0 + timedelta(minutes=2), 2, HOUR)
    assert not await first.reserve_reset("c3", T0 + timedelta(minutes=3), 2, HOUR)
    assert await first.reserve_reset("c1", T0 + timedelta(minutes=4), 2, HOUR)


# One person, one case: the episode claim and the step claims.

ROB_ID = "3f2a1b4c-0000-4000-8000-00000000abcd"
ADELE_ID = "0d9e8f7a-0000-4000-8000-00000000adee"
LEASE = timedelta(minutes=10)


async def test_of_concurrent_claims_of_one_episode_exactly_one_wins(
        open_journal: OpenJournal) -> None:
    writers = [open_journal(), open_journal()]

    holders = await asyncio.gather(*(writers[n % 2].claim_episode(ROB_ID, f"case-{n}", None)
                                     for n in range(10)))

    assert len(set(holders)) == 1, holders
    [winner] = set(holders)
    for writer in writers:
        assert await writer.current_episode(ROB_ID) == winner
    # Passing the episode on: of the claims over the winner, one wins too.
    after = await asyncio.gather(*(writers[n % 2].claim_episode(ROB_ID, f"next-{n}", winner)
                                   for n in range(10)))
    assert len(set(after)) == 1 and after[0].startswith("next-"), after


async def test_the_episode_rules(open_journal: OpenJournal) -> None:
    await _episode_rules(open_journal(), open_journal())


async def test_of_concurrent_claims_of_one_step_exactly_one_wins(
        open_journal: OpenJournal) -> None:
    writers = [open_journal(), open_journal()]

    won = await asyncio.gather(*(writers[n % 2].claim_step("c1", "reset_password", f"h{n}",
                                                           T0, LEASE) for n in range(10)))

    assert won.count(True) == 1, won
    assert await writers[0].claim_step("c2", "reset_password", "h0", T0, LEASE)  # per case


async def test_the_step_claim_rules(open_journal: OpenJournal) -> None:
    await _step_claim_rules(open_journal(), open_journal())


async def test_the_fake_journal_keeps_the_claim_rules() -> None:
    from tests.fakes import FakeJournal

    fake = FakeJournal()
    await _episode_rules(fake, fake)
    fake = FakeJournal()
    await _step_claim_rules(fake, fake)


async def test_a_case_takes_the_primary_address_once_it_is_known(journal: Journal) -> None:
    # Opened under the object id a request named, before the lookup; renamed after it.
    await seed(journal, make_case("c1", ROB_ID, request_ids=("manual:1",)))
    await seed(journal, make_case("other", "adele@contoso.com", at=T0 + timedelta(hours=1)))

    renamed = await journal.update_case((await stored(journal, "c1")).evolve(user=ROB))
    await journal.update_case(renamed.evolve(state=CaseState.IN_PROGRESS))

    assert (await stored_latest(journal, ROB)).case_id == "c1"
    assert await journal.latest_case(ROB_ID) is None
    assert await ids(journal.list_cases(ROB)) == ["c1"]
    assert await ids(journal.list_cases(ROB_ID)) == []
    assert (await found(journal, "manual:1")).user == ROB
    assert await ids(journal.list_cases()) == ["other", "c1"]


async def test_users_known_as_finds_an_account_by_any_of_its_names(journal: Journal) -> None:
    """``status --user``: cases are kept under the account's primary address (or, before the
    lookup, the name a request gave), and found by every name they record."""
    upn, alias, listed = "ryoung@contoso.onmicrosoft.com", "rob.young@contoso.com", "sales@x.com"
    await seed(journal, make_case("c1", ROB, user_id=ROB_ID, sender=ROB,
                                     listed_addresses=(listed,), aliases=(upn, alias, ROB)))
    await seed(journal, make_case("c2", alias, at=T0 + timedelta(hours=1)))  # no lookup
    await seed(journal, make_case("other", "adele@contoso.com", user_id=ADELE_ID,
                                     aliases=("adele@contoso.com",)))

    for name in (ROB, ROB_ID, upn, listed):
        assert await journal.users_known_as(name) == {ROB}, name
    assert await journal.users_known_as(alias) == {ROB, alias}
    assert await journal.users_known_as(ADELE_ID) == {"adele@contoso.com"}
    assert await journal.users_known_as("rob@contoso") == set()  # names, not substrings
    assert await journal.users_known_as("nobody@contoso.com") == set()


async def _episode_rules(first: Journal, second: Journal) -> None:
    adele_id = "0d9e8f7a-0000-4000-8000-00000000adee"
    assert await first.current_episode(ROB_ID) is None
    assert await first.claim_episode(ROB_ID, "c1", None) == "c1"
    assert await second.claim_episode(ROB_ID, "c1", None) == "c1"  # again: still it
    assert await second.claim_episode(ROB_ID, "c2", None) == "c1"  # c1 holds it: lost
    assert await second.claim_episode(ROB_ID, "c2", "c1") == "c2"  # over the holder seen
    assert await first.claim_episode(ROB_ID, "c3", "c1") == "c2"  # a stale view loses
    assert await first.current_episode(ROB_ID) == "c2"
    assert await second.claim_episode(adele_id, "a1", "c2") == "a1"  # one per person
    assert await first.current_episode(adele_id) == "a1"
    assert await first.current_episode(ROB_ID) == "c2"


async def _step_claim_rules(first: Journal, second: Journal) -> None:
    reset = "reset_password"
    assert await first.claim_step("c1", reset, "h1", T0, LEASE)
    assert not await second.claim_step("c1", reset, "h2", T0 + timedelta(minutes=1), LEASE)
    assert await first.claim_step("c1", reset, "h1", T0 + timedelta(minutes=2), LEASE)  # renew
    assert await second.claim_step("c1", "revoke_sessions", "h2", T0, LEASE)  # another step
    await second.release_step("c1", reset, "h2")  # not its holder: nothing happens
    assert not await second.claim_step("c1", reset, "h2", T0 + timedelta(minutes=3), LEASE)
    await first.release_step("c1", reset, "h1")
    assert await second.claim_step("c1", reset, "h2", T0 + timedelta(minutes=4), LEASE)
    # A holder that never came back: its lease runs out, then another may take the step.
    later = T0 + timedelta(minutes=4) + LEASE
    assert not await first.claim_step("c1", reset, "h3", later - timedelta(seconds=1), LEASE)
    assert await first.claim_step("c1", reset, "h3", later, LEASE)



# The poll's sources: when each was last read, and its last failure, for every worker to see.

SWEEP_REFUSED = ("Exchange: Get-BlockedSenderAddress failed with 400 BadRequest: |System."
                 "Management.Automation.ParameterBindingException|A parameter cannot be found "
                 "that matches parameter name 'ResultSize'. — “quoted” ✉")


async def test_each_source_keeps_its_last_success_and_last_failure(
        open_journal: OpenJournal) -> None:
    await _source_rules(open_journal(), open_journal())


async def test_concurrent_outcomes_keep_the_newest_of_each_kind(
        open_journal: OpenJournal) -> None:
    writers = [open_journal(), open_journal()]

    await asyncio.gather(*(writers[n % 2].record_source(
        "alerts", T0 + timedelta(seconds=n), f"refused {n}" if n % 3 == 0 else None)
        for n in reversed(range(20))))

    [health] = await writers[0].source_health()
    assert (health.last_success, health.last_failure) == (T0 + timedelta(seconds=19),
                                                          T0 + timedelta(seconds=18))
    assert health.last_failure_reason == "refused 18" and health.ok


async def test_the_fake_journal_keeps_the_source_rules() -> None:
    from tests.fakes import FakeJournal

    fake = FakeJournal()
    await _source_rules(fake, fake)


async def _source_rules(first: Journal, second: Journal) -> None:
    sweep, minute = "restricted_users", timedelta(minutes=1)
    assert await first.source_health() == []
    paris = timezone(timedelta(hours=2))
    await first.record_source("alerts", (T0 + timedelta(microseconds=7)).astimezone(paris))
    await second.record_source(sweep, T0 + minute, SWEEP_REFUSED)
    health = {h.source: h for h in await first.source_health()}
    assert health["alerts"] == SourceHealth("alerts", last_success=T0 + timedelta(
        microseconds=7))
    assert health[sweep] == SourceHealth(sweep, last_failure=T0 + minute,
                                         last_failure_reason=SWEEP_REFUSED)
    assert health["alerts"].ok and not health[sweep].ok

    # A success older than the failure on record (a slower worker) leaves it failing.
    await first.record_source(sweep, T0 + minute / 2)
    [now] = [h for h in await second.source_health() if h.source == sweep]
    assert (now.last_success, now.ok) == (T0 + minute / 2, False)
    # An older failure arriving late changes nothing; a newer success clears the flag and
    # keeps the failure on record.
    await second.record_source(sweep, T0, "an older refusal")
    await second.record_source(sweep, T0 + 2 * minute)
    await first.record_source(sweep, T0 + minute / 4)
    [now] = [h for h in await first.source_health() if h.source == sweep]
    assert now == SourceHealth(sweep, last_success=T0 + 2 * minute, last_failure=T0 + minute,
                               last_failure_reason=SWEEP_REFUSED)
    assert now.ok
    # A reason is kept up to its limit, never refused for its length.
    await first.record_source("alerts", T0 + minute, "x" * 5000)
    [alerts] = [h for h in await second.source_health() if h.source == "alerts"]
    assert alerts.last_failure_reason == "x" * REASON_LIMIT and not alerts.ok
    assert len(await first.source_health()) == 2


# Table Storage only: what SQLite cannot run into.


@pytest.fixture
def azurite_table(azurite_table_connection_string: str) -> TableClient:
    return TableClient.from_connection_string(azurite_table_connection_string,
                                              f"journal{uuid.uuid4().hex}")


async def test_a_step_too_big_for_one_row_is_refused_clearly(azurite_table: TableClient) -> None:
    journal = TableJournal(azurite_table)
    try:
        await seed(journal, make_case("c1"))
        with pytest.raises(PermanentError, match=r"step dump of case c1 .* at most"):
            await journal.add_step("c1", Step("dump", StepStatus.INFO, T0, "x" * 600_000))
        assert (await stored(journal, "c1")).steps == ()
    finally:
        await journal.close()


async def test_working_cases_journaled_before_the_index_are_found(
        azurite_table_connection_string: str) -> None:
    """A journal written before the sweeper existed has no ``working`` rows: after the
    deploy, the first sweep (on every worker at once) indexes its working cases."""
    table_name = f"journal{uuid.uuid4().hex}"

    def open_table() -> TableJournal:
        return build_table_journal(endpoint=None, table_name=table_name,
                                   connection_string=azurite_table_connection_string)

    before = open_table()
    states = [CaseState.RECEIVED, CaseState.VERIFIED, CaseState.IN_PROGRESS,
              CaseState.AWAITING_APPROVAL, CaseState.ESCALATED,
              CaseState.AWAITING_VERIFICATION]
    for n, state in enumerate(states):
        await seed(before, make_case(f"w{n}", state=state, at=T0 + timedelta(minutes=n)))
    client = TableClient.from_connection_string(azurite_table_connection_string, table_name)
    async with client:  # as that journal wrote them: no row in the working index
        async for row in client.query_entities("PartitionKey eq 'working'"):
            await client.delete_entity(row["PartitionKey"], row["RowKey"])
    await before.close()
    workers = [open_table() for _ in range(4)]  # the last opened after the others indexed
    try:
        found = await asyncio.gather(*(ids(worker.working_cases()) for worker in workers[:3]))
        await workers[0].add_case(make_case("new", at=T0 + timedelta(hours=1)))
        await workers[1].update_case(
            (await stored(workers[1], "w3")).evolve(state=CaseState.IN_PROGRESS))
        await workers[1].update_case(
            (await stored(workers[1], "w0")).evolve(state=CaseState.ESCALATED))
        later = await ids(workers[3].working_cases())
    finally:
        for worker in workers:
            await worker.close()

    assert found == [["w5", "w3", "w2", "w0"]] * 3
    assert later == ["new", "w5", "w3", "w2"]


async def test_a_working_row_left_for_an_ended_case_is_dropped(
        azurite_table: TableClient) -> None:
    """Left by a backfill that raced the worker ending the case, or a delete that failed."""
    journal = TableJournal(azurite_table)
    try:
        await seed(journal, make_case("ended", state=CaseState.VERIFIED))
        await azurite_table.create_entity({"PartitionKey": "working", "RowKey": "ended"})

        assert await journal.working_cases() == []
        left = [row async for row in azurite_table.query_entities("PartitionKey eq 'working'")]
        assert left == []
    finally:
        await journal.close()


@pytest.mark.parametrize(("status", "expected"), [
    (503, "answered 503 Service Unavailable while creating the journal table"),
    (429, "answered 429 Too Many Requests while"),
    (None, "could not be reached while creating the journal table"),
])
async def test_service_failures_are_transient(status: int | None, expected: str) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=status or 500)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    if status is None:
        await runner.cleanup()  # nothing listens on the port any more
    client = TableClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;", "journal", retry_total=0)
    journal = TableJournal(client)
    try:
        with pytest.raises(TransientError, match=expected):
            await journal.get_case("c1")
    finally:
        await journal.close()
        await runner.cleanup()


@pytest.mark.parametrize(("endpoint", "connection_string"), [
    (None, None), ("https://acct.table.core.windows.net", "UseDevelopmentStorage=true")])
def test_the_factory_wants_exactly_one_way_to_reach_the_table(
        endpoint: str | None, connection_string: str | None) -> None:
    with pytest.raises(ConfigError, match="endpoint"):
        build_table_journal(endpoint=endpoint, connection_string=connection_string,
                            table_name="journal")
