"""The Directory adapter against Graph's stricter corners, over HTTP with the real msgraph-sdk
client: keys Graph refuses in their plain form, aliases, addresses two objects claim, every
kind of administrator (scoped, custom, through a group, PIM-eligible), external members, and
the directory role an app-only password reset needs (Graph's "Update user" and "Get user")."""

from collections.abc import AsyncIterator

import httpx
import pytest

from remediation.adapters.credentials import StaticTokenCredential
from remediation.adapters.graph_caller import GraphCaller
from remediation.adapters.graph_directory import GraphDirectory
from remediation.domain.errors import PermanentError, RemediationError
from remediation.domain.guardrails import Guardrail, Verdict, judge
from remediation.sandbox import (
    BREAK_GLASS_GROUP_ID,
    Fault,
    SandboxTenant,
    SandboxUser,
    pim_shapes,
)
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


@pytest.fixture
async def raw(sandbox_url: str, tenant: SandboxTenant) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox's Graph as any HTTP client sees it."""
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=5, headers={
            "Authorization": f"Bearer {tenant.token}"}) as client:
        yield client


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
    # The plain /users/$... form is a 400 in Graph: it must never be sent. (Then mail and
    # alias: nobody else may claim the address.)
    asked = [(r.path, r.status) for r in graph_requests(tenant, "/v1.0/users")]
    assert asked == [(path, 200), ("/v1.0/users", 200), ("/v1.0/users", 200)]


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
    # The key, mail and alias are asked side by side: their order on the wire is not fixed.
    assert "proxyAddresses/any(p:p eq 'smtp:robert.young@contoso.com')" in filters[:2]
    # Graph refuses the apostrophe as a key: the UPN filter asks in its place.
    assert sorted(filters[2:]) == sorted(["userPrincipalName eq 'o''young@contoso.com'",
                                          "mail eq 'o''young@contoso.com'",
                                          "proxyAddresses/any(p:p eq 'smtp:o''young@contoso.com')"])
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
    ("miriam.graham@contoso.com", Verdict.ESCALATE, "disabled"),
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


# -- D: PIM for Groups: eligible (or active) through a group governed by PIM ------------------


async def test_an_eligible_member_of_a_group_that_holds_a_role_escalates(
        directory: GraphDirectory, tenant: SandboxTenant) -> None:
    # Not a member (transitiveMemberOf does not list the group): only eligible to become one.
    tenant.add_group(TIER0_GROUP, "Tier-0 admins", role_assignable=True)
    tenant.assign_role(TIER0_GROUP, GLOBAL_ADMINISTRATOR)
    adele = tenant.user(ADELE)
    tenant.make_group_eligible(adele.id, TIER0_GROUP)

    guard = await guardrail(directory, ADELE)

    assert guard.verdict is Verdict.ESCALATE
    assert "Global Administrator" in guard.reason
    assert "eligible member (PIM for Groups)" in guard.reason
    asked = [r.query.get("$filter") for r in graph_requests(
        tenant, "/v1.0/identityGovernance/privilegedAccess/group/")]
    assert asked == [f"principalId eq '{adele.id}'"] * 2


@pytest.mark.parametrize("active", [False, True], ids=["eligible", "active"])
async def test_an_owner_of_a_group_with_an_eligible_role_escalates(
        directory: GraphDirectory, tenant: SandboxTenant, active: bool) -> None:
    # An owner may add itself as a member, and so activate the group's roles.
    tenant.add_group(TIER0_GROUP, "Tier-0 admins", role_assignable=True)
    tenant.make_eligible(TIER0_GROUP, HELPDESK_ADMINISTRATOR)
    adele = tenant.user(ADELE)
    if active:
        tenant.assign_group_access(adele.id, TIER0_GROUP, "owner")
    else:
        tenant.make_group_eligible(adele.id, TIER0_GROUP, "owner")

    guard = await guardrail(directory, ADELE)

    assert guard.verdict is Verdict.ESCALATE
    assert "Helpdesk Administrator, eligible (PIM)" in guard.reason
    how = "owner (PIM for Groups)" if active else "eligible owner (PIM for Groups)"
    assert f"through group {TIER0_GROUP} as {how}" in guard.reason


