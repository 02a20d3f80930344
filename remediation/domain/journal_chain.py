"""The journal's hash chain: each case's steps, and its record, chained so that a step edited
or deleted outside the app shows (``chain_problems``), in ``doctor`` and in ``report``.

What every journal writes (SQLite, Table Storage, the tests' fake), in the write that stores
the step, atomically:

- with each step its ``StepLink``: ``seq``, the next number of the case's chain; ``prev``, the
  hash of the chained step before it (for the first, ``genesis(case_id)`` in a case opened
  with the chain, ``GENESIS``, "", in a case opened before it); ``hash``, ``step_hash``;
- the chain's ``ChainHead`` (``seq`` and ``hash`` of the step just written, the seal hash of
  the record as last written, the first flaw a writer found, and ``head_digest`` over them),
  so a step deleted from the end shows, and so does a head edited to hide it;
- with the case record, whenever it is written (``add_case``, ``update_case``), its
  ``CaseSeal``: ``seal_for`` the record as stored and the head as the writer read it; and, in
  the same write, the head again, now naming that seal, so an earlier copy of the record
  put back shows. A case opened with no step gets its head then: (0, ``genesis(case_id)``).

Writers continue the chain from the head as ``journal_head.continuing`` says, keeping what
they found wrong with it (``ChainHead.flaw``) in every head after, so an edit is not
laundered by the app's next write.

Hashes are SHA-256, hex, over canonical JSON (``json.dumps(..., sort_keys=True,
separators=(",", ":"), ensure_ascii=False)``, UTF-8) of:

- a step: ``["remediation-step/1", case_id, seq, step, prev]``, ``step`` being
  ``Step.to_dict()`` as JSON stores it (tuples as lists);
- a record: ``["remediation-case/1", case_id, record, after, after_hash]``, ``record`` being
  ``Case.to_dict()`` as JSON stores it, ``after``/``after_hash`` the head it followed (0, ""
  before any chained step of a case opened before the chain);
- a head: ``["remediation-head/1", case_id, seq, hash, record, flaw]`` (null for None);
- a case's genesis: ``["remediation-genesis/1", case_id]``.

No secret goes in: the chain is not a signature. Whoever can write the journal and knows this
text can rewrite a case's chain whole, and the app itself could; so can whoever puts back an
earlier copy of every row of a case (a restore). What it shows is an edit, a deletion, an
insertion or an earlier copy of one row made by hand, outside the app (someone with write
access to the table or the file changing rows without computing a hash). The copy no
identity of the app can rewrite is the log record of each step in Log Analytics.

Steps journaled before the chain existed have no link: they are counted, as not verifiable,
and never taken for tampering; so is a record not written since, and a head written before
heads carried a digest. In a case opened with the chain, none of those can be: a step
without a hash there is an insertion.
"""

import hashlib
import json
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

from remediation.domain.cases import Case, Step
from remediation.domain.display import shown
from remediation.domain.journal_links import GENESIS, CaseSeal, ChainHead, StepLink

STEP_TAG = "remediation-step/1"
CASE_TAG = "remediation-case/1"
HEAD_TAG = "remediation-head/1"
GENESIS_TAG = "remediation-genesis/1"
_NAME_SHOWN = 60  # characters of a step's name in a problem's line


