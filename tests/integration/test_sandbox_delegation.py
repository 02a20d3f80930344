"""The sandbox answers the mailbox-permission reads as Exchange Online does
(sandbox/delegation.py): default rows on every mailbox, grants by principal, GUIDs for
send-on-behalf delegates unless display names are asked for, TemporaryBlock as listed."""

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from remediation.adapters.credentials import StaticTokenCredential
from remediation.adapters.exchange_client import ExchangeAdminClient
from remediation.adapters.mailbox_delegation import ExchangeMailboxDelegation
from remediation.domain.delegates import Delegate
from remediation.domain.errors import PermanentError
from remediation.sandbox import SandboxServer, SandboxTenant, SandboxUser, demo_tenant
from remediation.sandbox.seed import NEWSLETTER, RATE_LIMIT_REASON, SHARED_GROUP, SHARED_MAILBOX
from tests.integration.test_sandbox import AUTH, cause, invoke

ALEX, NESTOR = "alex.wilber@contoso.com", "nestor.wilke@contoso.com"


@pytest.fixture
def tenant() -> SandboxTenant:
    return demo_tenant(with_alerts=False)


@pytest.fixture
def client(tenant: SandboxTenant) -> Iterator[httpx.Client]:
    server = SandboxServer(tenant)
    base = server.start_in_thread()
    try:
        with httpx.Client(base_url=base, headers=AUTH, timeout=5) as http:
            yield http
    finally:
        server.stop_thread()


