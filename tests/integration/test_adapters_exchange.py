"""The azure-core Exchange admin client against the sandbox's InvokeCommand endpoint."""

from collections.abc import AsyncIterator

import pytest

from remediation.adapters.credentials import StaticTokenCredential
from remediation.adapters.exchange_client import ExchangeAdminClient
from remediation.adapters.exchange_restricted import (
    ExchangeRestrictedSenders,
    parse_exchange_time,
)
from remediation.domain.errors import OutcomeUnknown, PermanentError, TransientError
from remediation.sandbox import Fault, SandboxTenant, SandboxUser

ADELE = "adele.vance@contoso.com"


@pytest.fixture
async def client(sandbox_url: str, tenant: SandboxTenant) -> AsyncIterator[ExchangeAdminClient]:
    exchange = ExchangeAdminClient(sandbox_url, tenant.tenant_id,
                                   StaticTokenCredential(tenant.token), timeout=0.5,
                                   max_retries=3, page_size=2)
    yield exchange
    await exchange.close()


@pytest.fixture
def restricted(client: ExchangeAdminClient) -> ExchangeRestrictedSenders:
    return ExchangeRestrictedSenders(client)


def cmdlet_times(tenant: SandboxTenant, cmdlet: str) -> list[float]:
    return [r.at for r in tenant.requests() if r.cmdlet == cmdlet]


async def test_lookup_returns_the_block(restricted: ExchangeRestrictedSenders) -> None:
    [entry] = await restricted.blocked_entries(ADELE)
    assert entry.sender_address == ADELE
    assert entry.created is not None
    assert "ExceedingLimitType" in entry.reason
    assert await restricted.blocked_entries("alex.wilber@contoso.com") == []


async def test_requests_carry_anchor_mailbox_and_bearer(restricted: ExchangeRestrictedSenders,
                                                        tenant: SandboxTenant) -> None:
    await restricted.blocked_entries(ADELE)
    [request] = tenant.requests()
    assert request.status == 200
    assert request.headers["X-AnchorMailbox"].endswith(f"@{tenant.tenant_id}")
    assert "Authorization" not in request.headers  # the sandbox strips it from its log
    assert request.body["CmdletInput"]["Parameters"] == {"SenderAddress": ADELE}


async def test_unblock_sends_the_address_alone(restricted: ExchangeRestrictedSenders,
                                               tenant: SandboxTenant) -> None:
    await restricted.unblock(ADELE)
    assert tenant.removals == [(ADELE, None)]
    [request] = tenant.requests()
    assert request.body["CmdletInput"]["Parameters"] == {"SenderAddress": ADELE}
    assert ADELE not in tenant.blocked_addresses()


async def test_unblock_of_a_sender_already_gone_succeeds(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant) -> None:
    await restricted.unblock("alex.wilber@contoso.com")
    remove, confirm = tenant.requests()
    assert remove.status == 400  # Exchange said "couldn't be found"...
    assert confirm.cmdlet == "Get-BlockedSenderAddress"  # ...and the list agrees: goal holds


async def test_all_blocked_follows_next_links(restricted: ExchangeRestrictedSenders,
                                              tenant: SandboxTenant) -> None:
    for index in range(3):
        address = f"extra{index}@contoso.com"
        tenant.add_user(SandboxUser(address, f"Extra {index}"))
        tenant.block(address)
    entries = await restricted.all_blocked()
    assert sorted(e.sender_address for e in entries) == sorted(tenant.blocked_addresses())
    assert len(entries) == 26  # twenty-three seeded, three added
    assert len(cmdlet_times(tenant, "Get-BlockedSenderAddress")) == 13  # page size 2


async def test_429_is_retried_no_sooner_than_retry_after(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(status=429, cmdlet="Get-BlockedSenderAddress", retry_after=1))
    assert len(await restricted.blocked_entries(ADELE)) == 1
    first, second = cmdlet_times(tenant, "Get-BlockedSenderAddress")
    assert second - first >= 1.0


