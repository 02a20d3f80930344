"""Recording a case as it goes: every step journaled before and after it acts.

A redelivered message finds each step already journaled ``done`` and skips it, which is what
makes the whole workflow safe to repeat.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from remediation.domain.cases import Case, Step, StepStatus
from remediation.domain.errors import InvalidRequest, PermanentError, RemediationError
from remediation.service.ports import Clock, Journal

LOOKUP, GUARDRAILS, PLAN, BREAKER = "lookup_user", "guardrails", "plan", "circuit_breaker"
RESET, REVOKE, HYGIENE = "reset_password", "revoke_sessions", "mailbox_hygiene"
UNBLOCK, SCHEDULE = "unblock", "schedule_verification"


@dataclass(frozen=True)
class StepResult:
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


class CaseRecorder:
    def __init__(self, journal: Journal, clock: Clock) -> None:
        self.journal = journal
        self.clock = clock

    async def run(self, case: Case, name: str,
                  action: Callable[[], Awaitable[StepResult]]) -> tuple[Case, StepResult]:
        """Run ``action`` as step ``name`` unless a previous attempt finished it."""
        done = case.done(name)
        if done is not None:
            return case, StepResult(done.detail, done.data)
        case = await self.note(case, name, StepStatus.STARTED)
        try:
            result = await action()
        except RemediationError as error:
            # Refused (permanent) or no clear answer: escalation notices tell the two apart.
            await self.note(case, name, StepStatus.FAILED, error.reason,
                            {"permanent": isinstance(error, PermanentError)})
            raise
        case = await self.note(await self.require(case.case_id), name, StepStatus.DONE,
                               result.detail, result.data)
        return case, result

    async def note(self, case: Case, name: str, status: StepStatus, detail: str = "",
                   data: dict[str, Any] | None = None) -> Case:
        step = Step(name, status, self.clock.now(), detail, data or {})
        await self.journal.add_step(case.case_id, step)
        return case.evolve(steps=(*case.steps, step))

    async def save(self, case: Case, **changes: Any) -> Case:
        stored = await self.journal.update_case(
            case.evolve(updated_at=self.clock.now(), **changes))
        return stored.evolve(steps=case.steps)

    async def require(self, case_id: str) -> Case:
        case = await self.journal.get_case(case_id)
        if case is None:
            raise InvalidRequest(f"no case {case_id!r} in the journal")
        return case
