"""A step's ``done`` is journaled on the case as the worker holds it: read again only when
the step's action journaled on that case (issue 18: a read per step was a round trip to the
journal, on the path to the reset, for nothing the worker did not already hold)."""

from __future__ import annotations

import asyncio
import contextvars

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
