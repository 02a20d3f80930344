"""The preflight's judgement (service/doctor.py) with a fake of its port, the claims of a token
(domain/tokens.py), and what the sandbox demands of each endpoint (sandbox/app_rights.py)."""

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from remediation.adapters.preflight import service_bus_probe, service_bus_schedule_probe
from remediation.domain.roles import GLOBAL_ADMINISTRATOR, USER_ADMINISTRATOR
from remediation.domain.tokens import TokenClaims, read_claims
from remediation.permissions import (
    DIRECTORY_ROLES,
    EXCHANGE_ONLINE,
    MICROSOFT_GRAPH,
    PERMISSIONS,
    permissions_on,
)
from remediation.sandbox.app_rights import required_permission, rule_permissions
from remediation.service.doctor import (
    CAPABILITIES,
    Finding,
    NoPimData,
    Refused,
    Status,
    Target,
    TokenUnavailable,
    Unreachable,
    examine,
)

TENANT = "8f6d1c2e-5b4a-4e3f-9a1b-7c2d3e4f5a6b"
APP = "5a1f0b7e-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
TARGET = Target(tenant_id=TENANT, graph_endpoint="https://graph.microsoft.com",
                exchange_endpoint="https://outlook.office365.com", mode="enforce",
                service_bus_namespace=None, remediation_db=".remediation/state.db",
                table_journal=False)


def app_token(resource: str, *, roles: list[str] | None = None,
              wids: frozenset[str] | None = frozenset(r.template_id for r in DIRECTORY_ROLES),
              tenant: str = TENANT, delegated: bool = False) -> TokenClaims:
    return TokenClaims(roles=frozenset(permissions_on(resource) if roles is None else roles),
                       wids=wids, delegated=delegated, tenant_id=tenant, object_id=APP)


@dataclass
class FakePreflight:
    tokens: dict[str, TokenClaims | Exception | None] = field(default_factory=lambda: {
        MICROSOFT_GRAPH: app_token(MICROSOFT_GRAPH),
        EXCHANGE_ONLINE: app_token(EXCHANGE_ONLINE)})
    failures: dict[str, Exception] = field(default_factory=dict)
    # The app's tenant-wide role assignments (read when no token lists wids).
    assignments: frozenset[str] | Exception = frozenset(r.template_id for r in DIRECTORY_ROLES)
    principals: list[str] = field(default_factory=list)

    async def claims(self, resource: str) -> TokenClaims | None:
        token = self.tokens[resource]
        if isinstance(token, Exception):
            raise token
        return token

    async def read(self, capability: str) -> str:
        if capability in self.failures:
            raise self.failures[capability]
        return "answered"

    async def role_assignments(self, principal_id: str) -> frozenset[str]:
        self.principals.append(principal_id)
        if isinstance(self.assignments, Exception):
            raise self.assignments
        return self.assignments


async def findings(preflight: FakePreflight, target: Target = TARGET) -> dict[str, Finding]:
    report = await examine(preflight, target)
    by_check = {finding.check: finding for finding in report.findings}
    assert len(by_check) == len(report.findings), "a check appears twice"
    return by_check


def failed(by_check: dict[str, Finding]) -> set[str]:
    return {check for check, finding in by_check.items() if finding.status is Status.FAIL}


def unverified(by_check: dict[str, Finding]) -> set[str]:
    return {check for check, finding in by_check.items()
            if finding.status is Status.UNVERIFIED}


async def test_everything_in_place_passes() -> None:
    report = await examine(FakePreflight(), TARGET)

    assert report.ready
    checks = {finding.check for finding in report.findings}
    assert {f"permission {p.name}" for p in PERMISSIONS} <= checks
    assert {f"role {r.name}" for r in DIRECTORY_ROLES} <= checks
    assert {c.check for c in CAPABILITIES} <= checks


async def test_a_delegated_token_is_not_the_apps() -> None:
    preflight = FakePreflight()
    preflight.tokens[MICROSOFT_GRAPH] = app_token(MICROSOFT_GRAPH, roles=[], delegated=True)

    by_check = await findings(preflight)

    assert failed(by_check) == {"token for Microsoft Graph"}
    assert "a user's token" in by_check["token for Microsoft Graph"].result
    assert "permission User.Read.All" not in by_check  # a user's roles say nothing of the app's


