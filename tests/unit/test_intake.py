"""Intake (alert poll, Restricted users sweep, pushed hints) and the push/stream doors."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from remediation.domain.alerts import DEFAULT_ALERT_TITLES, alert_request_id
from remediation.domain.cases import Case, CaseState
from remediation.domain.errors import PermanentError, TransientError
from remediation.domain.requests import RemediationRequest, parse_request
from remediation.domain.sources import Source, SourceHealth
from remediation.domain.streaming import MAX_BATCH_ALERTS
from remediation.service.intake import Intake, IntakeSettings, block_request_id
from remediation.service.push import MAX_PUSH_BYTES, handle_alert_push, handle_stream_events
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings
from tests.fakes import (
    FakeAlertSource,
    FakeRequestSender,
    FakeTenant,
    alert_json,
    mailbox_evidence,
    user_evidence,
)

ROB = "rob@contoso.com"
ROB_ID = "3f2a1b4c-0000-4000-8000-00000000abcd"
ROB_UPN = "rob.smith@contoso.onmicrosoft.com"
LEE = "lee.gu@contoso.com"
MEGAN = "megan.bowen@contoso.com"
DELAYS = (timedelta(hours=1), timedelta(hours=4), timedelta(hours=24))
LOOKBACK = timedelta(hours=2)
RESTRICTED, SUSPICIOUS, LIMIT = DEFAULT_ALERT_TITLES
MALICIOUS_URL = "Email messages containing malicious URL removed after delivery"


@dataclass
class Harness:
    tenant: FakeTenant
    workflow: RemediationWorkflow
    source: FakeAlertSource = field(default_factory=FakeAlertSource)
    sender: FakeRequestSender = field(default_factory=FakeRequestSender)
    sweep: bool = True

    @property
    def intake(self) -> Intake:
        return Intake(alerts=self.source, exchange=self.tenant.exchange,
                      journal=self.tenant.journal, requests=self.sender,
                      workflow=self.workflow, clock=self.tenant.clock,
                      settings=IntakeSettings(titles=DEFAULT_ALERT_TITLES, lookback=LOOKBACK,
                                              sweep=self.sweep))

    def alert(self, alert_id: str, sender: str | None = ROB, **fields: Any) -> dict[str, Any]:
        evidence = [mailbox_evidence(sender)] if sender else [user_evidence("", None)]
        fields.setdefault("updated", self.tenant.clock.now() - timedelta(minutes=5))
        return self.source.add(alert_json(alert_id, evidence, **fields))

    async def deliver(self) -> list[Case]:
        """Run every request sent so far through the workflow, as the worker would."""
        sent, self.sender.sent = self.sender.sent, []
        return [await self.workflow.remediate(parse_request(request.to_json()))
                for request in sent]

    async def cases(self) -> list[Case]:
        return await self.tenant.journal.list_cases()


def make_harness(*, sweep: bool = True) -> Harness:
    tenant = FakeTenant()
    tenant.directory.add_user(ROB, user_id=ROB_ID)
    tenant.directory.add_user(LEE)
    tenant.directory.add_user(MEGAN)
    source = FakeAlertSource()  # what intake polls is what the workflow reads back
    workflow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=DELAYS), alert_source=source)
    return Harness(tenant, workflow, sweep=sweep, source=source)


@pytest.fixture
def h() -> Harness:
    return make_harness()


def sent(h: Harness) -> list[tuple[str, str, str | None]]:
    return [(r.source, r.user, r.request_id) for r in h.sender.sent]


# -- the alert poll -------------------------------------------------------------------------


async def test_a_poll_queues_one_request_per_matching_alert(h: Harness) -> None:
    h.alert("fa-1", ROB, title=RESTRICTED)
    h.alert("fa-2", LEE, title=SUSPICIOUS.upper())
    h.alert("fa-3", MEGAN, title=f" {LIMIT.lower()} ")

    report = await h.intake.poll()

    assert sent(h) == [("alert", ROB, alert_request_id("fa-1")),
                       ("alert", LEE, alert_request_id("fa-2")),
                       ("alert", MEGAN, alert_request_id("fa-3"))]
    assert [r.alert_ids for r in h.sender.sent] == [("fa-1",), ("fa-2",), ("fa-3",)]
    assert (report.alerts_seen, report.matched, report.already_known) == (3, 3, 0)
    assert report.enqueued == [alert_request_id(a) for a in ("fa-1", "fa-2", "fa-3")]
    assert report.rejected == report.errors == []
    assert h.source.recent_calls == 1


async def test_unrelated_alerts_queue_nothing(h: Harness) -> None:
    h.alert("fa-url", LEE, title=MALICIOUS_URL)
    h.alert("ed-endpoint", MEGAN, service_source="microsoftDefenderForEndpoint")

    report = await h.intake.poll()

    assert h.sender.sent == []
    assert (report.alerts_seen, report.matched) == (2, 0)
    assert report.enqueued == report.rejected == report.errors == []
    assert await h.cases() == []


async def test_an_alert_somebody_already_resolved_queues_nothing(h: Harness) -> None:
    h.alert("fa-resolved", ROB, status="resolved")
    h.alert("fa-resolved-nobody", None, status="resolved")

    report = await h.intake.poll()

    assert h.sender.sent == []
    assert report.enqueued == report.rejected == []
    assert await h.cases() == []  # not even a rejected case for the one without a sender


async def test_an_alert_we_resolved_ourselves_counts_as_known(h: Harness) -> None:
    raw = h.alert("fa-1", ROB)
    h.tenant.exchange.block(ROB)
    await h.intake.poll()
    await h.deliver()
    raw["status"] = "resolved"  # what the "verified" alert update does

    report = await h.intake.poll()

    assert h.sender.sent == []
    assert report.already_known == 1


async def test_an_alert_without_an_id_is_reported_and_the_others_still_queue(
        h: Harness) -> None:
    h.alert("fa-1", ROB)
    broken = h.alert("placeholder", LEE)
    broken["id"] = None

    report = await h.intake.poll()

    assert sent(h) == [("alert", ROB, alert_request_id("fa-1"))]
    assert len(report.errors) == 1
    assert "alert has no usable id" in report.errors[0]


async def test_an_alert_already_in_the_journal_is_not_sent_again(h: Harness) -> None:
    h.alert("fa-1", ROB)
    await h.intake.poll()
    [case] = await h.deliver()
    assert case.request_ids == (alert_request_id("fa-1"),)

    report = await h.intake.poll()

    assert h.sender.sent == []
    assert (report.matched, report.already_known, report.enqueued) == (1, 1, [])


async def test_an_alert_merged_into_another_case_counts_as_known(h: Harness) -> None:
    h.alert("fa-1", ROB, title=RESTRICTED)
    await h.intake.poll()
    await h.deliver()
    h.alert("fa-2", ROB, title=SUSPICIOUS)
    await h.intake.poll()
    [merged] = await h.deliver()
    assert merged.alert_ids == ("fa-1", "fa-2")

    report = await h.intake.poll()

    assert h.sender.sent == []
    assert report.already_known == 2
    assert h.tenant.directory.count("reset_password") == 1


async def test_an_alert_with_no_usable_sender_is_journaled_once_as_rejected(
        h: Harness) -> None:
    h.alert("fa-nobody", None, title=SUSPICIOUS)

    first = await h.intake.poll()
    second = await h.intake.poll()

    assert h.sender.sent == []
    assert first.rejected == ["fa-nobody"]
    assert second.rejected == []
    assert second.already_known == 1
    [case] = await h.cases()
    assert case.state is CaseState.REJECTED
    assert case.source == "alert"
    assert case.alert_ids == ("fa-nobody",)
    assert case.request_ids == (alert_request_id("fa-nobody"),)
    assert case.reason is not None
    assert "names no usable sender address" in case.reason
    assert SUSPICIOUS in case.reason
    assert h.tenant.events == []  # nobody's password was touched


# -- evidence naming several accounts --------------------------------------------------------

ODD = "o'brien+`x`@contoso.com"  # quotes and backticks are valid in an address


async def test_an_alert_naming_several_accounts_is_escalated_and_touches_nobody(
        h: Harness) -> None:
    h.tenant.directory.add_user(ODD)
    h.source.add(alert_json("fa-two", [mailbox_evidence(LEE), mailbox_evidence(ODD.upper()),
                                       {**user_evidence(None, ROB_ID), "roles": []}],
                            title=f" {SUSPICIOUS}\n", updated=h.tenant.clock.now()))

    first = await h.intake.poll()
    second = await h.intake.poll()

    assert h.sender.sent == []
    assert (first.escalated, first.enqueued, first.rejected) == (["fa-two"], [], [])
    assert (second.escalated, second.already_known) == ([], 1)
    [case] = await h.cases()
    assert case.state is CaseState.ESCALATED
    assert (case.source, case.alert_ids, case.request_ids) == (
        "alert", ("fa-two",), (alert_request_id("fa-two"),))
    assert case.user == "nobody@ambiguous-evidence.invalid"
    assert case.user_id is None
    assert case.reason == (
        f"Defender alert fa-two ({SUSPICIOUS}) names 3 different accounts and marks none of "
        f"them alone as the compromised one: {LEE!r}, {ODD.lower()!r}, {ROB_ID!r}; nobody "
        "was touched. Choose the account and secure it by hand (remediation enqueue --user "
        "ADDRESS)")
    assert '"o\'brien+`x`@contoso.com"' in case.reason  # each candidate quoted, escaped
    [received] = [step for step in case.steps if step.name == "received"]
    assert received.data["candidates"] == [LEE, ODD.lower(), ROB_ID]
    assert h.tenant.events == []  # nobody's password, session or block was touched
    assert h.tenant.directory.calls == []
    assert "1 escalated" in first.summary()


async def test_the_one_account_marked_compromised_is_the_sender(h: Harness) -> None:
    h.source.add(alert_json("fa-marked", [mailbox_evidence(LEE), user_evidence(ROB),
                                          {**mailbox_evidence(MEGAN), "roles": ["attacked"]}],
                            updated=h.tenant.clock.now()))

    report = await h.intake.poll()

    assert sent(h) == [("alert", ROB, alert_request_id("fa-marked"))]
    assert report.escalated == []


async def test_one_person_named_several_ways_is_one_sender(h: Harness) -> None:
    h.source.add(alert_json("fa-rob", [
        mailbox_evidence(ROB, upn=ROB_UPN), {**user_evidence(ROB_UPN, ROB_ID), "roles": []},
        {**user_evidence(None, ROB_ID), "roles": []}, mailbox_evidence(ROB.upper())],
        updated=h.tenant.clock.now()))

    await h.intake.poll()

    assert sent(h) == [("alert", ROB, alert_request_id("fa-rob"))]


async def test_an_escalated_ambiguous_alert_leaves_each_candidate_to_its_own_requests(
        h: Harness) -> None:
    h.source.add(alert_json("fa-two", [mailbox_evidence(LEE), mailbox_evidence(ROB)],
                            updated=h.tenant.clock.now()))
    await h.intake.poll()
    h.tenant.exchange.block(ROB)

    report = await h.intake.poll()  # the sweep still finds Rob's block
    [case] = await h.deliver()

    assert report.swept == [ROB]
    assert case.user == ROB and case.state is CaseState.AWAITING_VERIFICATION
    assert h.tenant.directory.count("reset_password") == 1


async def test_the_poll_reads_back_over_the_look_back_window(h: Harness) -> None:
    now = h.tenant.clock.now()
    h.alert("fa-recent", ROB, updated=now - timedelta(minutes=30))
    h.alert("fa-old", LEE, updated=now - LOOKBACK - timedelta(minutes=1))

    await h.intake.poll()
    h.tenant.clock.advance(minutes=30)
    await h.intake.poll()

    assert h.source.since == [now - LOOKBACK, now + timedelta(minutes=30) - LOOKBACK]
    # fa-old is outside the window. fa-recent, not yet in the journal, is sent by both polls
    # under the same id, which the queue's duplicate detection drops.
    assert [r.request_id for r in h.sender.sent] == [alert_request_id("fa-recent")] * 2


async def test_a_failing_alert_source_is_reported_and_the_sweep_still_runs(
        h: Harness) -> None:
    h.source.fail(TransientError("Graph returned 503"), on="recent_alerts")
    h.tenant.exchange.block(LEE)

    report = await h.intake.poll()

    assert report.errors == ["alerts: Graph returned 503"]
    assert sent(h) == [("restricted-list", LEE, block_request_id(h.tenant.exchange.listed(LEE)[0]))]
    assert report.swept == [LEE]
    assert "errors: alerts: Graph returned 503" in report.summary()


async def test_a_failure_on_a_late_page_keeps_what_the_earlier_pages_found(
        h: Harness) -> None:
    h.source.page_size = 2
    for index in range(6):  # pages: [fa-0 fa-1] [fa-2 fa-3] [fa-4 fa-5]
        h.alert(f"fa-{index}", ROB if index == 1 else LEE if index == 5 else MEGAN,
                title=RESTRICTED if index in (1, 5) else MALICIOUS_URL)
    h.source.fail(TransientError("Graph: list alerts failed with 503"), on="recent_alerts",
                  times=1, after_pages=2)

    report = await h.intake.poll()

    assert sent(h) == [("alert", ROB, alert_request_id("fa-1"))]
    assert (report.pages, report.alerts_seen, report.matched) == (2, 4, 1)
    assert report.errors == [
        "alerts: Graph: list alerts failed with 503 (after 2 page(s): what they held was "
        "handled; the next poll's overlapping window reads the rest)"]

    again = await h.intake.poll()  # the look-back window overlaps: the rest is read now

    assert again.errors == []
    assert (again.pages, again.alerts_seen) == (3, 6)
    assert [r.request_id for r in h.sender.sent[1:]] == [alert_request_id("fa-1"),
                                                          alert_request_id("fa-5")]


async def test_an_unexpected_failure_of_the_alert_source_never_ends_the_poll(
        h: Harness) -> None:
    h.alert("fa-1", ROB)

    async def broken(since: Any) -> Any:
        yield [alert_json("fa-2", [mailbox_evidence(LEE)])]
        raise RuntimeError("a bug")

    h.source.recent_alerts = broken  # type: ignore[method-assign]
    h.tenant.exchange.block(MEGAN)

    report = await h.intake.poll()

    assert [r.user for r in h.sender.sent] == [LEE, MEGAN]
    assert report.errors == ["alerts: unexpected RuntimeError (after 1 page(s): what they held "
                             "was handled; the next poll's overlapping window reads the rest)"]


async def test_a_failing_sweep_is_reported_after_the_alerts_are_queued(h: Harness) -> None:
    h.alert("fa-1", ROB)

    async def broken() -> list[Any]:
        raise TransientError("Exchange timed out")

    h.tenant.exchange.all_blocked = broken  # type: ignore[method-assign]

    report = await h.intake.poll()

    assert sent(h) == [("alert", ROB, alert_request_id("fa-1"))]
    assert report.errors == ["Restricted users list: Exchange timed out"]



# -- a source that fails is seen (issue 13) -------------------------------------------------


async def health(h: Harness) -> dict[str, SourceHealth]:
    return {record.source: record for record in await h.tenant.journal.source_health()}


async def test_each_sources_outcome_is_journaled_and_a_failed_one_is_named(
        h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h.source.fail(PermanentError("Graph: list alerts failed with 403 Forbidden"),
                  on="recent_alerts", times=1)
    h.alert("fa-1", "not an address")  # one bad alert is not a failed source

    with caplog.at_level(logging.WARNING, logger="remediation"):
        report = await h.intake.poll()

    assert report.failed_sources == {Source.ALERTS: "Graph: list alerts failed with 403 "
                                                    "Forbidden"}
    [warning, _summary] = [r.getMessage() for r in caplog.records]
    assert warning == ("poll: source Defender alerts (Graph alerts_v2) failed: Graph: list "
                       "alerts failed with 403 Forbidden")
    polled_at = h.tenant.clock.now()
    assert await health(h) == {
        "alerts": SourceHealth("alerts", last_failure=polled_at,
                               last_failure_reason="Graph: list alerts failed with 403 Forbidden"),
        "restricted_users": SourceHealth("restricted_users", last_success=polled_at)}

    h.tenant.clock.advance(minutes=2)
    again = await h.intake.poll()

    assert again.rejected == ["fa-1"] and again.failed_sources == {}  # one item, not a source
    assert (await health(h))["alerts"].last_success == h.tenant.clock.now()
    assert (await health(h))["alerts"].ok


async def test_an_unexpected_failure_of_the_sweep_never_ends_the_poll(h: Harness) -> None:
    async def broken() -> list[Any]:
        raise RuntimeError("a bug")

    h.tenant.exchange.all_blocked = broken  # type: ignore[method-assign]

    report = await h.intake.poll()

    assert report.failed_sources == {Source.RESTRICTED_USERS: "unexpected RuntimeError"}
    assert not (await health(h))["restricted_users"].ok


async def test_a_sweep_turned_off_is_not_recorded() -> None:
    h = make_harness(sweep=False)

    await h.intake.poll()

    assert list(await health(h)) == ["alerts"]


async def test_a_journal_that_cannot_record_an_outcome_fails_nothing_else(h: Harness) -> None:
    async def unavailable(source: str, at: Any, failure: str | None = None) -> None:
        raise TransientError("Table Storage answered 503")

    h.tenant.journal.record_source = unavailable  # type: ignore[method-assign]
    h.tenant.exchange.block(LEE)

    report = await h.intake.poll()

    assert report.swept == [LEE] and report.failed_sources == {}
    assert report.errors == [
        "journal: could not record the outcome of source Defender alerts (Graph alerts_v2): "
        "Table Storage answered 503",
        "journal: could not record the outcome of source Restricted users sweep "
        "(Get-BlockedSenderAddress): Table Storage answered 503"]


# -- the Restricted users sweep -----------------------------------------------------------


async def test_the_sweep_queues_a_blocked_sender_nobody_reported(h: Harness) -> None:
    entry = h.tenant.exchange.block(LEE, created=h.tenant.clock.now() - timedelta(hours=3),
                                    reason="Outbound spam")

    report = await h.intake.poll()

    [request] = h.sender.sent
    assert (request.source, request.user) == ("restricted-list", LEE)
    assert request.request_id == block_request_id(entry)
    assert request.reason == "on the Restricted users list since 2024-05-01 06:00 UTC " \
                             "(Outbound spam)"
    assert request.alert_ids == ()
    assert report.swept == [LEE]


async def test_the_same_block_is_swept_once_and_a_new_block_again(h: Harness) -> None:
    h.tenant.exchange.block(LEE)
    h.tenant.exchange.linger(LEE, timedelta(minutes=30))
    await h.intake.poll()
    [first] = await h.deliver()
    assert first.state is CaseState.AWAITING_VERIFICATION

    assert h.tenant.exchange.listed(LEE)  # the lifted block still shows for a while
    await h.intake.poll()
    assert h.sender.sent == []

    # Verified, then blocked again later: a new episode, a new request.
    h.tenant.clock.advance(DELAYS[0])
    [verified] = [await h.workflow.verify(check)
                  for check in h.tenant.scheduler.due(h.tenant.clock.now())]
    assert verified.state is CaseState.VERIFIED
    h.tenant.clock.advance(hours=1)
    new_block = h.tenant.exchange.block(LEE)

    report = await h.intake.poll()

    assert sent(h) == [("restricted-list", LEE, block_request_id(new_block))]
    assert report.swept == [LEE]


async def test_the_sweep_skips_a_sender_an_alert_of_the_same_poll_asked_for(
        h: Harness) -> None:
    h.alert("fa-1", ROB)
    h.tenant.exchange.block(ROB)
    h.tenant.exchange.block(LEE)

    report = await h.intake.poll()

    assert [(r.source, r.user) for r in h.sender.sent] == [("alert", ROB),
                                                           ("restricted-list", LEE)]
    assert report.swept == [LEE]
    assert report.senders == {ROB, LEE}


async def test_the_sweep_skips_a_sender_whose_case_is_open(h: Harness) -> None:
    h.tenant.exchange.block(ROB, created=h.tenant.clock.now() - timedelta(hours=1))
    h.tenant.directory.fail(ROB, TransientError("Graph returned 503"), on="reset_password")
    with pytest.raises(TransientError):
        await h.workflow.remediate(RemediationRequest(user=ROB, request_id="manual-1"))
    [case] = await h.cases()
    assert case.state is CaseState.IN_PROGRESS

    report = await h.intake.poll()

    assert h.sender.sent == []
    assert report.swept == []


async def test_the_sweep_skips_the_lingering_block_of_a_verified_case(h: Harness) -> None:
    block = h.tenant.exchange.block(ROB, created=h.tenant.clock.now() - timedelta(hours=1))
    case = await h.workflow.remediate(RemediationRequest(user=ROB, request_id="manual-1"))
    h.tenant.clock.advance(DELAYS[0])
    [verified] = [await h.workflow.verify(check)
                  for check in h.tenant.scheduler.due(h.tenant.clock.now())]
    assert verified.state is CaseState.VERIFIED
    assert verified.block_created == block.created
    # Exchange shows the removed block again for a while (replication).
    h.tenant.exchange.block(ROB, created=block.created)

    report = await h.intake.poll()

    assert h.sender.sent == []
    assert report.swept == []
    assert (await h.tenant.journal.latest_case(ROB)) == verified
    assert case.case_id == verified.case_id


async def test_the_sweep_leaves_a_block_an_escalated_case_owns_but_not_a_newer_one(
        h: Harness) -> None:
    h.tenant.exchange.block(ROB, created=h.tenant.clock.now() - timedelta(hours=1))
    h.tenant.directory.fail(ROB, PermanentError("403 Forbidden"), on="reset_password")
    escalated = await h.workflow.remediate(RemediationRequest(user=ROB, request_id="manual-1"))
    assert escalated.state is CaseState.ESCALATED

    h.tenant.clock.advance(days=3)
    await h.intake.poll()
    assert h.sender.sent == []  # a human owns that block: never lifted by the robot

    h.tenant.exchange.remove(ROB)  # the human handled it...
    h.tenant.clock.advance(hours=1)
    newer = h.tenant.exchange.block(ROB)  # ...and the account was blocked again since
    report = await h.intake.poll()

    assert sent(h) == [("restricted-list", ROB, block_request_id(newer))]
    assert report.swept == [ROB]


async def test_with_the_sweep_off_the_list_is_not_read() -> None:
    h = make_harness(sweep=False)
    h.alert("fa-1", ROB)
    h.tenant.exchange.block(LEE)
    reads = 0
    real = h.tenant.exchange.all_blocked

    async def counted() -> list[Any]:
        nonlocal reads
        reads += 1
        return await real()

    h.tenant.exchange.all_blocked = counted  # type: ignore[method-assign]

    report = await h.intake.poll()

    assert reads == 0
    assert [r.user for r in h.sender.sent] == [ROB]
    assert report.swept == []


async def test_poll_then_worker_remediates_each_account_once(h: Harness) -> None:
    """Alerts for two users (two for one of them) plus the sweep: one case per account."""
    for sender in (ROB, LEE):
        h.tenant.exchange.block(sender, created=h.tenant.clock.now() - timedelta(hours=1))
    h.alert("fa-1", ROB, title=RESTRICTED)
    h.alert("fa-2", ROB, title=SUSPICIOUS)
    h.alert("fa-3", MEGAN, title=LIMIT)

    await h.intake.poll()
    await h.deliver()
    await h.intake.poll()
    await h.deliver()

    cases = {case.user: case for case in await h.cases()}
    assert set(cases) == {ROB, LEE, MEGAN}
    assert cases[ROB].alert_ids == ("fa-1", "fa-2")
    assert cases[LEE].source == "restricted-list"
    assert h.tenant.directory.count("reset_password") == 3


@pytest.mark.parametrize("evidence", [[user_evidence("", ROB_ID)], [user_evidence(ROB_UPN)]],
                         ids=["object-id", "upn"])
async def test_an_alert_naming_the_user_otherwise_and_the_sweep_make_one_case(
        evidence: list[dict[str, Any]]) -> None:
    tenant = FakeTenant()
    tenant.directory.add_user(ROB_UPN, mail=ROB, user_id=ROB_ID)
    tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30))
    source = FakeAlertSource()
    workflow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=DELAYS), alert_source=source)
    h = Harness(tenant, workflow, source=source)
    h.source.add(alert_json("fa-1", evidence))

    await h.intake.poll()
    await h.deliver()

    assert h.tenant.directory.count("reset_password") == 1
    assert len(await h.cases()) == 1


async def test_a_matching_title_with_a_trailing_newline_still_gets_remediated(
        h: Harness) -> None:
    h.tenant.exchange.block(ROB)
    h.alert("fa-1", ROB, title=RESTRICTED + "\n")

    await h.intake.poll()
    assert [r.user for r in h.sender.sent] == [ROB]
    [case] = await h.deliver()

    assert case.state is CaseState.AWAITING_VERIFICATION


# -- pushed hints ---------------------------------------------------------------------------


async def test_hints_are_confirmed_against_graph_before_anything_is_queued(
        h: Harness) -> None:
    h.tenant.exchange.block(LEE)  # a hint never triggers the sweep
    h.alert("fa-1", ROB)
    h.alert("fa-url", LEE, title=MALICIOUS_URL)
    h.alert("fa-done", MEGAN, status="resolved")

    report = await h.intake.accept_hints(["fa-unknown", "fa-url", "fa-1", "fa-done"])

    assert sent(h) == [("alert", ROB, alert_request_id("fa-1"))]
    assert report.not_confirmed == ["fa-unknown", "fa-url", "fa-done"]
    assert report.enqueued == [alert_request_id("fa-1")]
    assert h.source.lookups == ["fa-unknown", "fa-url", "fa-1", "fa-done"]
    assert h.source.recent_calls == 0
    assert report.swept == []


async def test_a_repeated_hint_is_looked_up_once(h: Harness) -> None:
    h.alert("fa-1", ROB)

    report = await h.intake.accept_hints(["fa-1", "fa-2", "fa-1", "fa-1"])

    assert h.source.lookups == ["fa-1", "fa-2"]
    assert [r.request_id for r in h.sender.sent] == [alert_request_id("fa-1")]
    assert report.not_confirmed == ["fa-2"]


async def test_a_hint_for_a_known_alert_or_one_without_a_sender(h: Harness) -> None:
    h.alert("fa-1", ROB)
    h.alert("fa-nobody", None)
    await h.intake.accept_hints(["fa-1"])
    await h.deliver()

    report = await h.intake.accept_hints(["fa-1", "fa-nobody"])

    assert h.sender.sent == []
    assert report.already_known == 1
    assert report.rejected == ["fa-nobody"]
    assert report.not_confirmed == []


# -- one bad item never stops a poll, a sweep or a batch ------------------------------------


class RefusingSender(FakeRequestSender):
    """The requests queue refusing chosen users' messages (too big, Service Bus busy)."""

    def __init__(self, refuse: dict[str, Exception]) -> None:
        super().__init__()
        self.refuse = refuse

    async def send(self, request: RemediationRequest) -> str:
        error = self.refuse.get(request.user)
        if error is not None:
            raise error
        return await super().send(request)


