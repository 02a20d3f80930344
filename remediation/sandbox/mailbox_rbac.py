"""Exchange Online RBAC for Applications, as Graph's mailbox endpoints meet it: an
"Application ..." role assigned to the app's service principal in Exchange, scoped to an
administrative unit, lets the app reach the unit's mailboxes with the Graph permission of
the role's name even though Entra never granted it (Microsoft Learn, "Role Based Access
Control for Applications in Exchange Online": "These permission grants are independent of
the unscoped grants in Microsoft Entra ID").

``SandboxTenant.mailbox_rbac`` maps a Graph permission (remediation/permissions.py names;
``Mail.ReadBasic.All`` stands for the role "Application Mail.ReadBasic") to the unit its
role is scoped to. A request for a mailbox outside that unit, by an app with no Entra grant,
is refused the way Exchange-backed Graph endpoints refuse a mailbox the app has no right on:
``403 ErrorAccessDenied`` "Access is denied. Check credentials and try again." (the answer
quoted in microsoftgraph/microsoft-graph-docs#3289; the older application access policies
answer ``ErrorAccessDenied`` too, "Access to OData is disabled.", concepts/
auth-limit-mailbox-access.md). With neither an Entra grant nor a scoped role, the sandbox
answers as before (403 Authorization_RequestDenied).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aiohttp import web

from remediation.sandbox.errors import graph_error

if TYPE_CHECKING:
    from remediation.sandbox.state import SandboxTenant

_MAILBOX_PATH = re.compile(r"^/v1\.0/users/([^/]+)/mailFolders(/|$)")
ACCESS_DENIED = "Access is denied. Check credentials and try again."


def scoped_answer(tenant: SandboxTenant, permission: str, path: str) -> web.Response | None:
    """None: a scoped role lets the request through; else the refusal to send, or None
    when no scoped role is about ``permission`` (the caller refuses as usual)."""
    unit = tenant.mailbox_rbac.get(permission)
    match = _MAILBOX_PATH.match(path)
    if unit is None or match is None:
        return _NOT_SCOPED
    try:
        user = tenant.directory_user(match.group(1))
    except KeyError:
        return graph_error(403, "ErrorAccessDenied", ACCESS_DENIED)
    if tenant.admin_units.holds(unit, user.id):
        return None
    return graph_error(403, "ErrorAccessDenied", ACCESS_DENIED)


_NOT_SCOPED = web.Response(status=599)  # a marker, never sent: "no scoped role applies"


def not_scoped(answer: web.Response | None) -> bool:
    return answer is _NOT_SCOPED
