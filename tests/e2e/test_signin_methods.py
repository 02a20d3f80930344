"""Sign-in methods the attacker registered, end to end: the real msgraph-sdk client against the
sandbox's Graph (methods, deletes, the directory audit log) through whole cases."""

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from remediation.adapters.local_worker import LocalWorker
from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import SandboxTenant
from remediation.sandbox.clock import utc_now
from remediation.sandbox.seed import ATTACKER_DEVICE, LYNNE_PHONE
from remediation.sandbox.signin_methods import (
    PASSWORD_METHOD_ID,
    SandboxMethod,
    authenticator,
    phone,
    software_oath,
)
from tests.conftest import sandbox_settings

LYNNE, ADELE = "lynne.robbins@contoso.com", "adele.vance@contoso.com"
ATTACKER_PHONE = "+44 7700 900123"
STEP = "signin_methods"


def app_for(url: str, tenant: SandboxTenant, db: Path, **changes: Any) -> Application:
    return bootstrap(sandbox_settings(url, tenant, db, sweep_restricted_users=False, **changes))


async def remediate(app: Application, user: str) -> Case:
    await app.requests.send(RemediationRequest(user=user, request_id=uuid.uuid4().hex))
    await app.worker(poll_interval=0.05, retry_backoff=0.05).run(until_idle=True)
    [case] = [case for case in await app.journal.list_cases() if case.user == user]
    return case


def register(tenant: SandboxTenant, user: str, method: SandboxMethod, **options: Any) -> None:
    tenant.signin.register(tenant.user(user).id, user, method, **options)


def held(tenant: SandboxTenant, user: str) -> list[str]:
    return [m.odata_type for m in tenant.signin.held(tenant.user(user).id)]


def deletes(tenant: SandboxTenant) -> list[str]:
    return [r.path.split("/authentication/", 1)[1] for r in tenant.requests()
            if r.method == "DELETE" and "/authentication/" in r.path]


def found(case: Case) -> dict[str, dict[str, Any]]:
    steps = [step for step in case.steps if step.name == STEP and "found" in step.data]
    assert steps, f"no {STEP} step found anything"
    return {entry["name"]: entry for entry in steps[-1].data["found"]}


async def test_a_method_registered_in_the_window_is_removed_between_revocation_and_unblock(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, LYNNE)
    await app.aclose()

    assert case.state is CaseState.VERIFIED
    assert held(tenant, LYNNE) == ["phoneAuthenticationMethod"]  # her own, older phone
    assert len(deletes(tenant)) == 1
    assert deletes(tenant)[0].startswith("microsoftAuthenticatorMethods/")
    order = [r.cmdlet or r.path.split("/")[-1 if r.method == "POST" else -2]
             for r in tenant.requests() if r.target == LYNNE and r.method in ("POST", "DELETE")]
    assert order.index("revokeSignInSessions") < order.index("microsoftAuthenticatorMethods")
    assert order.index("microsoftAuthenticatorMethods") < order.index(
        "Remove-BlockedSenderAddress")
    step = case.done(STEP)
    assert step is not None
    [change] = step.data["changes"]
    assert change["what"] == f"removed sign-in method Microsoft Authenticator on {ATTACKER_DEVICE}"
    assert f"re-register the Authenticator app on {ATTACKER_DEVICE}" in change["undo"]
    entries = found(case)
    removed = entries[f"Microsoft Authenticator on {ATTACKER_DEVICE}"]
    assert removed["added_from"] == "createdDateTime"
    assert removed["snapshot"]["device"] == ATTACKER_DEVICE
    kept = entries["phone +• ••• ••• ••42 (mobile)"]
    assert (kept["disposition"], kept["added_from"]) == ("keep", "audit log")
    assert kept["snapshot"]["phone_number"] == "+• ••• ••• ••42"
    # The reset dated the password inside the window: it is never removed all the same.
    assert entries["password"]["disposition"] == "keep"
    assert not any(PASSWORD_METHOD_ID in path for path in deletes(tenant))
    assert LYNNE_PHONE not in json.dumps(step.data)


