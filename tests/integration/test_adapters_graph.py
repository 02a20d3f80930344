"""The real msgraph-sdk client, through our Directory adapter, against the sandbox over HTTP."""

from collections.abc import AsyncIterator

import pytest

from remediation.adapters.credentials import StaticTokenCredential
from remediation.adapters.graph_caller import GraphCaller
from remediation.adapters.graph_directory import GraphDirectory
from remediation.domain.errors import OutcomeUnknown, PermanentError, TransientError
from remediation.sandbox import Fault, SandboxTenant

ADELE = "adele.vance@contoso.com"
PASSWORD = "Tq9!mZ4#vL2@pX7$"


@pytest.fixture
async def directory(sandbox_url: str, tenant: SandboxTenant) -> AsyncIterator[GraphDirectory]:
    caller = GraphCaller(sandbox_url, StaticTokenCredential(tenant.token), timeout=0.5,
                         max_retries=3, retry_delay=0.1)
    yield GraphDirectory(caller)
    await caller.close()


def calls(tenant: SandboxTenant, method: str, suffix: str) -> list[float]:
    return [r.at for r in tenant.requests() if r.method == method and r.path.endswith(suffix)]


async def test_find_user_by_address(directory: GraphDirectory, tenant: SandboxTenant) -> None:
    user = await directory.find_user(ADELE)
    assert user.id == tenant.user(ADELE).id
    assert user.sender_address == ADELE
    assert user.account_enabled is True


async def test_unknown_user_is_permanent(directory: GraphDirectory) -> None:
    with pytest.raises(PermanentError, match=r"nobody@contoso.com not found"):
        await directory.find_user("nobody@contoso.com")


async def test_reset_sends_forced_change(directory: GraphDirectory,
                                         tenant: SandboxTenant) -> None:
    await directory.reset_password(tenant.user(ADELE).id, PASSWORD)
    changes = tenant.user(ADELE).password_changes
    assert [c["forceChangePasswordNextSignIn"] for c in changes] == [True]
    assert changes[0]["password"] == PASSWORD


async def test_429_is_retried_no_sooner_than_retry_after(directory: GraphDirectory,
                                                         tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(status=429, method="PATCH", target=ADELE, retry_after=1,
                           code="TooManyRequests"))
    await directory.reset_password(tenant.user(ADELE).id, PASSWORD)
    first, second = calls(tenant, "PATCH", tenant.user(ADELE).id) or calls(
        tenant, "PATCH", ADELE)
    assert second - first >= 1.0
    assert len(tenant.user(ADELE).password_changes) == 1


async def test_503_on_a_read_is_retried(directory: GraphDirectory,
                                        tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(status=503, method="GET", target=ADELE, times=2))
    assert (await directory.find_user(ADELE)).user_principal_name == ADELE
    assert len(calls(tenant, "GET", ADELE)) == 3


async def test_503_on_a_change_is_not_sent_again(directory: GraphDirectory,
                                                tenant: SandboxTenant) -> None:
    """Graph may have carried out a change it answered 503 to: the call fails with
    OutcomeUnknown after one request, and the step decides at its next attempt."""
    tenant.add_fault(Fault(status=503, path=r"/revokeSignInSessions$", times=2))
    with pytest.raises(OutcomeUnknown, match="503"):
        await directory.revoke_sessions(tenant.user(ADELE).id)
    assert len(calls(tenant, "POST", "/revokeSignInSessions")) == 1


async def test_429_on_a_change_is_retried(directory: GraphDirectory,
                                         tenant: SandboxTenant) -> None:
    """A throttled request fails (https://learn.microsoft.com/graph/throttling): sent again."""
    tenant.add_fault(Fault(status=429, retry_after=0, path=r"/revokeSignInSessions$", times=2))
    await directory.revoke_sessions(tenant.user(ADELE).id)
    assert len(calls(tenant, "POST", "/revokeSignInSessions")) == 3
    assert tenant.user(ADELE).sessions_revoked == 1


async def test_a_reset_applied_and_answered_late_is_sent_once(
        directory: GraphDirectory, tenant: SandboxTenant) -> None:
    adele = tenant.user(ADELE)
    tenant.add_fault(Fault(delay_after=1.0, method="PATCH", path=rf"^/v1\.0/users/{adele.id}$"))
    with pytest.raises(OutcomeUnknown, match="reset password failed"):
        await directory.reset_password(adele.id, PASSWORD)
    assert len(adele.password_changes) == 1


async def test_a_reset_whose_connection_drops_once_it_is_in_is_sent_once(
        directory: GraphDirectory, tenant: SandboxTenant) -> None:
    """A proxy or load balancer that drops the connection after the request went out: Graph
    may have reset the password, so the call is not sent again (OutcomeUnknown)."""
    adele = tenant.user(ADELE)
    tenant.add_fault(Fault(disconnect=True, method="PATCH", path=rf"^/v1\.0/users/{adele.id}$"))
    await directory.find_user(ADELE)  # a kept-alive connection, as in a running worker
    with pytest.raises(OutcomeUnknown, match="reset password failed"):
        await directory.reset_password(adele.id, PASSWORD)
    assert len(adele.password_changes) == 1
    assert len(calls(tenant, "PATCH", adele.id)) == 1


async def test_a_read_whose_connection_drops_is_sent_again(
        directory: GraphDirectory, tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(disconnect=True, method="GET", target=ADELE, times=2))
    assert (await directory.find_user(ADELE)).user_principal_name == ADELE


async def test_timeout_is_retried(directory: GraphDirectory, tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(delay=1.0, method="GET", target=ADELE))  # client timeout is 0.5 s
    user = await directory.find_user(ADELE)
    assert user.user_principal_name == ADELE
    assert len(calls(tenant, "GET", ADELE)) == 2


async def test_endless_timeouts_become_transient(directory: GraphDirectory,
                                                 tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(delay=1.0, method="GET", target=ADELE, times=None))
    with pytest.raises(TransientError, match=r"timed out \(4 attempts\)"):
        await directory.find_user(ADELE)


async def test_403_on_reset_is_permanent_after_one_attempt(directory: GraphDirectory,
                                                           tenant: SandboxTenant) -> None:
    patti = tenant.user("patti.fernandez@contoso.com")
    with pytest.raises(PermanentError, match="403 Authorization_RequestDenied"):
        await directory.reset_password(patti.id, PASSWORD)
    assert len([r for r in tenant.requests() if r.method == "PATCH"]) == 1
    assert patti.password_changes == []


async def test_persistent_503_becomes_transient(directory: GraphDirectory,
                                                tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(status=503, method="GET", target=ADELE, times=None))
    with pytest.raises(TransientError, match="503"):
        await directory.find_user(ADELE)
    assert len(calls(tenant, "GET", ADELE)) == 4  # 1 + 3 retries
