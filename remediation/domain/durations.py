"""Durations written the way operators write them in app settings: ``90s``, ``15m``, ``1h``."""

import re
from datetime import timedelta
from itertools import pairwise

# ASCII digits only: ``\d`` would also take "٣" (and float() reads it as 3).
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# No duration anything here waits, looks back or keeps is longer; the bound also keeps
# ``99999999999d`` (beyond what timedelta holds) a refusal rather than an OverflowError.
LONGEST_DURATION = timedelta(days=3650)


class DurationTooLong(ValueError):
    """A well-formed duration longer than its bound."""


def parse_duration(text: str, longest: timedelta = LONGEST_DURATION) -> timedelta:
    """Parse one duration such as ``30s``, ``2m``, ``1h`` or ``1d``; DurationTooLong when it
    is longer than ``longest`` (at most LONGEST_DURATION), ValueError when it is no
    duration."""
    match = _DURATION.fullmatch(text.lower())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use a number with s, m, h or d, e.g. 1h)")
    amount, unit = match.groups()
    seconds = float(amount) * _UNIT_SECONDS[unit]  # inf for a few hundred digits: too long
    bound = min(longest, LONGEST_DURATION)
    if not seconds <= bound.total_seconds():
        shown = f"{bound.days}d" if bound.days and not bound.seconds else format_duration(bound)
        raise DurationTooLong(f"{text.strip()!r} is longer than {shown}")
    return timedelta(seconds=seconds)


def parse_delays(text: str) -> tuple[timedelta, ...]:
    """Parse a comma-separated, strictly increasing list of positive durations."""
    delays = tuple(parse_duration(part) for part in text.split(",") if part.strip())
    if not delays:
        raise ValueError("at least one delay is needed, e.g. 1h,4h,24h")
    if any(delay <= timedelta(0) for delay in delays):
        raise ValueError(f"delays must be positive: {text!r}")
    if any(later <= earlier for earlier, later in pairwise(delays)):
        raise ValueError(f"delays must increase: {text!r}")
    return delays


def format_duration(delay: timedelta) -> str:
    """The shortest exact form: ``3600s`` becomes ``1h``."""
    seconds = delay.total_seconds()
    for unit in ("h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
