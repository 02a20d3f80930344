"""Every kind of escalation has its recovery documented: a row of the README's "When a case
escalates" table. Every escalation in the code names a kind (``Outcomes.escalate`` requires
one, mypy --strict checks every call), so a new kind without a row fails here."""

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.escalation_kinds import EscalationKind
from remediation.entrypoints.report import case_details
from remediation.service.journaling import CaseRecorder
from remediation.service.outcomes import Outcomes
from tests.fakes import FakeTenant
from tests.journal_cases import seed

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(?P<kind>[a-z_]+)` \|(?P<rest>.*)\|$")


def table_rows() -> list[tuple[str, list[str]]]:
    """The table's rows as (kind, the other cells)."""
    text = README.read_text(encoding="utf-8")
    _, found, after = text.partition("\n## When a case escalates\n")
    assert found, "the README has no section 'When a case escalates'"
    section = after.split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        matched = ROW.match(line)
        if matched:
            rows.append((matched["kind"], [cell.strip() for cell in
                                           matched["rest"].split(" | ")]))
    return rows


def test_every_kind_of_escalation_has_a_row_in_the_readme() -> None:
    documented = {kind for kind, _ in table_rows()}
    assert documented == {kind.value for kind in EscalationKind}


def test_every_row_says_what_the_reason_is_what_to_do_and_what_follows() -> None:
    for kind, cells in table_rows():
        assert len(cells) == 4 and all(cells), (kind, cells)


def test_status_of_an_account_points_at_the_row_of_its_escalation() -> None:
    at = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    case = Case(case_id="20260105-0000abcd", user="rob@contoso.com", state=CaseState.ESCALATED,
                created_at=at, updated_at=at, reason="circuit breaker open: ...",
                steps=(Step("escalated", StepStatus.INFO, at, "circuit breaker open: ...",
                            {"kind": "circuit_breaker"}),))

    shown = case_details(case).splitlines()

    assert shown[-1].split() == ["what", "to", "do:", "the", "README's", '"When', "a", "case",
                                 'escalates",', "kind", "circuit_breaker"]


async def test_a_crash_right_after_the_escalation_still_leaves_its_kind() -> None:
    """The kind is saved with the state: a worker that dies between saving ``escalated``
    and journaling the ``escalated`` step leaves a case that still says what to do."""
    tenant = FakeTenant()
    recorder = CaseRecorder(tenant.journal, tenant.clock)
    outcomes = Outcomes(recorder, tenant.scheduler, None, notify_escalations=False)
    now = tenant.clock.now()
    await seed(tenant.journal, Case(case_id="20240501-0000abcd", user="rob@contoso.com",
                                       state=CaseState.RECEIVED, created_at=now,
                                       updated_at=now))
    journal_step = tenant.journal.add_step

    async def dies_on_the_escalated_step(case_id: str, step: Step) -> None:
        if step.name == "escalated":
            raise RuntimeError("the worker died")
        await journal_step(case_id, step)

    tenant.journal.add_step = dies_on_the_escalated_step  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await outcomes.escalate("20240501-0000abcd", "remediation gave up after 5 "
                                "deliveries: Graph 503", kind=EscalationKind.GAVE_UP)

    case = await tenant.journal.get_case("20240501-0000abcd")
    assert case is not None and case.state is CaseState.ESCALATED
    assert not [step for step in case.steps if step.name == "escalated"]
    assert case.escalation_kind == "gave_up"
    assert case_details(case).splitlines()[-1].split()[-2:] == ["kind", "gave_up"]
