"""The sandbox tenant's delegated permission grants and service principals.

As Graph v1.0 has them (microsoft-graph-docs-contrib ``api-reference/v1.0/resources/
oauth2permissiongrant.md`` and ``servicePrincipal``):

- a grant is ``{id, clientId, consentType, principalId, resourceId, scope}``; ``scope`` is
  space-separated and, as users' consents write it, may start with a space
  (user-list-oauth2permissiongrants.md's example: ``" Contacts.ReadWrite openid profile"``);
- its ``id`` is the base64url of the client's, the resource's and (``Principal`` grants) the
  user's object ids, each GUID in its little-endian byte order: the documented examples
  decode so, and a consent given again after a revocation brings the same id back;
  consenting to more scopes changes the grant in place;
- ``$filter`` with ``eq`` on ``clientId``, ``consentType``, ``principalId`` and
  ``resourceId``, joined by ``and`` (the resource page; ``principalId`` only in its current
  version). ``principal_filter_refused`` plays a Graph that refuses the ``principalId``
  filter (``400 Request_UnsupportedQuery``, the directory's words for a filter it does not
  take);
- a service principal's ``verifiedPublisher`` has null fields when the publisher is not
  verified;
- ``create`` is "Create oAuth2PermissionGrant" (``oauth2permissiongrant-post.md``): clientId,
  consentType (``Principal`` or ``AllPrincipals``), resourceId required, principalId required
  for ``Principal`` and null for ``AllPrincipals``, scope at most 3850 characters; ``201`` with
  the grant. One that exists for the same client, resource and principal is ``409
  Request_MultipleObjectsWithSameKeyValue`` "Permission entry already exists."
  (hashicorp/terraform-provider-azuread#690). The texts of the 400s are the sandbox's own
  (Graph's are not documented), their status and code Graph's.
"""

from __future__ import annotations

import base64
import copy
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from remediation.sandbox.audit_log import AuditLog, consent_record
from remediation.sandbox.clock import graph_timestamp

GRAPH_RESOURCE_APP_ID = "00000003-0000-0000-c000-000000000000"
EXCHANGE_RESOURCE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
PRINCIPAL, ALL_PRINCIPALS = "Principal", "AllPrincipals"
_FILTER_FIELDS = {"clientid": "clientId", "consenttype": "consentType",
                  "principalid": "principalId", "resourceid": "resourceId"}
_EQ = re.compile(r"^(\w+)\s+eq\s+'((?:[^']|'')*)'$", re.IGNORECASE)
_GRANT_PROPERTIES = ("id", "clientId", "consentType", "principalId", "resourceId", "scope")
SCOPE_LIMIT = 3850  # "Must not exceed 3850 characters in length" (Create oAuth2PermissionGrant)
_SP_PROPERTIES = ("id", "displayName", "appId", "publisherName", "verifiedPublisher",
                  "appOwnerOrganizationId", "servicePrincipalType", "accountEnabled")


@dataclass
class ServicePrincipal:
    """An app (or API) in the tenant. ``verified_publisher``: the verified publisher's
    name, None when unverified."""

    display_name: str
    app_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    publisher_name: str | None = None
    verified_publisher: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    verified_at: datetime | None = None

    def json(self) -> dict[str, Any]:
        verified = self.verified_publisher
        return {
            "id": self.id, "displayName": self.display_name, "appId": self.app_id,
            "publisherName": self.publisher_name, "appOwnerOrganizationId": None,
            "servicePrincipalType": "Application", "accountEnabled": True,
            "verifiedPublisher": {
                "displayName": verified,
                "verifiedPublisherId": (str(uuid.uuid5(uuid.NAMESPACE_DNS, verified))[:7]
                                        if verified else None),
                "addedDateTime": (graph_timestamp(self.verified_at)
                                  if verified and self.verified_at else None)}}


