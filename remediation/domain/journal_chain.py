"""The journal's hash chain: each case's steps, and its record, chained so that a step edited
or deleted outside the app shows (``chain_problems``), in ``doctor`` and in ``report``.

What every journal writes (SQLite, Table Storage, the tests' fake), in the write that stores
the step, atomically:

- with each step its ``StepLink``: ``seq``, the next number of the case's chain; ``prev``, the
  hash of the chained step before it (``GENESIS``, "", for the first); ``hash``, ``step_hash``;
- the chain's ``ChainHead`` (``seq`` and ``hash`` of the step just written), so a step deleted
  from the end shows too;
- with the case record, whenever it is written (``add_case``, ``update_case``), its
  ``CaseSeal``: ``seal_for`` the record as stored and the head as the writer read it.

Hashes are SHA-256, hex, over canonical JSON (``json.dumps(..., sort_keys=True,
separators=(",", ":"), ensure_ascii=False)``, UTF-8) of:

- a step: ``["remediation-step/1", case_id, seq, step, prev]``, ``step`` being
  ``Step.to_dict()`` as JSON stores it (tuples as lists);
- a record: ``["remediation-case/1", case_id, record, after, after_hash]``, ``record`` being
  ``Case.to_dict()`` as JSON stores it, ``after``/``after_hash`` the head it followed (0, "").

No secret goes in: the chain is not a signature. Whoever can write the journal and knows this
text can rewrite a case's chain whole, and the app itself could; what it shows is an edit or a
deletion made by hand, outside the app (someone with write access to the table or the file
changing a row). The copy no identity of the app can rewrite is the log record of each step in
Log Analytics.

Steps journaled before the chain existed have no link: they are counted, as not verifiable,
and never taken for tampering; so is a record not written since.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from remediation.domain.cases import Case, Step
from remediation.domain.display import shown
from remediation.domain.journal_links import GENESIS, CaseSeal, ChainHead, StepLink

STEP_TAG = "remediation-step/1"
CASE_TAG = "remediation-case/1"
_NAME_SHOWN = 60  # characters of a step's name in a problem's line


def canonical(value: Any) -> str:
    """The one JSON spelling of ``value`` that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def step_hash(case_id: str, seq: int, step: Step, prev: str) -> str:
    """The hash of ``step`` as step ``seq`` of case ``case_id``, after the step hashed
    ``prev`` (64 hex characters)."""
    return _digest([STEP_TAG, case_id, seq, _as_stored(step.to_dict()), prev])


def link_for(case_id: str, step: Step, after: ChainHead | None) -> StepLink:
    """The link of ``step`` written after ``after`` (None: the case's first chained step)."""
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
    """Both lists of ``case``'s chain: its steps (hash, order, gaps), its head and its seal."""
    problems: list[str] = []
    chained: list[Step] = []
    before = 0
    for step in case.steps:
        if step.link is not None:
            chained.append(step)
        elif chained:
            problems.append(f"a step after {_label(chained[-1])} has no hash: it was added "
                            "outside the app")
        else:
            before += 1
    chained.sort(key=_seq)
    problems += _step_problems(case.case_id, chained)
    problems += _head_problems(chained, case.chain_head)
    notes = [f"{before} step{'s' if before != 1 else ''} written before the chain "
             "(not verifiable)"] if before else []
    if case.seal is None:
        notes.append("the case record was written before the chain (not verifiable)")
    else:
        problems += _seal_problems(case, case.seal, {_seq(step): step for step in chained})
    return ChainCheck(tuple(dict.fromkeys(problems)), tuple(notes))


def _step_problems(case_id: str, chained: list[Step]) -> list[str]:
    problems = []
    previous: Step | None = None
    for step in chained:
        link = _link(step)
        if step_hash(case_id, link.seq, step, link.prev) != link.hash:
            problems.append(f"{_label(step)} was changed after it was written")
        if previous is None:
            if link.prev != GENESIS:
                problems.append(f"a step before {_label(step)} is missing (the chain does not "
                                "start there)")
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


def _head_problems(chained: list[Step], head: ChainHead | None) -> list[str]:
    if not chained:
        return ([] if head is None else
                [f"every step of the chain is missing (its head names step {head.seq})"])
    last = _link(chained[-1])
    if head is None:
        return [f"the chain's head is missing: a step after {_label(chained[-1])} could have "
                "been deleted unseen"]
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
    head = ChainHead(seal.after, seal.after_hash) if seal.after else None
    if seal_for(case, head).hash != seal.hash:
        problems.append(f"the case record (state {case.state.value}) was changed after it was "
                        "written")
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
