"""Durations written the way operators write them in app settings: ``90s``, ``15m``, ``1h``."""

import re
from datetime import timedelta
from itertools import pairwise

# ASCII digits only: ``\d`` would also take "٣" (and float() reads it as 3).
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """Parse one duration such as ``30s``, ``2m``, ``1h`` or ``1d``."""
    match = _DURATION.fullmatch(text.lower())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use a number with s, m, h or d, e.g. 1h)")
    amount, unit = match.groups()
    return timedelta(seconds=float(amount) * _UNIT_SECONDS[unit])


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
