"""The escalation notice a person reads: a Teams card or a Slack message.

``teams`` (ESCALATION_WEBHOOK_FORMAT's default): Teams shows webhook posts only through a
Workflows flow ("When a Teams webhook request is received"; the Office 365 connectors are
retired), and that flow shows Adaptive Cards only, sent inside a message envelope
(https://learn.microsoft.com/connectors/teams/#microsoft-teams-webhook). The card is version
1.4 and uses nothing newer (TextBlock, FactSet, Container, Action.OpenUrl): a 1.5 card posted
by a flow shows "We're sorry, this card couldn't be displayed"
(https://github.com/microsoft/AdaptiveCards/issues/7676,
https://github.com/MicrosoftDocs/msteams-docs/issues/9801).

``slack``: an incoming webhook takes ``{"text": ...}`` in mrkdwn, where ``&``, ``<`` and
``>`` are control characters and must be sent as ``&amp;``, ``&lt;`` and ``&gt;``
(https://api.slack.com/reference/surfaces/formatting#escaping).

Both carry the case, the account, the reason, what the robot did and did not do, and the
case link. Text from outside passes through ``shown`` (no control characters, length-capped).
"""

from typing import Any
from urllib.parse import quote, urlparse

from remediation.domain.cases import Case
from remediation.domain.display import shown
from remediation.service.progress import progress
from remediation.service.settings import WorkflowSettings

ACCOUNT_LIMIT, REASON_LIMIT, LINK_LIMIT, ITEM_LIMIT = 256, 500, 500, 300
NOTHING_DONE = "nothing: no change was made to the account"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"


def escalation_payload(case: Case, settings: WorkflowSettings) -> dict[str, Any]:
    """The JSON body to post for an escalated case, in ``settings.webhook_format``."""
    if settings.webhook_format == "slack":
        return slack_message(case, settings)
    return teams_message(case, settings)


def teams_message(case: Case, settings: WorkflowSettings) -> dict[str, Any]:
    """An Adaptive Card 1.4 in the message envelope a Teams Workflows webhook expects."""
    link = case_link(case, settings)
    done, not_done = progress(case)
    facts = [{"title": "Case", "value": case.case_id},
             {"title": "Account", "value": shown(case.user, ACCOUNT_LIMIT)},
             {"title": "Reason", "value": shown(case.reason or "escalated", REASON_LIMIT)}]
    if not _is_web_link(link):
        facts.append({"title": "Journal", "value": shown(link, LINK_LIMIT)})
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": f"Remediation case {case.case_id} needs a human",
         "weight": "Bolder", "size": "Medium", "color": "Attention", "wrap": True},
        {"type": "FactSet", "facts": facts},
        *_card_list("done", "What the robot did", "✔", done or (NOTHING_DONE,)),
    ]
    if not_done:
        body += _card_list("not_done", "What it did not do", "✘", not_done)
    card: dict[str, Any] = {"type": "AdaptiveCard", "$schema": CARD_SCHEMA,
                            "version": CARD_VERSION, "body": body}
    if _is_web_link(link):
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the case", "url": link}]
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
        "content": card}]}


def slack_message(case: Case, settings: WorkflowSettings) -> dict[str, str]:
    """``{"text": ...}`` in Slack mrkdwn, every piece of text escaped as Slack requires."""
    link = case_link(case, settings)
    done, not_done = progress(case)
    lines = [f"*Remediation case {case.case_id} needs a human*",
             f"Account: {_slack(shown(case.user, ACCOUNT_LIMIT))}",
             f"Reason: {_slack(shown(case.reason or 'escalated', REASON_LIMIT))}",
             "Done: " + _slack("; ".join(_items(done or (NOTHING_DONE,))))]
    if not_done:
        lines.append("Not done: " + _slack("; ".join(_items(not_done))))
    if _is_web_link(link):
        lines.append(f"<{_slack(link)}|Open the case>")
    else:
        lines.append(f"Case: `{_slack(shown(link, LINK_LIMIT).replace('`', chr(39)))}`")
    return {"text": "\n".join(lines)}


def case_link(case: Case, settings: WorkflowSettings) -> str:
    """CASE_LINK_TEMPLATE filled in; in a web link the fields are percent-encoded."""
    fields = {"user": case.user, "case_id": case.case_id}
    if _is_web_link(settings.case_link):
        fields = {name: quote(value, safe="") for name, value in fields.items()}
    return settings.case_link.format(**fields)


def _card_list(list_id: str, title: str, mark: str,
               items: tuple[str, ...]) -> list[dict[str, Any]]:
    """A heading, then a Container (``id`` for flows that read the card) with one TextBlock
    per item: no Markdown list syntax to go wrong."""
    return [{"type": "TextBlock", "text": title, "weight": "Bolder", "wrap": True},
            {"type": "Container", "id": list_id, "spacing": "Small", "items": [
                {"type": "TextBlock", "text": f"{mark} {item}", "wrap": True, "spacing": "None"}
                for item in _items(items)]}]


def _items(items: tuple[str, ...]) -> list[str]:
    return [shown(item, ITEM_LIMIT) for item in items]


def _is_web_link(link: str) -> bool:
    parsed = urlparse(link)
    return parsed.scheme in ("https", "http") and bool(parsed.hostname)


def _slack(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
