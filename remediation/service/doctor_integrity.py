"""What ``remediation doctor`` (and the preflight function, which answers doctor's findings)
says of the journal's hash chain (``domain.journal_chain``): the newest ``RECENT`` cases are
read and checked, each step's hash, the order and gaps of the steps, the chain's head and the
case record's seal.

- Every one intact: one ``ok`` line, saying how many cases hold steps written before the
  chain (not verifiable: never a failure).
- A case whose journal was edited or had a step deleted outside the app: a ``FAIL`` line of
  its own, naming the case and each step (``journal integrity of case C: step 7
  (reset_password) was changed after it was written``), at most ``SHOWN`` of them and a line
  counting the others. The fix points at the copy the app cannot rewrite (the step records in
  Log Analytics) and at who could write the journal.
- A journal that cannot be read: one ``info`` line (the journal's own check fails already).
"""

from remediation.domain.cases import Case
from remediation.domain.display import shown
from remediation.domain.errors import RemediationError
from remediation.domain.journal_chain import ChainCheck, check_chain
from remediation.service.doctor import Finding, Report, Status
from remediation.service.ports import Journal

CHECK = "journal integrity"
RECENT = 200  # cases read, newest first: the check's cost stays bounded
SHOWN = 10  # tampered cases with a line of their own
_ID_SHOWN = 80
FIX = ("the journal was changed outside the app: compare the case with its step records in "
       "Log Analytics (logger remediation.journal), the copy the app cannot rewrite, and find "
       "who could write the journal (the table's Storage Table Data Contributor role "
       "assignments, or the file's owner); README, Journal integrity")


async def with_integrity_findings(report: Report, journal: Journal | None, *,
                                  recent: int = RECENT) -> Report:
    """``report`` and the journal's integrity lines, after the others; ``journal`` None:
    there is none yet (nothing was ever run), so nothing to check."""
    if journal is None:
        return _with(report, Finding(CHECK, Status.OK, "no journal yet: nothing to check"))
    try:
        cases = await journal.list_cases(limit=recent)
    except Exception as error:  # the journal's own check says why; the table must finish
        reason = error.reason if isinstance(error, RemediationError) else type(error).__name__
        return _with(report, Finding(
            CHECK, Status.INFO, f"unknown: the journal could not be read ({reason})"))
    checked = [(case, check_chain(case)) for case in cases]
    tampered = [(case, check) for case, check in checked if not check.intact]
    if not tampered:
        return _with(report, _intact(checked))
    findings = [_tampered(case, check) for case, check in tampered[:SHOWN]]
    if len(tampered) > SHOWN:
        others = len(tampered) - SHOWN
        findings.append(Finding(CHECK, Status.FAIL, f"{others} more of the newest "
                                f"{len(cases)} cases show the same; run `remediation report "
                                "CASE_ID` on each", FIX))
    return _with(report, *findings)


def _intact(checked: list[tuple[Case, ChainCheck]]) -> Finding:
    if not checked:
        return Finding(CHECK, Status.OK, "no case yet: nothing to check")
    count = len(checked)
    result = (f"the newest {count} cases are as the app wrote them" if count != 1
              else "the one case is as the app wrote it")
    older = sum(1 for _, check in checked if check.notes)
    if older:
        result += (f"; {older} of them hold{'s' if older == 1 else ''} steps or a record "
                   "written before the chain (not verifiable)")
    return Finding(CHECK, Status.OK, result)


def _tampered(case: Case, check: ChainCheck) -> Finding:
    return Finding(f"{CHECK} of case {shown(case.case_id, _ID_SHOWN)}", Status.FAIL,
                   "; ".join(check.problems), FIX)


def _with(report: Report, *findings: Finding) -> Report:
    return Report((*report.findings, *findings))
