"""Recording a case as it goes: every step journaled before and after it acts.

A redelivered message finds each step already journaled ``done`` and skips it, which is what
makes the whole workflow safe to repeat.

Everything journaled passes ``redact`` first (reasons, step details, the strings in step
data): a Graph or Exchange error may quote a token, a password field or the webhook URL, and
what the journal holds is what comments, cards and ``status`` show. Text from outside is
otherwise stored as it came; whatever shows it escapes it (``domain.display``).

The recorder is also what reports the work (``service.telemetry``): a span per step it runs,
a log record per step it journals, and the counters and times of cases as they are saved.
"""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields, replace
from typing import Any

from remediation.domain.cases import Case, Step, StepStatus
from remediation.domain.errors import (
    ConcurrentUpdate,
    InvalidRequest,
    PermanentError,
    RemediationError,
)
from remediation.logsafety import redact, redacted_data
from remediation.service import telemetry
from remediation.service.ports import Clock, Journal

LOOKUP, GUARDRAILS, PLAN, BREAKER = "lookup_user", "guardrails", "plan", "circuit_breaker"
RESET, REVOKE, HYGIENE = "reset_password", "revoke_sessions", "mailbox_hygiene"
UNBLOCK, SCHEDULE = "unblock", "schedule_verification"
_SAVE_ATTEMPTS = 5
log = logging.getLogger(__name__)
# The ids of the cases journaled on while a step's action runs (``_noting_writes``).
_WRITTEN_IN_STEP: ContextVar[set[str] | None] = ContextVar("written_in_step", default=None)
# The ``done`` steps the pass running in this context holds (``CaseRecorder.holding``), per
# recorder and case: never written by another delivery's write on the same case.
_Held = dict[tuple[int, str], list[Step]]
_HELD: ContextVar[_Held | None] = ContextVar("held_done", default=None)


@dataclass(frozen=True)
class StepResult:
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


