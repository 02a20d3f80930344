"""RemediationWorkflow and MessageHandler against in-memory fakes of the tenant and journal."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from remediation.domain.blocks import BlockedSender
from remediation.domain.cases import Case, CaseState, StepStatus
from remediation.domain.errors import PermanentError, TransientError
from remediation.domain.requests import RemediationRequest
from remediation.service.handler import Delivery, MessageHandler
from remediation.service.messages import Approval, VerificationCheck
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings
from tests.fakes import FakeAlertSource, FakeTenant

ROB = "rob@contoso.com"
ROB_ID = "3f2a1b4c-0000-4000-8000-00000000abcd"
DELAYS = (timedelta(hours=1), timedelta(hours=4), timedelta(hours=24))
MAX_DELIVERIES = 5


@dataclass
class Harness:
    tenant: FakeTenant
    workflow: RemediationWorkflow
    handler: MessageHandler
    block: BlockedSender
    source: FakeAlertSource

    async def remediate(self, request_id: str = "req-1", **fields: Any) -> Case:
        for alert_id in fields.get("alert_ids", ()):  # Graph says when it was created
            self.source.stand_in_created[alert_id] = fields.get("evidence_at")
        request = RemediationRequest(**{"user": ROB, **fields}, request_id=request_id)
        return await self.workflow.remediate(request)

    async def checks_at(self, delay: timedelta) -> list[Case]:
        """Move the clock to ``delay`` after the (first) unblock and deliver the checks due."""
        self.tenant.clock.set(self.tenant.exchange.unblocks[0].at + delay)
        return [await self.workflow.verify(check)
                for check in self.tenant.scheduler.due(self.tenant.clock.now())]

    async def case(self, case_id: str) -> Case:
        case = await self.tenant.journal.get_case(case_id)
        assert case is not None
        return case

    def assert_no_password_kept(self) -> None:
        assert self.tenant.directory.passwords, "no password was set; nothing to check"
        stored = self.tenant.journal.dump()
        for password in self.tenant.directory.passwords:
            assert password not in stored


def make_harness(tenant: FakeTenant) -> Harness:
    tenant.directory.add_user(ROB, user_id=ROB_ID)
    block = tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30))
    source = FakeAlertSource(stand_in_sender=ROB)
    workflow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=DELAYS),
        alert_source=source)
    return Harness(tenant, workflow, MessageHandler(workflow), block, source)


@pytest.fixture
def h() -> Harness:
    return make_harness(FakeTenant())


def step_names(case: Case, status: StepStatus = StepStatus.DONE) -> list[str]:
    return [step.name for step in case.steps if step.status is status]


def delivery(body: str | bytes, count: int = 1, message_id: str = "msg-1") -> Delivery:
    raw = body.encode() if isinstance(body, str) else body
    return Delivery(body=raw, message_id=message_id, delivery_count=count,
                    max_delivery_count=MAX_DELIVERIES)


# -- the happy path -------------------------------------------------------------------------


async def test_steps_run_in_order_and_checks_are_scheduled_from_the_unblock_time() -> None:
    h = make_harness(FakeTenant(directory_latency=timedelta(minutes=2)))
    start = h.tenant.clock.now()

    case = await h.remediate(alert_ids=("alert-1",), source="alert")

    # The plan reads the block first; the unblock step reads it again just before removing.
    assert h.tenant.events == ["find_user", "blocked_entries", "reset_password",
                               "revoke_sessions", "blocked_entries", "unblock", "schedule",
                               "schedule", "schedule"]
    assert [(c.operation, c.target) for c in h.tenant.directory.calls] == [
        ("find_user", ROB), ("memberships", ROB_ID), ("tenant_domains", ""),
        ("reset_password", ROB_ID), ("revoke_sessions", ROB_ID)]
    [unblock] = h.tenant.exchange.unblocks
    assert unblock.sender == ROB
    assert case.done("unblock") is not None  # our explanation stays in the journal
    # Three slow directory calls (lookup, reset, revoke) ran first: the checks count from
    # the unblock, not from the request.
    assert unblock.at == start + timedelta(minutes=6)
    assert [(s.check, s.at) for s in h.tenant.scheduler.scheduled] == [
        (VerificationCheck(case.case_id, ROB, attempt), unblock.at + delay)
        for attempt, delay in enumerate(DELAYS)]
    assert case.state is CaseState.AWAITING_VERIFICATION
    assert case.unblocked_at == unblock.at
    assert case.block_created == h.block.created
    assert case.user_id == ROB_ID
    assert case.alert_ids == ("alert-1",)
    assert step_names(case) == ["lookup_user", "guardrails", "plan", "compromise_window",
                                "circuit_breaker", "reset_password", "revoke_sessions",
                                "mailbox_hygiene", "unblock", "schedule_verification"]
    assert h.tenant.exchange.listed(ROB) == []
    h.assert_no_password_kept()


async def test_a_clean_first_check_verifies_and_cancels_the_later_checks(h: Harness) -> None:
    case = await h.remediate()

    [verified] = await h.checks_at(DELAYS[0])

    assert verified.case_id == case.case_id
    assert verified.state is CaseState.VERIFIED
    assert verified.reason is None
    later = [s.sequence_number for s in h.tenant.scheduler.scheduled if s.check.attempt > 0]
    assert sorted(h.tenant.scheduler.cancelled) == later
    assert h.tenant.scheduler.pending() == []
    assert "verify_0" in step_names(verified)
    assert (await h.case(case.case_id)).state is CaseState.VERIFIED


async def test_no_password_reaches_the_journal_or_the_log(
        h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await h.remediate(reason="reported by the help desk")
    await h.checks_at(DELAYS[0])

    [password] = h.tenant.directory.passwords
    assert len(password) >= 16
    h.assert_no_password_kept()
    assert password not in caplog.text


# -- failures before the unblock ----------------------------------------------------------


@pytest.mark.parametrize(("operation", "step"), [("find_user", "lookup_user"),
                                               ("reset_password", "reset_password"),
                                               ("revoke_sessions", "revoke_sessions")])
async def test_permanent_failure_escalates_and_never_unblocks(
        h: Harness, operation: str, step: str) -> None:
    h.tenant.directory.fail(ROB, PermanentError(f"403 Forbidden on {operation}"), on=operation)

    case = await h.remediate()

    assert case.state is CaseState.ESCALATED
    assert case.reason == f"403 Forbidden on {operation}"
    assert h.tenant.exchange.unblocks == []
    assert h.tenant.scheduler.scheduled == []
    assert h.tenant.exchange.listed(ROB) == [h.block]
    assert step_names(case, StepStatus.FAILED) == [step]
    assert h.tenant.directory.count(operation) == 1


async def test_unknown_user_escalates_without_touching_the_tenant(h: Harness) -> None:
    case = await h.remediate(user="nobody@contoso.com")

    assert case.state is CaseState.ESCALATED
    assert case.reason is not None
    assert "nobody@contoso.com not found" in case.reason
    assert [c.operation for c in h.tenant.directory.calls] == ["find_user"]
    assert h.tenant.exchange.unblocks == []


async def test_an_escalated_request_redelivered_does_not_loop(h: Harness) -> None:
    h.tenant.directory.fail(ROB, PermanentError("403 Forbidden"), on="reset_password")
    first = await h.remediate()
    calls = len(h.tenant.directory.calls)

    again = await h.remediate()

    assert again.case_id == first.case_id
    assert again.state is CaseState.ESCALATED
    assert len(h.tenant.directory.calls) == calls
    assert h.tenant.exchange.unblocks == []


@pytest.mark.parametrize(("operation", "resets", "revokes"), [("reset_password", 2, 1),
                                                             ("revoke_sessions", 1, 2)])
async def test_transient_failure_propagates_and_a_redelivery_resumes(
        h: Harness, operation: str, resets: int, revokes: int) -> None:
    h.tenant.directory.fail(ROB, TransientError("429 Too Many Requests"), on=operation, times=1)

    with pytest.raises(TransientError, match="429"):
        await h.remediate()

    [open_case] = await h.tenant.journal.list_cases(ROB)
    assert open_case.state is CaseState.IN_PROGRESS
    assert not open_case.state.is_final
    assert h.tenant.exchange.unblocks == []
    assert operation in step_names(open_case, StepStatus.FAILED)

    case = await h.remediate()  # the same message, delivered again

    assert case.case_id == open_case.case_id
    assert case.state is CaseState.AWAITING_VERIFICATION
    assert h.tenant.directory.count("find_user") == 1
    assert h.tenant.directory.count("reset_password") == resets
    assert h.tenant.directory.count("revoke_sessions") == revokes
    assert len(h.tenant.exchange.unblocks) == 1
    assert len(h.tenant.scheduler.scheduled) == len(DELAYS)
    h.assert_no_password_kept()


async def test_a_failed_unblock_is_retried_without_a_second_reset(h: Harness) -> None:
    h.tenant.exchange.fail(ROB, TransientError("Exchange timed out"), on="unblock", times=1)

    with pytest.raises(TransientError):
        await h.remediate()
    case = await h.remediate()

    assert case.state is CaseState.AWAITING_VERIFICATION
    assert h.tenant.directory.count("reset_password") == 1
    assert len(h.tenant.exchange.unblocks) == 2  # the failed attempt and the retry
    assert h.tenant.exchange.listed(ROB) == []


async def test_a_block_renewed_while_the_unblock_was_interrupted_escalates(h: Harness) -> None:
    h.tenant.exchange.fail(ROB, TransientError("Exchange timed out"), on="unblock", times=1)
    with pytest.raises(TransientError):
        await h.remediate()
    # The block went away and the account was blocked again before the redelivery.
    h.tenant.exchange.remove(ROB)
    h.tenant.clock.advance(minutes=10)
    h.tenant.exchange.block(ROB)

    case = await h.remediate()

    assert case.state is CaseState.ESCALATED
    assert case.reason is not None
    assert "blocked again" in case.reason
    assert len(h.tenant.exchange.unblocks) == 1  # only the interrupted first attempt
    assert h.tenant.scheduler.scheduled == []


# -- the Restricted users list after the unblock ------------------------------------------


async def test_a_sender_not_listed_is_not_unblocked_but_still_verified(h: Harness) -> None:
    h.tenant.exchange.remove(ROB)

    case = await h.remediate()

    assert h.tenant.exchange.unblocks == []
    assert case.state is CaseState.AWAITING_VERIFICATION
    assert case.block_created is None
    assert h.tenant.directory.count("reset_password") == 1
    h.tenant.clock.advance(DELAYS[0])
    [verified] = [await h.workflow.verify(check)
                  for check in h.tenant.scheduler.due(h.tenant.clock.now())]
    assert verified.state is CaseState.VERIFIED


async def test_a_lingering_block_waits_for_the_next_check(h: Harness) -> None:
    h.tenant.exchange.linger(ROB, timedelta(hours=2))
    case = await h.remediate()

    [first] = await h.checks_at(DELAYS[0])
    assert first.state is CaseState.AWAITING_VERIFICATION
    assert h.tenant.scheduler.cancelled == []

    [second] = await h.checks_at(DELAYS[1])
    assert second.state is CaseState.VERIFIED
    last = [s.sequence_number for s in h.tenant.scheduler.scheduled if s.check.attempt == 2]
    assert h.tenant.scheduler.cancelled == last
    assert len(h.tenant.exchange.unblocks) == 1
    assert step_names(await h.case(case.case_id))[-2:] == ["verify_0", "verify_1"]


async def test_still_listed_after_the_last_delay_escalates(h: Harness) -> None:
    h.tenant.exchange.linger(ROB, timedelta(hours=48))
    await h.remediate()

    states = [case.state for delay in DELAYS for case in await h.checks_at(delay)]

    assert states == [CaseState.AWAITING_VERIFICATION, CaseState.AWAITING_VERIFICATION,
                      CaseState.ESCALATED]
    [case] = await h.tenant.journal.list_cases(ROB)
    assert case.reason == ("still on the Restricted users list as rob@contoso.com 24h after "
                           "the unblock")
    assert len(h.tenant.exchange.unblocks) == 1


async def test_a_re_block_escalates_at_once_and_is_never_unblocked(h: Harness) -> None:
    case = await h.remediate()
    h.tenant.clock.advance(minutes=20)
    h.tenant.exchange.block(ROB)  # the attacker is still sending

    [checked] = await h.checks_at(DELAYS[0])

    assert checked.state is CaseState.ESCALATED
    assert checked.reason is not None
    assert "re-blocked" in checked.reason
    later = [s.sequence_number for s in h.tenant.scheduler.scheduled if s.check.attempt > 0]
    assert sorted(h.tenant.scheduler.cancelled) == later
    # A new alert while a human owns the block: new evidence, never merged into the finished
    # case, and nothing is done for it either (no second unblock).
    handed = await h.remediate("req-2", source="alert", alert_ids=("alert-9",),
                               evidence_at=h.tenant.clock.now())
    assert handed.case_id != case.case_id
    assert handed.state is CaseState.ESCALATED
    assert handed.reason is not None
    assert f"after case {case.case_id} was escalated" in handed.reason
    assert "a human owns it: nothing was changed" in handed.reason
    assert (await h.case(case.case_id)).alert_ids == ()
    assert len(h.tenant.exchange.unblocks) == 1
    assert h.tenant.directory.count("reset_password") == 1
    assert len(h.tenant.exchange.listed(ROB)) == 1
    # One created before the case ended is about what it was handed: it joins it.
    merged = await h.remediate("req-3", source="alert", alert_ids=("alert-8",),
                               evidence_at=h.block.created)
    assert merged.case_id == case.case_id
    assert merged.alert_ids == ("alert-8",)


async def test_an_escalated_re_block_is_never_lifted_even_days_later(h: Harness) -> None:
    case = await h.remediate()
    h.tenant.clock.advance(minutes=20)
    h.tenant.exchange.block(ROB)
    await h.checks_at(DELAYS[0])
    h.tenant.clock.advance(days=5)  # far past the merge window; the block a human owns stays

    merged = await h.remediate("req-sweep", source="restricted-list")

    assert merged.case_id == case.case_id
    assert len(h.tenant.exchange.unblocks) == 1
    assert h.tenant.directory.count("reset_password") == 1


async def test_an_escalated_case_yields_to_a_block_placed_after_it(h: Harness) -> None:
    h.tenant.directory.fail(ROB_ID, PermanentError("403 on reset"), on="reset_password",
                            times=1)
    escalated = await h.remediate()
    assert escalated.state is CaseState.ESCALATED
    h.tenant.clock.advance(days=2)
    h.tenant.exchange.remove(ROB)  # a human handled it...
    h.tenant.exchange.block(ROB)  # ...and later the account was blocked again

    fresh = await h.remediate("req-2")

    assert fresh.case_id != escalated.case_id
    assert fresh.state is CaseState.AWAITING_VERIFICATION
    assert len(h.tenant.exchange.unblocks) == 1


async def test_a_duplicate_check_delivery_is_ignored(h: Harness) -> None:
    h.tenant.exchange.linger(ROB, timedelta(hours=2))
    case = await h.remediate()
    await h.checks_at(DELAYS[0])
    lookups = len(h.tenant.exchange.lookups)

    again = await h.workflow.verify(VerificationCheck(case.case_id, ROB, 0))

    assert again.state is CaseState.AWAITING_VERIFICATION
    assert len(h.tenant.exchange.lookups) == lookups


# -- duplicates, merging and new episodes ---------------------------------------------------


async def test_a_duplicate_request_while_open_is_merged(h: Harness) -> None:
    first = await h.remediate("req-1", source="alert", alert_ids=("alert-1",))

    second = await h.remediate("req-2", source="alert", alert_ids=("alert-2", "alert-1"),
                               evidence_at=h.block.created)  # about the same block

    assert second.case_id == first.case_id
    assert second.state is CaseState.AWAITING_VERIFICATION
    assert second.alert_ids == ("alert-1", "alert-2")
    assert second.request_ids == ("req-1", "req-2")
    assert h.tenant.directory.count("reset_password") == 1
    assert len(h.tenant.exchange.unblocks) == 1
    assert len(await h.tenant.journal.list_cases(ROB)) == 1
    assert "merged" in step_names(second, StepStatus.INFO)


async def test_a_request_while_one_is_retrying_is_merged(h: Harness) -> None:
    h.tenant.directory.fail(ROB, TransientError("503"), on="revoke_sessions", times=1)
    with pytest.raises(TransientError):
        await h.remediate("req-1")

    merged = await h.remediate("req-2")
    resumed = await h.remediate("req-1")

    assert merged.case_id == resumed.case_id
    assert resumed.state is CaseState.AWAITING_VERIFICATION
    assert h.tenant.directory.count("reset_password") == 1
    assert len(h.tenant.exchange.unblocks) == 1


async def test_after_verification_a_request_merges_unless_there_is_a_newer_block(
        h: Harness) -> None:
    first = await h.remediate("req-1")
    await h.checks_at(DELAYS[0])

    h.tenant.clock.advance(hours=2)
    merged = await h.remediate("req-2")
    assert merged.case_id == first.case_id
    assert merged.state is CaseState.VERIFIED
    assert h.tenant.directory.count("reset_password") == 1

    h.tenant.clock.advance(hours=1)
    h.tenant.exchange.block(ROB)  # a new episode
    second = await h.remediate("req-3")

    assert second.case_id != first.case_id
    assert second.state is CaseState.AWAITING_VERIFICATION
    assert second.block_created == h.tenant.clock.now()
    assert h.tenant.directory.count("reset_password") == 2
    assert len(h.tenant.exchange.unblocks) == 2
    assert (await h.case(first.case_id)).state is CaseState.VERIFIED


async def test_after_the_merge_window_a_request_with_nothing_new_resets_nobody(
        h: Harness) -> None:
    """Only what Microsoft confirms (a new alert, a newer block) or a manual --force opens
    the person's next episode: a plain request, however late, merges (issue 14, point 3)."""
    first = await h.remediate("req-1")
    [verified] = await h.checks_at(DELAYS[0])
    h.tenant.clock.set(verified.updated_at + DELAYS[-1] + timedelta(days=30))

    second = await h.remediate("req-2")

    assert second.case_id == first.case_id
    assert h.tenant.directory.count("reset_password") == 1


