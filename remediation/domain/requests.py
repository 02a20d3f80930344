"""Remediation requests: what arrives, from a person, an alert or the Restricted users sweep.

Parsing is strict on purpose: a queue is a public door for anyone with send rights, so
anything unexpected is refused with a reason instead of being guessed at.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from remediation.domain.alert_ids import ACCEPTED_FORMS, graph_alert_id
from remediation.domain.errors import InvalidRequest

MAX_BODY_BYTES = 16 * 1024
MAX_ALERT_IDS = 100
SCHEMA_VERSION = 1

# "shared-mailbox": a delegate's case, opened by the case of a blocked shared mailbox whose
# alert names it (service/shared_mailboxes.py).
SOURCES = ("manual", "alert", "restricted-list", "shared-mailbox")

_EMAIL = re.compile(
    r"^[a-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_OBJECT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TOKEN = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,200}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# ISO 8601 with a UTC offset, as Graph writes createdDateTime (up to 7 fractional digits).
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,7})?(?:Z|[+-]\d{2}:\d{2})$")
# Before this, a time is a placeholder (DateTime.MinValue, 1970), never an alert's creation.
EARLIEST_EVIDENCE = datetime(2000, 1, 1, tzinfo=UTC)

_TEXT_LIMITS = {"reason": 1000, "requested_by": 256}
_FIELDS = frozenset({"schema", "user", "reason", "requested_by", "alert_ids", "force", "source",
                     "request_id", "evidence_at"})


@dataclass(frozen=True)
class RemediationRequest:
    """Secure and unblock one account. ``user`` is a normalised address or object id."""

    user: str
    reason: str | None = None
    requested_by: str | None = None
    alert_ids: tuple[str, ...] = field(default_factory=tuple)
    force: bool = False
    source: str = "manual"
    request_id: str | None = None
    # When the evidence was created (an alert's createdDateTime): work a case did before it
    # cannot answer it. None when unknown (a person asking, the sweep).
    evidence_at: datetime | None = None
    # Which of ``alert_ids`` Microsoft confirmed as evidence: Graph read them back as
    # outbound-spam alerts about this account, with their creation time. Set by the workflow
    # from Graph's answers, never from a message, and never sent on a queue. None: nobody
    # read them back (all count, at the time the request gives).
    evidence_ids: tuple[str, ...] | None = None
    # Which of ``alert_ids`` could not be confirmed or refused now: Graph's read failed (a
    # timeout, throttling, a 5xx), the directory could not say whose they are, or Graph gave
    # no readable creation time. Neither evidence nor ignored: asked again later. Set by the
    # workflow, like ``evidence_ids``.
    unconfirmed_ids: tuple[str, ...] = ()

    def to_json(self) -> str:
        """The queue body: a schema version plus every field that is set."""
        body: dict[str, Any] = {"schema": SCHEMA_VERSION, "user": self.user, "source": self.source}
        if self.reason is not None:
            body["reason"] = self.reason
        if self.requested_by is not None:
            body["requested_by"] = self.requested_by
        if self.alert_ids:
            body["alert_ids"] = list(self.alert_ids)
        if self.force:
            body["force"] = True
        if self.request_id is not None:
            body["request_id"] = self.request_id
        if self.evidence_at is not None:
            body["evidence_at"] = self.evidence_at.astimezone(UTC).isoformat()
        return json.dumps(body, separators=(",", ":"))


def normalise_user(value: object) -> str:
    """Lower-case and check an address or object id; raise InvalidRequest if it is neither."""
    if not isinstance(value, str):
        raise InvalidRequest("'user' must be a string: an email address or an object id")
    user = value.strip().lower()
    if not user:
        raise InvalidRequest("'user' is empty")
    if len(user) > 254 or not (_EMAIL.fullmatch(user) or _OBJECT_ID.fullmatch(user)):
        raise InvalidRequest(
            f"'user' must be an email address or an object id, got {describe(value)}"
        )
    return user


def parse_request(body: bytes | str | Mapping[str, Any]) -> RemediationRequest:
    """Parse and validate a request body (JSON text, bytes, or an already decoded object)."""
    fields = body if isinstance(body, Mapping) else decode_json_object(body)
    unknown = sorted(str(name) for name in set(fields) - _FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(describe(name) for name in unknown)}")
    if "user" not in fields:
        raise InvalidRequest("'user' is required")
    schema = fields.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION or isinstance(schema, bool):
        raise InvalidRequest(f"unsupported schema {describe(schema)}; this worker reads schema 1")
    source = fields.get("source", "manual")
    if source not in SOURCES:
        raise InvalidRequest(
            f"'source' must be one of {', '.join(SOURCES)}, got {describe(source)}")
    force = fields.get("force", False)
    if not isinstance(force, bool):
        raise InvalidRequest("'force' must be true or false")
    if force and source != "manual":
        # Alerts and the sweep never force; a message claiming both is not to be believed.
        raise InvalidRequest("'force' is accepted only on manual requests (source 'manual'), "
                             f"not on a request with source {describe(source)}")
    request_id = fields.get("request_id")
    if request_id is not None and not (
            isinstance(request_id, str) and _TOKEN.fullmatch(request_id)):
        raise InvalidRequest("'request_id' must be up to 200 letters, digits or ._:@/+=-")
    request = RemediationRequest(
        user=normalise_user(fields["user"]),
        reason=_optional_text(fields, "reason"),
        requested_by=_optional_text(fields, "requested_by"),
        alert_ids=_alert_ids(fields.get("alert_ids")),
        force=force,
        source=source,
        request_id=request_id,
        evidence_at=_evidence_at(fields.get("evidence_at")),
    )
    if len(request.to_json().encode()) > MAX_BODY_BYTES:
        raise InvalidRequest(f"the request would exceed {MAX_BODY_BYTES} bytes on the queue")
    return request


def decode_json(body: bytes | str, limit: int = MAX_BODY_BYTES) -> Any:
    """Strict UTF-8 JSON within ``limit`` bytes, or InvalidRequest saying what is wrong.

    A leading byte-order mark is allowed: tools people send messages with add one, and the
    Service Bus extension (5.x, the ``[4.*, 5.0.0)`` bundle) passes it through to the
    function."""
    try:
        raw = body.encode() if isinstance(body, str) else body
        if len(raw) > limit:
            raise InvalidRequest(f"body is {len(raw)} bytes; the limit is {limit}")
        text = raw.decode("utf-8-sig")
    except UnicodeError:
        raise InvalidRequest("body is not valid JSON (not UTF-8)") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, and huge numbers
        raise InvalidRequest(f"body is not valid JSON ({type(error).__name__})") from None


def decode_json_object(body: bytes | str) -> Mapping[str, Any]:
    decoded = decode_json(body)
    if not isinstance(decoded, dict):
        raise InvalidRequest(f"body must be a JSON object, got {type(decoded).__name__}")
    return decoded


def _optional_text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    return checked_text(value, name, _TEXT_LIMITS[name])


def checked_text(value: object, name: str, limit: int) -> str | None:
    """Free text from outside (a reason, who asks or approves): a string of at most
    ``limit`` characters without control characters, stripped; None when blank. Anything
    else raises InvalidRequest naming the field ``name``."""
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string")
    if len(value) > limit:
        raise InvalidRequest(f"'{name}' is longer than {limit} characters")
    if _CONTROL.search(value):
        raise InvalidRequest(f"'{name}' contains control characters")
    return value.strip() or None


def parse_evidence_time(value: object) -> datetime | None:
    """An ISO 8601 time with a UTC offset (Graph's createdDateTime), in UTC; None when it is
    missing, unreadable or a placeholder (before 2000, as DateTime.MinValue)."""
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        return None
    try:
        moment = datetime.fromisoformat(value).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return moment if moment >= EARLIEST_EVIDENCE else None


def _evidence_at(value: object) -> datetime | None:
    if value is None:
        return None
    moment = parse_evidence_time(value)
    if moment is None:
        raise InvalidRequest("'evidence_at' must be an ISO 8601 time with a UTC offset, after "
                             f"2000 (an alert's createdDateTime), got {describe(value)}")
    return moment


def _alert_ids(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise InvalidRequest("'alert_ids' must be a list of strings")
    if len(value) > MAX_ALERT_IDS:
        raise InvalidRequest(f"'alert_ids' has more than {MAX_ALERT_IDS} entries")
    ids: list[str] = []
    for item in value:
        # The rule of every door that puts an id into a Graph URL; a provider GUID becomes
        # the Graph id it names, read back like any other.
        try:
            alert_id = graph_alert_id(item)
        except InvalidRequest:
            raise InvalidRequest(f"'alert_ids' entry {describe(item)} is not a valid alert "
                                 f"id: name an alert by {ACCEPTED_FORMS}") from None
        if alert_id not in ids:
            ids.append(alert_id)
    return tuple(ids)


def describe(value: object, limit: int = 60) -> str:
    """A short, printable rendering of untrusted input for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