async def test_a_token_of_another_tenant_names_both_tenants() -> None:
    other = "11111111-2222-3333-4444-555555555555"
    preflight = FakePreflight()
    preflight.tokens[EXCHANGE_ONLINE] = app_token(EXCHANGE_ONLINE, tenant=other)

    finding = (await findings(preflight))["token for Office 365 Exchange Online"]

    assert finding.status is Status.FAIL
    assert other in finding.result and TENANT in finding.result
    assert f"set AZURE_TENANT_ID to {other}" in finding.fix


def without_wids() -> dict[str, TokenClaims | Exception | None]:
    return {MICROSOFT_GRAPH: app_token(MICROSOFT_GRAPH, wids=None),
            EXCHANGE_ONLINE: app_token(EXCHANGE_ONLINE, wids=None)}


async def test_without_wids_the_roles_are_read_from_the_apps_role_assignments() -> None:
    preflight = FakePreflight(tokens=without_wids())

    report = await examine(preflight, TARGET)

    assert report.ready
    assert preflight.principals == [APP]  # the token's oid
    by_check = {finding.check: finding for finding in report.findings}
    for role in DIRECTORY_ROLES:
        assert by_check[f"role {role.name}"].status is Status.OK
        assert "(roleAssignments)" in by_check[f"role {role.name}"].result


async def test_without_wids_a_role_missing_from_the_assignments_fails() -> None:
    preflight = FakePreflight(tokens=without_wids(),
                              assignments=frozenset({"29232cdf-9323-42fd-ade2-1d097af3e4de"}))

    by_check = await findings(preflight)

    assert failed(by_check) == {"role User Administrator"}
    assert (f"assign the User Administrator role ({USER_ADMINISTRATOR}) to the app's service "
            f"principal: bash infra/grant-permissions.sh {APP}") == by_check[
        "role User Administrator"].fix


async def test_without_wids_and_unreadable_assignments_the_roles_are_unverified() -> None:
    preflight = FakePreflight(tokens=without_wids(),
                              assignments=Refused(403, "Authorization_RequestDenied"))

    report = await examine(preflight, TARGET)

    assert not report.ready  # needed and not seen: never taken as in place
    by_check = {finding.check: finding for finding in report.findings}
    assert unverified(by_check) == {f"role {role.name}" for role in DIRECTORY_ROLES}
    finding = by_check["role User Administrator"]
    assert "403 Authorization_RequestDenied" in finding.result
    assert "grant RoleManagement.Read.Directory" in finding.fix


async def test_an_opaque_token_never_passes_what_no_read_shows() -> None:
    preflight = FakePreflight(tokens={MICROSOFT_GRAPH: None, EXCHANGE_ONLINE: None})

    report = await examine(preflight, TARGET)

    assert not report.ready
    by_check = {finding.check: finding for finding in report.findings}
    assert not failed(by_check)
    shown_by_reads = {"User.Read.All", "RoleManagement.Read.Directory",
                      "SecurityAlert.ReadWrite.All", "Exchange.ManageAsApp",
                      "PrivilegedEligibilitySchedule.Read.AzureADGroup",
                      "PrivilegedAssignmentSchedule.Read.AzureADGroup",
                      "Directory.Read.All", "AuditLog.Read.All"}
    for permission in PERMISSIONS:
        finding = by_check[f"permission {permission.name}"]
        if permission.name in shown_by_reads:
            assert finding.status is Status.OK, finding
        else:  # reset, revoke, inbox rules...: no harmless read exercises them
            assert finding.status is Status.UNVERIFIED, finding
            assert finding.fix == ("run doctor with the app's own identity: its token carries "
                                   "its roles")
    for role in DIRECTORY_ROLES:
        finding = by_check[f"role {role.name}"]
        assert finding.status is Status.UNVERIFIED
        assert finding.fix.startswith("run doctor with the app's own identity: its token "
                                      "carries its roles")
    assert preflight.principals == []


async def test_an_opaque_token_permission_whose_read_fails_is_unverified() -> None:
    preflight = FakePreflight(tokens={MICROSOFT_GRAPH: None, EXCHANGE_ONLINE: None},
                              failures={"users": Unreachable("Graph: read timed out")})

    finding = (await findings(preflight))["permission User.Read.All"]

    assert finding.status is Status.UNVERIFIED
    assert "'read a user' did not pass" in finding.result