async def test_after_a_verified_case_any_listing_is_a_newer_block(h: Harness) -> None:
    """Verification saw the account off the list: listed again, even with a time Exchange
    does not give, is the next episode."""
    first = await h.remediate("req-1")
    [verified] = await h.checks_at(DELAYS[0])
    h.tenant.clock.set(verified.updated_at + DELAYS[-1] + timedelta(days=30))
    h.tenant.exchange.block(ROB)

    second = await h.remediate("req-2")

    assert second.case_id != first.case_id
    assert h.tenant.directory.count("reset_password") == 2
    [opened] = [step for step in second.steps if step.name == "new_episode"]
    assert opened.data == {"why": "newer_block", "after_case": first.case_id}


async def test_force_opens_a_new_case_while_one_is_open(h: Harness) -> None:
    first = await h.remediate("req-1")
    h.tenant.exchange.block(ROB)

    forced = await h.remediate("req-2", force=True, requested_by="soc-analyst")

    assert forced.case_id != first.case_id
    assert forced.force is True
    [opened] = [step for step in forced.steps if step.name == "new_episode"]
    assert opened.data["why"] == "forced" and "soc-analyst" in opened.detail
    assert h.tenant.directory.count("reset_password") == 2
    assert len(h.tenant.exchange.unblocks) == 2
    latest = await h.tenant.journal.latest_case(ROB)
    assert latest is not None
    assert latest.case_id == forced.case_id


