"""From a delivered queue message to a settled one.

The contract with the queue (Service Bus in Azure, SQLite locally): return normally to
complete the message; raise to abandon it, and the broker offers it again *at once* (Functions
retry policies do not cover Service Bus triggers: Microsoft Learn, "Azure Functions error
handling and retries"). A retry later is therefore
ours: on a transient failure the handler schedules a copy of the message at now + back-off
(``RETRY_BACKOFF`` doubling per attempt, at most 15 minutes, never sooner than the service
asked), under a new message id, with the attempts so far and the original message id as
application properties (``delivery_attempts``, ``retry_of``); it journals "retry N at ..."
on the case and completes the original. MAX_DELIVERY_COUNT counts attempts across copies
(the attempts a copy carries plus the broker's delivery count of that copy). On the last
attempt the case is escalated with the reason and the message is abandoned, for the broker
to dead-letter; a copy offered again past its last attempt is abandoned at once and touches
nothing: it gives up no second time, and its exception (the abandon's description, so the
dead-letter's) carries the reason the case was escalated with. A delivery is the last also
when the broker says so (its delivery count reaches the queue's own maxDeliveryCount, when
known): whatever MAX_DELIVERY_COUNT says, no message is dead-lettered without its case
being escalated first.

A delivery whose case another worker holds (``CaseBusy``: ``service.case_lease``) is no
failure: it is kept like a paused one, a copy at the first back-off that uses no attempt,
nothing journaled, the original completed; it never gives up on a case another worker works.

A message that cannot succeed (invalid, or failed permanently) completes after its case is
journaled, so it never loops. Scheduling the copy and completing the original are two steps,
not one transaction: either may happen without the other, and the workflow is idempotent for
exactly that (a copy and a redelivered original resume from the same journal).

Time: the work of one delivery gets ``DELIVERY_TIME_BUDGET``, then scheduling the retry or
giving up gets ``SETTLEMENT_TIME_BUDGET``; together they stay inside host.json's
``functionTimeout`` and the lock's renewal (tests/functions/test_host_config.py does the
arithmetic). Work that outlives its budget is cancelled, as if the worker had died at that
point, and fails transient ("delivery time budget exhausted"): the retry resumes from the
journal like any other.

The kill switch (``service.pausing``): every attempt first reads it; paused, the delivery is
kept instead of worked: a copy at now + ``PAUSE_RECHECK`` carrying the attempts made before
this delivery (a pause counts none, so none is dead-lettered however long it lasts), the
pause noted on its case once, the original completed.
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from remediation.domain.cases import Case
from remediation.domain.durations import format_duration
from remediation.domain.errors import (
    MAX_RETRY_AFTER,
    CaseBusy,
    InvalidRequest,
    TransientError,
)
from remediation.domain.escalation_kinds import EscalationKind
from remediation.domain.pause import Paused
from remediation.domain.requests import describe, parse_request
from remediation.service.messages import (
    AlertUpdate,
    Approval,
    BreakerPost,
    Resume,
    approval_in,
    parse_follow_up,
    resume_in,
)
from remediation.service.pausing import PAUSE_RECHECK
from remediation.service.ports import Clock, MessageRetries
from remediation.service.telemetry import delivery_carrier, delivery_span
from remediation.service.undo import Undoing, UndoRequest, undo_in
from remediation.service.workflow import RemediationWorkflow

log = logging.getLogger(__name__)

ATTEMPTS = "delivery_attempts"  # property of a copy: attempts made before it was sent
RETRY_OF = "retry_of"  # application property of a copy: the original's message id
DEFERRED = "case_busy_deferrals"  # property of a copy: times kept for a case held elsewhere
MAX_RETRY_BACKOFF = timedelta(minutes=15)
DELIVERY_TIME_BUDGET = timedelta(minutes=8)
SETTLEMENT_TIME_BUDGET = timedelta(minutes=1)


@dataclass(frozen=True)
class Delivery:
    """One delivery of a message: its body, ids, the broker's delivery count of this message,
    and its application properties (a retry copy carries ``delivery_attempts``, ``retry_of``)."""

    body: bytes
    message_id: str
    delivery_count: int
    max_delivery_count: int
    session_id: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    # The queue's own maxDeliveryCount (the broker dead-letters after it), when known.
    broker_max_delivery_count: int | None = None

    @property
    def earlier_attempts(self) -> int:
        """Attempts made before this copy was scheduled (0 for an original message)."""
        return _count(self.properties.get(ATTEMPTS))

    @property
    def attempt(self) -> int:
        """This attempt's number across every copy (1-based)."""
        return self.earlier_attempts + max(self.delivery_count, 1)

    @property
    def is_last(self) -> bool:
        """The last attempt by our count, or the broker's last delivery of this message."""
        return self.attempt >= self.max_delivery_count or (
            self.broker_max_delivery_count is not None
            and self.delivery_count >= self.broker_max_delivery_count)

    @property
    def past_last(self) -> bool:
        """Given up on already, at an earlier delivery: no attempt is left."""
        return self.attempt > self.max_delivery_count

    @property
    def first_message_id(self) -> str:
        """The original message's id: a hand-written request's request id, kept by copies."""
        original = self.properties.get(RETRY_OF)
        if isinstance(original, str) and 0 < len(original) <= 128:
            return original
        return self.message_id


