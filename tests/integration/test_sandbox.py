"""The sandbox tenant over real HTTP: the behaviour the adapters and the demo rely on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from remediation.sandbox import (
    Fault,
    SandboxServer,
    SandboxTenant,
    SandboxUser,
    demo_tenant,
)
from remediation.sandbox.state import BlockBehaviour

AUTH = {"Authorization": "Bearer sandbox-token"}
STRONG_PASSWORD = "Xy7!kq2Lm9#pW4rT"


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


def invoke(client: httpx.Client, tenant: SandboxTenant, cmdlet: str,
           url: str | None = None, headers: dict[str, str] | None = None,
           **parameters: Any) -> httpx.Response:
    anchor = f"APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tenant.tenant_id}"
    return client.post(
        url or f"/adminapi/beta/{tenant.tenant_id}/InvokeCommand",
        json={"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}},
        headers={"X-AnchorMailbox": anchor, **(headers or {})},
    )


def blocked_entries(client: httpx.Client, tenant: SandboxTenant,
                    sender: str) -> list[dict[str, Any]]:
    """The sender's entries; Exchange answers "couldn't be found" for one not listed."""
    response = invoke(client, tenant, "Get-BlockedSenderAddress", SenderAddress=sender)
    if response.status_code == 400:
        assert "ManagementObjectNotFoundException" in cause(response)
        return []
    assert response.status_code == 200
    entries: list[dict[str, Any]] = response.json()["value"]
    return entries


def cause(response: httpx.Response) -> str:
    """Exchange's real error text: the top-level message is generic."""
    error = response.json()["error"]
    assert error["message"] in ("Error executing cmdlet", "An error has occurred.")
    return str(error["details"][0]["message"])


def alert(number: int, **fields: Any) -> dict[str, Any]:
    created = datetime(2024, 5, 1, 8, tzinfo=UTC) + timedelta(hours=number)
    return {
        "id": f"alert-{number}",
        "title": "User restricted from sending email",
        "serviceSource": "microsoftDefenderForOffice365",
        "status": "new",
        "createdDateTime": created.isoformat().replace("+00:00", "Z"),
        "lastUpdateDateTime": created.isoformat().replace("+00:00", "Z"),
        **fields,
    }


# --- auth and the request log -------------------------------------------------------------


