"""``remediation report --since/--state``: the cases of a period, counted, from the journal.

How many cases by state; how long from each case's first signal (the block's listing time
or its first Defender alert, whichever came first, as Exchange and Graph gave them; else when
the case opened: ``first_signal``) to its password reset (step
``reset_password`` done) and to its unblock (step ``unblock`` done having removed a block:
a case whose account was not listed unblocked nothing and is not counted); p50, p95
(nearest rank) and the longest of each; and the escalations by kind (escalated cases, and
closed ones: they escalated before a person closed them).
"""

from collections import Counter
from collections.abc import Collection, Iterable
from datetime import datetime

from remediation.domain.cases import Case, CaseState
from remediation.service.first_signal import first_signal
from remediation.service.journaling import RESET, UNBLOCK
from remediation.service.ports import Journal
from remediation.service.report_model import PeriodReport, Timing

ESCALATED = (CaseState.ESCALATED, CaseState.CLOSED)


async def period_report(journal: Journal, *, since: datetime | None,
                        states: Collection[CaseState] | None, now: datetime) -> PeriodReport:
    """Every case created at or after ``since`` (all when None) in one of ``states`` (any
    when None), read from ``journal`` and counted."""
    cases = await journal.list_cases(None, states=states, since=since)
    return summarise(cases, since=since, states=states, now=now)


def summarise(cases: Iterable[Case], *, since: datetime | None,
              states: Collection[CaseState] | None, now: datetime) -> PeriodReport:
    """``cases`` counted (see the module)."""
    counts: Counter[str] = Counter()
    escalations: Counter[str] = Counter()
    to_reset: list[float] = []
    to_unblock: list[float] = []
    for case in cases:
        counts[case.state.value] += 1
        if case.state in ESCALATED:
            escalations[case.escalation_kind or "not recorded"] += 1
        start, _ = first_signal(case)
        reset = case.done(RESET)
        if reset is not None:
            to_reset.append(max(0.0, (reset.at - start).total_seconds()))
        unblock = case.done(UNBLOCK)
        if unblock is not None and unblock.data.get("listed", True):
            to_unblock.append(max(0.0, (unblock.at - start).total_seconds()))
    order = [state.value for state in CaseState]
    return PeriodReport(
        generated_at=now, since=since,
        states=None if states is None else tuple(s.value for s in CaseState if s in states),
        counts={state: counts[state] for state in order if counts[state]},
        to_reset=Timing(tuple(to_reset)), to_unblock=Timing(tuple(to_unblock)),
        escalations=dict(sorted(escalations.items(), key=lambda kv: (-kv[1], kv[0]))))
