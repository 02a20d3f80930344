"""Nothing we send is something the sandbox would accept and Microsoft would refuse:

- tokens come from a managed identity endpoint like the one Azure Functions gives an app,
  through azure-identity's DefaultAzureCredential, one per documented resource; Entra refuses a
  resource it does not know (``AADSTS500011``) and each service refuses the other's token;
- every cmdlet gets only parameters its reference documents.
"""

import uuid
from pathlib import Path

import aiohttp
import pytest

from remediation.adapters.exchange_client import ExchangeAdminClient
from remediation.adapters.token_scopes import exchange_scope, graph_scope
from remediation.bootstrap import bootstrap
from remediation.domain.cases import CaseState
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import SandboxTenant
from remediation.sandbox.cmdlets import BY_NAME, REFERENCE, SPECS
from remediation.sandbox.identity_routes import IDENTITY_PATH
from tests.conftest import sandbox_settings

ADELE = "adele.vance@contoso.com"
LYNNE = "lynne.robbins@contoso.com"  # planted rules and forwarding: Set-Mailbox too
GRAPH, EXCHANGE = "https://graph.microsoft.com", "https://outlook.office365.com"

# Every parameter the product sends, per cmdlet, and the reference that documents it.
SENT = {
    "Get-BlockedSenderAddress": {"SenderAddress"},
    "Remove-BlockedSenderAddress": {"SenderAddress"},
    "Get-Mailbox": {"Identity", "ResultSize", "IncludeGrantSendOnBehalfToWithDisplayNames"},
    "Set-Mailbox": {"Identity", "ForwardingSmtpAddress", "ForwardingAddress",
                    "DeliverToMailboxAndForward"},
    "Get-MailboxPermission": {"Identity", "ResultSize"},
    "Get-RecipientPermission": {"Identity", "ResultSize"},
    # Inbox rules Graph never shows, and their history in the unified audit log.
    "Get-InboxRule": {"Mailbox", "IncludeHidden"},
    "Disable-InboxRule": {"Identity", "Mailbox", "Confirm"},
    "Get-MailboxFolderStatistics": {"Identity", "FolderScope"},
    "Get-AdminAuditLogConfig": set(),
    "Search-UnifiedAuditLog": {"StartDate", "EndDate", "Operations", "UserIds", "ObjectIds",
                               "SessionCommand", "SessionId", "ResultSize"},
}


async def run_cases(url: str, tenant: SandboxTenant, db: Path, *users: str) -> dict[str, str]:
    app = bootstrap(sandbox_settings(url, tenant, db, sweep_restricted_users=True))
    try:
        assert app.settings.sandbox_token is None, "the test must use the managed identity"
        for user in users:
            await app.requests.send(RemediationRequest(user=user, request_id=uuid.uuid4().hex))
        await app.intake.poll()
        await app.worker(poll_interval=0.05).run(until_idle=True)
        return {case.user: case.state.value for case in await app.journal.list_cases()}
    finally:
        await app.aclose()


