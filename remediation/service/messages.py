"""Queue message bodies other than requests (those live in domain.requests)."""

import json
from dataclasses import dataclass
from typing import Any

from remediation.domain.errors import InvalidRequest
from remediation.domain.requests import (
    SCHEMA_VERSION,
    checked_text,
    decode_json,
    describe,
    normalise_user,
)


@dataclass(frozen=True)
class VerificationCheck:
    """Re-check case ``case_id`` (``attempt`` counts from 0 over VERIFY_DELAYS)."""

    case_id: str
    user: str
    attempt: int

    @property
    def message_id(self) -> str:
        """Stable, so a re-scheduled check is dropped by duplicate detection."""
        return f"{self.case_id}:verify:{self.attempt}"

    def to_json(self) -> str:
        return json.dumps({"schema": SCHEMA_VERSION, "kind": "verify", "case_id": self.case_id,
                           "user": self.user, "attempt": self.attempt}, separators=(",", ":"))


ALERT_PHASES = ("start", "verified", "escalated", "approval", "rejected", "closed")
# What each phase tells: the Defender alerts of the case (a comment, and for the robot's own
# phases a status), the escalation webhook, or both. ``approval`` is the "approval needed"
# post of a case that starts waiting; ``rejected`` and ``closed`` are a person's decisions.
COMMENTED_PHASES = frozenset({"start", "verified", "escalated", "rejected", "closed"})
POSTED_PHASES = frozenset({"escalated", "approval", "rejected", "closed"})
DECIDED_PHASES = frozenset({"rejected", "closed"})


@dataclass(frozen=True)
class AlertUpdate:
    """Bring the Defender alerts of case ``case_id`` up to date with ``phase``."""

    case_id: str
    user: str
    phase: str
    alert_count: int

    @property
    def message_id(self) -> str:
        """New alerts merged into a case change the count, and so the id."""
        return f"{self.case_id}:alerts:{self.phase}:{self.alert_count}"

    def to_json(self) -> str:
        return json.dumps({"schema": SCHEMA_VERSION, "kind": "alerts", "case_id": self.case_id,
                           "user": self.user, "phase": self.phase,
                           "alert_count": self.alert_count}, separators=(",", ":"))


# The session of every grouped circuit-breaker post (``BreakerPost``): one at a time, across
# every worker. No user's session id looks like it (an address has an @, an object id is a
# GUID).
BREAKER_SESSION = "circuit-breaker"


@dataclass(frozen=True)
class BreakerPost:
    """Post the grouped notice of the cases the circuit breaker holds, unless case
    ``case_id`` (held, its individual post skipped) was named in one already. Sent once per
    held case, scheduled a little after the hold (``breaker_posts``)."""

    case_id: str
    user: str

    def to_json(self) -> str:
        return json.dumps({"schema": SCHEMA_VERSION, "kind": "breaker_post",
                           "case_id": self.case_id, "user": self.user}, separators=(",", ":"))


FOLLOW_UP_KINDS = ("verify", "alerts", "breaker_post")


def parse_follow_up(body: bytes | str) -> VerificationCheck | AlertUpdate | BreakerPost:
    """A message of the verifications queue: a verification check, an alert update, or a
    grouped circuit-breaker post."""
    fields = decode_json(body)
    if not isinstance(fields, dict) or fields.get("kind") not in FOLLOW_UP_KINDS:
        raise InvalidRequest("not a verification message (kind must be 'verify', 'alerts' or "
                             "'breaker_post')")
    case_id = fields.get("case_id")
    if not isinstance(case_id, str) or not 0 < len(case_id) <= 64:
        raise InvalidRequest("verification message needs a 'case_id'")
    user = normalise_user(fields.get("user"))
    if fields["kind"] == "breaker_post":
        return BreakerPost(case_id=case_id, user=user)
    if fields["kind"] == "alerts":
        phase, count = fields.get("phase"), fields.get("alert_count", 0)
        if phase not in ALERT_PHASES:
            raise InvalidRequest(f"alert update needs a 'phase' of {', '.join(ALERT_PHASES)}")
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 1000:
            raise InvalidRequest("alert update needs an 'alert_count' from 0 to 1000")
        return AlertUpdate(case_id=case_id, user=user, phase=phase, alert_count=count)
    attempt = fields.get("attempt")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or not 0 <= attempt < 100:
        raise InvalidRequest("verification message needs an 'attempt' from 0 to 99")
    return VerificationCheck(case_id=case_id, user=user, attempt=attempt)


@dataclass(frozen=True)
class Approval:
    """Let case ``case_id`` (waiting in approve mode) proceed."""

    case_id: str
    user: str
    approved_by: str

    @property
    def message_id(self) -> str:
        return f"{self.case_id}:approve"

    def to_json(self) -> str:
        return json.dumps({"schema": SCHEMA_VERSION, "kind": "approve", "case_id": self.case_id,
                           "user": self.user, "approved_by": self.approved_by},
                          separators=(",", ":"))


APPROVER_LIMIT = 256


def parse_approval(fields: dict[str, Any]) -> Approval:
    """An approval message: the case, the user it names (which must be the case's: the
    workflow checks), and who approves, validated like any other text from outside."""
    case_id = fields.get("case_id")
    unknown = sorted(str(name) for name in set(fields) - {
        "schema", "kind", "case_id", "user", "approved_by"})
    if unknown:
        raise InvalidRequest("unknown field(s) in an approval: "
                             + ", ".join(describe(name) for name in unknown))
    if not isinstance(case_id, str) or not 0 < len(case_id) <= 64:
        raise InvalidRequest("an approval needs a 'case_id'")
    return Approval(case_id=case_id, user=normalise_user(fields.get("user")),
                    approved_by=approver(fields.get("approved_by", "unknown")))


def approver(value: object) -> str:
    """Who approves: a name of up to 256 characters without control characters."""
    name = checked_text(value, "approved_by", APPROVER_LIMIT)
    if name is None:
        raise InvalidRequest("'approved_by' is blank: name who approves")
    return name


def approval_in(body: bytes) -> Approval | None:
    """The approval a requests-queue message carries, or None for a remediation request."""
    try:
        fields = decode_json(body)
    except InvalidRequest:
        return None  # parse_request says what is wrong with it
    if isinstance(fields, dict) and fields.get("kind") == "approve":
        return parse_approval(fields)
    return None


@dataclass(frozen=True)
class Resume:
    """Take working case ``case_id`` on from its next step (the sweeper's message). It acts
    only when the case journaled ``token`` when the message was queued (``resume_queued``)."""

    case_id: str
    user: str
    token: str

    def to_json(self) -> str:
        return json.dumps({"schema": SCHEMA_VERSION, "kind": "resume", "case_id": self.case_id,
                           "user": self.user, "token": self.token}, separators=(",", ":"))


def resume_in(body: bytes) -> Resume | None:
    """The resume a requests-queue message carries, or None for another kind.

    Raises InvalidRequest for a resume without its fields."""
    try:
        fields = decode_json(body)
    except InvalidRequest:
        return None
    if not isinstance(fields, dict) or fields.get("kind") != "resume":
        return None
    case_id, token = fields.get("case_id"), fields.get("token")
    if not isinstance(case_id, str) or not 0 < len(case_id) <= 64:
        raise InvalidRequest("a resume needs a 'case_id'")
    if not isinstance(token, str) or not 0 < len(token) <= 64:
        raise InvalidRequest("a resume needs a 'token'")
    return Resume(case_id=case_id, user=normalise_user(fields.get("user")), token=token)
