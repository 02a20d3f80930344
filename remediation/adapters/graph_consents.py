"""App consents on Microsoft Graph: the ``consent_grants`` leftover kind.

Reads (Graph v1.0; each page followed to its end through ``GraphCaller``):

- the account's grants: ``GET /oauth2PermissionGrants?$filter=principalId eq '{id}'``.
  ``GET /users/{id}/oauth2PermissionGrants`` would say the same but takes no application
  permission ("List a user's oauth2PermissionGrants": Application "Not supported"). The
  ``principalId`` filter is in the current metadata ("Supports $filter (eq only)", the
  oAuth2PermissionGrant resource page) but was not in older pages, where only ``clientId``
  and ``consentType`` were; a Graph that refuses it (any 400) is answered by listing every
  grant and keeping the account's in code (one page at a time, never all in memory);
- grants for the whole organisation: ``$filter=consentType eq 'AllPrincipals'`` (documented
  since the first version of that page); the user's own grants list never holds them
  ("Delegated permissions granted on behalf of all users in the organization are not
  included");
- when the account consented: ``GET /auditLogs/directoryAudits?$filter=activityDisplayName eq
  'Consent to application' and initiatedBy/user/id eq '{id}' and activityDateTime ge {opens}``
  ("List directoryAudits": ``initiatedBy/user/id`` and ``activityDisplayName`` eq,
  ``activityDateTime`` ge, the time unquoted). A "Consent to application" record's target is
  the app's service principal (``type`` ``ServicePrincipal``, ``id`` = the grant's
  ``clientId``), and its ``modifiedProperties`` hold JSON-encoded strings:
  ``ConsentContext.OnBehalfOfAll`` ("True" for an organisation-wide consent) and
  ``ConsentAction.Permissions`` ("[old] => [[Id: <grant id>, ClientId: …, ConsentType: …,
  Scope: …]]"), as the records public detection rules quote show them ("Detect and
  Remediate Illicit Consent Grants", defender-docs, names the activity and IsAdminConsent);
  only ``result`` ``success`` counts. Retention is 7 days (Entra ID Free) or 30 (P1/P2):
  a consent older than that reads as none. Latency is minutes: a consent given moments before
  the case may not be there yet (verification reads again);
- each app: ``GET /servicePrincipals/{id}?$select=id,displayName,appId,publisherName,
  verifiedPublisher`` (its ``verifiedPublisher`` fields are null when the publisher is not
  verified), at most once per app per survey; a 404 is an app Graph no longer has.

Revoke: ``DELETE /oauth2PermissionGrants/{id}`` → 204 ("Delete oAuth2PermissionGrant"); a 404
is a grant already gone (a redelivery after the revocation), taken as done.

Permissions (remediation/permissions.py): ``DelegatedPermissionGrant.ReadWrite.All`` to revoke
(least privileged for the delete); ``Directory.Read.All`` for the grants and the service
principals (least privileged for the list; Application.Read.All would do for the service
principals alone) and, with ``AuditLog.Read.All``, for the audit log ("List directoryAudits":
"AuditLog.Read.All and Directory.Read.All"; microsoft-graph-docs#13633: the directory read
avoids intermittent licence-check failures). microsoft-graph-docs-contrib
``api-reference/v1.0/api/oauth2permissiongrant-list.md``, ``oauth2permissiongrant-delete.md``,
``serviceprincipal-get.md``, ``directoryaudit-list.md``.

Cost per survey: 2 grant lists and 1 audit read (one page each, usually), plus one read per
distinct app and API among the account's grants and the organisation-wide grants with mail
permissions or a consent by this account.
"""

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from remediation.adapters.graph_audit_log import directory_audits
from remediation.adapters.graph_caller import GraphCaller, GraphRequestError
from remediation.domain.consents import (
    App,
    Consent,
    Grant,
    judge,
    latest_consent,
    mail_scopes,
)
from remediation.domain.directory import DirectoryUser
from remediation.domain.leftovers import CompromiseWindow, Leftover
from remediation.domain.requests import parse_evidence_time

