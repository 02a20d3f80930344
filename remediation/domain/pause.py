"""The kill switch: a pause every worker obeys, kept in the journal next to the reset breaker.

While it is on, no delivery changes anything in any tenant: each is kept (journaled on its
case once per pause) and tried again later (``service.pausing``). The journal keeps the pause
in force, if any, and the last one lifted with who lifted it and when (for an audit of the
switch, in the same row).
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from remediation.domain.errors import InvalidRequest
from remediation.domain.requests import checked_text

REASON_LIMIT = 1000  # characters of a pause's reason, like a request's


@dataclass(frozen=True)
class Paused:
    """The switch on: who turned it on (``by``), why (``reason``), since when (UTC)."""

    by: str
    reason: str
    since: datetime

    def to_dict(self) -> dict[str, str]:
        return {"by": self.by, "reason": self.reason, "since": _utc(self.since).isoformat()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Paused":
        return cls(by=str(raw["by"]), reason=str(raw["reason"]),
                   since=_utc(datetime.fromisoformat(str(raw["since"]))))

    def same_pause(self, raw: object) -> bool:
        """Is ``raw`` (a journaled pause's ``since``, ISO 8601) this pause? One pause is
        told from the next by the time it began."""
        try:
            return isinstance(raw, str) and _utc(datetime.fromisoformat(raw)) == _utc(
                self.since)
        except ValueError:
            return False


@dataclass(frozen=True)
class Resumed:
    """A pause lifted: who lifted it (``by``) and when (``at``, UTC)."""

    by: str
    at: datetime
    pause: Paused

    def to_dict(self) -> dict[str, Any]:
        return {"by": self.by, "at": _utc(self.at).isoformat(), "pause": self.pause.to_dict()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Resumed":
        return cls(by=str(raw["by"]), at=_utc(datetime.fromisoformat(str(raw["at"]))),
                   pause=Paused.from_dict(raw["pause"]))


@dataclass(frozen=True)
class KillSwitch:
    """What the journal keeps (one row): the pause in force, and the last one lifted."""

    paused: Paused | None = None
    last_resumed: Resumed | None = None

    def pause(self, paused: Paused) -> "KillSwitch":
        """On, unless it is on already: an earlier pause keeps its who, why and since."""
        return self if self.paused is not None else replace(self, paused=paused)

    def resume(self, by: str, at: datetime) -> "KillSwitch":
        """Off, remembering who lifted which pause; off already changes nothing."""
        if self.paused is None:
            return self
        return KillSwitch(paused=None, last_resumed=Resumed(by, _utc(at), self.paused))

    def to_dict(self) -> dict[str, Any]:
        return {"paused": None if self.paused is None else self.paused.to_dict(),
                "last_resumed": None if self.last_resumed is None
                else self.last_resumed.to_dict()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "KillSwitch":
        paused, resumed = raw.get("paused"), raw.get("last_resumed")
        return cls(paused=None if paused is None else Paused.from_dict(paused),
                   last_resumed=None if resumed is None else Resumed.from_dict(resumed))


def pause_reason(value: object) -> str:
    """Why the robot is paused: required, at most REASON_LIMIT characters, no control
    characters (it is shown on every case it holds). Raises InvalidRequest."""
    reason = checked_text(value, "reason", REASON_LIMIT)
    if reason is None:
        raise InvalidRequest("'reason' is blank: say why the robot is paused")
    return reason


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
