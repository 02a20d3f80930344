"""Microsoft Graph routes for sign-in methods.

- ``GET /users/{id}/authentication/methods`` (Graph v1.0 "List methods"): "This method does
  not support optional query parameters": the sandbox refuses any ``$`` option.
- ``DELETE /users/{id}/authentication/{kind}Methods/{id}`` (Graph v1.0 "Delete
  phoneAuthenticationMethod", "Delete microsoftAuthenticatorAuthenticationMethod", ...: 204,
  or the refusals ``signin_methods.py`` lists). The external method's page spells its path
  with a trailing ``/$ref``, msgraph-sdk without: both are served.
- The directory audit log that dates registrations is served by ``consent_routes.py``
  (``audit_log.py``), one log for every record kind.

Permissions (remediation/sandbox/app_rights.py): ``UserAuthenticationMethod.ReadWrite.All``
for the methods.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from remediation.sandbox.context import TENANT
from remediation.sandbox.errors import graph_error
from remediation.sandbox.graph_routes import graph_root
from remediation.sandbox.signin_methods import MethodRefused

routes = web.RouteTableDef()


def _user_id(request: web.Request) -> str | web.Response:
    key = request.match_info["user"].lower()
    try:
        return request.app[TENANT].directory_user(key).id
    except KeyError:
        return graph_error(404, "Request_ResourceNotFound",
                           f"Resource '{key}' does not exist or one of its queried "
                           "reference-property objects are not present.")


@routes.get("/v1.0/users/{user}/authentication/methods")
async def list_methods(request: web.Request) -> web.Response:
    options = [name for name in request.query if name.startswith("$")]
    if options:
        return graph_error(400, "BadRequest",
                           f"Query option '{options[0]}' is not allowed for this request.")
    user_id = _user_id(request)
    if isinstance(user_id, web.Response):
        return user_id
    return web.json_response({
        "@odata.context": f"{graph_root(request)}/$metadata#users('{user_id}')/authentication"
                          "/methods",
        "value": request.app[TENANT].signin.methods(user_id)})


@routes.delete("/v1.0/users/{user}/authentication/{segment}/{method}")
@routes.delete("/v1.0/users/{user}/authentication/{segment}/{method}/$ref")
async def delete_method(request: web.Request) -> web.Response:
    user_id = _user_id(request)
    if isinstance(user_id, web.Response):
        return user_id
    segment = request.match_info["segment"]
    if request.path.endswith("/$ref") and segment != "externalAuthenticationMethods":
        return graph_error(400, "BadRequest", "Resource not found for the segment '$ref'.")
    try:
        request.app[TENANT].signin.delete(user_id, segment, request.match_info["method"])
    except MethodRefused as refused:
        # As #14470 shows it: the message again inside innerError.
        answer = graph_error(refused.status, refused.code, refused.message)
        body: dict[str, Any] = json.loads(answer.text or "{}")
        body["error"]["innerError"]["message"] = refused.message
        return web.json_response(body, status=refused.status)
    return web.Response(status=204)
