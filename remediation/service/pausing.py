"""The kill switch at work: while ``remediation pause`` is on, no delivery changes anything.

The handler reads the switch at the start of every delivery, inside the delivery's attempt
(``Journal.pause_state``: one small read, never cached, so a pause is obeyed by every worker
from its next message). Paused, a delivery of any kind (a remediation request, an approval,
the sweeper's resume, a verification check, an alert update) is *kept*, not acted on: nothing
is read from or written to the tenant, Defender alerts included (a comment or a status is a
change too; the escalation webhook's post travels in the alert update, so it waits with it).

Kept means: a copy of the message is scheduled ``PAUSE_RECHECK`` later through the retry
machinery (``handler.MessageRetries``), carrying the attempts made *before* this delivery, so
a pause uses none up and dead-letters nothing however long it lasts; then the case is told
(a ``paused`` note with who, why and since) once per case and pause, whatever the number of
messages and re-checks; then the original completes. A request no case recorded yet is
journaled ``received`` first (nothing asked of the tenant), so it is on record, ``status``
shows it, and the Restricted users sweep does not queue it again on every poll.

A pause read that fails is a failed attempt like any other (retried later, its attempt
counted): a worker that cannot tell whether it is paused does nothing. A delivery that read
"not paused" finishes its work even if a pause is set meanwhile; the next one stops.
"""

import logging
from datetime import timedelta

from remediation.domain.cases import Case, StepStatus
from remediation.domain.durations import format_duration
from remediation.domain.pause import Paused
from remediation.domain.requests import RemediationRequest
from remediation.service.episodes import Episodes
from remediation.service.journaling import CaseRecorder

log = logging.getLogger(__name__)

PAUSED = "paused"  # the case's note: once per case and pause
PAUSE_RECHECK = timedelta(minutes=5)  # how long a kept message waits before it asks again


class Pausing:
    """Reads the switch, and tells a case it is kept."""

    def __init__(self, recorder: CaseRecorder, episodes: Episodes) -> None:
        self._recorder = recorder
        self._episodes = episodes
        self._seen: Paused | None = None

    async def state(self) -> Paused | None:
        """The pause in force, read from the journal now. A change since this process last
        read it is logged once (a WARNING when paused)."""
        paused = await self._recorder.journal.pause_state()
        if paused != self._seen:
            if paused is not None:
                log.warning("paused by %s since %s: %s; no delivery acts until "
                            "`remediation resume`", paused.by, f"{paused.since:%Y-%m-%d %H:%M}",
                            paused.reason)
            else:
                log.warning("resumed: deliveries act again")
        self._seen = paused
        return paused

    async def keep_case(self, case_id: str, paused: Paused, recheck: timedelta) -> Case | None:
        """Note the pause on case ``case_id`` (None: no such case)."""
        case = await self._recorder.journal.get_case(case_id)
        return None if case is None else await self._note(case, paused, recheck)

    async def keep_request(self, request: RemediationRequest, paused: Paused,
                           recheck: timedelta) -> Case:
        """Note the pause on the case a request works, journaling it ``received`` when no
        case has recorded it yet (as a request whose lookup failed: its retry places it)."""
        assert request.request_id is not None
        case = await self._episodes.working_case(request.request_id)
        if case is None:
            case = await self._episodes.receive(request)
        return await self._note(case, paused, recheck)

    async def _note(self, case: Case, paused: Paused, recheck: timedelta) -> Case:
        if any(step.name == PAUSED and paused.same_pause(step.data.get("since"))
               for step in case.steps):
            return case
        return await self._recorder.note(
            case, PAUSED, StepStatus.INFO,
            f"paused by {paused.by} since {paused.since:%Y-%m-%d %H:%M:%S} UTC: "
            f"{paused.reason}; nothing is done until `remediation resume`, the work is asked "
            f"again every {format_duration(recheck)}", paused.to_dict())
