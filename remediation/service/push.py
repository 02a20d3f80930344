"""The HTTP push door and the Event Hub stream door, as plain functions.

What arrives is a hint, never the truth: each alert id is read back from Graph and matched
exactly as the poll does, so a forged or mistaken push cannot reset anybody's password.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from remediation.domain.errors import InvalidRequest, PermanentError, TransientError
from remediation.domain.push import pushed_alert_ids
from remediation.domain.requests import decode_json
from remediation.domain.streaming import alert_hints
from remediation.service.intake import Intake, IntakeReport

log = logging.getLogger(__name__)

MAX_PUSH_BYTES = 64 * 1024


@dataclass(frozen=True)
class PushResponse:
    status: int
    body: dict[str, Any]
    retry_after: int | None = None


def _refuse(status: int, message: str) -> PushResponse:
    return PushResponse(status, {"error": message})


async def handle_alert_push(body: bytes, content_type: str | None,
                            intake: Intake) -> PushResponse:
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return _refuse(415, "send the body as application/json")
    if len(body) > MAX_PUSH_BYTES:
        return _refuse(413, f"body is {len(body)} bytes; the limit is {MAX_PUSH_BYTES}")
    try:
        decoded = decode_json(body, limit=MAX_PUSH_BYTES)
    except InvalidRequest as error:
        return _refuse(400, error.reason)
    try:
        alert_ids = pushed_alert_ids(decoded)
    except InvalidRequest as error:
        return _refuse(400, error.reason)
    try:
        report = await intake.accept_hints(alert_ids)
    except TransientError as error:
        log.warning("alert push: %s", error.reason)
        return PushResponse(503, {"error": "Graph is unavailable; retry later"}, retry_after=60)
    except PermanentError as error:
        log.error("alert push: %s", error.reason)
        return _refuse(502, "could not read the alerts from Graph")
    return PushResponse(202, _report_body(report))


async def handle_stream_events(events: Iterable[bytes | str], intake: Intake,
                               titles: tuple[str, ...]) -> IntakeReport:
    """A batch of Defender XDR streaming events; unreadable events are logged and skipped."""
    hints, problems = alert_hints(events, titles)
    for problem in problems:
        log.warning("Defender stream: %s", problem)
    report = await intake.accept_hints(hints) if hints else IntakeReport()
    report.errors.extend(problems)
    return report


def _report_body(report: IntakeReport) -> dict[str, Any]:
    return {"queued": len(report.enqueued), "already_known": report.already_known,
            "rejected": report.rejected, "escalated": report.escalated,
            "not_confirmed": report.not_confirmed}
