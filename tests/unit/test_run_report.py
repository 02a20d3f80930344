"""What `remediation run` prints: a progress line while it waits (cases open, checks
scheduled, the next one due), never a flood, and a summary at its end (cases per state,
escalations by kind). A fake clock: times are given, never waited for."""

from datetime import UTC, datetime, timedelta

from remediation.domain.cases import Case, CaseState
from remediation.entrypoints.run_report import Ending, Progress, Snapshot, summary

NOW = datetime(2026, 1, 5, 10, 43, 10, tzinfo=UTC)
EVERY, HEARTBEAT = timedelta(seconds=10), timedelta(minutes=5)


def snapshot(**changes: object) -> Snapshot:
    fields: dict[str, object] = {"open_cases": 3, "checks": 5,
                                 "next_at": NOW + timedelta(minutes=59)}
    fields.update(changes)
    return Snapshot(**fields)  # type: ignore[arg-type]


def case(n: int, state: CaseState, kind: str | None = None) -> Case:
    return Case(case_id=f"20260105-{n:08x}", user=f"user{n}@contoso.com", state=state,
                created_at=NOW, updated_at=NOW, escalation_kind=kind)


def test_the_waiting_line_says_cases_open_checks_scheduled_and_the_next_one_due() -> None:
    assert snapshot().line(NOW) == (
        "waiting: 3 cases open, 5 checks scheduled, next at 11:42:10 UTC (in 59 min)")
    assert snapshot(open_cases=1, checks=1, other=2,
                    next_at=NOW + timedelta(seconds=42)).line(NOW) == (
        "waiting: 1 case open, 1 check and 2 other messages scheduled, next at 10:43:52 UTC "
        "(in 42 s)")
    tomorrow = NOW + timedelta(hours=23, minutes=30)
    assert snapshot(next_at=tomorrow).line(NOW).endswith(
        "next at 2026-01-06 10:13:10 UTC (in 23 h 30 min)")
    assert snapshot(open_cases=0, checks=0, next_at=None).line(NOW) == (
        "waiting: 0 cases open, nothing scheduled")
    assert snapshot(ready=4, in_hand=2).line(NOW).startswith(
        "working (2 messages in hand, 4 ready): 3 cases open, 5 checks scheduled")


def test_a_line_at_most_every_ten_seconds_only_when_something_changed_or_after_five_minutes(
        ) -> None:
    progress = Progress(0.0, every=EVERY, heartbeat=HEARTBEAT)
    quiet = snapshot()

    assert progress.line(quiet, 5.0, NOW) is None  # too soon after the start
    assert progress.line(quiet, 10.0, NOW) is not None
    assert progress.line(snapshot(checks=4), 15.0, NOW) is None  # changed, but too soon
    assert progress.line(snapshot(checks=4), 20.0, NOW) == (
        "waiting: 3 cases open, 4 checks scheduled, next at 11:42:10 UTC (in 59 min)")
    # Nothing changes for an hour: a line every five minutes, not every ten seconds.
    printed = [at for at in range(30, 3630, 10)
               if progress.line(snapshot(checks=4), float(at), NOW) is not None]
    assert printed == list(range(320, 3630, 300))


def test_the_summary_counts_cases_per_state_and_escalations_by_kind() -> None:
    worked_on = [case(1, CaseState.VERIFIED), case(2, CaseState.VERIFIED),
                 case(3, CaseState.ESCALATED, "circuit_breaker"),
                 case(4, CaseState.ESCALATED, "circuit_breaker"),
                 case(5, CaseState.ESCALATED, "guardrail"),
                 case(6, CaseState.AWAITING_VERIFICATION)]
    still_open = [worked_on[-1]]

    lines = summary(Ending(until_idle=True), worked_on, still_open,
                    snapshot(open_cases=1, checks=2), NOW)

    assert lines == [
        "run summary: idle, 1 case still open",
        "  cases worked on: 6 (1 awaiting_verification, 2 verified, 3 escalated)",
        "  escalations by kind: circuit_breaker 2, guardrail 1",
        "  still open: 1 (1 awaiting_verification); 2 checks scheduled, next at 11:42:10 UTC "
        "(in 59 min)"]


def test_the_summary_of_a_run_stopped_by_ctrl_c_says_so() -> None:
    lines = summary(Ending(until_idle=True, signal="Ctrl-C (SIGINT)"), [], [],
                    snapshot(open_cases=0, checks=0, next_at=None), NOW)

    assert lines == [
        "run summary: stopped by Ctrl-C (SIGINT) before it was idle; the queue keeps what is "
        "left for the next `remediation run`",
        "  cases worked on: 0",
        "  escalations by kind: none",
        "  still open: none"]
    assert summary(Ending(until_idle=True), [], [], snapshot(open_cases=0, checks=0,
                                                             next_at=None), NOW)[0] == (
        "run summary: idle, every case is final")


def test_the_summary_of_a_run_the_kill_switch_held_says_it_waits_for_resume() -> None:
    waiting = [case(1, CaseState.RECEIVED)]
    lines = summary(Ending(until_idle=True, paused=True), waiting, waiting,
                    snapshot(open_cases=1, checks=0, other=1), NOW)

    assert lines[0] == ("run summary: paused, 1 case open; the work waits for "
                        "`remediation resume`")
    assert lines[3] == ("  still open: 1 (1 received); 1 other message scheduled, next at "
                        "11:42:10 UTC (in 59 min)")


def test_cases_waiting_for_a_person_end_the_summary_with_how_to_decide_them() -> None:
    """Approve mode: nothing moves a waiting case but a person, and the summary says how
    (before, it said only "2 cases still open" and exited 1)."""
    waiting = [case(1, CaseState.AWAITING_APPROVAL), case(2, CaseState.AWAITING_APPROVAL)]
    lines = summary(Ending(until_idle=True), waiting, waiting, snapshot(checks=0, next_at=None),
                    NOW)
    assert lines[-1] == (
        "  waiting for a person: 2 cases; decide each with `remediation approve CASE_ID` or "
        "`remediation reject CASE_ID --reason WHY` (`remediation status --state "
        "awaiting_approval` lists them)")
    verified = [case(3, CaseState.VERIFIED)]
    assert not any("waiting for a person" in line for line in summary(
        Ending(until_idle=True), verified, [], snapshot(checks=0, next_at=None), NOW))