async def test_an_alert_the_queue_refuses_is_journaled_and_the_others_still_queue() -> None:
    h = make_harness(sweep=False)
    h.sender = RefusingSender({
        LEE: ValueError("message body is 300000 bytes; a Standard tier queue takes 256 KB"),
        MEGAN: TransientError("Service Bus: sending a request failed (ServiceBusError)")})
    for alert_id, user in (("fa-1", LEE), ("fa-2", MEGAN), ("fa-3", ROB)):
        h.alert(alert_id, user)

    report = await h.intake.poll()

    assert sent(h) == [("alert", ROB, alert_request_id("fa-3"))]
    assert report.rejected == ["fa-1"]
    assert report.errors == [
        "alert fa-2: Service Bus: sending a request failed (ServiceBusError)"]
    [case] = await h.cases()  # the refused one, for a human; the busy one comes back
    assert (case.state, case.user, case.alert_ids) == (CaseState.REJECTED, LEE, ("fa-1",))
    assert case.request_ids == (alert_request_id("fa-1"),)
    assert case.reason is not None and "256 KB" in case.reason

    again = await h.intake.poll()  # the refused one is known now; the busy one is tried again
    assert again.already_known == 1
    assert again.errors == report.errors


async def test_a_journal_failure_on_one_alert_is_reported_and_the_rest_continue() -> None:
    h = make_harness(sweep=False)
    h.alert("fa-1", LEE)
    h.alert("fa-2", ROB)
    lookup = h.tenant.journal.case_with_request

    async def flaky(request_id: str) -> Case | None:
        if request_id == alert_request_id("fa-1"):
            raise RuntimeError("table storage hiccup")
        return await lookup(request_id)

    h.tenant.journal.case_with_request = flaky  # type: ignore[method-assign]

    report = await h.intake.poll()

    assert sent(h) == [("alert", ROB, alert_request_id("fa-2"))]
    assert report.errors == ["alert fa-1: unexpected RuntimeError"]


