"""What one pass of a case read before it changed anything, so nothing is read twice.

A *pass* is one delivery's run of the securing steps from the plan on (``Securing.run``): the
plan reads the Restricted users list for every address, the mailbox's rules and forwarding
(``findings``) and every leftover kind's survey; then the reset and the revocation change the
password and the sessions, which none of those answers depend on; then mailbox hygiene and
each cleanup step would read the same things again. Within the pass they take the plan's
answers from here instead.

What stays read again, on purpose:

- anything after a change of the pass's own other than the reset and the revocation (a rule
  disabled, forwarding cleared, a leftover removed): ``changed`` is set and every later step
  reads afresh, since that change may show in another step's answer (a rule hygiene disabled
  is in the Exchange inbox rules' survey too);
- anything in a later pass: a retry, a redelivery, a case resumed by the sweeper or approved
  after waiting (hours may have passed) starts with an empty ``PassReads`` (its plan is
  journaled done and not run again, so nothing is filled in);
- the unblock's read of the Restricted users list, just before it removes a block: the list
  changes without us (a person's unblock, Exchange showing a removed entry a while longer, a
  new block), and the step must say what it removed;
- the verification's reads at +delay (has the attacker come back?), which are a new pass
  anyway, and every read after the unblock that must see its effect.
"""

from dataclasses import dataclass, field

from remediation.domain.hygiene import Finding
from remediation.domain.leftovers import Leftover


@dataclass
class PassReads:
    """``findings``: mailbox hygiene's; ``surveys``: each leftover kind's, by step
    name (a kind whose read was refused is absent: its step reads again and meets the
    refusal); ``changed``: a change other than the reset and revocation was made."""

    findings: list[Finding] | None = None
    surveys: dict[str, list[Leftover]] = field(default_factory=dict)
    changed: bool = False

    def take_findings(self) -> list[Finding] | None:
        """The plan's findings, once, while nothing has changed since; else None."""
        found, self.findings = self.findings, None
        return None if self.changed else found

    def take_survey(self, step: str) -> list[Leftover] | None:
        """The plan's survey for leftover step ``step``, once, while nothing has changed
        since; else None (read it)."""
        found = self.surveys.pop(step, None)
        return None if self.changed else found
