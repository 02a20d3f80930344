"""The Directory adapter against Graph's stricter corners, over HTTP with the real msgraph-sdk
client: keys Graph refuses in their plain form, aliases, addresses two objects claim, every
kind of administrator (scoped, custom, through a group, PIM-eligible), external members, and
the directory role an app-only password reset needs (API-NOTES §2 and §7)."""

from collections.abc import AsyncIterator

import pytest

from remediation.adapters.credentials import StaticTokenCredential
from remediation.adapters.graph_caller import GraphCaller
from remediation.adapters.graph_directory import GraphDirectory
from remediation.domain.errors import PermanentError
from remediation.domain.guardrails import Guardrail, Verdict, judge
from remediation.sandbox import BREAK_GLASS_GROUP_ID, SandboxTenant, SandboxUser
from remediation.sandbox.state import GLOBAL_ADMINISTRATOR, RecordedRequest

HELPDESK_ADMINISTRATOR = "729827e3-9c14-49f7-bb1b-9608f156bbb8"
PRIVILEGED_AUTHENTICATION_ADMINISTRATOR = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"
CUSTOM_ROLE = "b2d1f6a4-93c7-4e1a-8f50-6c2e9d7a1b34"  # a tenant's own role definition id
AU_SCOPE = "/administrativeUnits/4f1c2a7e-8b3d-4c59-a6e0-2d9b7f3c1e85"
TIER0_GROUP = "9a6e3c1f-5b7d-4e28-b0c4-3f8d2a1e6b97"
PASSWORD = "Tq9!mZ4#vL2@pX7$"
ADELE = "adele.vance@contoso.com"


@pytest.fixture
async def directory(sandbox_url: str, tenant: SandboxTenant) -> AsyncIterator[GraphDirectory]:
    caller = GraphCaller(sandbox_url, StaticTokenCredential(tenant.token), timeout=1.0,
                         max_retries=1, retry_delay=0.05)
    yield GraphDirectory(caller)
    await caller.close()


def graph_requests(tenant: SandboxTenant, prefix: str) -> list[RecordedRequest]:
    return [r for r in tenant.requests() if r.path.startswith(prefix)]


async def guardrail(directory: GraphDirectory, address: str,
                    protected: frozenset[str] = frozenset()) -> Guardrail:
    """What the worker decides for this account, from what the adapter reads over HTTP."""
    user = await directory.find_user(address)
    memberships = await directory.memberships(user.id)
    return judge(user, memberships, await directory.tenant_domains(), protected)


# -- A: keys and identity ---------------------------------------------------------------------


@pytest.mark.parametrize(("upn", "path"), [
    ("$ops@contoso.com", "/v1.0/users('$ops@contoso.com')"),
    ("$o'neil@contoso.com", "/v1.0/users('$o''neil@contoso.com')"),
])
async def test_a_upn_starting_with_a_dollar_is_asked_for_in_the_quoted_form(
        directory: GraphDirectory, tenant: SandboxTenant, upn: str, path: str) -> None:
    ops = tenant.add_user(SandboxUser(upn, "Operations mailbox"))

    found = await directory.find_user(upn)

    assert found.id == ops.id
    assert found.sender_address == upn
    # The plain /users/$... form is a 400 in Graph: it must never be sent.
    assert [(r.path, r.status) for r in graph_requests(tenant, "/v1.0/users")] == [(path, 200)]


async def test_an_alias_is_found_through_its_proxy_address(directory: GraphDirectory,
                                                           tenant: SandboxTenant) -> None:
    rob = tenant.add_user(SandboxUser(
        "rob@contoso.com", "Rob Young",
        proxy_addresses=["SMTP:rob@contoso.com", "smtp:Robert.Young@contoso.com",
                         "smtp:o'young@contoso.com", "SIP:rob@contoso.com"]))

    by_alias = await directory.find_user("Robert.Young@Contoso.com")
    by_quoted_alias = await directory.find_user("o'young@contoso.com")

    assert by_alias.id == by_quoted_alias.id == rob.id
    assert by_alias.sender_address == "rob@contoso.com"  # Exchange lists the primary address
    assert by_alias.proxy_addresses == (
        "rob@contoso.com", "robert.young@contoso.com", "o'young@contoso.com")
    filters = [r.query["$filter"] for r in graph_requests(tenant, "/v1.0/users")
               if "$filter" in r.query]
    assert filters[1] == "proxyAddresses/any(p:p eq 'smtp:robert.young@contoso.com')"
    assert filters[3] == "proxyAddresses/any(p:p eq 'smtp:o''young@contoso.com')"
    # Exchange's -Identity takes the alias too.
    assert tenant.user("robert.young@contoso.com").id == rob.id


