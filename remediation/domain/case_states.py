"""Every path a case can take, in one table: ``(state, event) -> next state``.

The journal refuses to store a case whose state moved along no row of this table
(``check_transition``), so a path that leads nowhere shows up here as a missing row rather
than as a stuck case in production. Staying in the same state (a step journaled, an alias
learnt) is no transition and always allowed.

A case is opened ``received`` (a request to work on) or ``rejected`` (an invalid one, kept
on record). From a working state (received, in_progress, awaiting_approval,
awaiting_verification) some message or scheduled retry always leads on; the sweeper
(``service.sweeper``) finds a working case nothing moved for too long and resumes or
escalates it, and one waiting for a person's approval longer than APPROVAL_TIMEOUT.

A final state has no row of the robot's: nothing the robot does leaves it. One row of
``AFTER_THE_END`` leaves one: a person closing an escalated case (``remediation close``),
which nothing but that person's command takes, so an escalated case is no working case
(no message is owed to it). ``WORKING`` is therefore the states of the robot's rows only.
"""

from enum import StrEnum

from remediation.domain.cases import CaseState


class Event(StrEnum):
    START = "start"  # the securing steps begin (the request's worker)
    MERGED = "merged"  # the request belongs to another case's episode
    NOTHING_TO_DO = "nothing_to_do"  # the guardrails say skip (not blocked, a guest...)
    DRY_RUN = "dry_run"  # REMEDIATION_MODE=dry-run: planned, nothing changed
    AWAIT_APPROVAL = "await_approval"  # REMEDIATION_MODE=approve: a person must approve
    APPROVED = "approved"  # `remediation approve` (guardrails are checked again)
    UNBLOCKED = "unblocked"  # secured, block lifted, verification checks scheduled
    VERIFIED = "verified"  # a check found the block gone
    ESCALATE = "escalate"  # a permanent failure, a guardrail, new evidence, given up
    REJECT = "reject"  # `remediation reject`: a person refuses a waiting case
    CLOSE = "close"  # `remediation close`: a person handled an escalated case


S, E = CaseState, Event

#: The whole life of a case. Read a row as "in STATE, on EVENT, the case becomes NEXT".
TRANSITIONS: dict[tuple[CaseState, Event], CaseState] = {
    (S.RECEIVED, E.START): S.IN_PROGRESS,
    (S.RECEIVED, E.MERGED): S.SKIPPED,
    (S.RECEIVED, E.ESCALATE): S.ESCALATED,  # unknown user, ambiguous alert, given up
    (S.IN_PROGRESS, E.NOTHING_TO_DO): S.SKIPPED,
    (S.IN_PROGRESS, E.DRY_RUN): S.PLANNED,
    (S.IN_PROGRESS, E.AWAIT_APPROVAL): S.AWAITING_APPROVAL,
    (S.IN_PROGRESS, E.UNBLOCKED): S.AWAITING_VERIFICATION,
    (S.IN_PROGRESS, E.ESCALATE): S.ESCALATED,
    (S.AWAITING_APPROVAL, E.APPROVED): S.IN_PROGRESS,
    (S.AWAITING_APPROVAL, E.ESCALATE): S.ESCALATED,  # given up, or APPROVAL_TIMEOUT
    (S.AWAITING_APPROVAL, E.REJECT): S.REJECTED,  # nothing changed in the tenant
    (S.AWAITING_VERIFICATION, E.VERIFIED): S.VERIFIED,
    (S.AWAITING_VERIFICATION, E.ESCALATE): S.ESCALATED,  # re-blocked, still listed, new evidence
}

#: The rows that leave a final state: a person's decision after the robot handed over.
AFTER_THE_END: dict[tuple[CaseState, Event], CaseState] = {
    (S.ESCALATED, E.CLOSE): S.CLOSED,  # the escalation is handled; the record stays
}
TRANSITIONS.update(AFTER_THE_END)

#: The states a case may be opened in.
INITIAL: frozenset[CaseState] = frozenset({S.RECEIVED, S.REJECTED})

#: The states some message or retry must still move on: those of the robot's own rows.
WORKING: frozenset[CaseState] = frozenset(
    state for (state, event) in TRANSITIONS if (state, event) not in AFTER_THE_END)


class ForbiddenTransition(Exception):
    """A case change that no row of ``TRANSITIONS`` allows: a bug, never retried."""


def next_state(state: CaseState, event: Event) -> CaseState:
    """The state ``event`` leads to from ``state``.

    Raises ForbiddenTransition when the table has no such row."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise ForbiddenTransition(
            f"no transition from {state.value} on {event.value}") from None


def check_transition(case_id: str, before: CaseState, after: CaseState) -> None:
    """Refuse a stored state change along no row of the table (the journals call it).

    Raises ForbiddenTransition."""
    if before is after:
        return
    if not any(state is before and target is after
               for (state, _), target in TRANSITIONS.items()):
        raise ForbiddenTransition(
            f"case {case_id}: no transition from {before.value} to {after.value}")


def check_opening(case_id: str, state: CaseState) -> None:
    """Refuse a new case in a state no case starts in: every case opens ``received`` (its
    work to do) or ``rejected`` (a request refused at the door). The journals call it.

    Raises ForbiddenTransition."""
    if state not in INITIAL:
        raise ForbiddenTransition(
            f"case {case_id}: a case opens {' or '.join(sorted(s.value for s in INITIAL))}, "
            f"never {state.value}")
