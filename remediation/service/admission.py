"""Internal messages checked against the journal before they act (issue 14, point 4).

A verification check, an alert update or an approval is a queue message anyone with send
rights can write by hand. It acts only when it matches what the case journaled: the case's
account (its address, object id or any name its lookup found), a check the case scheduled
and whose time has come, an alert update the case queued (a ``start`` only while the case
is working). A case a person rejected or closed (``decided_refusal``) takes no approval and
no check at all. Each function answers why a message is refused, or None; the caller
journals the refusal on the case and changes nothing else.
"""

from datetime import datetime, timedelta

from remediation.domain.cases import Case, CaseState, StepStatus
from remediation.domain.decisions import decided
from remediation.service.journaling import LOOKUP, SCHEDULE
from remediation.service.messages import AlertUpdate, VerificationCheck

VERIFICATION_REFUSED = "verification_refused"
ALERT_UPDATE_REFUSED = "alert_update_refused"
# How far apart the clocks of two machines may be: a scheduled message is delivered at its
# time by the broker's clock, and the worker's may lag behind it by this much without the
# check being taken for an early one; a time another worker wrote may be this far ahead of
# ours without being distrusted (``sweeper.pending_until``). Five minutes, the allowance
# Microsoft's own token validation gives between the issuer's clock and the validator's
# (Microsoft.IdentityModel ``TokenValidationParameters.DefaultClockSkew``, 300 s). A
# forged check can therefore act at most this early, and it still reads the list: a block
# still there is never verified.
CLOCK_SKEW = timedelta(minutes=5)


def names_of(case: Case) -> set[str]:
    """Every name of the case's account, lower case: what it records (``known_as``) and
    what its lookup found (UPN, mail, SMTP addresses)."""
    names: set[str | None] = {*case.known_as}
    found = case.done(LOOKUP)
    if found is not None:
        names.update((found.data.get("user_id"), found.data.get("upn"),
                      found.data.get("mail"), *(found.data.get("proxy_addresses") or ())))
    return {name.lower() for name in names if isinstance(name, str) and name}


def decided_refusal(case: Case, what: str) -> str | None:
    """Why ``what`` (an approval, a verification check) may not act on ``case``: a person
    rejected or closed it (``remediation reject`` / ``close``); None when nobody did."""
    by = decided(case)
    if by is None:
        return None
    return (f"{what} refused: case {case.case_id} was {by} at "
            f"{decided_at(case):%Y-%m-%d %H:%M:%S} UTC; nothing was done")


def decided_at(case: Case) -> datetime:
    """When a person decided: the decision's step, else the save of the state it decided."""
    name = case.state.value if case.state in (CaseState.REJECTED, CaseState.CLOSED) else None
    return next((step.at for step in reversed(case.steps) if step.name == name),
                case.updated_at)


def check_refusal(case: Case, check: VerificationCheck, now: datetime) -> str | None:
    """Why ``check`` may not act on ``case`` at ``now``, or None: it must name the case's
    account and a check the case scheduled, and come no earlier than that check's time,
    on a case no person has rejected or closed."""
    refused = decided_refusal(case, "verification check")
    if refused is not None:
        return refused
    if check.user.lower() not in names_of(case):
        return (f"verification check refused: it names {check.user}, but case "
                f"{case.case_id} is about {case.user}; nothing was done")
    scheduled = case.done(SCHEDULE)
    checks = scheduled.data.get("checks", []) if scheduled is not None else []
    at = next((c.get("at") for c in checks if c.get("attempt") == check.attempt), None)
    if not isinstance(at, str):
        return (f"verification check refused: case {case.case_id} scheduled no check "
                f"attempt {check.attempt}; nothing was done")
    due = datetime.fromisoformat(at)
    if now + CLOCK_SKEW < due:
        return (f"verification check refused: attempt {check.attempt} of case "
                f"{case.case_id} came before its time ({due:%Y-%m-%d %H:%M:%S} UTC); "
                "nothing was done")
    return None


def update_refusal(case: Case, update: AlertUpdate) -> str | None:
    """Why ``update`` may not act on ``case``, or None: it must name the case's account and
    an update the case queued (journaled ``alerts_queued:{phase}:{count}``); a ``start``
    acts only while the case works, or after it ended but before its end notice was posted
    (never "resetting the password" after "needs a human")."""
    if update.user.lower() not in names_of(case):
        return (f"alert update refused: it names {update.user}, but case {case.case_id} "
                f"is about {case.user}; nothing was done")
    queued = f"alerts_queued:{update.phase}:{update.alert_count}"
    if not any(step.name == queued and step.status in (StepStatus.STARTED, StepStatus.DONE)
               for step in case.steps):
        return (f"alert update refused: case {case.case_id} queued no {update.phase!r} "
                f"update for {update.alert_count} alert(s); nothing was done")
    if update.phase == "start" and _ended_and_told(case):
        return (f"alert update refused: a 'start' notice for case {case.case_id}, which "
                f"is {case.state.value} and whose end notice went out; nothing was done")
    return None


_END_NOTICES = ("alert_comment:verified:", "alert_comment:escalated:",
                "alert_status:verified", "alert_status:escalated")


def _ended_and_told(case: Case) -> bool:
    """Has the case ended, with its end notice begun (or no end that takes one)? A start
    queued while the case worked and delivered after it ended still goes first, and one
    begun then is finished by its retry; a start never begun is never posted after the end
    notice, nor on a case that changed nothing."""
    if not case.state.is_final:
        return False
    end_begun = any(step.name.startswith(_END_NOTICES) for step in case.steps)
    if end_begun:
        return True  # never "resetting the password" after "done" or "needs a human"
    if any(step.name.startswith("alert_comment:start:") for step in case.steps):
        return False  # begun while the case worked: its retry finishes it (never twice)
    return not any(step.name.startswith(("alert_comment:verified:", "alert_comment:escalated:",
                                         "alerts_queued:verified:", "alerts_queued:escalated:"))
                   for step in case.steps) or any(
        step.name.startswith(("alert_comment:verified:", "alert_comment:escalated:"))
        for step in case.steps)
