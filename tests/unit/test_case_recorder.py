"""A step's ``done`` is journaled on the case as the worker holds it: read again only when
the step's action journaled on that case (issue 18: a read per step was a round trip to the
journal, on the path to the reset, for nothing the worker did not already hold)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence

import pytest

from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.errors import ConcurrentUpdate
from remediation.service.journaling import CaseRecorder, StepResult
from tests.fakes import FakeClock, FakeJournal

CASE_ID = "20240501-0000aaaa"


class ReadCountingJournal(FakeJournal):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get_case(self, case_id: str) -> Case | None:
        self.reads += 1
        return await super().get_case(case_id)


async def opened(journal: FakeJournal, clock: FakeClock) -> tuple[CaseRecorder, Case]:
    recorder = CaseRecorder(journal, clock)
    now = clock.now()
    case = await recorder.add_case(Case(
        case_id=CASE_ID, user="rob@contoso.com", state=CaseState.RECEIVED, created_at=now,
        updated_at=now, source="manual", steps=(Step("received", StepStatus.INFO, now),)))
    return recorder, await recorder.save(case, state=CaseState.IN_PROGRESS)


async def test_a_step_that_journals_nothing_on_its_case_is_not_read_back() -> None:
    journal, clock = ReadCountingJournal(), FakeClock()
    recorder, case = await opened(journal, clock)

    async def look() -> StepResult:
        return StepResult("looked")

    case, _ = await recorder.run(case, "lookup_user", look)

    assert journal.reads == 0
    assert [(s.name, s.status) for s in case.steps[-2:]] == [
        ("lookup_user", StepStatus.STARTED), ("lookup_user", StepStatus.DONE)]
    stored = await journal.get_case(CASE_ID)
    assert stored is not None and stored.steps == case.steps
    # The case held is current: the next save needs no second try.
    saved = await recorder.save(case, sender="rob@contoso.com")
    assert saved.version == stored.version + 1


@pytest.mark.parametrize("in_a_task", [False, True], ids=["itself", "in-a-task-it-starts"])
async def test_a_step_whose_action_saved_its_case_goes_on_from_what_was_saved(
        in_a_task: bool) -> None:
    journal, clock = ReadCountingJournal(), FakeClock()
    recorder, case = await opened(journal, clock)
    held = case

    async def plan() -> StepResult:
        saving = recorder.save(held, listed_addresses=("rob@contoso.com",))
        await (asyncio.gather(saving) if in_a_task else saving)
        return StepResult("planned")

    case, _ = await recorder.run(case, "plan", plan)

    assert journal.reads == 1
    assert case.listed_addresses == ("rob@contoso.com",)
    case = await recorder.save(case, state=CaseState.AWAITING_VERIFICATION)
    stored = await journal.get_case(CASE_ID)
    assert stored is not None and stored.listed_addresses == ("rob@contoso.com",)
    assert stored.state is CaseState.AWAITING_VERIFICATION


async def test_steps_an_action_journals_are_on_the_case_its_step_returns() -> None:
    journal, clock = ReadCountingJournal(), FakeClock()
    recorder, case = await opened(journal, clock)

    async def inner() -> StepResult:
        return StepResult("inner done")

    async def outer() -> StepResult:
        await recorder.run(case, "revoke_sessions", inner)
        return StepResult("outer done")

    case, _ = await recorder.run(case, "mailbox_hygiene", outer)

    assert case.done("revoke_sessions") is not None
    assert case.done("mailbox_hygiene") is not None


async def test_a_state_another_writer_set_during_a_step_is_not_overwritten() -> None:
    """Not read back, the worker's case is older than the journal's: its next save of the
    state is refused (ConcurrentUpdate), never stored over an escalation."""
    journal, clock = ReadCountingJournal(), FakeClock()
    recorder, case = await opened(journal, clock)
    other = CaseRecorder(journal, clock)

    async def escalate() -> None:
        current = await journal.get_case(CASE_ID)
        assert current is not None
        await other.save(current, state=CaseState.ESCALATED, reason="a human took it")

    async def look() -> StepResult:  # another worker escalates meanwhile, in its own task
        await asyncio.create_task(escalate(), context=contextvars.Context())
        return StepResult("looked")

    case, _ = await recorder.run(case, "lookup_user", look)

    with pytest.raises(ConcurrentUpdate):
        await recorder.save(case, state=CaseState.AWAITING_VERIFICATION)
    stored = await journal.get_case(CASE_ID)
    assert stored is not None and stored.state is CaseState.ESCALATED


class WriteCountingJournal(ReadCountingJournal):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[list[str]] = []

    async def add_step(self, case_id: str, step: Step) -> None:
        self.writes.append([f"{step.name}:{step.status.value}"])
        await super().add_step(case_id, step)

    async def add_steps(self, case_id: str, steps: Sequence[Step]) -> None:
        self.writes.append([f"{step.name}:{step.status.value}" for step in steps])
        for step in steps:
            await FakeJournal.add_step(self, case_id, step)


async def answer() -> StepResult:
    return StepResult("read", {"verdict": "proceed"})


async def test_a_held_done_is_journaled_with_the_next_step_in_one_write() -> None:
    journal, clock = WriteCountingJournal(), FakeClock()
    recorder, case = await opened(journal, clock)

    case, _ = await recorder.run(case, "guardrails", answer, hold_done=True)
    assert case.done("guardrails") is not None  # the worker goes on from it at once
    case, _ = await recorder.run(case, "plan", answer)

    assert journal.writes == [["guardrails:started"], ["guardrails:done", "plan:started"],
                              ["plan:done"]]
    stored = await journal.get_case(CASE_ID)
    assert stored is not None and stored.steps == case.steps
    assert [s.link.seq for s in stored.steps if s.link is not None] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("then", ["save", "require", "flush"])
async def test_a_held_done_is_journaled_before_the_case_is_saved_or_read(then: str) -> None:
    journal, clock = WriteCountingJournal(), FakeClock()
    recorder, case = await opened(journal, clock)

    case, _ = await recorder.run(case, "guardrails", answer, hold_done=True)
    if then == "save":
        await recorder.save(case, state=CaseState.SKIPPED)
    elif then == "require":
        assert (await recorder.require(CASE_ID)).done("guardrails") is not None
    else:
        await recorder.flush(CASE_ID)
        await recorder.flush(CASE_ID)  # nothing held any more: nothing written twice

    assert journal.writes == [["guardrails:started"], ["guardrails:done"]]
    stored = await journal.get_case(CASE_ID)
    assert stored is not None and stored.done("guardrails") is not None


async def test_a_dropped_done_is_never_journaled_and_its_step_runs_again() -> None:
    """A cancelled pass drops what it holds, as a process that stopped there would."""
    journal, clock = WriteCountingJournal(), FakeClock()
    recorder, case = await opened(journal, clock)
    ran: list[str] = []

    async def guardrails() -> StepResult:
        ran.append("guardrails")
        return StepResult("checked")

    held = asyncio.Event()

    async def cancelled_pass() -> None:
        async with recorder.holding(CASE_ID):
            await recorder.run(case, "guardrails", guardrails, hold_done=True)
            held.set()
            await asyncio.Event().wait()  # its time budget runs out here

    cut = asyncio.create_task(cancelled_pass())
    await held.wait()
    cut.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cut
    await recorder.note(case, "paused", StepStatus.INFO)

    stored = await recorder.require(CASE_ID)
    assert stored.done("guardrails") is None
    await recorder.run(stored, "guardrails", guardrails)
    assert ran == ["guardrails", "guardrails"]
