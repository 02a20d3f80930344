"""One person, one case (issue 10, point 1): the episode claim and the reset claim, with
in-memory fakes. The race over HTTP with two workers is tests/e2e/test_episodes.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import pytest

from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.errors import ConcurrentUpdate, TransientError
from remediation.domain.escalation_kinds import EscalationKind
from remediation.domain.requests import RemediationRequest
from remediation.service.securing import RESET_LEASE
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings
from tests.fakes import FakeJournal, FakeTenant

ROB = "rob@contoso.com"
ROB_ID = "3f2a1b4c-0000-4000-8000-00000000abcd"
DELAYS = (timedelta(hours=1), timedelta(hours=4), timedelta(hours=24))


class InterleavedJournal(FakeJournal):
    """Runs ``meanwhile`` (another worker) just before the next episode claim lands (the
    claimer saw the episode as it was before that worker claimed it), and
    ``before_waiting`` just before a case is saved ``awaiting_verification``."""

    def __init__(self) -> None:
        super().__init__()
        self.meanwhile: Callable[[], Awaitable[object]] | None = None
        self.before_waiting: Callable[[], Awaitable[object]] | None = None

    async def claim_episode(self, user_id: str, case_id: str, replaces: str | None) -> str:
        other, self.meanwhile = self.meanwhile, None
        if other is not None:
            await other()
        return await super().claim_episode(user_id, case_id, replaces)

    async def update_case(self, case: Case) -> Case:
        if case.state is CaseState.AWAITING_VERIFICATION and self.before_waiting is not None:
            other, self.before_waiting = self.before_waiting, None
            await other()
        return await super().update_case(case)


def workflow(tenant: FakeTenant) -> RemediationWorkflow:
    return RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=DELAYS))


@pytest.fixture
def tenant() -> FakeTenant:
    tenant = FakeTenant(journal=InterleavedJournal())
    tenant.directory.add_user(ROB, user_id=ROB_ID)
    tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30))
    return tenant


def request(user: str, request_id: str, **fields: object) -> RemediationRequest:
    return RemediationRequest(user=user, request_id=request_id, **fields)  # type: ignore[arg-type]


async def test_of_two_workers_naming_one_person_two_ways_one_opens_the_case(
        tenant: FakeTenant) -> None:
    journal = tenant.journal
    assert isinstance(journal, InterleavedJournal)
    by_address, by_id = workflow(tenant), workflow(tenant)
    other: list[Case] = []

    async def other_worker() -> None:
        other.append(await by_id.remediate(request(ROB_ID, "by-id")))

    journal.meanwhile = other_worker  # lands while the first is about to claim

    first = await by_address.remediate(request(ROB, "by-address"))

    [winner] = other
    assert winner.state is CaseState.AWAITING_VERIFICATION
    assert winner.user == ROB and winner.user_id == ROB_ID
    assert first.case_id == winner.case_id  # the request ended in the winner's case
    assert tenant.directory.count("reset_password") == 1
    assert len(tenant.exchange.unblocks) == 1
    cases = {case.case_id: case for case in await journal.list_cases()}
    [loser] = [case for case in cases.values() if case.case_id != winner.case_id]
    assert loser.state is CaseState.SKIPPED
    assert loser.reason == f"merged into case {winner.case_id}"
    assert set(cases[winner.case_id].request_ids) == {"by-id", "by-address"}
    assert await journal.current_episode(ROB_ID) == winner.case_id
    # The loser's request delivered again: it lands on the winner, nothing more is done.
    again = await by_address.remediate(request(ROB, "by-address"))
    assert again.case_id == winner.case_id
    assert tenant.directory.count("reset_password") == 1


async def test_a_request_naming_the_holder_merges_before_asking_the_tenant(
        tenant: FakeTenant) -> None:
    case = await workflow(tenant).remediate(request(ROB, "req-1"))
    calls = len(tenant.events)

    merged = await workflow(tenant).remediate(request(ROB_ID, "req-2"))

    assert merged.case_id == case.case_id
    assert len(tenant.events) == calls  # not even a lookup
    assert [c.case_id for c in await tenant.journal.list_cases()] == [case.case_id]


async def test_a_case_opened_under_an_object_id_takes_the_primary_address(
        tenant: FakeTenant) -> None:
    case = await workflow(tenant).remediate(request(ROB_ID, "req-1"))

    assert (case.user, case.user_id) == (ROB, ROB_ID)
    assert (await tenant.journal.latest_case(ROB)) == case
    received = next(step for step in case.steps if step.name == "received")
    assert received.status is StepStatus.INFO


async def test_a_case_from_before_episodes_were_claimed_still_absorbs_requests(
        tenant: FakeTenant) -> None:
    case = await workflow(tenant).remediate(request(ROB, "req-1"))
    assert isinstance(tenant.journal, FakeJournal)
    tenant.journal.episodes.clear()  # journaled by a version that claimed no episodes

    merged = await workflow(tenant).remediate(request(ROB_ID, "req-2"))

    assert merged.case_id == case.case_id
    assert tenant.directory.count("reset_password") == 1


async def test_a_reset_claimed_by_another_worker_is_never_done_twice(
        tenant: FakeTenant) -> None:
    tenant.directory.fail(ROB, TransientError("Graph returned 503"), on="reset_password",
                          times=1)
    work = workflow(tenant)
    with pytest.raises(TransientError, match="503"):
        await work.remediate(request(ROB, "req-1"))
    [case] = await tenant.journal.list_cases()
    # Another worker is resetting this very case right now (a redelivery racing this one).
    assert await tenant.journal.claim_step(case.case_id, "reset_password", "other-worker",
                                           tenant.clock.now(), RESET_LEASE)

    with pytest.raises(TransientError, match="another worker is resetting"):
        await work.remediate(request(ROB, "req-1"))
    assert tenant.directory.count("reset_password") == 1  # only the failed first attempt

    tenant.clock.advance(RESET_LEASE)  # that worker died: its lease runs out
    done = await work.remediate(request(ROB, "req-1"))
    assert done.state is CaseState.AWAITING_VERIFICATION
    assert tenant.directory.count("reset_password") == 2
    assert [s.status for s in done.steps if s.name == "reset_password"] == [
        StepStatus.STARTED, StepStatus.FAILED, StepStatus.STARTED, StepStatus.DONE]


async def test_a_failed_reset_gives_its_claim_up_at_once(tenant: FakeTenant) -> None:
    tenant.directory.fail(ROB, TransientError("Graph returned 503"), on="reset_password",
                          times=1)
    work = workflow(tenant)
    with pytest.raises(TransientError):
        await work.remediate(request(ROB, "req-1"))

    done = await work.remediate(request(ROB, "req-1"))  # no lease to wait for

    assert done.state is CaseState.AWAITING_VERIFICATION
    assert tenant.directory.count("reset_password") == 2


async def test_a_request_merged_while_the_case_runs_does_not_fail_its_worker(
        tenant: FakeTenant) -> None:
    """The merge saves the case (its request and alert ids) under the running worker: the
    worker's next save builds on it instead of failing with ConcurrentUpdate."""
    journal = tenant.journal
    assert isinstance(journal, InterleavedJournal)

    async def merge() -> None:
        await workflow(tenant).remediate(request(ROB_ID, "req-2"))

    journal.before_waiting = merge

    case = await workflow(tenant).remediate(request(ROB, "req-1"))

    assert case.state is CaseState.AWAITING_VERIFICATION
    stored = await journal.get_case(case.case_id)
    assert stored is not None and stored.request_ids == ("req-1", "req-2")
    assert tenant.directory.count("reset_password") == 1