async def test_a_redelivery_after_completion_does_nothing(h: Harness) -> None:
    await h.remediate("req-1")
    [verified] = await h.checks_at(DELAYS[0])
    before = (len(h.tenant.events), h.tenant.journal.dump())

    again = await h.remediate("req-1")

    assert again.case_id == verified.case_id
    assert again.state is CaseState.VERIFIED
    assert (len(h.tenant.events), h.tenant.journal.dump()) == before


# -- the message handler ----------------------------------------------------------------------


@pytest.mark.parametrize(("body", "problem"), [
    (b"reset rob please", "not valid JSON"),
    (b'{"user": "rob"}', "'user' must be an email address"),
    (b'{"reason": "spam"}', "'user' is required"),
    (b'{"user": "rob@contoso.com", "password": "x"}', "unknown field"),
    (b'{"user": "rob@contoso.com", "force": "yes"}', "'force' must be true or false"),
    (b'["rob@contoso.com"]', "must be a JSON object"),
])
async def test_an_invalid_message_is_rejected_without_a_tenant_call(
        h: Harness, body: bytes, problem: str) -> None:
    case = await h.handler.on_request(delivery(body))

    assert case.state is CaseState.REJECTED
    assert case.reason is not None
    assert problem in case.reason
    assert h.tenant.events == []
    [stored] = await h.tenant.journal.list_cases()
    assert stored.case_id == case.case_id
    assert stored.reason == case.reason
    assert await h.tenant.journal.latest_case(ROB) is None


