"""What the escalation channel and the Defender alerts are told about a person's decisions
(issue 16, point 1): a case that starts waiting for approval ("approval needed", with the
exact commands), and a case a person rejected or closed.

The same two formats as the escalation notice (``escalations``): ``teams``, an Adaptive Card
1.4 in the Workflows message envelope (TextBlock, FactSet, Action.OpenUrl only: a 1.5 card
posted by a flow is not displayed; the commands in a TextBlock with ``fontType`` Monospace,
a TextBlock property since schema 1.2, https://adaptivecards.io/explorer/TextBlock.html);
``slack``, ``{"text": ...}`` in mrkdwn with ``&``, ``<`` and ``>`` escaped
(https://api.slack.com/reference/surfaces/formatting#escaping). Text from
outside (the account, the plan, who decided and why) passes through ``shown``; the journal
holds it redacted already, and the post is redacted once more on its way out
(``Notifications``). No secret is ever part of a notice: the commands name the case only.

A Defender comment says who decided and why, and leaves the alert's status and
classification alone: closing or rejecting a case is a person's call about the robot's work,
not a verdict on the alert, and the robot never classifies an alert on a person's behalf.
"""

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from remediation.domain.cases import Case, CaseState
from remediation.domain.display import shown
from remediation.domain.durations import format_duration
from remediation.service.escalations import (
    ACCOUNT_LIMIT,
    CARD_SCHEMA,
    CARD_VERSION,
    LINK_LIMIT,
    REASON_LIMIT,
    case_link,
)
from remediation.service.settings import WorkflowSettings

NAME_LIMIT = 256
WAITING_PREFIX = "waiting for approval: "


def approve_command(case: Case) -> str:
    return f"remediation approve {case.case_id} --by YOUR_NAME"


def reject_command(case: Case) -> str:
    return f'remediation reject {case.case_id} --by YOUR_NAME --reason "WHY"'


def notice_payload(case: Case, phase: str, settings: WorkflowSettings) -> dict[str, Any]:
    """The JSON body to post for ``phase`` (``approval``, ``rejected``, ``closed``) of
    ``case``, in ``settings.webhook_format``."""
    title, facts, commands = _content(case, phase, settings)
    link = case_link(case, settings)
    if settings.webhook_format == "slack":
        return _slack_message(title, facts, commands, link)
    return _teams_message(title, facts, commands, link, phase)


def decision_comment(case: Case, phase: str) -> str:
    """The Defender comment on the alerts of a case a person rejected or closed."""
    by, why = decision_of(case)
    prefix = (f"Automated remediation, case {case.case_id} "
              f"({shown(case.user, ACCOUNT_LIMIT)}):")
    said = f"{shown(by, NAME_LIMIT)}: {shown(why, REASON_LIMIT).rstrip('.')}."
    if phase == "rejected":
        return (f"{prefix} rejected by {said} Nothing was changed in the tenant (no password "
                "reset, no unblock). The alert's status and classification are left to you.")
    kind = f" ({case.escalation_kind})" if case.escalation_kind else ""
    return (f"{prefix} closed by {said} The escalation{kind} was handled by a person; the "
            "alert's status and classification are left to you (the robot never classifies "
            "an alert on a person's behalf).")


def decision_of(case: Case) -> tuple[str, str]:
    """Who decided and why, as the decision's step journaled them (else as the case says)."""
    step = next((s for s in reversed(case.steps) if s.name == case.state.value
                 and "decided_by" in s.data), None)
    by = str(step.data["decided_by"]) if step is not None else (case.decided_by or "unknown")
    why = step.data.get("reason") if step is not None else None
    return by, str(why or case.reason or "no reason given")


def expires_at(case: Case, timeout: timedelta | None) -> datetime | None:
    """When a waiting case escalates (APPROVAL_TIMEOUT after it began to wait), if ever."""
    since = max((step.at for step in case.steps if step.name == "awaiting_approval"),
                default=case.updated_at)
    return None if timeout is None else since + timeout


def _content(case: Case, phase: str, settings: WorkflowSettings,
             ) -> tuple[str, list[tuple[str, str]], list[tuple[str, str]]]:
    """The title, the facts and the commands of a notice."""
    facts = [("Case", case.case_id), ("Account", shown(case.user, ACCOUNT_LIMIT))]
    if phase == "approval":
        plan = (case.reason or "").removeprefix(WAITING_PREFIX) or "see the journal"
        facts.append(("Plan", shown(plan, REASON_LIMIT)))
        until = expires_at(case, settings.approval_timeout)
        if until is not None:
            facts.append(("Expires", f"{until:%Y-%m-%d %H:%M} UTC (APPROVAL_TIMEOUT "
                          f"{format_duration(settings.approval_timeout or timedelta())}): "
                          "then it escalates, nothing changed"))
        return (f"Remediation case {case.case_id} waits for approval", facts,
                [("To approve", approve_command(case)), ("To reject", reject_command(case))])
    by, why = decision_of(case)
    verb = "Rejected" if phase == "rejected" else "Closed"
    facts += [(f"{verb} by", shown(by, NAME_LIMIT)), ("Reason", shown(why, REASON_LIMIT))]
    if phase == "rejected":
        facts.append(("Changed", "nothing: no change was made to the account"))
    else:
        escalated = next((s.detail for s in reversed(case.steps) if s.name == "escalated"), "")
        if escalated:
            facts.append(("Escalated for", shown(escalated, REASON_LIMIT)))
    title = (f"Remediation case {case.case_id} {phase} by {shown(by, NAME_LIMIT)}"
             if case.state in (CaseState.REJECTED, CaseState.CLOSED) else
             f"Remediation case {case.case_id} {phase}")
    return title, facts, []


def _teams_message(title: str, facts: list[tuple[str, str]], commands: list[tuple[str, str]],
                   link: str, phase: str) -> dict[str, Any]:
    if not _is_web_link(link):
        facts = [*facts, ("Journal", shown(link, LINK_LIMIT))]
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium",
         "color": "Warning" if phase == "approval" else "Default", "wrap": True},
        {"type": "FactSet", "facts": [{"title": name, "value": value}
                                      for name, value in facts]}]
    for label, command in commands:
        body += [{"type": "TextBlock", "text": label, "weight": "Bolder", "wrap": True},
                 {"type": "TextBlock", "text": command, "fontType": "Monospace",
                  "wrap": True, "spacing": "None"}]
    card: dict[str, Any] = {"type": "AdaptiveCard", "$schema": CARD_SCHEMA,
                            "version": CARD_VERSION, "body": body}
    if _is_web_link(link):
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the case", "url": link}]
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
        "content": card}]}


def _slack_message(title: str, facts: list[tuple[str, str]], commands: list[tuple[str, str]],
                   link: str) -> dict[str, str]:
    lines = [f"*{_slack(title)}*", *(f"{name}: {_slack(value)}" for name, value in facts)]
    lines += [f"{label}: `{_slack(command)}`" for label, command in commands]
    if _is_web_link(link):
        lines.append(f"<{_slack(link)}|Open the case>")
    else:
        lines.append(f"Case: `{_slack(shown(link, LINK_LIMIT).replace('`', chr(39)))}`")
    return {"text": "\n".join(lines)}


def _is_web_link(link: str) -> bool:
    parsed = urlparse(link)
    return parsed.scheme in ("https", "http") and bool(parsed.hostname)


def _slack(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