def canonical(value: Any) -> str:
    """The one JSON spelling of ``value`` that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def step_hash(case_id: str, seq: int, step: Step, prev: str) -> str:
    """The hash of ``step`` as step ``seq`` of case ``case_id``, after the step hashed
    ``prev`` (64 hex characters)."""
    return _digest([STEP_TAG, case_id, seq, _as_stored(step.to_dict()), prev])


def genesis(case_id: str) -> str:
    """The ``prev`` of the first step of a case opened with the chain (64 hex): it marks the
    case as chained from its opening."""
    return _digest([GENESIS_TAG, case_id])


def opening(case_id: str) -> ChainHead:
    """Where the chain of a case opened with it starts: number 0, ``genesis(case_id)``."""
    return ChainHead(0, genesis(case_id))


def head_digest(case_id: str, head: ChainHead) -> str:
    """The digest ``head`` carries when a journal wrote it (64 hex)."""
    return _digest([HEAD_TAG, case_id, head.seq, head.hash, head.record, head.flaw])


def sealed_head(case_id: str, at: ChainHead, record: str | None,
                flaw: str | None = None) -> ChainHead:
    """The head to store at ``at`` (its ``seq`` and ``hash``), naming the record's seal hash
    ``record`` and the kept ``flaw``, with its digest."""
    head = ChainHead(at.seq, at.hash, record, flaw)
    return replace(head, digest=head_digest(case_id, head))


def link_for(case_id: str, step: Step, after: ChainHead | None) -> StepLink:
    """The link of ``step`` written after ``after`` (None: the first chained step of a case
    opened before the chain; ``opening(case_id)``: the first of a case opened with it)."""
    seq, prev = (after.seq + 1, after.hash) if after is not None else (1, GENESIS)
    return StepLink(seq, prev, step_hash(case_id, seq, step, prev))


def link_at(case_id: str, step: Step, seq: int, prev: str) -> StepLink:
    """The link of ``step`` as number ``seq`` after the step hashed ``prev`` (a journal that
    numbers every step, chained or not, continues its own numbering)."""
    return StepLink(seq, prev, step_hash(case_id, seq, step, prev))


def seal_for(case: Case, head: ChainHead | None) -> CaseSeal:
    """The seal of ``case``'s record written when the chain's head was ``head`` (None: no
    chained step yet)."""
    after, after_hash = (head.seq, head.hash) if head is not None else (0, GENESIS)
    record = _as_stored(case.to_dict())
    return CaseSeal(_digest([CASE_TAG, case.case_id, record, after, after_hash]),
                    after, after_hash)


@dataclass(frozen=True)
class ChainCheck:
    """What ``check_chain`` found: ``problems``, each an edit or a deletion, one line naming
    the step (none: intact as far as it can be checked); ``notes``, what could not be checked
    (steps and a record written before the chain), never a problem."""

    problems: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def intact(self) -> bool:
        return not self.problems


def chain_problems(case: Case) -> list[str]:
    """The edits and deletions ``case``'s chain shows, one line each, e.g. ``step 7
    (reset_password) was changed after it was written``, ``a step between 6 and 8 is
    missing``, ``the case record (state verified) was changed after it was written``; empty
    when intact. ``case`` as a journal returns it (``get_case``, ``list_cases``): a case
    evolved in memory since carries steps and a record no journal sealed."""
    return list(check_chain(case).problems)


def chain_notes(case: Case) -> list[str]:
    """What could not be checked, one line each (``3 steps written before the chain (not
    verifiable)``); never a sign of tampering."""
    return list(check_chain(case).notes)


def check_chain(case: Case) -> ChainCheck:
    """Both lists of ``case``'s chain: its steps (hash, order, gaps, keys), its head (where it
    ends, its digest, the record it names, a flaw a writer kept) and its seal."""
    problems: list[str] = []
    chained = [step for step in case.steps if step.link is not None]
    born = _born(case, chained)
    problems += _unhashed_problems(case.steps, born)
    problems += _order_problems(chained)
    chained.sort(key=_seq)
    problems += _step_problems(case.case_id, chained)
    problems += _head_problems(case.case_id, chained, case.chain_head, born)
    before = 0 if born else len(_leading_unhashed(case.steps))
    notes = [f"{before} step{'s' if before != 1 else ''} written before the chain "
             "(not verifiable)"] if before else []
    head = case.chain_head
    if head is not None and head.digest is None and not born:
        notes.append("the chain's head was written before it carried a digest (not "
                     "verifiable)")
    if case.seal is None:
        if born or (head is not None and head.digest is not None and head.record is not None):
            problems.append("the case record has no seal: it was replaced outside the app")
        else:
            notes.append("the case record was written before the chain (not verifiable)")
    else:
        problems += _seal_problems(case, case.seal, {_seq(step): step for step in chained})
    return ChainCheck(tuple(dict.fromkeys(problems)), tuple(notes))


def _born(case: Case, chained: list[Step]) -> bool:
    """Whether ``case`` was opened with the chain: its first chained step follows its
    genesis, or (no step chained yet) its head or its seal starts there."""
    start = genesis(case.case_id)
    if chained:
        return _link(min(chained, key=_seq)).prev == start
    head, seal = case.chain_head, case.seal
    return ((head is not None and head.hash == start)
            or (seal is not None and seal.after_hash == start))


def _leading_unhashed(steps: tuple[Step, ...]) -> list[Step]:
    leading = []
    for step in steps:
        if step.link is not None:
            break
        leading.append(step)
    return leading


def _unhashed_problems(steps: tuple[Step, ...], born: bool) -> list[str]:
    """A step without a hash after a chained one, or anywhere in a case opened with the
    chain, was added outside the app."""
    problems = []
    last: Step | None = None
    for position, step in enumerate(steps):
        if step.link is not None:
            last = step
        elif last is not None:
            problems.append(f"a step after {_label(last)} has no hash: it was added outside "
                            "the app")
        elif born:
            following = next((later for later in steps[position:] if later.link is not None),
                             None)
            where = f"before {_label(following)}" if following is not None else (
                f"({shown(step.name, _NAME_SHOWN)})")
            problems.append(f"a step {where} has no hash: it was added outside the app (this "
                            "case was chained from its opening)")
    return problems


def _order_problems(chained: list[Step]) -> list[str]:
    """The journal lists a case's steps in their numbers' order, each under its own key."""
    problems = []
    for previous, step in pairwise(chained):
        if _seq(step) < _seq(previous):
            problems.append(f"{_label(step)} is listed after {_label(previous)}: the steps "
                            "were reordered outside the app")
    for step in chained:
        stored_as = _link(step).stored_as
        if stored_as is not None:
            problems.append(f"{_label(step)} is stored under another step's key "
                            f"({shown(stored_as, _NAME_SHOWN)}): it was moved outside the app")
    return problems


def _step_problems(case_id: str, chained: list[Step]) -> list[str]:
    problems = []
    previous: Step | None = None
    start = genesis(case_id)
    for step in chained:
        link = _link(step)
        if step_hash(case_id, link.seq, step, link.prev) != link.hash:
            problems.append(f"{_label(step)} was changed after it was written")
        if previous is None:
            if link.prev not in (GENESIS, start):
                problems.append(f"a step before {_label(step)} is missing (the chain does not "
                                "start there)")
            elif link.prev == start and link.seq > 1:
                problems.append(_missing(0, link.seq))
        else:
            last = _link(previous)
            if link.seq == last.seq + 1 and link.prev != last.hash:
                problems.append(f"{_label(previous)} was changed after it was written (step "
                                f"{link.seq} no longer follows it)")
            elif link.seq > last.seq + 1:
                problems.append(_missing(last.seq, link.seq))
            elif link.seq == last.seq:
                problems.append(f"{_label(step)} appears twice")
        previous = step
    return problems


def _head_problems(case_id: str, chained: list[Step], head: ChainHead | None,
                   born: bool) -> list[str]:
    if head is None:
        if chained:
            return [f"the chain's head is missing: a step after {_label(chained[-1])} could "
                    "have been deleted unseen"]
        return ["the chain's head is missing"] if born else []
    problems = []
    if head.flaw is not None:
        problems.append(shown(head.flaw, 2 * _NAME_SHOWN + 80))
    if head.digest is None:
        if born:
            problems.append(f"the chain's head has no digest: it was rewritten outside the "
                            f"app, and steps after step {head.seq} could have been deleted "
                            "unseen")
    elif head.digest != head_digest(case_id, head):
        problems.append(f"the chain's head was changed outside the app: steps after step "
                        f"{head.seq} could have been deleted unseen")
    return problems + _end_problems(chained, head)


def _end_problems(chained: list[Step], head: ChainHead) -> list[str]:
    if not chained:
        return ([] if head.seq == 0 else
                [f"every step of the chain is missing (its head names step {head.seq})"])
    last = _link(chained[-1])
    if head.seq > last.seq:
        count = head.seq - last.seq
        return [f"the last step (step {head.seq}) is missing" if count == 1 else
                f"the last {count} steps (after step {last.seq}) are missing"]
    if head.seq < last.seq:
        return [f"steps after step {head.seq} were added outside the app (the chain's head "
                "ends there)"]
    if head.hash != last.hash:
        return [f"{_label(chained[-1])} was changed after it was written (the chain's head "
                "holds another hash)"]
    return []


def _seal_problems(case: Case, seal: CaseSeal, by_seq: dict[int, Step]) -> list[str]:
    problems = []
    if seal_for(case, ChainHead(seal.after, seal.after_hash)).hash != seal.hash:
        return [f"the case record (state {case.state.value}) was changed after it was written",
                *_seal_place_problems(seal, by_seq)]
    head = case.chain_head
    if (head is not None and head.digest is not None and head.record is not None
            and head.record != seal.hash):
        problems.append(f"the case record (state {case.state.value}, version {case.version}) "
                        "is not the one last written: an earlier copy was put back, or it "
                        "was replaced outside the app")
    return problems + _seal_place_problems(seal, by_seq)


def _seal_place_problems(seal: CaseSeal, by_seq: dict[int, Step]) -> list[str]:
    problems = []
    if seal.after:
        step = by_seq.get(seal.after)
        if step is None:
            problems.append(f"the case record was written after step {seal.after}, which is "
                            "missing")
        elif _link(step).hash != seal.after_hash:
            problems.append(f"{_label(step)} was changed after the case record was written")
    return problems


def _missing(after: int, before: int) -> str:
    count = before - after - 1
    if count == 1:
        return f"a step between {after} and {before} is missing"
    return f"{count} steps between {after} and {before} are missing"


def _label(step: Step) -> str:
    return f"step {_seq(step)} ({shown(step.name, _NAME_SHOWN)})"


def _link(step: Step) -> StepLink:
    assert step.link is not None
    return step.link


def _seq(step: Step) -> int:
    return _link(step).seq


def _as_stored(value: dict[str, Any]) -> Any:
    """``value`` as a journal reads it back from the JSON it stored (tuples as lists, keys
    as text): what is hashed when written is what is hashed when checked."""
    return json.loads(json.dumps(value))


def _digest(value: Any) -> str:
    # surrogatepass: text from outside may hold a lone surrogate, which JSON carries.
    return hashlib.sha256(canonical(value).encode("utf-8", "surrogatepass")).hexdigest()
