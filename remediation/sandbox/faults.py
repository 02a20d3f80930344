"""Fault rules: which requests to delay or answer with an error instead of the real handler."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints


@dataclass
class Fault:
    status: int | None = None
    method: str | None = None
    path: str | None = None
    cmdlet: str | None = None
    target: str | None = None
    times: int | None = 1
    retry_after: float | None = None
    delay: float = 0.0
    code: str = "ServiceUnavailable"
    message: str = "injected fault"
    # Exchange only: the .NET exception type put before the message in the error's cause,
    # and where the cause sits (``both``, ``details`` or ``innererror``).
    exception_type: str = ""
    cause_in: str = "both"
    # An answer that is not JSON: this text verbatim ("" for no body at all).
    raw_body: str | None = None
    # A WWW-Authenticate header (a 401 from Exchange carries only that).
    authenticate: str | None = None
    # A Location header: with a 3xx status, a redirect (a proxy or a wrong endpoint).
    location: str | None = None
    # The Content-Type of ``raw_body`` (e.g. application/json for a body that is not JSON).
    content_type: str = "text/html"
    # Let this many matching requests through before the fault applies (the second page...).
    after: int = 0
    # Answer the real handler's body one byte at a time, this many seconds apart: a server
    # that keeps a connection alive without ever finishing its answer.
    drip: float = 0.0
    # Run the real handler (its write sticks), then hold the answer this many seconds: a
    # client that gives up meanwhile never learns that its request succeeded.
    delay_after: float = 0.0
    # Run the real handler (its write sticks), then close the connection without an answer:
    # a load balancer or proxy that drops it once the request is in. The client cannot tell
    # whether the change was made.
    disconnect: bool = False
    # The share of matching requests the fault takes (0 to 1), drawn per request from the
    # tenant's seeded random (``SandboxTenant.seed_faults``): throttling and outages that
    # strike some calls and not others, the same way for the same seed and call order.
    chance: float = 1.0
    # Graph's throttling: once this fault answers, it answers every request it matches for
    # its ``retry_after`` seconds, whatever ``times`` and ``chance`` say ("When a throttling
    # threshold is exceeded, Microsoft Graph limits any further requests from that client
    # app for some time", https://learn.microsoft.com/graph/throttling).
    holds: bool = False
    held_until: float = field(default=0.0, repr=False)  # time.monotonic(); set when it holds

    def holding(self, now: float) -> bool:
        """Still refusing every matching request (``holds``, within its window)."""
        return self.holds and now < self.held_until

    def hold_from(self, now: float) -> None:
        if self.holds and self.retry_after is not None:
            self.held_until = now + self.retry_after

    def exhausted(self) -> bool:
        return self.times is not None and self.times <= 0

    def matches(self, method: str, path: str, cmdlet: str | None, target: str | None) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.path is not None and re.search(self.path, path) is None:
            return False
        if self.cmdlet is not None and (cmdlet or "").lower() != self.cmdlet.lower():
            return False
        return self.target is None or (target or "").lower() == self.target.lower()

    def consume(self) -> bool:
        """Spend one use; False while the fault still lets requests through (``after``)."""
        if self.after > 0:
            self.after -= 1
            return False
        if self.times is not None:
            self.times -= 1
        return True

    def headers(self) -> dict[str, str]:
        headers = {"WWW-Authenticate": self.authenticate} if self.authenticate else {}
        if self.location is not None:
            headers["Location"] = self.location
        if self.retry_after is not None:
            seconds = self.retry_after
            headers["Retry-After"] = (str(int(seconds)) if float(seconds).is_integer()
                                      else str(seconds))
        return headers

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        """Build from a JSON object with the field names; unknown names raise ValueError."""
        if not isinstance(data, dict):
            raise ValueError("a fault is a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        hints = get_type_hints(cls)
        fault = cls(**{name: _typed(name, value, hints[name]) for name, value in data.items()})
        if not 0.0 <= fault.chance <= 1.0:
            raise ValueError(f"fault chance must be between 0 and 1, not {fault.chance!r}")
        if fault.path is not None:
            try:
                re.compile(fault.path)
            except re.error as error:
                raise ValueError(f"fault path is not a regular expression: {error}") from None
        return fault


def _typed(name: str, value: Any, expected: Any) -> Any:
    # Only ``holds`` is a flag (a bool is no number here); JSON has one number type, so 3
    # stands for 3.0 too.
    if isinstance(value, bool):
        if expected is bool:
            return value
    else:
        if isinstance(value, expected):
            return value
        if isinstance(value, int) and isinstance(1.0, expected):
            return float(value)
    raise ValueError(f"fault field {name!r} cannot be {value!r}")
