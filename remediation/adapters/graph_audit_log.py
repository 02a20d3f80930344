"""The directory audit log (Graph v1.0 "List directoryAudits"), one reader for every kind
that dates something by it (consents, sign-in method registrations).

``GET /auditLogs/directoryAudits?$filter=...`` needs ``AuditLog.Read.All`` and
``Directory.Read.All`` (microsoft-graph-docs-contrib ``api-reference/v1.0/api/
directoryaudit-list.md``); a filter Graph does not take is ``400 Invalid filter clause``.
"""

from typing import TYPE_CHECKING, Any

from remediation.adapters.graph_caller import GraphCaller

if TYPE_CHECKING:
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.graph_service_client import GraphServiceClient


async def directory_audits(graph: GraphCaller, what: str,
                           clause: str) -> list[dict[str, Any]]:
    """Every record of ``GET /auditLogs/directoryAudits?$filter={clause}``, all pages
    (``AuditLog.Read.All`` and ``Directory.Read.All``). Raises as GraphCaller does: a 403
    names the missing permission's call, a 400 ``Invalid filter clause`` an unsupported
    clause. """
    def build(client: "GraphServiceClient") -> "RequestInformation":
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.audit_logs.directory_audits.directory_audits_request_builder import (
            DirectoryAuditsRequestBuilder,
        )

        query = DirectoryAuditsRequestBuilder.DirectoryAuditsRequestBuilderGetQueryParameters(
            filter=clause)
        return client.audit_logs.directory_audits.to_get_request_information(
            RequestConfiguration(query_parameters=query))

    return await graph.get_all(what, build)