def test_requests_without_the_token_are_refused_and_recorded(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    missing = client.get("/v1.0/domains", headers={"Authorization": ""})
    wrong = client.get("/v1.0/domains", headers={"Authorization": "Bearer nope"})

    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert [request.status for request in tenant.requests()] == [401, 401]


def test_request_log_keeps_bodies_but_never_the_authorization_header(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    client.patch("/v1.0/users/adele.vance@contoso.com",
                 json={"passwordProfile": {"password": STRONG_PASSWORD}})

    [recorded] = tenant.requests()
    assert recorded.status == 204
    assert recorded.target == "adele.vance@contoso.com"
    assert recorded.body == {"passwordProfile": {"password": STRONG_PASSWORD}}
    assert "authorization" not in {name.lower() for name in recorded.headers}
    assert STRONG_PASSWORD not in repr(recorded)
    # The control endpoint serves the log without bodies, and is not itself logged.
    listed = client.get("/_sandbox/requests", headers={"Authorization": ""}).json()
    assert listed == [{"method": "PATCH", "path": "/v1.0/users/adele.vance@contoso.com",
                       "status": 204, "cmdlet": None, "target": "adele.vance@contoso.com",
                       "at": recorded.at}]
    assert len(tenant.requests()) == 1


# --- Graph: users -------------------------------------------------------------------------


def test_user_lookup_by_encoded_upn_by_id_and_unknown(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    # accountEnabled, like most properties, comes only when selected (as from Graph).
    selected = {"$select": "userPrincipalName,accountEnabled"}
    by_upn = client.get("/v1.0/users/Adele.Vance%40contoso.com", params=selected)
    by_id = client.get(f"/v1.0/users/{tenant.user('adele.vance@contoso.com').id}",
                       params=selected)
    unknown = client.get("/v1.0/users/nobody%40contoso.com")

    assert by_upn.status_code == 200
    assert by_upn.json() == by_id.json()
    assert by_upn.json()["userPrincipalName"] == "adele.vance@contoso.com"
    assert by_upn.json()["accountEnabled"] is True
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "Request_ResourceNotFound"
    # The log names a user by address however the client named it.
    assert [request.target for request in tenant.requests()] == [
        "adele.vance@contoso.com", "adele.vance@contoso.com", "nobody@contoso.com"]


def test_password_reset_is_recorded_and_refused_where_the_tenant_would(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    tenant.add_user(SandboxUser("synced@contoso.com", "Synced", on_premises_sync_enabled=True))

    def reset(user: str, password: str) -> httpx.Response:
        return client.patch(f"/v1.0/users/{user}", json={"passwordProfile": {
            "password": password, "forceChangePasswordNextSignIn": True}})

    assert reset("adele.vance@contoso.com", STRONG_PASSWORD).status_code == 204
    forbidden = reset("patti.fernandez@contoso.com", STRONG_PASSWORD)
    synced = reset("synced@contoso.com", STRONG_PASSWORD)
    weak = reset("alex.wilber@contoso.com", "password1")

    assert tenant.user("adele.vance@contoso.com").password_changes == [
        {"password": STRONG_PASSWORD, "forceChangePasswordNextSignIn": True}]
    assert (forbidden.status_code, forbidden.json()["error"]["code"]) == (
        403, "Authorization_RequestDenied")
    assert (synced.status_code, synced.json()["error"]["code"]) == (400, "Request_BadRequest")
    assert "complexity" in weak.json()["error"]["message"]
    for user in ("patti.fernandez@contoso.com", "synced@contoso.com", "alex.wilber@contoso.com"):
        assert tenant.user(user).password_changes == []


def test_revoke_memberships_rules_and_domains(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    tenant.add_group("g1", "Executives")
    adele = tenant.user("adele.vance@contoso.com")
    adele.group_ids.append("g1")
    adele.inbox_rules.append({"id": "r1", "displayName": "x", "isEnabled": True,
                              "actions": {"forwardTo": [{"emailAddress": {"address": "a@b.c"}}]}})

    revoked = client.post("/v1.0/users/adele.vance%40contoso.com/revokeSignInSessions")
    groups = client.get("/v1.0/users/adele.vance@contoso.com/transitiveMemberOf").json()
    roles = client.get("/v1.0/users/patti.fernandez@contoso.com/transitiveMemberOf").json()
    rules = client.get("/v1.0/users/adele.vance@contoso.com/mailFolders/inbox/messageRules")
    disabled = client.patch("/v1.0/users/adele.vance@contoso.com/mailFolders/inbox/messageRules/r1",
                            json={"isEnabled": False})
    domains = client.get("/v1.0/domains").json()

    assert revoked.json()["value"] is True
    assert adele.sessions_revoked == 1
    assert groups["value"] == [
        {"@odata.type": "#microsoft.graph.group", "id": "g1", "displayName": "Executives",
         "isAssignableToRole": False}]
    assert roles["value"][0]["@odata.type"] == "#microsoft.graph.directoryRole"
    assert roles["value"][0]["roleTemplateId"] == "62e90394-69f5-4237-9190-012177145e10"
    assert rules.json()["value"][0]["id"] == "r1"
    assert disabled.json()["isEnabled"] is False
    assert adele.inbox_rules[0]["isEnabled"] is False
    assert domains["value"] == [{"id": "contoso.com", "isVerified": True, "isDefault": True,
                                 "authenticationType": "Managed"}]
    assert client.get("/v1.0/nothing/here").json()["error"]["code"] == "UnknownError"


# --- Exchange: restricted senders ---------------------------------------------------------


def test_unblock_of_an_ordinary_sender(client: httpx.Client, tenant: SandboxTenant) -> None:
    [entry] = blocked_entries(client, tenant, "adele.vance@contoso.com")
    assert entry["Reason"].startswith("ExceedingLimitType=External")
    assert entry["CreatedDatetime"].endswith("Z")

    free_text = invoke(client, tenant, "Remove-BlockedSenderAddress",
                       SenderAddress="Adele.Vance@contoso.com", Reason="compromise handled")
    assert free_text.status_code == 400 and "couldn't be found" in cause(free_text)
    assert "adele.vance@contoso.com" in tenant.blocked_addresses()  # -Reason is no free text

    removed = invoke(client, tenant, "Remove-BlockedSenderAddress",
                     SenderAddress="Adele.Vance@contoso.com")
    again = invoke(client, tenant, "Remove-BlockedSenderAddress",
                   SenderAddress="adele.vance@contoso.com")

    assert removed.status_code == 200 and removed.content == b""  # no output, no body
    assert blocked_entries(client, tenant, "adele.vance@contoso.com") == []
    assert again.status_code == 400
    assert "couldn't be found" in cause(again)
    assert tenant.removals == [("adele.vance@contoso.com", None)]
    assert tenant.requests()[2].cmdlet == "Remove-BlockedSenderAddress"
    assert tenant.requests()[2].target == "adele.vance@contoso.com"


def test_a_lingering_block_shows_for_its_reads_then_goes(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    invoke(client, tenant, "Remove-BlockedSenderAddress", SenderAddress="lee.gu@contoso.com")

    reads = [len(blocked_entries(client, tenant, "lee.gu@contoso.com")) for _ in range(3)]

    assert reads == [1, 1, 0]
    assert "lee.gu@contoso.com" not in tenant.blocked_addresses()


def test_a_reblock_appears_with_a_later_creation_time(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    [old] = blocked_entries(client, tenant, "megan.bowen@contoso.com")
    tenant.block("late@contoso.com", behaviour=BlockBehaviour(reblock_after_reads=2))
    for sender in ("megan.bowen@contoso.com", "late@contoso.com"):
        invoke(client, tenant, "Remove-BlockedSenderAddress", SenderAddress=sender)

    [new] = blocked_entries(client, tenant, "megan.bowen@contoso.com")
    late_reads = [len(blocked_entries(client, tenant, "late@contoso.com")) for _ in range(3)]

    assert new["CreatedDatetime"] > old["CreatedDatetime"]
    assert late_reads == [0, 0, 1]


def test_unblock_limit_is_an_error_naming_support(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    tenant.user("diego.siciliani@contoso.com").unblock_limit_reached = True

    response = invoke(client, tenant, "Remove-BlockedSenderAddress",
                      SenderAddress="diego.siciliani@contoso.com")

    assert response.status_code == 400
    error = response.json()["error"]
    assert "contact Microsoft support" in cause(response)
    assert error["details"][0]["message"]
    assert error["innererror"]["internalException"]["message"]
    assert "diego.siciliani@contoso.com" in tenant.blocked_addresses()


def test_listing_pages_with_prefer_maxpagesize(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    prefer = {"Prefer": "odata.maxpagesize=2"}
    pages = [invoke(client, tenant, "Get-BlockedSenderAddress", headers=prefer).json()]
    while "@odata.nextLink" in pages[-1]:
        pages.append(invoke(client, tenant, "Get-BlockedSenderAddress", headers=prefer,
                            url=pages[-1]["@odata.nextLink"]).json())

    assert [len(page["value"]) for page in pages] == [2] * 11 + [1]  # 23 seeded blocks
    listed = [entry["SenderAddress"] for page in pages for entry in page["value"]]
    assert sorted(listed) == sorted(tenant.blocked_addresses())
    assert pages[1]["@odata.nextLink"].startswith(str(client.base_url))


def test_mailbox_forwarding_and_request_checks(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    tenant.user("nestor.wilke@contoso.com").forwarding_smtp_address = "drop@evil.example"

    before = invoke(client, tenant, "Get-Mailbox", Identity="nestor.wilke@contoso.com")
    invoke(client, tenant, "Set-Mailbox", Identity="nestor.wilke@contoso.com",
           ForwardingSmtpAddress=None, DeliverToMailboxAndForward=False)
    after = invoke(client, tenant, "Get-Mailbox", Identity="nestor.wilke@contoso.com")
    unknown_cmdlet = invoke(client, tenant, "Get-Nothing")
    unknown_mailbox = invoke(client, tenant, "Get-Mailbox", Identity="nobody@contoso.com")
    no_anchor = client.post(f"/adminapi/beta/{tenant.tenant_id}/InvokeCommand", json={})
    wrong_tenant = invoke(client, tenant, "Get-Mailbox",
                          url="/adminapi/beta/00000000-0000-0000-0000-000000000000/InvokeCommand")

    assert before.json()["value"][0]["ForwardingSmtpAddress"] == "smtp:drop@evil.example"
    assert after.json()["value"][0]["ForwardingSmtpAddress"] is None
    assert "is not recognized as a cmdlet" in cause(unknown_cmdlet)
    assert unknown_mailbox.status_code == 400
    assert no_anchor.status_code == 400
    assert wrong_tenant.status_code == 404


# --- Graph: Defender alerts ---------------------------------------------------------------


def test_alerts_page_in_creation_order_and_filter(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    for number in (4, 0, 3, 1, 2):
        tenant.add_alert(alert(number, status="resolved" if number == 2 else "new"))
    tenant.alert_page_size = 2

    pages = [client.get("/v1.0/security/alerts_v2").json()]
    while "@odata.nextLink" in pages[-1]:
        pages.append(client.get(pages[-1]["@odata.nextLink"]).json())
    filtered = client.get("/v1.0/security/alerts_v2", params={
        "$filter": "serviceSource eq 'microsoftDefenderForOffice365' and status eq 'new' "
                   "and lastUpdateDateTime ge 2024-05-01T09:00:00Z", "$top": "10"}).json()

    assert [a["id"] for page in pages for a in page["value"]] == [
        f"alert-{n}" for n in range(5)]
    # $top=10 is capped by the server's page size of 2, as Graph caps it by its own.
    assert [a["id"] for a in filtered["value"]] == ["alert-1", "alert-3"]
    assert "@odata.nextLink" in filtered


@pytest.mark.parametrize("clause", ["contains(title,'restricted')", "title eq 'x'"])
def test_filtering_on_title_is_refused(client: httpx.Client, clause: str) -> None:
    response = client.get("/v1.0/security/alerts_v2",
                          params={"$filter": f"status eq 'new' and {clause}"})

    assert response.status_code == 400
    assert "property 'title' is not supported" in response.json()["error"]["message"]


def test_alert_update_accepts_only_known_fields_and_values(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    tenant.add_alert(alert(1))

    updated = client.patch("/v1.0/security/alerts_v2/alert-1", json={
        "@odata.type": "#microsoft.graph.security.alert", "status": "resolved",
        "classification": "truePositive", "determination": "compromisedAccount"})
    bad_value = client.patch("/v1.0/security/alerts_v2/alert-1", json={"status": "done"})
    bad_field = client.patch("/v1.0/security/alerts_v2/alert-1", json={"title": "x"})

    assert updated.status_code == 200
    assert updated.json()["status"] == "resolved"
    assert tenant.alert("alert-1")["lastUpdateDateTime"] > "2024-05-01T09:00:00Z"
    assert (bad_value.status_code, bad_field.status_code) == (400, 400)
    assert client.get("/v1.0/security/alerts_v2/nope").status_code == 404


def test_comments_refuse_an_array_and_accept_an_object(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    tenant.add_alert(alert(1))
    url = "/v1.0/security/alerts_v2/alert-1/comments"

    as_array = client.post(url, json=[{"comment": "done"}])
    as_object = client.post(url, json={"@odata.type": "microsoft.graph.security.alertComment",
                                       "comment": "Password reset, sender unblocked."})

    assert as_array.status_code == 400
    assert as_array.json()["error"]["message"] == "Empty Payload. JSON content expected."
    assert as_object.status_code == 200
    [comment] = as_object.json()["value"]
    assert comment["comment"] == "Password reset, sender unblocked."
    assert comment["createdByDisplayName"] == "Automation"
    assert tenant.alert("alert-1")["comments"] == [comment]


# --- faults -------------------------------------------------------------------------------


def test_throttling_fault_answers_429_with_retry_after_then_clears(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(status=429, path=r"/revokeSignInSessions$", retry_after=3,
                           code="TooManyRequests"))
    url = "/v1.0/users/adele.vance@contoso.com/revokeSignInSessions"

    throttled = client.post(url)
    served = client.post(url)

    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "3"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert served.status_code == 200
    assert tenant.user("adele.vance@contoso.com").sessions_revoked == 1
    assert [request.status for request in tenant.requests()] == [429, 200]


def test_cmdlet_fault_matches_cmdlet_and_target_with_the_exchange_shape(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    response = client.post("/_sandbox/faults", headers={"Authorization": ""}, json={
        "status": 503, "cmdlet": "Remove-BlockedSenderAddress",
        "target": "LEE.GU@contoso.com", "times": None})
    assert response.status_code == 204

    other = invoke(client, tenant, "Remove-BlockedSenderAddress",
                   SenderAddress="adele.vance@contoso.com")
    failed = [invoke(client, tenant, "Remove-BlockedSenderAddress",
                     SenderAddress="lee.gu@contoso.com") for _ in range(2)]

    assert other.status_code == 200
    assert [response.status_code for response in failed] == [503, 503]
    assert "innererror" in failed[0].json()["error"]
    blocked = client.get("/_sandbox/blocked", headers={"Authorization": ""}).json()
    assert "lee.gu@contoso.com" in blocked
    assert "adele.vance@contoso.com" not in blocked


def test_delay_fault_outlasts_a_client_timeout(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(delay=0.3, path=r"^/v1\.0/domains$"))

    with pytest.raises(httpx.ReadTimeout):
        client.get("/v1.0/domains", timeout=0.1)
    started = time.monotonic()
    served = client.get("/v1.0/domains")

    assert served.status_code == 200
    assert time.monotonic() - started < 0.2


@pytest.mark.asyncio
async def test_server_runs_in_the_current_event_loop() -> None:
    tenant = SandboxTenant(tenant_id="11111111-2222-3333-4444-555555555555",
                           domains=["fabrikam.com", "fabrikam.net"], token="other")
    tenant.latency = 0.05
    server = SandboxServer(tenant)
    base = await server.start()
    try:
        assert server.graph_url == server.exchange_url == base
        async with httpx.AsyncClient(base_url=base) as http:
            started = time.monotonic()
            response = await http.get("/v1.0/domains", headers={"Authorization": "Bearer other"})
        assert time.monotonic() - started >= 0.05
        assert [d["id"] for d in response.json()["value"]] == ["fabrikam.com", "fabrikam.net"]
    finally:
        await server.stop()
