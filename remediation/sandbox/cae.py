"""Continuous Access Evaluation (CAE) on Graph, for the sandbox: a token Entra revoked is
refused at once, before it expires, with a claims challenge.

After a revocation event (for an app: its service principal disabled or deleted; Microsoft
Learn, "Continuous access evaluation for workload identities": Microsoft Graph is the only
resource provider, and only for clients declaring the ``cp1`` capability), Graph answers a
token issued before it with ``401 InvalidAuthenticationToken`` ("Continuous access evaluation
resulted in claims challenge with result: InteractionRequired and code:
TokenIssuedBeforeRevocationTimestamp", microsoftgraph/msgraph-sdk-powershell#1741) and
``WWW-Authenticate: Bearer realm="", authorization_uri=".../common/oauth2/authorize",
error="insufficient_claims", claims="<base64 claims request>"`` (Microsoft Learn, "Claims
challenges, claims requests and client capabilities"). A client asks Entra for a new token
with those claims (kiota's ``retry_cae_response_if_required`` retries the request once).

``SandboxTenant.revoke_tokens`` plays the event: every token issued so far is refused.
"""

from __future__ import annotations

import base64
import json
import time

from aiohttp import web

from remediation.sandbox.errors import graph_error
from remediation.sandbox.state import SandboxTenant

MESSAGE = ("Continuous access evaluation resulted in claims challenge with result: "
           "InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp")


def challenge(tenant: SandboxTenant, token: str) -> web.Response | None:
    """The claims challenge Graph answers ``token`` with, if Entra revoked it; else None."""
    if token not in tenant.revoked_tokens:
        return None
    claims = {"access_token": {"nbf": {"essential": True, "value": str(int(time.time()))}}}
    encoded = base64.b64encode(json.dumps(claims).encode()).decode()
    return graph_error(401, "InvalidAuthenticationToken", MESSAGE, headers={
        "WWW-Authenticate": (
            'Bearer realm="", authorization_uri='
            '"https://login.microsoftonline.com/common/oauth2/authorize", '
            f'error="insufficient_claims", claims="{encoded}"')})