async def test_a_sweep_entry_the_queue_refuses_never_stops_the_sweep() -> None:
    h = make_harness()
    h.sender = RefusingSender({LEE: ValueError("session_id is 300 characters"),
                               MEGAN: TransientError("Service Bus busy")})
    for user in (LEE, MEGAN, ROB):
        h.tenant.exchange.block(user)

    report = await h.intake.poll()

    assert report.swept == [ROB]
    assert report.rejected == [LEE]
    assert report.errors == [f"Restricted users list entry {MEGAN}: Service Bus busy"]
    [case] = await h.cases()
    assert (case.state, case.user, case.source) == (CaseState.REJECTED, LEE, "restricted-list")
    assert case.request_ids == (block_request_id(h.tenant.exchange.listed(LEE)[0]),)
    assert "session_id" in (case.reason or "")


async def test_a_pushed_id_that_fails_does_not_stop_the_others() -> None:
    h = make_harness()
    h.sender = RefusingSender({LEE: ValueError("message too large")})
    h.alert("fa-1", LEE)
    h.alert("fa-2", ROB)
    h.alert("fa-3", MEGAN)
    lookup = h.source.get_alert

    async def flaky(alert_id: str) -> dict[str, Any] | None:
        if alert_id == "fa-3":
            raise TransientError("Graph returned 503")
        return await lookup(alert_id)

    h.source.get_alert = flaky  # type: ignore[method-assign]

    # Graph could not confirm fa-3: the pusher is asked to retry (the others are queued by
    # then and deduplicated when it does).
    with pytest.raises(TransientError, match="503"):
        await h.intake.accept_hints(["fa-1", "fa-3", "fa-2"])

    assert sent(h) == [("alert", ROB, alert_request_id("fa-2"))]
    [case] = await h.cases()
    assert (case.state, case.user) == (CaseState.REJECTED, LEE)