async def test_pim_for_groups_without_p2_is_no_pim_data(directory: GraphDirectory,
                                                         tenant: SandboxTenant) -> None:
    tenant.pim_licensed = False

    guard = await guardrail(directory, "alex.wilber@contoso.com")

    assert guard.verdict is Verdict.PROCEED
    assert guard.facts["pim"] == "no PIM data (the tenant has no Entra ID P2)"
    answered = graph_requests(tenant, "/v1.0/identityGovernance/privilegedAccess/group/")
    assert answered and {r.status for r in answered} == {400}


@pytest.mark.parametrize("endpoint", ["eligibilityScheduleInstances",
                                      "assignmentScheduleInstances"])
async def test_any_other_pim_for_groups_error_fails_closed(
        directory: GraphDirectory, tenant: SandboxTenant, endpoint: str) -> None:
    tenant.add_fault(Fault(status=403, code="Authorization_RequestDenied", times=None,
                           message="Insufficient privileges to complete the operation.",
                           path=f"/privilegedAccess/group/{endpoint}$"))

    with pytest.raises(PermanentError, match="403 Authorization_RequestDenied"):
        await directory.memberships(tenant.user(ADELE).id)


@pytest.mark.parametrize("permission", ["PrivilegedEligibilitySchedule.Read.AzureADGroup",
                                        "PrivilegedAssignmentSchedule.Read.AzureADGroup"])
async def test_without_a_pim_for_groups_permission_the_read_fails_closed(
        directory: GraphDirectory, tenant: SandboxTenant, permission: str) -> None:
    # An upgrade that did not re-run infra/grant-permissions.sh: 403, never "no roles".
    tenant.denied_permissions.add(permission)

    with pytest.raises(PermanentError, match="403 Authorization_RequestDenied"):
        await directory.memberships(tenant.user(ADELE).id)


ALEX = "alex.wilber@contoso.com"  # no role, no group: only PIM could make him an admin


@pytest.mark.parametrize("read", pim_shapes.READS)
async def test_a_licence_refusal_on_any_pim_read_is_no_pim_data(
        directory: GraphDirectory, tenant: SandboxTenant, read: str) -> None:
    tenant.pim_refusals = {read: pim_shapes.LICENCE}

    guard = await guardrail(directory, ALEX)

    assert guard.verdict is Verdict.PROCEED
    assert guard.facts["pim"] == "no PIM data (the tenant has no Entra ID P2)"


async def test_the_older_licence_words_are_no_pim_data_too(directory: GraphDirectory,
                                                           tenant: SandboxTenant) -> None:
    # What a P1 tenant was answered by another PIM list (microsoft/EntraExporter#61).
    tenant.add_fault(Fault(status=400, code="BadRequest", times=None,
                           path="/privilegedAccess/group/eligibilityScheduleInstances$",
                           message="The tenant needs an AAD Premium 2 license."))

    guard = await guardrail(directory, ALEX)

    assert guard.verdict is Verdict.PROCEED
    assert guard.facts["pim"] == "no PIM data (the tenant has no Entra ID P2)"


@pytest.mark.parametrize("read", pim_shapes.READS)
@pytest.mark.parametrize(("shape", "words"), [
    (pim_shapes.NOT_ONBOARDED, "the tenant has not onboarded to PIM"),
    (pim_shapes.UNSUPPORTED, "ResourceTypeNotSupported"),
])
async def test_a_pim_answer_that_proves_no_absence_fails_closed(
        directory: GraphDirectory, tenant: SandboxTenant, read: str, shape: str,
        words: str) -> None:
    # Neither says the tenant has no PIM: an eligible Global Administrator may hide behind it.
    tenant.pim_refusals = {read: shape}

    with pytest.raises(PermanentError) as raised:
        await directory.memberships(tenant.user(ALEX).id)

    reason = raised.value.reason
    assert words in reason
    assert "cannot be ruled out" in reason
    assert "remediation doctor" in reason


