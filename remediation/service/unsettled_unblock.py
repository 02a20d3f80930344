"""An unblock whose answer was lost: what the journal says about it, and what to do next.

A ``Remove-BlockedSenderAddress`` that timed out, lost its connection or met a 5xx may have
been carried out (the Exchange client raises OutcomeUnknown and never re-sends it in the
call). The unblock step journals that (an ``unsettled`` note), and its next attempt reads
the Restricted users list first:

- the block is gone: the earlier request lifted it; the step is done, nothing sent again;
- the same block is still listed: Exchange lists a lifted block for a while (the sandbox's
  ``linger_reads``, the demo's lee.gu), so the step waits (a ``waiting`` note, then a
  TransientError: the queue retries later) for up to SETTLE_READS reads before it sends the
  removal again; a block newer than the one the request tried to lift is a re-block, as ever.
"""

from dataclasses import dataclass
from datetime import datetime

from remediation.domain.blocks import BlockedSender
from remediation.domain.cases import Case, StepStatus
from remediation.service.journaling import UNBLOCK

UNSETTLED, WAITING = "unsettled", "waiting"
# Reads (one per attempt of the step, each after the queue's back-off) that may still list a
# block the lost request lifted before the removal is sent again.
SETTLE_READS = 2


@dataclass(frozen=True)
class Unsettled:
    """The block a request with a lost answer tried to lift, and the reads since."""

    block: BlockedSender
    waits: int


def unsettled(case: Case, address: str) -> Unsettled | None:
    """The latest removal of ``address`` whose answer was lost, unless it was sent again
    since (a ``listed since`` note without a flag is a removal about to be sent)."""
    found: Unsettled | None = None
    for step in case.steps:
        data = step.data
        if step.name != UNBLOCK or step.status is not StepStatus.INFO or (
                data.get("address") != address):
            continue
        if data.get(UNSETTLED):
            created = data.get("block_created")
            found = Unsettled(BlockedSender(
                address, str(data.get("block_reason") or ""),
                datetime.fromisoformat(created) if isinstance(created, str) else None), 0)
        elif data.get(WAITING) and found is not None:
            found = Unsettled(found.block, found.waits + 1)
        elif data.get("block_created"):
            found = None
    return found


def still_settling(earlier: Unsettled | None, listed: BlockedSender) -> bool:
    """True while ``listed`` may be the block the lost request lifted, still shown."""
    return (earlier is not None and earlier.waits < SETTLE_READS
            and not listed.is_newer_than(earlier.block.created))
