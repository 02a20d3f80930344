"""Microsoft Graph role management routes: directory role assignments and PIM eligibility.

``GET /roleManagement/directory/roleAssignments`` and ``.../roleEligibilityScheduleInstances``
(Graph v1.0 reference: "List unifiedRoleAssignments", "List roleEligibilityScheduleInstances").
The only ``$filter`` understood is ``principalId eq '{id}'``; anything else is a 400. A tenant
without Entra ID P2 answers the eligibility list with ``400 AadPremiumLicenseRequired`` (the
message as public tools quote it: "The tenant needs an AAD Premium 2 license.").
"""

from __future__ import annotations

import re
from collections.abc import Callable

from aiohttp import web

from remediation.sandbox.context import TENANT
from remediation.sandbox.errors import graph_error
from remediation.sandbox.graph_routes import page, refusal
from remediation.sandbox.state import RoleGrant, TenantError

_PRINCIPAL_FILTER = re.compile(r"^\s*principalId\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
_ASSIGNMENT = "#microsoft.graph.unifiedRoleAssignment"
_ELIGIBILITY = "#microsoft.graph.unifiedRoleEligibilityScheduleInstance"

routes = web.RouteTableDef()


@routes.get("/v1.0/roleManagement/directory/roleAssignments")
async def role_assignments(request: web.Request) -> web.Response:
    return _listing(request, request.app[TENANT].assignments_of, _ASSIGNMENT,
                    "roleManagement/directory/roleAssignments")


@routes.get("/v1.0/roleManagement/directory/roleEligibilityScheduleInstances")
async def role_eligibility_instances(request: web.Request) -> web.Response:
    return _listing(request, request.app[TENANT].eligibilities_of, _ELIGIBILITY,
                    "roleManagement/directory/roleEligibilityScheduleInstances")


def _listing(request: web.Request, read: Callable[[str | None], list[RoleGrant]],
             odata_type: str, context: str) -> web.Response:
    clause = request.query.get("$filter")
    principal: str | None = None
    if clause is not None:
        match = _PRINCIPAL_FILTER.match(clause)
        if match is None:
            return graph_error(400, "Request_UnsupportedQuery",
                               "Unsupported or invalid query filter clause specified.")
        principal = match.group(1).replace("''", "'")
    try:
        grants = read(principal)
    except TenantError as error:
        return refusal(error)
    return page(request, [grant.json(odata_type) for grant in grants],
                request.app[TENANT].graph_page_size, context)
