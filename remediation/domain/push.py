"""Alert ids in a pushed body (Sentinel automation rule, Logic App, any SOAR).

Accepted shapes: ``"id"``, ``["id", ...]``, ``{"alertId": "id"}``, ``{"alertIds": [...]}``,
an alerts_v2-shaped object ``{"id": ..., ...}``, a list of those, or ``{"value": [...]}``.
"""

from typing import Any

from remediation.domain.alerts import is_alert_id
from remediation.domain.errors import InvalidRequest
from remediation.domain.requests import describe

MAX_PUSHED_ALERTS = 100


def pushed_alert_ids(body: Any) -> list[str]:
    ids: list[str] = []
    for item in _items(body):
        alert_id = _id_of(item)
        if alert_id not in ids:
            ids.append(alert_id)
    if not ids:
        raise InvalidRequest("no alert id in the body")
    if len(ids) > MAX_PUSHED_ALERTS:
        raise InvalidRequest(f"more than {MAX_PUSHED_ALERTS} alert ids in one body")
    return ids


def _items(body: Any) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        if "alertIds" in body:
            value = body["alertIds"]
            if not isinstance(value, list):
                raise InvalidRequest("'alertIds' must be a list of alert ids")
            return value
        if "value" in body and "id" not in body:
            value = body["value"]
            if not isinstance(value, list):
                raise InvalidRequest("'value' must be a list of alerts")
            return value
        return [body]
    return [body]


def _id_of(item: Any) -> str:
    if isinstance(item, dict):
        item = item.get("alertId", item.get("id"))
    if not is_alert_id(item):
        raise InvalidRequest(f"not an alert id: {describe(item)}")
    assert isinstance(item, str)
    return item
