"""The writers' half of the hash chain (``domain.journal_chain``): where a journal's next
write continues a case's chain, and what it found wrong there, kept in the head it writes
(``ChainHead.flaw``) so that the app's next write never launders an edit made by hand.

Every journal (SQLite, Table Storage, the tests' fake) writes, atomically:

- ``add_case``: ``case_opened`` (the links of its steps from ``opening``, the seal, the head);
- ``add_step``: reads what ``Found`` lists, asks ``continuing``, writes the step's link and
  ``step_written``'s head (``add_steps``: ``steps_written``'s links and head);
- ``update_case``: reads what ``Found`` lists, the record's seal included, and writes
  ``record_written``'s seal and head (``record_finding``: was the record it replaces the one
  the head names?).
"""

from collections.abc import Sequence
from dataclasses import dataclass

from remediation.domain.cases import Case, Step
from remediation.domain.journal_chain import (
    genesis,
    head_digest,
    link_at,
    link_for,
    opening,
    seal_for,
    sealed_head,
)
from remediation.domain.journal_links import GENESIS, CaseSeal, ChainHead, StepLink


@dataclass(frozen=True)
class Found:
    """What a writer read of a case's chain: ``head``, the stored head (None: none);
    ``last``, the number and hash of the last chained step row, and ``first_prev``, the
    ``prev`` of the first, where it read the rows (``needs_rows``); ``seal``, the case
    record's seal as stored, where it read the record (None: none, or not read)."""

    head: ChainHead | None
    last: ChainHead | None = None
    first_prev: str | None = None
    seal: CaseSeal | None = None


@dataclass(frozen=True)
class Next:
    """Where the next write continues: ``after``, the position the next step follows (None:
    the first chained step of a case opened before the chain); ``record``, the record's
    seal hash the head goes on naming; ``kept``, a flaw an earlier writer kept; ``finding``,
    what this writer found wrong (None: nothing)."""

    after: ChainHead | None
    record: str | None
    kept: str | None
    finding: str | None

    def flaw(self, what: str, also: str | None = None) -> str | None:
        """The flaw the written head keeps: the one kept, else this writer's finding (or
        ``also``) with ``what`` it was writing (``step 9``, ``version 5 of the case
        record``)."""
        finding = self.finding or also
        if self.kept is not None:
            return self.kept
        return None if finding is None else f"{finding} when {what} was written"


def needs_rows(head: ChainHead | None) -> bool:
    """Whether a writer reads the chained step rows (``Found.last``, ``first_prev``) too:
    when there is no head, or one without a digest (written before heads carried one, or
    rewritten by hand)."""
    return head is None or head.digest is None


def continuing(case_id: str, found: Found) -> Next:
    """Where the next write to case ``case_id``'s chain goes on from, given what was read.

    No head: after the last chained row (the head was deleted: a finding), else after the
    position the record's seal names if it names one (a case opened with the chain), else
    nowhere (a case opened before the chain). A head: after it, or after the last chained
    row when that is further (the head was put back). A finding: no head where rows or the
    seal say there was one; no digest in a case opened with the chain; a digest that does
    not match."""
    head = found.head
    record = found.seal.hash if found.seal is not None else None
    if head is None:
        after = found.last
        if after is None and found.seal is not None and found.seal.after_hash != GENESIS:
            after = ChainHead(found.seal.after, found.seal.after_hash)
        return Next(after, record, None,
                    None if after is None else "the chain's head was missing")
    further = found.last is not None and found.last.seq > head.seq
    after = found.last if further and found.last is not None else head
    return Next(ChainHead(after.seq, after.hash), head.record if head.digest else record,
                head.flaw, _head_finding(case_id, head, found.first_prev))


def record_finding(found: Found) -> str | None:
    """What is wrong with the record ``update_case`` replaces: not the one the head names
    (an earlier copy put back, or a record written by hand); None when it is, or the head
    names none."""
    head = found.head
    if head is None or head.digest is None or head.record is None:
        return None
    if found.seal is None or found.seal.hash != head.record:
        return "the case record had been replaced outside the app (an earlier copy put back)"
    return None


def _head_finding(case_id: str, head: ChainHead, first_prev: str | None) -> str | None:
    if head.digest is None:
        start = genesis(case_id)
        if first_prev == start or head.hash == start:
            return "the chain's head had no digest (rewritten outside the app)"
        return None  # written before heads carried one
    if head.digest != head_digest(case_id, head):
        return "the chain's head had been changed outside the app"
    return None


def case_opened(case: Case) -> tuple[list[StepLink], CaseSeal, ChainHead]:
    """What ``add_case`` writes: the links of ``case.steps`` from ``opening(case_id)``, the
    record's seal after the last of them, and the head naming that seal."""
    at = opening(case.case_id)
    links = []
    for step in case.steps:
        link = link_for(case.case_id, step, at)
        links.append(link)
        at = ChainHead(link.seq, link.hash)
    seal = seal_for(case, at)
    return links, seal, sealed_head(case.case_id, at, seal.hash)


def step_written(case_id: str, step: Step, after: Next, seq: int | None = None,
                 ) -> tuple[StepLink, ChainHead]:
    """The link of ``step`` written where ``after`` says (number ``seq`` when the journal
    numbers steps of its own, else the next after ``after.after``), and the head to store."""
    link = link_for(case_id, step, after.after)
    if seq is not None and seq != link.seq:
        link = link_at(case_id, step, seq, link.prev)
    head = sealed_head(case_id, ChainHead(link.seq, link.hash), after.record,
                       after.flaw(f"step {link.seq}"))
    return link, head


def steps_written(case_id: str, steps: Sequence[Step], after: Next, seq: int | None = None,
                  ) -> tuple[list[StepLink], ChainHead]:
    """The links of ``steps`` appended in order in one write where ``after`` says (the first
    numbered ``seq`` when the journal numbers steps of its own), and the head to store after
    the last: what writing them one by one would have written."""
    if not steps:
        raise ValueError("no steps to write")
    links: list[StepLink] = []
    for index, step in enumerate(steps):
        link, head = step_written(case_id, step, after, None if seq is None else seq + index)
        links.append(link)
        after = Next(ChainHead(link.seq, link.hash), after.record, head.flaw, None)
    return links, head


def record_written(stored: Case, found: Found) -> tuple[CaseSeal, ChainHead]:
    """What ``update_case`` writes with ``stored`` (the record at its new version): its seal,
    after the head as read, and the head at the same place naming the new seal."""
    after = continuing(stored.case_id, found)
    seal = seal_for(stored, after.after)
    flaw = after.flaw(f"version {stored.version} of the case record", record_finding(found))
    head = sealed_head(stored.case_id, after.after or ChainHead(0, GENESIS), seal.hash, flaw)
    return seal, head
