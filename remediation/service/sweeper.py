"""The sweeper: no working case is left with nothing that will move it.

Every message that moves a case can be lost (a retry that could not be scheduled, a copy
completed without its work, a dead-lettered check, a crash between two writes). The sweeper
reads the working cases (received, in progress, awaiting verification; a case waiting for a
person's approval is the approval timeout's, below) and finds those whose pending work is
overdue: nothing journaled that moves it (``moves_case``: a refused message, a duplicate
merged, an alert id ignored never count), no retry due and no check due for longer than
``stall_after`` (``STALL_AFTER``, 24 minutes: a delivery's time budget, 8, its settlement,
1, and the longest back-off, 15), by times no clock far ahead of ours wrote
(``pending_until``). It queues a message that resumes the case from its journal
(``Resume``, its token journaled first so the message is the case's own, deliverable at
once rather than at this sweeper's "now"), or after
``max_resumes`` resumes in a row that moved nothing escalates the case with the reason.
The poll runs it on every worker; ``run --until-idle`` runs it again once the queues are
empty, when a working case has by definition nothing pending (``idle``). A case waiting for
approval longer than APPROVAL_TIMEOUT (``approval_timeout``) is escalated with that reason
(``approval_expired``); shorter, it is left alone, idle or not: a person's decision is no
pending message. An approval queued in time and not arrived yet holds the expiry off, for
at most APPROVAL_TIMEOUT more (``service.approval_wait``). While the kill switch is on
(``remediation pause``) it does nothing: the cases wait for the pause, their messages are
kept (``service.pausing``), none is stuck, and no approval expires (it expires at the first
sweep after ``resume``). What it does to a case it claimed is a span of its own,
``remediation sweep`` (``telemetry.case_span``), in the case's trace and carrying the state
it left the case in, as a delivery's span does: a case it escalated shows escalated.

Several sweepers may read one case at once. Each claims the case before it acts, by
storing it back unchanged but for ``updated_at`` under the version it read
(``Journal.update_case``: ConcurrentUpdate when the version moved): of the sweepers that
read one version, exactly one wins, in one process or many (SQLite compares the version in
its UPDATE, Table Storage under the row's ETag); the others, and a sweeper whose case a
worker changed meanwhile, leave it alone. The version rather than a lease
(``claim_step``): it needs no lease length nor agreeing clocks, a case that moved since it
was read is never resumed, and a worker saving the case at the same time reads it again
and goes on (``CaseRecorder.save`` builds on a change of ``updated_at`` alone). The newer
``updated_at`` also makes the case not overdue to a sweeper that reads it after the claim.
"""

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from remediation.domain.case_states import WORKING
from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.durations import format_duration
from remediation.domain.errors import ConcurrentUpdate
from remediation.domain.escalation_kinds import EscalationKind
from remediation.service import telemetry
from remediation.service.admission import CLOCK_SKEW
from remediation.service.approval_wait import EXPIRY_DEFERRED, held_by
from remediation.service.episodes import NEW_EPISODE
from remediation.service.handler import (
    DELIVERY_TIME_BUDGET,
    MAX_RETRY_BACKOFF,
    SETTLEMENT_TIME_BUDGET,
)
from remediation.service.journaling import SCHEDULE, UNBLOCK, CaseRecorder
from remediation.service.messages import Resume
from remediation.service.ports import Clock, Journal, MessageRetries
from remediation.service.workflow import APPROVED, RESUME_QUEUED, RETRY, RemediationWorkflow

log = logging.getLogger(__name__)

# 24 minutes (8 + 1 + 15); the README says so. Not a setting.
STALL_AFTER = DELIVERY_TIME_BUDGET + SETTLEMENT_TIME_BUDGET + MAX_RETRY_BACKOFF
MAX_RESUMES = 3  # resumes in a row that moved nothing, then the case is escalated
SWEPT = frozenset(WORKING - {CaseState.AWAITING_APPROVAL})


