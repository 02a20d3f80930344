"""Whole cases, from a queued request to a final state, with the real clients over HTTP."""

import asyncio
import re
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.domain.errors import TransientError
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import Fault, SandboxTenant, SandboxUser
from tests.conftest import sandbox_settings

ADELE, PATTI = "adele.vance@contoso.com", "patti.fernandez@contoso.com"


async def run_requests(url: str, tenant: SandboxTenant, db: Path, *users: str,
                       **settings: object) -> tuple[Application, dict[str, Case]]:
    app = bootstrap(sandbox_settings(url, tenant, db, **settings))
    for user in users:
        await app.requests.send(RemediationRequest(user=user, request_id=uuid.uuid4().hex))
    await app.worker(poll_interval=0.05).run(until_idle=True)
    cases = {case.user: case for case in await app.journal.list_cases()}
    return app, cases


def tenant_calls(tenant: SandboxTenant, user: str) -> list[str]:
    """What the tenant was asked to do about ``user``, in arrival order."""
    names = []
    for request in tenant.requests():
        if request.target != user:
            continue
        if request.cmdlet:
            names.append(request.cmdlet)
        elif request.method == "PATCH":
            names.append("reset")
        elif request.path.endswith("/revokeSignInSessions"):
            names.append("revoke")
        elif request.path.count("/") > 3:  # /v1.0/users/{id}/something
            names.append(f"{request.method} {request.path.rsplit('/', 1)[-1]}")
        else:
            names.append(f"{request.method} user")
    return names


# Who holds FullAccess, SendOnBehalf (Get-Mailbox) and SendAs: three reads a survey; the audit
# log is searched for them only when somebody does.
HOLDERS = ("Get-Mailbox", "Get-MailboxPermission", "Get-RecipientPermission")


