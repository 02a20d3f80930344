"""A person's decisions on a case: who ended it and why (issue 16, point 1).

``remediation reject`` ends a case waiting for approval ``rejected``: nothing changes in the
tenant. ``remediation close`` ends an escalated case a person has handled ``closed``. Both
save who decided with the state (``Case.decided_by``), so no crash leaves a decided case
that does not say who decided; the reason on the case reads "rejected by NAME: WHY" and the
decision's step (``rejected`` / ``closed``) keeps who and why as data.

A case a person decided on keeps the block it was about, as an escalated case does: the
robot never acts on a block a person now owns (``owned_by_a_person``).
"""

from remediation.domain.cases import Case, CaseState
from remediation.domain.errors import InvalidRequest
from remediation.domain.requests import checked_text

REJECTED, CLOSED = "rejected", "closed"  # the decision's step, named as its state
NAME_LIMIT = 256  # as an approver's name (service.messages.APPROVER_LIMIT)
REASON_LIMIT = 1000  # as a request's reason


def decider(value: object) -> str:
    """``--by``: who decides, checked as any approver's name is (at most 256 characters,
    no control characters, not blank). Raises InvalidRequest naming ``--by``."""
    return _text(value, "--by", NAME_LIMIT, "name who decides")


def why(value: object) -> str:
    """``--reason``: why, free text from outside (at most 1000 characters, no control
    characters, not blank). Raises InvalidRequest naming ``--reason``. Secrets in it are
    masked when it is journaled (``CaseRecorder``), like every text the journal keeps."""
    return _text(value, "--reason", REASON_LIMIT, "say why")


def _text(value: object, name: str, limit: int, hint: str) -> str:
    try:
        text = checked_text(value, name, limit)
    except InvalidRequest as error:  # "'--by' is longer ..." said as the option is written
        raise InvalidRequest(error.reason.replace(f"'{name}'", name)) from None
    if text is None:
        raise InvalidRequest(f"{name} is blank: {hint}")
    return text


def refused_by_a_person(case: Case) -> bool:
    """Rejected by a person (not a request refused at the door, which decided nothing)."""
    return case.state is CaseState.REJECTED and case.decided_by is not None


def owned_by_a_person(case: Case) -> bool:
    """Does a person own the block the case was about? Escalated (handed over), closed (a
    person handled it) or rejected by a person: the robot never lifts that block, and
    requests about it are recorded on the case, as for an escalated one."""
    return case.state in (CaseState.ESCALATED, CaseState.CLOSED) or refused_by_a_person(case)


def decided(case: Case) -> str | None:
    """How a person ended the case, in words (``rejected by alice``), or None."""
    if case.decided_by is None or case.state not in (CaseState.REJECTED, CaseState.CLOSED):
        return None
    return f"{case.state.value} by {case.decided_by}"


def described_state(case: Case) -> str:
    """The case's state, with who decided it when a person did: ``rejected (by alice)``."""
    if case.decided_by is not None and case.state in (CaseState.REJECTED, CaseState.CLOSED):
        return f"{case.state.value} (by {case.decided_by})"
    return case.state.value
