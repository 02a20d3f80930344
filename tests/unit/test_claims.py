"""Claims are checked (issue 10, point 3) with fakes: alert ids read back before use,
approvals that must name the case's user, ``force`` for manual requests only and counted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from remediation.domain.alerts import Alert, names_account, why_not_outbound_spam
from remediation.domain.cases import Case, CaseState
from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import InvalidRequest, TransientError
from remediation.domain.requests import RemediationRequest, parse_request
from remediation.service.handler import Delivery, MessageHandler
from remediation.service.messages import Approval, parse_approval
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings
from tests.cli_helpers import clean_environment, run_cli  # noqa: F401 (a fixture)
from tests.fakes import (
    FakeAlertNotifier,
    FakeAlertSource,
    FakeAlertUpdater,
    FakeTenant,
    alert_json,
    mailbox_evidence,
    user_evidence,
)

ROB, ROB_ALIAS = "rob@contoso.com", "sales@contoso.com"
ROB_ID = "3f2a1b4c-0000-4000-8000-00000000abcd"
EVE = "eve@contoso.com"
DELAYS = (timedelta(hours=1), timedelta(hours=4), timedelta(hours=24))
TITLES = ("User restricted from sending email", "Suspicious email sending patterns detected")


@dataclass
class Harness:
    tenant: FakeTenant
    source: FakeAlertSource
    updater: FakeAlertUpdater
    notifier: FakeAlertNotifier
    workflow: RemediationWorkflow

    async def remediate(self, request_id: str = "req-1", **fields: Any) -> Case:
        return await self.workflow.remediate(
            RemediationRequest(**{"user": ROB, **fields}, request_id=request_id))

    async def deliver_updates(self) -> list[Case]:
        queued, self.notifier.updates = self.notifier.updates, []
        return [await self.workflow.update_alerts(update) for update in queued]

    def touched(self) -> set[str]:
        return {alert_id for operation, alert_id in self.updater.attempts
                if operation in ("comment", "update")}


def make(mode: str = "enforce", source: bool = True, limit: int = 20) -> Harness:
    tenant = FakeTenant()
    tenant.directory.put_user(DirectoryUser(
        id=ROB_ID, user_principal_name=ROB, mail=ROB, proxy_addresses=(ROB, ROB_ALIAS)))
    tenant.directory.add_user(EVE)
    tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30))
    alerts = FakeAlertSource([
        alert_json("ours", [mailbox_evidence(ROB)]),
        alert_json("alias", [mailbox_evidence(ROB_ALIAS)],
                   title="Suspicious email sending patterns detected"),
        alert_json("by-id", [user_evidence(None, ROB_ID)]),
        alert_json("endpoint", [user_evidence(ROB)], title="Ransomware activity detected",
                   service_source="microsoftDefenderForEndpoint"),
        alert_json("office-other", [mailbox_evidence(ROB)],
                   title="Email messages containing malicious URL removed after delivery"),
        alert_json("eves", [mailbox_evidence(EVE)]),
        alert_json("nobody", [mailbox_evidence("ghost@contoso.com")]),
        alert_json("closed", [mailbox_evidence(ROB)], status="resolved"),
        alert_json("no-sender", []),
    ])
    updater, notifier = FakeAlertUpdater(), FakeAlertNotifier()
    workflow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=DELAYS, mode=mode, alert_titles=TITLES,
                                  max_resets_per_hour=limit),
        alerts=updater, notifier=notifier, alert_source=alerts if source else None)
    return Harness(tenant, alerts, updater, notifier, workflow)


@pytest.fixture
def h() -> Harness:
    return make()


def ignored(case: Case) -> dict[str, str]:
    return {s.data["alert_id"]: s.data["reason"] for s in case.steps if s.name == "alert_ignored"}


def confirmed(case: Case) -> list[str]:
    return [s.data["alert_id"] for s in case.steps if s.name == "alert_confirmed"]


# -- the domain's rule ----------------------------------------------------------------------


def test_why_not_outbound_spam_names_the_source_or_the_title_escaped() -> None:
    endpoint = Alert("a", "User restricted from sending email", "new",
                     "microsoftDefenderForEndpoint", ROB)
    other = Alert("b", "Ransomware\x1b[2J", "new", "microsoftDefenderForOffice365", ROB)
    ours = Alert("c", " user RESTRICTED from sending email ", "new",
                 "microsoftDefenderForOffice365", ROB)

    assert why_not_outbound_spam(endpoint, TITLES) == (
        "not a Defender for Office 365 alert (serviceSource 'microsoftDefenderForEndpoint')")
    reason = why_not_outbound_spam(other, TITLES)
    assert reason == "not an outbound-spam alert (title 'Ransomware\\x1b[2J')"
    assert reason.isprintable()
    assert why_not_outbound_spam(ours, TITLES) is None


def test_an_alert_names_an_account_by_any_of_its_addresses_or_its_id() -> None:
    rob = DirectoryUser(id=ROB_ID, user_principal_name=ROB, mail=ROB,
                        proxy_addresses=(ROB, ROB_ALIAS))
    for sender in (ROB, ROB_ALIAS, ROB_ID, "ROB@contoso.com"):
        assert names_account(Alert("a", "t", "new", "s", sender), rob), sender
    assert not names_account(Alert("a", "t", "new", "s", EVE), rob)
    assert not names_account(Alert("a", "t", "new", "s", None), rob)


# -- alert ids a request names --------------------------------------------------------------


async def test_a_manual_requests_alert_ids_are_read_back_and_only_ours_kept(h: Harness) -> None:
    named = ("endpoint", "ours", "office-other", "eves", "alias", "nobody", "missing",
             "closed", "by-id", "no-sender")

    case = await h.remediate(alert_ids=named)
    await h.deliver_updates()

    assert case.state is CaseState.AWAITING_VERIFICATION
    assert case.alert_ids == ("ours", "alias", "by-id")
    assert confirmed(case) == ["ours", "alias", "by-id"]
    reasons = ignored(case)
    assert set(reasons) == set(named) - {"ours", "alias", "by-id"}
    assert "microsoftDefenderForEndpoint" in reasons["endpoint"]
    assert "not an outbound-spam alert" in reasons["office-other"]
    assert reasons["eves"] == f"it names {EVE}, not this account ({ROB})"
    assert reasons["nobody"] == f"it names ghost@contoso.com, not this account ({ROB})"
    assert reasons["missing"] == "not found in Defender (Graph alerts_v2)"
    assert reasons["closed"] == "already resolved in Defender: left as it is"
    assert reasons["no-sender"] == "its evidence names no sender"
    assert h.touched() == {"ours", "alias", "by-id"}
    assert h.tenant.directory.count("reset_password") == 1
    stored = await h.tenant.journal.get_case(case.case_id)
    assert stored is not None
    assert stored.alert_ids == ("ours", "alias", "by-id")


async def test_a_request_claiming_to_come_from_the_poll_has_its_ids_read_back_too(
        h: Harness) -> None:
    # A queue message can claim source "alert" as easily as a person can name an alert id.
    case = await h.remediate("alert-req", source="alert", alert_ids=("ours", "endpoint"))
    await h.deliver_updates()

    assert h.source.lookups == ["ours", "endpoint"]
    assert confirmed(case) == ["ours"]
    assert set(ignored(case)) == {"endpoint"}
    assert h.touched() == {"ours"}


async def test_an_id_merged_in_by_a_later_manual_request_is_checked_before_any_comment(
        h: Harness) -> None:
    await h.remediate("alert-req", source="alert", alert_ids=("ours",))

    merged = await h.remediate("manual-req", alert_ids=("endpoint", "ours"))
    await h.deliver_updates()

    assert merged.alert_ids == ("ours",)
    assert set(ignored(merged)) == {"endpoint"}
    # "ours" is settled when it arrived; the second request reads both again only for
    # Graph's createdDateTime (the evidence time), and settles "endpoint" on that answer.
    assert h.source.lookups == ["ours", "endpoint", "ours"]
    assert "endpoint" not in h.touched()


async def test_ids_graph_could_not_answer_for_are_read_before_the_alert_update_comments(
        h: Harness) -> None:
    # Down for the evidence-time read and for the claim's own read of "endpoint".
    h.source.fail(TransientError("Graph 503"), on="get_alert", times=2)

    case = await h.remediate(alert_ids=("endpoint", "ours"))
    assert case.state is CaseState.AWAITING_VERIFICATION  # securing did not wait for Graph
    assert case.alert_ids == ("endpoint", "ours")
    [updated] = await h.deliver_updates()

    assert updated.alert_ids == ("ours",)
    assert set(ignored(updated)) == {"endpoint"}
    assert h.touched() == {"ours"}


async def test_an_alert_update_for_an_unsettled_id_retries_when_graph_is_down(
        h: Harness) -> None:
    h.source.fail(TransientError("Graph 503"), on="get_alert", times=3)
    await h.remediate(alert_ids=("endpoint",))
    [update] = h.notifier.updates
    handler = MessageHandler(h.workflow)

    with pytest.raises(TransientError):
        await handler.on_verification(Delivery(update.to_json().encode(), "m", 1, 5))

    assert h.touched() == set()


async def test_without_an_alert_source_no_named_id_is_ever_touched() -> None:
    h = make(source=False)

    case = await h.remediate(alert_ids=("ours",))
    await h.deliver_updates()

    assert case.alert_ids == ()
    assert ignored(case) == {"ours": "no alert source to read it back from"}
    assert h.touched() == set()


# -- approvals ------------------------------------------------------------------------------


async def waiting(h: Harness) -> Case:
    case = await h.remediate("alert-req", source="alert")
    assert case.state is CaseState.AWAITING_APPROVAL
    return case


@pytest.mark.parametrize("named", [ROB, ROB_ID, ROB_ALIAS])
async def test_an_approval_naming_the_cases_user_any_way_proceeds(named: str) -> None:
    h = make(mode="approve")
    case = await waiting(h)

    approved = await h.workflow.approve(Approval(case.case_id, named, "lead"))

    assert approved.state is CaseState.AWAITING_VERIFICATION
    assert h.tenant.directory.count("reset_password") == 1


async def test_an_approval_naming_another_user_is_refused_and_noted_on_the_case() -> None:
    h = make(mode="approve")
    case = await waiting(h)

    with pytest.raises(InvalidRequest, match=f"it names {EVE}, but the case is about {ROB}"):
        await h.workflow.approve(Approval(case.case_id, EVE, "lead"))

    stored = await h.tenant.journal.get_case(case.case_id)
    assert stored is not None
    assert stored.state is CaseState.AWAITING_APPROVAL
    assert [s.name for s in stored.steps][-1] == "approval_refused"
    assert h.tenant.directory.count("reset_password") == 0


async def test_an_approver_name_with_control_characters_is_refused_however_it_arrives() -> None:
    h = make(mode="approve")
    case = await waiting(h)

    with pytest.raises(InvalidRequest, match="'approved_by' contains control characters"):
        await h.workflow.approve(Approval(case.case_id, ROB, "lead\x1b[2J"))

    assert h.tenant.directory.count("reset_password") == 0


async def test_on_approval_the_guardrails_run_again_on_a_fresh_lookup() -> None:
    h = make(mode="approve")
    case = await waiting(h)
    h.tenant.directory.set_memberships(ROB, roles=["Global Administrator"])
    lookups = h.tenant.directory.count("find_user")

    escalated = await h.workflow.approve(Approval(case.case_id, ROB, "lead"))

    assert escalated.state is CaseState.ESCALATED
    assert "Global Administrator" in (escalated.reason or "")
    assert escalated.reason.startswith("checked again on approval: ")  # type: ignore[union-attr]
    assert h.tenant.directory.count("find_user") == lookups + 1
    assert h.tenant.directory.count("reset_password") == 0
    assert h.tenant.exchange.unblocks == []


@pytest.mark.parametrize(("value", "problem"), [
    ("lead\nforged line", "'approved_by' contains control characters"),
    ("lead\x1b[31m", "'approved_by' contains control characters"),
    ("x" * 257, "'approved_by' is longer than 256 characters"),
    ("   ", "'approved_by' is blank"),
    (42, "'approved_by' must be a string"),
])
def test_parse_approval_validates_approved_by_like_any_other_text(
        value: object, problem: str) -> None:
    fields = {"kind": "approve", "case_id": "c1", "user": ROB, "approved_by": value}

    with pytest.raises(InvalidRequest) as refused:
        parse_approval(fields)

    assert refused.value.reason.startswith(problem)


def test_parse_approval_strips_the_name_and_quotes_unknown_fields() -> None:
    approval = parse_approval({"kind": "approve", "case_id": "c1", "user": ROB,
                               "approved_by": "  Security Lead "})
    assert approval.approved_by == "Security Lead"
    with pytest.raises(InvalidRequest) as refused:
        parse_approval({"kind": "approve", "case_id": "c1", "user": ROB, "x\x1b[2J": 1})
    assert refused.value.reason.isprintable()


# -- force ----------------------------------------------------------------------------------


async def test_the_workflow_refuses_force_on_a_request_that_is_not_manual(h: Harness) -> None:
    case = await h.remediate(source="alert", force=True)

    assert case.state is CaseState.REJECTED
    assert "'force' is accepted only on manual requests" in (case.reason or "")
    assert h.tenant.directory.calls == []


async def test_a_forced_reset_is_counted_by_the_breaker() -> None:
    h = make(limit=1)
    forced = await h.remediate(force=True)
    assert forced.state is CaseState.AWAITING_VERIFICATION
    assert forced.case_id in h.tenant.journal.reset_places

    h.tenant.directory.add_user("ann@contoso.com")
    h.tenant.exchange.block("ann@contoso.com")
    held = await h.workflow.remediate(RemediationRequest(
        user="ann@contoso.com", request_id="req-ann", source="alert"))

    assert held.state is CaseState.ESCALATED
    assert "circuit breaker open" in (held.reason or "")
    assert h.tenant.directory.count("reset_password") == 1


def test_the_cli_refuses_an_approver_name_it_would_have_cut_or_garbled(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        clean_environment: None, tmp_path: Path) -> None:  # noqa: F811
    settings = {"REMEDIATION_DB": str(tmp_path / "state.db")}
    for name, problem in (("lead\x1b[2J", "'approved_by' contains control characters"),
                          ("x" * 300, "'approved_by' is longer than 256 characters")):
        status, out, err = run_cli(monkeypatch, capsys, settings,
                                   "approve", "20250101-abcdef12", "--by", name)

        assert (status, out) == (2, "")
        assert err == f"remediation: {problem}\n"


async def test_an_old_evidence_time_a_message_claims_never_merges_a_new_alert() -> None:
    h = make()
    case = await h.remediate("req-1", alert_ids=("ours",), source="alert")
    for _ in range(3):
        h.tenant.clock.advance(hours=25)
        for check in h.tenant.scheduler.due(h.tenant.clock.now()):
            case = await h.workflow.verify(check)
    assert case.state is CaseState.VERIFIED
    await h.deliver_updates()
    # Defender creates a new alert after the case ended; a queue message names it with a
    # forged old evidence time. Graph's createdDateTime decides, not the message.
    h.tenant.clock.advance(minutes=5)
    h.source.add(alert_json("fresh", [mailbox_evidence(ROB)],
                            updated=h.tenant.clock.now()))
    forged = parse_request(json.dumps({
        "user": ROB, "source": "alert", "alert_ids": ["fresh"],
        "evidence_at": "2001-01-01T00:00:00Z", "request_id": "forged"}).encode())
    after = await h.workflow.remediate(forged)
    await h.deliver_updates()

    assert after.case_id != case.case_id
    assert not any(u.get("status") == "resolved" for u in h.updater.updates_of("fresh"))
    assert not any("done." in text for text in h.updater.comments_on("fresh"))
