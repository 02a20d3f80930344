"""The hash chain over a case's journal (``domain.journal_chain``): a case as a journal returns
it is intact, and each edit or deletion someone could make by hand is named, one line per
problem, naming the step; steps written before the chain are counted, never taken for
tampering. The journals' own rows are tampered with in tests/integration/test_journal_chain.py.
"""

from dataclasses import replace
from datetime import timedelta
from typing import Any

from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.journal_chain import (
    chain_notes,
    chain_problems,
    check_chain,
    link_for,
    seal_for,
    step_hash,
)
from remediation.domain.journal_links import GENESIS, CaseSeal, ChainHead
from tests.fakes import START, FakeJournal
from tests.journal_cases import make_case

NAMES = ["received", "lookup_user", "guardrails", "reset_password", "revoke_sessions",
         "unblock", "schedule_verification", "verify"]


async def journaled(case_id: str = "c1", count: int = len(NAMES)) -> Case:
    """A case with ``count`` steps and two record updates, as the journal returns it."""
    journal = FakeJournal()
    await journal.add_case(make_case(case_id, steps=(Step(NAMES[0], StepStatus.INFO, START,
                                                          "manual", {"by": "soc"}),)))
    for n, name in enumerate(NAMES[1:count], start=1):
        await journal.add_step(case_id, Step(name, StepStatus.DONE, START + timedelta(
            seconds=n), f"{name} done", {"n": n, "items": ("a", "b")}))
        if n == 2:
            case = await journal.get_case(case_id)
            assert case is not None
            await journal.update_case(case.evolve(state=CaseState.IN_PROGRESS))
    case = await journal.get_case(case_id)
    assert case is not None
    return case


def without(case: Case, seq: int) -> Case:
    return case.evolve(steps=tuple(s for s in case.steps if s.link and s.link.seq != seq))


def edited(case: Case, seq: int, **changes: Any) -> Case:
    return case.evolve(steps=tuple(replace(s, **changes) if s.link and s.link.seq == seq
                                   else s for s in case.steps))


async def test_a_case_as_the_journal_wrote_it_is_intact() -> None:
    case = await journaled()

    assert [step.link.seq for step in case.steps if step.link] == list(range(1, 9))
    assert chain_problems(case) == []
    assert chain_notes(case) == []
    assert check_chain(case).intact


async def test_an_edited_step_is_named_with_its_number_and_name() -> None:
    case = await journaled()

    assert chain_problems(edited(case, 4, detail="reset skipped")) == [
        "step 4 (reset_password) was changed after it was written"]
    assert chain_problems(edited(case, 6, data={"n": 5, "items": ["a"]})) == [
        "step 6 (unblock) was changed after it was written"]
    assert chain_problems(edited(case, 2, status=StepStatus.FAILED)) == [
        "step 2 (lookup_user) was changed after it was written"]


async def test_a_step_rewritten_with_a_fresh_hash_breaks_the_link_after_it() -> None:
    case = await journaled()
    [step] = [s for s in case.steps if s.link and s.link.seq == 4]
    forged = replace(step, detail="nothing happened")
    assert step.link is not None
    forged = replace(forged, link=replace(step.link, hash=step_hash(
        "c1", 4, forged, step.link.prev)))

    tampered = case.evolve(steps=tuple(forged if s is step else s for s in case.steps))

    assert chain_problems(tampered) == [
        "step 4 (reset_password) was changed after it was written (step 5 no longer follows "
        "it)"]


async def test_deleted_steps_are_named_wherever_they_were() -> None:
    case = await journaled()

    assert chain_problems(without(case, 7)) == ["a step between 6 and 8 is missing"]
    assert chain_problems(without(without(case, 4), 5)) == [
        "2 steps between 3 and 6 are missing"]
    assert chain_problems(without(case, 1)) == [
        "a step before step 2 (lookup_user) is missing (the chain does not start there)"]
    assert chain_problems(without(case, 8)) == [
        "the last step (step 8) is missing"]
    assert chain_problems(without(without(case, 8), 7)) == [
        "the last 2 steps (after step 6) are missing"]
    assert chain_problems(case.evolve(steps=())) == [
        "every step of the chain is missing (its head names step 8)",
        "the case record was written after step 3, which is missing"]


async def test_the_head_shows_a_rewritten_last_step_and_a_missing_or_moved_head() -> None:
    case = await journaled()
    last = case.steps[-1]
    assert last.link is not None
    rewritten = replace(last, detail="verified", link=replace(
        last.link, hash=step_hash("c1", 8, replace(last, detail="verified"), last.link.prev)))

    assert chain_problems(case.evolve(steps=(*case.steps[:-1], rewritten))) == [
        "step 8 (verify) was changed after it was written (the chain's head holds another "
        "hash)"]
    assert chain_problems(case.evolve(chain_head=None)) == [
        "the chain's head is missing: a step after step 8 (verify) could have been deleted "
        "unseen"]
    assert chain_problems(case.evolve(chain_head=ChainHead(6, "x" * 64))) == [
        "the chain's head has no digest: it was rewritten outside the app, and steps after "
        "step 6 could have been deleted unseen",
        "steps after step 6 were added outside the app (the chain's head ends there)"]