def rows(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    value: list[dict[str, Any]] = response.json()["value"]
    return value


def test_mailbox_permission_rows_hold_self_inherited_and_granted_principals(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    found = rows(invoke(client, tenant, "Get-MailboxPermission", Identity=SHARED_MAILBOX))
    users = {row["User"]: row for row in found}
    assert users["NT AUTHORITY\\SELF"]["AccessRights"] == "FullAccess, ReadPermission"
    assert users["NT AUTHORITY\\SELF"]["IsInherited"] is False
    assert any(row["IsInherited"] and row["Deny"] for row in found)
    assert any(row["IsInherited"] and not row["Deny"] for row in found)
    assert users[ALEX]["AccessRights"] == ["FullAccess"]
    assert users[SHARED_GROUP]["AccessRights"] == ["FullAccess"]
    assert NESTOR not in users  # SendAs is not a mailbox permission
    # An ordinary mailbox has the defaults only.
    plain = rows(invoke(client, tenant, "Get-MailboxPermission", Identity=ALEX))
    assert all(row["User"] == "NT AUTHORITY\\SELF" or row["IsInherited"] for row in plain)


def test_mailbox_permission_needs_an_identity_and_only_its_own_parameters(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    missing = invoke(client, tenant, "Get-MailboxPermission")
    assert missing.status_code == 400
    assert "Identity" in cause(missing)
    unknown = invoke(client, tenant, "Get-MailboxPermission", Identity=SHARED_MAILBOX,
                     Trustee=ALEX)
    assert unknown.status_code == 400
    assert "parameter name 'Trustee'" in cause(unknown)
    nobody = invoke(client, tenant, "Get-MailboxPermission", Identity="nobody@contoso.com")
    assert "ManagementObjectNotFoundException" in cause(nobody)


def test_recipient_permission_lists_send_as_and_without_identity_every_recipient(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    found = rows(invoke(client, tenant, "Get-RecipientPermission", Identity=SHARED_MAILBOX,
                        ResultSize="Unlimited"))
    assert {row["Trustee"] for row in found} == {"NT AUTHORITY\\SELF", NESTOR}
    assert all(row["AccessRights"] == ["SendAs"] for row in found)
    everyone = rows(invoke(client, tenant, "Get-RecipientPermission", ResultSize="Unlimited"))
    assert len(everyone) > len(found)  # a null Identity means all objects
    refused = invoke(client, tenant, "Get-RecipientPermission", Identity=SHARED_MAILBOX,
                     AccessRights=["FullAccess"])
    assert refused.status_code == 400


def test_get_mailbox_names_send_on_behalf_delegates_by_guid_unless_asked_for_names(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    [plain] = rows(invoke(client, tenant, "Get-Mailbox", Identity=SHARED_MAILBOX))
    assert plain["RecipientTypeDetails"] == "SharedMailbox"
    assert plain["GrantSendOnBehalfTo"] == [tenant.user(ALEX).exchange_guid]
    assert plain["GrantSendOnBehalfTo"] != [tenant.user(ALEX).id]  # not the Entra object id
    assert plain["GrantSendOnBehalfToWithDisplayNames"] == []
    [named] = rows(invoke(client, tenant, "Get-Mailbox", Identity=SHARED_MAILBOX,
                          IncludeGrantSendOnBehalfToWithDisplayNames=True))
    assert named["GrantSendOnBehalfToWithDisplayNames"] == [
        {"DisplayName": "Alex Wilber", "PrimarySmtpAddress": ALEX}]
    [user] = rows(invoke(client, tenant, "Get-Mailbox", Identity=ALEX))
    assert user["RecipientTypeDetails"] == "UserMailbox"


def test_a_rate_limit_block_is_listed_with_its_reason_and_temporary_flag(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    [entry] = rows(invoke(client, tenant, "Get-BlockedSenderAddress", SenderAddress=NEWSLETTER))
    assert entry["Reason"] == RATE_LIMIT_REASON
    assert entry["Reason"].startswith("EmailSendingLimitExceeded;")
    assert entry["TemporaryBlock"] is True
    [ordinary] = rows(invoke(client, tenant, "Get-BlockedSenderAddress",
                             SenderAddress="adele.vance@contoso.com"))
    assert ordinary["TemporaryBlock"] is False
    assert tenant.user(SHARED_MAILBOX).account_enabled is False


@pytest.fixture
async def delegation(sandbox_url: str,
                     tenant: SandboxTenant) -> AsyncIterator[ExchangeMailboxDelegation]:
    exchange = ExchangeAdminClient(sandbox_url, tenant.tenant_id,
                                   StaticTokenCredential(tenant.token), timeout=2, max_retries=1)
    yield ExchangeMailboxDelegation(exchange)
    await exchange.close()


async def test_the_adapter_reads_the_kind_of_mailbox(delegation: ExchangeMailboxDelegation,
                                                     tenant: SandboxTenant) -> None:
    tenant.add_user(SandboxUser("unlicensed@contoso.com", "No mailbox"))
    assert await delegation.recipient_type(SHARED_MAILBOX) == "SharedMailbox"
    assert await delegation.recipient_type(ALEX) == "UserMailbox"
    assert await delegation.recipient_type("nobody@contoso.com") is None
    with pytest.raises(PermanentError, match="empty Identity"):
        await delegation.recipient_type(" ")


async def test_the_adapter_names_every_delegate_with_the_documented_parameters_only(
        delegation: ExchangeMailboxDelegation, tenant: SandboxTenant) -> None:
    found = await delegation.mailbox_delegates(SHARED_MAILBOX)

    assert found == [Delegate(ALEX, ("FullAccess", "SendOnBehalf")),
                     Delegate(SHARED_GROUP, ("FullAccess",)),
                     Delegate(NESTOR, ("SendAs",))]
    sent = {r.cmdlet: r.body["CmdletInput"]["Parameters"] for r in tenant.requests()}
    assert sent == {
        "Get-Mailbox": {"Identity": SHARED_MAILBOX,
                        "IncludeGrantSendOnBehalfToWithDisplayNames": True},
        "Get-MailboxPermission": {"Identity": SHARED_MAILBOX, "ResultSize": "Unlimited"},
        "Get-RecipientPermission": {"Identity": SHARED_MAILBOX, "ResultSize": "Unlimited"}}
    assert await delegation.mailbox_delegates(ALEX) == []  # SELF and inherited rows only