async def test_roles_from_either_token_count() -> None:
    preflight = FakePreflight(tokens={
        MICROSOFT_GRAPH: app_token(MICROSOFT_GRAPH, wids=frozenset({USER_ADMINISTRATOR})),
        EXCHANGE_ONLINE: app_token(EXCHANGE_ONLINE, wids=None)})

    by_check = await findings(preflight)

    assert failed(by_check) == {"role Exchange Administrator"}


async def test_more_than_needed_is_worth_knowing_but_not_a_failure() -> None:
    preflight = FakePreflight()
    preflight.tokens[MICROSOFT_GRAPH] = app_token(
        MICROSOFT_GRAPH, roles=[*permissions_on(MICROSOFT_GRAPH), "Directory.ReadWrite.All"],
        wids=frozenset({r.template_id for r in DIRECTORY_ROLES} | {
            GLOBAL_ADMINISTRATOR, "0997a1d0-0d1d-4acb-b408-d5ca73121e90"}))

    by_check = await findings(preflight)

    assert not failed(by_check)
    assert by_check["more than needed on Microsoft Graph"].result == "Directory.ReadWrite.All"
    # Only roles a person could hold are named; other ids in wids are not roles to remove.
    assert by_check["more than needed: directory roles"].result == "Global Administrator"


async def test_no_token_is_a_failure_with_the_credential_fix() -> None:
    preflight = FakePreflight()
    preflight.tokens[MICROSOFT_GRAPH] = TokenUnavailable(
        "CredentialUnavailableError: DefaultAzureCredential failed to retrieve a token")

    by_check = await findings(preflight)

    finding = by_check["token for Microsoft Graph"]
    assert finding.status is Status.FAIL
    assert "AZURE_CLIENT_ID" in finding.fix
    # The Exchange token still names the app: the fixes use its object id.
    assert f"grant-permissions.sh {APP}" not in finding.fix


async def test_without_any_jwt_the_fix_names_a_placeholder() -> None:
    preflight = FakePreflight(tokens={MICROSOFT_GRAPH: None, EXCHANGE_ONLINE: None},
                              failures={"users": Refused(403, "Authorization_RequestDenied")})

    by_check = await findings(preflight)

    assert by_check["read a user"].fix == (
        "grant User.Read.All (Microsoft Graph): bash infra/grant-permissions.sh <principal id "
        "of the app's managed identity>")


@pytest.mark.parametrize(("capability", "error", "fix"), [
    ("users", Refused(401, "InvalidAuthenticationToken"), "Graph refused the token"),
    ("users", Refused(404, "UnknownError"), "check GRAPH_ENDPOINT (https://graph.microsoft.com)"),
    ("users", Unreachable("Graph: read timed out"), "check GRAPH_ENDPOINT"),
    ("mailbox", Refused(404, "NotFound"),
     f"check AZURE_TENANT_ID ({TENANT}) and EXCHANGE_ENDPOINT"),
    ("mailbox", Unreachable("Exchange: Get-Mailbox timed out"), "check EXCHANGE_ENDPOINT"),
    ("queues", Unreachable("OperationalError: unable to open database file"),
     "check REMEDIATION_DB (.remediation/state.db)"),
    ("journal", RuntimeError("a bug"), "check REMEDIATION_DB"),
])
async def test_each_failed_read_names_what_to_check(capability: str, error: Exception,
                                                     fix: str) -> None:
    check = next(c.check for c in CAPABILITIES if c.key == capability)

    finding = (await findings(FakePreflight(failures={capability: error})))[check]

    assert finding.status is Status.FAIL
    assert fix in finding.fix


async def test_azure_queues_and_journal_name_their_azure_roles() -> None:
    target = Target(**{**TARGET.__dict__, "service_bus_namespace": "sb.servicebus.windows.net",
                       "table_journal": True})
    preflight = FakePreflight(failures={"queues": Refused(403, "Unauthorized"),
                                        "journal": Refused(403, "AuthorizationFailure")})

    by_check = await findings(preflight, target)

    assert "Azure Service Bus Data Receiver" in by_check["queues"].fix
    assert "Storage Table Data Contributor" in by_check["journal"].fix