if TYPE_CHECKING:
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.graph_service_client import GraphServiceClient

    from remediation.adapters.graph_caller import BuildRequest

log = logging.getLogger(__name__)

CONSENT_TO_APPLICATION = "Consent to application"
_APP_FIELDS = ["id", "displayName", "appId", "publisherName", "verifiedPublisher"]
_GRANT_ID = re.compile(r"\bId:\s*([A-Za-z0-9_-]+)")


def literal(value: str) -> str:
    """An OData string literal's inside: single quotes doubled."""
    return value.replace("'", "''")


def odata_time(moment: datetime) -> str:
    """A DateTimeOffset literal as ``$filter`` takes it: UTC, unquoted, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def consents_clause(user_id: str, since: datetime) -> str:
    """The audit filter for this account's consents since ``since``."""
    return (f"activityDisplayName eq '{CONSENT_TO_APPLICATION}' and initiatedBy/user/id eq "
            f"'{literal(user_id)}' and activityDateTime ge {odata_time(since)}")


class GraphConsentGrants:
    """The ``consent_grants`` leftover kind (``LeftoverKind``): the account's delegated
    permission grants, judged by remediation/domain/consents.py; ``mode`` is
    SIGNIN_CLEANUP (``remove`` or ``report``)."""

    step = "consent_grants"
    label = "app consents"

    def __init__(self, caller: GraphCaller, mode: str = "remove") -> None:
        self._graph = caller
        self._mode = mode

    async def survey(self, user: DirectoryUser, window: CompromiseWindow) -> list[Leftover]:
        """Every grant of the account, and the organisation-wide grants it should know of,
        each with its disposition. Reads only."""
        own, everyone = await self._grants(user.id)
        records = await directory_audits(self._graph, "read consents in the audit log",
                                         consents_clause(user.id, window.opens))
        consents = [consent for record in records for consent in consents_in(record)]
        apps: dict[str, App] = {}
        found: list[Leftover] = []
        for grant in own + [grant for grant in everyone
                            if mail_scopes(grant.scopes)
                            or latest_consent(grant, consents) is not None]:
            client = await self._app(grant.client_id, apps)
            resource = await self._app(grant.resource_id, apps)
            leftover = judge(grant, client, resource, consents, window, self._mode)
            if leftover is not None:
                found.append(leftover)
        return found

    async def remove(self, user: DirectoryUser, leftover: Leftover) -> None:
        """Revoke the grant; one already gone counts as revoked. PermanentError (Graph's
        status and code) when Graph refuses."""
        grant_id = str(leftover.snapshot.get("id") or leftover.key.split()[0])
        try:
            await self._graph.call(
                "revoke consent grant",
                lambda c: c.oauth2_permission_grants.by_o_auth2_permission_grant_id(
                    grant_id).delete())
        except GraphRequestError as error:
            if not error.not_found:
                raise
            log.info("Graph: consent grant %s was already gone", grant_id)

    async def _grants(self, user_id: str) -> tuple[list[Grant], list[Grant]]:
        """(this account's grants, the organisation-wide ones)."""
        try:
            items = await self._graph.get_all(
                "read the account's consent grants",
                _grants_request(f"principalId eq '{literal(user_id)}'"))
        except GraphRequestError as error:
            if error.status != 400:
                raise
            log.warning("Graph refused the principalId filter on oauth2PermissionGrants "
                        "(%s %s): every grant is read and filtered here", error.status,
                        error.code)
            return await self._all_grants(user_id)
        own = [grant for grant in _grants(items) if grant.covers(user_id)]
        everyone = _grants(await self._graph.get_all(
            "read the organisation's consent grants",
            _grants_request("consentType eq 'AllPrincipals'")))
        return own, [grant for grant in everyone if grant.tenant_wide]

    async def _all_grants(self, user_id: str) -> tuple[list[Grant], list[Grant]]:
        own: list[Grant] = []
        everyone: list[Grant] = []
        async for page in self._graph.pages("read every consent grant", _grants_request(None)):
            for grant in _grants(page):
                if grant.covers(user_id):
                    own.append(grant)
                elif grant.tenant_wide:
                    everyone.append(grant)
        return own, everyone

    async def _app(self, sp_id: str, apps: dict[str, App]) -> App:
        if sp_id not in apps:
            try:
                raw = await self._graph.send_json("read a consented app",
                                                  _app_request(sp_id))
            except GraphRequestError as error:
                if not error.not_found:
                    raise
                apps[sp_id] = App(sp_id, found=False)
            else:
                apps[sp_id] = app_from_json(sp_id, raw)
        return apps[sp_id]


