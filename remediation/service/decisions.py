"""A person's decisions: reject a waiting case, close a handled escalation (issue 16, point 1).

How a decision reaches the journal safely while workers run. The command line writes it to
the journal itself, under the version of the case it read (``Journal.update_case`` refuses a
stale version with ConcurrentUpdate; ``CaseRecorder.save`` builds on a concurrent change of
other fields, a request merged meanwhile, and gives up when the state moved). It is not
routed through the requests queue like an approval, for three reasons:

- the person is told at once, in one line, whether the decision took (exit 0) or why not
  (exit 2): a queued reject would say "queued" and decide later, unseen;
- every other decision on a waiting case goes through the same compare-and-set, wherever it
  runs: an approval (``RemediationWorkflow.approve`` saves ``in_progress`` under the version
  it read, before it journals ``approved``), a manual request that approves, the approval
  timeout (the sweeper, which claims a case under its version and escalates it). Of two
  decisions that read one version, exactly one is stored; the other reads the case again
  and is refused with what happened (``reject_refused`` / ``approval_refused`` journaled),
  in one process or many (SQLite compares the version in its UPDATE, Table Storage the
  row's ETag), queue or no queue;
- a reject needs no worker: it changes nothing in the tenant. Its notices (the Defender
  alerts' comment, the escalation channel) are queued as follow-ups once it is stored, and a
  worker delivers them like any other.

Decide first, then tell: the state and ``decided_by`` (with the reason "rejected by NAME:
WHY") are one write; the decision's step, then the notice, follow. A command that dies in
between leaves a decided case that says who and why; running it again completes what is
missing (the step, the notice: each journaled once) and says it was decided already.

A decision reads and writes the journal only; the tenant is never asked anything.
"""

import logging
from dataclasses import dataclass

from remediation.domain.cases import Case, CaseState, StepStatus
from remediation.domain.decisions import CLOSED, REJECTED, decider, described_state, why
from remediation.domain.errors import ConcurrentUpdate, InvalidRequest
from remediation.service.journaling import CaseRecorder
from remediation.service.outcomes import Outcomes

log = logging.getLogger(__name__)

REJECT_REFUSED = "reject_refused"
CLOSE_REFUSED = "close_refused"


@dataclass(frozen=True)
class Decided:
    """The case after a decision; ``now`` False when a person had decided it already (the
    decision asked for was not taken: the case says who did)."""

    case: Case
    now: bool


class Decisions:
    def __init__(self, recorder: CaseRecorder, outcomes: Outcomes) -> None:
        self._recorder = recorder
        self._outcomes = outcomes

    async def reject(self, case_id: str, *, by: str, reason: str) -> Decided:
        """End case ``case_id``, waiting for approval, ``rejected``: nothing is changed in
        the tenant, and no approval moves it after.

        Raises InvalidRequest (one line) for who or why not given plainly, no such case, a
        case not waiting for approval, or an approval that won the race."""
        by, reason = decider(by), why(reason)
        case = await self._recorder.require(case_id)
        if case.state is CaseState.REJECTED and case.decided_by is not None:
            return Decided(await self._told(case, REJECTED), now=False)
        if case.state is not CaseState.AWAITING_APPROVAL:
            raise InvalidRequest(
                f"case {case_id} is {described_state(case)}, not awaiting approval")
        return await self._decide(case, REJECTED, CaseState.REJECTED, by, reason,
                                  REJECT_REFUSED)

    async def close(self, case_id: str, *, by: str, reason: str) -> Decided:
        """End escalated case ``case_id``, which a person has handled, ``closed``: when it
        ended and why it escalated stay on record (``ended_at``, ``escalation_kind``, the
        ``escalated`` step). Its alerts get a comment; nobody's alert is classified or
        resolved on a person's behalf.

        Raises InvalidRequest (one line) for who or why not given plainly, no such case, or
        a case that is not escalated."""
        by, reason = decider(by), why(reason)
        case = await self._recorder.require(case_id)
        if case.state is CaseState.CLOSED:
            return Decided(await self._told(case, CLOSED), now=False)
        if case.state is not CaseState.ESCALATED:
            raise InvalidRequest(f"case {case_id} is {described_state(case)}, not escalated: "
                                 "only an escalated case is closed")
        return await self._decide(case, CLOSED, CaseState.CLOSED, by, reason, CLOSE_REFUSED)

    async def _decide(self, case: Case, decision: str, state: CaseState, by: str,
                      reason: str, refused: str) -> Decided:
        waiting = case.state
        for _ in range(_SAVE_ROUNDS):
            # When a case ended stays as it was (a closed escalation ended when it escalated).
            ended_at = case.ended_at or self._recorder.clock.now()
            try:
                case = await self._recorder.save(case, state=state, decided_by=by,
                                                 reason=f"{decision} by {by}: {reason}",
                                                 ended_at=ended_at)
                break
            except ConcurrentUpdate:
                current = await self._recorder.require(case.case_id)
                if current.state is state and current.decided_by is not None:
                    return Decided(await self._told(current, decision), now=False)
                if current.state is not waiting:  # another decision won: this one is refused
                    refusal = (f"{_VERB[decision]} of case {case.case_id} refused: "
                               f"{_moved(current)}; nothing was {decision}")
                    await self._recorder.note(current, refused, StepStatus.INFO, refusal,
                                              {"decided_by": by, "reason": reason})
                    raise InvalidRequest(refusal) from None
                case = current  # its other fields changed (its reason): decide again
        else:
            raise InvalidRequest(f"case {case.case_id} kept changing while it was being "
                                 f"{decision}; nothing was {decision}: try again")
        log.debug("case %s for %s %s by %s", case.case_id, case.user, decision, by)
        case = await self._recorder.note(case, decision, StepStatus.INFO,
                                         f"by {by}: {reason}",
                                         {"decided_by": by, "reason": reason})
        return Decided(await self._told(case, decision), now=True)

    async def _told(self, case: Case, decision: str) -> Case:
        """The decision's step and its notice, each once (a command that died after the
        decision was stored finishes here when it is run again)."""
        if not any(step.name == decision for step in case.steps):
            by = case.decided_by or "unknown"
            case = await self._recorder.note(case, decision, StepStatus.INFO,
                                             case.reason or f"by {by}", {"decided_by": by})
        return await self._outcomes.follow_up(case, decision)


_VERB = {REJECTED: "reject", CLOSED: "close"}
_SAVE_ROUNDS = 5
_AFTER_APPROVAL = frozenset({CaseState.IN_PROGRESS, CaseState.AWAITING_VERIFICATION,
                             CaseState.VERIFIED})


def _moved(case: Case) -> str:
    """What became of a case while a decision on it was being stored: the approval
    journaled on it (an approval moves a waiting case on before it journals who approved:
    a case in progress or past it was approved, its step perhaps not written yet), or the
    state it reached."""
    approved = next((step for step in reversed(case.steps) if step.name == "approved"), None)
    if approved is not None and case.state is not CaseState.AWAITING_APPROVAL:
        return (f"it was approved meanwhile ({approved.detail}) and is "
                f"{described_state(case)}")
    if case.state in _AFTER_APPROVAL:
        return f"it was approved meanwhile and is {case.state.value}"
    return f"it became {described_state(case)} meanwhile"
