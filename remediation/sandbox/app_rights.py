"""What the sandbox's app may do, decided the way Microsoft 365 decides it.

- Each Graph endpoint needs one application permission (the one ``remediation/permissions.py``
  lists for the code that calls it); Exchange admin REST needs ``Exchange.ManageAsApp``.
  Without it Graph answers ``403 Authorization_RequestDenied`` and Exchange ``401``.
- The tenant issues access tokens shaped like Microsoft's (a JWT whose ``roles`` claim lists
  the app's permissions and ``wids`` its directory roles), signed with the tenant's shared
  secret, so the sandbox refuses a token whose claims were edited. A token carries the rights
  the app had when it was issued, as a real one does; a right taken away later is refused
  anyway, and a right granted later needs a new token.
- Each token is issued for one resource (its ``aud``), as Entra issues them: Graph routes
  refuse a token for Exchange and the other way round (401), as the real services validate
  the audience. The managed identity endpoint (``identity_routes``) issues a token only for a
  resource the tenant knows (``KNOWN_RESOURCES``); any other name is ``AADSTS500011``.
- The static token (``SANDBOX_TOKEN``, not a JWT) stays accepted everywhere: its rights are
  the tenant's current ones. It is for unit-level tests and an operator trying the CLI by
  hand; the demo and the end-to-end tests get their tokens from the managed identity
  endpoint through azure-identity, the path that runs in Azure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from remediation.permissions import EXCHANGE_ONLINE, MICROSOFT_GRAPH, permissions_on

EXCHANGE_PERMISSION = permissions_on(EXCHANGE_ONLINE)[0]  # Exchange.ManageAsApp
TOKEN_LIFETIME = 3600

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
# The names Entra matches a requested resource against (each first-party service principal's
# app id and its URI, with or without a trailing slash) and the audience the token then
# carries. Only the commercial cloud's: the sandbox is a commercial tenant, and
# https://outlook.office365.com:443 is no name of Exchange's (AADSTS500011).
_SERVICES = {
    "graph": ("https://graph.microsoft.com", GRAPH_APP_ID),
    "exchange": ("https://outlook.office365.com", EXCHANGE_APP_ID),
    "storage": ("https://storage.azure.com", "e406a681-f3d4-42a8-90b6-c2b029497af1"),
    "servicebus": ("https://servicebus.azure.net", "80a10ef9-8168-493d-abf9-3297c4ef6e3c"),
}
KNOWN_RESOURCES: dict[str, str] = {
    name: uri for uri, app_id in _SERVICES.values()
    for name in (uri, f"{uri}/", app_id)}
GRAPH_AUDIENCES = frozenset({_SERVICES["graph"][0], f"{_SERVICES['graph'][0]}/", GRAPH_APP_ID})
EXCHANGE_AUDIENCES = frozenset({_SERVICES["exchange"][0], f"{_SERVICES['exchange'][0]}/",
                                EXCHANGE_APP_ID})


def audience_for(resource: str) -> str | None:
    """The ``aud`` of a token for ``resource`` (as requested, without ``/.default``), or None
    for a resource Entra does not know. A v1.0 token carries the name it was asked by."""
    return resource if resource in KNOWN_RESOURCES else None


def resource_of(audience: str) -> str | None:
    """The resource application (``remediation/permissions.py`` name) a token's audience is,
    None for one whose app roles the sandbox does not model: Entra puts in ``roles`` only the
    app roles granted on the token's own resource."""
    if audience in GRAPH_AUDIENCES:
        return MICROSOFT_GRAPH
    if audience in EXCHANGE_AUDIENCES:
        return EXCHANGE_ONLINE
    return None


def accepts_audience(path: str, audience: str | None) -> bool:
    """Graph routes take Graph's audience, Exchange admin REST Exchange's."""
    if path.startswith("/adminapi/"):
        return audience in EXCHANGE_AUDIENCES
    return audience in GRAPH_AUDIENCES

