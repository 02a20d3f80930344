"""Hostile tests of issue 18 (a read-only step's ``done`` held and written with the next
step; no read of the case after a step that journaled nothing on it)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import pytest

from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.delegates import Delegate
from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import TransientError
from remediation.domain.guardrails import Memberships
from remediation.domain.requests import RemediationRequest
from remediation.sandbox.alert_seed import (
    LIMIT,
    RESTRICTED,
    SUSPICIOUS,
    alert,
    mailbox_evidence,
    shared_mailbox_alert,
)
from remediation.service.journaling import BREAKER, RESET
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings
from tests.fakes import (
    FakeAlertSource,
    FakeDirectory,
    FakeJournal,
    FakeRequestSender,
    FakeTenant,
)

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


class BreakerSignalJournal(FlakyJournal):
    """Says when the circuit breaker took its place (its action is over, its done held)."""

    def __init__(self) -> None:
        super().__init__()
        self.breaker_passed = asyncio.Event()
        self.breaker_case: str | None = None

    async def reserve_reset(self, case_id: str, now: datetime, limit: int,
                            window: timedelta) -> bool:
        self.breaker_case = case_id
        self.breaker_passed.set()
        return await super().reserve_reset(case_id, now, limit, window)


async def test_another_delivery_failing_to_journal_on_the_case_never_loses_its_held_done(
        ) -> None:
    """Two deliveries in one process share the recorder (WORKER_CONCURRENCY). While one
    secures a case and holds its breaker's ``done``, another journals on that case (a retry
    note, a merge): its write took the held ``done`` and failed, and the first went on to
    reset the password with the breaker never journaled done (the journal says the reset
    ran past a breaker that never finished). What a pass holds is written by that pass."""
    journal = BreakerSignalJournal()
    tenant = FakeTenant(journal=journal)
    workflow = workflow_for(tenant)
    journal.failing = ("retry", StepStatus.INFO)  # the other delivery's write fails

    async def other_delivery() -> None:
        await journal.breaker_passed.wait()
        assert journal.breaker_case is not None
        with contextlib.suppress(TransientError):
            await workflow.journal_retry("alert update retried", {},
                                         case_id=journal.breaker_case)

    other = asyncio.create_task(other_delivery())
    case = await workflow.remediate(
        RemediationRequest(user=ROB, source="manual", request_id="req-1"))
    await other

    assert case.state is CaseState.AWAITING_VERIFICATION
    stored = await journal.get_case(case.case_id)
    assert stored is not None
    order = [(s.name, s.status) for s in stored.steps]
    assert (BREAKER, StepStatus.DONE) in order
    assert order.index((BREAKER, StepStatus.DONE)) < order.index((RESET, StepStatus.STARTED))


SHARED, NESTOR = "info@contoso.com", "nestor.wilke@contoso.com"


class MergingDelegation:
    """A shared mailbox's Exchange reads; while the guardrails read its delegates, another
    delivery merges a second alert into the case (``merge``, run as its own task)."""

    def __init__(self) -> None:
        self.merge: Callable[[], Awaitable[object]] | None = None

    async def recipient_type(self, address: str) -> str | None:
        return "SharedMailbox"

    async def mailbox_delegates(self, address: str) -> list[Delegate]:
        if self.merge is not None:
            merge, self.merge = self.merge, None
            await asyncio.create_task(merge(), context=contextvars.Context())
        return [Delegate(NESTOR, ("SendAs",))]


async def test_an_alert_merged_during_the_guardrails_opens_the_case_of_the_delegate_it_names(
        ) -> None:
    """A shared mailbox's case opens a case for each delegate its alerts name. An alert
    merged into it while the guardrails read (a second Defender alert, naming the delegate
    who sent as the mailbox) must count: with no read after the guardrails, the case went
    on from the alert ids it held before, and the compromised delegate got no case."""
    tenant = FakeTenant()
    tenant.directory.put_user(DirectoryUser(
        id="00000000-0000-4000-8000-00000000005a", user_principal_name=SHARED, mail=SHARED,
        account_enabled=False))
    tenant.directory.add_user(NESTOR)
    tenant.exchange.block(SHARED, created=tenant.clock.now() - timedelta(minutes=30))
    first = alert(RESTRICTED, [mailbox_evidence(SHARED, roles=["compromised"])],
                  alert_id="fa-first")
    second = {**shared_mailbox_alert(SHARED, NESTOR), "id": "fa-second"}
    source = FakeAlertSource([first, second])
    delegation, requests = MergingDelegation(), FakeRequestSender()
    workflow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=(timedelta(hours=1),)),
        alert_source=source, delegation=delegation, requests=requests)
    delegation.merge = lambda: workflow.remediate(RemediationRequest(
        user=SHARED, source="alert", alert_ids=("fa-second",), request_id="req-2"))

    case = await workflow.remediate(RemediationRequest(
        user=SHARED, source="alert", alert_ids=("fa-first",), request_id="req-1"))

    assert case.state is CaseState.ESCALATED
    assert case.alert_ids == ("fa-first", "fa-second")  # merged while the guardrails read
    assert requests.users() == [NESTOR], case.reason


class MergingDirectory(FakeDirectory):
    """While the guardrails read the account's memberships, another delivery merges a
    second alert into the case (``merge``, run as its own task)."""

    merge: Callable[[], Awaitable[object]] | None = None

    async def memberships(self, user_id: str,
                          protected_group_ids: frozenset[str] = frozenset()) -> Memberships:
        if self.merge is not None:
            merge, self.merge = self.merge, None
            await asyncio.create_task(merge(), context=contextvars.Context())
        return await super().memberships(user_id, protected_group_ids)


async def test_a_compromise_alert_merged_during_the_guardrails_gets_a_rate_limit_block_secured(
        ) -> None:
    """A rate-limit block is held back (RATE_LIMIT_BLOCKS=escalate: nothing changed) only
    when no compromise alert of the case names the account. One merged while the guardrails
    read must count: the plan judged from the alert ids held before, and the account a
    compromise alert names was escalated as a bulk sender, its password left as it was."""
    tenant = FakeTenant()
    tenant.directory = MergingDirectory(tenant.clock, events=tenant.events)
    tenant.directory.add_user(ROB, user_id=ROB_ID)
    tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30),
                          reason="EmailSendingLimitExceeded;InternalRecipientCountToday=1;"
                                 "ExternalRecipientCountToday=9")
    volume = alert(LIMIT, [mailbox_evidence(ROB)], alert_id="fa-volume")
    takeover = alert(SUSPICIOUS, [mailbox_evidence(ROB)], alert_id="fa-takeover")
    workflow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=(timedelta(hours=1),)),
        alert_source=FakeAlertSource([volume, takeover]))
    tenant.directory.merge = lambda: workflow.remediate(RemediationRequest(
        user=ROB, source="alert", alert_ids=("fa-takeover",), request_id="req-2"))

    case = await workflow.remediate(RemediationRequest(
        user=ROB, source="alert", alert_ids=("fa-volume",), request_id="req-1"))

    assert case.alert_ids == ("fa-volume", "fa-takeover")  # merged while the guardrails read
    assert case.state is CaseState.AWAITING_VERIFICATION, case.reason
    assert len(tenant.directory.passwords) == 1


class ReadFailingAfterClaimJournal(FakeJournal):
    """The first read of the case after the reset is claimed fails (a 503)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next_read = False
        self.failed = False

    async def claim_step(self, case_id: str, step: str, holder: str, now: datetime,
                         lease: timedelta) -> bool:
        claimed = await super().claim_step(case_id, step, holder, now, lease)
        if step == RESET and claimed and not self.failed:
            self.fail_next_read = self.failed = True
        return claimed

    async def get_case(self, case_id: str) -> Case | None:
        if self.fail_next_read:
            self.fail_next_read = False
            raise TransientError("the journal answered 503")
        return await super().get_case(case_id)


async def test_a_read_failing_after_the_reset_claim_never_keeps_the_reset_claimed() -> None:
    """The case is read once the reset is claimed (what another worker journaled): when that
    read fails, the claim goes with the attempt, or the retry waits out the 10-minute lease."""
    journal = ReadFailingAfterClaimJournal()
    tenant = FakeTenant(journal=journal)
    workflow = workflow_for(tenant)
    request = RemediationRequest(user=ROB, source="manual", request_id="req-1")

    with pytest.raises(TransientError):
        await workflow.remediate(request)
    tenant.clock.advance(timedelta(seconds=30))
    case = await workflow.remediate(request)

    assert case.state is CaseState.AWAITING_VERIFICATION
    assert len(tenant.directory.passwords) == 1
