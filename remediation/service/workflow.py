"""The remediation workflow: secure the account, lift the block, prove it stays lifted.

Every step is journaled before and after it acts. A redelivered message finds the case by
its request id and skips each step already journaled as done, so nothing runs twice.
"""

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from remediation.domain.blocks import BlockedSender
from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.directory import DirectoryUser
from remediation.domain.durations import format_duration
from remediation.domain.errors import (
    InvalidRequest,
    PermanentError,
    RemediationError,
    TransientError,
)
from remediation.domain.passwords import generate_password
from remediation.domain.requests import RemediationRequest
from remediation.service.messages import AlertUpdate, VerificationCheck
from remediation.service.ports import (
    AlertNotifier,
    AlertUpdater,
    Clock,
    Directory,
    Journal,
    RestrictedSenders,
    VerificationScheduler,
)

log = logging.getLogger(__name__)

LOOKUP, RESET, REVOKE, UNBLOCK, SCHEDULE = (
    "lookup_user", "reset_password", "revoke_sessions", "unblock", "schedule_verification")


@dataclass(frozen=True)
class WorkflowSettings:
    verify_delays: tuple[timedelta, ...]

    @property
    def merge_window(self) -> timedelta:
        """A finished case absorbs new requests for as long as it could still be verifying."""
        return self.verify_delays[-1]


@dataclass(frozen=True)
class StepResult:
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


