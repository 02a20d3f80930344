"""The sandbox's escalation webhook answers as Teams Workflows and Slack do, and keeps what
it received: the product's webhook adapter, posting to it, reads the answers as it would the
real ones."""

from typing import Any

import aiohttp
import pytest

from remediation.adapters.webhook import JsonWebhook
from remediation.domain.errors import PermanentError
from remediation.sandbox import SandboxTenant
from remediation.sandbox.webhook_routes import SLACK_PATH, TEAMS_PATH, WEBHOOK_PATH
from remediation.service.ports import WebhookDelivery


def card(version: str = "1.4", text: str = "Remediation case X needs a human") -> dict[str, Any]:
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
        "content": {"type": "AdaptiveCard", "version": version,
                    "body": [{"type": "TextBlock", "text": text}]}}]}


async def test_teams_accepts_with_202_and_keeps_whether_the_flow_could_show_it(
        sandbox_url: str, tenant: SandboxTenant) -> None:
    hook = JsonWebhook(sandbox_url + TEAMS_PATH, format="teams")
    try:
        assert await hook.post(card()) is WebhookDelivery.ACCEPTED
        assert await hook.post(card("1.5")) is WebhookDelivery.ACCEPTED  # fails in the flow
        assert await hook.post({"text": "a MessageCard-era body"}) is WebhookDelivery.ACCEPTED
        assert await hook.post(card(text="x" * 30_000)) is WebhookDelivery.ACCEPTED
    finally:
        await hook.close()
    assert [post.shown for post in tenant.webhook.posts] == [True, False, False, False]
    assert tenant.webhook.posts[0].headline == "Remediation case X needs a human"


async def test_slack_answers_ok_or_its_error_codes(
        sandbox_url: str, tenant: SandboxTenant) -> None:
    hook = JsonWebhook(sandbox_url + SLACK_PATH, format="slack")
    try:
        assert await hook.post({"text": "*Case 1*\nAccount: rob"}) is WebhookDelivery.DELIVERED
        with pytest.raises(PermanentError, match="no_text"):
            await hook.post({"blocks": []})
    finally:
        await hook.close()
    [post] = tenant.webhook.posts
    assert (post.format, post.headline) == ("slack", "*Case 1*")
    async with aiohttp.ClientSession() as session, session.get(
            sandbox_url + WEBHOOK_PATH) as answer:
        listed = await answer.json()
    assert [item["payload"] for item in listed] == [{"text": "*Case 1*\nAccount: rob"}]
