"""The safety rails end to end: real clients over HTTP against the sandbox tenant."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import SandboxTenant, SandboxUser
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence
from remediation.sandbox.seed import BREAK_GLASS_GROUP_ID
from remediation.service.messages import Approval
from tests.conftest import sandbox_settings

GRACE, ISAIAH, MIRIAM = ("grace.taylor@contoso.com", "isaiah.langer@contoso.com",
                         "miriam.graham@contoso.com")
PATTI, LYNNE, ADELE = ("patti.fernandez@contoso.com", "lynne.robbins@contoso.com",
                       "adele.vance@contoso.com")
GUEST = "pradeep.gupta@fabrikam.com"


def app_for(url: str, tenant: SandboxTenant, db: Path, **changes: Any) -> Application:
    settings = sandbox_settings(url, tenant, db, sweep_restricted_users=False,
                                protected_group_ids=frozenset({BREAK_GLASS_GROUP_ID}),
                                **changes)
    return bootstrap(settings)


async def remediate(app: Application, *users: str, source: str = "manual") -> dict[str, Case]:
    for user in users:
        await app.requests.send(RemediationRequest(user=user, source=source,
                                                   request_id=uuid.uuid4().hex))
    await app.worker(poll_interval=0.05, retry_backoff=0.05).run(until_idle=True)
    return {case.user: case for case in await app.journal.list_cases()}


READ_CMDLETS = ("Get-", "Search-")  # Exchange's verbs that only read


def writes(tenant: SandboxTenant) -> list[Any]:
    return [r for r in tenant.requests()
            if r.method in ("PATCH", "POST", "PUT", "DELETE")
            and not (r.cmdlet or "").startswith(READ_CMDLETS)]


def changed(tenant: SandboxTenant, user: str) -> list[str]:
    return [f"{r.method} {r.cmdlet or r.path}" for r in writes(tenant) if r.target == user]


async def test_accounts_the_robot_must_not_reset_are_escalated_untouched(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    cases = await remediate(app, GRACE, PATTI, GUEST, ISAIAH, MIRIAM)
    await app.aclose()

    reasons = {user: case.reason or "" for user, case in cases.items()}
    assert "protected group" in reasons[GRACE]
    assert "directory role" in reasons[PATTI]
    assert "guest account" in reasons[GUEST]
    assert "on-premises" in reasons[ISAIAH]
    assert "disabled" in reasons[MIRIAM]
    assert {u: c.state for u, c in cases.items()} == {
        GRACE: CaseState.ESCALATED, PATTI: CaseState.ESCALATED, GUEST: CaseState.ESCALATED,
        ISAIAH: CaseState.ESCALATED, MIRIAM: CaseState.ESCALATED}
    for user in (GRACE, PATTI, GUEST, MIRIAM):
        assert changed(tenant, user) == [], user
    # A synced account: sessions revoked (the one thing the cloud can do), nothing else.
    assert [r.path.rsplit("/", 1)[-1] for r in writes(tenant)
            if r.target == ISAIAH] == ["revokeSignInSessions"]
    assert all(not u.password_changes for u in tenant.users())
    assert tenant.removals == []


async def test_suspicious_rules_are_disabled_and_forwarding_cleared_ordinary_rules_stay(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    cases = await remediate(app, LYNNE)
    await app.aclose()

    lynne = tenant.user(LYNNE)
    enabled = {rule["displayName"]: rule["isEnabled"] for rule in lynne.inbox_rules}
    assert sorted(enabled.values()).count(False) == 2
    ordinary = [name for name, on in enabled.items() if on]
    assert len(ordinary) == 1
    assert lynne.forwarding_smtp_address is None
    assert cases[LYNNE].state is CaseState.VERIFIED
    hygiene = cases[LYNNE].done("mailbox_hygiene")
    assert hygiene is not None
    snapshots = hygiene.data["findings"]
    assert len(snapshots) == 3  # two rules and the mailbox forwarding, kept for review
    assert any("evil-mail.example" in json.dumps(s) for s in snapshots)
    order = [r.cmdlet or r.method for r in writes(tenant) if r.target == LYNNE]
    assert order.index("Set-Mailbox") < order.index("Remove-BlockedSenderAddress")


async def test_report_mode_changes_no_rule(sandbox_url: str, tenant: SandboxTenant,
                                           tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db", mailbox_hygiene="report")
    cases = await remediate(app, LYNNE)
    await app.aclose()

    assert all(rule["isEnabled"] for rule in tenant.user(LYNNE).inbox_rules)
    assert tenant.user(LYNNE).forwarding_smtp_address is not None
    hygiene = cases[LYNNE].done("mailbox_hygiene")
    assert hygiene is not None
    assert "reported and left as they are" in hygiene.detail


async def test_the_breaker_holds_at_the_limit_with_concurrent_workers(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    storm = [f"burst{n:02d}@contoso.com" for n in range(12)]
    for address in storm:
        tenant.add_user(SandboxUser(address, address))
        tenant.block(address)
    tenant.latency = 0.02
    first = app_for(sandbox_url, tenant, tmp_path / "db", max_remediations_per_hour=5)
    second = app_for(sandbox_url, tenant, tmp_path / "db", max_remediations_per_hour=5)
    for address in storm:
        await first.requests.send(RemediationRequest(user=address, source="alert",
                                                     request_id=uuid.uuid4().hex))
    await asyncio.gather(  # two worker processes' worth of workers on one journal
        first.worker(concurrency=6, poll_interval=0.05).run(until_idle=True),
        second.worker(concurrency=6, poll_interval=0.05).run(until_idle=True))
    cases = await first.journal.list_cases()
    await first.aclose()
    await second.aclose()

    resets = [u for u in tenant.users() if u.password_changes]
    assert len(resets) == 5
    held = [c for c in cases if "circuit breaker open" in (c.reason or "")]
    assert len(held) == 7
    assert all(c.state is CaseState.ESCALATED for c in held)
    assert len(tenant.removals) == 5


async def test_a_forced_manual_request_passes_the_open_breaker(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db", max_remediations_per_hour=0)
    await app.requests.send(RemediationRequest(user=ADELE, force=True,
                                               request_id=uuid.uuid4().hex))
    await app.worker(poll_interval=0.05).run(until_idle=True)
    [case] = await app.journal.list_cases()
    await app.aclose()

    assert case.state is CaseState.VERIFIED
    breaker = case.done("circuit_breaker")
    assert breaker is not None
    assert "bypassed" in breaker.detail


async def test_dry_run_reads_everything_and_writes_nothing(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    raw = alert(RESTRICTED, [mailbox_evidence(LYNNE)])
    tenant.add_alert(raw)
    app = app_for(sandbox_url, tenant, tmp_path / "db", mode="dry-run")
    await app.intake.poll()
    cases = await remediate(app, ADELE, GRACE)
    await app.aclose()

    assert writes(tenant) == []
    assert {u: c.state for u, c in cases.items()} == {
        LYNNE: CaseState.PLANNED, ADELE: CaseState.PLANNED, GRACE: CaseState.ESCALATED}
    plan = cases[LYNNE].done("plan")
    assert plan is not None
    assert any("disable" in action for action in plan.data["actions"])
    assert "remove the block" in plan.detail
    assert any(r.cmdlet == "Get-Mailbox" for r in tenant.requests())
    assert tenant.alert(raw["id"])["status"] == "new"


async def test_approve_mode_waits_for_alert_cases_and_proceeds_on_approval(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db", mode="approve")
    cases = await remediate(app, LYNNE, source="alert")
    cases.update(await remediate(app, ADELE))  # manual: proceeds at once
    waiting = cases[LYNNE]
    assert waiting.state is CaseState.AWAITING_APPROVAL
    assert (waiting.reason or "").startswith("waiting for approval: reset the password")
    assert cases[ADELE].state is CaseState.VERIFIED
    assert changed(tenant, LYNNE) == []

    await app.requests.send_approval(Approval(waiting.case_id, LYNNE, "security lead"))
    await app.worker(poll_interval=0.05).run(until_idle=True)
    approved = await app.journal.get_case(waiting.case_id)
    await app.aclose()

    assert approved is not None
    assert approved.state is CaseState.VERIFIED
    assert any(s.name == "approved" and "security lead" in s.detail for s in approved.steps)
    assert len(tenant.user(LYNNE).password_changes) == 1


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    failures = [500]  # the first post fails: the notice must be retried

    async def receive(request: web.Request) -> web.Response:
        if failures:
            return web.Response(status=failures.pop())
        received.append(await request.json())
        return web.Response(text="1")

    server = web.Application()
    server.router.add_post("/hook/secret-key", receive)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/hook/secret-key", received
    await runner.cleanup()


async def test_escalations_reach_the_webhook(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
        webhook: tuple[str, list[dict[str, Any]]], caplog: pytest.LogCaptureFixture) -> None:
    url, received = webhook
    app = app_for(sandbox_url, tenant, tmp_path / "db", escalation_webhook_url=url)
    cases = await remediate(app, GRACE, ADELE)
    await app.aclose()

    [post] = received  # a Teams Workflows message with one Adaptive Card
    [attachment] = post["attachments"]
    card = attachment["content"]
    assert (post["type"], card["type"], card["version"]) == ("message", "AdaptiveCard", "1.4")
    facts = {fact["title"]: fact["value"] for item in card["body"]
             if item["type"] == "FactSet" for fact in item["facts"]}
    assert facts["Case"] == cases[GRACE].case_id
    assert facts["Account"] == GRACE
    assert "protected group" in facts["Reason"]
    assert facts["Journal"] == f"remediation status --user {GRACE}"
    assert cases[GRACE].done("webhook:escalated") is not None
    assert cases[ADELE].state is CaseState.VERIFIED  # the webhook never held anything up
    assert "secret-key" not in caplog.text
