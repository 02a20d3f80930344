"""Unauthenticated control endpoints, for a sandbox running in another process."""

from __future__ import annotations

from aiohttp import web

from remediation.sandbox import app_rights
from remediation.sandbox.context import CONTROL_PREFIX, TENANT
from remediation.sandbox.faults import Fault

routes = web.RouteTableDef()


@routes.get(f"{CONTROL_PREFIX}requests")
async def list_requests(request: web.Request) -> web.Response:
    # Bodies stay out: they carry the passwords of resets.
    return web.json_response([
        {"method": recorded.method, "path": recorded.path, "status": recorded.status,
         "cmdlet": recorded.cmdlet, "target": recorded.target, "at": recorded.at}
        for recorded in request.app[TENANT].requests()
    ])


@routes.get(f"{CONTROL_PREFIX}blocked")
async def list_blocked(request: web.Request) -> web.Response:
    return web.json_response(request.app[TENANT].blocked_addresses())


@routes.get(f"{CONTROL_PREFIX}token")
async def issue_token(request: web.Request) -> web.Response:
    """An app token as Microsoft issues one (a JWT with ``roles`` and ``wids``) for
    ``?resource=`` (default Graph): one service's token, which the other refuses. The app
    itself gets its tokens from the managed identity endpoint (identity_routes)."""
    resource = request.query.get("resource", "https://graph.microsoft.com")
    audience = app_rights.audience_for(resource)
    if audience is None:
        return web.json_response({"error": f"unknown resource {resource!r}"}, status=400)
    return web.Response(text=request.app[TENANT].access_token(audience))


@routes.post(f"{CONTROL_PREFIX}faults")
async def add_fault(request: web.Request) -> web.Response:
    try:
        fault = Fault.from_json(await request.json())
    except (ValueError, TypeError) as error:
        return web.json_response({"error": str(error)}, status=400)
    request.app[TENANT].add_fault(fault)
    return web.Response(status=204)
