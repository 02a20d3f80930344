"""The RestrictedSenders port: Get-/Remove-BlockedSenderAddress (office-docs-powershell,
``exchange/exchange-ps/exchange/Get-BlockedSenderAddress.md`` and ``Remove-...``).

- A question about one sender has two answers: its entries, or Exchange's "couldn't be found"
  (ManagementObjectNotFoundException) about that sender, which means *not listed*. Any other
  failure (a gateway page, a 404 of the endpoint, "not found" about another object) is an
  error, never "not listed": a wrong answer here would verify a case that is still blocked.
- The whole list is read with no parameters and every next link on the configured host: the
  cmdlet's reference (office-docs-powershell ``Get-BlockedSenderAddress.md``) lists
  ``-SenderAddress`` and nothing else, so a ``ResultSize`` is a parameter-binding error in a
  real tenant (CIPP calls it with no parameters too).
- ``Remove-BlockedSenderAddress`` gets ``SenderAddress`` only: its ``-Reason`` selects the
  entry by its own Reason value (cmdlet reference), it is not free text; CIPP sends the
  address alone too. Our explanation stays in the case journal.
"""

import logging
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from remediation.adapters.exchange_client import ExchangeAdminClient, ExchangeCmdletError
from remediation.domain.blocks import BlockedSender
from remediation.domain.errors import PermanentError

log = logging.getLogger(__name__)

# .NET JSON dates: /Date(1714645531895)/ or /Date(1714645531895+0000)/ (offset: +hhmm).
_MS_DATE = re.compile(r"^/Date\((-?\d+)(?:([+-])(\d{2})(\d{2}))?\)/$")
_FRACTION = re.compile(r"(\.\d{6})\d+")


class ExchangeRestrictedSenders:
    def __init__(self, client: ExchangeAdminClient) -> None:
        self._exchange = client

    async def blocked_entries(self, sender: str) -> list[BlockedSender]:
        """The sender's entries on the Restricted users list; [] when it is not listed."""
        try:
            items = await self._exchange.invoke("Get-BlockedSenderAddress",
                                                {"SenderAddress": sender})
        except ExchangeCmdletError as failure:
            if failure.error.not_found_about(sender):
                return []
            raise
        return [_entry(item) for item in items
                if str(item.get("SenderAddress", "")).lower() == sender.lower()]

    async def all_blocked(self) -> list[BlockedSender]:
        items = await self._exchange.invoke("Get-BlockedSenderAddress", {})
        return [_entry(item) for item in items if item.get("SenderAddress")]

    async def unblock(self, sender: str) -> None:
        """Remove the sender's block. "Not found" succeeds only if the sender is really no
        longer listed; otherwise the refusal is a PermanentError (never journaled as done)."""
        try:
            await self._exchange.invoke("Remove-BlockedSenderAddress", {"SenderAddress": sender})
        except ExchangeCmdletError as failure:
            if not failure.error.not_found_about(sender):
                raise
            if await self.blocked_entries(sender):
                raise PermanentError(
                    f"Exchange refused to remove the block of {sender} ('not found'), yet "
                    "still lists it: the block was not lifted") from None
            log.info("Exchange: %s was already off the Restricted users list", sender)


def _entry(item: dict[str, Any]) -> BlockedSender:
    return BlockedSender(
        sender_address=str(item.get("SenderAddress", "")).lower(),
        reason=str(item.get("Reason") or ""),
        created=parse_exchange_time(item.get("CreatedDatetime")),
        changed=parse_exchange_time(item.get("ChangedDatetime")),
        temporary=item.get("TemporaryBlock") is True,
    )


def parse_exchange_time(value: object) -> datetime | None:
    """Exchange REST dates, in every form public tools (CIPP, M365Permissions) meet: ISO 8601
    with up to 7 fractional digits, with or without an offset (none means UTC), or
    ``/Date(ms)/`` with an optional ``+hhmm`` offset (the milliseconds are UTC either way).
    None for anything else: an unknown time."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    legacy = _MS_DATE.match(text)
    if legacy:
        millis, sign, hours, minutes = legacy.groups()
        try:
            moment = datetime.fromtimestamp(int(millis) / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
        if sign:
            offset = timedelta(hours=int(hours), minutes=int(minutes))
            return _known(moment.astimezone(timezone(offset if sign == "+" else -offset)))
        return _known(moment)
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", text.replace("Z", "+00:00")))
    except ValueError:
        return None
    return _known(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def _known(moment: datetime) -> datetime | None:
    """.NET's DateTime.MaxValue (year 9999) stands for "no time": unknown, not the future."""
    return None if moment.year >= 9999 else moment
