"""What ``remediation status`` selects: newest first, and for people the cases that need
watching (open) or a human (escalated) on top, so no flood of other cases can hide them.

Tools get every matching case, newest first, unless they ask for fewer; people get a page
(``TABLE_LIMIT`` rows unless they say otherwise) with the counts that tell them what the page
left out. Both get each source of the poll with its last success and last failure, so a
source that stopped answering is seen before any case, and before everything the kill switch
(``remediation pause``) when it is on.
"""

import heapq
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from remediation.domain.cases import Case, CaseState
from remediation.domain.pause import Paused
from remediation.domain.sources import Source, SourceHealth
from remediation.service.ports import Journal
from remediation.service.sources import source_health

OPEN_STATES = frozenset(state for state in CaseState if not state.is_final)
ON_TOP = OPEN_STATES | {CaseState.ESCALATED}
TABLE_LIMIT = 50


@dataclass(frozen=True)
class StatusQuery:
    """``user``: one account, by any of its names (normalised); ``states``: any of these (all
    when None); ``since``: created at or after; ``limit``: at most this many cases (all when
    None); ``sources``: the sources the poll reads, shown even when nothing is on record."""

    user: str | None = None
    states: frozenset[CaseState] | None = None
    since: datetime | None = None
    limit: int | None = None
    sources: tuple[Source, ...] = ()


@dataclass(frozen=True)
class StatusView:
    cases: list[Case]
    # Every case matching the query but its limit, by state (states with none left out).
    counts: dict[CaseState, int] = field(default_factory=dict)
    # Open and escalated cases of the user and time asked for, whatever ``states`` chose.
    attention: dict[CaseState, int] = field(default_factory=dict)
    sources: list[SourceHealth] = field(default_factory=list)
    paused: Paused | None = None  # the kill switch, shown before anything else

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def not_shown(self) -> int:
        return max(0, self.total - len(self.cases))

    @property
    def open(self) -> int:
        return sum(n for state, n in self.attention.items() if state in OPEN_STATES)

    @property
    def escalated(self) -> int:
        return self.attention.get(CaseState.ESCALATED, 0)


async def newest_cases(journal: Journal, query: StatusQuery) -> StatusView:
    """For tools: the matching cases newest first (all unless ``query.limit``), and counts."""
    users = await _users(journal, query.user)
    cases = await _list(journal, users, query.states, query.since, query.limit)
    counts = await _count(journal, users, query.since)
    return StatusView(cases, _chosen(counts, query.states), _chosen(counts, ON_TOP),
                      await source_health(journal, query.sources), await journal.pause_state())


async def cases_for_people(journal: Journal, query: StatusQuery) -> StatusView:
    """For people: open and escalated cases first, then the others, newest first within
    each, ``query.limit`` in all (``TABLE_LIMIT`` when None)."""
    limit = TABLE_LIMIT if query.limit is None else query.limit
    wanted = frozenset(CaseState) if query.states is None else query.states
    users = await _users(journal, query.user)
    first = await _list(journal, users, wanted & ON_TOP, query.since, limit)
    rest: list[Case] = []
    if len(first) < limit:
        rest = await _list(journal, users, wanted - ON_TOP, query.since, limit - len(first))
    counts = await _count(journal, users, query.since)
    return StatusView([*first, *rest], _chosen(counts, query.states), _chosen(counts, ON_TOP),
                      await source_health(journal, query.sources), await journal.pause_state())


async def _users(journal: Journal, name: str | None) -> tuple[str | None, ...]:
    """Whose cases: everyone's (None), or the ``user`` of each case of the account that
    goes by ``name`` (a case is journaled under the account's primary address once the
    directory gave it, and under the name its request gave before that)."""
    if name is None:
        return (None,)
    return tuple(sorted(await journal.users_known_as(name) | {name}))


async def _list(journal: Journal, users: tuple[str | None, ...],
                states: Collection[CaseState] | None, since: datetime | None,
                limit: int | None) -> list[Case]:
    """The newest ``limit`` cases of all ``users`` together, newest first."""
    lists = [await journal.list_cases(user, states=states, since=since, limit=limit)
             for user in users]
    merged = heapq.merge(*lists, key=lambda case: case.created_at, reverse=True)
    return list(merged)[:limit]


async def _count(journal: Journal, users: tuple[str | None, ...],
                 since: datetime | None) -> dict[CaseState, int]:
    counts: Counter[CaseState] = Counter()
    for user in users:
        counts.update(await journal.count_cases(user, since=since))
    return dict(counts)


def _chosen(counts: dict[CaseState, int],
            states: Collection[CaseState] | None) -> dict[CaseState, int]:
    return {state: n for state, n in counts.items() if states is None or state in states}
