"""The guardrails' verdicts, the role descriptions they name, and address ownership; and one
run of the workflow, to show that what the lookup journaled still decides (external accounts)."""

from datetime import timedelta

import pytest

from remediation.domain.cases import CaseState
from remediation.domain.directory import DirectoryUser
from remediation.domain.guardrails import Memberships, TenantDomains, Verdict, judge
from remediation.domain.requests import RemediationRequest
from remediation.domain.roles import RoleHolding, role_name
from remediation.service.episodes import lookup_result, user_from_lookup
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings
from tests.fakes import FakeTenant

DOMAINS = TenantDomains(names=frozenset({"contoso.com", "fabrikam.com"}),
                        federated=frozenset({"fabrikam.com"}))
PROTECTED = frozenset({"break-glass"})
AU = "/administrativeUnits/4f1c2a7e-8b3d-4c59-a6e0-2d9b7f3c1e85"
NO_MEMBERSHIPS = Memberships()


def account(upn: str = "rob@contoso.com", **fields: object) -> DirectoryUser:
    return DirectoryUser(id="3f2a1b4c-0000-4000-8000-00000000abcd", user_principal_name=upn,
                         mail=upn, **fields)  # type: ignore[arg-type]


def verdict_of(user: DirectoryUser, memberships: Memberships = NO_MEMBERSHIPS) -> Verdict:
    return judge(user, memberships, DOMAINS, PROTECTED).verdict


def test_role_names_built_in_roles_and_calls_the_rest_custom() -> None:
    assert role_name("62E90394-69F5-4237-9190-012177145E10") == "Global Administrator"
    assert role_name("729827e3-9c14-49f7-bb1b-9608f156bbb8") == "Helpdesk Administrator"
    assert role_name("b2d1f6a4-93c7-4e1a-8f50-6c2e9d7a1b34") == (
        "custom role b2d1f6a4-93c7-4e1a-8f50-6c2e9d7a1b34")


def test_a_holding_says_how_the_role_is_held() -> None:
    assert RoleHolding("62e90394-69f5-4237-9190-012177145e10").describe() == (
        "Global Administrator")
    assert RoleHolding("729827e3-9c14-49f7-bb1b-9608f156bbb8", scope=AU, eligible=True,
                       via_group="Tier-1").describe() == (
        "Helpdesk Administrator, eligible (PIM), scoped to an administrative unit "
        "(4f1c2a7e-8b3d-4c59-a6e0-2d9b7f3c1e85), through group Tier-1")
    assert RoleHolding("x", name="Mailbox helpers").describe() == "Mailbox helpers"


def test_any_role_escalates_and_the_reason_names_each() -> None:
    roles = ("Global Administrator", "Helpdesk Administrator, eligible (PIM)",
             "custom role b2d1f6a4")
    guard = judge(account(), Memberships(roles=roles), DOMAINS, PROTECTED)

    assert guard.verdict is Verdict.ESCALATE
    assert "Global Administrator; Helpdesk Administrator, eligible (PIM); custom role" in (
        guard.reason)
    assert guard.facts["roles"] == list(roles)


def test_missing_pim_data_is_a_fact_not_a_failure() -> None:
    guard = judge(account(), Memberships(pim_data=False), DOMAINS, PROTECTED)

    assert guard.verdict is Verdict.PROCEED
    assert guard.facts["pim"] == "no PIM data (the tenant has no Entra ID P2)"


