"""The preflight behind ``remediation doctor``: is everything the worker needs in place?

It asks a ``Preflight`` port for the claims of the app's tokens and for one harmless read per
capability, and turns each answer into a finding: the check, its result and the exact fix.
What the app needs comes from ``remediation/permissions.py``, the one list; the settings were
checked before this runs (a bad one never gets this far).

Tokens: a JWT's ``roles`` claim lists the application permissions granted on its resource,
``wids`` the app's tenant-wide directory roles (remediation/domain/tokens.py). A JWT need not
carry ``wids``: then the app's role assignments are read (``principalId eq`` its ``oid``,
with RoleManagement.Read.Directory, which the app needs anyway). A token that is not a JWT
says nothing: a permission a harmless read uses is judged by that read, and every other one,
and the directory roles, are ``UNVERIFIED``, which fails like ``FAIL``: what is needed and
not seen is never taken as in place.

The reads the guardrails need (role assignments, PIM role eligibility, PIM for Groups
eligibility and assignments) say what every case will meet, in one of three words:
``readable``; ``no PIM data in this tenant`` (the tenant has no Entra ID P2: cases proceed
knowing no eligibility, ``ok``); or ``refused: every case will escalate because ...``
(``FAIL``, with the permission to grant or the licence to check). Which of Graph's answers
mean "no PIM data" is decided in remediation/adapters/graph_roles.py.
"""

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from remediation.domain.roles import BUILT_IN_ROLES, role_name
from remediation.domain.tokens import TokenClaims
from remediation.permissions import (
    DIRECTORY_ROLES,
    EXCHANGE_ONLINE,
    MICROSOFT_GRAPH,
    PERMISSIONS,
    permissions_on,
)

GRANT_SCRIPT = "bash infra/grant-permissions.sh"
UNKNOWN_PRINCIPAL = "<principal id of the app's managed identity>"
CREDENTIAL_FIX = (
    "in Azure, set AZURE_CLIENT_ID to the client id of the app's user-assigned managed "
    "identity; elsewhere, set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET (or "
    "AZURE_CLIENT_CERTIFICATE_PATH) of an app registration holding the same permissions")
ROLES_BY_HAND = ("check in the Entra admin center (Roles and administrators) that the app "
                 "holds: " + ", ".join(role.name for role in DIRECTORY_ROLES))
APP_IDENTITY = "run doctor with the app's own identity: its token carries its roles"
LEAST_PRIVILEGE = ("least privilege: remove what is not needed (Entra admin center, "
                   "Enterprise applications, the app, Permissions / Roles)")


class Status(Enum):
    OK = "ok"
    FAIL = "FAIL"
    UNVERIFIED = "UNVERIFIED"  # needed, and could not be seen: stops the switch-over too
    INFO = "info"  # worth knowing; never stops the switch-over
    WARN = "WARN"  # a setting worth a decision before the switch-over; never stops it


BLOCKING = (Status.FAIL, Status.UNVERIFIED)


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    result: str
    fix: str = ""


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]

    @property
    def ready(self) -> bool:
        """Everything needed is in place: no check failed, none is unverified."""
        return all(finding.status not in BLOCKING for finding in self.findings)

    def count(self, status: Status) -> int:
        return sum(1 for finding in self.findings if finding.status is status)


