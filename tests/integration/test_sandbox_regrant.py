"""The calls `remediation undo` makes, as the sandbox answers them: Microsoft's answers first.

- Graph "Create oAuth2PermissionGrant" (microsoft-graph-docs-contrib
  ``api-reference/v1.0/api/oauth2permissiongrant-post.md``): ``POST /oauth2PermissionGrants``
  with clientId, consentType, principalId (required when consentType is Principal, null for
  AllPrincipals), resourceId and scope (at most 3850 characters) → ``201 Created`` with the
  grant; permission DelegatedPermissionGrant.ReadWrite.All. A grant for the same client,
  resource and principal that exists already is ``409 Request_MultipleObjectsWithSameKeyValue
  Permission entry already exists.`` (hashicorp/terraform-provider-azuread#690; Azure/SimuLand#13).
- ``Enable-InboxRule`` binds only its documented parameters (office-docs-powershell
  ``exchange/exchange-ps/exchange/Enable-InboxRule.md``: Identity, AlwaysDeleteOutlookRulesBlob,
  Confirm, Force, Mailbox, WhatIf; DomainController is on-premises only).
"""

from collections.abc import Iterator

import httpx
import pytest

from remediation.sandbox import SandboxServer, SandboxTenant, demo_tenant
from remediation.sandbox.consents import grant_id
from remediation.sandbox.seed import HIDDEN_RULE_ID, LYNNE, PLANTED_APP

AUTH = {"Authorization": "Bearer sandbox-token"}


@pytest.fixture
def served() -> Iterator[tuple[SandboxTenant, httpx.Client]]:
    tenant = demo_tenant(with_alerts=False)
    server = SandboxServer(tenant)
    base = server.start_in_thread()
    try:
        with httpx.Client(base_url=base, headers=AUTH, timeout=5) as http:
            yield tenant, http
    finally:
        server.stop_thread()


def planted(tenant: SandboxTenant) -> dict[str, object]:
    """Lynne's consent to the planted app, revoked: the body that gives it back."""
    app = next(a for a in (tenant.consents.app(g["clientId"]) for g in tenant.consents.grants())
               if a.display_name == PLANTED_APP)
    lynne = tenant.user(LYNNE)
    key = grant_id(app.id, tenant.consents.graph.id, lynne.id)
    tenant.consents.revoke(key)
    return {"clientId": app.id, "consentType": "Principal", "principalId": lynne.id,
            "resourceId": tenant.consents.graph.id,
            "scope": "Mail.ReadWrite Mail.Send offline_access User.Read"}


def test_a_grant_is_created_with_201_and_its_id(
        served: tuple[SandboxTenant, httpx.Client]) -> None:
    tenant, http = served
    body = planted(tenant)

    created = http.post("/v1.0/oauth2PermissionGrants", json=body)

    assert created.status_code == 201, created.text
    grant = created.json()
    assert grant["id"] == grant_id(str(body["clientId"]), str(body["resourceId"]),
                                   str(body["principalId"]))
    assert {k: grant[k] for k in body} == body
    assert grant["@odata.context"].endswith("$metadata#oauth2PermissionGrants/$entity")
    assert http.get(f"/v1.0/oauth2PermissionGrants/{grant['id']}").status_code == 200


def test_a_second_grant_for_the_same_app_user_and_api_is_a_conflict(
        served: tuple[SandboxTenant, httpx.Client]) -> None:
    tenant, http = served
    body = planted(tenant)
    assert http.post("/v1.0/oauth2PermissionGrants", json=body).status_code == 201

    again = http.post("/v1.0/oauth2PermissionGrants", json=body)

    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "Request_MultipleObjectsWithSameKeyValue"
    assert error["message"] == "Permission entry already exists."


@pytest.mark.parametrize("change", [
    {"principalId": None},  # Principal needs the user
    {"clientId": None}, {"resourceId": None}, {"consentType": None},
    {"consentType": "Everyone"},
    {"consentType": "AllPrincipals"},  # with a principalId: not an organisation's consent
    {"scope": "x" * 3851},
    {"clientId": "00000000-0000-0000-0000-000000000001"},  # no such service principal
    {"principalId": "00000000-0000-0000-0000-000000000002"},  # no such user
    {"favourite": "colour"},  # no such property
])
def test_a_grant_missing_what_graph_requires_is_refused(
        served: tuple[SandboxTenant, httpx.Client], change: dict[str, object]) -> None:
    tenant, http = served
    body = {**planted(tenant), **change}
    body = {name: value for name, value in body.items() if value is not None}

    refused = http.post("/v1.0/oauth2PermissionGrants", json=body)

    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] in ("Request_BadRequest", "BadRequest")
    assert len(tenant.consents.grants()) == 1  # the owner's older grant alone


def test_creating_a_grant_needs_the_write_permission(
        served: tuple[SandboxTenant, httpx.Client]) -> None:
    tenant, http = served
    body = planted(tenant)
    tenant.denied_permissions.add("DelegatedPermissionGrant.ReadWrite.All")

    refused = http.post("/v1.0/oauth2PermissionGrants", json=body)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "Authorization_RequestDenied"


def invoke(http: httpx.Client, tenant: SandboxTenant, cmdlet: str,
           parameters: dict[str, object]) -> httpx.Response:
    anchor = ("APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@"
              f"{tenant.tenant_id}")
    return http.post(f"/adminapi/beta/{tenant.tenant_id}/InvokeCommand",
                     headers={"X-AnchorMailbox": anchor},
                     json={"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}})


def test_enable_inbox_rule_binds_only_its_documented_parameters(
        served: tuple[SandboxTenant, httpx.Client]) -> None:
    tenant, http = served
    rule = {"Identity": str(HIDDEN_RULE_ID), "Mailbox": LYNNE, "Confirm": False}
    assert invoke(http, tenant, "Disable-InboxRule", rule).status_code == 200

    refused = invoke(http, tenant, "Enable-InboxRule", {**rule, "DomainController": "dc1"})
    assert refused.status_code == 400
    assert "DomainController" in refused.text
    assert invoke(http, tenant, "Enable-InboxRule", rule).status_code == 200
    hidden = next(row for row in tenant.user(LYNNE).exchange_rules if row["Name"] == ".")
    assert hidden["Enabled"] is True


def test_set_mailbox_puts_forwarding_back_as_get_mailbox_showed_it(
        served: tuple[SandboxTenant, httpx.Client]) -> None:
    tenant, http = served
    before = invoke(http, tenant, "Get-Mailbox", {"Identity": LYNNE}).json()["value"][0]
    cleared = {"Identity": LYNNE, "ForwardingSmtpAddress": None, "ForwardingAddress": None,
               "DeliverToMailboxAndForward": False}
    assert invoke(http, tenant, "Set-Mailbox", cleared).status_code == 200

    restored = {"Identity": LYNNE, **{name: before[name] for name in (
        "ForwardingSmtpAddress", "ForwardingAddress", "DeliverToMailboxAndForward")}}
    assert invoke(http, tenant, "Set-Mailbox", restored).status_code == 200

    after = invoke(http, tenant, "Get-Mailbox", {"Identity": LYNNE}).json()["value"][0]
    fields = ("ForwardingSmtpAddress", "ForwardingAddress", "DeliverToMailboxAndForward")
    assert before["ForwardingSmtpAddress"]  # Lynne forwards outside: something to put back
    assert {name: after[name] for name in fields} == {name: before[name] for name in fields}