def consents_in(record: dict[str, Any]) -> list[Consent]:
    """The consents a "Consent to application" record holds (one per service principal it
    targets); none for a failed one or one without a readable time."""
    if str(record.get("result") or "").lower() != "success":
        return []
    at = parse_evidence_time(record.get("activityDateTime"))
    if at is None:
        return []
    consents = []
    for target in record.get("targetResources") or []:
        if not isinstance(target, dict) or not target.get("id"):
            continue
        if str(target.get("type") or "").lower() != "serviceprincipal":
            continue
        properties = _properties(target.get("modifiedProperties"))
        everyone = properties.get("consentcontext.onbehalfofall")
        tenant_wide = None if everyone is None else everyone.lower() == "true"
        permissions = properties.get("consentaction.permissions") or ""
        granted = permissions.rsplit("=>", 1)[-1]
        consents.append(Consent(at, str(target["id"]), tenant_wide,
                                frozenset(_GRANT_ID.findall(granted))))
    return consents


def app_from_json(sp_id: str, raw: dict[str, Any]) -> App:
    verified = raw.get("verifiedPublisher")
    publisher = None
    if isinstance(verified, dict) and (verified.get("verifiedPublisherId")
                                       or verified.get("displayName")):
        publisher = str(verified.get("displayName") or verified.get("verifiedPublisherId"))
    return App(str(raw.get("id") or sp_id), _text(raw.get("displayName")),
               _text(raw.get("appId")), _text(raw.get("publisherName")), publisher)


def _properties(raw: Any) -> dict[str, str]:
    """modifiedProperties by lower-case name, their newValue JSON-decoded when it is a JSON
    string (Graph writes ``"\\"True\\""``)."""
    values: dict[str, str] = {}
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("displayName"), str):
            continue
        value = item.get("newValue")
        if isinstance(value, str):
            try:
                decoded = json.loads(value)
            except ValueError:
                decoded = value
            value = decoded if isinstance(decoded, str) else value
        values[item["displayName"].lower()] = str(value) if value is not None else ""
    return values


def _grants(items: Iterable[dict[str, Any]]) -> list[Grant]:
    return [Grant(str(item["id"]), str(item.get("clientId") or ""),
                  str(item.get("consentType") or ""), _text(item.get("principalId")),
                  str(item.get("resourceId") or ""), str(item.get("scope") or ""))
            for item in items if item.get("id") and item.get("clientId")]


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _grants_request(clause: str | None) -> "BuildRequest":
    def build(client: "GraphServiceClient") -> "RequestInformation":
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.oauth2_permission_grants.oauth2_permission_grants_request_builder import (  # noqa: E501
            Oauth2PermissionGrantsRequestBuilder,
        )

        builder = Oauth2PermissionGrantsRequestBuilder
        query = builder.Oauth2PermissionGrantsRequestBuilderGetQueryParameters(filter=clause)
        return client.oauth2_permission_grants.to_get_request_information(
            RequestConfiguration(query_parameters=query))

    return build


def _app_request(sp_id: str) -> "BuildRequest":
    def build(client: "GraphServiceClient") -> "RequestInformation":
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.service_principals.item.service_principal_item_request_builder import (  # noqa: E501
            ServicePrincipalItemRequestBuilder,
        )

        builder = ServicePrincipalItemRequestBuilder
        query = builder.ServicePrincipalItemRequestBuilderGetQueryParameters(
            select=_APP_FIELDS)
        return client.service_principals.by_service_principal_id(
            sp_id).to_get_request_information(RequestConfiguration(query_parameters=query))

    return build
