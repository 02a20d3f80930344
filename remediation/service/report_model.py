"""The shapes of ``remediation report``: plain data built from the journal, which the
renderers (``entrypoints/case_report_render.py``) turn into Markdown, HTML or JSON.

Every string here is exact, as the journal keeps it (outside text included: rule names,
addresses, service messages), and masked once more by ``logsafety.redact`` (``redacted``) in
case the journal holds anything shaped like a secret. Escaping belongs to each renderer.

A report starts with a list of header facts (``Fact``: a label and a value). Anything later
work wants to state about the whole record (its integrity, say) is one more fact:
``CaseReport.with_fact``.
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from remediation.logsafety import redact


@dataclass(frozen=True)
class Note:
    """A named detail of an item (``label`` is a lower-case key, e.g. ``undo``, ``why``).
    ``ours``: our own text (the README's advice), Markdown with `code` spans and *emphasis*;
    otherwise outside text, shown escaped."""

    label: str
    value: str
    ours: bool = False


@dataclass(frozen=True)
class Item:
    """One line of a section: what (``text``), when (``at``, UTC; None when not recorded),
    and its details."""

    text: str
    at: datetime | None = None
    notes: tuple[Note, ...] = ()


@dataclass(frozen=True)
class Section:
    """A titled list of items, or of parts (sub-sections); ``none`` is what to say when it
    holds nothing. ``key`` names it in JSON."""

    key: str
    title: str
    items: tuple[Item, ...] = ()
    none: str = "nothing"
    parts: tuple["Section", ...] = ()


@dataclass(frozen=True)
class Fact:
    label: str
    value: str


@dataclass(frozen=True)
class CaseReport:
    """One case: its header ``facts``, then ``sections`` in reading order; ``case`` is the
    journal's record (its fields, exact, go to JSON), ``generated_at`` when the report was
    made."""

    case_id: str
    generated_at: datetime
    facts: tuple[Fact, ...]
    sections: tuple[Section, ...]
    case_fields: dict[str, object]

    def with_fact(self, label: str, value: str) -> "CaseReport":
        """This report with one more header fact (after the others), masked like the rest."""
        return replace(self, facts=(*self.facts, Fact(redact(label), redact(value))))


@dataclass(frozen=True)
class Timing:
    """Durations (seconds) of the cases that reached a step, from each one's first signal;
    the percentiles are nearest-rank (the smallest value with at least p % of them at or
    below it), None when no case reached the step."""

    seconds: tuple[float, ...]

    def percentile(self, p: float) -> float | None:
        return percentile(self.seconds, p)

    @property
    def longest(self) -> float | None:
        return max(self.seconds) if self.seconds else None


@dataclass(frozen=True)
class PeriodReport:
    """The cases created in a period (``since``: None for all) in the ``states`` asked for
    (None: every state): how many by state, how long from the first signal to the password
    reset and to the unblock, and the escalations by kind."""

    generated_at: datetime
    since: datetime | None
    states: tuple[str, ...] | None
    counts: dict[str, int]
    to_reset: Timing
    to_unblock: Timing
    escalations: dict[str, int]
    facts: tuple[Fact, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def with_fact(self, label: str, value: str) -> "PeriodReport":
        return replace(self, facts=(*self.facts, Fact(redact(label), redact(value))))


def percentile(values: tuple[float, ...] | list[float], p: float) -> float | None:
    """Nearest rank: the value at rank ceil(p/100 · n) of the sorted values (1-based); None
    for no values. ``p`` in (0, 100]."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-p * len(ordered) // 100))  # ceil without floats going astray
    return ordered[int(rank) - 1]


def stamp(moment: datetime) -> str:
    """A time for people: ``2026-01-05 09:30:00 UTC``."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def redacted(section: Section) -> Section:
    """``section`` with every string masked by ``redact`` (texts, notes, parts)."""
    return replace(section, title=redact(section.title), none=redact(section.none),
                   items=tuple(replace(item, text=redact(item.text), notes=tuple(
                       replace(note, value=redact(note.value)) for note in item.notes))
                       for item in section.items),
                   parts=tuple(redacted(part) for part in section.parts))
