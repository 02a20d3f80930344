"""The settings' lines of ``remediation doctor`` (``service/doctor_settings.py``) and the
closing line that counts warnings (``entrypoints/doctor.summary``), without a tenant: the
sandbox runs of the same lines are in tests/integration/test_doctor_settings.py."""

from datetime import UTC, datetime

from remediation.domain.cases import CaseState
from remediation.entrypoints.doctor import summary
from remediation.service.doctor import Finding, Report, Status
from remediation.service.doctor_settings import with_settings_findings
from tests.fakes import FakeJournal
from tests.journal_cases import make_case, seed

GROUP = "3c9f2a61-8d4b-4c1e-9f0a-6b7d2e5c8a14"
EMPTY = Report(())


class UnreadableJournal(FakeJournal):
    async def list_cases(self, *args: object, **kwargs: object) -> list[object]:  # type: ignore[override]
        raise TimeoutError("the table did not answer")


def by_check(report: Report) -> dict[str, Finding]:
    return {finding.check: finding for finding in report.findings}


async def test_dry_run_and_approve_get_no_mode_line_here() -> None:
    for mode in ("dry-run", "approve"):
        report = await with_settings_findings(EMPTY, {GROUP}, mode, None)
        assert set(by_check(report)) == {"protected groups"}


async def test_a_journal_that_cannot_be_read_may_be_a_first_run() -> None:
    report = await with_settings_findings(EMPTY, {GROUP}, "enforce", UnreadableJournal())

    finding = by_check(report)["mode"]
    assert finding.status is Status.WARN
    assert finding.result == ("enforce, and whether any case has been planned could not be "
                              "read (TimeoutError): this may be a first run")
    assert "REMEDIATION_MODE=dry-run" in finding.fix


async def test_a_working_case_is_no_finished_one() -> None:
    journal = FakeJournal()
    await seed(journal, make_case("20240501-00000001", state=CaseState.AWAITING_APPROVAL,
                                  at=datetime(2024, 5, 1, tzinfo=UTC)))

    report = await with_settings_findings(EMPTY, {GROUP}, "enforce", journal)

    assert by_check(report)["mode"].status is Status.WARN


def test_the_closing_line_counts_warnings_and_never_calls_them_failures() -> None:
    ok = Finding("x", Status.OK, "")
    warn = Finding("y", Status.WARN, "", "decide")
    fail = Finding("z", Status.FAIL, "", "fix")
    assert summary(Report((ok,))) == "everything needed is in place"
    assert summary(Report((ok, warn, warn))) == (
        "everything needed is in place, with 2 warnings: read each WARN line before you "
        "switch it on")
    assert Report((ok, warn)).ready
    assert summary(Report((fail,))) == (
        "not everything needed is in place: 1 check(s) failed, 0 could not be verified; "
        "apply each fix, then run doctor again")
