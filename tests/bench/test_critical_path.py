"""bench/harness.py's critical path: the longest chain of journaled steps, and the calls on
it from the tenant's record (reads sent side by side count once)."""

from datetime import UTC, datetime, timedelta

from bench import harness
from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.sandbox.state import RecordedRequest

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def case_with(*spans: tuple[str, float, float]) -> Case:
    steps = []
    for name, started, done in sorted(spans, key=lambda span: span[1]):
        steps.append(Step(name, StepStatus.STARTED, at(started)))
        steps.append(Step(name, StepStatus.DONE, at(done)))
    steps.sort(key=lambda step: step.at)
    return Case(case_id="c", user="u@contoso.com", state=CaseState.IN_PROGRESS,
                created_at=T0, updated_at=T0, steps=tuple(steps))


def call(seconds: float) -> RecordedRequest:
    return RecordedRequest(at=seconds, method="GET", path="/v1.0/users", query={}, body=None,
                           status=200, cmdlet=None, target=None, headers={})


def test_steps_one_after_another_cost_their_sum() -> None:
    case = case_with(("lookup_user", 0, 1), ("guardrails", 1, 3), ("reset_password", 3, 4))
    assert harness.critical_path(case, "reset_password") == 4
    assert harness.critical_path(case, "guardrails") == 3


def test_overlapping_steps_count_the_longer_branch_only() -> None:
    assert harness.longest_chain([(0, 1), (1, 4), (1, 2), (4, 5)]) == 5  # 1 + 3 + 1
    assert harness.longest_chain([]) == 0


def test_calls_sent_side_by_side_are_one_link_of_the_chain() -> None:
    # Three at once, then two at once once they were answered, then one: three links.
    calls = [call(0.0), call(0.001), call(0.002), call(0.06), call(0.061), call(0.12)]
    assert harness.calls_on_path(calls, 0.05) == 3
    assert harness.calls_on_path(calls, 0.05, until=0.07) == 2
    assert harness.calls_on_path([call(n * 0.06) for n in range(5)], 0.05) == 5