# -- the HTTP push door ---------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/xml",
                                          "application/x-www-form-urlencoded",
                                          "application/json-patch+json"])
async def test_a_push_in_the_wrong_content_type_is_refused(
        h: Harness, content_type: str | None) -> None:
    response = await handle_alert_push(b'["fa-1"]', content_type, h.intake)

    assert response.status == 415
    assert "application/json" in response.body["error"]
    assert h.source.get_calls == 0


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON",
                                          "application/json; charset=utf-8"])
async def test_a_json_push_is_accepted_with_counts(h: Harness, content_type: str) -> None:
    h.alert("fa-1", ROB)
    h.alert("fa-nobody", None)
    h.source.add(alert_json("fa-two", [mailbox_evidence(LEE), mailbox_evidence(MEGAN)]))
    body = json.dumps({"alertIds": ["fa-1", "fa-nobody", "fa-missing", "fa-two"]}).encode()

    response = await handle_alert_push(body, content_type, h.intake)

    assert response.status == 202
    refused = response.body.pop("refused")
    assert response.body == {"queued": 1, "already_known": 0, "rejected": ["fa-nobody"],
                             "escalated": ["fa-two"], "not_confirmed": ["fa-missing"],
                             "not_found": ["fa-missing"]}
    assert refused.startswith("Graph knows no alert fa-missing; name an alert by ")
    assert sent(h) == [("alert", ROB, alert_request_id("fa-1"))]