def grant_id(client_id: str, resource_id: str, principal_id: str | None = None) -> str:
    """Graph's grant id: base64url (no padding) of the GUIDs' little-endian bytes."""
    raw = b"".join(uuid.UUID(value).bytes_le
                   for value in (client_id, resource_id, principal_id) if value)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class GrantRefused(Exception):
    """A request Graph answers with an error: ``status``, ``code``, ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ConsentStore:
    """Service principals and grants. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._apps: dict[str, ServicePrincipal] = {}
        self._grants: dict[str, dict[str, Any]] = {}
        self.revoked: list[dict[str, Any]] = []
        # A Graph that answers the principalId filter with 400 (older metadata).
        self.principal_filter_refused = False
        self.graph = self.add_app(ServicePrincipal(
            "Microsoft Graph", GRAPH_RESOURCE_APP_ID, "Microsoft Services"))
        self.exchange = self.add_app(ServicePrincipal(
            "Office 365 Exchange Online", EXCHANGE_RESOURCE_APP_ID, "Microsoft Services"))

    def add_app(self, app: ServicePrincipal) -> ServicePrincipal:
        with self._lock:
            self._apps[app.id] = app
        return app

    def app(self, sp_id: str) -> ServicePrincipal:
        with self._lock:
            found = self._apps.get(sp_id)
        if found is None:
            raise GrantRefused(404, "Request_ResourceNotFound",
                               f"Resource '{sp_id}' does not exist or one of its queried "
                               "reference-property objects are not present.")
        return found

    def grant(self, client: ServicePrincipal, scope: str, *, principal_id: str | None = None,
              resource: ServicePrincipal | None = None) -> dict[str, Any]:
        """Create the grant, or add ``scope`` to the existing one (same client, resource
        and principal); ``principal_id`` None is an admin consent for everyone."""
        resource = resource or self.graph
        key = grant_id(client.id, resource.id, principal_id)
        with self._lock:
            existing = self._grants.get(key)
            if existing is not None:
                known = existing["scope"].split()
                added = [s for s in scope.split() if s not in known]
                existing["scope"] = " ".join([existing["scope"].rstrip(), *added])
                return copy.deepcopy(existing)
            created = {"clientId": client.id,
                       "consentType": PRINCIPAL if principal_id else ALL_PRINCIPALS,
                       "id": key, "principalId": principal_id, "resourceId": resource.id,
                       "scope": scope}
            self._grants[key] = created
            return copy.deepcopy(created)

    def create(self, body: dict[str, Any], user_exists: Callable[[str], bool]) -> dict[str, Any]:
        """POST /oauth2PermissionGrants: the grant created, or GrantRefused (400 for what Graph
        requires, 409 for a grant that exists). ``user_exists`` says whether a principalId
        names a user of the tenant."""
        unknown = [name for name in body if name not in _GRANT_PROPERTIES
                   and not str(name).startswith("@odata.")]
        if unknown:
            raise GrantRefused(400, "BadRequest", f"Property '{unknown[0]}' does not exist on "
                               "type 'microsoft.graph.oAuth2PermissionGrant'.")
        client, resource = body.get("clientId"), body.get("resourceId")
        consent, principal = body.get("consentType"), body.get("principalId")
        scope = body.get("scope") or ""
        if not isinstance(client, str) or not isinstance(resource, str) or not client \
                or not resource:
            raise _bad("clientId and resourceId are required")
        if consent not in (PRINCIPAL, ALL_PRINCIPALS):
            raise _bad("consentType must be Principal or AllPrincipals")
        if (consent == PRINCIPAL) != bool(principal):
            raise _bad("principalId is required for consentType Principal and must be null "
                       "for AllPrincipals")
        if not isinstance(scope, str) or len(scope) > SCOPE_LIMIT:
            raise _bad(f"scope must be a string of at most {SCOPE_LIMIT} characters")
        with self._lock:
            if client not in self._apps or resource not in self._apps:
                raise _bad("clientId and resourceId must name service principals of the "
                           "tenant")
            if principal is not None and not user_exists(str(principal)):
                raise _bad("principalId must name a user of the tenant")
            key = grant_id(client, resource, principal)
            if key in self._grants:
                raise GrantRefused(409, "Request_MultipleObjectsWithSameKeyValue",
                                   "Permission entry already exists.")
            created = {"clientId": client, "consentType": consent, "id": key,
                       "principalId": principal, "resourceId": resource, "scope": scope}
            self._grants[key] = created
            return copy.deepcopy(created)

    def grants(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._grants.values()))

    def get(self, key: str) -> dict[str, Any]:
        with self._lock:
            found = self._grants.get(key)
        if found is None:
            raise _missing(key)
        return copy.deepcopy(found)

    def revoke(self, key: str) -> None:
        with self._lock:
            found = self._grants.pop(key, None)
            if found is None:
                raise _missing(key)
            self.revoked.append(found)

    def listing(self, clause: str | None) -> list[dict[str, Any]]:
        """The grants ``clause`` selects; GrantRefused for a filter Graph refuses."""
        wanted: list[tuple[str, str]] = []
        for part in ([] if clause is None else
                     re.split(r"\s+and\s+", clause.strip(), flags=re.IGNORECASE)):
            match = _EQ.match(part.strip())
            name = match.group(1).lower() if match else part.strip().split(" ")[0]
            if match is None or name not in _FILTER_FIELDS or (
                    name == "principalid" and self.principal_filter_refused):
                raise GrantRefused(
                    400, "Request_UnsupportedQuery",
                    "Unsupported or invalid query filter clause specified for property "
                    f"'{_FILTER_FIELDS.get(name, name)}' of resource 'OAuth2PermissionGrant'.")
            wanted.append((_FILTER_FIELDS[name], match.group(2).replace("''", "'").lower()))
        return [grant for grant in self.grants()
                if all(str(grant.get(name) or "").lower() == value for name, value in wanted)]