async def test_report_mode_removes_nothing_and_says_what_it_found(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db", signin_cleanup="report")
    case = await remediate(app, LYNNE)
    await app.aclose()

    assert case.state is CaseState.VERIFIED
    assert deletes(tenant) == []
    assert sorted(held(tenant, LYNNE)) == ["microsoftAuthenticatorAuthenticationMethod",
                                           "phoneAuthenticationMethod"]
    step = case.done(STEP)
    assert step is not None and step.data["changes"] == []
    assert f"reported Microsoft Authenticator on {ATTACKER_DEVICE}" in step.detail


async def test_a_dry_run_plans_the_removal_and_changes_nothing(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db", mode="dry-run")
    case = await remediate(app, LYNNE)
    await app.aclose()

    assert case.state is CaseState.PLANNED
    plan = case.done("plan")
    assert plan is not None
    assert f"remove sign-in method Microsoft Authenticator on {ATTACKER_DEVICE}" in plan.detail
    assert deletes(tenant) == []


async def test_a_phone_graph_gives_no_date_for_is_dated_by_the_audit_log_and_removed(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    now = utc_now()
    register(tenant, ADELE, authenticator("Adele's iPhone", registered=now - timedelta(days=90)),
             default=True)
    register(tenant, ADELE, phone(ATTACKER_PHONE, registered=now - timedelta(hours=3)))
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, ADELE)
    await app.aclose()

    assert case.state is CaseState.VERIFIED
    assert held(tenant, ADELE) == ["microsoftAuthenticatorAuthenticationMethod"]
    assert deletes(tenant) == ["phoneMethods/3179e48a-750b-4051-897c-87b9720928f7"]
    entry = found(case)["phone +•• •••• ••••23 (mobile)"]
    assert (entry["disposition"], entry["added_from"]) == ("remove", "audit log")
    step = case.done(STEP)
    assert step is not None
    assert "add the phone +•• •••• ••••23 (mobile) again" in step.data["changes"][0]["undo"]
    audit = [r for r in tenant.requests() if r.path == "/v1.0/auditLogs/directoryAudits"]
    assert audit and all(r.status == 200 for r in audit)


async def test_a_method_nobody_can_date_is_reported_and_kept(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    # Registered before the audit log's memory (or lost to it): no createdDateTime, no record.
    register(tenant, ADELE, phone(ATTACKER_PHONE), audit=False)
    register(tenant, ADELE, software_oath("JBSWY3DPEHPK3PXPnot-a-real-key"), audit=False)
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, ADELE)
    await app.aclose()

    assert case.state is CaseState.VERIFIED
    assert deletes(tenant) == []
    entries = found(case)
    for name in ("phone +•• •••• ••••23 (mobile)", "authenticator app (OATH code)"):
        assert entries[name]["disposition"] == "report", name
        assert entries[name]["added_from"] == "unknown"
        assert "7 days" in entries[name]["why"] and "30" in entries[name]["why"]
    step = case.done(STEP)
    assert step is not None and "reported" in step.detail
    assert "not-a-real-key" not in json.dumps([s.data for s in case.steps])


async def test_a_default_method_graph_will_not_delete_escalates_naming_it_and_the_block_stays(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    now = utc_now()
    register(tenant, ADELE, authenticator("Adele's iPhone", registered=now - timedelta(days=90)))
    register(tenant, ADELE, phone(ATTACKER_PHONE, registered=now - timedelta(hours=3)),
             default=True)
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, ADELE)
    await app.aclose()

    assert case.state is CaseState.ESCALATED
    reason = case.reason or ""
    assert "phone +•• •••• ••••23 (mobile) stayed" in reason
    assert "default" in reason and "v1.0" in reason
    assert ATTACKER_PHONE not in reason
    assert sorted(held(tenant, ADELE)) == ["microsoftAuthenticatorAuthenticationMethod",
                                           "phoneAuthenticationMethod"]
    assert ADELE in tenant.blocked_addresses()  # not unblocked while it stays
    assert not [r for r in tenant.requests() if r.cmdlet == "Remove-BlockedSenderAddress"]


async def test_a_phone_registered_again_after_the_case_acted_is_the_attacker_back(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    now = utc_now()
    register(tenant, ADELE, phone(ATTACKER_PHONE, registered=now - timedelta(hours=3)))
    app = app_for(sandbox_url, tenant, tmp_path / "db", return_action="disable")
    await app.requests.send(RemediationRequest(user=ADELE, request_id=uuid.uuid4().hex))
    assert app.queue is not None
    await LocalWorker(app.queue, {app.settings.remediation_queue: app.handler.on_request},
                      poll_interval=0.05).run(until_idle=True)
    assert held(tenant, ADELE) == []
    # The same number again: Graph gives it the same fixed id as the one the case removed.
    register(tenant, ADELE, phone(ATTACKER_PHONE))

    await app.worker(poll_interval=0.05).run(until_idle=True)
    [case] = await app.journal.list_cases()
    await app.aclose()

    assert case.state is CaseState.ESCALATED
    assert "the attacker is still active" in (case.reason or "")
    assert "sign-in method phone +•• •••• ••••23 (mobile)" in (case.reason or "")
    assert tenant.user(ADELE).account_enabled is False  # RETURN_ACTION=disable


async def test_an_audit_log_the_app_may_not_read_escalates_with_the_permission_named(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    tenant.denied_permissions.add("AuditLog.Read.All")  # Lynne's phone needs the audit log
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, LYNNE)
    await app.aclose()

    assert case.state is CaseState.ESCALATED
    reason = case.reason or ""
    assert "directory audit log" in reason and "403" in reason and "permissions" in reason
    assert deletes(tenant) == []  # nothing is removed on half a picture
    assert LYNNE in tenant.blocked_addresses()


async def test_a_type_graph_v1_cannot_delete_escalates_naming_it(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    # A beta-only type (v1.0 lists only its own types, but the robot must not assume so).
    register(tenant, ADELE, SandboxMethod("hardwareOathAuthenticationMethod",
                                          {"displayName": "Token 42"}))
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, ADELE)
    await app.aclose()

    assert case.state is CaseState.ESCALATED
    assert "hardwareOathAuthenticationMethod Token 42 stayed: the robot does not delete" in (
        case.reason or "")
    assert deletes(tenant) == [] and ADELE in tenant.blocked_addresses()