async def test_the_sandbox_requires_a_filter_on_pim_for_groups(
        raw: httpx.AsyncClient, tenant: SandboxTenant) -> None:
    base = "/v1.0/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances"
    tenant.add_group(TIER0_GROUP, "Tier-0 admins", role_assignable=True)
    grant = tenant.make_group_eligible(tenant.user(ADELE).id, TIER0_GROUP)

    unfiltered = await raw.get(base)
    by_group = await raw.get(base, params={"$filter": f"groupId eq '{TIER0_GROUP}'"})

    assert unfiltered.status_code == 400
    assert by_group.status_code == 200
    [item] = by_group.json()["value"]
    assert item["principalId"] == grant.principal_id
    assert (item["accessId"], item["memberType"]) == ("member", "Direct")


# -- E: the sandbox looks users up no more leniently than Graph -------------------------------


async def test_a_segment_is_decoded_once_as_graph_does(raw: httpx.AsyncClient,
                                                       tenant: SandboxTenant) -> None:
    odd = tenant.add_user(SandboxUser("$x%41@contoso.com", "Percent in the UPN"))

    once = await raw.get("/v1.0/users('$x%2541@contoso.com')")
    twice = await raw.get("/v1.0/users/adele.vance%2540contoso.com")

    assert once.status_code == 200 and once.json()["id"] == odd.id
    assert twice.status_code == 404  # "adele.vance%40contoso.com" is nobody's UPN


@pytest.mark.parametrize("upn", ["$ops#1@contoso.com", "$a^b~c!d@contoso.com",
                                 "$o'neil&co@contoso.com", "$x%41@contoso.com"])
async def test_a_dollar_upn_with_odd_characters_is_found(
        directory: GraphDirectory, tenant: SandboxTenant, upn: str) -> None:
    user = tenant.add_user(SandboxUser(upn, "Odd mailbox"))

    assert (await directory.find_user(upn)).id == user.id


async def test_mail_eq_matches_mail_only(raw: httpx.AsyncClient, directory: GraphDirectory,
                                         tenant: SandboxTenant) -> None:
    # An account without a mailbox: Graph's mail is null, whatever its UPN.
    bare = tenant.add_user(SandboxUser("kiosk@contoso.com", "Kiosk", has_mail=False))

    by_mail = await raw.get("/v1.0/users", params={"$filter": "mail eq 'kiosk@contoso.com'"})
    found = await directory.find_user("kiosk@contoso.com")

    assert by_mail.json()["value"] == []
    assert (found.id, found.mail, found.sender_address) == (bare.id, None, "kiosk@contoso.com")


async def test_properties_that_need_select_come_only_when_selected(
        raw: httpx.AsyncClient) -> None:
    plain = (await raw.get(f"/v1.0/users/{ADELE}")).json()
    chosen = (await raw.get(f"/v1.0/users/{ADELE}",
                            params={"$select": "proxyAddresses,CreationType"})).json()
    unknown = await raw.get(f"/v1.0/users/{ADELE}", params={"$select": "favouriteColour"})

    for hidden in ("accountEnabled", "userType", "proxyAddresses", "creationType",
                   "externalUserState", "onPremisesSyncEnabled"):
        assert hidden not in plain, hidden
    assert plain["userPrincipalName"] == plain["mail"] == ADELE
    assert set(chosen) == {"@odata.context", "id", "proxyAddresses", "creationType"}
    assert chosen["@odata.context"].endswith("#users(proxyAddresses,creationType)/$entity")
    assert unknown.status_code == 400


# -- F: two directory objects claiming one address, across key, mail and alias ----------------


