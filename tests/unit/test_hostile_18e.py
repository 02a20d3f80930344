"""Hostile tests of issue 18 (a read-only step's ``done`` held and written with the next
step; no read of the case after a step that journaled nothing on it)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import pytest

from remediation.domain.cases import CaseState, Step, StepStatus
from remediation.domain.errors import TransientError
from remediation.domain.requests import RemediationRequest
from remediation.service.journaling import BREAKER
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings
from tests.fakes import FakeJournal, FakeTenant

ROB = "rob@contoso.com"
ROB_ID = "3f2a1b4c-0000-4000-8000-00000000abcd"


class FlakyJournal(FakeJournal):
    """Fails the next write carrying step ``name`` with ``status``, after a round trip (as
    Table Storage answers a 503 or a timeout): what runs beside it meanwhile goes ahead."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: tuple[str, StepStatus] | None = None

    async def _maybe_fail(self, steps: Sequence[Step]) -> None:
        if self.failing is None:
            return
        if any((step.name, step.status) == self.failing for step in steps):
            self.failing = None
            for _ in range(5):  # the round trip: the tasks beside this one run meanwhile
                await asyncio.sleep(0)
            raise TransientError("the journal timed out")

    async def add_step(self, case_id: str, step: Step) -> None:
        await self._maybe_fail([step])
        await super().add_step(case_id, step)

    async def add_steps(self, case_id: str, steps: Sequence[Step]) -> None:
        await self._maybe_fail(steps)
        await super().add_steps(case_id, steps)


def workflow_for(tenant: FakeTenant) -> RemediationWorkflow:
    tenant.directory.add_user(ROB, user_id=ROB_ID)
    tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30))
    return RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=(timedelta(hours=1),)))


async def test_a_lost_breaker_done_never_keeps_the_reset_claimed() -> None:
    """The breaker's held ``done`` fails to be written while the reset claim beside it
    succeeds: the claim must be given up with the failed attempt, or the retry finds the
    reset held by nobody (CaseBusy) for the whole reset lease (10 minutes) and the account
    of a compromised person keeps its password that long."""
    journal = FlakyJournal()
    tenant = FakeTenant(journal=journal)
    workflow = workflow_for(tenant)
    request = RemediationRequest(user=ROB, source="manual", request_id="req-1")
    journal.failing = (BREAKER, StepStatus.DONE)

    with pytest.raises(TransientError):
        await workflow.remediate(request)
    assert tenant.directory.passwords == []

    tenant.clock.advance(timedelta(seconds=30))  # the retry's back-off
    case = await workflow.remediate(request)

    assert case.state is CaseState.AWAITING_VERIFICATION
    assert len(tenant.directory.passwords) == 1
