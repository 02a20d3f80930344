"""Administrative unit membership, read from Graph for the scope guardrail
(``remediation/service/scope.py``).

``GET /directory/administrativeUnits/{unit-id}/members/{user-id}?$select=id`` (Graph v1.0,
"Get a member", microsoft-graph-docs-contrib
api-reference/v1.0/api/administrativeunit-get-members.md): 200 and the user when it is a
member; ``404 Request_ResourceNotFound`` when it is not (Graph's answer for a key its
collection does not hold; also when the unit does not exist, which ``remediation doctor``
checks). Application permissions: ``AdministrativeUnit.Read.All`` or
``Directory.Read.All``; the app holds the second already (remediation/permissions.py), so
the scope costs no new permission. Any other refusal or failure is raised, never read as
"not a member" or "a member".
"""

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from remediation.adapters.graph_caller import GraphCaller, GraphRequestError

if TYPE_CHECKING:
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.graph_service_client import GraphServiceClient


class GraphAdministrativeUnits:
    def __init__(self, caller: GraphCaller) -> None:
        self._graph = caller

    async def holds(self, unit_id: str, user_id: str) -> bool:
        path = (f"directory/administrativeUnits/{quote(unit_id, safe='')}/members/"
                f"{quote(user_id, safe='')}?$select=id")
        try:
            await self._graph.send_json("read administrative unit membership", _get(path))
        except GraphRequestError as error:
            if error.status == 404:
                return False
            raise
        return True


def _get(path: str) -> Callable[["GraphServiceClient"], "RequestInformation"]:
    def build(client: "GraphServiceClient") -> "RequestInformation":
        from kiota_abstractions.method import Method
        from kiota_abstractions.request_information import RequestInformation

        info = RequestInformation(Method.GET)
        info.url = f"{client.request_adapter.base_url}/{path}"
        info.headers.try_add("Accept", "application/json")
        return info

    return build