async def test_a_repeated_push_queues_nothing_new(h: Harness) -> None:
    h.alert("fa-1", ROB)
    body = json.dumps(alert_json("fa-1", [mailbox_evidence(ROB)])).encode()
    await handle_alert_push(body, "application/json", h.intake)
    await h.deliver()

    response = await handle_alert_push(body, "application/json", h.intake)

    assert response.status == 200  # nothing queued: never a 202
    assert response.body["queued"] == 0
    assert response.body["already_known"] == 1
    assert h.sender.sent == []


async def test_a_push_over_64_kib_is_refused_before_it_is_read(h: Harness) -> None:
    ids = json.dumps(["fa-1"])
    body = (ids[:-1] + " " * (MAX_PUSH_BYTES - len(ids) + 1) + "]").encode()
    assert len(body) == MAX_PUSH_BYTES + 1

    response = await handle_alert_push(body, "application/json", h.intake)

    assert response.status == 413
    assert str(MAX_PUSH_BYTES) in response.body["error"]
    assert h.source.get_calls == 0


async def test_a_push_of_exactly_64_kib_is_read(h: Harness) -> None:
    h.alert("fa-1", ROB)
    ids = json.dumps(["fa-1"])
    body = (ids[:-1] + " " * (MAX_PUSH_BYTES - len(ids)) + "]").encode()

    response = await handle_alert_push(body, "application/json", h.intake)

    assert response.status == 202
    assert response.body["queued"] == 1


