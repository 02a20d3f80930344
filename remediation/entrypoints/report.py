"""How cases are shown to people (tables) and to tools (JSON).

The journal keeps text from outside as it came (rule names, Exchange and Graph messages,
approvers, addresses); every cell and line a person reads passes through ``shown`` first, so
none of it can clear the screen, retitle the terminal or forge a line. JSON stays exact:
``json.dumps`` escapes every control character.
"""

import json
import shutil
import textwrap
from datetime import UTC, datetime
from typing import Any

from remediation.domain.cases import Case, CaseState, StepStatus
from remediation.domain.display import shown
from remediation.domain.sources import SourceHealth
from remediation.entrypoints.kill_switch import paused_json, paused_line
from remediation.service.progress import changes
from remediation.service.status import StatusView

# Generous: a cell or line is cut only when it is absurd, never in ordinary use.
CELL_LIMIT, TEXT_LIMIT = 256, 4000

_SHORT = {
    "lookup_user": "found", "reset_password": "password reset", "revoke_sessions":
    "sessions revoked", "unblock": "unblocked", "schedule_verification": "checks scheduled",
}


def cases_as_json(cases: list[Case]) -> str:
    return json.dumps([_case_json(case) for case in cases], indent=2)


def status_as_json(view: StatusView) -> str:
    """``status --json --with-total``: whether paused (``paused``: who, why, since, or
    null), the cases and how many matched, by state, and each source of the poll with its
    last success and last failure."""
    return json.dumps({"paused": paused_json(view.paused),
                       "total": view.total, "shown": len(view.cases),
                       "counts": {state.value: n for state, n in sorted(view.counts.items())},
                       "sources": [health.to_dict() for health in view.sources],
                       "cases": [_case_json(case) for case in view.cases]}, indent=2)


def _case_json(case: Case) -> dict[str, Any]:
    body = case.to_dict()
    body["steps"] = [step.to_dict() for step in case.steps]
    return body


def summary(case: Case) -> str:
    """One line: what was done, then how it ended."""
    done = [_SHORT[s.name] for s in case.steps if s.status is StepStatus.DONE and s.name in _SHORT]
    unblock = case.done("unblock")
    if unblock is not None and not unblock.data.get("listed", True):
        done[done.index("unblocked")] = "was not listed"
    merged = sum(1 for s in case.steps if s.name == "merged")
    checks = [s for s in case.steps if s.name.startswith("verify_") and s.status is StepStatus.DONE]
    parts = [", ".join(done)] if done else []
    if checks:
        listed = sum(1 for s in checks if s.data.get("listed") and not s.data.get("reblocked"))
        parts.append(f"{len(checks)} check(s), {listed} still listed" if listed else
                     f"{len(checks)} check(s)")
    if merged:
        parts.append(f"{merged} duplicate request(s) merged")
    if case.listed_address and case.listed_address != case.user:
        parts.append(f"listed as {case.listed_address}")
    if case.alert_ids and case.state is not CaseState.REJECTED:
        parts.append(f"{len(case.alert_ids)} Defender alert(s)")
    hygiene = case.done("mailbox_hygiene")
    if hygiene is not None and hygiene.data.get("findings"):
        verb = "reported" if hygiene.data.get("mode") == "report" else "disabled/cleared"
        parts.append(f"mailbox: {len(hygiene.data['findings'])} planted rule(s)/forwarding "
                     f"{verb}")
    if case.state is not CaseState.VERIFIED and case.state.is_final and case.reason:
        parts.append(f"reason: {case.reason}")
    return shown("; ".join(parts), TEXT_LIMIT) or "-"


def cases_as_table(cases: list[Case], width: int | None = None) -> str:
    width = width or max(100, shutil.get_terminal_size((140, 24)).columns)
    rows = [("CASE", "USER", "STATE", "SOURCE", "WHAT HAPPENED")]
    rows += [(_cell(c.case_id), _cell(c.user), c.state.value, _cell(c.source), summary(c))
             for c in cases]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        head = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4]))
        wrapped = textwrap.wrap(row[4], max(30, width - len(head) - 2)) or [""]
        lines.append(f"{head}  {wrapped[0]}")
        lines += [" " * (len(head) + 2) + more for more in wrapped[1:]]
    return "\n".join(lines)


