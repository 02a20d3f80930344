"""What a journal stores of a case's hash chain (``domain.journal_chain`` computes and checks
it): a step's place in the chain, the chain's head, and the seal on the case record.

Every journal fills these in when it reads a case (``Journal.get_case``, ``list_cases``...);
a step written before the chain existed has no link, a case record never written since has no
seal. They never take part in equality: two cases are equal by what they say, wherever the
journal put them.
"""

import json
from dataclasses import dataclass

GENESIS = ""  # the "previous hash" of a case's first chained step
UNREADABLE = "unreadable"  # a seal whose text is no seal's: it matches no record


@dataclass(frozen=True)
class StepLink:
    """A step's place in its case's chain: its number (1, 2, ... per case, no gaps), the hash
    of the chained step before it (``GENESIS`` for the first) and its own hash (64 hex)."""

    seq: int
    prev: str
    hash: str


@dataclass(frozen=True)
class ChainHead:
    """The chain's last step as the journal recorded it, in the same write as that step: its
    number and hash. A step deleted from the end shows against it."""

    seq: int
    hash: str


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
