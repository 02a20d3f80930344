"""What the journal says in dry-run and approve modes: never that an action happened before it
did, and what a person repeating a command is told (issue 14, point 9)."""

import re
from datetime import timedelta

from remediation.domain.cases import Case, CaseState
from remediation.domain.requests import RemediationRequest
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings
from tests.fakes import FakeAlertNotifier, FakeAlertUpdater, FakeTenant

ROB = "rob@contoso.com"
DELAYS = (timedelta(hours=1), timedelta(hours=4), timedelta(hours=24))
# Words that say an action happened (past tense), whoever reads them.
HAPPENED = re.compile(r"\b(revoked|were reset|was reset|removed|disabled|cleared|unblocked)\b",
                      re.IGNORECASE)


def workflow(tenant: FakeTenant, mode: str) -> RemediationWorkflow:
    return RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=DELAYS, mode=mode),
        alerts=FakeAlertUpdater(), notifier=FakeAlertNotifier())


def said(case: Case) -> list[str]:
    return [case.reason or "", *(step.detail for step in case.steps)]


async def test_a_dry_run_of_a_synced_account_never_says_its_sessions_were_revoked() -> None:
    tenant = FakeTenant()
    tenant.directory.add_user(ROB, on_premises_sync_enabled=True)
    tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30))

    case = await workflow(tenant, "dry-run").remediate(
        RemediationRequest(user=ROB, request_id="req-1"))

    assert case.state is CaseState.PLANNED
    assert "revoke_sessions" not in tenant.events
    assert [text for text in said(case) if HAPPENED.search(text)] == []


async def test_a_synced_account_says_its_sessions_were_revoked_only_once_they_were() -> None:
    tenant = FakeTenant()
    tenant.directory.add_user(ROB, on_premises_sync_enabled=True)
    tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30))

    case = await workflow(tenant, "enforce").remediate(
        RemediationRequest(user=ROB, request_id="req-1"))

    assert case.state is CaseState.ESCALATED
    assert "revoke_sessions" in tenant.events
    guardrails = case.done("guardrails")
    assert guardrails is not None and not HAPPENED.search(guardrails.detail)
    assert "sessions revoked" in (case.reason or "")
    assert "reset the password on-premises" in (case.reason or "")