@dataclass
class SweepReport:
    """Case ids resumed and escalated, and the cases that could not be swept (why)."""

    resumed: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Sweeper:
    journal: Journal
    workflow: RemediationWorkflow
    resumes: MessageRetries  # the requests queue
    clock: Clock
    session_for: Callable[[str], str]  # the queue's session id of a user
    stall_after: timedelta = STALL_AFTER
    max_resumes: int = MAX_RESUMES
    # APPROVAL_TIMEOUT: a case waiting for a person's approval longer escalates; None:
    # waiting cases are left alone (``expire_approval``).
    approval_timeout: timedelta | None = None

    def with_stall_after(self, stall_after: timedelta) -> "Sweeper":
        """The same sweeper with another bound (the demo's and tests' compressed time)."""
        return replace(self, stall_after=stall_after)

    async def sweep(self, *, idle: bool = False) -> SweepReport:
        """Resume or escalate every working case whose pending work is overdue; with
        ``idle`` (the queues hold nothing), every working case. Never raises: a case that
        cannot be swept is named in the report's ``errors``, the next sweep tries again."""
        report = SweepReport()
        try:
            if await self.journal.pause_state() is not None:
                return report  # kill switch: a case held by a pause is not stuck
        except Exception as error:  # unsure whether paused: touch nothing
            report.errors.append(f"the kill switch could not be read: {_why(error)}")
            return report
        try:
            working = await self.journal.working_cases()
        except Exception as error:
            report.errors.append(f"working cases could not be listed: {_why(error)}")
            return report
        now = self.clock.now()
        for case in working:
            try:
                if case.state in SWEPT:
                    await self._sweep_one(case, now, idle, report)
                elif case.state is CaseState.AWAITING_APPROVAL:
                    await self._expire_approval(case, now, report)
            except Exception as error:
                report.errors.append(f"case {case.case_id}: {_why(error)}")
        if report.resumed or report.escalated or report.errors:
            log.warning("sweep: %d resumed, %d escalated, errors: %s", len(report.resumed),
                        len(report.escalated), "; ".join(report.errors) or "none")
        return report

    async def _sweep_one(self, case: Case, now: datetime, idle: bool,
                         report: SweepReport) -> None:
        due = pending_until(case, now)
        if not idle and due is not None and now < due + self.stall_after:
            return
        unmoved = resumes_that_moved_nothing(case)
        try:  # the claim: of the sweepers that read this version, one goes on
            case = (await self.journal.update_case(case.evolve(updated_at=now))).evolve(
                steps=case.steps)
        except ConcurrentUpdate:
            log.info("sweep: case %s changed since it was read; left to whoever changed it",
                     case.case_id)
            return
        with telemetry.case_span(case, telemetry.SWEEP) as trace:
            trace.settled(await self._move(case, due, unmoved, idle, report))

    async def _move(self, case: Case, due: datetime | None, unmoved: int, idle: bool,
                    report: SweepReport) -> Case:
        """Escalate the claimed ``case`` (stuck) or queue its resume; returns it as left."""
        idle_since = f"{due:%Y-%m-%d %H:%M:%S} UTC" if due is not None else (
            "an unknown time (every time it records is ahead of this clock)")
        if unmoved >= self.max_resumes:
            case = await self.workflow.escalate(
                case.case_id, f"stuck {case.state.value}: nothing moved it since {idle_since}"
                f", {unmoved} resumes later; a human must finish it (the journal says how "
                "far it got)", kind=EscalationKind.STUCK)
            report.escalated.append(case.case_id)
            return case
        recorder = CaseRecorder(self.journal, self.clock)
        token = secrets.token_hex(8)
        why = ("the queues are empty" if idle else
               f"nothing pending for {format_duration(self.stall_after)}")
        case = await recorder.note(case, RESUME_QUEUED, StepStatus.INFO,
                                   f"resumed by the sweeper: {case.state.value} since "
                                   f"{idle_since}, {why}",
                                   {"token": token, "state": case.state.value})
        resume = Resume(case.case_id, case.user, token)
        # Deliverable at once, not "at now": a sweeper whose clock jumped ahead would have
        # the broker hold the resume for the size of the jump.
        await self.resumes.schedule_copy(resume.to_json().encode(),
                                         session_id=self.session_for(case.user),
                                         properties={"kind": "resume",
                                                     "case_id": case.case_id}, at=None)
        report.resumed.append(case.case_id)
        return case


    async def _expire_approval(self, case: Case, now: datetime, report: SweepReport) -> None:
        """Escalate a case that has waited for approval longer than ``approval_timeout``
        (``approval_expired``, nothing changed). Claimed like any swept case, so one sweeper
        escalates it; an approval or a reject stored meanwhile wins and the case is left to
        it: before the claim, the claim fails; after it, the escalation does, for an
        ``approval_expired`` escalation takes only a case still waiting, read and saved
        under one version (``Outcomes.escalate``, ``ONLY_FROM``). Only an expiry that was
        stored is counted in ``report``. An approval given in time and still on its way
        (kept by a pause, say) holds the expiry off (``service.approval_wait``)."""
        since = waiting_since(case, now)
        timeout = self.approval_timeout
        if timeout is None or (since is not None and now < since + timeout):
            return
        held = held_by(case, since, timeout, now)  # an approval given in time, on its way
        if held is not None:
            if held.until is None:  # first found held: noted, the bound counts from here
                await CaseRecorder(self.journal, self.clock).note(
                    case, EXPIRY_DEFERRED, StepStatus.INFO, held.note(),
                    {"approval_queued_at": held.approval.at.isoformat()})
                return
            if now < held.until:
                return
        try:  # the claim: of the sweepers that read this version, one goes on
            await self.journal.update_case(case.evolve(updated_at=now))
        except ConcurrentUpdate:
            log.info("sweep: case %s changed since it was read; left to whoever changed it",
                     case.case_id)
            return
        waited = (f"waiting since {since:%Y-%m-%d %H:%M:%S} UTC" if since is not None
                  else "waiting since an unknown time (every time it records is ahead of "
                  "this clock)")
        why = (f"nobody approved or rejected the case within APPROVAL_TIMEOUT "
               f"({format_duration(timeout)})" if held is None else held.never_arrived())
        with telemetry.case_span(case, telemetry.SWEEP) as trace:
            try:
                escalated = await self.workflow.escalate(
                    case.case_id, f"approval timed out: {why}, {waited}; nothing was changed",
                    kind=EscalationKind.APPROVAL_EXPIRED)
            except ConcurrentUpdate:  # approved or rejected after the claim: that one stands
                log.info("sweep: case %s was decided while its approval expired; left to "
                         "that decision", case.case_id)
                return
            trace.settled(escalated)
        report.escalated.append(case.case_id)