async def test_an_address_two_directory_objects_claim_is_ambiguous(
        directory: GraphDirectory, tenant: SandboxTenant) -> None:
    for upn in ("first@contoso.com", "second@contoso.com"):
        tenant.add_user(SandboxUser(upn, upn, proxy_addresses=[
            f"SMTP:{upn}", "smtp:shared@contoso.com"]))

    with pytest.raises(PermanentError, match="ambiguous") as raised:
        await directory.find_user("shared@contoso.com")

    assert "shared@contoso.com" in raised.value.reason
    assert "nobody was changed" in raised.value.reason


async def test_a_user_that_does_not_own_the_address_is_never_taken_for_it(
        directory: GraphDirectory, tenant: SandboxTenant) -> None:
    # An endpoint (or a proxy in front of it) that ignores $filter answers everybody.
    tenant.users_filter_ignored = True

    with pytest.raises(PermanentError, match=r"ghost@contoso\.com not found"):
        await directory.find_user("ghost@contoso.com")

    # Among everybody answered, the one account that owns the alias is still found.
    lee = tenant.user("lee.gu@contoso.com")
    lee.proxy_addresses.append("smtp:lee@contoso.com")
    assert (await directory.find_user("lee@contoso.com")).id == lee.id


# -- B: every kind of administrator, and external members -------------------------------------


async def test_a_role_scoped_to_an_administrative_unit_escalates(
        directory: GraphDirectory, tenant: SandboxTenant) -> None:
    tenant.assign_role(tenant.user(ADELE).id, HELPDESK_ADMINISTRATOR, AU_SCOPE)

    guard = await guardrail(directory, ADELE)

    assert guard.verdict is Verdict.ESCALATE
    assert "Helpdesk Administrator" in guard.reason
    assert "scoped to an administrative unit" in guard.reason


async def test_a_custom_role_escalates_and_is_named_by_its_id(
        directory: GraphDirectory, tenant: SandboxTenant) -> None:
    tenant.assign_role(tenant.user(ADELE).id, CUSTOM_ROLE)

    guard = await guardrail(directory, ADELE)

    assert guard.verdict is Verdict.ESCALATE
    assert f"custom role {CUSTOM_ROLE}" in guard.reason


async def test_a_role_held_through_a_role_assignable_group_escalates(
        directory: GraphDirectory, tenant: SandboxTenant) -> None:
    tenant.add_group(TIER0_GROUP, "Tier-0 admins", role_assignable=True)
    tenant.assign_role(TIER0_GROUP, GLOBAL_ADMINISTRATOR)
    adele = tenant.user(ADELE)
    adele.group_ids = [TIER0_GROUP, BREAK_GLASS_GROUP_ID]

    guard = await guardrail(directory, ADELE)

    assert guard.verdict is Verdict.ESCALATE
    assert "Global Administrator" in guard.reason
    assert "Tier-0 admins" in guard.reason
    # Only the user and the role-assignable group are asked about: not every group.
    asked = {r.query.get("$filter") for r in graph_requests(
        tenant, "/v1.0/roleManagement/directory/roleAssignments")}
    assert asked == {f"principalId eq '{adele.id}'", f"principalId eq '{TIER0_GROUP}'"}


async def test_a_pim_eligible_role_escalates(directory: GraphDirectory,
                                             tenant: SandboxTenant) -> None:
    tenant.make_eligible(tenant.user(ADELE).id, PRIVILEGED_AUTHENTICATION_ADMINISTRATOR)

    guard = await guardrail(directory, ADELE)

    assert guard.verdict is Verdict.ESCALATE
    assert "Privileged Authentication Administrator" in guard.reason
    assert "eligible (PIM)" in guard.reason