@pytest.mark.parametrize(("body", "message"), [
    (b"fa-1", "body is not valid JSON"),
    (b'{"alertIds": ["fa-1"]', "body is not valid JSON"),
    (b"\xff\xfe\xfa", "body is not valid JSON"),
    (b"[" * 30_000 + b"]" * 30_000, "body is not valid JSON"),
    (b"[]", "no alert id in the body"),
    (b'{"alertIds": "fa-1"}', "'alertIds' must be a list of alert ids"),
    (b'["fa 1"]', "not an alert id: 'fa 1'"),
    (b"42", "not an alert id: 42"),
    (json.dumps([f"fa-{n}" for n in range(101)]).encode(), "more than 100 alert ids"),
])
async def test_a_malformed_push_is_refused_with_a_reason(
        h: Harness, body: bytes, message: str) -> None:
    response = await handle_alert_push(body, "application/json", h.intake)

    assert response.status == 400
    assert response.body["error"].startswith(message)
    assert h.source.get_calls == 0
    assert h.sender.sent == []


async def test_a_push_while_graph_is_unavailable_asks_to_retry(h: Harness) -> None:
    h.alert("fa-1", ROB)
    h.source.fail(TransientError("Graph returned 429"), on="get_alert", times=1)

    response = await handle_alert_push(b'["fa-1"]', "application/json", h.intake)

    assert response.status == 503
    assert response.retry_after is not None
    assert response.retry_after > 0
    assert "429" not in json.dumps(response.body)  # no internals to the caller
    assert h.sender.sent == []

    retried = await handle_alert_push(b'["fa-1"]', "application/json", h.intake)
    assert retried.status == 202
    assert retried.body["queued"] == 1


