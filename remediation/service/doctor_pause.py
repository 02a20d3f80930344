"""What ``remediation doctor`` says of the kill switch, first: a deployment paused by
``remediation pause`` is not ready to change anything, so the pause is a ``FAIL`` finding (the
doctor exits 1) at the top of the table, and its line heads the output
(``entrypoints.doctor.render``). Not paused, it is one ``ok`` line.
"""

from datetime import UTC

from remediation.domain.display import shown
from remediation.domain.errors import RemediationError
from remediation.domain.pause import Paused
from remediation.service.doctor import Finding, Report, Status
from remediation.service.ports import Journal

CHECK = "kill switch"
_SHOWN = 200  # characters of who and why in the table (the first line has them whole)


async def with_pause_finding(report: Report, journal: Journal | None) -> Report:
    """``report`` with the kill switch's finding first; ``journal`` None: there is none yet
    (nothing was ever run), so nothing is paused."""
    try:
        paused = None if journal is None else await journal.pause_state()
    except Exception as error:  # the journal's own check says why; the table must finish
        reason = error.reason if isinstance(error, RemediationError) else type(error).__name__
        finding = Finding(CHECK, Status.UNVERIFIED,
                          f"unknown: the journal could not be read ({reason})",
                          "fix the journal (its own line says how), then run doctor again")
        return Report((finding, *report.findings))
    return Report((_finding(paused), *report.findings))


def pause_headline(report: Report) -> str | None:
    """The line that heads the doctor's output while paused (None when not paused)."""
    for finding in report.findings:
        if finding.check == CHECK and finding.status is Status.FAIL:
            return (f"{finding.result}: nothing will change in the tenant until "
                    "`remediation resume`")
    return None


def _finding(paused: Paused | None) -> Finding:
    if paused is None:
        return Finding(CHECK, Status.OK, "not paused")
    return Finding(CHECK, Status.FAIL,
                   f"PAUSED since {paused.since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC by "
                   f"{shown(paused.by, _SHOWN)}: {shown(paused.reason, _SHOWN)}",
                   "remediation resume --by NAME, once it is safe for the robot to act again")
