"""App consents (issue 15, point 3), over HTTP against the sandbox tenant with the real
msgraph-sdk client: a consent the account gave inside the compromise window is revoked after
the session revocation and before the unblock; older grants are kept, mail apps from
unverified publishers reported; an admin consent for everyone is never a user case's to
remove; a consent given after the case acted is the attacker still active."""

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState, StepStatus
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import SandboxTenant, SandboxUser
from remediation.sandbox.clock import utc_now
from remediation.sandbox.consents import ServicePrincipal, give_consent, grant_id
from tests.conftest import sandbox_settings

KIM = "kim.akers@contoso.com"


def kim(tenant: SandboxTenant) -> SandboxUser:
    user = tenant.add_user(SandboxUser(KIM, "Kim Akers"))
    tenant.block(KIM)
    return user


def app(tenant: SandboxTenant, name: str, verified: str | None = None) -> ServicePrincipal:
    return tenant.consents.add_app(ServicePrincipal(name, publisher_name=name,
                                                    verified_publisher=verified))


def consent(tenant: SandboxTenant, user: SandboxUser, client: ServicePrincipal, scope: str,
            ago: timedelta, **options: Any) -> dict[str, Any]:
    return give_consent(tenant.consents, tenant.audit_log, user_id=user.id,
                        upn=user.user_principal_name, app=client, scope=scope,
                        at=utc_now() - ago, **options)


def granted(tenant: SandboxTenant) -> set[str]:
    return {grant["id"] for grant in tenant.consents.grants()}


def calls(tenant: SandboxTenant) -> list[str]:
    """The writes the tenant saw, in arrival order."""
    names = []
    for request in tenant.requests():
        if request.path.endswith("/revokeSignInSessions"):
            names.append("revoke")
        elif request.method == "DELETE" and "/oauth2PermissionGrants/" in request.path:
            names.append(f"revoke grant {request.path.rsplit('/', 1)[-1]}")
        elif request.cmdlet == "Remove-BlockedSenderAddress":
            names.append("unblock")
    return names


async def remediate(app_: Application, user: str) -> Case:
    return await app_.workflow.remediate(RemediationRequest(user, request_id=uuid.uuid4().hex))


async def run(url: str, tenant: SandboxTenant, db: Path, **settings: object) -> Case:
    application = bootstrap(sandbox_settings(url, tenant, db, **settings))
    try:
        await remediate(application, KIM)
        await application.worker(poll_interval=0.05).run(until_idle=True)
        case = await application.journal.latest_case(KIM)
    finally:
        await application.aclose()
    assert case is not None
    return case


def step(case: Case, name: str = "consent_grants") -> Any:
    found = case.done(name)
    assert found is not None, [(s.name, s.status.value, s.detail) for s in case.steps]
    return found