async def test_a_case_escalated_while_its_worker_runs_is_never_overwritten(
        tenant: FakeTenant) -> None:
    journal = tenant.journal
    assert isinstance(journal, InterleavedJournal)
    work = workflow(tenant)

    async def escalate() -> None:
        [running] = await journal.list_cases()
        await work.escalate(running.case_id, "a human took over", kind=EscalationKind.STUCK)

    journal.before_waiting = escalate

    with pytest.raises(ConcurrentUpdate):
        await work.remediate(request(ROB, "req-1"))

    [case] = await journal.list_cases()
    assert (case.state, case.reason) == (CaseState.ESCALATED, "a human took over")


class CountingJournal(FakeJournal):
    """Records the journal calls a case costs, in order (in Azure each is a round trip to
    Table storage; on the local runtime, one to SQLite's threads)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def add_case(self, case: Case) -> None:
        self.calls.append("add_case:" + ",".join(step.name for step in case.steps))
        await super().add_case(case)

    async def add_step(self, case_id: str, step: Step) -> None:
        self.calls.append(f"add_step:{step.name}:{step.status.value}")
        await super().add_step(case_id, step)

    async def get_case(self, case_id: str) -> Case | None:
        self.calls.append("get_case")
        return await super().get_case(case_id)

    async def update_case(self, case: Case) -> Case:
        self.calls.append(f"update_case:{case.state.value}")
        return await super().update_case(case)

    async def add_steps(self, case_id: str, steps: Sequence[Step]) -> None:
        self.calls.append("add_steps:" + ",".join(f"{s.name}:{s.status.value}" for s in steps))
        for step in steps:
            await FakeJournal.add_step(self, case_id, step)

    async def claim_step(self, case_id: str, step: str, holder: str, now: datetime,
                         lease: timedelta) -> bool:
        self.calls.append(f"claim_step:{step}")
        return await super().claim_step(case_id, step, holder, now, lease)


async def test_a_request_costs_the_journal_these_writes_and_one_read_before_its_reset(
        ) -> None:
    """Issue 18: from the request to the password reset, each journal call is a round trip
    (to Table storage in Azure, to SQLite's threads locally) on the case's path. The case
    opens with its ``received`` step and its lookup's ``started`` in one write; it takes the
    account and goes ``in_progress`` in one save, without reading itself again; a step that
    reads writes its ``done`` with the next step's ``started``; the case is read once, when
    this worker holds it, again as the plan begins, beside its Exchange reads (a request
    merged meanwhile: its alerts decide the triage and the window), and again once the reset
    is claimed (what another worker did)."""
    journal = CountingJournal()
    tenant = FakeTenant(journal=journal)
    tenant.directory.add_user(ROB, user_id=ROB_ID)
    tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30))

    case = await workflow(tenant).remediate(request(ROB, "r1"))

    assert case.state is CaseState.AWAITING_VERIFICATION
    until = journal.calls.index("add_step:reset_password:started")
    assert journal.calls[:until + 1] == [
        "add_case:received,lookup_user",
        "add_step:lookup_user:done",
        "update_case:in_progress",
        "claim_step:case",
        "get_case",
        "add_step:guardrails:started",
        "add_steps:guardrails:done,plan:started",
        "get_case",
        "add_steps:plan:done,compromise_window:started",
        "add_steps:compromise_window:done,circuit_breaker:started",
        "add_step:circuit_breaker:done",
        "claim_step:reset_password",
        "get_case",
        "add_step:reset_password:started"]
    stored = await tenant.journal.get_case(case.case_id)
    assert stored is not None and stored.steps == case.steps
    assert [(s.name, s.status.value) for s in stored.steps[:4]] == [
        ("received", "info"), ("lookup_user", "started"), ("lookup_user", "done"),
        ("guardrails", "started")]
