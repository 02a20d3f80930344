"""Graph routes of administrative units (sandbox/admin_units.py says what they answer)."""

from __future__ import annotations

from aiohttp import web

from remediation.sandbox.context import TENANT
from remediation.sandbox.graph_routes import _not_found, _user_json, graph_root, page

USER_CAST = "microsoft.graph.user"

routes = web.RouteTableDef()


@routes.get("/v1.0/directory/administrativeUnits/{unit}")
async def get_unit(request: web.Request) -> web.Response:
    unit = request.app[TENANT].admin_units.unit(request.match_info["unit"])
    if unit is None:
        return _not_found(request.match_info["unit"])
    return web.json_response({"@odata.context": f"{graph_root(request)}/$metadata#directory/"
                                                "administrativeUnits/$entity", **unit.json()})


@routes.get("/v1.0/directory/administrativeUnits/{unit}/members/{member}")
async def get_member(request: web.Request) -> web.Response:
    tenant = request.app[TENANT]
    unit = tenant.admin_units.unit(request.match_info["unit"])
    if unit is None:
        return _not_found(request.match_info["unit"])
    member = request.match_info["member"]
    if member == USER_CAST:  # List members, cast to users
        users = [_user_json(user, ["displayName"]) for user in tenant.users()
                 if user.id in unit.members]
        return page(request, [{"@odata.type": "#microsoft.graph.user", **user}
                              for user in users], tenant.graph_page_size, "users")
    user = next((u for u in tenant.users() if u.id == member and u.id in unit.members), None)
    if user is None:
        return _not_found(member)
    return web.json_response({"@odata.context": f"{graph_root(request)}/$metadata#"
                                                "directoryObjects/$entity",
                              "@odata.type": "#microsoft.graph.user",
                              **_user_json(user, None)})