async def test_a_hand_written_message_uses_the_message_id_and_resumes(h: Harness) -> None:
    h.tenant.directory.fail(ROB, TransientError("503"), on="revoke_sessions", times=1)
    body = '{"user": "  Rob@Contoso.COM "}'
    with pytest.raises(TransientError):
        await h.handler.on_request(delivery(body, count=1))

    case = await h.handler.on_request(delivery(body, count=2))

    assert case.user == ROB
    assert case.request_ids == ("msg-1",)
    assert case.state is CaseState.AWAITING_VERIFICATION
    assert h.tenant.directory.count("reset_password") == 1
    assert len(await h.tenant.journal.list_cases()) == 1


async def test_a_transient_failure_on_the_last_delivery_escalates_and_still_raises(
        h: Harness) -> None:
    h.tenant.directory.fail(ROB, TransientError("Graph returned 503"), on="reset_password")
    body = RemediationRequest(user=ROB, request_id="req-1").to_json()

    for count in range(1, MAX_DELIVERIES):
        with pytest.raises(TransientError):
            await h.handler.on_request(delivery(body, count=count))
        [case] = await h.tenant.journal.list_cases(ROB)
        assert case.state is CaseState.IN_PROGRESS

    with pytest.raises(TransientError):
        await h.handler.on_request(delivery(body, count=MAX_DELIVERIES))

    [case] = await h.tenant.journal.list_cases(ROB)
    assert case.state is CaseState.ESCALATED
    assert case.reason == (f"remediation gave up after {MAX_DELIVERIES} deliveries: "
                           "Graph returned 503")
    assert h.tenant.exchange.unblocks == []


