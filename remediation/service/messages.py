"""Queue message bodies other than requests (those live in domain.requests)."""

import json
from dataclasses import dataclass
from typing import Any

from remediation.domain.errors import InvalidRequest
from remediation.domain.requests import MAX_BODY_BYTES, SCHEMA_VERSION, normalise_user


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


def parse_verification(body: bytes | str) -> VerificationCheck:
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidRequest("verification message is too large")
    try:
        fields: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InvalidRequest("verification message is not valid JSON") from None
    if not isinstance(fields, dict) or fields.get("kind") != "verify":
        raise InvalidRequest("not a verification message (kind must be 'verify')")
    case_id, attempt = fields.get("case_id"), fields.get("attempt")
    if not isinstance(case_id, str) or not 0 < len(case_id) <= 64:
        raise InvalidRequest("verification message needs a 'case_id'")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or not 0 <= attempt < 100:
        raise InvalidRequest("verification message needs an 'attempt' from 0 to 99")
    return VerificationCheck(case_id=case_id, user=normalise_user(fields.get("user")),
                             attempt=attempt)