@pytest.mark.parametrize("first", [
    SandboxUser("sam@contoso.com", "Sam"),  # the UPN of one ...
    SandboxUser("sam.a@contoso.onmicrosoft.com", "Sam A", mail="sam@contoso.com"),  # its mail
], ids=["upn", "mail"])
async def test_an_address_one_owns_and_another_has_as_alias_is_ambiguous(
        directory: GraphDirectory, tenant: SandboxTenant, first: SandboxUser) -> None:
    tenant.add_user(first)
    tenant.add_user(SandboxUser("samuel@contoso.com", "Samuel", proxy_addresses=[
        "SMTP:samuel@contoso.com", "smtp:sam@contoso.com"]))  # ... the alias of another

    with pytest.raises(PermanentError, match="ambiguous") as raised:
        await directory.find_user("sam@contoso.com")

    assert first.id in raised.value.reason
    # The cost of a look-up by address: the key, mail and alias, one request each.
    assert len(graph_requests(tenant, "/v1.0/users")) == 3


# -- G: an internal account converted to B2B --------------------------------------------------


@pytest.mark.parametrize("state", ["PendingAcceptance", "Accepted"])
async def test_an_account_converted_to_b2b_escalates(directory: GraphDirectory,
                                                     tenant: SandboxTenant, state: str) -> None:
    # Invited to B2B in place: still a Member with its own UPN and no creationType, but its
    # password now lives with its home organisation.
    tenant.user(ADELE).external_user_state = state

    guard = await guardrail(directory, ADELE)

    assert guard.verdict is Verdict.ESCALATE
    assert f"externalUserState {state}" in guard.reason


# -- H: what a User Administrator may reset: the guardrails are the protection -----------------


async def test_graph_lets_the_app_reset_some_administrators(directory: GraphDirectory,
                                                            tenant: SandboxTenant) -> None:
    # "Who can reset passwords": a User Administrator may reset a Helpdesk Administrator (so
    # only the guardrails keep the robot off her), not a Global Administrator nor a member of
    # a role-assignable group.
    helpdesk = tenant.add_user(SandboxUser("hd@contoso.com", "Helpdesk",
                                           role_template_ids=[HELPDESK_ADMINISTRATOR]))
    admin = tenant.add_user(SandboxUser("ga@contoso.com", "Global",
                                        role_template_ids=[GLOBAL_ADMINISTRATOR]))
    tenant.add_group(TIER0_GROUP, "Tier-0 admins", role_assignable=True)
    member = tenant.add_user(SandboxUser("t0@contoso.com", "Tier-0", group_ids=[TIER0_GROUP]))

    await directory.reset_password(helpdesk.id, PASSWORD)
    for refused in (admin, member):
        with pytest.raises(PermanentError, match="403"):
            await directory.reset_password(refused.id, PASSWORD)

    assert len(helpdesk.password_changes) == 1
    assert admin.password_changes == member.password_changes == []
    guard = await guardrail(directory, "hd@contoso.com")
    assert guard.verdict is Verdict.ESCALATE


QUOTED = "Invalid value 'kQ7\\u0026mZ2\\u003cvX9!pL4#wR8%tY' for property passwordProfile"


@pytest.mark.parametrize("status", [400, 503])
async def test_a_failed_reset_never_carries_graphs_message_which_may_quote_the_password(
        directory: GraphDirectory, tenant: SandboxTenant, status: int) -> None:
    tenant.add_fault(Fault(status=status, method="PATCH", path=r"^/v1\.0/users/", times=None,
                           code="Request_BadRequest" if status == 400 else "UnknownError",
                           message=QUOTED))
    with pytest.raises(RemediationError) as raised:
        await directory.reset_password(tenant.user(ADELE).id, "Aa1!" * 6)
    assert "kQ7" not in raised.value.reason and "passwordProfile" not in raised.value.reason
    assert "reset password failed" in raised.value.reason


# -- I: a key Graph refuses in the /users/{key} segment ---------------------------------------


