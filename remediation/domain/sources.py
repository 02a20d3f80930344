"""The sources a poll reads, and what is kept of each: when it last succeeded, and its last
failure with the reason.

A poll reads Defender alerts (Graph ``alerts_v2``) and sweeps the Restricted users list
(Exchange ``Get-BlockedSenderAddress``). Either can be refused while the worker itself runs
fine, and the sweep is the only door for a block that raised no alert: a source that fails
must be seen by whoever looks, from any worker. So each outcome is kept in the journal, and
an outcome older than the one on record never replaces it (two workers poll at once; the
slower one may finish last).
"""

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

REASON_LIMIT = 1000


class Source(StrEnum):
    ALERTS = "alerts"
    RESTRICTED_USERS = "restricted_users"

    @property
    def name_shown(self) -> str:
        """The short name people read (doctor's narrow column)."""
        return _NAMES[self][0]

    @property
    def label(self) -> str:
        """The name people read, with what it calls (logs, stderr, status)."""
        return f"{_NAMES[self][0]} ({_NAMES[self][1]})"


_NAMES = {Source.ALERTS: ("Defender alerts", "Graph alerts_v2"),
          Source.RESTRICTED_USERS: ("Restricted users sweep", "Get-BlockedSenderAddress")}


def polled(*, sweep: bool) -> tuple[Source, ...]:
    """The sources a poll reads with SWEEP_RESTRICTED_USERS set to ``sweep``."""
    return (Source.ALERTS, Source.RESTRICTED_USERS) if sweep else (Source.ALERTS,)


@dataclass(frozen=True)
class SourceHealth:
    """What the journal holds of one source: the last success, the last failure and why."""

    source: str
    last_success: datetime | None = None
    last_failure: datetime | None = None
    last_failure_reason: str = ""

    @property
    def ok(self) -> bool:
        """Read at least once, and not failed since."""
        return self.last_success is not None and (
            self.last_failure is None or self.last_failure <= self.last_success)

    @property
    def label(self) -> str:
        return self._known.label if self._known else self.source

    @property
    def name_shown(self) -> str:
        return self._known.name_shown if self._known else self.source

    @property
    def _known(self) -> Source | None:
        return Source(self.source) if self.source in {s.value for s in Source} else None

    def with_outcome(self, at: datetime, failure: str | None = None) -> "SourceHealth":
        """This record after an outcome at ``at`` (a failure when ``failure`` is a reason):
        an outcome older than the one of its kind on record changes nothing."""
        if failure is None:
            if self.last_success is not None and at <= self.last_success:
                return self
            return replace(self, last_success=at)
        if self.last_failure is not None and at <= self.last_failure:
            return self
        return replace(self, last_failure=at, last_failure_reason=failure[:REASON_LIMIT])

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "ok": self.ok,
                "last_success": _iso(self.last_success), "last_failure": _iso(self.last_failure),
                "last_failure_reason": self.last_failure_reason or None}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "SourceHealth":
        return cls(source=str(raw["source"]), last_success=_time(raw.get("last_success")),
                   last_failure=_time(raw.get("last_failure")),
                   last_failure_reason=str(raw.get("last_failure_reason") or ""))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _time(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None
