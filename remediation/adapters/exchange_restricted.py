"""The RestrictedSenders port: Get-/Remove-BlockedSenderAddress."""

import re
from datetime import UTC, datetime
from typing import Any

from remediation.adapters.exchange_client import ExchangeAdminClient, ExchangeCmdletError
from remediation.domain.blocks import BlockedSender

_MS_DATE = re.compile(r"^/Date\((-?\d+)\)/$")
_FRACTION = re.compile(r"(\.\d{6})\d+")


class ExchangeRestrictedSenders:
    def __init__(self, client: ExchangeAdminClient) -> None:
        self._exchange = client

    async def blocked_entries(self, sender: str) -> list[BlockedSender]:
        items = await self._exchange.invoke("Get-BlockedSenderAddress", {"SenderAddress": sender})
        return [_entry(item) for item in items
                if str(item.get("SenderAddress", "")).lower() == sender.lower()]

    async def all_blocked(self) -> list[BlockedSender]:
        return [_entry(item) for item in await self._exchange.invoke(
            "Get-BlockedSenderAddress", {})]

    async def unblock(self, sender: str, reason: str) -> None:
        try:
            await self._exchange.invoke("Remove-BlockedSenderAddress",
                                        {"SenderAddress": sender, "Reason": reason[:250]})
        except ExchangeCmdletError as failure:
            if failure.error.not_found:
                return  # already gone: the goal of the call holds
            raise


def _entry(item: dict[str, Any]) -> BlockedSender:
    return BlockedSender(
        sender_address=str(item.get("SenderAddress", "")).lower(),
        reason=str(item.get("Reason") or ""),
        created=parse_exchange_time(item.get("CreatedDatetime")),
        changed=parse_exchange_time(item.get("ChangedDatetime")),
        temporary=bool(item.get("TemporaryBlock", False)),
    )


def parse_exchange_time(value: object) -> datetime | None:
    """Exchange REST dates arrive as ISO 8601 (up to 7 fractional digits) or ``/Date(ms)/``."""
    if not isinstance(value, str) or not value:
        return None
    legacy = _MS_DATE.match(value)
    if legacy:
        return datetime.fromtimestamp(int(legacy.group(1)) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value.replace("Z", "+00:00")))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