async def test_an_unexpected_error_on_the_last_delivery_escalates_without_its_text(
        h: Harness) -> None:
    class Boom(RuntimeError):
        pass

    async def broken(user_id: str) -> None:
        raise Boom("internal detail that must not reach the journal")

    h.tenant.directory.revoke_sessions = broken  # type: ignore[method-assign]
    body = RemediationRequest(user=ROB, request_id="req-1").to_json()

    with pytest.raises(Boom):
        await h.handler.on_request(delivery(body, count=MAX_DELIVERIES))

    [case] = await h.tenant.journal.list_cases(ROB)
    assert case.state is CaseState.ESCALATED
    assert case.reason == f"remediation gave up after {MAX_DELIVERIES} deliveries: unexpected Boom"
    assert "internal detail" not in h.tenant.journal.dump()
    assert h.tenant.exchange.unblocks == []


async def test_a_verification_failing_on_its_last_delivery_escalates(h: Harness) -> None:
    case = await h.remediate()
    h.tenant.exchange.fail(ROB, TransientError("Exchange throttled"), on="blocked_entries")
    body = VerificationCheck(case.case_id, ROB, 0).to_json()
    h.tenant.clock.advance(hours=1)  # the check is due (an early one is refused)

    with pytest.raises(TransientError):
        await h.handler.on_verification(delivery(body, count=1))
    assert (await h.case(case.case_id)).state is CaseState.AWAITING_VERIFICATION

    with pytest.raises(TransientError):
        await h.handler.on_verification(delivery(body, count=MAX_DELIVERIES))
    escalated = await h.case(case.case_id)
    assert escalated.state is CaseState.ESCALATED
    assert escalated.reason == (f"verification gave up after {MAX_DELIVERIES} deliveries: "
                                "Exchange throttled")


