"""The sandbox's sign-in methods and directory audit log answer as Microsoft Graph v1.0 does:
no createdDateTime for phones, secrets as null, the default and the password refused, one
fixed id per phone type, the audit log's documented $filter and nothing else, and the
permissions each needs."""

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from remediation.sandbox import SandboxTenant, SandboxUser
from remediation.sandbox.clock import utc_now
from remediation.sandbox.signin_methods import (
    DEFAULT_REFUSAL,
    PASSWORD_METHOD_ID,
    PHONE_METHOD_IDS,
    authenticator,
    phone,
    temporary_access_pass,
)

ADELE = "adele.vance@contoso.com"
TAP = "Tp7#kQ2-not-for-your-eyes"


@pytest.fixture
async def raw(sandbox_url: str, tenant: SandboxTenant) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/v1.0", timeout=5, headers={
            "Authorization": f"Bearer {tenant.token}"}) as client:
        yield client


def adele(tenant: SandboxTenant) -> SandboxUser:
    return tenant.user(ADELE)


async def test_methods_are_listed_with_the_password_first_secrets_null_and_no_date_for_phones(
        raw: httpx.AsyncClient, tenant: SandboxTenant) -> None:
    user = adele(tenant)
    tenant.signin.register(user.id, ADELE, phone("+1 425 555 0100"))
    tenant.signin.register(user.id, ADELE, temporary_access_pass(TAP))

    answer = await raw.get(f"/users/{user.id}/authentication/methods")

    assert answer.status_code == 200
    listed = answer.json()["value"]
    assert [m["@odata.type"] for m in listed] == [
        "#microsoft.graph.passwordAuthenticationMethod",
        "#microsoft.graph.phoneAuthenticationMethod",
        "#microsoft.graph.temporaryAccessPassAuthenticationMethod"]
    assert listed[0]["id"] == PASSWORD_METHOD_ID
    assert listed[1]["id"] == PHONE_METHOD_IDS["mobile"] and "createdDateTime" not in listed[1]
    assert listed[2]["temporaryAccessPass"] is None and listed[2]["createdDateTime"]
    assert TAP not in answer.text
    refused = await raw.get(f"/users/{user.id}/authentication/methods",
                            params={"$select": "id"})
    assert refused.status_code == 400


async def test_the_default_method_and_the_password_are_refused_others_deleted(
        raw: httpx.AsyncClient, tenant: SandboxTenant) -> None:
    user = adele(tenant)
    tenant.signin.register(user.id, ADELE, phone("+1 425 555 0100"), default=True)
    app = tenant.signin.register(user.id, ADELE, authenticator("Pixel 8"))
    base = f"/users/{user.id}/authentication"

    default = await raw.delete(f"{base}/phoneMethods/{PHONE_METHOD_IDS['mobile']}")
    password = await raw.delete(f"{base}/passwordMethods/{PASSWORD_METHOD_ID}")
    wrong_kind = await raw.delete(f"{base}/fido2Methods/{app.id}")
    deleted = await raw.delete(f"{base}/microsoftAuthenticatorMethods/{app.id}")
    alone = await raw.delete(f"{base}/phoneMethods/{PHONE_METHOD_IDS['mobile']}")

    assert default.status_code == 400
    assert default.json()["error"]["code"] == "badRequest"
    assert default.json()["error"]["message"] == DEFAULT_REFUSAL
    assert password.status_code == 400
    assert wrong_kind.status_code == 404
    assert deleted.status_code == 204
    assert alone.status_code == 204  # the default goes once nothing else is left
    assert tenant.signin.held(user.id) == []


async def test_a_mobile_number_stays_while_an_alternate_one_exists(
        raw: httpx.AsyncClient, tenant: SandboxTenant) -> None:
    user = adele(tenant)
    tenant.signin.register(user.id, ADELE, phone("+1 425 555 0100"))
    tenant.signin.register(user.id, ADELE, phone("+1 425 555 0101", "alternateMobile"))
    base = f"/users/{user.id}/authentication/phoneMethods"

    assert (await raw.delete(f"{base}/{PHONE_METHOD_IDS['mobile']}")).status_code == 400
    assert (await raw.delete(f"{base}/{PHONE_METHOD_IDS['alternateMobile']}")).status_code == 204
    assert (await raw.delete(f"{base}/{PHONE_METHOD_IDS['mobile']}")).status_code == 204


async def test_the_audit_log_takes_its_documented_filter_and_refuses_the_rest(
        raw: httpx.AsyncClient, tenant: SandboxTenant) -> None:
    user = adele(tenant)
    now = utc_now()
    tenant.signin.register(user.id, ADELE, phone("+1 425 555 0100",
                                                 registered=now - timedelta(days=3)))
    tenant.signin.register(user.id, ADELE, phone("+1 425 555 0101", "office",
                                                 registered=now - timedelta(days=45)))
    target = f"targetResources/any(t: t/id eq '{user.id}')"

    found = await raw.get("/auditLogs/directoryAudits", params={
        "$filter": f"activityDisplayName eq 'User registered security info' and {target}"})
    since = await raw.get("/auditLogs/directoryAudits", params={
        "$filter": f"activityDateTime ge {(now - timedelta(days=1)):%Y-%m-%dT%H:%M:%SZ} "
                   f"and {target}"})

    assert found.status_code == 200
    [record] = found.json()["value"]  # the office phone's record is past the retention
    assert record["resultReason"] == "User registered Mobile Phone SMS"
    assert since.json()["value"] == []
    for refused in ("resultReason eq 'User registered Mobile Phone SMS'",
                    f"{target} or activityDisplayName eq 'x'",
                    "activityDateTime ge '2024-01-01T00:00:00Z'",
                    "contains(activityDisplayName, 'registered')"):
        answer = await raw.get("/auditLogs/directoryAudits", params={"$filter": refused})
        assert answer.status_code == 400, refused
        assert answer.json()["error"]["message"] == "Invalid filter clause"


@pytest.mark.parametrize(("permission", "path"), [
    ("UserAuthenticationMethod.ReadWrite.All", "/users/{id}/authentication/methods"),
    ("AuditLog.Read.All", "/auditLogs/directoryAudits"),
    ("Directory.Read.All", "/auditLogs/directoryAudits")])
async def test_each_read_needs_its_permissions(raw: httpx.AsyncClient, tenant: SandboxTenant,
                                               permission: str, path: str) -> None:
    tenant.denied_permissions.add(permission)

    answer = await raw.get(path.format(id=adele(tenant).id))

    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "Authorization_RequestDenied"
