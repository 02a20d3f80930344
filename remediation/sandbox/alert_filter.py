"""The part of OData `$filter` that `alerts_v2` accepts, turned into a predicate on alerts."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from remediation.sandbox.clock import parse_timestamp

AlertPredicate = Callable[[dict[str, Any]], bool]

# alerts_v2 filters on these and nothing else (notably not on title).
TEXT_PROPERTIES = frozenset({
    "assignedTo", "classification", "determination", "severity", "serviceSource", "status",
})
TIME_PROPERTIES = frozenset({"createdDateTime", "lastUpdateDateTime"})

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne,
    "gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le,
}
_CLAUSE = re.compile(r"^(\w+)\s+(eq|ne|gt|ge|lt|le)\s+(.+)$", re.IGNORECASE)
_FUNCTION = re.compile(r"^\w+\(\s*(\w+)\s*,")


class QueryError(ValueError):
    """A query option Graph would refuse with 400."""


def parse_filter(text: str) -> AlertPredicate:
    """Predicate for a filter of clauses joined by `and`; QueryError if Graph would refuse it."""
    predicates = [_parse_clause(clause) for clause in _split_and(text)]
    return lambda alert: all(predicate(alert) for predicate in predicates)


def _split_and(text: str) -> list[str]:
    """Split on ` and ` outside quoted strings."""
    clauses: list[str] = []
    current: list[str] = []
    quoted = False
    words = re.split(r"(\s+)", text)
    for word in words:
        quoted ^= word.count("'") % 2 == 1
        if not quoted and word.lower() == "and":
            clauses.append("".join(current))
            current = []
        else:
            current.append(word)
    clauses.append("".join(current))
    return [clause.strip() for clause in clauses]


def _parse_clause(clause: str) -> AlertPredicate:
    while clause.startswith("(") and clause.endswith(")"):
        clause = clause[1:-1].strip()
    match = _CLAUSE.match(clause)
    if match is None:
        function = _FUNCTION.match(clause)
        if function is not None:
            raise _unsupported(function.group(1))
        raise QueryError(f"Invalid filter clause: syntax error in '{clause}'.")
    name, op, raw = match.group(1), match.group(2).lower(), match.group(3).strip()
    compare = _COMPARISONS[op]
    if name in TIME_PROPERTIES:
        bound = _time_literal(raw)

        def matches_time(alert: dict[str, Any]) -> bool:
            moment = _time_of(alert, name)
            return moment is not None and compare(moment, bound)

        return matches_time
    if name not in TEXT_PROPERTIES:
        raise _unsupported(name)
    if op not in ("eq", "ne"):
        raise QueryError(f"Invalid filter clause: operator '{op}' is not supported for '{name}'.")
    value = _text_literal(raw)
    return lambda alert: bool(compare(alert.get(name), value))


def _unsupported(name: str) -> QueryError:
    return QueryError(
        f"Invalid filter clause: the property '{name}' is not supported in $filter.")


def _time_literal(raw: str) -> datetime:
    try:
        return parse_timestamp(raw.strip("'"))
    except ValueError:
        raise QueryError(f"Invalid filter clause: '{raw}' is not a valid DateTimeOffset.") from None


def _text_literal(raw: str) -> str | None:
    if raw == "null":
        return None
    if len(raw) < 2 or not (raw.startswith("'") and raw.endswith("'")):
        raise QueryError(f"Invalid filter clause: '{raw}' is not a quoted string.")
    return raw[1:-1].replace("''", "'")


def _time_of(alert: dict[str, Any], name: str) -> datetime | None:
    value = alert.get(name)
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None