async def test_an_edited_case_record_is_named_with_its_state() -> None:
    case = await journaled()

    assert chain_problems(case.evolve(state=CaseState.VERIFIED)) == [
        "the case record (state verified) was changed after it was written"]
    assert chain_problems(case.evolve(reason="nothing to see")) == [
        "the case record (state in_progress) was changed after it was written"]
    assert case.seal is not None
    assert chain_problems(case.evolve(seal=CaseSeal.from_json("{not a seal"))) == [
        "the case record (state in_progress) was changed after it was written"]


async def test_the_record_names_the_step_it_was_written_after() -> None:
    case = await journaled()
    assert case.seal is not None and case.seal.after == 3  # updated after step 3

    assert "the case record was written after step 3, which is missing" in chain_problems(
        without(case, 3))


async def begun_later(older: tuple[Step, ...], *, sealed: bool) -> Case:
    """A case a version before the chain opened with ``older``, six steps added since (and
    its record written again when ``sealed``)."""
    journal = FakeJournal()
    journal.add_case_before_the_chain(make_case("c1", steps=older))
    for name in NAMES[2:]:
        await journal.add_step("c1", Step(name, StepStatus.DONE, START, f"{name} done"))
    case = await journal.get_case("c1")
    assert case is not None
    return await journal.update_case(case) if sealed else case


async def test_steps_written_before_the_chain_are_counted_not_blamed() -> None:
    older = (Step("received", StepStatus.INFO, START - timedelta(days=1)),
             Step("lookup_user", StepStatus.DONE, START - timedelta(days=1), "found"))
    legacy = await begun_later(older, sealed=False)

    assert chain_problems(legacy) == []
    assert chain_notes(legacy) == [
        "2 steps written before the chain (not verifiable)",
        "the case record was written before the chain (not verifiable)"]
    assert chain_notes(await begun_later(older[:1], sealed=True)) == [
        "1 step written before the chain (not verifiable)"]


async def test_a_step_without_a_hash_in_a_case_opened_with_the_chain_was_added_by_hand(
        ) -> None:
    """A case opened with the chain cannot hold a step from before it: the first step follows
    the case's genesis, and a case opened with none has its head there."""
    case = await journaled()
    forged = Step("approved", StepStatus.INFO, START - timedelta(days=1), "by the ceo")

    assert chain_problems(case.evolve(steps=(forged, *case.steps))) == [
        "a step before step 1 (received) has no hash: it was added outside the app (this "
        "case was chained from its opening)"]
    journal = FakeJournal()
    await journal.add_case(make_case("c2"))
    empty = await journal.get_case("c2")
    assert empty is not None and chain_problems(empty) == []
    assert chain_problems(empty.evolve(steps=(forged,))) == [
        "a step (approved) has no hash: it was added outside the app (this case was chained "
        "from its opening)"]


async def test_a_step_without_a_hash_after_the_chain_began_was_added_by_hand() -> None:
    case = await journaled(count=3)

    added = case.evolve(steps=(*case.steps, Step("unblock", StepStatus.DONE, START)))

    assert chain_problems(added) == [
        "a step after step 3 (guardrails) has no hash: it was added outside the app"]


async def test_a_hostile_step_name_is_shown_on_one_line() -> None:
    case = await journaled(count=3)

    problems = chain_problems(edited(case, 2, name="x\x1b[31m\nFAKE " + "y" * 200))

    [line] = problems
    assert "\n" not in line and "\x1b" not in line
    assert line.startswith("step 2 (x FAKE yyy") and len(line) < 140


def test_what_is_hashed_is_what_json_gives_back() -> None:
    """Tuples, a lone surrogate (outside text JSON carries) and non-ASCII text hash the same
    written and read back."""
    step = Step("note", StepStatus.INFO, START, "caf\u00e9 \ud800", {"items": ("a", 1)})
    read_back = Step.from_dict({**step.to_dict(), "data": {"items": ["a", 1]}})
    link = link_for("c1", step, None)

    assert (link.seq, link.prev) == (1, GENESIS)
    assert step_hash("c1", 1, read_back, GENESIS) == link.hash
    assert link_for("c2", step, None).hash != link.hash  # bound to its case
    assert link_for("c1", step, ChainHead(1, link.hash)).hash != link.hash  # and its place


def test_a_record_sealed_after_no_step_names_none() -> None:
    case = make_case("c1")
    seal = seal_for(case, None)

    assert (seal.after, seal.after_hash) == (0, GENESIS)
    assert chain_problems(case.evolve(seal=seal)) == []
