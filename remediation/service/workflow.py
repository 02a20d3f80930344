"""The remediation workflow: secure the account, lift the block, prove it stays lifted.

This module is the use-case facade the entry points call; the work is done by one small
collaborator per concern (episodes, securing, verification, outcomes, notifications), all
recording through the same case journal.
"""

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import (
    ConcurrentUpdate,
    InvalidRequest,
    PermanentError,
    RemediationError,
)
from remediation.domain.escalation_kinds import EscalationKind
from remediation.domain.requests import RemediationRequest, parse_evidence_time
from remediation.service.admission import decided_refusal, names_of
from remediation.service.breaker_posts import BreakerPosts
from remediation.service.case_lease import CaseLease
from remediation.service.claims import AlertClaims
from remediation.service.decisions import Decided, Decisions
from remediation.service.episodes import Episodes, new_case_id
from remediation.service.journaling import SCHEDULE, CaseRecorder, StepResult
from remediation.service.leftovers import Cleanup, LeftoverKind
from remediation.service.messages import (
    AlertUpdate,
    Approval,
    BreakerPost,
    Resume,
    VerificationCheck,
    approver,
)
from remediation.service.notifications import Notifications
from remediation.service.outcomes import Outcomes
from remediation.service.pausing import Pausing
from remediation.service.ports import (
    AlertNotifier,
    AlertSource,
    AlertUpdater,
    Clock,
    Directory,
    EscalationWebhook,
    Journal,
    Mailbox,
    MailboxDelegation,
    MessageRetries,
    RequestSender,
    RestrictedSenders,
    VerificationScheduler,
)
from remediation.service.scope import AdministrativeScope
from remediation.service.securing import Securing
from remediation.service.settings import WorkflowSettings
from remediation.service.shared_mailboxes import SharedMailboxes
from remediation.service.verification import Verification

__all__ = ["RemediationWorkflow", "StepResult", "WorkflowSettings", "new_case_id"]

log = logging.getLogger(__name__)

RETRY = "retry"  # the journal step of a scheduled retry
APPROVAL_REFUSED = "approval_refused"
APPROVED = "approved"
RESUME_QUEUED = "resume_queued"  # the sweeper queued a resume (its token in the data)
RESUME_REFUSED = "resume_refused"
_TO_SECURE = (CaseState.RECEIVED, CaseState.IN_PROGRESS)
_NO_STEP = Step("none", StepStatus.INFO, datetime.min)


