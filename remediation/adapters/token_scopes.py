"""The scope of each service's token: one helper for the clients and the doctor alike.

Entra issues a token only for a resource it knows, matched against the names of the service's
service principal; any other is ``AADSTS500011 The resource principal named … was not found``.
So the scope is the service's documented resource plus ``/.default`` — never built from the
endpoint as configured: ``https://outlook.office365.com:443/.default`` names no resource (no
public caller uses a port), and neither does a path.

- Microsoft Graph: ``https://graph.microsoft.com``; national clouds
  ``https://graph.microsoft.us`` (US Government L4), ``https://dod-graph.microsoft.us`` (L5),
  ``https://microsoftgraph.chinacloudapi.cn`` (21Vianet) — microsoft-graph-docs,
  ``concepts/deployments.md``.
- Exchange Online: ``https://outlook.office365.com``; ``https://outlook.office365.us`` (GCC
  High), ``https://webmail.apps.mil`` (DoD), ``https://partner.outlook.cn`` (21Vianet) —
  office-docs-powershell, ``ExchangePowerShell/Connect-ExchangeOnline.md`` (``-ConnectionUri``).

A loopback endpoint is the sandbox tenant, which stands in for the commercial cloud: it gets
the commercial resource, so the sandbox checks the audience a real token would carry. Every
other endpoint gets ``https://<its host>``, no port, no path: each cloud above names its
resource by the host of its endpoint.

Under App Service and Functions, azure-identity strips ``/.default`` and asks the managed
identity endpoint for ``resource=<the resource>`` (``IDENTITY_ENDPOINT``, api-version
2019-08-01).
"""

from urllib.parse import urlparse

from remediation.config import is_loopback

GRAPH_RESOURCE = "https://graph.microsoft.com"
EXCHANGE_RESOURCE = "https://outlook.office365.com"


def graph_scope(endpoint: str) -> str:
    """``<resource>/.default`` for a Graph endpoint (``GRAPH_ENDPOINT``)."""
    return f"{_resource(endpoint, GRAPH_RESOURCE)}/.default"


def exchange_scope(endpoint: str) -> str:
    """``<resource>/.default`` for an Exchange admin REST endpoint (``EXCHANGE_ENDPOINT``)."""
    return f"{_resource(endpoint, EXCHANGE_RESOURCE)}/.default"


def _resource(endpoint: str, commercial: str) -> str:
    host = (urlparse(endpoint).hostname or "").lower()
    return commercial if not host or is_loopback(host) else f"https://{host}"
