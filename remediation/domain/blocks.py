"""Entries of Exchange Online's Restricted users list."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class BlockedSender:
    sender_address: str
    reason: str
    created: datetime | None
    changed: datetime | None = None
    temporary: bool = False

    def is_newer_than(self, known: datetime | None) -> bool:
        """True only when this entry is known to be a block placed after ``known``. An
        unknown time on either side is never "newer": an entry whose time cannot be read
        must not turn a lingering block into a re-block."""
        if known is None or self.created is None:
            return False
        return self.created > known


def known_blocks(*moments: datetime | None) -> datetime | None:
    """The newest of the block times a case has seen."""
    return max((moment for moment in moments if moment is not None), default=None)