async def test_a_consent_given_inside_the_window_is_revoked_between_revocation_and_unblock(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    user = kim(tenant)
    reader = app(tenant, "Mail Reader Pro")  # no verified publisher
    expenses = app(tenant, "Contoso Expenses", verified="Contoso Ltd")
    planted = consent(tenant, user, reader, " Mail.Read Mail.Send offline_access User.Read",
                      timedelta(hours=3))
    # The owner's, from before the audit log's retention: no record of it any more.
    older = consent(tenant, user, expenses, " User.Read openid profile", timedelta(days=60),
                    logged=False)

    case = await run(sandbox_url, tenant, tmp_path / "db")

    assert case.state is CaseState.VERIFIED, case.reason
    assert granted(tenant) >= {older["id"]}
    assert planted["id"] not in granted(tenant)
    assert calls(tenant) == ["revoke", f"revoke grant {planted['id']}", "unblock"]
    cleaned = step(case)
    assert cleaned.data["removed"] == [planted["id"]]
    [change] = cleaned.data["changes"]
    assert "Mail Reader Pro" in change["what"] and "Mail.Read Mail.Send" in change["what"]
    assert "POST to oauth2PermissionGrants" in change["undo"]
    body = json.loads(change["undo"].split("and the body ", 1)[1])
    assert body == {"clientId": reader.id, "consentType": "Principal", "principalId": user.id,
                    "resourceId": tenant.consents.graph.id,
                    "scope": "Mail.Read Mail.Send offline_access User.Read"}
    found = {entry["key"]: entry for entry in cleaned.data["found"]}
    snapshot = found[planted["id"]]["snapshot"]
    assert snapshot["appId"] == reader.app_id and snapshot["publisher"] is None
    assert "about an hour" in snapshot["tokens"]
    assert found[older["id"]]["disposition"] == "keep"
    plan = step(case, "plan")
    assert "remove consent grant Mail Reader Pro" in plan.detail
    assert "1 older kept" in cleaned.detail


async def test_an_older_mail_grant_of_an_unverified_app_is_reported_and_kept(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    user = kim(tenant)
    reader = app(tenant, "Inbox Zero Helper")
    verified = app(tenant, "Contoso Mail Sync", verified="Contoso Ltd")
    ordinary = app(tenant, "Team Lunch Planner")  # unverified, but no mail permission
    mail_old = consent(tenant, user, reader, " Mail.ReadWrite offline_access", timedelta(days=20))
    synced = consent(tenant, user, verified, " Mail.Read", timedelta(days=20))
    lunch = consent(tenant, user, ordinary, " User.Read Calendars.Read", timedelta(days=20))

    case = await run(sandbox_url, tenant, tmp_path / "db")

    assert case.state is CaseState.VERIFIED, case.reason
    assert granted(tenant) >= {mail_old["id"], synced["id"], lunch["id"]}
    assert not [c for c in calls(tenant) if c.startswith("revoke grant")]
    found = {entry["key"]: entry for entry in step(case).data["found"]}
    assert found[mail_old["id"]]["disposition"] == "report"
    assert "publisher is not verified" in found[mail_old["id"]]["why"]
    assert "offline_access" in found[mail_old["id"]]["why"]
    assert found[synced["id"]]["disposition"] == "keep"
    assert found[lunch["id"]]["disposition"] == "keep"
    assert "report consent grant Inbox Zero Helper" in step(case, "plan").detail


async def test_report_mode_changes_nothing(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    user = kim(tenant)
    planted = consent(tenant, user, app(tenant, "Mail Reader Pro"), " Mail.Read",
                      timedelta(hours=3))

    case = await run(sandbox_url, tenant, tmp_path / "db", signin_cleanup="report")

    assert case.state is CaseState.VERIFIED, case.reason
    assert planted["id"] in granted(tenant)
    assert calls(tenant) == ["revoke", "unblock"]
    cleaned = step(case)
    assert cleaned.data["removed"] == [] and cleaned.data["changes"] == []
    assert "reported Mail Reader Pro" in cleaned.detail
    assert "report consent grant Mail Reader Pro" in step(case, "plan").detail


async def test_an_admin_consent_for_everyone_is_never_removed_by_a_user_case(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    user = kim(tenant)
    admin = tenant.user("patti.fernandez@contoso.com")
    harvester = app(tenant, "Mailbox Archiver Free")
    portal = app(tenant, "Contoso HR Portal", verified="Contoso Ltd")
    # Consented for the whole organisation: by this account inside the window, and by an
    # administrator for an unverified mail app; a verified app's admin consent is no concern.
    by_kim = consent(tenant, user, portal, " User.Read", timedelta(hours=5), for_everyone=True)
    by_admin = give_consent(tenant.consents, tenant.audit_log, user_id=admin.id,
                            upn=admin.user_principal_name, app=harvester,
                            scope="Mail.Read offline_access", at=utc_now() - timedelta(days=2),
                            for_everyone=True)

    case = await run(sandbox_url, tenant, tmp_path / "db")

    assert case.state is CaseState.VERIFIED, case.reason
    assert granted(tenant) >= {by_kim["id"], by_admin["id"]}
    assert not [c for c in calls(tenant) if c.startswith("revoke grant")]
    found = {entry["key"].split()[0]: entry for entry in step(case).data["found"]}
    for grant in (by_kim, by_admin):
        assert found[grant["id"]]["disposition"] == "report"
        assert "an administrator must decide" in found[grant["id"]]["why"]
    assert "this account" in found[by_kim["id"]]["why"]


@pytest.mark.parametrize("again", ["another app", "the revoked app"])
async def test_a_consent_given_after_the_case_acted_is_the_attacker_still_active(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, again: str) -> None:
    user = kim(tenant)
    reader = app(tenant, "Mail Reader Pro")
    planted = consent(tenant, user, reader, " Mail.Read offline_access", timedelta(hours=3))
    application = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db",
                                             return_action="disable"))
    try:
        case = await remediate(application, KIM)
        assert case.state is CaseState.AWAITING_VERIFICATION, case.reason
        assert planted["id"] not in granted(tenant)
        # The attacker phishes the account again: the same grant comes back (same id), or
        # another app's.
        client = reader if again == "the revoked app" else app(tenant, "Secure Doc Viewer")
        back = consent(tenant, user, client, " Mail.ReadWrite", timedelta(0))
        assert (back["id"] == planted["id"]) is (client is reader)
        await application.worker(poll_interval=0.05).run(until_idle=True)
        case = await application.journal.latest_case(KIM)  # type: ignore[assignment]
    finally:
        await application.aclose()

    assert case is not None and case.state is CaseState.ESCALATED
    assert "the attacker is still active" in (case.reason or "")
    assert f"consent grant {client.display_name}" in (case.reason or "")
    assert "sign-in blocked" in (case.reason or "")
    assert user.account_enabled is False


async def test_a_graph_that_refuses_the_principal_filter_is_read_whole(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    tenant.consents.principal_filter_refused = True
    user = kim(tenant)
    planted = consent(tenant, user, app(tenant, "Mail Reader Pro"), " Mail.Read",
                      timedelta(hours=3))
    other = tenant.user("alex.wilber@contoso.com")  # someone else's grant stays theirs
    theirs = give_consent(tenant.consents, tenant.audit_log, user_id=other.id,
                          upn=other.user_principal_name, app=app(tenant, "Other App"),
                          scope="Mail.Read", at=utc_now() - timedelta(hours=1))

    case = await run(sandbox_url, tenant, tmp_path / "db")

    assert case.state is CaseState.VERIFIED, case.reason
    assert planted["id"] not in granted(tenant) and theirs["id"] in granted(tenant)
    refused = [r for r in tenant.requests() if r.path == "/v1.0/oauth2PermissionGrants"
               and r.status == 400]
    assert refused and "principalId" in refused[0].query["$filter"]
    assert [k for k in (e["key"] for e in step(case).data["found"])] == [planted["id"]]


async def test_a_revocation_graph_refuses_escalates_naming_the_consent_and_keeps_the_block(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    tenant.denied_permissions.add("DelegatedPermissionGrant.ReadWrite.All")
    user = kim(tenant)
    planted = consent(tenant, user, app(tenant, "Mail Reader Pro"), " Mail.Read",
                      timedelta(hours=3))

    case = await run(sandbox_url, tenant, tmp_path / "db", http_max_retries=0)

    assert case.state is CaseState.ESCALATED
    assert "consent grant Mail Reader Pro" in (case.reason or "")
    assert "403 Authorization_RequestDenied" in (case.reason or "")
    assert planted["id"] in granted(tenant)
    assert KIM in tenant.blocked_addresses()
    assert "unblock" not in calls(tenant)
    assert any(s.name == "consent_grants" and s.status is StepStatus.FAILED for s in case.steps)


async def test_without_the_audit_log_nothing_is_taken_for_the_owners(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    tenant.denied_permissions.add("AuditLog.Read.All")
    user = kim(tenant)
    planted = consent(tenant, user, app(tenant, "Mail Reader Pro"), " Mail.Read",
                      timedelta(hours=3))

    case = await run(sandbox_url, tenant, tmp_path / "db", http_max_retries=0)

    assert case.state is CaseState.ESCALATED
    assert "read consents in the audit log" in (case.reason or "")
    assert "403" in (case.reason or "")
    assert planted["id"] in granted(tenant)
    assert KIM in tenant.blocked_addresses()
    # An unreadable audit log stops the cleanup, not the securing: reset and revoked first.
    assert len(tenant.user(KIM).password_changes) == 1
    assert "revoke" in calls(tenant)
    plan = case.done("plan")
    assert plan is not None and "escalate after the reset" in plan.detail


def test_grant_ids_are_graphs_the_documented_example_decodes_so() -> None:
    # user-list-oauth2permissiongrants.md: clientId, resourceId, principalId -> id.
    assert grant_id("85477313-ea43-4c7d-b8a4-54fed35d0b60",
                    "27fb395a-fb00-45fe-865e-e71db689eea0",
                    "7d54cb02-aaa3-4016-9f9c-a4b49422dd9b") == (
        "E3NHhUPqfUy4pFT-010LYFo5-ycA-_5Fhl7nHbaJ7qACy1R9o6oWQJ-cpLSUIt2b")
