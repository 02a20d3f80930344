"""What ``remediation run`` says: the progress line while it runs, the summary at its end.

Pure formatting and pacing (no I/O): ``runner`` reads the journal and the queue and hands
the numbers here, so the lines can be tested with any numbers and any clock.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from remediation.domain.cases import Case, CaseState

# At most one progress line every PROGRESS_EVERY, and only when something changed; the same
# line again after PROGRESS_HEARTBEAT (a person sees the worker is alive).
PROGRESS_EVERY = timedelta(seconds=10)
PROGRESS_HEARTBEAT = timedelta(minutes=5)


@dataclass(frozen=True)
class Snapshot:
    """The local runtime at one moment: cases not final in the journal, messages ready to be
    taken and in hand (locked), verification checks and other messages (retries, grouped
    circuit-breaker posts) scheduled, and when the earliest scheduled one is due (UTC)."""

    open_cases: int
    ready: int = 0
    in_hand: int = 0
    checks: int = 0
    other: int = 0
    next_at: datetime | None = None

    def line(self, now: datetime) -> str:
        """``waiting: 3 cases open, 5 checks scheduled, next at 11:42:10 UTC (in 59 min)``,
        or ``working (2 messages in hand, 4 ready): ...`` while messages are being taken."""
        head = "waiting" if not (self.ready or self.in_hand) else (
            f"working ({_count(self.in_hand, 'message')} in hand, {self.ready} ready)")
        return f"{head}: {self.open_cases_text()}, {self.scheduled_text(now)}"

    def open_cases_text(self) -> str:
        return f"{_count(self.open_cases, 'case')} open"

    def scheduled_text(self, now: datetime) -> str:
        """``5 checks scheduled, next at 11:42:10 UTC (in 59 min)``, or ``nothing
        scheduled``."""
        kinds = [_count(self.checks, "check")] if self.checks else []
        if self.other:
            kinds.append(_count(self.other, "other message"))
        if not kinds or self.next_at is None:
            return "nothing scheduled"
        return f"{' and '.join(kinds)} scheduled, next at {when(self.next_at, now)}"

    @property
    def key(self) -> tuple[int, int, int, int, int, str]:
        """What a new progress line must differ in (the time to the second)."""
        due = "" if self.next_at is None else f"{self.next_at:%Y-%m-%d %H:%M:%S}"
        return (self.open_cases, self.ready, self.in_hand, self.checks, self.other, due)


class Progress:
    """Decides when a progress line is printed: at most every ``every``, only when the
    snapshot changed, or every ``heartbeat`` when it did not. Times are seconds of any
    monotonic clock; the first line comes ``every`` after ``started`` at the earliest."""

    def __init__(self, started: float, *, every: timedelta = PROGRESS_EVERY,
                 heartbeat: timedelta = PROGRESS_HEARTBEAT) -> None:
        self._every = every.total_seconds()
        self._heartbeat = heartbeat.total_seconds()
        self._last_at = started
        self._last_key: tuple[int, int, int, int, int, str] | None = None

    @property
    def every(self) -> float:
        """Seconds between two looks at the runtime (no line comes sooner)."""
        return self._every

    def line(self, snapshot: Snapshot, at: float, now: datetime) -> str | None:
        """The line to print at monotonic time ``at`` (wall clock ``now``), or None."""
        since = at - self._last_at
        changed = snapshot.key != self._last_key
        if since < self._every or (not changed and since < self._heartbeat):
            return None
        self._last_at, self._last_key = at, snapshot.key
        return snapshot.line(now)


@dataclass(frozen=True)
class Ending:
    """How a run ended: ``signal`` names the signal that stopped it (None: it ran its
    course), ``until_idle`` whether it was to stop once idle, ``paused`` whether the kill
    switch held the work."""

    until_idle: bool
    signal: str | None = None
    paused: bool = False  # idle because the kill switch holds the work

    def headline(self, still_open: int) -> str:
        if self.paused:
            return (f"run summary: paused, {_count(still_open, 'case')} open; the work waits "
                    "for `remediation resume`")
        if self.signal is not None:
            before = " before it was idle" if self.until_idle else ""
            return (f"run summary: stopped by {self.signal}{before}; the queue keeps what is "
                    "left for the next `remediation run`")
        if still_open:
            return f"run summary: idle, {_count(still_open, 'case')} still open"
        return "run summary: idle, every case is final"


def summary(ending: Ending, worked_on: Iterable[Case], still_open: Iterable[Case],
            snapshot: Snapshot, now: datetime) -> list[str]:
    """The summary lines: how it ended, the cases this run worked on per state, their
    escalations by kind (``Case.escalation_kind``), and the cases not final in the journal
    (this run's or not) with what is scheduled."""
    cases, still = list(worked_on), list(still_open)
    kinds = Counter(case.escalation_kind or "unknown" for case in cases
                    if case.state is CaseState.ESCALATED)
    by_kind = ", ".join(f"{kind} {count}" for kind, count in sorted(
        kinds.items(), key=lambda item: (-item[1], item[0])))
    scheduled = snapshot.scheduled_text(now)
    lines = [ending.headline(len(still)),
             f"  cases worked on: {len(cases)}{_per_state(cases)}",
             f"  escalations by kind: {by_kind or 'none'}",
             f"  still open: {len(still)}{_per_state(still)}; {scheduled}" if still else
             "  still open: none" + ("" if scheduled == "nothing scheduled" else
                                     f"; {scheduled}")]
    waiting = [case for case in still if case.state is CaseState.AWAITING_APPROVAL]
    if waiting:  # nothing moves them but a person: say how
        lines.append(f"  waiting for a person: {_count(len(waiting), 'case')}; decide each "
                     "with `remediation approve CASE_ID` or `remediation reject CASE_ID "
                     "--reason WHY` (`remediation status --state awaiting_approval` lists "
                     "them)")
    return lines


def _per_state(cases: list[Case]) -> str:
    """`` (18 verified, 7 escalated)``, in the order of ``CaseState``; empty for none."""
    states = Counter(case.state for case in cases)
    shown = ", ".join(f"{states[state]} {state.value}" for state in CaseState if states[state])
    return f" ({shown})" if shown else ""


def when(at: datetime, now: datetime) -> str:
    """``11:42:10 UTC (in 59 min)``; the date too when it is not today's (UTC)."""
    shown = f"{at:%H:%M:%S}" if at.date() == now.date() else f"{at:%Y-%m-%d %H:%M:%S}"
    return f"{shown} UTC ({until(at - now)})"


def until(delta: timedelta) -> str:
    seconds = round(delta.total_seconds())
    if seconds <= 0:
        return "due now"
    if seconds < 90:
        return f"in {seconds} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"in {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"in {hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"in {days} d {hours} h"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