def new_case_id(now: datetime) -> str:
    return f"{now:%Y%m%d}-{secrets.token_hex(4)}"


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
    ) -> None:
        self._alerts = alerts
        self._notifier = notifier
        self._directory = directory
        self._exchange = exchange
        self._journal = journal
        self._scheduler = scheduler
        self._clock = clock
        self._settings = settings

    # -- requests ---------------------------------------------------------------------------

    async def remediate(self, request: RemediationRequest) -> Case:
        """Handle one request: open (or resume, or merge into) a case and run its steps.

        Raises TransientError when a retry later may succeed; permanent failures end the
        case ``escalated`` and return normally.
        """
        if request.request_id is None:
            raise InvalidRequest("a request needs a request_id before the workflow runs")
        case, should_run, unknown = await self._case_for(request)
        if not should_run or case.state.is_final:
            return case
        if unknown is not None:  # the directory already said no: journal it, don't ask twice
            case = await self._note(case, LOOKUP, StepStatus.STARTED)
            await self._note(case, LOOKUP, StepStatus.FAILED, unknown.reason)
            return await self.escalate(case.case_id, unknown.reason)
        try:
            return await self._secure_and_unblock(case)
        except PermanentError as error:
            return await self.escalate(case.case_id, error.reason)

    async def reject(self, user: str, reason: str, source: str = "unknown",
                     request_id: str | None = None, alert_ids: tuple[str, ...] = ()) -> Case:
        """Journal an invalid request as a ``rejected`` case so it is never lost silently."""
        now = self._clock.now()
        case = Case(case_id=new_case_id(now), user=user, state=CaseState.REJECTED,
                    created_at=now, updated_at=now, source=source, reason=reason,
                    alert_ids=alert_ids, request_ids=(request_id,) if request_id else ())
        await self._journal.add_case(case)
        await self._journal.add_step(case.case_id, Step("rejected", StepStatus.INFO, now, reason))
        log.warning("rejected request for %s: %s", user, reason)
        return case

    async def give_up(self, request_id: str, user: str, reason: str) -> Case | None:
        """Escalate the case of a message that is about to be dead-lettered."""
        case = await self._journal.latest_case(user)
        if case is None or request_id not in case.request_ids or case.state.is_final:
            log.error("giving up on request %s for %s: %s", request_id, user, reason)
            return case
        return await self.escalate(case.case_id, reason)

    async def escalate(self, case_id: str, reason: str) -> Case:
        """End a case for a human to take over, and cancel checks it no longer needs."""
        case = await self._require(case_id)
        if case.state.is_final:
            return case
        # Queued before the final state is saved: a redelivery after a failed send finds an
        # open case and sends it again (the update waits until the case is escalated).
        case = await self._notify_alerts(case, "escalated")
        case = await self._save(case, state=CaseState.ESCALATED, reason=reason)
        case = await self._note(case, "escalated", StepStatus.INFO, reason)
        await self._cancel_pending_checks(case, after_attempt=-1)
        log.warning("case %s for %s escalated: %s", case.case_id, case.user, reason)
        return await self._require(case_id)

    async def _case_for(
            self, request: RemediationRequest) -> tuple[Case, bool, PermanentError | None]:
        """The case for this request, whether to run it, and a failed directory lookup."""
        assert request.request_id is not None
        known = await self._journal.case_with_request(request.request_id)
        if known is not None:
            return known, True, None
        # Cases are keyed by the account's sender address, however a request names it
        # (object id, UPN, alias), so one person never gets two cases and two resets.
        identity: DirectoryUser | None = None
        unknown: PermanentError | None = None
        try:
            identity = await self._directory.find_user(request.user)
        except PermanentError as error:
            unknown = error
        user = identity.sender_address if identity is not None else request.user
        latest = await self._journal.latest_case(user)
        if latest is not None and not request.force and await self._same_episode(latest):
            return await self._merge(latest, request), False, None
        return await self._open(request, user, identity), True, unknown

    async def _same_episode(self, case: Case) -> bool:
        """Does a new request belong to ``case`` (merge) rather than to a new block episode?

        Open cases absorb everything. An escalated case keeps absorbing requests about any
        block it was handed for as long as that block stays listed: the robot never lifts a
        block a human now owns (``force`` starts over). A verified case absorbs requests for
        a while unless a newer block shows a new episode.
        """
        if case.state in (CaseState.REJECTED, CaseState.SKIPPED, CaseState.PLANNED):
            return False
        if not case.state.is_final:
            return True
        recent = self._clock.now() - case.updated_at <= self._settings.merge_window
        if case.state is CaseState.VERIFIED and not recent:
            return False
        entries = await self._exchange.blocked_entries(case.sender or case.user)
        if case.state is CaseState.ESCALATED:
            if not entries:
                return recent
            known = max(filter(None, (case.last_block_seen, case.block_created)),
                        default=case.updated_at)
            return not any(entry.is_newer_than(known) for entry in entries)
        return not any(entry.is_newer_than(case.block_created) for entry in entries)

    async def _merge(self, case: Case, request: RemediationRequest) -> Case:
        assert request.request_id is not None
        new_alerts = tuple(a for a in request.alert_ids if a not in case.alert_ids)
        alert_ids = case.alert_ids + new_alerts
        case = await self._save(case, alert_ids=alert_ids,
                                request_ids=(*case.request_ids, request.request_id))
        detail = f"duplicate {request.source} request merged; no second reset or unblock"
        if request.requested_by:
            detail += f" (requested by {request.requested_by})"
        case = await self._note(case, "merged", StepStatus.INFO, detail, _request_data(request))
        log.info("request %s merged into case %s", request.request_id, case.case_id)
        if new_alerts:
            phase = {CaseState.VERIFIED: "verified", CaseState.ESCALATED: "escalated"}.get(
                case.state, "start")
            await self._notify_alerts(case, phase)
        return await self._require(case.case_id)

    async def _open(self, request: RemediationRequest, user: str,
                    identity: DirectoryUser | None) -> Case:
        assert request.request_id is not None
        now = self._clock.now()
        case = Case(case_id=new_case_id(now), user=user, state=CaseState.RECEIVED,
                    created_at=now, updated_at=now, source=request.source,
                    reason=request.reason, requested_by=request.requested_by,
                    alert_ids=request.alert_ids, request_ids=(request.request_id,),
                    force=request.force, user_id=identity.id if identity else None,
                    sender=identity.sender_address if identity else None)
        await self._journal.add_case(case)
        detail = f"{request.source} request" + (" (forced)" if request.force else "")
        if request.user != user:
            detail += f" for {request.user}"
        case = await self._note(case, "received", StepStatus.INFO, detail, _request_data(request))
        if identity is not None:
            found = _lookup_result(identity)
            case = await self._note(case, LOOKUP, StepStatus.DONE, found.detail, found.data)
        log.info("case %s opened for %s (%s)", case.case_id, case.user, request.source)
        return case

    async def _notify_alerts(self, case: Case, phase: str) -> Case:
        """Queue the alert update for ``phase`` once per set of alerts (journaled)."""
        if self._notifier is None or not case.alert_ids:
            return case
        update = AlertUpdate(case.case_id, case.user, phase, len(case.alert_ids))
        name = f"alerts_queued:{phase}:{update.alert_count}"
        if case.done(name):
            return case
        await self._notifier.notify(update)
        return await self._note(case, name, StepStatus.DONE,
                         f"Defender alert update ({phase}) queued for "
                         f"{update.alert_count} alert(s)")

    async def _secure_and_unblock(self, case: Case) -> Case:
        if case.state is CaseState.RECEIVED:
            case = await self._save(case, state=CaseState.IN_PROGRESS)
        await self._notify_alerts(case, "start")
        case, found = await self._run(case, LOOKUP, lambda: self._lookup(case))
        if case.user_id is None:
            case = await self._save(case, user_id=found.data["user_id"],
                                    sender=found.data["sender"])
        user_id, sender = found.data["user_id"], found.data["sender"]
        case, _ = await self._run(case, RESET, lambda: self._reset(user_id))
        case, _ = await self._run(case, REVOKE, lambda: self._revoke(user_id))
        case, unblocked = await self._run(case, UNBLOCK, lambda: self._unblock(case, sender))
        if case.unblocked_at is None:
            block = unblocked.data.get("block_created")
            case = await self._save(
                case, block_created=datetime.fromisoformat(block) if block else None,
                unblocked_at=datetime.fromisoformat(unblocked.data["at"]))
        case, _ = await self._run(case, SCHEDULE, lambda: self._schedule(case))
        return await self._save(case, state=CaseState.AWAITING_VERIFICATION)

    async def _lookup(self, case: Case) -> StepResult:
        return _lookup_result(await self._directory.find_user(case.user))

    async def _reset(self, user_id: str) -> StepResult:
        await self._directory.reset_password(user_id, generate_password())
        return StepResult("new random password set, change forced at next sign-in; "
                          "the password was not kept or sent anywhere")

    async def _revoke(self, user_id: str) -> StepResult:
        await self._directory.revoke_sessions(user_id)
        return StepResult("sign-in sessions and refresh tokens revoked")

    async def _unblock(self, case: Case, sender: str) -> StepResult:
        now = self._clock.now()
        entries = await self._exchange.blocked_entries(sender)
        if not entries:
            return StepResult("not on the Restricted users list; nothing to unblock",
                              {"listed": False, "at": now.isoformat()})
        block = _newest(entries)
        earlier = _block_seen_before(case)
        if earlier is not None and block.is_newer_than(earlier):
            await self._save(case, last_block_seen=block.created)
            raise PermanentError(
                f"blocked again at {_when(block.created)} while the unblock was in progress: "
                "the account may still be sending spam; not unblocking again")
        await self._note(case, UNBLOCK, StepStatus.INFO,
                         f"listed since {_when(block.created)} ({block.reason})",
                         {"block_created": _iso(block.created)})
        await self._exchange.unblock(
            sender, f"Remediation case {case.case_id}: password reset and sessions revoked")
        return StepResult(
            f"removed from the Restricted users list (blocked {_when(block.created)})",
            {"listed": True, "block_created": _iso(block.created),
                           "block_reason": block.reason, "at": now.isoformat()})

    async def _schedule(self, case: Case) -> StepResult:
        base = case.unblocked_at or self._clock.now()
        checks = []
        for attempt, delay in enumerate(self._settings.verify_delays):
            at = base + delay
            check = VerificationCheck(case.case_id, case.user, attempt)
            sequence_number = await self._scheduler.schedule(check, at)
            checks.append({"attempt": attempt, "at": at.isoformat(),
                           "sequence_number": sequence_number})
        delays = ", ".join(format_duration(d) for d in self._settings.verify_delays)
        return StepResult(f"verification scheduled at +{delays}", {"checks": checks})

    # -- verification -----------------------------------------------------------------------

    async def verify(self, check: VerificationCheck) -> Case:
        """Re-check the Restricted users list; verify, wait for the next check, or escalate.

        The check's finding is journaled first and acted on after, so a redelivery after a
        failure in between acts on the same finding instead of looking again.
        """
        case = await self._journal.get_case(check.case_id)
        if case is None:
            raise InvalidRequest(f"no case {check.case_id!r} to verify")
        if case.state is not CaseState.AWAITING_VERIFICATION:
            return case
        name = f"verify_{check.attempt}"
        try:
            finding = case.done(name) or await self._look(case, name, check.attempt)
            return await self._conclude(case.case_id, check.attempt, finding)
        except PermanentError as error:
            return await self.escalate(case.case_id, error.reason)

    async def _look(self, case: Case, name: str, attempt: int) -> Step:
        entries = await self._exchange.blocked_entries(case.sender or case.user)
        newer = [entry for entry in entries if entry.is_newer_than(case.block_created)]
        since = format_duration(self._since(attempt))
        if newer:
            block = _newest(newer)
            case = await self._save(case, last_block_seen=block.created)
            detail = f"blocked again at {_when(block.created)}"
            data: dict[str, Any] = {"listed": True, "reblocked": True,
                                    "block_created": _iso(block.created)}
        elif entries:
            detail, data = f"still listed {since} after the unblock", {"listed": True}
        else:
            detail = f"not on the Restricted users list {since} after the unblock"
            data = {"listed": False}
        case = await self._note(case, name, StepStatus.DONE, detail, data)
        finding = case.done(name)
        assert finding is not None
        return finding

    async def _conclude(self, case_id: str, attempt: int, finding: Step) -> Case:
        if finding.data.get("reblocked"):
            created = finding.data.get("block_created")
            when = _when(datetime.fromisoformat(created) if created else None)
            return await self.escalate(
                case_id, f"re-blocked at {when} after the unblock: the account is probably "
                "still sending spam; investigate before unblocking again")
        if finding.data.get("listed"):
            if attempt >= len(self._settings.verify_delays) - 1:
                return await self.escalate(
                    case_id, f"still on the Restricted users list "
                    f"{format_duration(self._since(attempt))} after the unblock")
            return await self._require(case_id)
        case = await self._notify_alerts(await self._require(case_id), "verified")
        case = await self._save(case, state=CaseState.VERIFIED, reason=None)
        await self._cancel_pending_checks(case, after_attempt=attempt)
        log.info("case %s for %s verified", case.case_id, case.user)
        return await self._require(case_id)

    def _since(self, attempt: int) -> timedelta:
        delays = self._settings.verify_delays
        return delays[min(attempt, len(delays) - 1)]

    # -- Defender alerts --------------------------------------------------------------------

    async def update_alerts(self, update: AlertUpdate) -> Case:
        """Comment on each alert of the case and set its status for ``update.phase``.

        Each comment and each status change is journaled as done, so a redelivery after a
        transient failure repeats neither. A permanent failure (alert gone, no permission)
        is journaled and skipped: alerts are the report, never a reason to stop.
        """
        case = await self._journal.get_case(update.case_id)
        if case is None:
            raise InvalidRequest(f"no case {update.case_id!r} for an alert update")
        if self._alerts is None:
            return case
        expected = {"verified": CaseState.VERIFIED, "escalated": CaseState.ESCALATED}.get(
            update.phase)
        if expected is not None and case.state is not expected:
            # Queued just before the case was saved final; try again once it is.
            raise TransientError(f"case {case.case_id} is not {expected.value} yet")
        text = _alert_comment(case, update.phase, self._settings)
        changes = _ALERT_CHANGES[update.phase]
        for alert_id in case.alert_ids:
            case = await self._alert_step(case, f"alert_comment:{update.phase}:{alert_id}",
                                          partial(self._alerts_comment, alert_id, text))
            case = await self._alert_step(case, f"alert_status:{update.phase}:{alert_id}",
                                          partial(self._alerts_update, alert_id, changes))
        return case

    async def _alert_step(self, case: Case, name: str,
                          action: Callable[[], Awaitable[StepResult]]) -> Case:
        try:
            case, _ = await self._run(case, name, action)
        except PermanentError as error:
            log.warning("case %s: %s failed: %s", case.case_id, name, error.reason)
            case = await self._require(case.case_id)
        return case

    async def _alerts_comment(self, alert_id: str, text: str) -> StepResult:
        assert self._alerts is not None
        await self._alerts.comment(alert_id, text)
        return StepResult(f"commented on alert {alert_id}")

    async def _alerts_update(self, alert_id: str, changes: dict[str, str]) -> StepResult:
        assert self._alerts is not None
        await self._alerts.update(alert_id, changes)
        return StepResult(f"alert {alert_id} set to " + ", ".join(
            f"{key}={value}" for key, value in changes.items()))

    async def alert_update_gave_up(self, update: AlertUpdate, reason: str) -> None:
        await self._journal.add_step(update.case_id, Step(
            f"alerts:{update.phase}", StepStatus.FAILED, self._clock.now(), reason))

    # -- journal helpers --------------------------------------------------------------------

    async def _run(self, case: Case, name: str,
                   action: Callable[[], Awaitable[StepResult]]) -> tuple[Case, StepResult]:
        done = case.done(name)
        if done is not None:
            return case, StepResult(done.detail, done.data)
        case = await self._note(case, name, StepStatus.STARTED)
        try:
            result = await action()
        except RemediationError as error:
            await self._note(case, name, StepStatus.FAILED, error.reason)
            raise
        case = await self._note(await self._require(case.case_id), name, StepStatus.DONE,
                                result.detail, result.data)
        return case, result

    async def _note(self, case: Case, name: str, status: StepStatus, detail: str = "",
                    data: dict[str, Any] | None = None) -> Case:
        step = Step(name, status, self._clock.now(), detail, data or {})
        await self._journal.add_step(case.case_id, step)
        return case.evolve(steps=(*case.steps, step))

    async def _save(self, case: Case, **changes: Any) -> Case:
        stored = await self._journal.update_case(
            case.evolve(updated_at=self._clock.now(), **changes))
        return stored.evolve(steps=case.steps)

    async def case(self, case_id: str) -> Case:
        return await self._require(case_id)

    async def _require(self, case_id: str) -> Case:
        case = await self._journal.get_case(case_id)
        if case is None:
            raise InvalidRequest(f"case {case_id!r} vanished from the journal")
        return case

    async def _cancel_pending_checks(self, case: Case, *, after_attempt: int) -> None:
        scheduled = case.done(SCHEDULE)
        if scheduled is None:
            return
        for check in scheduled.data.get("checks", []):
            due = datetime.fromisoformat(check["at"])
            if check["attempt"] > after_attempt and due > self._clock.now():
                try:
                    await self._scheduler.cancel(int(check["sequence_number"]))
                except RemediationError as error:  # harmless: the check finds a final case
                    log.info("could not cancel check %s of %s: %s", check["attempt"],
                             case.case_id, error.reason)


