"""What Service Bus refuses, for both queue adapters: the Service Bus one makes our ids fit
before the SDK sees them, and the SQLite twin refuses whatever Azure would (Service Bus quotas,
https://learn.microsoft.com/azure/service-bus-messaging/service-bus-quotas).

- ``message_id`` and ``session_id``: at most 128 characters (azure-servicebus raises
  ValueError). An id of ours that is longer (an address of up to 254 characters, a request
  id of up to 200) travels as a stable digest, so one user is still one session and one
  request still one message id; the body keeps the real value.
- A session-enabled queue refuses a message without a session id.
- Standard tier: 256 KB per message, headers and properties included: counted in UTF-8
  bytes (body, application property names and values, the ids), never in characters.
- Duplicate detection keys on the message id within a window, whatever became of the
  message (completed, dead-lettered): the same window here as in infra/modules/servicebus.bicep.
"""

import hashlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

MAX_ID_LENGTH = 128
MAX_MESSAGE_BYTES = 256 * 1024
DUPLICATE_DETECTION_WINDOW = timedelta(days=1)  # duplicateDetectionHistoryTimeWindow 'P1D'
DIGEST_PREFIX = "sha256:"


class MessageTooLarge(ValueError):
    """The message exceeds what a Standard tier queue takes."""


def fitted_id(value: str) -> str:
    """``value`` when Service Bus takes it as a message or session id, else a stable digest
    (``sha256:`` and 64 hex digits), so the same value always maps to the same id."""
    if len(value) <= MAX_ID_LENGTH:
        return value
    return (DIGEST_PREFIX + hashlib.sha256(value.encode()).hexdigest())[:MAX_ID_LENGTH]


def session_id_for(user: str) -> str:
    """The session of a user's messages, the same on every queue: the normalised address
    (or object id), or its digest when it is longer than a session id may be."""
    return fitted_id(user)


def check_message(body: bytes, *, message_id: str, session_id: str | None,
                  properties: Mapping[str, Any] | None = None) -> None:
    """Raise ValueError (MessageTooLarge for the size) for what Service Bus would refuse."""
    for name, value in (("message_id", message_id), ("session_id", session_id)):
        if value is not None and len(value) > MAX_ID_LENGTH:
            raise ValueError(f"{name} is {len(value)} characters; Service Bus takes at most "
                             f"{MAX_ID_LENGTH}")
    size = len(body) + sum(_utf8(key) + _utf8(value) for key, value in
                           (properties or {}).items()) + _utf8(message_id) + _utf8(session_id)
    if size > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"message is {size} bytes; a Standard tier queue takes at most "
                              f"256 KB ({MAX_MESSAGE_BYTES} bytes) per message")


def _utf8(value: Any) -> int:
    """The bytes ``value`` takes on the wire (bytes as they are, anything else as UTF-8)."""
    if value is None:
        return 0
    if isinstance(value, bytes):
        return len(value)
    return len(str(value).encode("utf-8", "surrogatepass"))