class TokenUnavailable(Exception):
    """The credential gave no token; ``reason`` says why (never the token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Refused(Exception):
    """A read the service answered with an error status (401, 403, 404, ...). ``shape``: for
    a PIM read, the answer of a tenant without PIM it is (``NOT_ONBOARDED``, ``UNSUPPORTED``),
    whatever its status."""

    def __init__(self, status: int, code: str = "", detail: str = "", *,
                 missing_rights: bool = False, cmdlet: str = "", shape: str = "") -> None:
        super().__init__(f"{status} {code}".strip())
        self.status, self.code, self.detail, self.shape = status, code, detail, shape
        # The service said, in its own words, that the app lacks a right (on any status).
        self.missing_rights = missing_rights
        self.cmdlet = cmdlet  # the Exchange cmdlet refused, when there was one


NOT_ONBOARDED, UNSUPPORTED = "not onboarded", "unsupported"


class NoPimData(Exception):
    """A PIM read answered that the tenant has no PIM (no Entra ID P2): no eligibility."""


class NoMember(Exception):
    """The administrative unit has no user member whose mailbox could be read."""


class Unreachable(Exception):
    """A read that got no answer: connection refused, timeout, DNS, throttled for too long."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Preflight(Protocol):
    async def claims(self, resource: str) -> TokenClaims | None:
        """The claims of the app's token for ``resource`` (None: not a JWT); raises
        TokenUnavailable."""

    async def read(self, capability: str) -> str:
        """One harmless read of ``capability`` (a key of CAPABILITIES); what it saw, in a few
        words. Raises Refused or Unreachable, and NoPimData for a PIM read."""

    async def role_assignments(self, principal_id: str) -> frozenset[str]:
        """The role definition ids assigned to ``principal_id`` tenant-wide (a built-in
        role's is its template id). Raises Refused or Unreachable."""

    async def role_assignments_at(self, principal_id: str) -> frozenset[tuple[str, str]]:
        """(role definition id, directoryScopeId) of every role assigned to ``principal_id``,
        at any scope. Raises Refused or Unreachable."""

    async def administrative_unit(self, unit_id: str) -> str:
        """The administrative unit's display name. Raises Refused (404: no such unit) or
        Unreachable."""

    async def unit_mailbox(self, unit_id: str) -> str:
        """Read one user member's inbox rules and mail folders; what was seen, in a few
        words. Raises NoMember, Refused or Unreachable."""


@dataclass(frozen=True)
class Target:
    """Where the deployment's settings point, for the fixes that name a setting."""

    tenant_id: str
    graph_endpoint: str
    exchange_endpoint: str
    mode: str
    service_bus_namespace: str | None
    remediation_db: str
    table_journal: bool
    # The least privilege chosen (README, Permissions): doctor_scope.py checks it.
    administrative_unit_id: str | None = None
    mailbox_access: str = "tenant-wide"


@dataclass(frozen=True)
class Capability:
    key: str
    check: str
    service: str  # "Graph", "Exchange", "queues" or "journal"
    # The application permissions it needs (remediation/permissions.py): when it passes,
    # they are granted, whatever the token shows.
    needs: tuple[str, ...] = ()
    # A read the guardrails make for every case: its result says what each case will meet.
    guardrail: bool = False


GRAPH, EXCHANGE, QUEUES, JOURNAL = "Graph", "Exchange", "queues", "journal"
CAPABILITIES: tuple[Capability, ...] = (
    Capability("alerts", "read Defender alerts", GRAPH, ("SecurityAlert.ReadWrite.All",)),
    Capability("users", "read a user", GRAPH, ("User.Read.All",)),
    Capability("role_assignments", "read role assignments", GRAPH,
               ("RoleManagement.Read.Directory",), guardrail=True),
    Capability("role_eligibility", "read PIM role eligibility", GRAPH,
               ("RoleManagement.Read.Directory",), guardrail=True),
    Capability("group_eligibility", "read PIM for Groups eligibility", GRAPH,
               ("PrivilegedEligibilitySchedule.Read.AzureADGroup",), guardrail=True),
    Capability("group_assignments", "read PIM for Groups assignments", GRAPH,
               ("PrivilegedAssignmentSchedule.Read.AzureADGroup",), guardrail=True),
    # App consents: every case's plan reads the grants and the audit log (a refusal escalates
    # the case before any change).
    Capability("consent_grants", "read consent grants", GRAPH, ("Directory.Read.All",),
               guardrail=True),
    Capability("audit_log", "read the directory audit log", GRAPH,
               ("AuditLog.Read.All", "Directory.Read.All"), guardrail=True),
    Capability("restricted_users", "read the Restricted users list", EXCHANGE,
               ("Exchange.ManageAsApp",)),
    Capability("mailbox", "read a mailbox", EXCHANGE, ("Exchange.ManageAsApp",)),
    Capability("queues", "queues", QUEUES),
    # Retries and verification checks are scheduled messages (Service Bus Data Sender): one
    # is scheduled far ahead and cancelled at once.
    Capability("schedule", "schedule a message", QUEUES),
    Capability("journal", "journal", JOURNAL),
)
RESOURCES = (MICROSOFT_GRAPH, EXCHANGE_ONLINE)
READABLE = "readable"
NO_PIM_DATA = "no PIM data in this tenant"
REFUSED = "refused: every case will escalate because "


