"""The managed identity endpoint App Service and Azure Functions give an app, for the sandbox.

An app in Azure gets ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` in its environment and
asks ``GET {IDENTITY_ENDPOINT}?resource=<resource>&api-version=2019-08-01`` with the header
``X-IDENTITY-HEADER: {IDENTITY_HEADER}``; the answer is
``{"access_token", "expires_on", "resource", "token_type", "client_id"}`` (azure-identity,
``_credentials/app_service.py``; Microsoft Learn, "Managed identities for App Service and Azure
Functions", REST endpoint reference). Entra issues a token only for a resource it knows: any
other name answers 400 ``invalid_resource`` / ``AADSTS500011`` (the body MSAL shows in
AzureAD/microsoft-authentication-library-for-dotnet#3979).

Point ``DefaultAzureCredential`` at it with ``IDENTITY_ENDPOINT={sandbox}/_sandbox/msi/token``
and ``IDENTITY_HEADER={tenant.identity_header}``: the demo and the end-to-end tests get their
tokens this way, so the credential path that runs in Azure is the one tested.
"""

from __future__ import annotations

import hmac
import time

from aiohttp import web

from remediation.sandbox import app_rights
from remediation.sandbox.context import CONTROL_PREFIX, TENANT

IDENTITY_PATH = f"{CONTROL_PREFIX}msi/token"
API_VERSION = "2019-08-01"

routes = web.RouteTableDef()


@routes.get(IDENTITY_PATH)
async def managed_identity_token(request: web.Request) -> web.Response:
    tenant = request.app[TENANT]
    given = request.headers.get("X-IDENTITY-HEADER", "")
    if not hmac.compare_digest(given.encode(), tenant.identity_header.encode()):
        return web.json_response({"statusCode": 401, "message": (
            "Unauthorized: the X-IDENTITY-HEADER header is missing or wrong.")}, status=401)
    if request.query.get("api-version") != API_VERSION:
        return web.json_response({"statusCode": 400, "message": (
            f"api-version must be {API_VERSION}.")}, status=400)
    for key in ("client_id", "principal_id", "mi_res_id"):
        wanted = request.query.get(key)
        if wanted is not None and wanted.lower() != tenant.managed_identity_client_id:
            return web.json_response({"statusCode": 400, "message": (
                "Unable to load the proper Managed Identity.")}, status=400)
    resource = request.query.get("resource", "")
    tenant.record_token_request(resource)
    audience = app_rights.audience_for(resource)
    if audience is None:
        return web.json_response({
            "error": "invalid_resource",
            "error_description": (
                f"AADSTS500011: The resource principal named {resource} was not found in the "
                f"tenant named {tenant.tenant_id}. This can happen if the application has not "
                "been installed by the administrator of the tenant or consented to by any user "
                "in the tenant. You might have sent your authentication request to the wrong "
                "tenant."),
            "error_codes": [500011],
        }, status=400)
    return web.json_response({
        "access_token": tenant.access_token(audience),
        "expires_on": str(int(time.time()) + app_rights.TOKEN_LIFETIME),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": tenant.managed_identity_client_id,
    })
