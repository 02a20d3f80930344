"""Blocks that are not by themselves evidence of a takeover: the recipient rate limit, and
blocks Exchange marks temporary.

Sources: defender-docs ``defender-office-365/outbound-spam-sending-limits-troubleshoot.md``
("What happens when limits are exceeded": the per-user recipient rate limit, 10,000
recipients in a 24-hour sliding window, raises **Email sending limit exceeded**; outbound
spam raises **Suspicious email sending patterns detected**; a blocked user raises **User
restricted from sending email**, whatever the cause); office-docs-powershell
``Set-HostedOutboundSpamFilterPolicy.md`` (``ActionWhenThresholdReached``:
``BlockUserForToday``, "until the following day", the default, or ``BlockUser``).
A rate-limit block's ``Reason`` starts with the token ``EmailSendingLimitExceeded`` followed
by ``key=value`` pairs (``InternalRecipientCountToday``, ``ExternalRecipientCountToday``,
``ExceedingLimitType``, ``LastMessageRcptCount``, ...), as Microsoft's published support
notes on the recipient rate limit show it, with "RRL blocks self-release in 24 hours"; the
outbound spam policy's blocks are ``key=value`` pairs only. ``TemporaryBlock``'s meaning is
undocumented (likely "restrict until the following day"); either kind releases itself within
24 hours. Neither is a takeover by itself: a newsletter over its limit is one too.
"""

from dataclasses import dataclass

from remediation.domain.blocks import BlockedSender

RATE_LIMIT_MARK = "EmailSendingLimitExceeded"


def reason_fields(reason: str) -> dict[str, str]:
    """The ``key=value`` pairs of a block's Reason (keys as written; a part without ``=``,
    such as the leading token, is left out)."""
    fields: dict[str, str] = {}
    for part in reason.split(";"):
        key, equals, value = part.partition("=")
        if equals and key.strip():
            fields[key.strip()] = value.strip()
    return fields


def is_rate_limit(block: BlockedSender) -> bool:
    """The recipient rate limit's block (its Reason starts with the token) or one Exchange
    marks ``TemporaryBlock``."""
    return (block.reason.strip().lower().startswith(RATE_LIMIT_MARK.lower())
            or block.temporary)


@dataclass(frozen=True)
class RateLimitBlock:
    """One address's rate-limit block, as a person reads it."""

    address: str
    block: BlockedSender

    @property
    def counts(self) -> tuple[int | None, int | None]:
        """Internal and external recipients today, from the Reason (None: not given)."""
        fields = {key.lower(): value for key, value in reason_fields(self.block.reason).items()}
        return (_count(fields.get("internalrecipientcounttoday")),
                _count(fields.get("externalrecipientcounttoday")))

    def describe(self) -> str:
        """e.g. ``newsletter@contoso.com: over its recipient rate limit
        (EmailSendingLimitExceeded): 12 internal and 10412 external recipients today, limit
        type External``."""
        fields = {key.lower(): value for key, value in reason_fields(self.block.reason).items()}
        if self.block.reason.strip().lower().startswith(RATE_LIMIT_MARK.lower()):
            kind = f"over its recipient rate limit ({RATE_LIMIT_MARK})"
        else:
            kind = "a block Exchange marks TemporaryBlock"
        internal, external = self.counts
        counts = (f"{_shown(internal)} internal and {_shown(external)} external recipients "
                  "today")
        limit = fields.get("exceedinglimittype")
        return f"{self.address}: {kind}: {counts}" + (f", limit type {limit}" if limit else "")


def _count(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def _shown(count: int | None) -> str:
    return "an unknown number of" if count is None else str(count)