async def examine(preflight: Preflight, target: Target) -> Report:
    """Every check, in the order an operator fixes things: settings, identity, reads."""
    findings = [Finding("configuration", Status.OK, "every setting is valid "
                        f"(tenant {target.tenant_id}, REMEDIATION_MODE={target.mode})")]
    claims: dict[str, TokenClaims | None] = {}
    for resource in RESOURCES:
        try:
            claims[resource] = await preflight.claims(resource)
        except TokenUnavailable as error:
            findings.append(Finding(f"token for {resource}", Status.FAIL,
                                    f"no token: {error.reason}", CREDENTIAL_FIX))
    from remediation.service import doctor_scope as scope

    grant = _grant(claims.values())
    reads = await asyncio.gather(*(_read(preflight, capability, target, grant)
                                   for capability in CAPABILITIES))
    by_capability = dict(zip(CAPABILITIES, reads, strict=True))
    replaced = scope.replaced_permissions(target.mailbox_access)
    for resource, token in claims.items():
        findings.extend(_token_findings(resource, token, target, grant, replaced))
        if token is None:
            findings.extend(_permissions_seen_by_reads(resource, by_capability, replaced))
    if target.administrative_unit_id:
        findings.extend(await scope.scoped_role_findings(
            preflight, _principal(claims.values()), target.administrative_unit_id, grant))
    else:
        findings.extend(await _role_findings(preflight, claims.values(), grant))
    findings.extend(reads)
    scoped_reads = await scope.scope_reads(preflight, target.administrative_unit_id,
                                           target.mailbox_access, grant)
    findings.extend(scoped_reads)
    if replaced:
        graph = claims.get(MICROSOFT_GRAPH)
        mailbox = next((f for f in scoped_reads if f.check == scope.MAILBOX_CHECK), None)
        findings.extend(scope.mailbox_permission_findings(
            sorted(replaced), mailbox, graph.roles if graph is not None else None))
    if target.mode == "dry-run":
        findings.append(Finding(
            "mode", Status.INFO, "dry-run: reads and plans, changes nothing in the tenant",
            "once every check passes, set REMEDIATION_MODE to approve or enforce"))
    return Report(tuple(findings))


def _grant(tokens: Iterable[TokenClaims | None]) -> str:
    return f"{GRANT_SCRIPT} {_principal(tokens) or UNKNOWN_PRINCIPAL}"


def _principal(tokens: Iterable[TokenClaims | None]) -> str | None:
    """The app's service principal, as an app token names it (``oid``)."""
    return next((t.object_id for t in tokens if t is not None and not t.delegated
                 and t.object_id), None)


