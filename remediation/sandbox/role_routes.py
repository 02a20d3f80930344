"""Microsoft Graph role management routes: directory role assignments, PIM eligibility, and
PIM for Groups.

``GET /roleManagement/directory/roleAssignments`` and ``.../roleEligibilityScheduleInstances``
(Graph v1.0 reference: "List unifiedRoleAssignments", "List roleEligibilityScheduleInstances").
The only ``$filter`` understood is ``principalId eq '{id}'``; anything else is a 400.

``GET /identityGovernance/privilegedAccess/group/eligibilityScheduleInstances`` and
``.../assignmentScheduleInstances`` (Graph v1.0, privilegedAccessGroup "List
eligibilityScheduleInstances" / "List assignmentScheduleInstances"): eligible and active
memberships and ownerships of groups governed by PIM. Graph *requires* ``$filter`` on
``principalId`` or ``groupId`` (eq); without one the sandbox answers 400.

A tenant without Entra ID P2 answers every PIM list with ``400 AadPremiumLicenseRequired``
(the message as public tools quote it); the other answers a tenant without PIM may give
("The tenant has not onboarded to PIM.", ``ResourceTypeNotSupported``) are switches per read:
remediation/sandbox/pim_shapes.py.
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
_GROUP_ACCESS_FILTER = re.compile(r"^\s*(principalId|groupId)\s+eq\s+'((?:[^']|'')*)'\s*$",
                                  re.IGNORECASE)
_PIM_GROUPS = "/v1.0/identityGovernance/privilegedAccess/group"
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


@routes.get(f"{_PIM_GROUPS}/eligibilityScheduleInstances")
async def group_eligibility_instances(request: web.Request) -> web.Response:
    return _group_access(request, eligible=True)


@routes.get(f"{_PIM_GROUPS}/assignmentScheduleInstances")
async def group_assignment_instances(request: web.Request) -> web.Response:
    return _group_access(request, eligible=False)


def _group_access(request: web.Request, *, eligible: bool) -> web.Response:
    match = _GROUP_ACCESS_FILTER.match(request.query.get("$filter", ""))
    if match is None:
        return graph_error(400, "BadRequest", "The request requires a $filter on principalId "
                                              "or groupId (eq).")
    value = match.group(2).replace("''", "'")
    by_principal = match.group(1).lower() == "principalid"
    try:
        grants = request.app[TENANT].group_access_of(
            eligible=eligible, principal_id=value if by_principal else None,
            group_id=None if by_principal else value)
    except TenantError as error:
        return refusal(error)
    kind = "eligibility" if eligible else "assignment"
    return page(request, [grant.json(eligible=eligible) for grant in grants],
                request.app[TENANT].graph_page_size,
                f"identityGovernance/privilegedAccess/group/{kind}ScheduleInstances")
