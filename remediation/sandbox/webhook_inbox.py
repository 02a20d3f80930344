"""What the sandbox's escalation webhook received (``webhook_routes`` fills it): each post
as it arrived, whether the channel would show it, and its headline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class WebhookPost:
    """One post as it arrived: ``format`` ("teams" or "slack"), the JSON ``payload``, whether
    the channel would show it, and its headline (the card's first text, Slack's first line)."""

    format: str
    payload: Any
    shown: bool
    headline: str
    at: float = field(default_factory=time.time)


@dataclass
class WebhookInbox:
    """Every post the sandbox's webhook received (a tenant holds one), oldest first."""

    posts: list[WebhookPost] = field(default_factory=list)

    def of_format(self, format: str) -> list[WebhookPost]:
        return [post for post in self.posts if post.format == format]