_ALERT_CHANGES: dict[str, dict[str, str]] = {
    "start": {"status": "inProgress"},
    "verified": {"status": "resolved", "classification": "truePositive",
                 "determination": "compromisedAccount"},
    "escalated": {"status": "inProgress"},
}


def _alert_comment(case: Case, phase: str, settings: WorkflowSettings) -> str:
    prefix = f"Automated remediation, case {case.case_id} ({case.user}):"
    if phase == "start":
        delays = ", ".join(f"+{format_duration(d)}" for d in settings.verify_delays)
        return (f"{prefix} resetting the password (change forced at next sign-in), revoking "
                "sign-in sessions, then removing the block from the Restricted users list. "
                f"The block will be re-checked at {delays}.")
    if phase == "verified":
        return (f"{prefix} done. Password reset, sessions revoked, block removed, and the "
                "sender is no longer on the Restricted users list. Resolved as a true "
                "positive (compromised account). Ask the user to choose a new password "
                "after verifying their identity.")
    return f"{prefix} needs a human. {case.reason or 'escalated'}"


def _lookup_result(user: DirectoryUser) -> StepResult:
    return StepResult(f"found {user.user_principal_name}",
                      {"user_id": user.id, "sender": user.sender_address,
                       "upn": user.user_principal_name})


def _request_data(request: RemediationRequest) -> dict[str, Any]:
    return {"request_id": request.request_id, "source": request.source,
            "requested_by": request.requested_by, "reason": request.reason,
            "alert_ids": list(request.alert_ids), "force": request.force}


def _newest(entries: list[BlockedSender]) -> BlockedSender:
    return max(entries, key=lambda entry: entry.created.timestamp() if entry.created else 0.0)


def _block_seen_before(case: Case) -> datetime | None:
    """The block an interrupted earlier attempt of the unblock step was about to remove."""
    for step in reversed(case.steps):
        if step.name == UNBLOCK and step.status is StepStatus.INFO and step.data.get(
                "block_created"):
            return datetime.fromisoformat(step.data["block_created"])
    return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else "an unknown time"