def case_details(case: Case) -> str:
    lines = [f"case {_cell(case.case_id)}  {_cell(case.user)}  {case.state.value}"
             + (f"  ({shown(case.reason, TEXT_LIMIT)})" if case.reason else "")]
    if case.alert_ids:
        lines.append(f"  alerts: {shown(', '.join(case.alert_ids), TEXT_LIMIT)}")
    told = False
    for step in case.steps:
        lines.append(f"  {step.at:%Y-%m-%d %H:%M:%S}  {_cell(step.name):<22} "
                     f"{step.status.value:<8} {shown(step.detail, TEXT_LIMIT)}")
        kind = step.data.get("kind") if step.name == "escalated" else None
        if isinstance(kind, str):
            lines.append(_what_to_do(kind))
            told = True
    if not told and case.state is CaseState.ESCALATED and case.escalation_kind:
        lines.append(_what_to_do(case.escalation_kind))  # saved with the state; no step
    made = changes(case)
    if made:
        lines.append("  changes made, and what undoes each:")
        lines += [f"    - {change.what}: {change.undo}" for change in made]
    return "\n".join(lines)


def _what_to_do(kind: str) -> str:
    return f"{'':<23}what to do: the README's \"When a case escalates\", kind {_cell(kind)}"


def status_table(view: StatusView, width: int | None = None) -> str:
    """The cases (open and escalated first), under a line that counts them and over one
    that says how many were left out."""
    lines = [*_paused(view), *_sources(view)]
    if not view.total and not view.attention:
        return "\n".join([*lines, "no cases"])
    lines.append(_headline(view))
    if view.cases:
        lines.append(cases_as_table(view.cases, width))
    lines += _left_out(view)
    return "\n".join(lines)


def status_details(view: StatusView, user: str) -> str:
    """``status --user``: every step of each case, the same counts around them."""
    sources = "\n".join([*_paused(view), *_sources(view)][:-1])
    if not view.cases and not view.total:
        return "\n\n".join([*filter(None, [sources]), f"no cases for {_cell(user)}"])
    return "\n\n".join([*filter(None, [sources]), _headline(view),
                         *(case_details(case) for case in view.cases), *_left_out(view)])


def source_line(health: SourceHealth) -> str:
    """One source of the poll for people: when it last succeeded; FAILED, with the reason,
    when it failed since (or never succeeded)."""
    succeeded = ("never succeeded" if health.last_success is None
                 else f"last succeeded {_stamp(health.last_success)}")
    if health.ok:
        return f"{health.label}: {succeeded}"
    if health.last_failure is None:
        return f"{health.label}: NEVER SUCCEEDED (no poll has read it yet)"
    return (f"{health.label}: FAILED at {_stamp(health.last_failure)}: "
            f"{shown(health.last_failure_reason, TEXT_LIMIT)}; {succeeded}")


def _paused(view: StatusView) -> list[str]:
    """The kill switch's line, then an empty line (nothing when not paused)."""
    return [] if view.paused is None else [paused_line(view.paused), ""]


def _sources(view: StatusView) -> list[str]:
    """The sources' lines, then an empty line to set them apart (nothing without sources)."""
    return [*(source_line(health) for health in view.sources), ""] if view.sources else []


def _stamp(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _headline(view: StatusView) -> str:
    line = (f"{view.open} open, {view.escalated} escalated; "
            f"{view.total} case{'' if view.total == 1 else 's'}")
    if view.not_shown:
        line += f", {len(view.cases)} shown: open and escalated first, then the newest"
    return line


def _left_out(view: StatusView) -> list[str]:
    if not view.not_shown:
        return []
    return [f"{view.not_shown} more not shown: narrow with --state or --since, or raise "
            "--limit (--json lists every one)"]


def _cell(text: str) -> str:
    return shown(text, CELL_LIMIT) or "-"