async def test_blocked_user_is_secured_unblocked_then_verified(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", ADELE)
    await app.aclose()
    case = cases[ADELE]
    assert case.state is CaseState.VERIFIED
    calls = tenant_calls(tenant, ADELE)
    reset = calls.index("reset")
    assert calls[:2] == ["GET user", "GET transitiveMemberOf"]  # look-up, then guardrails
    # The plan's reads, side by side (their order on the wire is not fixed).
    assert sorted(calls[2:reset]) == sorted([
        "Get-BlockedSenderAddress", "GET messageRules", "Get-Mailbox",
        "GET methods",  # the plan: sign-in methods
        "Get-InboxRule", "Search-UnifiedAuditLog",  # ... and the rules Exchange sees
        *HOLDERS])  # ... and who else holds a right on her mailbox
    # Mailbox hygiene and every cleanup step take the plan's answers in the same pass
    # (nothing suspicious, nothing to remove, nobody else): nothing is read twice. The
    # unblock reads the list again just before it removes the block.
    assert calls[reset:reset + 4] == ["reset", "revoke", "Get-BlockedSenderAddress",
                                      "Remove-BlockedSenderAddress"]
    # The first verification check: the account as it is now (read once for both looks),
    # nothing added since the case acted, then each of its addresses on the list.
    assert calls[reset + 4] == "GET user"
    assert sorted(calls[reset + 5:]) == sorted([
        "GET methods", "Get-InboxRule", "Search-UnifiedAuditLog", *HOLDERS,
        "Get-BlockedSenderAddress"])
    assert tenant.removals == [(ADELE, None)]  # the address alone: -Reason is no free text


async def test_unblock_comes_only_after_reset_and_revocation(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    tenant.add_fault(Fault(status=503, path=r"/revokeSignInSessions$", times=None))
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", ADELE,
                                    max_delivery_count=2, http_max_retries=0)
    await app.aclose()
    assert cases[ADELE].state is CaseState.ESCALATED
    assert "gave up after 2 deliveries" in (cases[ADELE].reason or "")
    assert "Remove-BlockedSenderAddress" not in tenant_calls(tenant, ADELE)
    assert ADELE in tenant.blocked_addresses()
    assert len(tenant.user(ADELE).password_changes) == 1  # the redelivery did not reset again
    [dead] = await app.queue.dead_letters()
    assert dead["dead_letter_reason"] == "MaxDeliveryCountExceeded"


async def test_403_on_reset_escalates_once_and_never_loops(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    # Not an admin (the guardrails would stop before any change), but Graph refuses anyway.
    refused = "refused@contoso.com"
    tenant.add_user(SandboxUser(refused, "Refused", reset_forbidden=True))
    tenant.block(refused)
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", refused)
    counts = await app.queue.counts()
    await app.aclose()
    case = cases[refused]
    assert case.state is CaseState.ESCALATED
    assert "403 Authorization_RequestDenied" in (case.reason or "")
    assert tenant_calls(tenant, refused).count("reset") == 1  # one attempt per delivery
    assert "Remove-BlockedSenderAddress" not in tenant_calls(tenant, refused)
    assert (counts.completed, counts.dead_lettered) == (1, 0)
    assert refused in tenant.blocked_addresses()


async def test_an_admin_is_escalated_before_any_change(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", PATTI)
    await app.aclose()
    assert cases[PATTI].state is CaseState.ESCALATED
    assert "directory role(s) Global Administrator" in (cases[PATTI].reason or "")
    assert "reset" not in tenant_calls(tenant, PATTI)


async def test_unknown_user_escalates(sandbox_url: str, tenant: SandboxTenant,
                                      tmp_path: Path) -> None:
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", "nobody@contoso.com")
    await app.aclose()
    case = cases["nobody@contoso.com"]
    assert case.state is CaseState.ESCALATED
    assert case.reason == "user nobody@contoso.com not found in the directory"
    assert not [r for r in tenant.requests() if r.method == "PATCH" or r.cmdlet]


async def test_reblocked_user_escalates_without_a_second_unblock(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    megan = "megan.bowen@contoso.com"
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", megan)
    await app.aclose()
    assert cases[megan].state is CaseState.ESCALATED
    assert (cases[megan].reason or "").startswith("re-blocked at")
    assert tenant_calls(tenant, megan).count("Remove-BlockedSenderAddress") == 1
    assert megan in tenant.blocked_addresses()


async def test_lingering_block_is_verified_at_a_later_check(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    lee = "lee.gu@contoso.com"
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", lee)
    await app.aclose()
    case = cases[lee]
    assert case.state is CaseState.VERIFIED
    checks = [s for s in case.steps if s.name.startswith("verify_") and s.status == "done"]
    assert [s.data["listed"] for s in checks] == [True, True, False]


async def test_duplicate_requests_reset_and_unblock_once(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    diego = "diego.siciliani@contoso.com"
    app, _ = await run_requests(sandbox_url, tenant, tmp_path / "db", diego, diego, diego)
    [case] = await app.journal.list_cases(diego)
    await app.aclose()
    assert case.state is CaseState.VERIFIED
    assert [s.name for s in case.steps].count("merged") == 2
    assert len(tenant.user(diego).password_changes) == 1
    assert tenant_calls(tenant, diego).count("Remove-BlockedSenderAddress") == 1


async def test_many_users_are_processed_concurrently(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    tenant.latency = 0.2
    users = ["adele.vance@contoso.com", "diego.siciliani@contoso.com", "lee.gu@contoso.com"]
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", *users,
                                    worker_concurrency=3)
    await app.aclose()
    assert all(cases[user].state is CaseState.VERIFIED for user in users)
    resets = sorted(r.at for r in tenant.requests() if r.method == "PATCH")
    # Three users, each reset after a 0.2 s lookup: in parallel they land close together.
    assert resets[-1] - resets[0] < 0.3


async def test_an_outage_longer_than_every_immediate_redelivery_is_ridden_out(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Service Bus redelivers an abandoned message at once: without back-off of our own, an
    outage would burn MAX_DELIVERY_COUNT deliveries in an instant. Scheduled retries wait."""
    users = (ADELE, "diego.siciliani@contoso.com", "johanna.lorenz@contoso.com",
             "lynne.robbins@contoso.com")
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db", http_max_retries=0,
                                     retry_backoff=timedelta(seconds=0.2)))
    outage = 2.5
    try:
        # Exchange goes first, once each case is open (so the journal has a case to show the
        # retries on), then Graph too; Exchange comes back half-way through, Graph at the end.
        exchange_down = Fault(status=503, path=r"^/adminapi/", times=None)
        tenant.add_fault(exchange_down)
        for user in users:
            await app.requests.send(RemediationRequest(user=user, request_id=uuid.uuid4().hex))
        worker = asyncio.create_task(app.worker(poll_interval=0.05).run(until_idle=True))
        for _ in range(500):  # until every case is open and has failed once (10 s at most)
            cases = await app.journal.list_cases()
            if len(cases) == len(users) and all(
                    any(s.name == "retry" for s in case.steps) for case in cases):
                break
            await asyncio.sleep(0.02)
        tenant.add_fault(Fault(status=503, path=r"^/v1\.0/", times=None))
        started = time.monotonic()
        # What MAX_DELIVERY_COUNT immediate redeliveries of one request last in this outage.
        for _ in range(app.settings.max_delivery_count):
            with pytest.raises(TransientError):
                await app.workflow.remediate(RemediationRequest(
                    user="alex.wilber@contoso.com", request_id="immediate"))
        immediate = time.monotonic() - started
        await asyncio.sleep(outage / 2 - immediate)
        exchange_down.times = 0  # exhausted: Exchange answers again
        await asyncio.sleep(outage / 2)
        tenant.clear_faults()
        async with asyncio.timeout(30):
            await worker

        assert immediate < outage / 2
        final = {case.user: case for case in await app.journal.list_cases()}
        # The probe's request is on record (journaled before its first lookup), never retried.
        probe = final.pop("alex.wilber@contoso.com")
        assert probe.state is CaseState.RECEIVED
        assert probe.request_ids == ("immediate",)
        assert set(final) == set(users)
        reasons = set()
        for user, case in final.items():
            assert case.state is CaseState.VERIFIED, (user, case.reason)
            retries = [s.detail for s in case.steps if s.name == "retry"]
            assert len(retries) >= 3, user  # the outage outlasted three scheduled retries
            assert len(retries) < app.settings.max_delivery_count
            for number, retry in enumerate(retries, start=1):
                found = re.fullmatch(rf"retry {number} at \S+ \S+ UTC: (\w+)\W.* 503 .*", retry)
                assert found, retry
                reasons.add(found[1])
            assert len(tenant.user(user).password_changes) == 1
            assert user not in tenant.blocked_addresses()
        assert reasons == {"Exchange", "Graph"}
        assert app.queue is not None
        assert await app.queue.dead_letters() == []
    finally:
        await app.aclose()