def _token_findings(resource: str, token: TokenClaims | None, target: Target,
                    grant: str, replaced: frozenset[str] = frozenset()) -> list[Finding]:
    """``replaced``: permissions the chosen option grants elsewhere (doctor_scope.py judges
    them)."""
    check = f"token for {resource}"
    if token is None:
        return [Finding(check, Status.INFO, "not a JWT: its permissions and roles cannot be "
                        "read from it; a permission a read below uses is judged by that "
                        "read, any other is unverified")]
    if token.delegated:
        return [Finding(check, Status.FAIL, "a user's token (delegated scopes), not the "
                        "app's: it does not show the app's permissions",
                        f"run doctor with the app's own identity: {CREDENTIAL_FIX}")]
    findings = []
    if token.tenant_id and token.tenant_id != target.tenant_id:
        findings.append(Finding(
            check, Status.FAIL, f"issued by tenant {token.tenant_id}, not AZURE_TENANT_ID "
            f"({target.tenant_id})", f"set AZURE_TENANT_ID to {token.tenant_id}, or use the "
            f"identity of tenant {target.tenant_id}"))
    else:
        holder = f" of service principal {token.object_id}" if token.object_id else ""
        findings.append(Finding(check, Status.OK, f"an app token{holder}"))
    needed = [name for name in permissions_on(resource) if name not in replaced]
    for name in needed:
        if name in token.roles:
            findings.append(Finding(f"permission {name}", Status.OK, "in the token's roles"))
        else:
            findings.append(Finding(f"permission {name}", Status.FAIL,
                                    "not in the token's roles", f"grant {name} ({resource}): "
                                    f"{grant}"))
    # Each resource issues its own token; one that lists every resource's permissions (the
    # sandbox's) is not asking for more than the app needs.
    extra = sorted(token.roles - {permission.name for permission in PERMISSIONS})
    if extra:
        findings.append(Finding(f"more than needed on {resource}", Status.INFO,
                                ", ".join(extra), LEAST_PRIVILEGE))
    return findings


def _permissions_seen_by_reads(resource: str, reads: Mapping[Capability, Finding],
                               replaced: frozenset[str] = frozenset()) -> list[Finding]:
    """The permissions on ``resource`` when its token is not a JWT: those a passing read
    uses are granted; the others (the writes above all: reset, revoke, inbox rules) cannot be
    seen without doing what they allow."""
    findings = []
    for name in (n for n in permissions_on(resource) if n not in replaced):
        check = f"permission {name}"
        users = [reads[capability] for capability in CAPABILITIES if name in capability.needs]
        failed = [read for read in users if read.status is not Status.OK]
        # Graph may say there is no PIM before it looks at the permission.
        no_data = [read for read in users if read.result == NO_PIM_DATA]
        if not users:
            findings.append(Finding(check, Status.UNVERIFIED, "not seen: the token is not a "
                                    "JWT, and no harmless read uses this permission",
                                    APP_IDENTITY))
        elif no_data and not failed:
            findings.append(Finding(check, Status.UNVERIFIED, f"not seen: the read "
                                    f"'{no_data[0].check}' found no PIM data", APP_IDENTITY))
        elif failed:
            findings.append(Finding(check, Status.UNVERIFIED, f"not seen: the read "
                                    f"'{failed[0].check}' did not pass",
                                    f"apply that read's fix; or {APP_IDENTITY}"))
        else:
            findings.append(Finding(check, Status.OK, "the read '" + "', '".join(
                read.check for read in users) + "' passed"))
    return findings


