"""The grouped notice of the cases the circuit breaker holds: one Teams card or Slack message
naming each held case (its id, its account, when it was held) and what to do.

The formats are the escalation notice's (``escalations``: an Adaptive Card 1.4 in the
message envelope a Teams Workflows webhook expects; Slack mrkdwn with ``&``, ``<``, ``>``
escaped). A post names at most ``PAGE`` cases: a Teams message over about 28 KB fails in the
flow ("Request Entity too large", https://learn.microsoft.com/connectors/teams/ , known
issues and limitations), and Slack cuts a text over 40,000 characters
(https://api.slack.com/changelog/2018-04-truncating-really-long-messages). Fifty accounts at
their longest shown length (``ACCOUNT_LIMIT``, 256) stay under both. Adaptive Card text
knows no code spans, so the command is plain text there.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from remediation.domain.display import shown
from remediation.service.escalations import ACCOUNT_LIMIT, CARD_SCHEMA, CARD_VERSION
from remediation.service.settings import WorkflowSettings

PAGE = 50
COMMAND = "remediation enqueue --user ACCOUNT --force"
LIST_COMMAND = "remediation status --state escalated"


@dataclass(frozen=True)
class HeldCase:
    """A case the breaker held: its id, its account, when it was escalated."""

    case_id: str
    user: str
    held_at: datetime


@dataclass(frozen=True)
class Page:
    """Which post of a group this is: ``part`` of ``parts``, of ``total`` held cases."""

    total: int
    part: int = 1
    parts: int = 1


def breaker_payload(held: Sequence[HeldCase], page: Page,
                    settings: WorkflowSettings) -> dict[str, Any]:
    """The JSON body naming ``held`` (at most ``PAGE``), in ``settings.webhook_format``."""
    if settings.webhook_format == "slack":
        return slack_message(held, page, settings)
    return teams_message(held, page, settings)


def headline(page: Page) -> str:
    cases = f"{page.total} case{'' if page.total == 1 else 's'}"
    part = f" (part {page.part} of {page.parts})" if page.parts > 1 else ""
    return f"Circuit breaker open: {cases} held, nothing changed{part}"


def why(settings: WorkflowSettings) -> str:
    return ("More password resets were due in an hour than MAX_REMEDIATIONS_PER_HOUR "
            f"({settings.max_resets_per_hour}) allows: a mass compromise or a bug. The robot "
            "changed nothing on these accounts; each case is escalated (circuit_breaker) and "
            f"listed by {LIST_COMMAND}.")


def what_to_do() -> str:
    return ("Find out which it is, and lead. To secure an account now: "
            f"{COMMAND} (it passes the breaker and counts in it).")


def teams_message(held: Sequence[HeldCase], page: Page,
                  settings: WorkflowSettings) -> dict[str, Any]:
    """An Adaptive Card 1.4: the headline, why, one fact per held case, what to do."""
    facts = [{"title": case.case_id,
              "value": f"{shown(case.user, ACCOUNT_LIMIT)}, held {_when(case.held_at)}"}
             for case in held]
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": headline(page), "weight": "Bolder", "size": "Medium",
         "color": "Attention", "wrap": True},
        {"type": "TextBlock", "text": why(settings), "wrap": True},
        {"type": "FactSet", "id": "held", "facts": facts},
        {"type": "TextBlock", "text": what_to_do(), "wrap": True},
    ]
    card = {"type": "AdaptiveCard", "$schema": CARD_SCHEMA, "version": CARD_VERSION,
            "body": body}
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
        "content": card}]}


def slack_message(held: Sequence[HeldCase], page: Page,
                  settings: WorkflowSettings) -> dict[str, str]:
    """``{"text": ...}``: the headline in bold, a line per held case, the command as code."""
    lines = [f"*{headline(page)}*", _slack(why(settings))]
    lines += [f"• `{case.case_id}` {_slack(shown(case.user, ACCOUNT_LIMIT))}, held "
              f"{_when(case.held_at)}" for case in held]
    lines.append(_slack(what_to_do()).replace(COMMAND, f"`{COMMAND}`"))
    return {"text": "\n".join(lines)}


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"


def _slack(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
