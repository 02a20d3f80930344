"""The demo's story in plain sentences, apart from the log lines: for each account, what
started its case (each Defender alert named next to it), what the robot did, how the case
ended and where its alerts stand; then the alerts no case took; then where to read a case's
full report (``remediation report``).

Built from the journal's cases (``service.progress``: what was done, as ``status`` says it)
and the sandbox tenant's alerts as they are after the run. Outside text is shown escaped
(``domain.display.shown``).
"""

import shlex
import textwrap
from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import Any

from remediation.domain.cases import Case, CaseState
from remediation.domain.display import shown
from remediation.service.progress import progress

WIDTH = 100
TEXT = 200  # a reason is cut here: the report has it whole
_SOURCES = {"restricted-list": "The Restricted users list sweep found it blocked",
            "unknown": "A queue message from an unknown source asked for it"}
_STATUS = {"new": "still new (untouched)", "inProgress": "in progress, with the robot's comments",
           "resolved": "resolved"}


def story(cases: list[Case], alerts: list[dict[str, Any]],
          storm: Collection[str] = ()) -> list[str]:
    """The "What happened" section: one paragraph per account (the ``storm`` accounts
    together), then the alerts no case took."""
    by_id = {str(alert.get("id")): alert for alert in alerts}
    lines = ["What happened", "============="]
    for case in cases:
        if case.user not in storm:
            lines += _paragraph(f"{_name(case.user)}: {_case(case, by_id)}")
    stormed = [case for case in cases if case.user in storm]
    if stormed:
        lines += _paragraph(_storm(stormed))
    taken = {alert_id for case in cases for alert_id in case.alert_ids}
    others = [alert for alert_id, alert in by_id.items() if alert_id not in taken]
    if others:
        lines += _paragraph("Alerts no case took (not an outbound-spam alert, or not one of "
                            "ours): " + "; ".join(
                                f"“{_text(alert.get('title'), 80)}” "
                                f"({_text(alert.get('serviceSource'), 40)}), "
                                f"{_alert_status(alert)}" for alert in others) + ".")
    return lines


def report_hint(cases: list[Case], journal: Path, shown_user: str) -> list[str]:
    """Where a case's full report can be read, as the exact command (the demo's journal in
    REMEDIATION_DB)."""
    chosen = next((case for case in cases if case.user == shown_user), cases[0] if cases
                  else None)
    if chosen is None:
        return []
    path = shlex.quote(str(journal.resolve()))
    intro = (f"The demo's journal stays in {journal.resolve()} (REMEDIATION_DB). Every case "
             "above has a full report (what was found, every change and how to undo it, what "
             "was verified, what is left for a person); "
             f"{_name(chosen.user)}'s, for one:")
    return ["", *textwrap.wrap(intro, WIDTH),
            f"  REMEDIATION_DB={path} remediation report {chosen.case_id}",
            "  (--html > case.html for a page to print, --json for tools; with the same "
            "REMEDIATION_DB, `remediation status` lists every case)"]


def _case(case: Case, alerts: dict[str, dict[str, Any]]) -> str:
    return " ".join(filter(None, (_started(case, alerts), _done(case), _ended(case),
                                  _alerts(case, alerts))))


def _started(case: Case, alerts: dict[str, dict[str, Any]]) -> str:
    titles = [f"“{_text(alerts[i].get('title'), 80)}”" for i in case.alert_ids if i in alerts]
    if case.source == "alert" and titles:
        many = "Defender alerts" if len(titles) > 1 else "A Defender alert"
        return f"{many} {' and '.join(titles)} started its case."
    if case.source == "manual":
        why = _reason_of_request(case)
        return "A manual request" + (f" (“{_text(why, 80)}”)" if why else "") + " started it."
    if case.source == "shared-mailbox":
        return ("The shared mailbox's case opened this one: its alert names this account, "
                "which can send as the mailbox.")
    return _SOURCES.get(case.source, f"A {_text(case.source, 40)} request started it") + "."


def _reason_of_request(case: Case) -> str:
    received = next((step for step in case.steps if step.name == "received"), None)
    reason = received.data.get("reason") if received is not None else None
    return str(reason).removeprefix("demo: ") if reason else ""


def _done(case: Case) -> str:
    if case.state in (CaseState.REJECTED, CaseState.SKIPPED) or not case.steps:
        return ""
    done = progress(case).done
    if not done:
        return "Nothing was changed in the tenant."
    return "Done: " + "; ".join(_text(line, 160) for line in done) + "."


def _ended(case: Case) -> str:
    reason = _text(case.reason or "", TEXT)
    if case.state is CaseState.VERIFIED:
        unblock = case.done("unblock")
        if (unblock is not None and unblock.data.get("listed", True)
                and case.unblocked_at is not None and case.ended_at is not None):
            after = (case.ended_at - case.unblocked_at).total_seconds()
            return f"Verified {after:.0f}s after the unblock: no longer blocked."
        return "Verified: not blocked, and nothing added came back."
    if case.state is CaseState.ESCALATED:
        return _sentence(f"Handed to a person ({case.escalation_kind or 'escalated'}): "
                         f"{reason}")
    if case.state is CaseState.REJECTED:
        return _sentence(f"Rejected: {reason}")
    return _sentence(f"Ended {case.state.value}" + (f": {reason}" if reason else ""))


def _sentence(text: str) -> str:
    return text if text.endswith((".", "…")) else f"{text}."


def _alerts(case: Case, alerts: dict[str, dict[str, Any]]) -> str:
    known = [alerts[i] for i in case.alert_ids if i in alerts]
    if not known:
        return ""
    return " ".join(f"Its alert “{_text(alert.get('title'), 80)}” is {_alert_status(alert)}."
                    for alert in known)


def _alert_status(alert: dict[str, Any]) -> str:
    status = str(alert.get("status") or "unknown")
    said = _STATUS.get(status, _text(status, 40))
    if alert.get("classification"):
        said += (f" as {_text(alert.get('classification'), 40)} "
                 f"({_text(alert.get('determination'), 40)})")
    return said


def _storm(cases: list[Case]) -> str:
    states = Counter(case.state for case in cases)
    names = sorted(case.user.split("@")[0] for case in cases)
    kinds = ", ".join(sorted({case.escalation_kind or "escalated" for case in cases
                              if case.state is CaseState.ESCALATED}))
    return (f"{names[0]}…{names[-1]} ({len(cases)} accounts blocked at once, found by the "
            f"sweep): {states[CaseState.VERIFIED]} secured and verified, "
            f"{states[CaseState.ESCALATED]} handed to a person"
            + (f" ({_text(kinds, 120)}: the hourly limit of password resets was reached)"
               if kinds == "circuit_breaker" else f" ({_text(kinds, 120)})" if kinds else "")
            + ".")


def _paragraph(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent="- ", subsequent_indent="  ")


def _name(user: str) -> str:
    return _text(user, 80)


def _text(value: object, limit: int) -> str:
    return shown("" if value is None else str(value), limit)