async def test_a_push_graph_refuses_to_serve_is_a_bad_gateway(h: Harness) -> None:
    h.source.fail(PermanentError("403 Forbidden: missing SecurityAlert.Read.All"),
                  on="get_alert")

    response = await handle_alert_push(b'["fa-1"]', "application/json", h.intake)

    assert response.status == 502
    assert "SecurityAlert" not in json.dumps(response.body)
    assert h.sender.sent == []


# -- the Event Hub stream door --------------------------------------------------------------


def stream_record(category: str, **properties: Any) -> dict[str, Any]:
    return {"time": "2024-05-01T09:00:00Z", "tenantId": "t", "category": category,
            "operationName": "Publish", "properties": properties}


def alert_info(alert_id: str, title: str = RESTRICTED) -> dict[str, Any]:
    return stream_record("AdvancedHunting-AlertInfo", AlertId=alert_id, Title=title,
                         ServiceSource="Microsoft Defender for Office 365", Severity="High")


def alert_evidence(alert_id: str, entity: str = "Mailbox") -> dict[str, Any]:
    return stream_record("AdvancedHunting-AlertEvidence", AlertId=alert_id, EntityType=entity,
                         ServiceSource="Microsoft Defender for Office 365",
                         AccountUpn="someone@contoso.com")


