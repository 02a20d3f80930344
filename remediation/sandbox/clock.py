"""Timestamps in the formats the services write, and a tolerant parser for the ones they read."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def graph_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC ending in Z, with microseconds (Graph writes 7 digits; 6 parse everywhere)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    """Parse ISO-8601; a value without an offset is taken as UTC. Raises ValueError."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
