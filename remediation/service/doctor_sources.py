"""What ``remediation doctor`` says about the poll's sources: a line per source, from the
journal every worker writes (``service/sources.py``): when it last succeeded, or when the
worker's last poll could not read it and why. A source the worker cannot read fails the
doctor like a missing permission does; one no poll has recorded yet (a deployment being
prepared) is only worth knowing.
"""

from collections.abc import Iterable
from datetime import UTC, datetime

from remediation.domain.display import shown
from remediation.domain.errors import RemediationError
from remediation.domain.sources import Source, SourceHealth
from remediation.service.doctor import Finding, Report, Status
from remediation.service.ports import Journal
from remediation.service.sources import source_health

REASON_SHOWN = 120  # characters of a failure's reason: the table stays one line a finding


async def with_source_findings(report: Report, journal: Journal | None,
                               expected: Iterable[Source]) -> Report:
    """``report`` and a line per source of the poll ``expected`` (and any other on record);
    ``journal`` None: there is none yet (nothing was ever polled)."""
    try:
        health = await source_health(journal, expected) if journal is not None else [
            SourceHealth(source) for source in expected]
    except Exception as error:  # the journal's own check says why; the table must finish
        reason = error.reason if isinstance(error, RemediationError) else type(error).__name__
        return Report((*report.findings, Finding(
            "last poll", Status.INFO, f"unknown: the journal could not be read ({reason})")))
    return Report((*report.findings, *(_finding(source) for source in health)))


def _finding(health: SourceHealth) -> Finding:
    check = f"last poll: {health.name_shown}"
    if health.ok and health.last_success is not None:
        return Finding(check, Status.OK, f"succeeded {_stamp(health.last_success)}")
    if health.last_failure is None:
        return Finding(check, Status.INFO, "no poll recorded yet")
    return Finding(check, Status.FAIL, f"failed {_stamp(health.last_failure)}: "
                   f"{shown(health.last_failure_reason, REASON_SHOWN)}",
                   "whole reason in `remediation status`; the next good poll clears this")


def _stamp(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
