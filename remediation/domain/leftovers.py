"""What an attacker leaves behind in a taken-over account, and when it counts as theirs.

A password reset and a session revocation end the attacker's sessions; what they added to the
account lives on: a sign-in method of their own (it passes self-service password reset), a
consent to a mail-reading app (its refresh tokens survive the reset), a hidden inbox rule, a
mailbox permission. The *compromise window* is the stretch of time in which an addition counts
as the attacker's: ``COMPROMISE_WINDOW`` (default 7 days) before the trouble started, the
trouble starting at the earliest of the block's ``CreatedDatetime`` and its alerts' first
activity (``firstActivityDateTime`` of ``alerts_v2``). Additions older than the window are the
owner's and are kept.

Plain values, no I/O: the kinds that read and remove leftovers live in ``service.leftovers``
and the adapters.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

DEFAULT_COMPROMISE_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class CompromiseWindow:
    """``opens`` ≤ an addition's time ⇒ it counts as the attacker's. ``trouble_started`` is
    when the first sign of the compromise (a block, an alert's first activity) appeared;
    ``signs`` says which signs it was taken from ("block of x@y at …", "alert fa… first
    activity …")."""

    trouble_started: datetime
    opens: datetime
    signs: tuple[str, ...] = ()

    def contains(self, at: datetime | None) -> bool | None:
        """Whether ``at`` falls in the window (after it opened); None when ``at`` is unknown."""
        return None if at is None else at >= self.opens

    def to_dict(self) -> dict[str, Any]:
        return {"trouble_started": self.trouble_started.isoformat(),
                "opens": self.opens.isoformat(), "signs": list(self.signs)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "CompromiseWindow":
        return cls(datetime.fromisoformat(raw["trouble_started"]),
                   datetime.fromisoformat(raw["opens"]), tuple(raw.get("signs") or ()))


def compromise_window(signs: Iterable[tuple[str, datetime | None]], length: timedelta,
                      now: datetime) -> CompromiseWindow:
    """The window from ``signs`` (a description and a time each; unknown times are left
    out). With no dated sign at all the trouble is taken to start ``now``: the window then
    reaches ``length`` back from the moment the case acts, which still holds the attacker's
    additions of the last ``length``."""
    dated = [(what, at) for what, at in signs if at is not None]
    if not dated:
        return CompromiseWindow(now, now - length, ("no dated sign: the window ends now",))
    started = min(at for _, at in dated)
    return CompromiseWindow(started, started - length,
                            tuple(f"{what} at {at:%Y-%m-%d %H:%M:%S} UTC"
                                  for what, at in sorted(dated, key=lambda sign: sign[1])))


class Disposition(StrEnum):
    """What the case does with a leftover: removes it, only reports it, or keeps it (an
    older addition, the owner's)."""

    REMOVE = "remove"
    REPORT = "report"
    KEEP = "keep"


@dataclass(frozen=True)
class Leftover:
    """One thing found in the account.

    ``kind`` names its sort in Microsoft's words ("sign-in method", "consent grant", "inbox
    rule", "mailbox permission"); ``key`` identifies it to the service that holds it (never a
    secret); ``name`` is what a person reads (a phone number masked); ``added`` is when it was
    added, with ``added_from`` saying who said so ("createdDateTime", "audit log",
    "unknown"); ``why`` explains the disposition; ``undo`` is what a person does to restore it
    after a removal ("re-register …", "grant again …", "Enable-InboxRule …");
    ``snapshot`` holds enough to restore it, never a secret.
    """

    kind: str
    key: str
    name: str
    disposition: Disposition
    why: str
    added: datetime | None = None
    added_from: str = "unknown"
    undo: str = ""
    snapshot: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "name": self.name,
                "disposition": self.disposition.value, "why": self.why,
                "added": self.added.isoformat() if self.added else None,
                "added_from": self.added_from, "undo": self.undo, "snapshot": self.snapshot}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "Leftover":
        added = raw.get("added")
        return cls(raw["kind"], raw["key"], raw["name"], Disposition(raw["disposition"]),
                   raw.get("why", ""), datetime.fromisoformat(added) if added else None,
                   raw.get("added_from", "unknown"), raw.get("undo", ""),
                   dict(raw.get("snapshot") or {}))


def newly_added(found: Iterable[Leftover], known_keys: Iterable[str]) -> list[Leftover]:
    """What ``found`` holds that was not there when the case cleaned the account (keys it
    kept, removed or reported): the additions after the case acted."""
    known = set(known_keys)
    return [leftover for leftover in found if leftover.key not in known]


def mask_phone(number: str | None) -> str:
    """A phone number with all but its last two digits masked: ``+1 555 0100`` →
    ``+• ••• ••00``. Enough for a person to recognise it, not to call it."""
    if not number:
        return ""
    digits = sum(ch.isdigit() for ch in number)
    shown, seen = 2, 0
    masked = []
    for ch in number:
        if ch.isdigit():
            seen += 1
            masked.append(ch if seen > digits - shown else "•")
        else:
            masked.append(ch)
    return "".join(masked)
