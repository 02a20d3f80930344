"""Inbox rules Graph never shows, and rules the attacker deleted after use: whole cases over
HTTP against the sandbox (Get-InboxRule -IncludeHidden, Disable-InboxRule, the unified audit
log), with the real clients."""

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from remediation.adapters.local_worker import LocalWorker
from remediation.bootstrap import Application
from remediation.domain.cases import Case, CaseState
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import Fault, SandboxTenant
from remediation.sandbox.inbox_rules import hidden_rule, rule_identity
from remediation.sandbox.seed import HIDDEN_RULE_ID
from tests.e2e.test_safety import LYNNE, app_for, remediate

STEP = "exchange_inbox_rules"
SYSTEM_RULES = ("Junk E-Mail Rule", "Microsoft.Exchange.OOF.KnownSenders.Rule",
                "Microsoft.Exchange.OOF.AllExternalSenders.Rule", "Delegate Rule -1")


def cmdlet_calls(tenant: SandboxTenant, cmdlet: str) -> list[dict[str, Any]]:
    """The parameters of every call of ``cmdlet`` the tenant answered."""
    return [request.body["CmdletInput"]["Parameters"] for request in tenant.requests()
            if request.cmdlet == cmdlet]


def exchange_rows(tenant: SandboxTenant) -> dict[str, dict[str, Any]]:
    return {str(row["Name"]): row for row in tenant.user(LYNNE).exchange_rules}


def found(case: Case) -> list[dict[str, Any]]:
    step = case.done(STEP)
    assert step is not None, [s.name for s in case.steps]
    return list(step.data["found"])


