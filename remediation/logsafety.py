"""Logging that cannot leak credentials, whatever a library puts in a message.

Two defences: every password this process generates is remembered for an hour, and any
secret given to ``remember_secret`` (the webhook URL) for the life of the process, in memory
only, and masked wherever it appears; and patterns mask bearer tokens, JWTs, keys in
connection strings, ``password`` fields, and short runs shaped like a generated password.

The same ``redact`` runs on everything the journal stores and everything commented or posted
(``redacted_data`` for step data), not only on log lines: a service's error text may quote
what we sent it.
"""

import logging
import re
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

from remediation.domain.passwords import recent_secrets

_PATTERNS = (
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer <redacted>"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), "<redacted-jwt>"),
    (re.compile(r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature|sig|client_secret)"
                r"=[^;&\s\"']+"), r"\1=<redacted>"),
    (re.compile(r"""(?i)(["']?password["']?\s*[:=]\s*)("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\S+)"""),
     r"\1<redacted>"),
)

_SYMBOLS = r"!#$%&()*+,\-./:;<=>?@\[\]^_{|}~"
# A whole run of the generated passwords' alphabet, 16 to 40 long (generated ones have 24):
# longer runs are URLs, ids and key=value lists, not passwords.
_CANDIDATE = re.compile(rf"(?<![A-Za-z0-9{_SYMBOLS}])[A-Za-z0-9{_SYMBOLS}]{{16,40}}"
                        rf"(?![A-Za-z0-9{_SYMBOLS}])")
_CLASSES = (re.compile(r"[a-z]"), re.compile(r"[A-Z]"), re.compile(r"[0-9]"),
            re.compile(rf"[{_SYMBOLS}]"))
_ORDINARY = re.compile(r"@|://|^\w+=\w*(;\w+=\w*)+$")


# Secrets given by configuration, masked for as long as the process lives (never forgotten,
# unlike generated passwords, whose reset takes seconds).
_KEPT: set[str] = set()
_KEPT_LOCK = threading.Lock()
_MIN_PART = 12  # a shorter path would mask ordinary text


def remember_secret(value: str) -> None:
    """Mask ``value`` wherever ``redact`` runs, from now on and for the life of the process
    (e.g. a webhook URL with its key). For a URL, its path and query are masked on their own
    too: an error may quote the request line without the host."""
    parts = {value}
    try:
        url = urlsplit(value)
    except ValueError:
        url = None
    if url is not None and url.scheme and url.netloc:
        tail = url.path + (f"?{url.query}" if url.query else "")
        parts.update(part for part in (tail, url.path, url.query) if len(part) >= _MIN_PART)
    with _KEPT_LOCK:
        _KEPT.update(part for part in parts if part)


def _password_like(match: re.Match[str]) -> str:
    token = match.group(0)
    if _ORDINARY.search(token) or not all(pattern.search(token) for pattern in _CLASSES):
        return token
    return "<redacted>"


def redact(text: str) -> str:
    """``text`` with every known secret and everything shaped like one masked."""
    with _KEPT_LOCK:
        kept = list(_KEPT)
    for secret in sorted((*recent_secrets.current(), *kept), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "<redacted>")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _CANDIDATE.sub(_password_like, text)


def redacted_data(value: Any) -> Any:
    """JSON-like ``value`` with ``redact`` applied to every string in it (keys are ours)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redacted_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redacted_data(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redacted_data(item) for item in value)
    return value


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message with secrets masked (defence in depth)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed call: logging reports it itself, as without the filter
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                                           "%H:%M:%S"))
    handler.addFilter(RedactingFilter())
    # The journal's own records (service/telemetry.py) are for the telemetry exporter only:
    # `status` shows the journal.
    handler.addFilter(lambda record: record.name != "remediation.journal")
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("remediation").setLevel(level)
