"""The sandbox answers as Graph does for administrative units and for a User Administrator
role assigned at one's scope (sandbox/admin_units.py has the sources): what the scope
guardrail and `remediation doctor` rely on."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from remediation.domain.roles import USER_ADMINISTRATOR
from remediation.sandbox import SandboxServer, SandboxTenant, demo_tenant
from remediation.sandbox.admin_units import DIRECTORY_READERS

AUTH = {"Authorization": "Bearer sandbox-token"}
STRONG_PASSWORD = "Xy7!kq2Lm9#pW4rT"
UNIT = "4d819ce9-9257-44a5-8d6e-2f1b3c5a7e90"
ADELE, JOHANNA = "adele.vance@contoso.com", "johanna.lorenz@contoso.com"


@pytest.fixture
def tenant() -> SandboxTenant:
    tenant = demo_tenant(with_alerts=False)
    tenant.admin_units.add(UNIT, "Remediation scope", {tenant.user(ADELE).id})
    tenant.app_user_administrator_scopes = (f"/administrativeUnits/{UNIT}",)
    tenant.app_directory_readers = True
    return tenant


@pytest.fixture
def client(tenant: SandboxTenant) -> Iterator[httpx.Client]:
    server = SandboxServer(tenant)
    base = server.start_in_thread()
    try:
        with httpx.Client(base_url=base, headers=AUTH, timeout=5) as http:
            yield http
    finally:
        server.stop_thread()


def reset(client: httpx.Client, user_id: str) -> httpx.Response:
    return client.patch(f"/v1.0/users/{user_id}", json={"passwordProfile": {
        "password": STRONG_PASSWORD, "forceChangePasswordNextSignIn": True}})


def claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    loaded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return loaded


def test_an_au_scoped_role_resets_members_only(client: httpx.Client,
                                               tenant: SandboxTenant) -> None:
    member, outsider = tenant.user(ADELE), tenant.user(JOHANNA)

    assert reset(client, member.id).status_code == 204
    refused = reset(client, outsider.id)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "Authorization_RequestDenied"
    assert outsider.password_changes == []


def test_an_au_scoped_role_resets_no_member_holding_a_role(client: httpx.Client,
                                                           tenant: SandboxTenant) -> None:
    member = tenant.user(ADELE)
    tenant.assign_role(member.id, "729827e3-9c14-49f7-bb1b-9608f156bbb8")  # Helpdesk Admin

    assert reset(client, member.id).status_code == 403


def test_an_au_scoped_role_is_unusable_without_a_tenant_wide_read_role(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    tenant.app_directory_readers = False

    assert reset(client, tenant.user(ADELE).id).status_code == 403


def test_membership_is_read_by_member_id(client: httpx.Client, tenant: SandboxTenant) -> None:
    base = f"/v1.0/directory/administrativeUnits/{UNIT}"

    assert client.get(base).json()["id"] == UNIT
    assert client.get(f"{base}/members/{tenant.user(ADELE).id}?$select=id").status_code == 200
    outside = client.get(f"{base}/members/{tenant.user(JOHANNA).id}?$select=id")
    assert outside.status_code == 404
    assert outside.json()["error"]["code"] == "Request_ResourceNotFound"
    users = client.get(f"{base}/members/microsoft.graph.user").json()["value"]
    assert [user["id"] for user in users] == [tenant.user(ADELE).id]
    assert client.get("/v1.0/directory/administrativeUnits/"
                      "00000000-0000-0000-0000-000000000000").status_code == 404


def test_membership_reads_need_directory_read_all(client: httpx.Client,
                                                  tenant: SandboxTenant) -> None:
    tenant.denied_permissions.add("Directory.Read.All")

    answer = client.get(f"/v1.0/directory/administrativeUnits/{UNIT}/members/"
                        f"{tenant.user(ADELE).id}")

    assert answer.status_code == 403


def test_the_scoped_assignment_is_listed_with_its_scope_and_not_in_wids(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    listed = client.get("/v1.0/roleManagement/directory/roleAssignments", params={
        "$filter": f"principalId eq '{tenant.app_object_id}'"}).json()["value"]

    assert {(item["roleDefinitionId"], item["directoryScopeId"]) for item in listed} >= {
        (USER_ADMINISTRATOR, f"/administrativeUnits/{UNIT}"), (DIRECTORY_READERS, "/")}
    wids = claims(tenant.access_token())["wids"]
    assert USER_ADMINISTRATOR not in wids and DIRECTORY_READERS in wids