async def test_whole_cases_get_their_tokens_from_the_managed_identity_per_resource(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    states = await run_cases(sandbox_url, tenant, tmp_path / "db", ADELE, LYNNE)

    assert states[ADELE] == states[LYNNE] == CaseState.VERIFIED.value
    # One token per documented resource (azure-identity strips /.default), no other name.
    assert set(tenant.token_requests) == {GRAPH, EXCHANGE}
    assert all(request.status != 401 for request in tenant.requests())


async def test_every_cmdlet_gets_only_its_documented_parameters(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Whole cases (the sweep, hygiene with Set-Mailbox, unblock, verification): each
    InvokeCommand names a declared cmdlet with parameters its reference lists."""
    await run_cases(sandbox_url, tenant, tmp_path / "db", ADELE, LYNNE)

    calls = [r for r in tenant.requests() if r.cmdlet]
    assert {r.cmdlet for r in calls} >= {"Get-BlockedSenderAddress", "Remove-BlockedSenderAddress",
                                         "Get-Mailbox", "Set-Mailbox", "Get-MailboxPermission",
                                         "Get-RecipientPermission", *SENT}
    for call in calls:
        spec = BY_NAME[str(call.cmdlet).lower()]
        parameters = call.body["CmdletInput"]["Parameters"]
        assert spec.unknown(parameters) == [], (call.cmdlet, parameters)
        assert set(parameters) <= SENT[spec.name], (call.cmdlet, parameters)


def test_each_parameter_we_send_is_documented_for_exchange_online() -> None:
    for cmdlet, parameters in SENT.items():
        spec = BY_NAME[cmdlet.lower()]
        assert parameters <= spec.parameters, (cmdlet, parameters - spec.parameters)
        assert spec.reference == REFERENCE.format(cmdlet=cmdlet)
    get_blocked = BY_NAME["get-blockedsenderaddress"]
    assert get_blocked.parameters == {"SenderAddress"}  # no ResultSize: the 2026 break
    assert all("DomainController" not in spec.parameters for spec in SPECS)  # on-premises


@pytest.mark.parametrize(("cmdlet", "parameter"), [
    ("Get-BlockedSenderAddress", "ResultSize"), ("Remove-BlockedSenderAddress", "Confirm"),
    ("Get-InboxRule", "SweepRules"), ("Disable-InboxRule", "DomainController"),
    ("Get-Mailbox", "Server"), ("Get-RecipientPermission", "User"),
    ("Get-MailboxPermission", "Trustee"), ("Get-CASMailbox", "Mailbox")])
async def test_a_parameter_the_cmdlet_lacks_is_exchanges_binding_error(
        sandbox_url: str, tenant: SandboxTenant, cmdlet: str, parameter: str) -> None:
    from remediation.adapters.credentials import StaticTokenCredential
    from remediation.adapters.exchange_client import ExchangeCmdletError

    client = ExchangeAdminClient(sandbox_url, tenant.tenant_id,
                                 StaticTokenCredential(tenant.token), timeout=2, max_retries=0)
    try:
        with pytest.raises(ExchangeCmdletError) as raised:
            await client.invoke(cmdlet, {"Identity": "adele.vance@contoso.com", parameter: 1}
                                if "Identity" in BY_NAME[cmdlet.lower()].parameters
                                else {parameter: 1})
    finally:
        await client.close()
    error = raised.value.error
    assert error.status == 400
    assert "ParameterBindingException" in error.message
    assert f"matches parameter name '{parameter}'" in error.message


def test_the_scopes_are_the_documented_resources_without_a_port() -> None:
    assert graph_scope("https://graph.microsoft.com") == f"{GRAPH}/.default"
    assert exchange_scope("https://outlook.office365.com") == f"{EXCHANGE}/.default"
    assert exchange_scope("https://outlook.office365.com:443/") == f"{EXCHANGE}/.default"
    assert exchange_scope("https://outlook.office365.us") == "https://outlook.office365.us/.default"
    assert exchange_scope("https://webmail.apps.mil") == "https://webmail.apps.mil/.default"
    assert graph_scope("https://graph.microsoft.us/") == "https://graph.microsoft.us/.default"
    assert graph_scope("https://microsoftgraph.chinacloudapi.cn") == (
        "https://microsoftgraph.chinacloudapi.cn/.default")
    # The sandbox stands in for the commercial cloud: it checks the audience a real token has.
    assert graph_scope("http://127.0.0.1:8080") == f"{GRAPH}/.default"
    assert exchange_scope("http://localhost:8080") == f"{EXCHANGE}/.default"


async def _identity(url: str, tenant: SandboxTenant, resource: str, *,
                    header: str | None = None, version: str = "2019-08-01",
                    client_id: str | None = None) -> tuple[int, dict[str, object]]:
    query = {"resource": resource, "api-version": version}
    if client_id is not None:
        query["client_id"] = client_id
    async with aiohttp.ClientSession() as session, session.get(
            f"{url}{IDENTITY_PATH}", params=query,
            headers={"X-IDENTITY-HEADER": tenant.identity_header if header is None
                     else header}) as answer:
        return answer.status, await answer.json()


@pytest.mark.parametrize("resource", [
    "https://outlook.office365.com:443", "https://graph.microsoft.com:443",
    "http://127.0.0.1:8080", "https://outlook.office365.us", "https://outlook.office.com/x"])
async def test_a_resource_entra_does_not_know_is_aadsts500011(
        sandbox_url: str, tenant: SandboxTenant, resource: str) -> None:
    status, body = await _identity(sandbox_url, tenant, resource)
    assert status == 400
    assert body["error"] == "invalid_resource"
    assert str(body["error_description"]).startswith(
        f"AADSTS500011: The resource principal named {resource} was not found")


async def test_the_identity_endpoint_checks_its_header_version_and_identity(
        sandbox_url: str, tenant: SandboxTenant) -> None:
    assert (await _identity(sandbox_url, tenant, GRAPH, header="wrong"))[0] == 401
    assert (await _identity(sandbox_url, tenant, GRAPH, version="2017-09-01"))[0] == 400
    assert (await _identity(sandbox_url, tenant, GRAPH,
                            client_id=str(uuid.uuid4())))[0] == 400
    status, body = await _identity(sandbox_url, tenant, GRAPH,
                                   client_id=tenant.managed_identity_client_id)
    assert status == 200
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}


@pytest.mark.parametrize(("audience", "path", "status"), [
    (EXCHANGE, "/v1.0/users?$top=1", 401),
    (GRAPH, "/adminapi/beta/{tenant}/InvokeCommand", 401),
    (GRAPH, "/v1.0/users?$top=1", 200),
    (EXCHANGE, "/adminapi/beta/{tenant}/InvokeCommand", 200)])
async def test_each_service_refuses_the_others_token(
        sandbox_url: str, tenant: SandboxTenant, audience: str, path: str,
        status: int) -> None:
    token = tenant.access_token(audience)
    body = {"CmdletInput": {"CmdletName": "Get-BlockedSenderAddress", "Parameters": {}}}
    headers = {"Authorization": f"Bearer {token}",
               "X-AnchorMailbox": "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}"
                                  f"@{tenant.tenant_id}"}
    url = sandbox_url + path.format(tenant=tenant.tenant_id)
    async with aiohttp.ClientSession() as session:
        method = session.post(url, json=body, headers=headers) if "adminapi" in path else (
            session.get(url, headers=headers))
        async with method as answer:
            assert answer.status == status


async def test_an_exchange_scope_with_a_port_gets_no_token_and_says_why(
        sandbox_url: str, tenant: SandboxTenant) -> None:
    """What the :443 scope did in a real tenant: no token, a reason naming AADSTS500011."""
    from azure.identity.aio import DefaultAzureCredential

    credential = DefaultAzureCredential()
    try:
        with pytest.raises(Exception, match="AADSTS500011"):
            await credential.get_token("https://outlook.office365.com:443/.default")
        client = ExchangeAdminClient(sandbox_url, tenant.tenant_id, credential, timeout=5,
                                     max_retries=0)
        try:
            assert await client.invoke("Get-BlockedSenderAddress", {}) is not None
        finally:
            await client.close()
    finally:
        await credential.close()
    assert tenant.token_requests[-1] == EXCHANGE


async def test_parameter_names_bind_in_any_letter_case_and_mean_the_same(
        sandbox_url: str, tenant: SandboxTenant) -> None:
    """PowerShell binds ``senderaddress`` as ``SenderAddress``: one sender, not the list."""
    from remediation.adapters.credentials import StaticTokenCredential

    client = ExchangeAdminClient(sandbox_url, tenant.tenant_id,
                                 StaticTokenCredential(tenant.token), timeout=2, max_retries=0)
    try:
        one = await client.invoke("Get-BlockedSenderAddress", {"senderaddress": ADELE})
        mailbox = await client.invoke("Get-Mailbox", {"IDENTITY": ADELE})
    finally:
        await client.close()
    assert [item["SenderAddress"] for item in one] == [ADELE]
    assert [item["PrimarySmtpAddress"] for item in mailbox] == [ADELE]
