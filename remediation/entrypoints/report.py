"""How cases are shown to people (tables) and to tools (JSON)."""

import json
import shutil
import textwrap
from typing import Any

from remediation.domain.cases import Case, CaseState, StepStatus

_SHORT = {
    "lookup_user": "found", "reset_password": "password reset", "revoke_sessions":
    "sessions revoked", "unblock": "unblocked", "schedule_verification": "checks scheduled",
}


def cases_as_json(cases: list[Case]) -> str:
    return json.dumps([_case_json(case) for case in cases], indent=2)


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
    return "; ".join(parts) or "-"


def cases_as_table(cases: list[Case], width: int | None = None) -> str:
    width = width or max(100, shutil.get_terminal_size((140, 24)).columns)
    rows = [("CASE", "USER", "STATE", "SOURCE", "WHAT HAPPENED")]
    rows += [(c.case_id, c.user, c.state.value, c.source, summary(c)) for c in cases]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        head = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4]))
        wrapped = textwrap.wrap(row[4], max(30, width - len(head) - 2)) or [""]
        lines.append(f"{head}  {wrapped[0]}")
        lines += [" " * (len(head) + 2) + more for more in wrapped[1:]]
    return "\n".join(lines)


def case_details(case: Case) -> str:
    lines = [f"case {case.case_id}  {case.user}  {case.state.value}"
             + (f"  ({case.reason})" if case.reason else "")]
    if case.alert_ids:
        lines.append(f"  alerts: {', '.join(case.alert_ids)}")
    for step in case.steps:
        lines.append(f"  {step.at:%Y-%m-%d %H:%M:%S}  {step.name:<22} {step.status.value:<8}"
                     f" {step.detail}")
    return "\n".join(lines)