async def test_a_hidden_forwarding_rule_is_disabled_through_exchange_before_the_unblock(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = (await remediate(app, LYNNE))[LYNNE]
    await app.aclose()

    assert case.state is CaseState.VERIFIED, case.reason
    assert exchange_rows(tenant)["."]["Enabled"] is False
    assert cmdlet_calls(tenant, "Disable-InboxRule") == [
        {"Identity": str(HIDDEN_RULE_ID), "Mailbox": LYNNE, "Confirm": False}]
    order = [r.cmdlet for r in tenant.requests() if r.cmdlet]
    assert order.index("Disable-InboxRule") < order.index("Remove-BlockedSenderAddress")
    step = case.done(STEP)
    assert step is not None
    [change] = step.data["changes"]
    assert change == {"what": "disabled inbox rule '.' (not shown by Graph)",
                      "undo": f"Enable-InboxRule -Identity {HIDDEN_RULE_ID} -Mailbox {LYNNE}"}
    [hidden] = [entry for entry in found(case) if entry["key"] == str(HIDDEN_RULE_ID)]
    assert "sync@evil-mail.example" in hidden["why"]
    assert "Outlook client-side rules" in hidden["why"]  # what Disable-InboxRule also does
    plan = case.done("plan")
    assert plan is not None and "disable inbox rule '.' (not shown by Graph)" in plan.detail


async def test_exchange_own_rules_are_left_alone(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = (await remediate(app, LYNNE))[LYNNE]
    await app.aclose()

    rows = exchange_rows(tenant)
    assert all(rows[name]["Enabled"] for name in SYSTEM_RULES)
    touched = {call["Identity"] for call in cmdlet_calls(tenant, "Disable-InboxRule")}
    assert touched == {str(HIDDEN_RULE_ID)}
    assert not {entry["name"] for entry in found(case)} & {repr(n) for n in SYSTEM_RULES}


async def test_report_mode_disables_nothing_and_reports_the_hidden_rule(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db", mailbox_hygiene="report")
    case = (await remediate(app, LYNNE))[LYNNE]
    await app.aclose()

    assert case.state is CaseState.VERIFIED, case.reason
    assert cmdlet_calls(tenant, "Disable-InboxRule") == []
    assert all(row.get("Enabled") for row in tenant.user(LYNNE).exchange_rules)
    assert all(rule["isEnabled"] for rule in tenant.user(LYNNE).inbox_rules)
    [hidden] = [entry for entry in found(case) if entry["key"] == str(HIDDEN_RULE_ID)]
    assert hidden["disposition"] == "report"
    assert "client-side" not in hidden["why"]  # nothing is disabled, nothing else is lost
    plan = case.done("plan")
    assert plan is not None and "report inbox rule '.' (not shown by Graph)" in plan.detail


@pytest.mark.parametrize("hygiene", ["disable", "report"])
async def test_a_rule_graph_and_exchange_both_show_is_handled_once(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, hygiene: str) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db", mailbox_hygiene=hygiene)
    case = (await remediate(app, LYNNE))[LYNNE]
    await app.aclose()

    forwarding = tenant.user(LYNNE).inbox_rules[0]  # '..': forwards to collect@evil-mail
    number = str(rule_identity(forwarding["id"]))
    assert number not in {call["Identity"] for call in cmdlet_calls(tenant, "Disable-InboxRule")}
    patches = [r for r in tenant.requests() if r.method == "PATCH"
               and r.path.endswith(f"/messageRules/{forwarding['id']}")]
    assert len(patches) == (1 if hygiene == "disable" else 0)
    plan = case.done("plan")
    assert plan is not None and plan.detail.count("collect@evil-mail.example") == 1
    # Exchange's survey knows it as the Graph step's: kept, its key recorded.
    entries = {entry["key"]: entry for entry in case.done("plan").data["leftovers"][STEP]}
    # Hygiene's line in the plan, not this step's (found enabled after hygiene: disabled again).
    assert (entries[number]["snapshot"].get("hygiene_handles") is True if hygiene == "disable"
            else entries[number]["disposition"] == "keep")


async def test_the_rule_created_and_deleted_in_the_window_is_named_with_its_target(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = (await remediate(app, LYNNE))[LYNNE]
    await app.aclose()

    [deleted] = [entry for entry in found(case) if entry["kind"] == "deleted inbox rule"]
    assert deleted["name"] == "'Payroll'" and deleted["disposition"] == "report"
    assert deleted["snapshot"]["targets"] == ["payroll-copy@evil-mail.example"]
    assert "they may have received copies" in deleted["why"]
    assert deleted["added_from"] == "audit log"
    step = case.done(STEP)
    assert step is not None and "payroll-copy@evil-mail.example" in step.detail
    [search] = cmdlet_calls(tenant, "Search-UnifiedAuditLog")[:1]
    assert search["UserIds"] == [LYNNE]
    assert set(search["Operations"]) == {"New-InboxRule", "Set-InboxRule", "Remove-InboxRule",
                                         "UpdateInboxRules"}


@pytest.mark.parametrize("unreadable", ["ingestion off", "not allowed"])
async def test_an_unreadable_audit_log_is_journaled_and_the_case_goes_on(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, unreadable: str) -> None:
    if unreadable == "ingestion off":
        tenant.unified_audit_log.ingestion_enabled = False
    else:  # Exchange's words for a cmdlet the app's role does not cover
        tenant.add_fault(Fault(status=401, cmdlet="Search-UnifiedAuditLog", times=None,
                               code="Unauthorized",
                               message="User is not allowed to call Search-UnifiedAuditLog"))
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = (await remediate(app, LYNNE))[LYNNE]
    await app.aclose()

    assert case.state is CaseState.VERIFIED, case.reason
    assert exchange_rows(tenant)["."]["Enabled"] is False  # the rest was done
    [note] = [entry for entry in found(case) if entry["kind"] == "inbox rule history"]
    assert note["disposition"] == "report"
    assert "could not be read" in note["why"]
    assert ("UnifiedAuditLogIngestionEnabled" if unreadable == "ingestion off"
            else "not allowed to call Search-UnifiedAuditLog") in note["why"]
    assert not [entry for entry in found(case) if entry["kind"] == "deleted inbox rule"]


async def _clean_then(app: Application, tenant: SandboxTenant, change: Any) -> Case:
    """Work the case up to its verification, change the tenant, then verify."""
    await app.requests.send(RemediationRequest(user=LYNNE, request_id=uuid.uuid4().hex))
    assert app.queue is not None
    await LocalWorker(app.queue, {app.settings.remediation_queue: app.handler.on_request},
                      poll_interval=0.05).run(until_idle=True)
    change()
    await app.worker(poll_interval=0.05, retry_backoff=0.05).run(until_idle=True)
    [case] = [c for c in await app.journal.list_cases() if c.user == LYNNE]
    return case


async def test_a_new_hidden_forwarding_rule_after_the_case_acted_escalates(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    lynne = tenant.user(LYNNE)
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await _clean_then(app, tenant, lambda: lynne.exchange_rules.append(hidden_rule(
        lynne, "x", 9 << 60 | 1, ForwardTo=['"x" [SMTP:again@evil-mail.example]'])))
    await app.aclose()

    assert case.state is CaseState.ESCALATED
    assert "the attacker is still active" in (case.reason or "")
    assert "'x' (not shown by Graph)" in (case.reason or "")


async def test_the_disabled_hidden_rule_enabled_again_escalates(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await _clean_then(app, tenant,
                             lambda: exchange_rows(tenant)["."].update(Enabled=True))
    await app.aclose()

    assert case.state is CaseState.ESCALATED
    assert "the attacker is still active" in (case.reason or "")
    assert "'.' (not shown by Graph)" in (case.reason or "")


async def test_an_ordinary_rule_the_owner_adds_after_the_case_acted_is_no_alarm(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    lynne = tenant.user(LYNNE)
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await _clean_then(app, tenant, lambda: lynne.exchange_rules.append(hidden_rule(
        lynne, "Team", 9 << 60 | 2, ForwardTo=['"Ann" [EX:/o=ExchangeLabs/cn=ann]'],
        MoveToFolder="lynne:\\Newsletters")))
    await app.aclose()

    assert case.state is CaseState.VERIFIED, case.reason
    returned = case.done("returned_0")
    assert returned is not None and json.dumps(returned.data["added"]) == "[]"


JONAS = "jonas.weber@contoso.com"


def german_rss_rule(tenant: SandboxTenant) -> tuple[Any, str]:
    """A German mailbox with a plain rule Graph lists: move invoices to "RSS-Feeds", nothing
    else (no mark as read). Graph has no well-known name for RSS Feeds."""
    from remediation.sandbox import SandboxUser

    jonas = tenant.add_user(SandboxUser(JONAS, "Jonas Weber", language="de"))
    tenant.block(JONAS)
    jonas.inbox_rules = [{"id": "AQAAAJ5dZqM=", "displayName": "Rechnungen", "sequence": 1,
                          "isEnabled": True, "hasError": False, "isReadOnly": False,
                          "conditions": {"subjectContains": ["Rechnung"]},
                          "actions": {"moveToFolder": jonas.folder_id("RSS-Feeds"),
                                      "stopProcessingRules": True}}]
    return jonas, str(rule_identity("AQAAAJ5dZqM="))


async def test_a_rule_graph_lists_moving_mail_to_rss_feeds_is_disabled_through_exchange_once(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    jonas, number = german_rss_rule(tenant)
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = (await remediate(app, JONAS))[JONAS]
    await app.aclose()

    assert case.state is CaseState.VERIFIED, case.reason
    assert jonas.inbox_rules[0]["isEnabled"] is False
    assert [call["Identity"] for call in cmdlet_calls(tenant, "Disable-InboxRule")] == [number]
    assert not [r for r in tenant.requests() if r.method == "PATCH" and "messageRules" in r.path]
    step = case.done(STEP)
    assert step is not None
    [rule] = [entry for entry in step.data["found"] if entry["key"] == number]
    assert rule["disposition"] == "remove"
    assert "rss-feeds" in rule["why"].lower() and "RSS Feeds folder" in rule["why"]
    assert step.data["changes"][0]["undo"] == (f"Enable-InboxRule -Identity {number} "
                                               f"-Mailbox {JONAS}")
    plan = case.done("plan")
    assert plan is not None and plan.detail.count("'Rechnungen'") == 1


async def test_report_mode_reports_the_rss_feeds_rule_once_and_disables_nothing(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    jonas, number = german_rss_rule(tenant)
    app = app_for(sandbox_url, tenant, tmp_path / "db", mailbox_hygiene="report")
    case = (await remediate(app, JONAS))[JONAS]
    await app.aclose()

    assert case.state is CaseState.VERIFIED, case.reason
    assert jonas.inbox_rules[0]["isEnabled"] is True
    assert cmdlet_calls(tenant, "Disable-InboxRule") == []
    step = case.done(STEP)
    assert step is not None
    [rule] = [entry for entry in step.data["found"] if entry["key"] == number]
    assert rule["disposition"] == "report"
    plan = case.done("plan")
    assert plan is not None and plan.detail.count("'Rechnungen'") == 1


async def test_an_rss_feeds_rule_that_also_marks_read_stays_mailbox_hygiene_s(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Lynne's 'Invoices' moves to RSS Feeds and marks read: Graph's step finds it by that and
    disables it; Exchange's step keeps it as that step's, as before."""
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = (await remediate(app, LYNNE))[LYNNE]
    await app.aclose()

    invoices = tenant.user(LYNNE).inbox_rules[1]
    number = str(rule_identity(invoices["id"]))
    assert invoices["isEnabled"] is False
    assert number not in {call["Identity"] for call in cmdlet_calls(tenant, "Disable-InboxRule")}
    entries = {entry["key"]: entry for entry in case.done("plan").data["leftovers"][STEP]}
    # Hygiene's line in the plan, not this step's (found enabled after hygiene: disabled again).
    assert entries[number]["snapshot"].get("hygiene_handles") is True
