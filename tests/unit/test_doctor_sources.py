"""Doctor's lines for the poll's sources: ok, FAIL with the reason cut short, or info when no
poll is on record (a deployment being prepared is not broken)."""

from datetime import timedelta
from typing import Any

from remediation.domain.errors import TransientError
from remediation.domain.sources import Source
from remediation.service.doctor import Finding, Report, Status
from remediation.service.doctor_sources import REASON_SHOWN, with_source_findings
from tests.fakes import START, FakeJournal

BOTH = (Source.ALERTS, Source.RESTRICTED_USERS)
BEFORE = Report((Finding("journal", Status.OK, "readable"),))


async def test_a_line_per_source_after_the_other_checks() -> None:
    journal = FakeJournal()
    await journal.record_source("alerts", START)
    await journal.record_source("restricted_users", START, "Exchange: refused\n" + "x" * 500)

    report = await with_source_findings(BEFORE, journal, BOTH)

    assert report.findings[0] == BEFORE.findings[0]
    alerts, sweep = report.findings[1:]
    assert (alerts.check, alerts.status, alerts.result) == (
        "last poll: Defender alerts", Status.OK, "succeeded 2024-05-01 09:00:00 UTC")
    assert (sweep.check, sweep.status) == ("last poll: Restricted users sweep", Status.FAIL)
    assert sweep.result.startswith("failed 2024-05-01 09:00:00 UTC: Exchange: refused x")
    assert len(sweep.result) <= len("failed 2024-05-01 09:00:00 UTC: ") + REASON_SHOWN
    assert "remediation status" in sweep.fix
    assert not report.ready

    await journal.record_source("restricted_users", START + timedelta(minutes=2))
    assert (await with_source_findings(BEFORE, journal, BOTH)).ready


async def test_no_poll_on_record_is_worth_knowing_not_a_failure() -> None:
    report = await with_source_findings(BEFORE, FakeJournal(), (Source.ALERTS,))

    [_, alerts] = report.findings
    assert (alerts.status, alerts.result) == (Status.INFO, "no poll recorded yet")
    assert report.ready


async def test_a_journal_that_cannot_be_read_still_ends_the_table() -> None:
    journal = FakeJournal()

    async def unavailable(*args: Any) -> Any:
        raise TransientError("Table Storage answered 503")

    journal.source_health = unavailable  # type: ignore[method-assign]

    [_, line] = (await with_source_findings(BEFORE, journal, BOTH)).findings

    assert (line.status, line.result) == (
        Status.INFO, "unknown: the journal could not be read (Table Storage answered 503)")