@dataclass(frozen=True)
class RetryPolicy:
    """The back-off before a retry: ``first`` (RETRY_BACKOFF), doubling each attempt, at most
    ``cap``, never less than the delay the service asked for."""

    first: timedelta = timedelta(seconds=30)
    cap: timedelta = MAX_RETRY_BACKOFF

    def delay(self, attempt: int, retry_after: float | None = None) -> timedelta:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        cap = max(self.first, self.cap).total_seconds()
        backoff = min(self.first.total_seconds() * 2.0 ** min(max(attempt - 1, 0), 64), cap)
        asked = min(retry_after or 0.0, MAX_RETRY_AFTER)
        return timedelta(seconds=max(backoff, asked))


@dataclass(frozen=True)
class Retrying:
    """Where and when retries go: each queue's ``schedule_copy``, the clock, the back-off."""

    requests: MessageRetries
    follow_ups: MessageRetries
    clock: Clock
    backoff: RetryPolicy = RetryPolicy()


@dataclass(frozen=True)
class _OnFailure:
    """What a failed attempt of one kind of message means."""

    what: str  # "remediation", "verification", ...: the start of a give-up reason
    retries: Callable[["Retrying"], MessageRetries]
    journal: Callable[[str, dict[str, Any]], Awaitable[Case | None]]
    give_up: Callable[[str], Awaitable[Case | None]]
    complete_on_give_up: bool = False
    # Why the case was escalated, read when a delivery comes past its last attempt.
    escalation_reason: Callable[[], Awaitable[str | None]] | None = None


@dataclass(frozen=True)
class _Keep:
    """How a delivery of one kind is kept while paused: the queue its copy goes to, and how
    its case is told (once per pause)."""

    retries: Callable[["Retrying"], MessageRetries]
    note: Callable[[Paused], Awaitable[Case | None]]