class RemediationWorkflow:
    def __init__(
        self,
        *,
        directory: Directory,
        exchange: RestrictedSenders,
        journal: Journal,
        scheduler: VerificationScheduler,
        clock: Clock,
        settings: WorkflowSettings,
        alerts: AlertUpdater | None = None,
        notifier: AlertNotifier | None = None,
        mailbox: Mailbox | None = None,
        webhook: EscalationWebhook | None = None,
        alert_source: AlertSource | None = None,
        leftover_kinds: Sequence[LeftoverKind] = (),
        delegation: MailboxDelegation | None = None,
        requests: RequestSender | None = None,
        scope: AdministrativeScope | None = None,
        follow_up_sends: MessageRetries | None = None,
    ) -> None:
        """``delegation``: reads a disabled account's mailbox (shared? its delegates);
        ``requests``: where a shared mailbox's case queues its delegates' requests;
        ``scope``: administrative unit membership, needed when the settings name a unit;
        ``follow_up_sends``: the verifications queue's scheduled sends, for the grouped post
        of the cases the circuit breaker holds (without it each posts its own)."""
        if settings.administrative_unit_id and scope is None:
            raise ValueError("an administrative unit is configured, and nothing reads its "
                             "membership")
        recorder = CaseRecorder(journal, clock)
        self._recorder = recorder
        # One worker at a time on a case.
        self._lease = CaseLease(journal, clock, settings.case_lease)
        self._outcomes = Outcomes(recorder, scheduler, notifier,
                                  notify_escalations=webhook is not None,
                                  alert_updates=alerts is not None)
        self._episodes = Episodes(recorder, self._outcomes, directory, exchange,
                                  settings.merge_window)
        cleanup = Cleanup(recorder, tuple(leftover_kinds), settings.compromise_window)
        self._claims = AlertClaims(recorder, alert_source, directory, settings.alert_titles)
        self._securing = Securing(recorder, self._outcomes, directory, exchange, mailbox,
                                  scheduler, settings,
                                  SharedMailboxes(directory, delegation, self._claims, requests),
                                  cleanup, scope)
        # The checks before any change to an account, for the undo worker too (bootstrap).
        self.guardrails = self._securing.guardrails
        self._verification = Verification(recorder, self._outcomes, exchange, directory,
                                          settings.verify_delays, cleanup,
                                          settings.return_action, self.guardrails,
                                          self._lease)
        self._alert_source = alert_source
        self.pausing = Pausing(recorder, self._episodes)  # the kill switch (handler)
        self._breaker_posts = BreakerPosts(recorder, webhook, follow_up_sends, settings)
        self._notifications = Notifications(
            recorder, alerts, webhook, settings, self._claims,
            None if follow_up_sends is None else self._breaker_posts)
        self._decisions = Decisions(recorder, self._outcomes)

    async def remediate(self, request: RemediationRequest) -> Case:
        """Handle one request: open (or resume, or merge into) a case and run its steps.

        Raises TransientError when a retry later may succeed; permanent failures end the
        case ``escalated`` and return normally.
        """
        if request.request_id is None:
            raise InvalidRequest("a request needs a request_id before the workflow runs")
        if request.force and request.source != "manual":  # parse_request refuses it too
            return await self.reject(
                request.user, f"'force' is accepted only on manual requests (source "
                f"'manual'), not on a request with source {request.source!r}",
                request.source, request.request_id)
        read: dict[str, dict[str, Any] | None] = {}
        if request.alert_ids and self._alert_source is not None:
            request = await self._with_evidence(request, read)
        case, should_run = await self._episodes.case_for(request)
        case = await self._settle_claims(case, request, read)
        if case.state is CaseState.AWAITING_APPROVAL and request.source == "manual":
            return await self._approved_by_request(case, request)
        if case.state is CaseState.AWAITING_APPROVAL:  # told once, even if the first died
            return await self._outcomes.follow_up(case, "approval")
        if not should_run or case.state.is_final:
            return case
        return await self._secure(case)

    async def _approved_by_request(self, case: Case, request: RemediationRequest) -> Case:
        """A manual request merged into a case waiting for approval: a person asked by hand,
        and in approve mode a manual request proceeds at once (README), so it is the case's
        approval; the guardrails run again as for any approval. A forced request's approval
        is journaled as forced and passes the circuit breaker, as a forced case does."""
        by = ("forced " if request.force else "") + f"manual request {request.request_id}" + (
            f" from {request.requested_by}" if request.requested_by else "")
        taken = await self._take_waiting(case, f"approval by {by}")
        if taken is None:
            return await self._recorder.require(case.case_id)
        case = await self._recorder.note(taken, "approved", StepStatus.INFO, f"approved by {by}",
                                         {"approved_by": by, "request_id": request.request_id,
                                          "forced": request.force})
        return await self._secure(case)

    async def _take_waiting(self, case: Case, what: str) -> Case | None:
        """Move a waiting case on for an approval (``what``), under the version read: of an
        approval and a reject (or the approval timeout) that read one version, one is
        stored (``service.decisions``). None when another decision won: ``what`` is
        journaled refused, with what became of the case, and nothing is done."""
        try:
            # "waiting for approval: ..." no longer says where the case stands.
            return await self._recorder.save(case, state=CaseState.IN_PROGRESS, reason=None)
        except ConcurrentUpdate:
            current = await self._recorder.require(case.case_id)
            if current.state is CaseState.AWAITING_APPROVAL:
                raise  # it changed and still waits: the delivery is tried again
            refusal = decided_refusal(current, what) or (
                f"{what} refused: case {case.case_id} became {current.state.value} while it "
                "was being approved; nothing was done")
            await self._recorder.note(current, APPROVAL_REFUSED, StepStatus.INFO, refusal)
            log.warning("case %s: %s", case.case_id, refusal)
            return None

    async def approve(self, approval: Approval, *, retry: bool = False) -> Case:
        """Let a case waiting for approval proceed (approve mode). ``retry``: this delivery
        is the approval's own retry (a scheduled copy, or a redelivery): only then does an
        approved case that stopped in progress go on from its next step; any other copy
        (a replay, on another session, while the first still works) changes nothing.

        The case is moved on under the version read before ``approved`` is journaled: an
        approval racing a reject (or the approval timeout) is stored only if it wins, and
        one that lost, or that comes after the case ended without it, is journaled
        ``approval_refused`` with what became of the case and does nothing."""
        case = await self._recorder.require(approval.case_id)
        refusal = _approval_refusal(case, approval)
        if refusal is not None:  # the handler journals it as a rejected request too
            await self._recorder.note(case, APPROVAL_REFUSED, StepStatus.INFO, refusal)
            raise InvalidRequest(refusal)
        if case.state is CaseState.IN_PROGRESS and _was_approved(case):
            if not retry:
                log.info("approval of case %s ignored: already approved, in progress",
                         case.case_id)
                return case
            # The retry of an approval whose work failed after it was accepted: the case
            # goes on from its next step (never stuck because the copy finds it not waiting).
            return await self._secure(case)
        what = f"approval by {approval.approved_by}"
        if case.state is not CaseState.AWAITING_APPROVAL:
            refusal = decided_refusal(case, what) or (
                f"{what} refused: case {case.case_id} is {case.state.value}, not awaiting "
                "approval; nothing was done"
                if case.state.is_final and not _was_approved(case) else None)
            if refusal is not None:  # a reject, a close, an expiry: said on the case
                return await self._recorder.note(case, APPROVAL_REFUSED, StepStatus.INFO,
                                                 refusal)
            log.info("approval of case %s ignored: it is %s", case.case_id, case.state.value)
            return case
        taken = await self._take_waiting(case, what)
        if taken is None:
            return await self._recorder.require(case.case_id)
        case = await self._recorder.note(taken, APPROVED, StepStatus.INFO,
                                         f"approved by {approval.approved_by}",
                                         {"approved_by": approval.approved_by})
        return await self._secure(case)

    async def reject_waiting(self, case_id: str, *, by: str, reason: str) -> Decided:
        """``remediation reject``: a person ends a case waiting for approval ``rejected``;
        nothing changes in the tenant (``service.decisions``). Raises InvalidRequest."""
        return await self._decisions.reject(case_id, by=by, reason=reason)

    async def close_escalated(self, case_id: str, *, by: str, reason: str) -> Decided:
        """``remediation close``: a person who handled an escalated case ends it ``closed``
        (``service.decisions``). Raises InvalidRequest."""
        return await self._decisions.close(case_id, by=by, reason=reason)

    async def resume(self, resume: Resume) -> Case:
        """Take a working case on from its next step, whatever stopped it (the sweeper's
        message): received or in progress → the securing steps (from the journal, nothing
        done twice); awaiting verification → its last scheduled check, now due. A message
        the case did not journal (its token), or naming another account, is journaled
        refused and changes nothing; a case waiting for a person or ended is left as it is.

        Raises TransientError when a retry later may succeed."""
        case = await self._recorder.require(resume.case_id)
        refusal = _resume_refusal(case, resume)
        if refusal is not None:
            return await self._recorder.note(case, RESUME_REFUSED, StepStatus.INFO, refusal)
        if case.state.is_final or case.state is CaseState.AWAITING_APPROVAL:
            return case
        if case.state is CaseState.AWAITING_VERIFICATION:
            attempts = [int(check["attempt"]) for check in (case.done(SCHEDULE) or _NO_STEP)
                        .data.get("checks", [])]
            if not attempts:
                return await self.escalate(case.case_id, "awaiting verification with no "
                                           "check scheduled: a human must verify the unblock",
                                           kind=EscalationKind.UNVERIFIED)
            return await self.verify(VerificationCheck(case.case_id, case.user, max(attempts)))
        if case.user_id is None:  # stopped before its lookup: the request runs again
            request = _request_of(case)
            if request is None:
                return await self.escalate(case.case_id, "stopped before its lookup, and its "
                                           "request is not on record: a human must look",
                                           kind=EscalationKind.STUCK)
            return await self.remediate(request)
        return await self._secure(case)

    async def _with_evidence(self, request: RemediationRequest,
                             read: dict[str, dict[str, Any] | None]) -> RemediationRequest:
        """The request with the evidence Microsoft confirms: which of its alert ids are
        outbound-spam alerts about its account as Graph has them (``evidence_ids``), and
        when the newest was created (``evidence_at``), never as the message claims: a
        forged old time would merge a new alert into a finished case, a made-up id would
        count as new evidence. An id Graph answers "not found" for (or another kind of
        alert, another account's) is no evidence. One that cannot be confirmed or refused
        now (the read failed, the directory cannot say whose it is, no readable creation
        time) is neither: ``unconfirmed_ids``, asked again later (issue 14, point 3). The
        alerts read go into ``read``, so the claims are checked on the same answers without
        reading again."""
        times: list[datetime] = []
        evidence: list[str] = []
        unconfirmed: list[str] = []
        accounts: dict[str, DirectoryUser | str] = {}
        for position, alert_id in enumerate(request.alert_ids):
            try:
                read[alert_id] = await self._claims.read(alert_id)
            except PermanentError as error:  # refused (403, 400): Microsoft confirmed nothing
                log.info("alert %s is no evidence: Graph refused to read it (%s)", alert_id,
                         error.reason)
                continue
            except RemediationError:  # Graph is failing: the rest is not read now either
                unconfirmed += request.alert_ids[position:]
                break
            try:
                why = await self._claims.why_not_evidence(alert_id, read[alert_id],
                                                          request.user, accounts)
            except RemediationError:  # the directory cannot tell now: whose it is is unknown
                unconfirmed.append(alert_id)
                continue
            if why is not None:
                log.info("alert %s is no evidence: %s", alert_id, why)
                continue
            created = parse_evidence_time((read[alert_id] or {}).get("createdDateTime"))
            if created is None:  # Graph always dates an alert: not evidence of anything new
                unconfirmed.append(alert_id)
                continue
            evidence.append(alert_id)
            times.append(created)
        return replace(request, evidence_at=max(times, default=None),
                       evidence_ids=tuple(evidence), unconfirmed_ids=tuple(unconfirmed))

    async def _settle_claims(self, case: Case, request: RemediationRequest,
                             read: dict[str, dict[str, Any] | None]) -> Case:
        """Confirm or ignore the alert ids the request named, before anything is said on
        them; what cannot be read now is read by the alert update, before it comments."""
        if not request.alert_ids or case.state is CaseState.REJECTED:
            return case
        try:
            # Every id is read back, whatever the request says of its source: a queue message
            # can claim source "alert" as easily as a person can name an alert id.
            return await self._claims.settle(case, request.alert_ids, read)
        except RemediationError as error:
            log.warning("case %s: alert ids not confirmed yet (%s); the alert update will",
                        case.case_id, error.reason)
            return await self._recorder.require(case.case_id)

    async def _secure(self, case: Case) -> Case:
        """Take the case on from its next step, holding it (``service.case_lease``; raises
        CaseBusy when another worker does): as the journal has it once held, and only while
        it is still to be secured (that other worker may have finished it)."""
        if case.state not in _TO_SECURE:  # a copy of a request it already secured
            return case
        async with self._lease.hold(case.case_id):
            case = await self._recorder.require(case.case_id)
            if case.state not in _TO_SECURE:
                return case
            try:
                return await self._securing.run(case)
            except PermanentError as error:
                return await self.escalate(case.case_id, error.reason, kind=error.kind)

    async def verify(self, check: VerificationCheck) -> Case:
        """Re-check the Restricted users list; verify, wait for the next check, or escalate."""
        return await self._verification.verify(check)

    async def update_alerts(self, update: AlertUpdate) -> Case:
        """Bring the case's Defender alerts (and the escalation webhook) up to date."""
        return await self._notifications.deliver(update)

    async def alert_update_gave_up(self, update: AlertUpdate, reason: str) -> None:
        await self._notifications.gave_up(update, reason)

    async def post_held(self, message: BreakerPost) -> Case:
        """The grouped post of the cases the circuit breaker holds (``breaker_posts``)."""
        return await self._breaker_posts.post(message)

    async def held_post_gave_up(self, message: BreakerPost, reason: str) -> None:
        await self._breaker_posts.gave_up(message, reason)

    async def escalate(self, case_id: str, reason: str, *, kind: EscalationKind) -> Case:
        """End a case for a human to take over, and cancel checks it no longer needs;
        ``kind`` names the README's recovery (``remediation.domain.escalation_kinds``)."""
        return await self._outcomes.escalate(case_id, reason, kind=kind)

    async def reject(self, user: str, reason: str, source: str = "unknown",
                     request_id: str | None = None, alert_ids: tuple[str, ...] = ()) -> Case:
        """Journal an invalid request as a ``rejected`` case so it is never lost silently."""
        return await self._episodes.reject(user, reason, source, request_id, alert_ids)

    async def give_up(self, request_id: str, user: str, reason: str,
                      request: RemediationRequest | None = None) -> Case | None:
        """Escalate the case of a message that is about to be dead-lettered; a request that
        failed before its case was journaled (the journal itself failing) gets one now."""
        case = await self._episodes.working_case(request_id)
        if case is None and request is not None:
            return await self._episodes.given_up(request, reason)
        if case is None or case.state.is_final:
            log.error("giving up on request %s for %s: %s", request_id, user, reason)
            return case
        return await self.escalate(case.case_id, reason, kind=EscalationKind.GAVE_UP)

    async def journal_retry(self, detail: str, data: dict[str, Any], *,
                            case_id: str | None = None,
                            request_id: str | None = None) -> Case | None:
        """Note a scheduled retry on the case it concerns (named by id, or by a request it
        works: ``Episodes.working_case``); None when there is no case yet (a lookup failed
        before one was opened)."""
        case = await self._case_named(case_id, request_id)
        if case is None:
            return None
        return await self._recorder.note(case, RETRY, StepStatus.INFO, detail, data)

    async def case(self, case_id: str) -> Case:
        return await self._recorder.require(case_id)

    async def escalation_reason(self, *, case_id: str | None = None,
                                request_id: str | None = None) -> str | None:
        """Why the case (named by id, or by a request it recorded) was escalated; None when
        there is no such case or it is not escalated. Reads only."""
        case = await self._case_named(case_id, request_id)
        if case is None or case.state is not CaseState.ESCALATED:
            return None
        return case.reason

    async def _case_named(self, case_id: str | None, request_id: str | None) -> Case | None:
        if case_id is not None:
            return await self._recorder.journal.get_case(case_id)
        return None if request_id is None else await self._episodes.working_case(request_id)


