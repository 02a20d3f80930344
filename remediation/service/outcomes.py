"""How cases end (verified, escalated, skipped, planned) and the follow-ups each end sends.

Follow-ups (Defender alert updates, the escalation webhook) are queued before the final
state is saved: a redelivery after a failed send finds the case still open and sends again,
and the follow-up waits until the case really is final.
"""

import logging
from datetime import datetime

from remediation.domain.cases import Case, CaseState, StepStatus
from remediation.domain.decisions import refused_by_a_person
from remediation.domain.errors import ConcurrentUpdate, RemediationError
from remediation.domain.escalation_kinds import EscalationKind
from remediation.service.journaling import BREAKER, REVOKE, SCHEDULE, CaseRecorder
from remediation.service.messages import (
    COMMENTED_PHASES,
    DECIDED_PHASES,
    POSTED_PHASES,
    AlertUpdate,
)
from remediation.service.ports import AlertNotifier, VerificationScheduler

log = logging.getLogger(__name__)

#: Escalations that say something true of one state only: "nobody approved or rejected the
#: case" is said of a case still waiting for approval, never of one a decision moved on.
ONLY_FROM = {EscalationKind.APPROVAL_EXPIRED: CaseState.AWAITING_APPROVAL}


class Outcomes:
    def __init__(self, recorder: CaseRecorder, scheduler: VerificationScheduler,
                 notifier: AlertNotifier | None, *, notify_escalations: bool,
                 alert_updates: bool = True) -> None:
        self._recorder = recorder
        self._scheduler = scheduler
        self._notifier = notifier
        self._notify_escalations = notify_escalations
        self._alert_updates = alert_updates

    async def escalate(self, case_id: str, reason: str, *, kind: EscalationKind) -> Case:
        """End a case for a human to take over, and cancel checks it no longer needs.
        ``kind`` (saved on the case with its state, ``Case.escalation_kind``, and journaled
        on the ``escalated`` step) names the README's recovery.

        A kind in ``ONLY_FROM`` escalates only a case in its state, atomically: the case is
        read in it and saved escalated under that version. Raises ConcurrentUpdate when the
        case is in another state (a final one included), or leaves it meanwhile (an approval
        stored between the sweeper's claim and this escalation): that decision stands."""
        return (await self._escalate(case_id, reason, kind))[0]

    async def escalate_if_open(self, case_id: str, reason: str, *,
                               kind: EscalationKind) -> Case | None:
        """``escalate``, or None when the case had ended already (a check verified it
        meanwhile, say): then the caller's reason for escalating it may no longer hold."""
        case, escalated = await self._escalate(case_id, reason, kind)
        return case if escalated else None

    async def _escalate(self, case_id: str, reason: str,
                        kind: EscalationKind) -> tuple[Case, bool]:
        case = await self._recorder.require(case_id)
        only_from = ONLY_FROM.get(kind)
        if only_from is not None and case.state is not only_from:
            raise ConcurrentUpdate(f"case {case_id} is {case.state.value}, no longer "
                                   f"{only_from.value}: not escalated {kind.value}")
        if case.state.is_final:
            return case, False
        case = await self.follow_up(case, "escalated")
        # The kind goes with the state (one write): the step after it is its history only.
        case = await self._recorder.save(case, state=CaseState.ESCALATED, reason=reason,
                                         ended_at=self._recorder.clock.now(),
                                         escalation_kind=kind.value)
        case = await self._recorder.note(case, "escalated", StepStatus.INFO, reason,
                                         {"kind": kind.value})
        await self.cancel_pending_checks(case, after_attempt=-1)
        log.warning("case %s for %s escalated (%s): %s", case.case_id, case.user, kind.value,
                    reason)
        return await self._recorder.require(case_id), True

    async def verified(self, case_id: str, attempt: int) -> Case:
        case = await self.follow_up(await self._recorder.require(case_id), "verified")
        case = await self._recorder.save(case, state=CaseState.VERIFIED, reason=None,
                                         ended_at=self._recorder.clock.now())
        await self.cancel_pending_checks(case, after_attempt=attempt)
        log.info("case %s for %s verified", case.case_id, case.user)
        return await self._recorder.require(case_id)

    async def end(self, case: Case, state: CaseState, reason: str) -> Case:
        """``skipped`` or ``planned``: nothing was (or will be) changed."""
        case = await self._recorder.save(case, state=state, reason=reason,
                                         ended_at=self._recorder.clock.now())
        await self._recorder.note(case, state.value, StepStatus.INFO, reason)
        log.info("case %s for %s %s: %s", case.case_id, case.user, state.value, reason)
        return await self._recorder.require(case.case_id)

    async def follow_up_merged(self, case: Case) -> Case:
        """The alert update a request merged into ``case`` calls for: ``start`` only once the
        case has begun to act (securing queues it itself when it begins: a comment saying
        "resetting the password..." on a case that waits for approval would be untrue)."""
        phase = {CaseState.VERIFIED: "verified", CaseState.ESCALATED: "escalated",
                 CaseState.CLOSED: "closed"}.get(case.state, "start")
        if refused_by_a_person(case):
            phase = "rejected"  # its new alerts are told who rejected the case, and why
        if phase == "start" and not acting(case):
            return case
        return await self.follow_up(case, phase)

    async def follow_up(self, case: Case, phase: str) -> Case:
        """Queue the alert update / notice for ``phase`` once (journaled). A person's
        decision (``DECIDED_PHASES``) is queued whatever this process knows of the webhook:
        the command line that decides may have none configured, the worker that delivers
        it does. ``approval`` tells the escalation channel only, once per case."""
        commented = (self._alert_updates and bool(case.alert_ids)
                     and phase in COMMENTED_PHASES)
        posted = phase in POSTED_PHASES and (self._notify_escalations
                                             or phase in DECIDED_PHASES)
        if self._notifier is None or not (commented or posted):
            return case
        count = len(case.alert_ids) if phase in COMMENTED_PHASES else 0
        update = AlertUpdate(case.case_id, case.user, phase, count)
        name = f"alerts_queued:{phase}:{update.alert_count}"
        if case.done(name):
            return case
        # Journaled before it is sent: the update acts only when the case queued it.
        case = await self._recorder.note(case, name, StepStatus.STARTED)
        await self._notifier.notify(update)
        what = (f"{update.alert_count} Defender alert(s)" if count else
                "the escalation channel" if phase == "approval" else "a human")
        return await self._recorder.note(case, name, StepStatus.DONE,
                                         f"{phase} notice queued for {what}")

    async def cancel_pending_checks(self, case: Case, *, after_attempt: int) -> None:
        scheduled = case.done(SCHEDULE)
        if scheduled is None:
            return
        now = self._recorder.clock.now()
        for check in scheduled.data.get("checks", []):
            if check["attempt"] > after_attempt and datetime.fromisoformat(check["at"]) > now:
                try:
                    await self._scheduler.cancel(int(check["sequence_number"]))
                except RemediationError as error:  # harmless: the check finds a final case
                    log.info("could not cancel check %s of %s: %s", check["attempt"],
                             case.case_id, error.reason)


def acting(case: Case) -> bool:
    """Has the case passed its gates (dry-run, approval) and begun to change the tenant? The
    circuit breaker's step, or a synced account's revocation, comes first after them."""
    return (case.state in (CaseState.IN_PROGRESS, CaseState.AWAITING_VERIFICATION)
            and (case.done(BREAKER) is not None or case.done(REVOKE) is not None))