async def _role_findings(preflight: Preflight, tokens: Iterable[TokenClaims | None],
                         grant: str) -> list[Finding]:
    """The directory roles: from the tokens' ``wids``, else from the app's role assignments
    (by the ``oid`` of its token), else unverified."""
    apps = [token for token in tokens if token is not None and not token.delegated]
    listed = [token.wids for token in apps if token.wids is not None]
    principal = next((token.object_id for token in apps if token.object_id), None)
    if listed:
        held: frozenset[str] = frozenset().union(*listed)
        seen, unseen = "in the token's wids", "not in the token's wids"
    elif principal is None:
        why = ("the token is not a JWT" if not apps else
               "the token lists no wids and names no service principal (oid)")
        return [Finding(f"role {role.name}", Status.UNVERIFIED, f"not seen: {why}",
                        f"{APP_IDENTITY}; or {ROLES_BY_HAND}") for role in DIRECTORY_ROLES]
    else:
        try:
            held = frozenset(role_id.lower() for role_id in
                             await preflight.role_assignments(principal))
        except (Refused, Unreachable) as error:
            answer = (f"{error.status} {error.code}".strip() if isinstance(error, Refused)
                      else error.reason)
            return [Finding(
                f"role {role.name}", Status.UNVERIFIED, "not seen: the token lists no wids, "
                f"and the app's role assignments could not be read ({answer})",
                f"grant RoleManagement.Read.Directory ({MICROSOFT_GRAPH}): {grant}; or "
                f"{ROLES_BY_HAND}") for role in DIRECTORY_ROLES]
        seen = "assigned to the app's service principal (roleAssignments)"
        unseen = ("not assigned to the app's service principal tenant-wide (roleAssignments; "
                  "the token lists no wids)")
    findings = []
    for role in DIRECTORY_ROLES:
        if role.template_id in held:
            findings.append(Finding(f"role {role.name}", Status.OK, seen))
        else:
            findings.append(Finding(
                f"role {role.name}", Status.FAIL, unseen,
                f"assign the {role.name} role ({role.template_id}) to the app's service "
                f"principal: {grant}"))
    # Only built-in roles by name: app tokens also carry ids that are no role a person holds.
    extra = sorted(role_name(wid) for wid in held - {r.template_id for r in DIRECTORY_ROLES}
                   if wid in BUILT_IN_ROLES)
    if extra:
        findings.append(Finding("more than needed: directory roles", Status.INFO,
                                ", ".join(extra), LEAST_PRIVILEGE))
    return findings


async def _read(preflight: Preflight, capability: Capability, target: Target,
                grant: str) -> Finding:
    guardrail = capability.guardrail
    try:
        seen = await preflight.read(capability.key)
    except NoPimData:
        return Finding(capability.check, Status.OK, NO_PIM_DATA)
    except Refused as error:
        result, fix = _refusal(capability, error, target, grant)
        return Finding(capability.check, Status.FAIL,
                       REFUSED + _because(error) if guardrail else result, fix)
    except Unreachable as error:
        return Finding(capability.check, Status.FAIL,
                       REFUSED + f"{capability.service} gave no answer" if guardrail
                       else f"no answer: {error.reason}", _unreachable_fix(capability, target))
    except Exception as error:  # a read must never end the table with a traceback
        return Finding(capability.check, Status.FAIL,
                       REFUSED + "the read failed" if guardrail
                       else f"failed: {type(error).__name__}: {error}",
                       _unreachable_fix(capability, target))
    return Finding(capability.check, Status.OK, READABLE if guardrail else seen)


def _because(error: Refused) -> str:
    """Why a guardrail read was refused, in a few words: the fix says the rest."""
    if error.shape == NOT_ONBOARDED:
        return "PIM is not onboarded"
    if error.shape == UNSUPPORTED:
        return "ResourceTypeNotSupported"
    if error.status in (401, 403):
        return f"Graph answered {error.status}"
    return f"Graph answered {error.status} {error.code}".strip() if error.status else (
        "the read failed")


