"""What the journal says in dry-run and approve modes: never that an action happened before it
did, and what a person repeating a command is told (issue 14, point 9)."""

import re
from datetime import timedelta

from remediation.domain.cases import Case, CaseState
from remediation.domain.requests import RemediationRequest
from remediation.service.messages import Approval
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings
from tests.fakes import FakeAlertNotifier, FakeAlertSource, FakeAlertUpdater, FakeTenant

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


# -- approve mode: a manual request meets a case waiting for approval ------------------------


def approving(tenant: FakeTenant) -> tuple[RemediationWorkflow, FakeAlertNotifier]:
    notifier = FakeAlertNotifier()
    source = FakeAlertSource(stand_in_sender=ROB)
    for alert_id in ("fa-first", "fa-second"):  # created before anything acted
        source.stand_in_created[alert_id] = tenant.clock.now() - timedelta(minutes=20)
    flow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=DELAYS, mode="approve"),
        alerts=FakeAlertUpdater(), notifier=notifier, alert_source=source)
    return flow, notifier


async def waiting_case(flow: RemediationWorkflow, tenant: FakeTenant) -> Case:
    tenant.directory.add_user(ROB)
    tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30))
    case = await flow.remediate(RemediationRequest(
        user=ROB, source="alert", alert_ids=("fa-first",), request_id="alert-1"))
    assert case.state is CaseState.AWAITING_APPROVAL
    return case


async def test_a_manual_request_for_a_case_waiting_for_approval_proceeds_at_once() -> None:
    tenant = FakeTenant()
    flow, notifier = approving(tenant)
    waiting = await waiting_case(flow, tenant)

    case = await flow.remediate(RemediationRequest(
        user=ROB, source="manual", requested_by="helpdesk", request_id="manual-1"))

    # README: manual requests proceed at once in approve mode; a second request merges into
    # the open case (one case, one reset).
    assert case.case_id == waiting.case_id
    assert case.state is CaseState.AWAITING_VERIFICATION
    assert tenant.directory.count("reset_password") == 1
    assert [c.case_id for c in await tenant.journal.list_cases()] == [waiting.case_id]
    names = [step.name for step in case.steps]
    assert names.index("merged") < names.index("approved") < names.index("guardrails_on_approval")
    approved = case.done("approved") or next(s for s in case.steps if s.name == "approved")
    assert "helpdesk" in approved.detail
    assert [update.phase for update in notifier.updates] == ["start"]


async def test_no_comment_announces_work_while_the_case_waits_for_approval() -> None:
    tenant = FakeTenant()
    flow, notifier = approving(tenant)
    waiting = await waiting_case(flow, tenant)

    case = await flow.remediate(RemediationRequest(
        user=ROB, source="alert", alert_ids=("fa-second",), request_id="alert-2"))

    assert case.case_id == waiting.case_id
    assert case.state is CaseState.AWAITING_APPROVAL
    assert set(case.alert_ids) == {"fa-first", "fa-second"}
    assert notifier.updates == []  # "resetting the password..." would be untrue
    assert tenant.directory.count("reset_password") == 0

    approved = await flow.approve(Approval(case.case_id, ROB, "lead"))

    assert approved.state is CaseState.AWAITING_VERIFICATION
    assert [(u.phase, u.alert_count) for u in notifier.updates] == [("start", 2)]


async def test_a_forced_request_for_a_case_waiting_for_approval_approves_it_forced() -> None:
    tenant = FakeTenant()
    flow, notifier = approving(tenant)
    waiting = await waiting_case(flow, tenant)

    case = await flow.remediate(RemediationRequest(
        user=ROB, source="manual", force=True, requested_by="helpdesk", request_id="forced-1"))

    # One case, one reset: the forced request is the waiting case's approval, never a second
    # case that would leave the first waiting (and reset again once approved).
    assert case.case_id == waiting.case_id
    assert case.state is CaseState.AWAITING_VERIFICATION
    assert [c.case_id for c in await tenant.journal.list_cases()] == [waiting.case_id]
    assert tenant.directory.count("reset_password") == 1
    approved = next(s for s in case.steps if s.name == "approved")
    assert approved.detail == "approved by forced manual request forced-1 from helpdesk"
    breaker = case.done("circuit_breaker")
    assert breaker is not None and "bypassed" in breaker.detail
    assert [update.phase for update in notifier.updates] == ["start"]
