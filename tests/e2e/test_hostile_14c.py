"""Hostile tester 14c: what the third attack on issue 14 found (each test fails on the code
it was written against)."""

import uuid
from pathlib import Path
from typing import Any

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.domain.requests import RemediationRequest
from remediation.entrypoints.report import case_details
from remediation.sandbox import SandboxTenant
from remediation.sandbox.faults import Fault
from remediation.service.progress import changes, progress
from tests.conftest import sandbox_settings

LYNNE = "lynne.robbins@contoso.com"


def app_for(url: str, tenant: SandboxTenant, db: Path, **changes: Any) -> Application:
    return bootstrap(sandbox_settings(url, tenant, db, sweep_restricted_users=False, **changes))


async def remediate(app: Application, user: str) -> Case:
    await app.requests.send(RemediationRequest(user=user, request_id=uuid.uuid4().hex))
    await app.worker(poll_interval=0.05, retry_backoff=0.05).run(until_idle=True)
    [case] = [case for case in await app.journal.list_cases() if case.user == user]
    return case


async def test_a_rule_enabled_again_between_two_hygiene_attempts_is_disabled_again(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Lynne's two planted rules: the first PATCH succeeds (journaled as a ``partial`` note),
    the second meets a 503; meanwhile the attacker (an access token outlives the session
    revocation by about an hour) enables the first rule again. The retry skips the first
    rule because the note says it was disabled, the step says both are disabled, the block
    is lifted, the Exchange survey files the enabled rule as the hygiene step's (kept), so
    no check ever sees it: the case ends ``verified`` with the attacker's rule enabled."""
    user = tenant.user(LYNNE)
    patched: list[str] = []
    real_update = tenant.update_rule

    def update_rule(address_or_id: str, rule_id: str, change: dict[str, Any]) -> Any:
        patched.append(rule_id)
        return real_update(address_or_id, rule_id, change)

    real_take = tenant.take_fault

    def take_fault(method: str, path: str, cmdlet: str | None, target: str | None) -> Any:
        fault = real_take(method, path, cmdlet, target)
        if fault is not None and method == "PATCH" and "messageRules" in path and patched:
            real_update(user.id, patched[0], {"isEnabled": True})  # the attacker's token
        return fault

    tenant.update_rule = update_rule  # type: ignore[method-assign]
    tenant.take_fault = take_fault  # type: ignore[method-assign]
    tenant.add_fault(Fault(status=503, method="PATCH", path="messageRules", after=1, times=1))
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, LYNNE)
    await app.aclose()

    step = case.done("mailbox_hygiene")
    assert step is not None
    said_disabled = {f["rule_id"]: f["name"] for f in step.data["findings"] if f["rule_id"]}
    enabled = {rule["id"] for rule in tenant.inbox_rules(user.id) if rule.get("isEnabled")}
    still = [name for rule_id, name in said_disabled.items() if rule_id in enabled]
    assert not (case.state is CaseState.VERIFIED and still), (
        f"case {case.state.value}, its hygiene step says it disabled {still}, which the "
        f"tenant shows enabled: {step.detail}")


async def test_a_rule_disabled_by_hygiene_is_one_change_in_status_and_cards(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """No fault at all: Lynne's two rules are disabled. The hygiene step's ``partial`` notes
    are never taken in by its finished step (only cleanup steps carry ``changes``), so each
    rule is listed twice in ``status --user``'s "changes made" (once with no undo at all:
    "-") and twice in the escalation card's done list."""
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, LYNNE)
    await app.aclose()
    assert case.state is CaseState.VERIFIED

    made = changes(case)
    undo = [change for change in made if change.undo.strip() in ("", "-")]
    assert not undo, ("changes made with no undo:\n" + case_details(case))
    done = progress(case).done
    invoices = [line for line in done if "Invoices" in line]
    assert len(invoices) == 1, f"one rule disabled once, the card's done list says: {invoices}"


async def test_a_grant_never_revoked_is_not_done_when_the_methods_step_finished(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Lynne's plan: remove her attacker's Authenticator, revoke the Mail Organizer Pro grant,
    disable the hidden forwarding rule. The methods step finishes; every revocation meets a
    503 until the case gives up and escalates. The card's "not done" list takes the plan's
    "not removed" lines only while no cleanup step has finished, so it says nothing of the
    grant that still reads her mail nor of the hidden rule that still forwards it."""
    tenant.add_fault(Fault(status=503, method="DELETE", path="oauth2PermissionGrants",
                           times=None))
    app = app_for(sandbox_url, tenant, tmp_path / "db", max_delivery_count=3)
    case = await remediate(app, LYNNE)
    await app.aclose()
    assert case.state is CaseState.ESCALATED
    assert case.done("signin_methods") is not None and case.done("consent_grants") is None

    not_done = progress(case).not_done
    assert any("Mail Organizer Pro" in line for line in not_done), (
        f"the grant left in place is not in the card's not-done list: {not_done}")
    assert any("not shown by Graph" in line or "'.'" in line for line in not_done), (
        f"the hidden rule left enabled is not in the card's not-done list: {not_done}")