async def test_503_on_remove_is_not_sent_again(restricted: ExchangeRestrictedSenders,
                                               tenant: SandboxTenant) -> None:
    """Exchange may have carried out a removal it answered 503 to: one request, then
    OutcomeUnknown; the unblock step reads the list at its next attempt."""
    tenant.add_fault(Fault(status=503, cmdlet="Remove-BlockedSenderAddress"))
    with pytest.raises(OutcomeUnknown, match="503"):
        await restricted.unblock(ADELE)
    assert len(cmdlet_times(tenant, "Remove-BlockedSenderAddress")) == 1


async def test_a_removal_applied_and_answered_late_is_sent_once(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(delay_after=1.0, cmdlet="Remove-BlockedSenderAddress"))
    with pytest.raises(OutcomeUnknown, match="timed out"):
        await restricted.unblock(ADELE)
    assert tenant.removals == [(ADELE, None)]


async def test_a_removal_whose_connection_drops_once_it_is_in_is_sent_once(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant) -> None:
    """The connection dropped after the cmdlet went out (a load balancer, a proxy): Exchange
    may have removed the block, so the cmdlet is not sent again (OutcomeUnknown)."""
    tenant.add_fault(Fault(disconnect=True, cmdlet="Remove-BlockedSenderAddress"))
    await restricted.blocked_entries(ADELE)  # a kept-alive connection, as in a running worker
    with pytest.raises(OutcomeUnknown):
        await restricted.unblock(ADELE)
    assert tenant.removals == [(ADELE, None)]
    assert len(cmdlet_times(tenant, "Remove-BlockedSenderAddress")) == 1


async def test_a_read_whose_connection_drops_is_sent_again(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(disconnect=True, cmdlet="Get-BlockedSenderAddress", times=2))
    assert len(await restricted.blocked_entries(ADELE)) == 1


async def test_429_on_remove_is_retried(restricted: ExchangeRestrictedSenders,
                                        tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(status=429, retry_after=0, cmdlet="Remove-BlockedSenderAddress"))
    await restricted.unblock(ADELE)
    assert len(cmdlet_times(tenant, "Remove-BlockedSenderAddress")) == 2
    assert tenant.removals == [(ADELE, None)]


async def test_timeout_is_retried(restricted: ExchangeRestrictedSenders,
                                  tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(delay=1.0, cmdlet="Get-BlockedSenderAddress"))
    assert len(await restricted.blocked_entries(ADELE)) == 1
    assert len(cmdlet_times(tenant, "Get-BlockedSenderAddress")) == 2


async def test_persistent_timeouts_become_transient(restricted: ExchangeRestrictedSenders,
                                                    tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(delay=1.0, cmdlet="Get-BlockedSenderAddress", times=None))
    with pytest.raises(TransientError, match="timed out"):
        await restricted.blocked_entries(ADELE)


async def test_unblock_limit_is_permanent(restricted: ExchangeRestrictedSenders,
                                          tenant: SandboxTenant) -> None:
    tenant.user(ADELE).unblock_limit_reached = True
    with pytest.raises(PermanentError, match="unblock limit reached"):
        await restricted.unblock(ADELE)
    assert len(cmdlet_times(tenant, "Remove-BlockedSenderAddress")) == 1


async def test_forbidden_is_permanent_and_names_the_permission(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(status=403, cmdlet="Get-BlockedSenderAddress", code="Forbidden",
                           message="The caller is not allowed to call Get-BlockedSenderAddress"))
    with pytest.raises(PermanentError, match=r"Exchange\.ManageAsApp"):
        await restricted.blocked_entries(ADELE)


def test_exchange_times_in_both_formats() -> None:
    iso = parse_exchange_time("2026-11-26T10:00:00.1234567Z")
    legacy = parse_exchange_time("/Date(1795687200000)/")
    assert iso is not None and iso.microsecond == 123456 and iso.utcoffset() is not None
    assert legacy is not None and legacy.year == 2026
    assert parse_exchange_time("") is None and parse_exchange_time("garbage") is None


async def test_a_400_saying_not_allowed_to_call_names_the_permission(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(status=400, cmdlet="Remove-BlockedSenderAddress", code="BadRequest",
                           message="The user isn't allowed to call Remove-BlockedSenderAddress"))
    with pytest.raises(PermanentError, match=r"Exchange\.ManageAsApp .* Exchange Administrator"):
        await restricted.unblock(ADELE)
    assert len(cmdlet_times(tenant, "Remove-BlockedSenderAddress")) == 1  # not retried
