"""What a journal stores of a case's hash chain (``domain.journal_chain`` computes and checks
it): a step's place in the chain, the chain's head, and the seal on the case record.

Every journal fills these in when it reads a case (``Journal.get_case``, ``list_cases``...);
a step written before the chain existed has no link, a case record never written since has no
seal. They never take part in equality: two cases are equal by what they say, wherever the
journal put them.
"""

import json
from dataclasses import dataclass

GENESIS = ""  # the "previous hash" of a chain begun on a case opened before the chain
UNREADABLE = "unreadable"  # a seal whose text is no seal's: it matches no record


@dataclass(frozen=True)
class StepLink:
    """A step's place in its case's chain: its number (1, 2, ... per case, no gaps), the hash
    of the chained step before it (for the first: ``journal_chain.genesis(case_id)`` in a
    case opened with the chain, ``GENESIS`` in one opened before) and its own hash (64 hex).
    ``stored_as``: the key the store files the step under when it is not the one its number
    gives (Table Storage: the RowKey of another number); None when they agree."""

    seq: int
    prev: str
    hash: str
    stored_as: str | None = None


@dataclass(frozen=True)
class ChainHead:
    """The chain's last step as the journal recorded it, in the same write as that step: its
    number and hash (0 and ``journal_chain.genesis(case_id)`` for a case opened with no
    step). A step deleted from the end shows against it.

    Moved by every step and every record write, a stored head also holds ``record``, the
    seal hash of the case record as last written (None: not written since the head kept
    it), so an earlier copy of the record put back shows; ``flaw``, what a writer found
    wrong with the head or the record when it moved the head (kept in every head after it);
    and ``digest``, its own hash over the case id and those four (``journal_chain.
    head_digest``; None: written before heads carried one), so a head edited by hand shows.
    """

    seq: int
    hash: str
    record: str | None = None
    flaw: str | None = None
    digest: str | None = None


@dataclass(frozen=True)
class CaseSeal:
    """The seal on a case record: a hash over the record as stored (``Case.to_dict``) and the
    chain's head it was written after (``after`` 0 and ``after_hash`` ``GENESIS``: no
    chained step yet)."""

    hash: str
    after: int
    after_hash: str

    def to_json(self) -> str:
        """``{"hash": str, "after": int, "after_hash": str}``: how the journals store it."""
        return json.dumps({"hash": self.hash, "after": self.after,
                           "after_hash": self.after_hash}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> "CaseSeal | None":
        """None for no text (a record written before the chain). Text that is not a seal's
        (edited by hand) reads as a seal that matches no record: the case still loads, and
        the check says it was changed."""
        if not text:
            return None
        try:
            raw = json.loads(text)
            return cls(str(raw["hash"]), int(raw["after"]), str(raw["after_hash"]))
        except (ValueError, TypeError, KeyError):
            return cls(UNREADABLE, 0, GENESIS)