class CaseRecorder:
    def __init__(self, journal: Journal, clock: Clock) -> None:
        self.journal = journal
        self.clock = clock

    async def run(self, case: Case, name: str, action: Callable[[], Awaitable[StepResult]],
                  *, hold_done: bool = False, started: bool = False) -> tuple[Case, StepResult]:
        """Run ``action`` as step ``name`` unless a previous attempt finished it (in a span
        of its own, ``step <name>``). Returns the case with the step's ``done``: ``case`` as
        given, read again only when the action journaled on it (a save or a step). Another
        writer's change meanwhile is not read here: the next ``save`` finds the version moved
        and builds on it, or raises ConcurrentUpdate when that writer moved the state.

        ``hold_done``: for a step whose repeat changes nothing (it reads), when the caller
        journals on the case next with nothing awaited between: the ``done`` is written with
        that next step, in one write, or by ``flush``; every write of this recorder on the
        case in this pass (``holding``; else the calling task), and ``require``, writes it
        first. Another delivery's write on the case never does: its failure would lose it
        while this pass goes on. ``started``: the step's ``started`` is journaled already
        (the case was opened with it)."""
        done = case.done(name)
        if done is not None:
            return case, StepResult(done.detail, done.data)
        with telemetry.StepTrace(case, name) as trace:
            if not started:
                case = await self.note(case, name, StepStatus.STARTED)
            try:
                result, written = await _noting_writes(action)
            except RemediationError as error:
                trace.failed(error)
                # Refused (permanent) or no clear answer: escalation notices tell them apart.
                await self.note(case, name, StepStatus.FAILED, error.reason,
                                {**getattr(error, "data", {}),
                                 "permanent": isinstance(error, PermanentError)})
                raise
            trace.done()
            if case.case_id in written:  # the action journaled on the case: build on that
                case = await self.require(case.case_id)
            if hold_done:
                done_step = redacted_step(Step(name, StepStatus.DONE, self.clock.now(),
                                               result.detail, result.data))
                _held_here().setdefault(self._key(case.case_id), []).append(done_step)
                return case.evolve(steps=(*case.steps, done_step)), result
            case = await self.note(case, name, StepStatus.DONE, result.detail, result.data)
            return case, result

    @asynccontextmanager
    async def holding(self, case_id: str) -> AsyncIterator[None]:
        """A pass on ``case_id`` whose held ``done`` steps are its own (tasks it starts
        share them): what is still held as it ends is written (it failed: an Exception),
        or dropped, unwritten, when that write fails too or the pass was cancelled (a
        BaseException: as if its process had stopped there; those steps run again)."""
        token = _HELD.set({})
        try:
            yield
            await self.flush(case_id)
        except Exception:
            try:
                await self.flush(case_id)
            except RemediationError as error:
                log.warning("case %s: steps done not journaled (they run again): %s",
                            case_id, error.reason)
            raise
        finally:
            _HELD.reset(token)

    async def flush(self, case_id: str) -> None:
        """Write the ``done`` steps held for ``case_id`` (``run``'s ``hold_done``), if any."""
        held = self._take(case_id)
        if held:
            await self._write(case_id, held, None)

    def _key(self, case_id: str) -> tuple[int, str]:
        return id(self), case_id

    def _take(self, case_id: str) -> list[Step]:
        """The steps this pass holds for ``case_id``, no longer held."""
        held = _HELD.get()
        return [] if held is None else held.pop(self._key(case_id), [])

    def traced(self, case: Case, name: str) -> telemetry.StepTrace:
        """The span of work journaled as step ``name`` without ``run`` (a verification's
        look, noted ``done`` once it has an answer)."""
        return telemetry.StepTrace(case, name)

    async def note(self, case: Case, name: str, status: StepStatus, detail: str = "",
                   data: dict[str, Any] | None = None) -> Case:
        step = await self.add_step(case.case_id,
                                   Step(name, status, self.clock.now(), detail, data or {}),
                                   case=case)
        return case.evolve(steps=(*case.steps, step))

    async def save(self, case: Case, *, touch: bool = True, **changes: Any) -> Case:
        """Store ``changes`` on ``case``. Another writer that changed other fields and left
        the state as it was (a request merged into the case meanwhile) is read and built
        on; one that changed the state (an escalation) or the same fields wins, and
        ConcurrentUpdate says so. ``touch=False`` keeps ``updated_at`` as stored: for
        bookkeeping that does not move the case (a duplicate request recorded, an alert id
        ignored), which the sweeper must not take for progress (``sweeper.pending_until``)."""
        await self.flush(case.case_id)
        for attempt in range(_SAVE_ATTEMPTS):
            updated_at = self.clock.now() if touch else case.updated_at
            try:
                stored = await self.journal.update_case(
                    redacted_case(case.evolve(updated_at=updated_at, **changes)))
            except ConcurrentUpdate:
                current = await self.journal.get_case(case.case_id)
                if (current is None or attempt == _SAVE_ATTEMPTS - 1
                        or _changed(case, current) & {"state", *changes}):
                    raise
                case = current.evolve(steps=case.steps)
                continue
            stored = stored.evolve(steps=case.steps)
            _wrote(case.case_id)
            telemetry.saved(case.state, stored)
            return stored
        raise AssertionError("unreachable")

    async def add_case(self, case: Case) -> Case:
        """Journal a new case (its reason and steps redacted) with the steps it opens with,
        in one write; returns what was stored."""
        case = redacted_case(case).evolve(steps=tuple(redacted_step(s) for s in case.steps))
        await self.journal.add_case(case)
        telemetry.opened(case)
        for step in case.steps:
            telemetry.journaled(case, step)
        return case

    async def add_step(self, case_id: str, step: Step, *, case: Case | None = None) -> Step:
        """Journal ``step`` redacted; returns what was stored. ``case``: the case as the
        caller holds it, for the step's log record (else it is read, when one is wanted)."""
        step = redacted_step(step)
        await self._write(case_id, [*self._take(case_id), step], case)
        return step

    async def _write(self, case_id: str, steps: list[Step], case: Case | None) -> None:
        """Journal ``steps`` (already redacted) in one write, and report each."""
        if len(steps) == 1:
            await self.journal.add_step(case_id, steps[0])
        else:
            await self.journal.add_steps(case_id, steps)
        _wrote(case_id)
        if telemetry.current().enabled:
            await self._report(case_id, steps, case)

    async def _report(self, case_id: str, steps: list[Step], case: Case | None) -> None:
        """The steps' log records: never a reason to fail what was journaled."""
        try:
            case = case if case is not None else await self.journal.get_case(case_id)
            if case is not None:
                for step in steps:
                    telemetry.journaled(case, step)
        except Exception:
            log.warning("could not report step %s of case %s",
                        telemetry.ours(steps[-1].name), telemetry.ours(case_id),
                        exc_info=True)

    async def require(self, case_id: str) -> Case:
        await self.flush(case_id)
        case = await self.journal.get_case(case_id)
        if case is None:
            raise InvalidRequest(f"no case {case_id!r} in the journal")
        return case


async def _noting_writes(action: Callable[[], Awaitable[StepResult]]
                         ) -> tuple[StepResult, set[str]]:
    """``action``'s result, and the ids of the cases it journaled on (a save or a step,
    through any recorder, in its own task or in tasks it started); the step around an
    enclosing one hears of them too."""
    outer = _WRITTEN_IN_STEP.get()
    written: set[str] = set()
    token = _WRITTEN_IN_STEP.set(written)
    try:
        return await action(), written
    finally:
        _WRITTEN_IN_STEP.reset(token)
        if outer is not None:
            outer |= written


def _held_here() -> _Held:
    """What this context's pass holds; outside ``holding``, the calling task's own."""
    held = _HELD.get()
    if held is None:
        held = {}
        _HELD.set(held)
    return held


def _wrote(case_id: str) -> None:
    written = _WRITTEN_IN_STEP.get()
    if written is not None:
        written.add(case_id)


def _changed(before: Case, after: Case) -> set[str]:
    """The fields another writer changed (its version and time aside)."""
    return {name for name in _CASE_FIELDS
            if getattr(before, name) != getattr(after, name)}


_CASE_FIELDS = tuple(f.name for f in fields(Case)
                     if f.name not in ("version", "updated_at", "steps"))


def redacted_step(step: Step) -> Step:
    """``step`` with secrets masked in its detail and in every string of its data."""
    data: dict[str, Any] = redacted_data(step.data)
    return replace(step, detail=redact(step.detail), data=data)


def redacted_case(case: Case) -> Case:
    """``case`` with secrets masked in the free text it carries (the reason, the requester,
    who decided). Addresses and ids are left alone: they are keys."""
    return case.evolve(reason=None if case.reason is None else redact(case.reason),
                       requested_by=None if case.requested_by is None
                       else redact(case.requested_by),
                       decided_by=None if case.decided_by is None else redact(case.decided_by))