def _bad(what: str) -> GrantRefused:
    return GrantRefused(400, "Request_BadRequest", f"(sandbox wording) {what}.")


def _missing(key: str) -> GrantRefused:
    return GrantRefused(404, "Request_ResourceNotFound",
                        f"Resource '{key}' does not exist or one of its queried "
                        "reference-property objects are not present.")


def select_app(app: ServicePrincipal, select: str | None) -> dict[str, Any]:
    """The service principal with ``$select`` applied (id always); GrantRefused (400) for a
    property the type does not have."""
    every = app.json()
    if select is None:
        return every
    names = ["id"]
    for name in (part.strip() for part in select.split(",")):
        known = next((p for p in _SP_PROPERTIES if p.lower() == name.lower()), None)
        if known is None:
            raise GrantRefused(400, "BadRequest", f"Could not find a property named '{name}' "
                                                  "on type 'microsoft.graph.servicePrincipal'.")
        names.append(known)
    return {name: every.get(name) for name in dict.fromkeys(names)}


def give_consent(store: ConsentStore, audit: AuditLog, *, user_id: str, upn: str,
                 app: ServicePrincipal, scope: str, at: datetime,
                 resource: ServicePrincipal | None = None,
                 for_everyone: bool = False, logged: bool = True) -> dict[str, Any]:
    """What a consent does in Entra: the grant (for the user, or for everyone when an
    administrator consents on behalf of the organisation) and, unless ``logged`` is False,
    the "Consent to application" audit record at ``at``."""
    before = next((g["scope"] for g in store.grants()
                   if g["id"] == grant_id(app.id, (resource or store.graph).id,
                                          None if for_everyone else user_id)), None)
    grant = store.grant(app, scope, principal_id=None if for_everyone else user_id,
                        resource=resource)
    if logged:
        audit.add(consent_record(user_id=user_id, upn=upn, sp_id=app.id,
                                 sp_name=app.display_name, app_id=app.app_id, at=at,
                                 grant=grant, tenant_wide=for_everyone, old_scope=before))
    return grant
