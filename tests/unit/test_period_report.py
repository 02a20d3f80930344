"""`remediation report --since/--state`: the cases of a period counted, checked against a
set computed by hand (issue 17, point 4)."""

import json
from datetime import UTC, datetime, timedelta

from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.entrypoints.period_report_render import (
    duration,
    period_html,
    period_json,
    period_markdown,
)
from remediation.service.period_report import period_report
from remediation.service.report_model import percentile
from tests.fakes import FakeJournal
from tests.journal_cases import seed
from tests.rendered import Page

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def case(n: int, state: CaseState, *, created: float = 0, block: float | None = None,
         alert: float | None = None, reset: float | None = None,
         unblock: float | None = None, listed: bool = True, kind: str | None = None) -> Case:
    """Case ``n`` created at T0 + ``created`` s, blocked / alerted / reset / unblocked at
    T0 + those seconds (None: not recorded). An alert's time is its first activity as Graph
    read it back (``alert_confirmed``), never the time the request claimed."""
    alert_ids = (f"alert-{n}",) if alert is not None else ()
    steps = [Step("received", StepStatus.INFO, at(created), "request", {
        "source": "alert" if alert is not None else "restricted-list",
        "alert_ids": list(alert_ids)})]
    if alert is not None:
        steps.append(Step("alert_confirmed", StepStatus.INFO, at(created), "read back", {
            "alert_id": alert_ids[0], "read_back": True,
            "first_activity": at(alert).isoformat()}))
    if reset is not None:
        steps.append(Step("reset_password", StepStatus.DONE, at(reset), "reset"))
    if unblock is not None:
        steps.append(Step("unblock", StepStatus.DONE, at(unblock), "unblocked",
                          {"listed": listed}))
    return Case(case_id=f"20260105-0000000{n}", user=f"user{n}@contoso.com", state=state,
                created_at=at(created), updated_at=at(created),
                block_created=at(block) if block is not None else None,
                alert_ids=alert_ids, escalation_kind=kind, steps=tuple(steps))


# From the first signal (the earlier of block and alert, else the creation):
#   to the reset:   60 (1), 150 (2: the alert 120 s before the block), 5 (3: no signal),
#                   600 (7)                     -> sorted 5, 60, 150, 600
#   to the unblock: 90 (1), 180 (2), 700 (7); 3 was not listed, so unblocked nothing
#                                               -> sorted 90, 180, 700
# Nearest rank: p50 of 4 values is the 2nd (60), p95 the 4th (600); of 3 values the 2nd
# (180) and the 3rd (700).
CASES = [
    case(1, CaseState.VERIFIED, created=30, block=0, reset=60, unblock=90),
    case(2, CaseState.VERIFIED, created=10, block=120, alert=0, reset=150, unblock=180),
    case(3, CaseState.VERIFIED, created=1000, reset=1005, unblock=1006, listed=False),
    case(4, CaseState.ESCALATED, created=20, block=0, kind="guardrail"),
    case(5, CaseState.ESCALATED, created=40, block=0, kind="circuit_breaker"),
    case(6, CaseState.ESCALATED, created=50, block=0, kind="circuit_breaker"),
    case(7, CaseState.CLOSED, created=60, block=0, reset=600, unblock=700, kind="reblocked"),
    case(8, CaseState.PLANNED, created=70, block=0),
    case(9, CaseState.REJECTED, created=80),
]
EARLIER = case(0, CaseState.VERIFIED, created=-86400, block=-86400, reset=-1, unblock=0,
               kind=None)


async def journal_with(cases: list[Case]) -> FakeJournal:
    journal = FakeJournal()
    for one in cases:
        await seed(journal, one)
    return journal


async def test_counts_times_and_escalations_of_a_period_match_the_hand_computed_set() -> None:
    journal = await journal_with([EARLIER, *CASES])

    report = await period_report(journal, since=T0, states=None, now=NOW)

    assert report.total == 9  # the case created before --since is left out
    assert report.counts == {"verified": 3, "escalated": 3, "rejected": 1, "planned": 1,
                             "closed": 1}
    assert sorted(report.to_reset.seconds) == [5, 60, 150, 600]
    assert (report.to_reset.percentile(50), report.to_reset.percentile(95),
            report.to_reset.longest) == (60, 600, 600)
    assert sorted(report.to_unblock.seconds) == [90, 180, 700]
    assert (report.to_unblock.percentile(50), report.to_unblock.percentile(95),
            report.to_unblock.longest) == (180, 700, 700)
    assert report.escalations == {"circuit_breaker": 2, "guardrail": 1, "reblocked": 1}


async def test_states_narrow_the_period_and_its_times() -> None:
    journal = await journal_with(CASES)

    report = await period_report(journal, since=None,
                                 states=frozenset({CaseState.VERIFIED}), now=NOW)

    assert report.counts == {"verified": 3} and report.states == ("verified",)
    assert sorted(report.to_reset.seconds) == [5, 60, 150]
    assert report.escalations == {}


async def test_each_format_says_the_same_numbers() -> None:
    report = await period_report(await journal_with(CASES), since=T0, states=None, now=NOW)

    text = period_markdown(report)
    assert "| password reset | 4 | 1 min 0 s | 10 min 0 s | 10 min 0 s |" in text
    assert "| unblock | 3 | 3 min 0 s | 11 min 40 s | 11 min 40 s |" in text
    assert "| circuit\\_breaker | 2 |" in text and "| verified | 3 |" in text
    body = json.loads(period_json(report))
    assert body["total"] == 9 and body["counts"]["escalated"] == 3
    assert body["to_reset"] == {"cases": 4, "p50_seconds": 60, "p95_seconds": 600,
                                "max_seconds": 600}
    assert body["to_unblock"]["p50_seconds"] == 180
    assert body["escalations"] == {"circuit_breaker": 2, "guardrail": 1, "reblocked": 1}
    page = Page(period_html(report))
    assert "10 min 0 s" in page.plain and "circuit_breaker" in page.plain
    assert not any(name in ("href", "src") for name, _ in page.attributes)


def test_nearest_rank_percentiles_and_durations() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    values = [float(n) for n in range(1, 21)]  # 1..20
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (
        10.0, 19.0, 20.0)
    assert [duration(s) for s in (None, 4.25, 59.9, 61, 3725, 90000)] == [
        "-", "4.2 s", "59.9 s", "1 min 1 s", "1 h 2 min", "1 d 1 h"]
