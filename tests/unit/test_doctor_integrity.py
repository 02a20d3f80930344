"""Doctor's journal integrity lines: ok over the newest cases, a FAIL per tampered case naming
the step (a bounded number of them), info when the journal cannot be read; the check reads
a bounded number of cases."""

import json
from datetime import timedelta
from typing import Any

from remediation.domain.cases import Step, StepStatus
from remediation.domain.errors import TransientError
from remediation.service.doctor import Finding, Report, Status
from remediation.service.doctor_integrity import (
    CHECK,
    RECENT,
    SHOWN,
    with_integrity_findings,
)
from tests.fakes import START, FakeJournal
from tests.journal_cases import make_case

BEFORE = Report((Finding("journal", Status.OK, "readable"),))


async def journal_of(count: int) -> FakeJournal:
    journal = FakeJournal()
    for n in range(count):
        await journal.add_case(make_case(f"c{n:03d}", at=START + timedelta(minutes=n)))
        for name in ("lookup_user", "reset_password"):
            await journal.add_step(f"c{n:03d}", Step(name, StepStatus.DONE, START, "done"))
    return journal


def tamper(journal: FakeJournal, case_id: str) -> None:
    """Edit step 2's detail as stored (the fake keeps each step's JSON)."""
    steps = journal._steps[case_id]
    steps[1] = json.dumps({**json.loads(steps[1]), "detail": "nothing"})


async def test_every_case_intact_is_one_ok_line() -> None:
    report = await with_integrity_findings(BEFORE, await journal_of(3))

    assert report.findings[0] == BEFORE.findings[0]
    [line] = report.findings[1:]
    assert (line.check, line.status, line.result) == (
        CHECK, Status.OK, "the newest 3 cases are as the app wrote them")
    assert report.ready


async def test_a_tampered_case_fails_naming_the_case_and_the_step() -> None:
    journal = await journal_of(3)
    tamper(journal, "c001")

    report = await with_integrity_findings(BEFORE, journal)

    [line] = report.findings[1:]
    assert (line.check, line.status) == ("journal integrity of case c001", Status.FAIL)
    assert line.result == "step 2 (reset_password) was changed after it was written"
    assert "Log Analytics" in line.fix
    assert not report.ready


async def test_many_tampered_cases_are_shown_up_to_a_bound_then_counted() -> None:
    journal = await journal_of(SHOWN + 3)
    for n in range(SHOWN + 3):
        tamper(journal, f"c{n:03d}")

    findings = (await with_integrity_findings(BEFORE, journal)).findings[1:]

    assert len(findings) == SHOWN + 1
    assert findings[-1].check == CHECK
    assert findings[-1].result.startswith(f"3 more of the newest {SHOWN + 3} cases")


async def test_only_the_newest_cases_are_read() -> None:
    journal = await journal_of(5)
    asked: list[Any] = []
    listing = journal.list_cases

    async def list_cases(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs)
        return await listing(*args, **kwargs)

    journal.list_cases = list_cases  # type: ignore[method-assign]
    tamper(journal, "c000")  # the oldest, beyond the bound below

    report = await with_integrity_findings(BEFORE, journal, recent=4)

    assert asked == [{"limit": 4}]
    assert report.ready
    assert RECENT == 200


async def test_steps_before_the_chain_are_worth_knowing_never_a_failure() -> None:
    journal = await journal_of(2)
    cases = await journal.list_cases()
    journal.add_case_before_the_chain(make_case(
        "old", steps=(Step("received", StepStatus.INFO, START),)))
    older = await journal.get_case("old")

    async def list_cases(**kwargs: Any) -> Any:
        return [older, cases[1]]

    journal.list_cases = list_cases  # type: ignore[method-assign]

    [line] = (await with_integrity_findings(BEFORE, journal)).findings[1:]

    assert line.status is Status.OK
    assert line.result == ("the newest 2 cases are as the app wrote them; 1 of them holds "
                           "steps or a record written before the chain (not verifiable)")


async def test_a_journal_that_cannot_be_read_still_ends_the_table() -> None:
    journal = FakeJournal()

    async def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise TransientError("Table Storage answered 503")

    journal.list_cases = unavailable  # type: ignore[method-assign]

    [line] = (await with_integrity_findings(BEFORE, journal)).findings[1:]

    assert (line.status, line.result) == (
        Status.INFO, "unknown: the journal could not be read (Table Storage answered 503)")


async def test_no_journal_or_no_case_yet_is_nothing_to_check() -> None:
    [none] = (await with_integrity_findings(BEFORE, None)).findings[1:]
    [empty] = (await with_integrity_findings(BEFORE, FakeJournal())).findings[1:]

    assert (none.status, none.result) == (Status.OK, "no journal yet: nothing to check")
    assert (empty.status, empty.result) == (Status.OK, "no case yet: nothing to check")
