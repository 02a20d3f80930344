"""Logging that cannot leak credentials, whatever a library puts in a message."""

import logging
import re
import sys

_PATTERNS = (
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer <redacted>"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), "<redacted-jwt>"),
    (re.compile(r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature|sig|client_secret)"
                r"=[^;&\s\"']+"), r"\1=<redacted>"),
    (re.compile(r"(?i)(\"?password\"?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|\S+)"), r"\1<redacted>"),
)


# Runs of the generated passwords' alphabet: redacted when they have all four classes,
# which is what a generated password looks like and ordinary log text almost never does.
_CANDIDATE = re.compile(r"[A-Za-z0-9!#$%&()*+,\-./:;<=>?@\[\]^_{|}~]{16,128}")
_CLASSES = (re.compile(r"[a-z]"), re.compile(r"[A-Z]"), re.compile(r"[0-9]"),
            re.compile(r"[!#$%&()*+,\-./:;<=>?@\[\]^_{|}~]"))


def _password_like(match: re.Match[str]) -> str:
    token = match.group(0)
    if "://" in token or not all(pattern.search(token) for pattern in _CLASSES):
        return token
    return "<redacted>"


def redact(text: str) -> str:
    """Mask bearer tokens, JWTs, keys in connection strings, ``password`` fields, and any
    token shaped like a generated password."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _CANDIDATE.sub(_password_like, text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message with secrets masked (defence in depth)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("remediation").setLevel(level)
