"""Sweepers on several workers, against both real journals: SQLite (processes sharing one
file) and Azure Table Storage (on Azurite). Of the sweepers that read one stalled case, one
resumes it (or escalates it); the others leave it alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import cast

from remediation.domain.cases import CaseState, Step, StepStatus
from remediation.service.ports import Journal
from remediation.service.sweeper import MAX_RESUMES, STALL_AFTER, Sweeper
from remediation.service.workflow import RESUME_QUEUED, RemediationWorkflow, WorkflowSettings
from tests.fakes import FakeClock, FakeTenant
from tests.integration.conftest import OpenJournal
from tests.journal_cases import T0, make_case, seed, stored
from tests.sweeping import FakeRequestsQueue, ReadTogether

WORKERS = 3


def sweeper_on(journal: Journal, clock: FakeClock, queue: FakeRequestsQueue,
               together: asyncio.Barrier) -> Sweeper:
    """One worker's sweeper, on its own connection to the journal."""
    tenant = FakeTenant(clock=clock)
    workflow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=journal,
        scheduler=tenant.scheduler, clock=clock,
        settings=WorkflowSettings(verify_delays=(timedelta(hours=1),)))
    return Sweeper(journal=cast(Journal, ReadTogether(journal, together)), workflow=workflow,
                   resumes=queue, clock=clock, session_for=str)


async def test_of_sweepers_on_every_worker_one_resumes_and_one_escalates(
        open_journal: OpenJournal) -> None:
    journal = open_journal()
    await seed(journal, make_case("stuck", state=CaseState.IN_PROGRESS))
    # Resumed as often as it may be, and nothing moved it since.
    spent = tuple(Step(RESUME_QUEUED, StepStatus.INFO, T0, "resumed by the sweeper",
                       {"token": f"t{n}", "state": "in_progress"})
                  for n in range(MAX_RESUMES))
    await seed(journal, make_case("spent", user="adele@contoso.com",
                                     state=CaseState.IN_PROGRESS, steps=spent))
    clock = FakeClock(T0 + STALL_AFTER + timedelta(seconds=1))
    queue = FakeRequestsQueue()
    together = asyncio.Barrier(WORKERS)
    sweepers = [sweeper_on(open_journal(), clock, queue, together) for _ in range(WORKERS)]

    reports = await asyncio.gather(*(sweeper.sweep() for sweeper in sweepers))

    assert [q.properties["case_id"] for q in queue.sent] == ["stuck"]
    assert sorted(case for report in reports for case in report.resumed) == ["stuck"]
    assert sorted(case for report in reports for case in report.escalated) == ["spent"]
    assert [report.errors for report in reports] == [[]] * WORKERS
    resumed = await stored(journal, "stuck")
    assert [step.name for step in resumed.steps] == [RESUME_QUEUED]
    assert resumed.state is CaseState.IN_PROGRESS
    escalated = await stored(journal, "spent")
    assert escalated.state is CaseState.ESCALATED
    assert [step.name for step in escalated.steps].count("escalated") == 1