class MessageHandler:
    def __init__(self, workflow: RemediationWorkflow, *, retrying: Retrying | None = None,
                 time_budget: timedelta = DELIVERY_TIME_BUDGET,
                 settlement_budget: timedelta = SETTLEMENT_TIME_BUDGET,
                 undo: Undoing | None = None,
                 pause_recheck: timedelta = PAUSE_RECHECK) -> None:
        """Without ``retrying`` (tests of the workflow alone), a transient failure abandons
        the message, as an exception always does, and so does a delivery while paused.
        ``undo`` acts on undo messages (without it they are rejected). ``pause_recheck``: how
        long a message kept by a pause waits before it asks again."""
        self._workflow = workflow
        self._retrying = retrying
        self._undo = undo
        self._time_budget = time_budget
        self._settlement_budget = settlement_budget
        self._pause_recheck = pause_recheck

    def with_backoff(self, first: timedelta) -> "MessageHandler":
        """The same handler with another first back-off (the demo's compressed time)."""
        retrying = self._retrying
        if retrying is not None:
            retrying = replace(retrying, backoff=replace(retrying.backoff, first=first))
        return MessageHandler(self._workflow, retrying=retrying, time_budget=self._time_budget,
                              settlement_budget=self._settlement_budget, undo=self._undo,
                              pause_recheck=self._pause_recheck)

    def with_pause_recheck(self, recheck: timedelta) -> "MessageHandler":
        """The same handler with another pause re-check interval (tests' compressed time)."""
        return MessageHandler(self._workflow, retrying=self._retrying,
                              time_budget=self._time_budget,
                              settlement_budget=self._settlement_budget, undo=self._undo,
                              pause_recheck=recheck)

    async def on_request(self, delivery: Delivery) -> Case | None:
        """The requests queue: remediation requests, approvals of waiting cases, resumes and
        undos, each delivery in a span of its own (``service.telemetry``).

        Returns the case (None when a retry was scheduled before any case existed)."""
        return await _traced(delivery, "request", self._request, self._workflow.case)

    async def _request(self, delivery: Delivery) -> Case | None:
        try:
            undo = undo_in(delivery.body)
        except InvalidRequest as error:
            return await self._workflow.reject(_claimed_user(delivery.body), error.reason)
        if undo is not None:
            return await self._undo_case(delivery, undo)
        try:
            resume = resume_in(delivery.body)
            approval = approval_in(delivery.body) if resume is None else None
            if approval is None and resume is None:
                request = parse_request(delivery.body)
        except InvalidRequest as error:
            return await self._workflow.reject(_claimed_user(delivery.body), error.reason)
        if resume is not None:
            return await self._resume(delivery, resume)
        if approval is not None:
            return await self._approve(delivery, approval)
        if request.request_id is None:
            request = replace(request, request_id=delivery.first_message_id)
        request_id = request.request_id
        assert request_id is not None
        keep = _Keep(lambda retrying: retrying.requests,
                     lambda paused: self._workflow.pausing.keep_request(
                         request, paused, self._pause_recheck))
        try:
            return await self._attempt(delivery, lambda: self._workflow.remediate(request), keep)
        except Exception as error:
            return await self._after_failure(delivery, error, _OnFailure(
                "remediation", lambda retrying: retrying.requests,
                lambda detail, data: self._workflow.journal_retry(
                    detail, data, request_id=request_id),
                lambda reason: self._workflow.give_up(request_id, request.user, reason,
                                                      request),
                escalation_reason=lambda: self._workflow.escalation_reason(
                    request_id=request_id)))

    async def _approve(self, delivery: Delivery, approval: Approval) -> Case | None:
        try:
            retry = RETRY_OF in delivery.properties or delivery.delivery_count > 1
            return await self._attempt(
                delivery, lambda: self._workflow.approve(approval, retry=retry),
                self._keep_case(approval.case_id, lambda retrying: retrying.requests))
        except InvalidRequest as error:
            return await self._workflow.reject(approval.user, error.reason)
        except Exception as error:
            return await self._after_failure(delivery, error, _OnFailure(
                "approved remediation", lambda retrying: retrying.requests,
                lambda detail, data: self._workflow.journal_retry(
                    detail, data, case_id=approval.case_id),
                lambda reason: self._workflow.escalate(approval.case_id, reason,
                                                       kind=EscalationKind.GAVE_UP),
                escalation_reason=lambda: self._workflow.escalation_reason(
                    case_id=approval.case_id)))

    async def _resume(self, delivery: Delivery, resume: Resume) -> Case | None:
        """The sweeper's message: its retries are copies of it, and its last attempt
        escalates the case."""
        try:
            return await self._attempt(
                delivery, lambda: self._workflow.resume(resume),
                self._keep_case(resume.case_id, lambda retrying: retrying.requests))
        except InvalidRequest as error:
            return await self._workflow.reject(resume.user, error.reason)
        except Exception as error:
            return await self._after_failure(delivery, error, _OnFailure(
                "resumed remediation", lambda retrying: retrying.requests,
                _journal_on(self._workflow, resume.case_id),
                lambda reason: self._workflow.escalate(resume.case_id, reason,
                                                       kind=EscalationKind.GAVE_UP),
                escalation_reason=lambda: self._workflow.escalation_reason(
                    case_id=resume.case_id)))

    async def _undo_case(self, delivery: Delivery, undo: UndoRequest) -> Case | None:
        """An undo (``remediation undo``): retried within bounds, then ended with the reason
        (completed: the case itself is final and stays as it is)."""
        undoing = self._undo
        if undoing is None:
            return await self._workflow.reject(undo.user, "this worker does not undo cases")
        try:
            return await self._attempt(
                delivery, lambda: undoing.run(undo),
                self._keep_case(undo.case_id, lambda retrying: retrying.requests))
        except InvalidRequest as error:
            return await self._workflow.reject(undo.user, error.reason)
        except Exception as error:
            return await self._after_failure(delivery, error, _OnFailure(
                "undo", lambda retrying: retrying.requests,
                _journal_on(self._workflow, undo.case_id),
                lambda reason: undoing.gave_up(undo, reason), complete_on_give_up=True))

    async def on_verification(self, delivery: Delivery) -> Case | None:
        """The verifications queue: verification checks, Defender alert updates and the
        grouped posts of the cases the circuit breaker holds, each delivery in a span of its
        own."""
        return await _traced(delivery, "verification", self._follow_up, self._workflow.case)

    async def _follow_up(self, delivery: Delivery) -> Case | None:
        try:
            message = parse_follow_up(delivery.body)
        except InvalidRequest as error:
            return await self._workflow.reject(_claimed_user(delivery.body), error.reason)
        keep = self._keep_case(message.case_id, lambda retrying: retrying.follow_ups)
        try:
            if isinstance(message, BreakerPost):
                held = message
                return await self._attempt(
                    delivery, lambda: self._workflow.post_held(held), keep)
            if isinstance(message, AlertUpdate):
                alerts = message
                return await self._attempt(
                    delivery, lambda: self._workflow.update_alerts(alerts), keep)
            check = message
            return await self._attempt(delivery, lambda: self._workflow.verify(check), keep)
        except InvalidRequest as error:
            return await self._workflow.reject(message.user, error.reason)
        except Exception as error:
            case_id = message.case_id
            journal = _journal_on(self._workflow, case_id)
            if isinstance(message, BreakerPost):
                # A report like the alert updates: given up on quietly (its case is named
                # as not posted; every other held case has a message of its own).
                post = message
                return await self._after_failure(delivery, error, _OnFailure(
                    "grouped circuit-breaker post", lambda retrying: retrying.follow_ups,
                    journal, lambda reason: self._held_post_gave_up(post, reason),
                    complete_on_give_up=True))
            if isinstance(message, AlertUpdate):
                # Alerts are the report, not the remediation: give up on them quietly.
                update = message
                return await self._after_failure(delivery, error, _OnFailure(
                    "alert update", lambda retrying: retrying.follow_ups, journal,
                    lambda reason: self._alert_update_gave_up(update, reason),
                    complete_on_give_up=True))
            return await self._after_failure(delivery, error, _OnFailure(
                "verification", lambda retrying: retrying.follow_ups, journal,
                # The block was lifted; the checks could not be made.
                lambda reason: self._workflow.escalate(case_id, reason,
                                                       kind=EscalationKind.UNVERIFIED),
                escalation_reason=lambda: self._workflow.escalation_reason(case_id=case_id)))

    async def _held_post_gave_up(self, post: BreakerPost, reason: str) -> Case:
        await self._workflow.held_post_gave_up(post, reason)
        return await self._workflow.case(post.case_id)

    async def _alert_update_gave_up(self, update: AlertUpdate, reason: str) -> Case:
        await self._workflow.alert_update_gave_up(update, reason)
        return await self._workflow.case(update.case_id)

    def _keep_case(self, case_id: str,
                   retries: Callable[["Retrying"], MessageRetries]) -> _Keep:
        return _Keep(retries, lambda paused: self._workflow.pausing.keep_case(
            case_id, paused, self._pause_recheck))

    async def _attempt(self, delivery: Delivery, work: Callable[[], Awaitable[Case]],
                       keep: _Keep) -> Case | None:
        """Run ``work`` within the delivery's time budget, unless no attempt is left or the
        kill switch is on (then the delivery is kept: ``_keep``)."""
        if delivery.past_last:
            raise _NoAttemptLeft(f"no attempt left (attempt {delivery.attempt} of "
                                 f"{delivery.max_delivery_count}): given up already")
        budget = asyncio.timeout(self._time_budget.total_seconds())
        try:
            async with budget:
                paused = await self._workflow.pausing.state()
                if paused is not None:
                    return await self._keep(delivery, paused, keep)
                return await work()
        except TimeoutError:
            if not budget.expired():
                raise
            raise TransientError("delivery time budget exhausted "
                                 f"({format_duration(self._time_budget)})") from None

    async def _keep(self, delivery: Delivery, paused: Paused, keep: _Keep) -> Case | None:
        """Schedule the copy that asks again after ``pause_recheck``, then tell the case (a
        failure to tell it is logged: the copy is what matters); the original completes.
        The copy carries the attempts made before this delivery: a pause uses none up. A
        copy that cannot be scheduled fails the attempt like any transient failure."""
        if self._retrying is None:
            raise TransientError(f"paused by {paused.by}: nothing is done until "
                                 "`remediation resume`")
        retrying = self._retrying
        at = retrying.clock.now() + self._pause_recheck
        properties = _copied_properties(delivery)
        properties.update({ATTEMPTS: delivery.attempt - 1, RETRY_OF: delivery.first_message_id})
        message_id = await keep.retries(retrying).schedule_copy(
            delivery.body, session_id=delivery.session_id, properties=properties, at=at)
        log.info("paused: message %s kept, asked again at %s as message %s",
                 delivery.message_id, at.isoformat(), message_id)
        try:
            return await keep.note(paused)
        except Exception:
            log.warning("could not note the pause on the case of message %s",
                        delivery.message_id, exc_info=True)
            return None

    async def _after_failure(self, delivery: Delivery, error: Exception,
                             on: _OnFailure) -> Case | None:
        """Settle a failed attempt: on the last one give up (then raise, for the dead-letter
        queue); after a transient failure schedule a retry (then return: the original
        completes); else raise (the broker offers the message again at once). Past the
        last attempt, raise at once: the case was escalated already."""
        if isinstance(error, _NoAttemptLeft):
            raise await self._given_up_already(error, on) from None
        if not isinstance(error, TransientError):
            log.error("unexpected %s on message %s (attempt %d)", type(error).__name__,
                      delivery.message_id, delivery.attempt, exc_info=error)
        budget = asyncio.timeout(self._settlement_budget.total_seconds())
        try:
            async with budget:
                if isinstance(error, CaseBusy) and self._retrying is not None and (
                        await self._defer(delivery, error, on, self._retrying)):
                    return None
                if delivery.is_last:
                    settled = await on.give_up(_give_up_reason(delivery, error, on.what))
                    if on.complete_on_give_up:
                        return settled
                elif isinstance(error, TransientError) and self._retrying is not None:
                    retry = await self._schedule_retry(delivery, error, on, self._retrying)
                    if retry is not None:
                        return await self._journal_retry(delivery, error, on, retry)
        except TimeoutError:
            if not budget.expired():
                raise
            raise TransientError(f"{on.what}: settling a failed attempt took longer than "
                                 f"{format_duration(self._settlement_budget)}") from error
        raise error

    async def _given_up_already(self, error: "_NoAttemptLeft",
                                on: _OnFailure) -> TransientError:
        """The error to abandon a delivery past its last attempt with: it names the reason
        the case was escalated with, so the dead-letter's description keeps the real cause
        rather than "no attempt left"."""
        reason: str | None = None
        if on.escalation_reason is not None:
            try:
                async with asyncio.timeout(self._settlement_budget.total_seconds()):
                    reason = await on.escalation_reason()
            except Exception:  # a journal that cannot be read must not hide the abandon
                log.warning("could not read why the case was escalated", exc_info=True)
        log.info("%s: %s", on.what, error.reason)
        return TransientError(f"{error.reason}: {reason}" if reason else error.reason)

    async def _defer(self, delivery: Delivery, error: CaseBusy, on: _OnFailure,
                     retrying: Retrying) -> bool:
        """Keep a delivery whose case another worker holds (``service.case_lease``): a copy
        after the back-off (doubling with each time the message was kept so: ``DEFERRED``),
        carrying the attempts made before this delivery (as a pause's copy: losing to the
        holder uses none, so it never gives up nor escalates), nothing journaled. False when
        the copy could not be scheduled (a transient failure, then)."""
        deferred = _count(delivery.properties.get(DEFERRED))
        at = retrying.clock.now() + retrying.backoff.delay(deferred + 1)
        properties = _copied_properties(delivery)
        properties.update({ATTEMPTS: delivery.attempt - 1, RETRY_OF: delivery.first_message_id,
                           DEFERRED: deferred + 1})
        message_id = await _copy(delivery, on, retrying, properties, at,
                                 "could not keep message %s for later")
        if message_id is None:
            return False
        log.info("%s: %s; message %s asks again at %s as message %s", on.what, error.reason,
                 delivery.message_id, at.isoformat(), message_id)
        return True

    async def _schedule_retry(self, delivery: Delivery, error: TransientError,
                              on: _OnFailure, retrying: Retrying) -> "_Retry | None":
        """Schedule the copy; None when it could not be (the message is abandoned instead,
        and offered again at once)."""
        at = retrying.clock.now() + retrying.backoff.delay(delivery.attempt, error.retry_after)
        properties = _copied_properties(delivery)
        properties.update({ATTEMPTS: delivery.attempt, RETRY_OF: delivery.first_message_id})
        message_id = await _copy(delivery, on, retrying, properties, at,
                                 "could not schedule a retry of message %s")
        if message_id is None:
            return None
        log.warning("%s failed (message %s, attempt %d of %d): %s; retry at %s as message %s",
                    on.what, delivery.message_id, delivery.attempt,
                    delivery.max_delivery_count, error.reason, at.isoformat(), message_id)
        return _Retry(at, message_id)

    async def _journal_retry(self, delivery: Delivery, error: TransientError, on: _OnFailure,
                             retry: "_Retry") -> Case | None:
        """Note the scheduled retry on the case, when there is one yet."""
        detail = f"retry {delivery.attempt} at {retry.at:%Y-%m-%d %H:%M:%S} UTC: {error.reason}"
        data = {"attempt": delivery.attempt + 1, "of": delivery.max_delivery_count,
                "at": retry.at.isoformat(), "message_id": retry.message_id}
        try:
            return await on.journal(detail, data)
        except Exception:  # the copy is scheduled: completing the original is still right
            log.warning("could not journal %r", detail, exc_info=True)
            return None


