"""The escalation webhook's far end, in the sandbox: what a Teams Workflows trigger or a Slack
incoming webhook would receive, kept so that a test or a person can read it back.

``POST /_sandbox/webhook/teams`` answers as a Teams Workflows "When a Teams webhook request is
received" trigger does: ``202 Accepted`` for any JSON, before its flow runs; the flow shows
only an Adaptive Card of version 1.4 or lower inside the message envelope, and fails unseen on
anything else (https://learn.microsoft.com/connectors/teams/#microsoft-teams-webhook). A post
the flow could not show is kept with ``shown`` false. A message over about 28 KB fails in the
flow ("Request Entity too large", https://learn.microsoft.com/connectors/teams/ , known
issues): kept with ``shown`` false too.

``POST /_sandbox/webhook/slack`` answers as a Slack incoming webhook: ``200 ok``, or ``400``
with the plain-text code ``invalid_payload`` (not a JSON object) or ``no_text`` (no ``text``)
(https://api.slack.com/messaging/webhooks, "Handling errors").

``GET /_sandbox/webhook`` lists every post received, oldest first. Each post is also logged on
one line (the sandbox's terminal shows what a person would have been sent).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from remediation.sandbox.context import CONTROL_PREFIX, TENANT
from remediation.sandbox.webhook_inbox import WebhookPost

log = logging.getLogger(__name__)

WEBHOOK_PATH = f"{CONTROL_PREFIX}webhook"
TEAMS_PATH = f"{WEBHOOK_PATH}/teams"
SLACK_PATH = f"{WEBHOOK_PATH}/slack"
TEAMS_MESSAGE_LIMIT = 28 * 1024  # bytes; "about 28 KB"
NEWEST_CARD = (1, 4)
CARD_TYPE = "application/vnd.microsoft.card.adaptive"

routes = web.RouteTableDef()


@routes.post(TEAMS_PATH)
async def teams(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        payload = json.loads(raw)
    except ValueError:
        return web.Response(status=400, text="The request body is not valid JSON.")
    card = _card(payload)
    shown = card is not None and len(raw) <= TEAMS_MESSAGE_LIMIT
    _keep(request, WebhookPost("teams", payload, shown, _card_headline(card)))
    return web.Response(status=202)


@routes.post(SLACK_PATH)
async def slack(request: web.Request) -> web.Response:
    try:
        payload = json.loads(await request.read())
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return web.Response(status=400, text="invalid_payload")
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        return web.Response(status=400, text="no_text")
    _keep(request, WebhookPost("slack", payload, True, text.strip().splitlines()[0]))
    return web.Response(text="ok")


@routes.get(WEBHOOK_PATH)
async def list_posts(request: web.Request) -> web.Response:
    return web.json_response([
        {"format": post.format, "shown": post.shown, "headline": post.headline,
         "at": post.at, "payload": post.payload}
        for post in request.app[TENANT].webhook.posts])


def _keep(request: web.Request, post: WebhookPost) -> None:
    request.app[TENANT].webhook.posts.append(post)
    log.info("escalation webhook (%s) received a post%s: %s", post.format,
             "" if post.shown else " the channel would NOT show", post.headline[:200])


def _card(payload: Any) -> dict[str, Any] | None:
    """The Adaptive Card a Workflows flow would show, or None (not the message envelope with
    one adaptive card attachment, or a card newer than 1.4)."""
    if not isinstance(payload, dict) or payload.get("type") != "message":
        return None
    attachments = payload.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return None
    attachment = attachments[0]
    if not isinstance(attachment, dict) or attachment.get("contentType") != CARD_TYPE:
        return None
    card = attachment.get("content")
    if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
        return None
    try:
        version = tuple(int(part) for part in str(card.get("version")).split("."))
    except ValueError:
        return None
    return card if version <= NEWEST_CARD else None


def _card_headline(card: dict[str, Any] | None) -> str:
    if card is None:
        return "(not a card the flow can show)"
    for item in card.get("body") or []:
        if isinstance(item, dict) and item.get("type") == "TextBlock":
            return str(item.get("text", ""))
    return "(a card without text)"
