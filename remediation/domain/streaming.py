"""Defender XDR streaming records (Event Hub) reduced to alert ids worth a look.

An event is ``{"records": [...]}`` as the streaming API sends it, or one record on its own
(``{"category": ..., "properties": {...}}``) as pipelines that re-emit one record per event
send it; both are read alike.

A record is only a hint: AlertInfo and AlertEvidence arrive separately, out of order, and
sometimes twice, so the caller reads each hinted alert from Graph and matches it there.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from remediation.domain.alert_ids import ACCEPTED_FORMS, graph_alert_id, is_alert_id
from remediation.domain.errors import InvalidRequest
from remediation.domain.requests import decode_json, describe

ALERT_INFO = "AdvancedHunting-AlertInfo"
ALERT_EVIDENCE = "AdvancedHunting-AlertEvidence"
OFFICE_365_DISPLAY_NAME = "Microsoft Defender for Office 365"
_SENDER_ENTITIES = {"user", "mailbox"}
MAX_EVENT_BYTES = 1024 * 1024
# Hinted records one batch may make us look at, repeats included (counted before
# de-duplication), and distinct alert ids one batch may make us read from Graph.
MAX_BATCH_HINTS = 200_000
MAX_BATCH_ALERTS = 500


def alert_hints(events: Iterable[bytes | str | Mapping[str, Any]],
                titles: Iterable[str]) -> tuple[list[str], list[str]]:
    """Alert ids hinted by a batch of Event Hub events (each once, in order), and a reason
    per unreadable event and per limit reached.

    At most MAX_BATCH_HINTS hinted records are looked at (repeats included: what a batch
    repeats costs no more than linear time), then at most MAX_BATCH_ALERTS distinct ids are
    kept. A hint whose AlertId is not a plain alert id is refused and counted. What a limit
    leaves out is reported: the alert poll still finds those alerts.
    """
    wanted = {title.strip().casefold() for title in titles}
    hints: dict[str, None] = {}
    problems: list[str] = []
    hinted = refused = 0
    first_refused: object = None
    for index, event in enumerate(events):
        if hinted > MAX_BATCH_HINTS:
            break
        try:
            records = _records(event)
        except InvalidRequest as error:
            problems.append(f"event {index}: {error.reason}")
            continue
        for record in records:
            if not _is_hint(record, wanted):
                continue
            hinted += 1
            if hinted > MAX_BATCH_HINTS:
                problems.append(
                    f"batch: more than {MAX_BATCH_HINTS} hinted records; the rest of event "
                    f"{index} and the events after it were not read (the alert poll finds "
                    "their alerts)")
                break
            alert_id = record["properties"].get("AlertId")
            if is_alert_id(alert_id):
                hints[graph_alert_id(alert_id)] = None
            else:
                refused += 1
                first_refused = alert_id if refused == 1 else first_refused
    if refused:
        problems.append(f"batch: {refused} hinted record(s) refused: not an alert id: "
                        f"{describe(first_refused)} (an alert is named by {ACCEPTED_FORMS})")
    found = list(hints)
    if len(found) > MAX_BATCH_ALERTS:
        problems.append(f"batch: {len(found)} alert ids hinted; only the first "
                        f"{MAX_BATCH_ALERTS} are read from Graph (the alert poll finds the "
                        "others)")
        found = found[:MAX_BATCH_ALERTS]
    return found, problems


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
    if isinstance(body, Mapping) and "records" not in body and "category" in body:
        return [body]  # a record re-emitted on its own, without the wrapper: read the same
    records = body.get("records") if isinstance(body, Mapping) else None
    if not isinstance(records, list):
        raise InvalidRequest("event has no 'records' list")
    return [record for record in records if isinstance(record, Mapping)]


def _is_hint(record: Mapping[str, Any], wanted: set[str]) -> bool:
    """An Office 365 AlertInfo with a wanted title, or Office 365 AlertEvidence about a user
    or a mailbox (whatever its AlertId holds: the caller checks that)."""
    category = record.get("category")
    if category not in (ALERT_INFO, ALERT_EVIDENCE):
        return False
    properties = record.get("properties")
    if not isinstance(properties, Mapping):
        return False
    if properties.get("ServiceSource") != OFFICE_365_DISPLAY_NAME:
        return False
    if category == ALERT_INFO:
        title = properties.get("Title")
        return isinstance(title, str) and title.strip().casefold() in wanted
    entity = properties.get("EntityType")
    return isinstance(entity, str) and entity.lower() in _SENDER_ENTITIES
