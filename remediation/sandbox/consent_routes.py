"""Microsoft Graph routes for app consents and the directory audit log.

- ``GET /v1.0/oauth2PermissionGrants`` (``$filter`` as remediation/sandbox/consents.py says),
  ``GET`` / ``DELETE /v1.0/oauth2PermissionGrants/{id}`` (204; 404 for a grant that is not
  there), ``POST /v1.0/oauth2PermissionGrants`` (201; 409 for one that exists): "List",
  "Get", "Delete" and "Create oAuth2PermissionGrant";
- ``GET /v1.0/servicePrincipals/{id}`` with ``$select``: "Get servicePrincipal";
- ``GET /v1.0/auditLogs/directoryAudits`` (remediation/sandbox/audit_log.py). Graph documents
  ``AuditLog.Read.All`` *and* ``Directory.Read.All`` for it ("List directoryAudits"): the
  first is checked with every route's permission (app_rights.py), the second here.
"""

from __future__ import annotations

from aiohttp import web

from remediation.sandbox.app_rights import BEARER, DIRECTORY_READ
from remediation.sandbox.audit_log import INVALID_FILTER
from remediation.sandbox.consents import GrantRefused, select_app
from remediation.sandbox.context import CALL, TENANT
from remediation.sandbox.errors import graph_error
from remediation.sandbox.graph_routes import graph_root, page
from remediation.sandbox.state import SandboxTenant

routes = web.RouteTableDef()


def _refused(error: GrantRefused) -> web.Response:
    return graph_error(error.status, error.code, error.message)


@routes.get("/v1.0/oauth2PermissionGrants")
async def list_grants(request: web.Request) -> web.Response:
    """Graph v1.0 "List oAuth2PermissionGrants" supports only ``$filter`` (eq): any other
    query option is refused (``$skiptoken`` is the sandbox's own next link)."""
    tenant = request.app[TENANT]
    other = sorted(name for name in request.query
                   if name.startswith("$") and name not in ("$filter", "$skiptoken"))
    if other:
        return graph_error(400, "Request_UnsupportedQuery",
                           f"Query option '{other[0]}' is not supported.")  # sandbox's words
    try:
        grants = tenant.consents.listing(request.query.get("$filter"))
    except GrantRefused as error:
        return _refused(error)
    return page(request, grants, tenant.graph_page_size, "oauth2PermissionGrants")


@routes.post("/v1.0/oauth2PermissionGrants")
async def create_grant(request: web.Request) -> web.Response:
    tenant = request.app[TENANT]
    body = request[CALL].body
    if not isinstance(body, dict):
        return graph_error(400, "BadRequest", "A JSON object is expected.")  # sandbox's words
    try:
        grant = tenant.consents.create(body, lambda key: _is_user(tenant, key))
    except GrantRefused as error:
        return _refused(error)
    return web.json_response({
        "@odata.context": f"{graph_root(request)}/$metadata#oauth2PermissionGrants/$entity",
        **grant}, status=201)


def _is_user(tenant: SandboxTenant, object_id: str) -> bool:
    try:
        return tenant.directory_user(object_id).id.lower() == object_id.lower()
    except KeyError:
        return False


@routes.get("/v1.0/oauth2PermissionGrants/{grant}")
async def get_grant(request: web.Request) -> web.Response:
    try:
        grant = request.app[TENANT].consents.get(request.match_info["grant"])
    except GrantRefused as error:
        return _refused(error)
    return web.json_response({
        "@odata.context": f"{graph_root(request)}/$metadata#oauth2PermissionGrants/$entity",
        **grant})


@routes.delete("/v1.0/oauth2PermissionGrants/{grant}")
async def delete_grant(request: web.Request) -> web.Response:
    try:
        request.app[TENANT].consents.revoke(request.match_info["grant"])
    except GrantRefused as error:
        return _refused(error)
    return web.Response(status=204)


@routes.get("/v1.0/servicePrincipals/{sp}")
async def get_service_principal(request: web.Request) -> web.Response:
    try:
        app = request.app[TENANT].consents.app(request.match_info["sp"])
        body = select_app(app, request.query.get("$select"))
    except GrantRefused as error:
        return _refused(error)
    return web.json_response({
        "@odata.context": f"{graph_root(request)}/$metadata#servicePrincipals/$entity",
        **body})


@routes.get("/v1.0/auditLogs/directoryAudits")
async def list_directory_audits(request: web.Request) -> web.Response:
    tenant = request.app[TENANT]
    if not tenant.allows(DIRECTORY_READ, request[BEARER]):
        return graph_error(403, "Authorization_RequestDenied",
                           "Insufficient privileges to complete the operation.")
    records = tenant.audit_log.query(request.query.get("$filter"))
    if records is None:
        return graph_error(400, "BadRequest", INVALID_FILTER)
    return page(request, records, tenant.graph_page_size, "auditLogs/directoryAudits")