async def test_a_stream_batch_queues_the_confirmed_alerts(h: Harness) -> None:
    h.alert("fa-1", ROB)
    h.alert("fa-2", LEE, title=SUSPICIOUS)
    h.alert("fa-url", MEGAN, title=MALICIOUS_URL)
    batch: list[bytes | str] = [
        json.dumps({"records": [alert_evidence("fa-1"), alert_info("fa-1")]}).encode(),
        b"garbage",
        json.dumps({"records": [
            stream_record("AdvancedHunting-DeviceProcessEvents", DeviceName="pc"),
            alert_info("fa-2"), alert_evidence("fa-url", "User"), alert_info("fa-1")]}),
    ]

    report = await handle_stream_events(batch, h.intake, DEFAULT_ALERT_TITLES)

    assert sent(h) == [("alert", ROB, alert_request_id("fa-1")),
                       ("alert", LEE, alert_request_id("fa-2"))]
    assert h.source.lookups == ["fa-1", "fa-2", "fa-url"]
    assert report.not_confirmed == ["fa-url"]
    assert report.errors == ["event 1: event is not valid JSON"]


async def test_a_stream_batch_without_hints_reads_nothing_from_graph(h: Harness) -> None:
    batch: list[bytes | str] = [
        json.dumps({"records": [alert_info("fa-url", MALICIOUS_URL),
                                alert_evidence("fa-1", "File")]}),
        b'{"records": "nope"}',
    ]

    report = await handle_stream_events(batch, h.intake, DEFAULT_ALERT_TITLES)

    assert h.source.get_calls == 0
    assert h.sender.sent == []
    assert report.errors == ["event 1: event has no 'records' list"]


async def test_a_stream_batch_of_100000_repeated_ids_reads_each_kept_id_once(
        h: Harness) -> None:
    # 100,000 hinted records naming 50,000 ids twice: linear de-duplication, then the
    # per-batch limit on Graph reads. (bench/alert_flood.py prints how long it takes.)
    ids = [f"fa{n:030x}" for n in range(50_000)]
    batch: list[bytes | str] = [
        json.dumps({"records": [alert_info(alert_id) for alert_id in ids[start:start + 2000]]})
        for start in range(0, len(ids), 2000)] * 2
    h.alert(ids[7], ROB)

    report = await handle_stream_events(batch, h.intake, DEFAULT_ALERT_TITLES)

    assert h.source.lookups == ids[:MAX_BATCH_ALERTS]
    assert sent(h) == [("alert", ROB, alert_request_id(ids[7]))]
    assert report.not_confirmed == ids[:7] + ids[8:MAX_BATCH_ALERTS]
    assert report.errors == [f"batch: 50000 alert ids hinted; only the first "
                             f"{MAX_BATCH_ALERTS} are read from Graph (the alert poll finds "
                             "the others)"]


async def test_a_stream_batch_while_graph_is_unavailable_raises_for_a_retry(
        h: Harness) -> None:
    h.alert("fa-1", ROB)
    h.source.fail(TransientError("Graph returned 503"), on="get_alert", times=1)
    batch: list[bytes | str] = [json.dumps({"records": [alert_info("fa-1")]})]

    with pytest.raises(TransientError):
        await handle_stream_events(batch, h.intake, DEFAULT_ALERT_TITLES)
    assert h.sender.sent == []

    report = await handle_stream_events(batch, h.intake, DEFAULT_ALERT_TITLES)
    assert report.enqueued == [alert_request_id("fa-1")]


class LockedQueue(FakeRequestSender):
    """A requests queue that refuses every message for now (a locked database, an outage)."""

    async def send(self, request: RemediationRequest) -> str:
        raise TransientError("local queue: database is locked")


@pytest.mark.parametrize("source", [Source.ALERTS, Source.RESTRICTED_USERS])
async def test_a_source_read_whole_whose_items_could_not_be_queued_is_no_success(
        source: Source) -> None:
    """Every block dropped for this poll is a failed source, not a fresh "last success":
    otherwise run --until-idle exits 0 and status says all is well (a hostile test)."""
    h = make_harness()
    h.sender = LockedQueue()
    if source is Source.ALERTS:
        h.alert("fa-1", ROB, title=RESTRICTED)
    else:
        h.tenant.exchange.block(LEE)

    report = await h.intake.poll()

    assert "could not be handled" in report.failed_sources[source]
    assert "database is locked" in report.failed_sources[source]
    assert not (await health(h))[source.value].ok