async def test_a_pim_eligible_role_through_a_group_escalates(directory: GraphDirectory,
                                                             tenant: SandboxTenant) -> None:
    tenant.add_group(TIER0_GROUP, "Tier-0 admins", role_assignable=True)
    tenant.make_eligible(TIER0_GROUP, GLOBAL_ADMINISTRATOR)
    tenant.user(ADELE).group_ids = [TIER0_GROUP]

    guard = await guardrail(directory, ADELE)

    assert guard.verdict is Verdict.ESCALATE
    assert "Global Administrator" in guard.reason
    assert "eligible (PIM)" in guard.reason


async def test_a_tenant_without_p2_answers_400_and_the_other_checks_still_count(
        directory: GraphDirectory, tenant: SandboxTenant) -> None:
    tenant.pim_licensed = False
    tenant.assign_role(tenant.user(ADELE).id, HELPDESK_ADMINISTRATOR, AU_SCOPE)

    admin = await guardrail(directory, ADELE)
    ordinary = await guardrail(directory, "alex.wilber@contoso.com")

    assert admin.verdict is Verdict.ESCALATE
    assert "Helpdesk Administrator" in admin.reason
    assert ordinary.verdict is Verdict.PROCEED
    assert ordinary.facts["pim"] == "no PIM data (the tenant has no Entra ID P2)"
    eligibility = graph_requests(
        tenant, "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances")
    assert {r.status for r in eligibility} == {400}


@pytest.mark.parametrize("upn", ["sam.jones_fabrikam.com#EXT#@contoso.onmicrosoft.com",
                                 "kim.lee_northwind.com#ext#@contoso.onmicrosoft.com"])
async def test_an_external_member_with_ext_in_its_upn_escalates(
        directory: GraphDirectory, tenant: SandboxTenant, upn: str) -> None:
    tenant.add_user(SandboxUser(upn, "External member", user_type="Member"))

    guard = await guardrail(directory, upn)

    assert guard.verdict is Verdict.ESCALATE
    assert "external" in guard.reason
    assert "#EXT#" in guard.reason


@pytest.mark.parametrize("creation_type", ["Invitation", "EmailVerified", "SelfServiceSignUp"])
async def test_an_external_member_by_creation_type_escalates(
        directory: GraphDirectory, tenant: SandboxTenant, creation_type: str) -> None:
    tenant.add_user(SandboxUser("partner@contoso.com", "Partner", user_type="Member",
                                creation_type=creation_type,
                                external_user_state="Accepted"))

    guard = await guardrail(directory, "partner@contoso.com")

    assert guard.verdict is Verdict.ESCALATE
    assert "external" in guard.reason
    assert creation_type in guard.reason


@pytest.mark.parametrize(("address", "verdict", "words"), [
    ("grace.taylor@contoso.com", Verdict.ESCALATE, "protected group"),
    ("patti.fernandez@contoso.com", Verdict.ESCALATE, "directory role(s) Global Administrator"),
    ("pradeep.gupta@fabrikam.com", Verdict.ESCALATE, "guest account"),
    ("miriam.graham@contoso.com", Verdict.SKIP, "disabled"),
    ("isaiah.langer@contoso.com", Verdict.REVOKE_THEN_ESCALATE, "synced from on-premises"),
    (ADELE, Verdict.PROCEED, ""),
])
async def test_the_seeded_guardrail_accounts_keep_their_verdicts(
        directory: GraphDirectory, address: str, verdict: Verdict, words: str) -> None:
    guard = await guardrail(directory, address, frozenset({BREAK_GLASS_GROUP_ID}))

    assert guard.verdict is verdict
    assert words in guard.reason


# -- C: the directory role a password reset needs ---------------------------------------------


async def test_a_reset_refused_for_want_of_the_role_names_the_role(
        directory: GraphDirectory, tenant: SandboxTenant) -> None:
    tenant.app_has_user_administrator = False
    adele = tenant.user(ADELE)

    with pytest.raises(PermanentError) as raised:
        await directory.reset_password(adele.id, PASSWORD)

    reason = raised.value.reason
    assert "grant the app the User Administrator directory role" in reason
    assert "User-PasswordProfile.ReadWrite.All alone is not enough" in reason
    assert "administrator" in reason.split("User-PasswordProfile")[-1]  # or the target is one
    assert PASSWORD not in reason
    assert adele.password_changes == []