@pytest.mark.parametrize(("upn", "fields", "why"), [
    ("sam_fabrikam.com#EXT#@contoso.onmicrosoft.com", {}, "#EXT#"),
    ("sam_fabrikam.com#ext#@contoso.onmicrosoft.com", {}, "#EXT#"),
    ("partner@contoso.com", {"creation_type": "Invitation"}, "creationType Invitation"),
    ("partner@contoso.com", {"creation_type": "invitation"}, "creationType invitation"),
    ("partner@contoso.com", {"creation_type": "EmailVerified"}, "creationType EmailVerified"),
    ("partner@contoso.com", {"creation_type": "SelfServiceSignUp"},
     "creationType SelfServiceSignUp"),
])
def test_an_external_member_escalates(upn: str, fields: dict[str, object], why: str) -> None:
    guard = judge(account(upn, user_type="Member", **fields), Memberships(), DOMAINS, PROTECTED)

    assert guard.verdict is Verdict.ESCALATE
    assert f"external account ({why}" in guard.reason


def test_the_older_rules_keep_their_order_and_verdicts() -> None:
    assert verdict_of(account(), Memberships(group_ids=frozenset({"break-glass"}))) is (
        Verdict.ESCALATE)
    guest = judge(account("g_x.com#EXT#@contoso.onmicrosoft.com", user_type="Guest"),
                  Memberships(), DOMAINS, PROTECTED)
    assert "guest account" in guest.reason  # a guest stays a guest, not "external member"
    assert verdict_of(account(account_enabled=False)) is Verdict.ESCALATE  # never skipped
    assert verdict_of(account(on_premises_sync_enabled=True)) is Verdict.REVOKE_THEN_ESCALATE
    assert verdict_of(account("rob@fabrikam.com")) is Verdict.REVOKE_THEN_ESCALATE
    assert verdict_of(account(creation_type="LocalAccount")) is Verdict.PROCEED
    assert verdict_of(account()) is Verdict.PROCEED


def test_an_account_owns_its_id_upn_mail_and_smtp_addresses_only() -> None:
    user = account(proxy_addresses=("rob@contoso.com", "robert@contoso.com"))

    for key in (user.id, "ROB@contoso.com", "smtp:Robert@Contoso.com", " robert@contoso.com "):
        assert user.owns(key), key
    assert not user.owns("someone@contoso.com")
    assert not user.owns("contoso.com")


def test_the_journaled_lookup_keeps_what_the_guardrails_read() -> None:
    user = account("partner@contoso.com", user_type="Member", creation_type="Invitation",
                   external_user_state="Accepted",
                   proxy_addresses=("partner@contoso.com", "p@contoso.com"))

    again = user_from_lookup(lookup_result(user).data)

    assert again.proxy_addresses == user.proxy_addresses
    assert again.creation_type == "Invitation"
    assert again.external_user_state == "Accepted"
    assert again.external_reason == user.external_reason


async def test_the_workflow_never_resets_an_external_member() -> None:
    tenant = FakeTenant()
    tenant.directory.put_user(account("partner@contoso.com", user_type="Member",
                                      creation_type="Invitation"))
    tenant.exchange.block("partner@contoso.com",
                          created=tenant.clock.now() - timedelta(minutes=30))
    workflow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=(timedelta(hours=1),)))

    case = await workflow.remediate(
        RemediationRequest(user="partner@contoso.com", request_id="req-1"))

    assert case.state is CaseState.ESCALATED
    assert "external account (creationType Invitation)" in (case.reason or "")
    assert tenant.directory.passwords == []
    assert tenant.exchange.unblocks == []


def test_ownership_or_pim_eligibility_of_a_protected_group_escalates() -> None:
    user = DirectoryUser(id="u1", user_principal_name="owen@contoso.com", mail=None)
    access = (("g-protected", "owner"), ("g-other", "eligible member (PIM for Groups)"),
              ("g-protected", "eligible member (PIM for Groups) of group g-n, nested in it"))
    guard = judge(user, Memberships(group_access=access), TenantDomains(),
                  frozenset({"g-protected"}))

    assert guard.verdict is Verdict.ESCALATE
    assert guard.reason.startswith("owner of protected group g-protected; eligible member")
    assert "g-other" not in guard.reason
    assert judge(user, Memberships(group_access=access[1:2]), TenantDomains(),
                 frozenset({"g-protected"})).verdict is Verdict.PROCEED
