"""One worker at a time on a case: a lease in the journal over every change it makes.

The same alert reaches one case by several paths at once: a copy past duplicate detection,
the account named by its object id (another Service Bus session, so another instance), a
redelivery after a lost lock, the sweeper's resume. Every step is journaled before and after
it acts, but two workers that read the journal at the same moment both find a step not yet
done and both act (two ``Remove-BlockedSenderAddress`` for one block). So whoever takes a
case on (securing it, checking it) first claims it in the journal (``Journal.claim_step``
on ``CASE_CLAIM``: SQLite in one write transaction, Table Storage under the row's ETag; of
the workers claiming at once exactly one wins, in one process or many) and reads the case
again, since the last holder may have moved it on.

The loser raises ``CaseBusy``: no step journaled failed, nothing escalated; the handler keeps
its message (a copy at the next back-off that uses no attempt: ``MessageHandler``), and that
copy finds the case moved on, or takes it on itself. The holder gives the claim up however
its work ends, and renews it every third of the lease while it works, so a live worker
keeps it however long its delivery lasts. A worker that died holds it until the lease runs
out: the message lock's length (``LOCK_DURATION``, ``WorkflowSettings.case_lease``), since
its message is not delivered again before its lock runs out either; then the next copy, or
the sweeper's resume, takes the case on from its journal. (A fixed 10-minute lease kept a
case from a restarted local worker for 10 minutes after a crash.)
"""

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from remediation.domain.errors import CaseBusy, RemediationError
from remediation.service.ports import Clock, Journal

log = logging.getLogger(__name__)

CASE_CLAIM = "case"  # the claim's name in the journal's step claims; never a journal step
# When no lease is given: the default message lock (LOCK_DURATION, 5 minutes).
CASE_LEASE = timedelta(minutes=5)


class CaseLease:
    def __init__(self, journal: Journal, clock: Clock, lease: timedelta | None = None) -> None:
        """``lease``: how long a claim lasts unless renewed (default ``CASE_LEASE``)."""
        self._journal = journal
        self._clock = clock
        self._lease = lease

    @asynccontextmanager
    async def hold(self, case_id: str) -> AsyncIterator[None]:
        """Hold case ``case_id`` for the body; given up as the body ends, however it ends.
        Raises CaseBusy when another worker holds it (the body does not run)."""
        holder = secrets.token_hex(8)
        lease = self._lease or CASE_LEASE
        if not await self._journal.claim_step(case_id, CASE_CLAIM, holder, self._clock.now(),
                                              lease):
            log.info("case %s: another worker is working it; left to that worker", case_id)
            raise CaseBusy(f"another worker is working case {case_id} right now; its "
                           "message is kept and asks again later")
        renewing = asyncio.create_task(self._renew(case_id, holder, lease))
        try:
            yield
        finally:
            renewing.cancel()
            try:
                await self._journal.release_step(case_id, CASE_CLAIM, holder)
            except RemediationError as error:  # the lease runs out on its own
                log.warning("case %s: could not give its claim up: %s", case_id,
                            error.reason)

    async def _renew(self, case_id: str, holder: str, lease: timedelta) -> None:
        """Claim the case again every third of ``lease`` while the body runs."""
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            try:
                kept = await self._journal.claim_step(case_id, CASE_CLAIM, holder,
                                                      self._clock.now(), lease)
            except RemediationError as error:  # the next renewal tries again
                log.warning("case %s: could not renew its claim: %s", case_id, error.reason)
                continue
            if not kept:
                log.warning("case %s: its claim ran out while this worker held it (held up "
                            "longer than the lease); another worker may take it on", case_id)
                return