def _count(value: object) -> int:
    """A count carried in an application property (a number, or a string of ASCII digits);
    0 when it is anything else."""
    if isinstance(value, str):  # ASCII digits only: "²".isdigit(), and int("٣") == 3
        value = int(value) if value.isascii() and value.isdigit() else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


class _NoAttemptLeft(TransientError):
    """A delivery past its last attempt: nothing is tried, and nobody gives up again."""


@dataclass(frozen=True)
class _Retry:
    at: datetime
    message_id: str


def _copied_properties(delivery: Delivery) -> dict[str, str | int | float | bool]:
    """The application properties a copy of ``delivery`` keeps (those Service Bus takes)."""
    return {key: value for key, value in delivery.properties.items()
            if isinstance(key, str) and isinstance(value, str | int | float | bool)}


async def _copy(delivery: Delivery, on: _OnFailure, retrying: Retrying,
                properties: dict[str, str | int | float | bool], at: datetime,
                failed: str) -> str | None:
    """Schedule a copy of ``delivery`` for ``at`` on its queue: the copy's message id, or None
    (logged with ``failed``, a format taking the message id) when it could not be."""
    try:
        return await on.retries(retrying).schedule_copy(
            delivery.body, session_id=delivery.session_id, properties=properties, at=at)
    except Exception:
        log.warning(failed, delivery.message_id, exc_info=True)
        return None