# (method or None for any, path pattern, permission): the first match decides.
_GRAPH_RULES: tuple[tuple[str | None, re.Pattern[str], str], ...] = (
    (None, re.compile(r"^/v1\.0/security/alerts_v2(/|$)"), "SecurityAlert.ReadWrite.All"),
    (None, re.compile(r"^/v1\.0/roleManagement/directory/"), "RoleManagement.Read.Directory"),
    (None, re.compile(r"^/v1\.0/identityGovernance/privilegedAccess/group/eligibilitySchedule"),
     "PrivilegedEligibilitySchedule.Read.AzureADGroup"),
    (None, re.compile(r"^/v1\.0/identityGovernance/privilegedAccess/group/assignmentSchedule"),
     "PrivilegedAssignmentSchedule.Read.AzureADGroup"),
    (None, re.compile(r"^/v1\.0/domains(/|$)"), "Domain.Read.All"),
    # App consents (adapters/graph_consents.py): revoking needs the write permission, the
    # reads Directory.Read.All; the audit log also checks Directory.Read.All in its route.
    ("DELETE", re.compile(r"^/v1\.0/oauth2PermissionGrants/"),
     "DelegatedPermissionGrant.ReadWrite.All"),
    # Giving a revoked consent back (remediation undo): "Create oAuth2PermissionGrant".
    ("POST", re.compile(r"^/v1\.0/oauth2PermissionGrants$"),
     "DelegatedPermissionGrant.ReadWrite.All"),
    (None, re.compile(r"^/v1\.0/(oauth2PermissionGrants|servicePrincipals)(/|\(|$)"),
     "Directory.Read.All"),
    # Administrative units and their members (sandbox/admin_units.py): AdministrativeUnit.
    # Read.All or Directory.Read.All; the app holds the second.
    ("GET", re.compile(r"^/v1\.0/directory/administrativeUnits(/|$)"), "Directory.Read.All"),
    (None, re.compile(r"^/v1\.0/auditLogs/directoryAudits(/|$)"), "AuditLog.Read.All"),
    (None, re.compile(r"^/v1\.0/users/[^/]+/authentication(/|$)"),
     "UserAuthenticationMethod.ReadWrite.All"),
    ("POST", re.compile(r"^/v1\.0/users/[^/]+/revokeSignInSessions$"),
     "User.RevokeSessions.All"),
    (None, re.compile(r"^/v1\.0/users/[^/]+/transitiveMemberOf(/|$)"), "GroupMember.Read.All"),
    (None, re.compile(r"^/v1\.0/groups/[^/]+/(owners|transitiveMembers)(/|$)"),
     "GroupMember.Read.All"),
    (None, re.compile(r"^/v1\.0/users/[^/]+/mailFolders/[^/]+/messageRules(/|$)"),
     "MailboxSettings.ReadWrite"),
    (None, re.compile(r"^/v1\.0/users/[^/]+/mailFolders(/|$)"), "Mail.ReadBasic.All"),
    ("PATCH", re.compile(r"^/v1\.0/users/[^/]+$"), "User-PasswordProfile.ReadWrite.All"),
    ("GET", re.compile(r"^/v1\.0/users(/|\(|$)"), "User.Read.All"),
)


# Permissions a route checks itself, from the request's body: PATCH /users/{id} with only
# accountEnabled needs User.EnableDisableAccount.All (Graph "Update user").
ENABLE_DISABLE_ACCOUNT = "User.EnableDisableAccount.All"
# The directory audit log needs it with AuditLog.Read.All ("List directoryAudits").
DIRECTORY_READ = "Directory.Read.All"


@dataclass(frozen=True)
class Bearer:
    """The token a request presented: ``roles`` and ``audience`` from its claims, None for the
    static token."""

    roles: frozenset[str] | None
    audience: str | None = None


BEARER = web.RequestKey("bearer", Bearer)


def required_permission(method: str, path: str) -> str | None:
    """The application permission a request needs (None: the sandbox checks nothing)."""
    if path.startswith("/adminapi/"):
        return EXCHANGE_PERMISSION
    for rule_method, pattern, permission in _GRAPH_RULES:
        if (rule_method is None or rule_method == method) and pattern.search(path):
            return permission
    return None


def rule_permissions() -> frozenset[str]:
    """Every permission the rules name (tests compare them with remediation/permissions.py)."""
    return frozenset(permission for _, _, permission in _GRAPH_RULES) | {
        EXCHANGE_PERMISSION, ENABLE_DISABLE_ACCOUNT, DIRECTORY_READ}


def issue(secret: str, claims: dict[str, Any]) -> str:
    """A JWT with ``claims``, HMAC-signed with ``secret`` (HS256)."""
    signing_input = f"{_part({'typ': 'JWT', 'alg': 'HS256'})}.{_part(claims)}"
    return f"{signing_input}.{_b64(_sign(secret, signing_input))}"


def verify(secret: str, token: str, tenant_id: str) -> Bearer | None:
    """The rights of a token this tenant issued and that is still valid, else None."""
    signing_input, _, signature = token.rpartition(".")
    if not signing_input or not hmac.compare_digest(
            _b64(_sign(secret, signing_input)).encode(), signature.encode()):
        return None
    # Signed with the tenant's secret: the payload is one the tenant wrote.
    payload = json.loads(base64.urlsafe_b64decode(_padded(signing_input.partition(".")[2])))
    if payload.get("tid") != tenant_id or payload.get("exp", 0) < time.time():
        return None
    return Bearer(roles=frozenset(payload.get("roles") or ()), audience=payload.get("aud"))


def app_claims(*, tenant_id: str, object_id: str, roles: list[str], wids: list[str],
               audience: str = "https://graph.microsoft.com") -> dict[str, Any]:
    """The claims of an app-only v1.0 access token (client credentials) for ``audience``."""
    now = int(time.time())
    return {"aud": audience, "iss": f"https://sts.windows.net/{tenant_id}/",
            "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME, "appid": object_id,
            "idtyp": "app", "oid": object_id, "sub": object_id, "tid": tenant_id,
            "roles": roles, "wids": wids, "ver": "1.0",
            # Each token its own id, as Entra's ``uti``: two issued in one second differ.
            "uti": uuid.uuid4().hex}


def _sign(secret: str, signing_input: str) -> bytes:
    return hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()


def _part(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _padded(part: str) -> str:
    return part + "=" * (-len(part) % 4)