def _refusal(capability: Capability, error: Refused, target: Target,
             grant: str) -> tuple[str, str]:
    answer = f"{error.status} {error.code}".strip()
    result = f"{capability.service} answered {answer}" + (
        f": {error.detail}" if error.detail else "")
    if capability.service == GRAPH:
        if error.shape == NOT_ONBOARDED:
            return result, ("open Privileged Identity Management once in the Entra admin "
                            "center and check the tenant's Entra ID P2 or ID Governance "
                            "licence; if Graph still says so, ask Microsoft support")
        if error.shape == UNSUPPORTED:
            return result, (f"check GRAPH_ENDPOINT ({target.graph_endpoint}): Graph did not "
                            "take this PIM read; if it is Microsoft's, ask Microsoft support")
        if error.status == 403:
            return result, f"grant {' and '.join(capability.needs)} ({MICROSOFT_GRAPH}): {grant}"
        if error.status == 401:
            return result, (f"Graph refused the token: check AZURE_TENANT_ID "
                            f"({target.tenant_id}) and the identity: {CREDENTIAL_FIX}")
        return result, f"check GRAPH_ENDPOINT ({target.graph_endpoint})"
    if capability.service == EXCHANGE:
        if error.status == 401:
            return result, ("Exchange answered 401: grant `Exchange.ManageAsApp` and assign the "
                            f"Exchange Administrator role: {grant}")
        if error.status == 403 or error.missing_rights:
            return result, (f"Exchange answered {error.status}: assign the Exchange "
                            f"Administrator role to the app's service principal: {grant}")
        if error.status == 404 and not error.cmdlet:
            return result, (f"check AZURE_TENANT_ID ({target.tenant_id}) and "
                            f"EXCHANGE_ENDPOINT ({target.exchange_endpoint})")
        return result, _cmdlet_fix(error)
    if capability.service == QUEUES and target.service_bus_namespace:
        if error.status in (401, 403):
            role = "Data Sender" if capability.key == "schedule" else "Data Receiver"
            return result, (f"assign the app's identity Azure Service Bus {role} on "
                            f"{target.service_bus_namespace} (infra/main.bicep does)")
        return result, ("create the queues on the namespace (infra/main.bicep does), or check "
                        "REMEDIATION_QUEUE and VERIFICATION_QUEUE")
    if capability.service == JOURNAL and target.table_journal:
        if error.status in (401, 403):
            return result, ("assign the app's identity Storage Table Data Contributor on the "
                            "journal's storage account (infra/main.bicep does)")
        return result, "check JOURNAL_TABLE_ENDPOINT (or AzureWebJobsStorage__accountName)"
    return result, _unreachable_fix(capability, target)


def _cmdlet_fix(error: Refused) -> str:
    """Exchange ran the request and refused the cmdlet itself: its own words say why."""
    cmdlet = error.cmdlet or "the cmdlet"
    if "parameterbinding" in error.detail.lower() or "matches parameter name" in error.detail:
        return (f"Exchange refused a parameter of {cmdlet} (this build sends one the cmdlet "
                "does not have): a bug, report it with this line")
    return f"Exchange refused {cmdlet}; the cause is in its answer"


def _unreachable_fix(capability: Capability, target: Target) -> str:
    if capability.service == GRAPH:
        return (f"check GRAPH_ENDPOINT ({target.graph_endpoint}) and that this machine reaches "
                "it (outbound HTTPS)")
    if capability.service == EXCHANGE:
        return (f"check EXCHANGE_ENDPOINT ({target.exchange_endpoint}) and that this machine "
                "reaches it (outbound HTTPS)")
    if capability.service == QUEUES and target.service_bus_namespace:
        return (f"check ServiceBusConnection__fullyQualifiedNamespace "
                f"({target.service_bus_namespace}) and that this machine reaches it (AMQP, "
                "port 5671)")
    if capability.service == JOURNAL and target.table_journal:
        return ("check JOURNAL_TABLE_ENDPOINT (or AzureWebJobsStorage__accountName) and that "
                "this machine reaches it")
    return (f"check REMEDIATION_DB ({target.remediation_db}): the file and its directory must "
            "be readable and writable by this user")


def _check_needs() -> None:
    """Every permission a capability names is one remediation/permissions.py lists."""
    known = {permission.name for permission in PERMISSIONS}
    for capability in CAPABILITIES:
        missing = set(capability.needs) - known
        if missing:
            raise ValueError(f"{capability.key} needs unknown permissions: {sorted(missing)}")


_check_needs()
