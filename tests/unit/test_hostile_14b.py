"""Hostile tester 14b, against in-memory fakes: what the sweeper counts as a case moving."""

from __future__ import annotations

from datetime import timedelta

import pytest

from remediation.domain.cases import CaseState
from remediation.domain.errors import TransientError
from remediation.domain.requests import RemediationRequest
from remediation.service.sweeper import MAX_RESUMES, STALL_AFTER, Sweeper
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings
from tests.fakes import FakeAlertNotifier, FakeAlertSource, FakeAlertUpdater, FakeTenant
from tests.sweeping import FakeRequestsQueue
from tests.unit.test_workflow import DELAYS, ROB, ROB_ID


async def test_alert_notices_between_lost_resumes_do_not_keep_a_stuck_case_from_escalating(
        ) -> None:
    """A case stuck in progress (its reset fails, every resume is lost) while the account
    keeps drawing Defender alerts: each alert's request merges (changes nothing) and queues
    an alert notice, journaled ``alerts_queued:start:N`` *done*. ``moves_case`` says such
    reporting steps never move a case, yet ``resumes_that_moved_nothing`` stops counting at
    any step done: the count never reaches MAX_RESUMES and the case is resumed for ever,
    never escalated."""
    tenant = FakeTenant()
    tenant.directory.add_user(ROB, user_id=ROB_ID)
    block = tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30))
    source = FakeAlertSource(stand_in_sender=ROB)
    workflow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=DELAYS), alerts=FakeAlertUpdater(),
        notifier=FakeAlertNotifier(), alert_source=source)
    queue = FakeRequestsQueue()
    sweeper = Sweeper(journal=tenant.journal, workflow=workflow, resumes=queue,
                      clock=tenant.clock, session_for=lambda user: user)

    tenant.directory.fail(ROB, TransientError("Graph returned 503"), on="reset_password")
    source.stand_in_created["alert-0"] = block.created
    with pytest.raises(TransientError):
        await workflow.remediate(RemediationRequest(
            user=ROB, source="alert", alert_ids=("alert-0",), request_id="req-0"))
    [case] = await tenant.journal.list_cases()
    assert case.state is CaseState.IN_PROGRESS

    escalated: list[str] = []
    for number in range(1, 2 * MAX_RESUMES + 2):
        tenant.clock.advance(STALL_AFTER + timedelta(seconds=1))
        report = await sweeper.sweep()
        escalated += report.escalated
        if escalated:
            break
        queue.sent.clear()  # the resume is lost
        alert = f"alert-{number}"  # the spam goes on: Defender raises another alert
        source.stand_in_created[alert] = block.created
        await workflow.remediate(RemediationRequest(
            user=ROB, source="alert", alert_ids=(alert,), request_id=f"req-{number}"))

    stored = await tenant.journal.get_case(case.case_id)
    assert stored is not None
    resumes = [step.name for step in stored.steps].count("resume_queued")
    assert escalated == [case.case_id], (
        f"{resumes} resumes moved nothing, still {stored.state.value}: "
        f"{[(s.name, s.status.value) for s in stored.steps[-6:]]}")