def waiting_since(case: Case, now: datetime) -> datetime | None:
    """When ``case`` last began to wait for approval (its ``awaiting_approval`` step, else
    its ``updated_at``), by times no clock far ahead of ``now`` wrote (``pending_until``);
    None when no time can be trusted: then the timeout is taken as passed."""
    times = [step.at for step in case.steps
             if step.name == "awaiting_approval" and step.at <= now + CLOCK_SKEW]
    if times:
        return max(times)
    return case.updated_at if case.updated_at <= now + CLOCK_SKEW else None


def resumes_that_moved_nothing(case: Case) -> int:
    """How many resumes in a row left ``case`` where it was: its ``resume_queued`` steps
    since it last moved, that is since its last step ``done`` (a step is done once: a
    redelivery skips it; a follow-up that only reports, ``REPORTING``, moves nothing) or
    since it changed state (each ``resume_queued`` records the
    state it was queued in; one from before the state was recorded counts as queued in the
    current one). A resume that was lost, refused, or whose step failed again moved nothing.
    """
    count = 0
    for step in reversed(case.steps):
        if step.status is StepStatus.DONE and not step.name.startswith(REPORTING):
            break
        if step.name == RESUME_QUEUED:
            if step.data.get("state", case.state.value) != case.state.value:
                break
            count += 1
    return count


