"""How long an Azure Functions timer schedule can go without running: the alert poll's
look-back must be longer, or the alerts raised in the gap are never read.

The Functions timer reads NCRONTAB (atifaziz/NCrontab): six fields, ``second minute hour day
month day-of-week``. Each field is ``*``, a value, a range ``a-b``, any of those with a step
(``*/n``, ``a-b/n``, ``a/n`` meaning ``a`` to the field's end), or a comma list of them;
months and days of the week may be named (``Jan``, ``Mon``). NCrontab runs on a day that
matches the day *and* the day of the week (its ``GetNextOccurrence`` checks the day of the
week after the day), unlike Vixie cron's "either". Times are UTC (Functions on Linux, Flex
Consumption included, runs timers in UTC).

Anything else (a ``TimeSpan`` such as ``00:05:00``, which only an App Service plan honours;
Quartz's ``?``, ``L``, ``W``, ``#``; five fields) is refused with the reason rather than
guessed at.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise

DAY = 86400
# 1 January 2001 to 31 December 2028: 28 years, after which (between 1901 and 2099) the days
# of the week and the leap years repeat, so a gap across the end is one across the start.
_CYCLE_START, _CYCLE_DAYS = date(2001, 1, 1), 10227
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()


_FIELDS = (_Field("second", 0, 59), _Field("minute", 0, 59), _Field("hour", 0, 23),
           _Field("day", 1, 31), _Field("month", 1, 12, _MONTHS),
           _Field("day of the week", 0, 6, _WEEKDAYS))
EXAMPLE = "0 */2 * * * *"


@dataclass(frozen=True)
class Schedule:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 is Sunday

    def longest_interval(self) -> timedelta:
        """The longest time between two runs in a row (the wait from the last run of a day
        to the first of the next day it runs included). ValueError if it never runs."""
        times = sorted(hour * 3600 + minute * 60 + second for hour in self.hours
                       for minute in self.minutes for second in self.seconds)
        within = max((later - earlier for earlier, later in pairwise(times)),
                     default=0)
        overnight = DAY - times[-1] + times[0]
        return timedelta(seconds=max(within, (self._longest_days_apart() - 1) * DAY + overnight))

    def _longest_days_apart(self) -> int:
        """The most days from one day it runs to the next."""
        if (self.days, self.months, self.weekdays) == tuple(
                frozenset(range(f.low, f.high + 1)) for f in _FIELDS[3:]):
            return 1  # every day
        days = self._days_it_runs()
        if not days:
            raise ValueError("never runs (no date has that day, month and day of the week)")
        gaps = [later - earlier for earlier, later in pairwise(days)]
        return max([*gaps, days[0] + _CYCLE_DAYS - days[-1]])

    def _days_it_runs(self) -> list[int]:
        """The days of the 28-year cycle it runs on, as day numbers from its start."""
        found = []
        for number in range(_CYCLE_DAYS):
            day = _CYCLE_START + timedelta(days=number)
            if (day.day in self.days and day.month in self.months
                    and (day.weekday() + 1) % 7 in self.weekdays):
                found.append(number)
        return found


def parse(expression: str) -> Schedule:
    """The schedule an NCRONTAB expression describes; ValueError saying why it cannot be
    read (the text says what to write instead)."""
    text = expression.strip()
    if ":" in text and " " not in text:
        raise ValueError("a TimeSpan, which only an App Service plan runs (not Flex "
                         f"Consumption): write it in NCRONTAB, e.g. {EXAMPLE!r}")
    fields = text.split()
    if len(fields) != len(_FIELDS):
        raise ValueError(f"{len(fields)} field(s), not six: an Azure Functions NCRONTAB "
                         "expression is second minute hour day month day-of-week, e.g. "
                         f"{EXAMPLE!r}")
    values = [_values(field, spec) for field, spec in zip(fields, _FIELDS, strict=True)]
    return Schedule(*values)


def _values(text: str, field: _Field) -> frozenset[int]:
    found: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise ValueError(f"the {field.name} field {text!r}: the step in {part!r} must "
                                 "be a whole number from 1")
            step = int(step_text)
        if base == "*":
            start, end = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, part, field), _value(last, part, field)
        else:
            start = _value(base, part, field)
            end = field.high if slash else start
        if start > end:
            raise ValueError(f"the {field.name} field {text!r}: the range {part!r} runs "
                             "backwards")
        found.update(range(start, end + 1, step))
    return frozenset(found)


def _value(text: str, part: str, field: _Field) -> int:
    if text.isascii() and text.isdigit():
        if not field.low <= int(text) <= field.high:
            raise ValueError(f"the {field.name} field: {part!r} is outside {field.low}-"
                             f"{field.high}")
        return int(text)
    lowered = text.lower()
    named = [n for n, name in enumerate(field.names) if len(lowered) >= 3
             and name.startswith(lowered)]
    if len(named) == 1:
        return field.low + named[0]
    raise ValueError(f"the {field.name} field: {part!r} cannot be analysed; write it with "
                     "numbers" + (" or names (Jan, Mon)" if field.names else "") +
                     ", *, */n, ranges a-b and lists a,b")