async def test_the_sandbox_refuses_a_key_with_an_apostrophe_as_graph_may(
        raw: httpx.AsyncClient, tenant: SandboxTenant) -> None:
    tenant.add_user(SandboxUser("o'brien@contoso.com", "Pat O'Brien"))

    by_key = await raw.get("/v1.0/users/o'brien@contoso.com")
    by_upn = await raw.get("/v1.0/users", params={
        "$filter": "userPrincipalName eq 'o''brien@contoso.com'"})
    tenant.refused_key_characters = ""  # a Graph that takes the apostrophe
    lenient = await raw.get("/v1.0/users/o'brien@contoso.com")

    assert by_key.status_code == 400
    assert by_key.json()["error"]["code"] == "Request_BadRequest"
    assert by_key.json()["error"]["message"] == (
        "Bad request. Please fix the request before retrying.")
    [found] = by_upn.json()["value"]
    assert found["userPrincipalName"] == "o'brien@contoso.com"
    assert lenient.status_code == 200


@pytest.mark.parametrize(("upn", "mail", "asked"), [
    ("o'brien@contoso.com", None, "o'brien@contoso.com"),
    # Known by a UPN that is neither its mail nor an alias: only the UPN filter finds it.
    ("o'brien@contoso.onmicrosoft.com", "pat.obrien@contoso.com",
     "o'brien@contoso.onmicrosoft.com"),
    ("pat@contoso.onmicrosoft.com", "o'brien@contoso.com", "o'brien@contoso.com"),
], ids=["upn-and-mail", "upn-only", "mail-only"])
async def test_an_address_graph_refuses_as_a_key_is_found_by_the_filters(
        directory: GraphDirectory, tenant: SandboxTenant, upn: str, mail: str | None,
        asked: str) -> None:
    pat = tenant.add_user(SandboxUser(upn, "Pat O'Brien", mail=mail))

    found = await directory.find_user(asked)

    assert found.id == pat.id
    asked_for = [(r.path, r.query.get("$filter"), r.status)
                 for r in graph_requests(tenant, "/v1.0/users")]
    literal = asked.replace("'", "''")
    refused = (f"/v1.0/users/{asked}", None, 400)  # Graph refused the key ...
    by_upn = ("/v1.0/users", f"userPrincipalName eq '{literal}'", 200)  # ... the UPN filter
    # The key, mail and alias are asked side by side (their order on the wire is not
    # fixed); the UPN filter only once the key was refused.
    assert sorted(asked_for, key=str) == sorted([
        refused, by_upn, ("/v1.0/users", f"mail eq '{literal}'", 200),
        ("/v1.0/users", f"proxyAddresses/any(p:p eq 'smtp:{literal}')", 200)], key=str)
    assert asked_for.index(by_upn) > asked_for.index(refused)


async def test_a_400_on_the_key_for_another_reason_fails_clearly(
        directory: GraphDirectory, tenant: SandboxTenant) -> None:
    # Not the key: a property this Graph does not have (a sovereign cloud, say). Answering
    # with the filters' (asked side by side with the key) would only hide the cause.
    tenant.add_fault(Fault(
        status=400, code="BadRequest", method="GET", path=r"^/v1\.0/users/[^/]+$", times=None,
        message="Could not find a property named 'creationType' on type "
                "'microsoft.graph.user'."))

    with pytest.raises(PermanentError) as raised:
        await directory.find_user(ADELE)

    reason = raised.value.reason
    assert "400 BadRequest" in reason
    assert "Could not find a property named 'creationType'" in reason
    asked = [r.path for r in graph_requests(tenant, "/v1.0/users")]
    assert asked.count(f"/v1.0/users/{ADELE}") == 1
    # No UPN filter in the key's place: the key was not refused, the request was.
    assert not any("userPrincipalName" in (r.query.get("$filter") or "")
                   for r in graph_requests(tenant, "/v1.0/users"))
