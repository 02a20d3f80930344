"""The HTTP push door and the Event Hub stream door, as plain functions.

What arrives is a hint, never the truth: each alert id is read back from Graph and matched
exactly as the poll does, so a forged or mistaken push cannot reset anybody's password. An
alert may be named by its Graph id or by its provider's GUID (remediation.domain.alert_ids).
A push is answered 202 only when it started work: one that named only alerts Graph does not
know is refused (404, naming the accepted forms); one whose alerts need nothing is told so
(200).
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from remediation.domain.alert_ids import ACCEPTED_FORMS
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
    return _answer(report)


async def handle_stream_events(events: Iterable[bytes | str], intake: Intake,
                               titles: tuple[str, ...]) -> IntakeReport:
    """A batch of Defender XDR streaming events; unreadable events are logged and skipped."""
    hints, problems = alert_hints(events, titles)
    for problem in problems:
        log.warning("Defender stream: %s", problem)
    report = await intake.accept_hints(hints) if hints else IntakeReport()
    report.errors.extend(problems)
    return report


def _answer(report: IntakeReport) -> PushResponse:
    """202 only when the push started work (a request queued, a case opened for a person);
    404 naming the accepted forms when it named nothing Graph knows; else 200 saying why
    nothing was queued."""
    body = _report_body(report)
    if report.not_found:
        body["not_found"] = report.not_found
        body["error" if not _started(report) else "refused"] = (
            f"Graph knows no alert {', '.join(report.not_found)}; name an alert by "
            f"{ACCEPTED_FORMS}")
    if _started(report):
        return PushResponse(202, body)
    if report.not_found:
        return PushResponse(404, body)
    body["note"] = ("nothing queued: every alert named is already being handled, or is no "
                    "open outbound-spam alert (not_confirmed)")
    return PushResponse(200, body)


def _started(report: IntakeReport) -> bool:
    return bool(report.enqueued or report.rejected or report.escalated)


def _report_body(report: IntakeReport) -> dict[str, Any]:
    return {"queued": len(report.enqueued), "already_known": report.already_known,
            "rejected": report.rejected, "escalated": report.escalated,
            "not_confirmed": report.not_confirmed}