async def test_an_invalid_verification_message_is_rejected(h: Harness) -> None:
    case = await h.handler.on_verification(delivery(b'{"kind": "verify", "user": "x"}'))

    assert case.state is CaseState.REJECTED
    assert case.reason == "verification message needs a 'case_id'"
    assert h.tenant.events == []


async def test_a_deeply_nested_verification_message_is_rejected(h: Harness) -> None:
    body = b'{"kind": "verify", "case_id": ' + b"[" * 5000 + b"]" * 5000 + b"}"

    case = await h.handler.on_verification(delivery(body))

    assert case.state is CaseState.REJECTED
    assert case.reason is not None
    assert "not valid JSON" in case.reason


async def test_an_approval_for_an_unknown_case_is_rejected_with_its_reason(h: Harness) -> None:
    body = Approval("20990101-deadbeef", ROB, "lead").to_json()

    case = await h.handler.on_request(delivery(body))

    assert case.state is CaseState.REJECTED
    assert case.reason == "no case '20990101-deadbeef' in the journal"
    assert h.tenant.directory.calls == []


async def test_an_approval_of_a_case_not_waiting_changes_nothing(h: Harness) -> None:
    case = await h.remediate()
    body = Approval(case.case_id, ROB, "lead").to_json()

    again = await h.handler.on_request(delivery(body, message_id="approval-1"))

    assert again.state is CaseState.AWAITING_VERIFICATION
    assert h.tenant.directory.count("reset_password") == 1