#: The notes (``StepStatus.INFO`` steps) that record the case moving on, or work scheduled
#: to move it: the request taken in, an approval, the wait for one, an unblock found done,
#: a retry scheduled (its ``at``), a resume queued, a new episode, an escalation.
MOVING_NOTES = frozenset({"received", APPROVED, "awaiting_approval", UNBLOCK, RETRY,
                          RESUME_QUEUED, NEW_EPISODE, "escalated"})
#: The follow-ups that report on a case (Defender alerts, the escalation webhook): their
#: steps never move it, and a stream of requests naming new alert ids would queue one each.
REPORTING = ("alerts_queued:", "alert_comment:", "alert_status:", "alerts:", "webhook:")


def moves_case(step: Step) -> bool:
    """Does ``step`` record progress of the case (or work scheduled to move it), so that
    the sweeper waits for it? The one rule ``pending_until`` applies to every step.

    Yes for a step of the work itself, started, done or failed (lookup, securing, cleanup,
    unblock, schedule, each verification check) and for the notes in ``MOVING_NOTES``
    (retries, resumes, approvals). No for the follow-ups that only report (``REPORTING``)
    and for every other note: a refused message (``*_refused``: a forged resume, a check
    for an attempt never scheduled or before its time, an approval or alert update that
    does not match), a duplicate request merged, an alert id confirmed or ignored, an
    approval queued. Those change nothing; counted, a stream of them would keep a stuck case
    from the sweeper for ever. A new note is thus "changes nothing" unless it is added to
    ``MOVING_NOTES``."""
    if step.name.startswith(REPORTING):
        return False
    return step.status is not StepStatus.INFO or step.name in MOVING_NOTES


def pending_until(case: Case, now: datetime) -> datetime | None:
    """When the last thing that should move ``case`` was due, by this sweeper's clock
    (``now``): its last step that records progress (``moves_case``), a retry that step
    scheduled, its last verification check, or the case's ``updated_at`` (a state change,
    a sweeper's claim), whichever is latest. None when no time can be trusted: overdue.

    Each time was written by the clock of whichever worker wrote it. One ahead of ``now``
    by at most ``CLOCK_SKEW`` (the clocks of two machines, admission.py) is taken as
    ``now``. One further ahead is not trusted at all, nor the retry or checks its step
    scheduled: a worker whose clock jumped ahead (by days, say) would otherwise make the
    case look just moved to every honest sweeper, which would leave it alone for the size
    of the jump. Left out, the case is judged by the times an honest clock wrote; the resume
    the jumped sweeper queued is deliverable at once (``Sweeper.sweep``), so it does not
    wait for the jump either.
    """
    def trusted(at: datetime) -> bool:
        return at <= now + CLOCK_SKEW

    times = [min(case.updated_at, now)] if trusted(case.updated_at) else []
    for step in case.steps:
        if not moves_case(step) or not trusted(step.at):
            continue
        times.append(min(step.at, now))
        at = step.data.get("at") if step.name == RETRY else None
        if isinstance(at, str):
            times.append(datetime.fromisoformat(at))
    scheduled = case.done(SCHEDULE)
    if (scheduled is not None and trusted(scheduled.at)
            and case.state is CaseState.AWAITING_VERIFICATION):
        times += [datetime.fromisoformat(check["at"])
                  for check in scheduled.data.get("checks", []) if check.get("at")]
    return max(times, default=None)


def _why(error: Exception) -> str:
    return str(getattr(error, "reason", None) or type(error).__name__)