async def test_dry_run_says_what_to_switch_once_all_passes() -> None:
    target = Target(**{**TARGET.__dict__, "mode": "dry-run"})

    finding = (await findings(FakePreflight(), target))["mode"]

    assert finding.status is Status.INFO
    assert "REMEDIATION_MODE" in finding.fix


# -- the guardrails' reads: what every case will meet -----------------------------------------


GUARDRAIL_READS = {"role_assignments": "read role assignments",
                   "role_eligibility": "read PIM role eligibility",
                   "group_eligibility": "read PIM for Groups eligibility",
                   "group_assignments": "read PIM for Groups assignments"}
PIM_READS = ("role_eligibility", "group_eligibility", "group_assignments")
REFUSED = "refused: every case will escalate because "


async def test_every_read_the_guardrails_need_is_probed_and_says_readable() -> None:
    by_check = await findings(FakePreflight())

    for check in GUARDRAIL_READS.values():
        assert (by_check[check].status, by_check[check].result) == (Status.OK, "readable")


async def test_no_pim_data_is_what_cases_meet_and_passes() -> None:
    preflight = FakePreflight(failures={key: NoPimData() for key in PIM_READS})

    report = await examine(preflight, TARGET)

    assert report.ready
    by_check = {finding.check: finding for finding in report.findings}
    for key in PIM_READS:
        finding = by_check[GUARDRAIL_READS[key]]
        assert (finding.status, finding.result) == (Status.OK, "no PIM data in this tenant")


@pytest.mark.parametrize(("key", "permission"), [
    ("role_assignments", "RoleManagement.Read.Directory"),
    ("role_eligibility", "RoleManagement.Read.Directory"),
    ("group_eligibility", "PrivilegedEligibilitySchedule.Read.AzureADGroup"),
    ("group_assignments", "PrivilegedAssignmentSchedule.Read.AzureADGroup"),
])
async def test_a_guardrail_read_refused_for_a_permission_fails_naming_it(
        key: str, permission: str) -> None:
    preflight = FakePreflight(failures={key: Refused(403, "Authorization_RequestDenied")})

    report = await examine(preflight, TARGET)

    assert not report.ready
    finding = {f.check: f for f in report.findings}[GUARDRAIL_READS[key]]
    assert finding.status is Status.FAIL
    assert finding.result == REFUSED + "Graph answered 403"
    assert finding.fix.startswith(f"grant {permission} (Microsoft Graph): "
                                  f"bash infra/grant-permissions.sh {APP}")


@pytest.mark.parametrize("key", PIM_READS)
@pytest.mark.parametrize(("error", "because", "fix"), [
    (Refused(400, "UnauthorizedAccessException", shape="not onboarded"),
     "PIM is not onboarded", "Entra ID P2"),
    # The same words on a 403 are still not a permission to grant.
    (Refused(403, "UnauthorizedAccessException", shape="not onboarded"),
     "PIM is not onboarded", "Entra ID P2"),
    (Refused(400, "ResourceTypeNotSupported", shape="unsupported"),
     "ResourceTypeNotSupported", "check GRAPH_ENDPOINT (https://graph.microsoft.com)"),
])
async def test_a_pim_answer_that_proves_nothing_fails_with_its_own_fix(
        key: str, error: Refused, because: str, fix: str) -> None:
    finding = (await findings(FakePreflight(failures={key: error})))[GUARDRAIL_READS[key]]

    assert finding.status is Status.FAIL
    assert finding.result == REFUSED + because
    assert fix in finding.fix
    assert "grant " not in finding.fix


async def test_a_guardrail_read_without_an_answer_is_refused_too() -> None:
    preflight = FakePreflight(failures={"group_eligibility": Unreachable("Graph: timed out")})

    finding = (await findings(preflight))["read PIM for Groups eligibility"]

    assert finding.status is Status.FAIL
    assert finding.result == REFUSED + "Graph gave no answer"
    assert "check GRAPH_ENDPOINT" in finding.fix


async def test_no_pim_data_does_not_show_a_permission_an_opaque_token_hides() -> None:
    preflight = FakePreflight(tokens={MICROSOFT_GRAPH: None, EXCHANGE_ONLINE: None},
                              failures={"group_eligibility": NoPimData()})

    by_check = await findings(preflight)

    finding = by_check["permission PrivilegedEligibilitySchedule.Read.AzureADGroup"]
    assert finding.status is Status.UNVERIFIED
    assert by_check["permission PrivilegedAssignmentSchedule.Read.AzureADGroup"
                    ].status is Status.OK  # its read was readable


