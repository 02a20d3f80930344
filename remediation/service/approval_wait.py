"""An approval given in time holds off the approval timeout until it arrives.

``remediation approve`` queues the approval on the requests queue and journals
``approval_queued`` on the case (``entrypoints.cli``); a worker delivers it. While the robot
is paused (``remediation pause``) the approval is kept with every other message and comes
back within ``PAUSE_RECHECK`` of ``resume`` (``service.pausing``); the sweeper does nothing
while paused, so its first sweep after ``resume`` can run before the kept approval comes
back. Expiring the case then would say "nobody approved or rejected the case within
APPROVAL_TIMEOUT" when the journal itself shows that somebody did, and the approval would
then be refused.

The rule (``held_by``, ``Sweeper._expire_approval``): a waiting case past its deadline is
not expired while an approval *given in time* is on its way: an ``approval_queued`` step
written at or after the case began to wait and before the deadline (that time plus
APPROVAL_TIMEOUT), by a clock not more than ``CLOCK_SKEW`` ahead of the sweeper's, with no
``approval_refused`` journaled since it was queued. Such an approval decides the case when
it comes: the case proceeds, or the approval is refused (the next sweep expires the case),
or its delivery fails to the last attempt (the case escalates ``gave_up``). An approval
queued after the deadline holds nothing off: it races the expiry as any decision does.

An approval that never comes (a lost message) does not hold the case for ever: the first
sweep that finds it held journals ``approval_expiry_deferred`` (once: a note, which moves
nothing); the case expires ``APPROVAL_TIMEOUT`` after the earliest such note, its reason
naming the approval that never arrived. The bound counts from a sweep, never from the
approval: the sweeper does not run while paused, so a pause of any length is not counted
against the approval it kept.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from remediation.domain.cases import Case, Step
from remediation.domain.durations import format_duration
from remediation.service.admission import CLOCK_SKEW
from remediation.service.workflow import APPROVAL_REFUSED

#: The step ``remediation approve`` journals once it queued an approval (the command line's
#: ``entrypoints.cli.APPROVAL_QUEUED``).
APPROVAL_QUEUED = "approval_queued"
#: The sweeper's note on a case past its deadline whose approval, given in time, is on its
#: way (``held_by``); the bound of the wait for it counts from the earliest one.
EXPIRY_DEFERRED = "approval_expiry_deferred"


@dataclass(frozen=True)
class Held:
    """A waiting case past its deadline that an approval given in time holds: the
    ``approval`` step (its ``approval_queued``), and when the sweeper first found it held
    (``deferred_at``; None: not noted yet). ``until``: when it expires all the same."""

    approval: Step
    deferred_at: datetime | None
    timeout: timedelta

    @property
    def until(self) -> datetime | None:
        return None if self.deferred_at is None else self.deferred_at + self.timeout

    def note(self) -> str:
        """The ``approval_expiry_deferred`` note's text."""
        return (f"approval timeout passed, but {self._given()}: the case waits for it to "
                f"arrive, at most APPROVAL_TIMEOUT ({format_duration(self.timeout)}) more")

    def never_arrived(self) -> str:
        """Why the case expires all the same (the expiry's reason, after "approval timed
        out: ")."""
        return (f"{self._given()}, but it never reached a worker in the APPROVAL_TIMEOUT "
                f"({format_duration(self.timeout)}) after the deadline")

    def _given(self) -> str:
        by = self.approval.data.get("approved_by")
        who = f"the approval by {by}" if isinstance(by, str) and by else "an approval"
        return f"{who} was queued in time ({self.approval.at:%Y-%m-%d %H:%M:%S} UTC)"


def held_by(case: Case, since: datetime | None, timeout: timedelta,
            now: datetime) -> Held | None:
    """The approval given in time that holds ``case`` (waiting since ``since``, by
    ``Sweeper``'s ``waiting_since``; None: no time can be trusted, then no approval is
    known to be in time) past its deadline, or None: the case may expire."""
    if since is None:
        return None
    deadline = since + timeout
    refused = [step.at for step in case.steps if step.name == APPROVAL_REFUSED]
    given = [step for step in case.steps
             if step.name == APPROVAL_QUEUED and since <= step.at < deadline
             and step.at <= now + CLOCK_SKEW
             and not any(at >= step.at for at in refused)]
    if not given:
        return None
    approval = max(given, key=lambda step: step.at)
    noted = [step.at for step in case.steps
             if step.name == EXPIRY_DEFERRED and step.at >= approval.at]
    return Held(approval, min(noted, default=None), timeout)
