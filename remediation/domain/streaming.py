"""Defender XDR streaming records (Event Hub) reduced to alert ids worth a look.

A record is only a hint: AlertInfo and AlertEvidence arrive separately, out of order, and
sometimes twice, so the caller reads each hinted alert from Graph and matches it there.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from remediation.domain.alerts import is_alert_id
from remediation.domain.errors import InvalidRequest
from remediation.domain.requests import decode_json

ALERT_INFO = "AdvancedHunting-AlertInfo"
ALERT_EVIDENCE = "AdvancedHunting-AlertEvidence"
OFFICE_365_DISPLAY_NAME = "Microsoft Defender for Office 365"
_SENDER_ENTITIES = {"user", "mailbox"}
MAX_EVENT_BYTES = 1024 * 1024


def alert_hints(events: Iterable[bytes | str | Mapping[str, Any]],
                titles: Iterable[str]) -> tuple[list[str], list[str]]:
    """Alert ids hinted by a batch of Event Hub events, and a reason per unreadable event."""
    wanted = {title.strip().casefold() for title in titles}
    hints: list[str] = []
    problems: list[str] = []
    for index, event in enumerate(events):
        try:
            records = _records(event)
        except InvalidRequest as error:
            problems.append(f"event {index}: {error.reason}")
            continue
        for record in records:
            alert_id = _hint(record, wanted)
            if alert_id is not None and alert_id not in hints:
                hints.append(alert_id)
    return hints, problems


def _records(event: bytes | str | Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if isinstance(event, Mapping):
        body: Any = event
    else:
        raw = event.encode("utf-8", "replace") if isinstance(event, str) else event
        if len(raw) > MAX_EVENT_BYTES:
            raise InvalidRequest(f"event is larger than {MAX_EVENT_BYTES} bytes")
        try:
            body = decode_json(raw, limit=MAX_EVENT_BYTES)
        except InvalidRequest:
            raise InvalidRequest("event is not valid JSON") from None
    records = body.get("records") if isinstance(body, Mapping) else None
    if not isinstance(records, list):
        raise InvalidRequest("event has no 'records' list")
    return [record for record in records if isinstance(record, Mapping)]


def _hint(record: Mapping[str, Any], wanted: set[str]) -> str | None:
    category = record.get("category")
    if category not in (ALERT_INFO, ALERT_EVIDENCE):
        return None
    properties = record.get("properties")
    if not isinstance(properties, Mapping):
        return None
    alert_id = properties.get("AlertId")
    if not is_alert_id(alert_id):
        return None
    assert isinstance(alert_id, str)
    if properties.get("ServiceSource") != OFFICE_365_DISPLAY_NAME:
        return None
    if category == ALERT_INFO:
        title = properties.get("Title")
        return alert_id if isinstance(title, str) and title.strip().casefold() in wanted else None
    entity = properties.get("EntityType")
    return alert_id if isinstance(entity, str) and entity.lower() in _SENDER_ENTITIES else None