async def _traced(delivery: Delivery, kind: str,
                  handle: Callable[[Delivery], Awaitable[Case | None]],
                  find: Callable[[str], Awaitable[Case]]) -> Case | None:
    """``handle`` the delivery in its span (``remediation <kind>``, ``kind`` unless the body
    names another), a child of the trace context the message carries, else of the one its
    case opened in (``find`` reads the case: ``telemetry.delivery_carrier``)."""
    carrier = await delivery_carrier(delivery.body, delivery.properties, find)
    with delivery_span(delivery.body, carrier, kind) as trace:
        try:
            case = await handle(delivery)
        except Exception as error:
            # Abandoned: the broker dead-letters it after its own last delivery.
            trace.abandoned(error, dead_lettered=delivery.broker_max_delivery_count is not None
                            and delivery.delivery_count >= delivery.broker_max_delivery_count)
            raise
        trace.settled(case)
        return case


def _journal_on(workflow: RemediationWorkflow,
                case_id: str) -> Callable[[str, dict[str, Any]], Awaitable[Case | None]]:
    return lambda detail, data: workflow.journal_retry(detail, data, case_id=case_id)


def _give_up_reason(delivery: Delivery, error: Exception, what: str) -> str:
    cause = error.reason if isinstance(error, TransientError) else (
        f"unexpected {type(error).__name__}")
    return f"{what} gave up after {delivery.attempt} deliveries: {cause}"


def _claimed_user(body: bytes) -> str:
    """Best-effort, printable 'who was this about' for a rejected message's journal entry."""
    try:
        fields = json.loads(body.decode("utf-8-sig", errors="replace"))
    except (ValueError, RecursionError):
        return "(not JSON)"
    user = fields.get("user") if isinstance(fields, dict) else None
    if isinstance(user, str) and user.strip():
        return describe(user.strip().lower(), limit=80).strip("'\"")
    return "(no user)"
