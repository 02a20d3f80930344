"""Who else can send as the mailbox (issue 15, point 5), whole cases over HTTP against the
sandbox with the real clients: FullAccess, SendAs and SendOnBehalf holders read through
Exchange (Get-Mailbox, Get-MailboxPermission, Get-RecipientPermission) and dated by the
unified audit log (Add-MailboxPermission, Add-RecipientPermission, Set-Mailbox
-GrantSendOnBehalfTo on this mailbox). A holder added inside the compromise window is
reported as the attacker's and never removed; an older one is kept; a holder added after the
case acted is the attacker still active."""

import uuid
from pathlib import Path
from typing import Any

import pytest

from remediation.adapters.local_worker import LocalWorker
from remediation.bootstrap import Application
from remediation.domain.cases import Case, CaseState
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import Fault, SandboxTenant, SandboxUser
from remediation.sandbox.delegation import FULL_ACCESS, SEND_AS, grant_recorded
from remediation.sandbox.seed import LYNNE_ASSISTANT, LYNNE_INTRUDER, STOLEN_ADMIN
from remediation.sandbox.unified_audit_log import hours_ago
from remediation.service.progress import progress
from tests.e2e.test_safety import LYNNE, app_for, remediate

STEP = "mailbox_permissions"
NESTOR = "nestor.wilke@contoso.com"


def found(case: Case) -> dict[str, dict[str, Any]]:
    step = case.done(STEP)
    assert step is not None, [(s.name, s.status.value, s.detail) for s in case.steps]
    return {entry["name"]: entry for entry in step.data["found"]}


def permission_writes(tenant: SandboxTenant) -> list[str]:
    """Any cmdlet the tenant saw that changes who holds a right on a mailbox."""
    changing = ("Add-MailboxPermission", "Remove-MailboxPermission", "Add-RecipientPermission",
                "Remove-RecipientPermission")
    return [str(r.cmdlet) for r in tenant.requests()
            if r.cmdlet in changing or (r.cmdlet == "Set-Mailbox"
                                        and "GrantSendOnBehalfTo" in r.body["CmdletInput"][
                                            "Parameters"])]


async def test_a_fullaccess_holder_added_inside_the_window_is_reported_and_never_removed(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = (await remediate(app, LYNNE))[LYNNE]
    await app.aclose()

    assert case.state is CaseState.VERIFIED, case.reason
    lynne = tenant.user(LYNNE)
    assert tenant.mailbox_grants.of(lynne, FULL_ACCESS) == [tenant.user(LYNNE_INTRUDER).id]
    assert permission_writes(tenant) == []
    entries = found(case)
    intruder = entries[f"{LYNNE_INTRUDER} (FullAccess)"]
    assert intruder["kind"] == "mailbox permission"
    assert intruder["disposition"] == "report"
    assert f"by {STOLEN_ADMIN}" in intruder["why"]
    assert "Add-MailboxPermission" in intruder["why"]
    assert "never removed automatically" in intruder["why"]
    assert intruder["added"] is not None and intruder["added_from"] == "audit log"
    plan = case.done("plan")
    assert plan is not None
    assert f"report mailbox permission {LYNNE_INTRUDER} (FullAccess)" in plan.detail
    assert (f"reported, left in place: mailbox permission {LYNNE_INTRUDER} (FullAccess)"
            in progress(case).not_done)
    step = case.done(STEP)
    assert step is not None and LYNNE_INTRUDER in step.detail
    assert step.data["changes"] == [] and step.data["removed"] == []


async def test_a_holder_with_no_record_in_the_window_is_kept(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = (await remediate(app, LYNNE))[LYNNE]
    await app.aclose()

    assistant = found(case)[f"{LYNNE_ASSISTANT} (SendOnBehalf)"]
    assert assistant["disposition"] == "keep"
    assert "no record of it being added since the window opened" in assistant["why"]
    assert LYNNE_ASSISTANT not in (case.done("plan").detail if case.done("plan") else "")


async def test_a_grant_typed_by_address_on_a_mailbox_with_an_older_name_is_dated(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """The ObjectId is the mailbox's Name as Get-Mailbox gives it (here an older, alias-like
    one); the accounts are named as the administrator typed them."""
    kim = tenant.add_user(SandboxUser("kim.akers@contoso.com", "Kim Akers",
                                      mailbox_name="kim_1ea0eb0f93"))
    tenant.block(kim.address)
    grant_recorded(tenant, kim, tenant.user(NESTOR), SEND_AS, actor=STOLEN_ADMIN,
                   at=hours_ago(5))
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = (await remediate(app, kim.address))[kim.address]
    await app.aclose()

    assert case.state is CaseState.VERIFIED, case.reason
    sender = found(case)[f"{NESTOR} (SendAs)"]
    assert sender["disposition"] == "report"
    assert "Add-RecipientPermission" in sender["why"]


async def _clean_then(app: Application, change: Any) -> Case:
    """Work the case up to its verification, change the tenant, then verify."""
    await app.requests.send(RemediationRequest(user=LYNNE, request_id=uuid.uuid4().hex))
    assert app.queue is not None
    await LocalWorker(app.queue, {app.settings.remediation_queue: app.handler.on_request},
                      poll_interval=0.05).run(until_idle=True)
    change()
    await app.worker(poll_interval=0.05, retry_backoff=0.05).run(until_idle=True)
    [case] = [c for c in await app.journal.list_cases() if c.user == LYNNE]
    return case


@pytest.mark.parametrize("holder", [NESTOR, LYNNE_INTRUDER])  # a new holder; a new right
async def test_send_as_given_after_the_case_acted_is_the_attacker_still_active(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, holder: str) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await _clean_then(app, lambda: grant_recorded(
        tenant, tenant.user(LYNNE), tenant.user(holder), SEND_AS, actor=STOLEN_ADMIN))
    await app.aclose()

    assert case.state is CaseState.ESCALATED
    assert "the attacker is still active" in (case.reason or "")
    assert f"mailbox permission {holder} (SendAs)" in (case.reason or "")


@pytest.mark.parametrize("unreadable", ["ingestion off", "not allowed"])
async def test_an_unreadable_audit_log_keeps_every_holder_and_says_why(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, unreadable: str) -> None:
    if unreadable == "ingestion off":
        tenant.unified_audit_log.ingestion_enabled = False
    else:
        tenant.add_fault(Fault(status=401, cmdlet="Search-UnifiedAuditLog", times=None,
                               code="Unauthorized",
                               message="User is not allowed to call Search-UnifiedAuditLog"))
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = (await remediate(app, LYNNE))[LYNNE]
    await app.aclose()

    assert case.state is CaseState.VERIFIED, case.reason
    entries = found(case)
    assert set(entries) == {f"{LYNNE_INTRUDER} (FullAccess)", f"{LYNNE_ASSISTANT} (SendOnBehalf)"}
    for entry in entries.values():
        assert entry["disposition"] == "keep"
        assert "the unified audit log could not be read" in entry["why"]
        assert ("UnifiedAuditLogIngestionEnabled" if unreadable == "ingestion off"
                else "not allowed to call Search-UnifiedAuditLog") in entry["why"]
