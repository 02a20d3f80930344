"""Hostile round on issue 16 (decisions, the kill switch, undo), against in-memory fakes.

Each test reproduces an interleaving or an input a real deployment meets; it failed on the
code it was written against (main at 37ef452)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from remediation.domain.cases import Case, CaseState
from remediation.domain.errors import TransientError
from remediation.domain.escalation_kinds import EscalationKind
from remediation.domain.requests import RemediationRequest
from remediation.service.doctor import Report, Status
from remediation.service.doctor_settings import (
    MODE,
    PROTECTED_GROUPS,
    with_settings_findings,
)
from remediation.service.messages import Approval
from remediation.service.sweeper import Sweeper
from remediation.service.workflow import RemediationWorkflow
from tests.fakes import FakeTenant
from tests.sweeping import FakeRequestsQueue
from tests.unit.test_decisions import (
    GRACE,
    ROB,
    TIMEOUT,
    Harness,
    harness,
    harness_enforcing,
)

PARAMETERS = Path(__file__).parents[2] / "infra" / "main.parameters.json"


class ApprovedMeanwhile:
    """The sweeper's view of the workflow on one worker, while a second worker delivers an
    approval of the same case: the approval is stored after the sweeper claimed the case
    (its ``update_case`` under the version it read) and before the sweeper's escalation
    reads the case again. Two workers, one journal: nothing orders them otherwise."""

    def __init__(self, flow: RemediationWorkflow, approval: Approval) -> None:
        self._flow = flow
        self._approval: Approval | None = approval

    def __getattr__(self, name: str) -> Any:
        return getattr(self._flow, name)

    async def escalate(self, case_id: str, reason: str, *, kind: EscalationKind) -> Any:
        approval, self._approval = self._approval, None
        if approval is not None:
            await self._flow.approve(approval)  # the other worker's delivery, done meanwhile
        return await self._flow.escalate(case_id, reason, kind=kind)


async def test_an_approval_stored_after_the_expiry_sweep_claimed_the_case_is_not_overruled(
) -> None:
    """The approval timeout promises that of an approval and the expiry that read one
    version, one is stored, and an approval stored meanwhile wins (sweeper.py,
    ``_expire_approval``). Here the approval lands between the sweeper's claim and its
    escalation: the password is reset and the block lifted, and the case must not then be
    escalated as ``approval_expired``, "nothing was changed"."""
    h: Harness = harness()
    waiting = await h.waiting()
    h.tenant.clock.advance(TIMEOUT + timedelta(minutes=5))
    sweeper = Sweeper(journal=h.tenant.journal,
                      workflow=ApprovedMeanwhile(h.flow, Approval(  # type: ignore[arg-type]
                          waiting.case_id, ROB, "bob")),
                      resumes=FakeRequestsQueue(), clock=h.tenant.clock,
                      session_for=lambda user: user, approval_timeout=TIMEOUT)

    await sweeper.sweep()

    case = await h.case(waiting.case_id)
    assert h.tenant.directory.count("reset_password") == 1  # the approval acted
    # The approval won: the case goes on to its checks, never "expired, nothing changed".
    assert case.escalation_kind != EscalationKind.APPROVAL_EXPIRED.value, case.reason
    assert case.state is CaseState.AWAITING_VERIFICATION, (case.state, case.reason)


async def test_an_escalation_notice_still_in_the_queue_when_the_case_is_closed_is_delivered(
) -> None:
    """A case escalates; its notice (the Defender comment with the reason and what was and
    was not done, the escalation card) waits in the queue: Graph is failing for a while, or
    the robot is paused, which keeps every alert update. Meanwhile the person who handles
    escalations reads `status`, does the work by hand and closes the case. The notice, when
    it is delivered, finds the case closed rather than escalated: it must still tell the
    alert why the case escalated, not fail as "not escalated yet" on every attempt until it
    is given up."""
    h = harness()
    h.source.stand_in_sender = GRACE
    h.source.stand_in_created["fa-g"] = h.tenant.clock.now() - timedelta(minutes=20)
    case = await harness_enforcing(h).remediate(RemediationRequest(
        user=GRACE, source="alert", alert_ids=("fa-g",), request_id="alert-fa-g"))
    assert case.state is CaseState.ESCALATED, case.reason
    kept, h.notifier.updates = h.notifier.updates, []  # not delivered yet
    assert [update.phase for update in kept] == ["escalated"]

    await h.flow.close_escalated(case.case_id, by="bob", reason="reset by phone")
    h.notifier.updates = [*kept, *h.notifier.updates]
    try:
        await h.deliver()
    except TransientError as error:  # retried until MAX_DELIVERY_COUNT, then given up
        raise AssertionError(f"the escalation notice is never delivered: {error}") from None

    comments = h.alerts.comments_on("fa-g")
    assert any("protected group" in comment for comment in comments), comments


async def test_the_doctors_fix_for_no_protected_group_names_the_azd_value_azd_up_reads() -> None:
    """`doctor` warns that no protected group is configured, and its fix says how to set one
    in Azure. azd up takes the setting from the azd environment value that
    infra/main.parameters.json names (README, Deployment: `AZURE_` in front, on purpose).
    An operator who runs the fix as written sets a value nothing reads: the next `azd up`
    writes PROTECTED_GROUP_IDS empty again, and nobody is protected."""
    parameters = json.loads(PARAMETERS.read_text())
    read = parameters["parameters"]["protectedGroupIds"]["value"]  # "${NAME}"
    name = read.strip("${}").split("=")[0]

    report = await with_settings_findings(Report(()), frozenset(), "dry-run", None)

    [warning] = [f for f in report.findings if f.check == PROTECTED_GROUPS]
    assert warning.status is Status.WARN
    assert f"azd env set {name} " in warning.fix, warning.fix


async def test_enforce_is_still_a_first_run_when_no_case_ever_planned_anything() -> None:
    """`doctor` warns for REMEDIATION_MODE=enforce on a first run: "no plan has been seen
    yet" (README, Before you switch it on). The operator tried the queue by hand first, as
    the README shows (`{"user": ...}` in Service Bus Explorer), with a typo: the request was
    journaled `rejected` at the door. Nothing was ever planned, approved or changed, yet
    the doctor now says "enforce ... cases have finished before" and warns no more."""
    tenant = FakeTenant()
    journal = tenant.journal
    await journal.add_case(Case(
        case_id="20240501-0000aaaa", user="rob@contoso", state=CaseState.REJECTED,
        created_at=tenant.clock.now(), updated_at=tenant.clock.now(), source="manual",
        reason="'rob@contoso' is neither an email address nor an object id"))

    report = await with_settings_findings(Report(()), frozenset({GRACE}), "enforce", journal)

    [mode] = [f for f in report.findings if f.check == MODE]
    assert mode.status is Status.WARN, mode.result
