"""Alert ids in a pushed body (Sentinel automation rule, Logic App, any SOAR).

Accepted shapes: ``"id"``, ``["id", ...]``, ``{"alertId": "id"}``, ``{"alertIds": [...]}``,
an alerts_v2-shaped object ``{"id": ..., ...}``, a list of those, or ``{"value": [...]}``.
At most MAX_PUSHED_ENTRIES entries (counted before de-duplication, which is linear) naming
at most MAX_PUSHED_ALERTS distinct plain alert ids (remediation.domain.alerts.ALERT_ID).
"""

from typing import Any

from remediation.domain.alert_ids import graph_alert_id
from remediation.domain.errors import InvalidRequest

# Distinct alert ids one body may name (each is read from Graph).
MAX_PUSHED_ALERTS = 100
# Entries one body may hold, duplicates included: counted before anything is de-duplicated.
MAX_PUSHED_ENTRIES = 1000


def pushed_alert_ids(body: Any) -> list[str]:
    """The distinct Graph alert ids a pushed body names, in order (a provider GUID as the
    Graph id it names); InvalidRequest with the reason when the body holds more than
    MAX_PUSHED_ENTRIES entries, any entry that names no alert in an accepted form, or more
    than MAX_PUSHED_ALERTS distinct ids."""
    items = _items(body)
    if len(items) > MAX_PUSHED_ENTRIES:
        raise InvalidRequest(f"more than {MAX_PUSHED_ENTRIES} entries in one body "
                             "(repeated ids count)")
    ids = list(dict.fromkeys(_id_of(item) for item in items))
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
    return graph_alert_id(item)
