"""The journal contract for a person's decisions (issue 16, point 1), held against both real
journals: SQLite and Azure Table Storage (on Azurite). A waiting case may end ``rejected``
and an escalated one ``closed``, and nothing else leads there; ``closed`` is a state the
journals list and count like any other; a case a person rejected is the user's latest case
(one refused at the door is not); and of a reject and an approval racing over one waiting
case, on two writers, exactly one is stored."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from remediation.domain.case_states import ForbiddenTransition
from remediation.domain.cases import CaseState
from remediation.domain.errors import InvalidRequest
from remediation.domain.requests import RemediationRequest
from remediation.service.messages import Approval
from remediation.service.ports import Journal
from remediation.service.workflow import APPROVAL_REFUSED, RemediationWorkflow, WorkflowSettings
from tests.fakes import FakeAlertSource, FakeTenant
from tests.integration.conftest import OpenJournal
from tests.journal_cases import ROB, T0, make_case, seed, stored

DELAYS = (timedelta(hours=1), timedelta(hours=4), timedelta(hours=24))


@pytest.fixture
def journal(open_journal: OpenJournal) -> Journal:
    return open_journal()


@pytest.mark.parametrize(("before", "after"), [
    (CaseState.AWAITING_APPROVAL, CaseState.REJECTED),
    (CaseState.ESCALATED, CaseState.CLOSED),
])
async def test_a_decision_is_stored_with_who_decided(journal: Journal, before: CaseState,
                                                    after: CaseState) -> None:
    await seed(journal, make_case("c1", state=before))

    await journal.update_case((await stored(journal, "c1")).evolve(
        state=after, decided_by="alice@contoso.com", reason=f"{after.value} by alice: why"))

    case = await stored(journal, "c1")
    assert (case.state, case.decided_by) == (after, "alice@contoso.com")
    assert [c.case_id for c in await journal.list_cases(states={after})] == ["c1"]
    assert await journal.count_cases() == {after: 1}
    assert await journal.working_cases() == []


@pytest.mark.parametrize(("before", "after"), [
    (CaseState.IN_PROGRESS, CaseState.REJECTED),  # a reject of a case already approved
    (CaseState.AWAITING_VERIFICATION, CaseState.REJECTED),
    (CaseState.ESCALATED, CaseState.REJECTED),
    (CaseState.AWAITING_APPROVAL, CaseState.CLOSED),  # only an escalation is closed
    (CaseState.VERIFIED, CaseState.CLOSED),
    (CaseState.REJECTED, CaseState.CLOSED),
    (CaseState.CLOSED, CaseState.ESCALATED),  # nothing leaves closed
    (CaseState.CLOSED, CaseState.IN_PROGRESS),
    (CaseState.REJECTED, CaseState.IN_PROGRESS),  # an approval after the reject
])
async def test_no_other_way_leads_to_a_decision_or_out_of_one(
        journal: Journal, before: CaseState, after: CaseState) -> None:
    await seed(journal, make_case("c1", state=before, reason="as it was"))
    case = await stored(journal, "c1")

    with pytest.raises(ForbiddenTransition, match=f"{before.value} to {after.value}"):
        await journal.update_case(case.evolve(state=after, decided_by="mallory"))

    kept = await stored(journal, "c1")
    assert (kept.state, kept.decided_by, kept.version) == (before, None, case.version)


async def test_a_case_a_person_rejected_is_the_latest_one_refused_at_the_door_is_not(
        journal: Journal) -> None:
    await seed(journal, make_case("escalated", state=CaseState.ESCALATED, at=T0))
    await seed(journal, make_case("decided", state=CaseState.AWAITING_APPROVAL,
                                  at=T0 + timedelta(hours=1)))
    await journal.update_case((await stored(journal, "decided")).evolve(
        state=CaseState.REJECTED, decided_by="alice"))
    await seed(journal, make_case("door", state=CaseState.REJECTED,
                                  at=T0 + timedelta(hours=2)))

    latest = await journal.latest_case(ROB)

    assert latest is not None and latest.case_id == "decided"


# -- the race, on two writers of one store ----------------------------------------------------


def workflow(tenant: FakeTenant, journal: Journal) -> RemediationWorkflow:
    return RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=DELAYS, mode="approve"),
        alert_source=FakeAlertSource(stand_in_sender=ROB))


async def test_of_a_reject_and_an_approval_racing_exactly_one_is_stored(
        open_journal: OpenJournal) -> None:
    tenant = FakeTenant()
    tenant.directory.add_user(ROB)
    tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30))
    worker, person = workflow(tenant, open_journal()), workflow(tenant, open_journal())
    waiting = await worker.remediate(RemediationRequest(user=ROB, source="alert",
                                                        request_id="alert-1"))
    assert waiting.state is CaseState.AWAITING_APPROVAL

    approved, rejected = await asyncio.gather(
        worker.approve(Approval(waiting.case_id, ROB, "bob")),
        person.reject_waiting(waiting.case_id, by="alice", reason="not ours"),
        return_exceptions=True)

    case = await stored(open_journal(), waiting.case_id)
    steps = [step.name for step in case.steps]
    if isinstance(rejected, InvalidRequest):  # the approval won
        assert rejected.reason.startswith((
            f"reject of case {waiting.case_id} refused: it was approved meanwhile",
            # read while the approved case is being secured, or once it is
            f"case {waiting.case_id} is in_progress, not awaiting approval",
            f"case {waiting.case_id} is awaiting_verification, not awaiting approval")), (
            rejected.reason)
        assert case.state is CaseState.AWAITING_VERIFICATION and case.decided_by is None
        assert "approved" in steps and "rejected" not in steps
        assert tenant.directory.count("reset_password") == 1
    else:  # the reject won
        assert not isinstance(approved, BaseException), approved
        assert case.state is CaseState.REJECTED and case.decided_by == "alice"
        assert "approved" not in steps and APPROVAL_REFUSED in steps
        assert tenant.directory.count("reset_password") == 0


async def test_of_two_sweepers_expiring_one_approval_one_escalates_it(
        open_journal: OpenJournal) -> None:
    """Every worker sweeps: both read the waiting case before either writes (the worst
    interleaving); the claim under the version read lets one escalate it, once."""
    from remediation.domain.escalation_kinds import EscalationKind
    from remediation.service.sweeper import Sweeper
    from tests.sweeping import FakeRequestsQueue, ReadTogether

    tenant = FakeTenant()
    tenant.directory.add_user(ROB)
    tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30))
    waiting = await workflow(tenant, open_journal()).remediate(RemediationRequest(
        user=ROB, source="alert", request_id="alert-1"))
    assert waiting.state is CaseState.AWAITING_APPROVAL
    tenant.clock.advance(hours=25)
    barrier = asyncio.Barrier(2)
    sweepers = []
    for _ in range(2):
        journal = ReadTogether(open_journal(), barrier)
        sweepers.append(Sweeper(journal=journal, workflow=workflow(tenant, journal),
                                resumes=FakeRequestsQueue(), clock=tenant.clock,
                                session_for=lambda user: user,
                                approval_timeout=timedelta(hours=24)))

    reports = await asyncio.gather(*(sweeper.sweep() for sweeper in sweepers))

    assert sorted(len(report.escalated) for report in reports) == [0, 1]
    assert [report.errors for report in reports] == [[], []]
    case = await stored(open_journal(), waiting.case_id)
    assert case.state is CaseState.ESCALATED
    assert case.escalation_kind == EscalationKind.APPROVAL_EXPIRED.value
    assert [step.name for step in case.steps].count("escalated") == 1