# -- the claims of a token ---------------------------------------------------------------------


def jwt(payload: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header or {'typ': 'JWT', 'alg': 'RS256'})}.{part(payload)}.c2lnbmF0dXJl"


def test_an_app_token_gives_its_roles_wids_tenant_and_object_id() -> None:
    claims = read_claims(jwt({"roles": ["User.Read.All", 7], "wids": [USER_ADMINISTRATOR.upper()],
                              "tid": TENANT, "oid": APP, "idtyp": "app"}))

    assert claims == TokenClaims(roles=frozenset({"User.Read.All"}),
                                 wids=frozenset({USER_ADMINISTRATOR}), delegated=False,
                                 tenant_id=TENANT, object_id=APP)


def test_claims_that_are_absent_are_not_assumed() -> None:
    claims = read_claims(jwt({"scp": "User.Read", "tid": TENANT}))

    assert claims is not None
    assert (claims.roles, claims.wids, claims.delegated) == (frozenset(), None, True)


@pytest.mark.parametrize("token", [
    "sandbox-token", "a.b", "a.b.c.d.e", "not base64!.x.y", jwt({"roles": []})[:-20] + "..",
    f"{jwt({})}.extra", "eyJhbGciOiJub25lIn0.WyJhIl0.",  # a payload that is a list
])
def test_what_is_not_a_jwt_gives_no_claims(token: str) -> None:
    assert read_claims(token) is None


# -- what the sandbox demands ----------------------------------------------------------------


def test_the_sandbox_demands_only_listed_permissions_and_every_one_somewhere() -> None:
    assert rule_permissions() == {permission.name for permission in PERMISSIONS}


@pytest.mark.parametrize(("method", "path", "permission"), [
    ("GET", "/v1.0/users", "User.Read.All"),
    ("GET", "/v1.0/users('$x@contoso.com')", "User.Read.All"),
    ("GET", "/v1.0/users/rob@contoso.com", "User.Read.All"),
    ("PATCH", "/v1.0/users/rob@contoso.com", "User-PasswordProfile.ReadWrite.All"),
    ("POST", "/v1.0/users/x/revokeSignInSessions", "User.RevokeSessions.All"),
    ("GET", "/v1.0/users/x/transitiveMemberOf", "GroupMember.Read.All"),
    ("GET", "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances",
     "RoleManagement.Read.Directory"),
    ("GET", "/v1.0/domains", "Domain.Read.All"),
    ("POST", "/v1.0/security/alerts_v2/a1/comments", "SecurityAlert.ReadWrite.All"),
    ("PATCH", "/v1.0/users/x/mailFolders/inbox/messageRules/r1", "MailboxSettings.ReadWrite"),
    ("GET", "/v1.0/users/x/mailFolders", "Mail.ReadBasic.All"),
    ("POST", "/adminapi/beta/t/InvokeCommand", "Exchange.ManageAsApp"),
])
def test_each_endpoint_needs_the_permission_its_adapter_lists(method: str, path: str,
                                                              permission: str) -> None:
    assert required_permission(method, path) == permission


# -- Service Bus: peeking the dead-letter queues ----------------------------------------------


class FakeReceiver:
    def __init__(self, error: Exception | None, messages: list[object]) -> None:
        self.error, self.messages = error, messages

    async def __aenter__(self) -> "FakeReceiver":
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def peek_messages(self, max_message_count: int) -> list[object]:
        if self.error is not None:
            raise self.error
        return self.messages[:max_message_count]


@dataclass
class FakeServiceBus:
    error: Exception | None = None
    messages: list[object] = field(default_factory=list)
    opened: list[tuple[str, Any]] = field(default_factory=list)

    def get_queue_receiver(self, queue_name: str, **kwargs: Any) -> FakeReceiver:
        self.opened.append((queue_name, kwargs.get("sub_queue")))
        return FakeReceiver(self.error, self.messages)

    async def close(self) -> None:
        return None


async def peek(bus: FakeServiceBus) -> str:
    probe = service_bus_probe("sb.servicebus.windows.net", credential=None,  # type: ignore[arg-type]
                              names=("requests", "verifications"), timeout=5, client=bus)
    return await probe()