def _approval_refusal(case: Case, approval: Approval) -> str | None:
    """Why ``approval`` cannot let ``case`` proceed, or None: it must name the case's user
    (its address, object id or any address its lookup found) and a plain approver's name."""
    try:
        approver(approval.approved_by)
    except InvalidRequest as error:
        return f"approval of case {case.case_id} refused: {error.reason}"
    if approval.user.lower() not in names_of(case):
        return (f"approval of case {case.case_id} refused: it names {approval.user}, but the "
                f"case is about {case.user}; nothing was done")
    return None


def _resume_refusal(case: Case, resume: Resume) -> str | None:
    if resume.user.lower() not in names_of(case):
        return (f"resume refused: it names {resume.user}, but case {case.case_id} is about "
                f"{case.user}; nothing was done")
    if not any(step.name == RESUME_QUEUED and step.data.get("token") == resume.token
               for step in case.steps):
        return (f"resume refused: case {case.case_id} queued no such resume; nothing was "
                "done")
    return None


def _request_of(case: Case) -> RemediationRequest | None:
    """The request a case was opened for, as its ``received`` step recorded it."""
    for step in case.steps:
        data = step.data
        if step.name == "received" and isinstance(data.get("request_id"), str):
            return RemediationRequest(
                user=case.user, reason=data.get("reason"),
                requested_by=data.get("requested_by"),
                alert_ids=tuple(data.get("alert_ids") or ()), force=bool(data.get("force")),
                source=str(data.get("source") or case.source),
                request_id=data["request_id"],
                evidence_at=parse_evidence_time(data.get("evidence_at")))
    return None


def _was_approved(case: Case) -> bool:
    return any(step.name == APPROVED for step in case.steps)
