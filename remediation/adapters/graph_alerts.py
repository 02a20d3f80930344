"""Defender alerts on Graph ``/security/alerts_v2``: read, comment, update.

Permission: ``SecurityAlert.ReadWrite.All`` (application; ``SecurityAlert.Read.All`` is
enough without the alert lifecycle). Every permission the app needs: remediation/permissions.py.

Alerts are read as raw JSON (the alert resource of Graph's security API,
https://learn.microsoft.com/graph/api/resources/security-alert) through the SDK's request adapter,
so the core parses one documented format whether an alert came from a poll, a push or a
test. Comments are sent as one JSON object: the SDK's ``comments.post`` sends an array, and
Graph answers 400 "Empty Payload" (msgraph-sdk-python #1168).
"""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from remediation.adapters.graph_caller import GraphCaller
from remediation.domain.alerts import OFFICE_365_SOURCE, is_alert_id
from remediation.domain.errors import PermanentError
from remediation.domain.requests import describe

if TYPE_CHECKING:
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.graph_service_client import GraphServiceClient

# Graph pages alerts_v2 at its own size whatever $top asks; fewer, larger pages make a poll
# through a flood of unrelated alerts cheaper.
PAGE_SIZE = 1000


class GraphAlerts:
    def __init__(self, caller: GraphCaller) -> None:
        self._graph = caller

    def recent_alerts(self, since: datetime) -> AsyncIterator[list[dict[str, Any]]]:
        """Office 365 alerts updated since ``since``, one page at a time as Graph answers
        them (GraphCaller.pages): tens of thousands of unrelated alerts in the window are
        never held in memory, and a failure on a late page keeps what earlier pages held."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.security.alerts_v2.alerts_v2_request_builder import (
            Alerts_v2RequestBuilder,
        )

        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # Only properties alerts_v2 can filter on; titles are matched client-side.
        query = Alerts_v2RequestBuilder.Alerts_v2RequestBuilderGetQueryParameters(
            filter=f"serviceSource eq '{OFFICE_365_SOURCE}' and lastUpdateDateTime ge {stamp}",
            top=PAGE_SIZE)
        config = RequestConfiguration(query_parameters=query)
        return self._graph.pages(
            "list alerts", lambda c: c.security.alerts_v2.to_get_request_information(config))

    async def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        """The alert, or None when Graph has none by that id (an id that is not a plain
        alert id never names one, and is never put into a URL)."""
        if not is_alert_id(alert_id):
            return None
        try:
            return await self._graph.send_json(
                "read alert", lambda c: c.security.alerts_v2.by_alert_id(
                    alert_id).to_get_request_information())
        except PermanentError as error:
            if "not found" in error.reason:
                return None
            raise

    async def comment(self, alert_id: str, text: str) -> None:
        _plain(alert_id)
        body = {"@odata.type": "microsoft.graph.security.alertComment", "comment": text}

        def request(client: "GraphServiceClient") -> "RequestInformation":
            from kiota_abstractions.method import Method
            from kiota_abstractions.request_information import RequestInformation

            builder = client.security.alerts_v2.by_alert_id(alert_id).comments
            info = RequestInformation(Method.POST, builder.url_template, builder.path_parameters)
            info.headers.try_add("Accept", "application/json")
            info.set_stream_content(json.dumps(body).encode(), "application/json")
            return info

        # Never retried here: a repeated POST is a second comment. A failure is transient
        # and the queued alert update is retried as a whole.
        await self._graph.send_json("comment on alert", request, retry=False)

    async def comment_texts(self, alert_id: str) -> list[str]:
        """The alert's ``comments[].comment`` texts; [] when the alert is gone."""
        alert = await self.get_alert(alert_id)
        found = (alert or {}).get("comments")
        return [str(item.get("comment") or "") for item in found or []
                if isinstance(item, dict)]

    async def update(self, alert_id: str, changes: dict[str, str]) -> None:
        _plain(alert_id)

        def request(client: "GraphServiceClient") -> "RequestInformation":
            from kiota_abstractions.method import Method
            from kiota_abstractions.request_information import RequestInformation

            builder = client.security.alerts_v2.by_alert_id(alert_id)
            info = RequestInformation(Method.PATCH, builder.url_template,
                                      builder.path_parameters)
            info.headers.try_add("Accept", "application/json")
            info.set_stream_content(json.dumps(changes).encode(), "application/json")
            return info

        await self._graph.send_json("update alert", request)


def _plain(alert_id: str) -> None:
    """An alert id goes into a URL path: ``..`` would resolve to ``/security``, ``a/b`` reach
    a path of its own. Every door refuses such ids; this is the last one."""
    if not is_alert_id(alert_id):
        raise PermanentError(f"not an alert id: {describe(alert_id)}; nothing was sent")