async def test_the_queues_are_peeked_on_their_dead_letter_queues() -> None:
    from azure.servicebus import ServiceBusSubQueue

    bus = FakeServiceBus(messages=["a dead letter"])

    seen = await peek(bus)

    assert bus.opened == [("requests", ServiceBusSubQueue.DEAD_LETTER),
                          ("verifications", ServiceBusSubQueue.DEAD_LETTER)]
    assert "requests reachable, messages in its dead-letter queue" in seen


@pytest.mark.parametrize(("error", "status"), [
    ("ServiceBusAuthorizationError", 403), ("ServiceBusAuthenticationError", 401),
    ("MessagingEntityNotFoundError", 404)])
async def test_service_bus_refusals_keep_their_kind(error: str, status: int) -> None:
    from azure.servicebus import exceptions

    with pytest.raises(Refused) as refused:
        await peek(FakeServiceBus(error=getattr(exceptions, error)(message="no")))

    assert refused.value.status == status
    assert refused.value.detail == "queue requests"


async def test_an_unreachable_namespace_is_unreachable() -> None:
    from azure.servicebus.exceptions import ServiceBusConnectionError

    with pytest.raises(Unreachable):
        await peek(FakeServiceBus(error=ServiceBusConnectionError(message="down")))


# -- Service Bus: the right to send, by scheduling and cancelling --------------------------------


@dataclass
class FakeSender:
    error: Exception | None = None
    cancel_error: Exception | None = None
    scheduled: list[tuple[Any, Any]] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)

    async def __aenter__(self) -> "FakeSender":
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def schedule_messages(self, message: Any, at: Any) -> list[int]:
        if self.error is not None:
            raise self.error
        self.scheduled.append((message, at))
        return [41 + len(self.scheduled)]

    async def cancel_scheduled_messages(self, number: int) -> None:
        if self.cancel_error is not None:
            raise self.cancel_error
        self.cancelled.append(number)


@dataclass
class FakeSenders(FakeServiceBus):
    sender: FakeSender = field(default_factory=FakeSender)
    queues: list[str] = field(default_factory=list)

    def get_queue_sender(self, queue_name: str, **kwargs: Any) -> FakeSender:
        self.queues.append(queue_name)
        return self.sender


async def schedule(bus: FakeSenders) -> str:
    probe = service_bus_schedule_probe("sb.servicebus.windows.net",
                                       credential=None,  # type: ignore[arg-type]
                                       names=("requests", "verifications"), timeout=5,
                                       client=bus)
    return await probe()


async def test_sending_is_checked_by_scheduling_far_ahead_and_cancelling() -> None:
    from datetime import UTC, datetime, timedelta

    bus = FakeSenders()

    seen = await schedule(bus)

    assert bus.queues == ["requests", "verifications"]
    assert bus.sender.cancelled == [42, 43]
    for message, at in bus.sender.scheduled:
        assert at > datetime.now(UTC) + timedelta(days=300)
        assert message.session_id  # the queues are session-enabled
        assert b"user" not in b"".join(message.body)  # the worker would only reject it
    assert seen == "scheduled a message on requests and verifications, then cancelled it"


@pytest.mark.parametrize(("step", "detail"), [("error", "queue requests: schedule"),
                                              ("cancel_error",
                                               "queue requests: cancel scheduled message 42")])
async def test_no_right_to_send_is_a_refusal_naming_the_data_sender_role(
        step: str, detail: str) -> None:
    from azure.servicebus.exceptions import ServiceBusAuthorizationError

    sender = FakeSender(**{step: ServiceBusAuthorizationError(message="no")})

    with pytest.raises(Refused) as refused:
        await schedule(FakeSenders(sender=sender))

    assert (refused.value.status, refused.value.detail) == (403, detail)
    target = Target(**{**TARGET.__dict__, "service_bus_namespace": "sb.servicebus.windows.net"})
    by_check = await findings(FakePreflight(failures={"schedule": refused.value}), target)
    assert by_check["schedule a message"].status is Status.FAIL
    assert by_check["schedule a message"].fix == (
        "assign the app's identity Azure Service Bus Data Sender on sb.servicebus.windows.net "
        "(infra/main.bicep does)")
