"""Cases (one user, one block episode) and the steps journaled for them."""

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from remediation.domain.journal_links import CaseSeal, ChainHead, StepLink


class CaseState(StrEnum):
    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    AWAITING_APPROVAL = "awaiting_approval"
    AWAITING_VERIFICATION = "awaiting_verification"
    VERIFIED = "verified"
    ESCALATED = "escalated"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    PLANNED = "planned"
    CLOSED = "closed"  # an escalation a person handled (``remediation close``)

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({CaseState.VERIFIED, CaseState.ESCALATED, CaseState.SKIPPED,
                    CaseState.REJECTED, CaseState.PLANNED, CaseState.CLOSED})


class StepStatus(StrEnum):
    STARTED = "started"
    DONE = "done"
    FAILED = "failed"
    INFO = "info"


@dataclass(frozen=True)
class Step:
    """One journal line: what was attempted, when, and how it went. Never a secret."""

    name: str
    status: StepStatus
    at: datetime
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    # Its place in the case's hash chain, as the journal read it (None: written before the
    # chain, or not read from a journal); never part of ``to_dict`` or of equality.
    link: StepLink | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "at": self.at.isoformat(),
                "detail": self.detail, "data": self.data}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Step":
        return cls(name=raw["name"], status=StepStatus(raw["status"]),
                   at=datetime.fromisoformat(raw["at"]), detail=raw.get("detail", ""),
                   data=dict(raw.get("data") or {}))


@dataclass(frozen=True)
class Case:
    """The record of one remediation. ``version`` guards against lost updates."""

    case_id: str
    user: str
    state: CaseState
    created_at: datetime
    updated_at: datetime
    source: str = "manual"
    reason: str | None = None
    requested_by: str | None = None
    alert_ids: tuple[str, ...] = ()
    request_ids: tuple[str, ...] = ()
    force: bool = False
    user_id: str | None = None
    sender: str | None = None  # the directory's primary address
    # The addresses of this account on the Restricted users list (an alias, perhaps): first
    # the one a signal named, then any the plan found listed.
    listed_addresses: tuple[str, ...] = ()
    # The account's other names as the directory gave them when the case found it (its UPN,
    # mail and SMTP addresses, lower case): ``status --user`` finds the case by any of them.
    aliases: tuple[str, ...] = ()
    block_created: datetime | None = None
    unblocked_at: datetime | None = None
    last_block_seen: datetime | None = None
    ended_at: datetime | None = None  # when it reached its final state
    # An escalated case's kind (``escalation_kinds.EscalationKind`` value), saved with the
    # state so that no crash leaves the case without the README row that says what to do.
    escalation_kind: str | None = None
    # Who ended the case by a decision of their own (``remediation reject`` of a waiting
    # case, ``remediation close`` of an escalated one), saved with the state it decided;
    # None for every end the robot reached itself, a request refused at the door included.
    decided_by: str | None = None
    version: int = 0
    steps: tuple[Step, ...] = ()
    # The hash chain's head and the record's seal, as the journal read them
    # (``domain.journal_chain``); never part of ``to_dict`` or of equality.
    chain_head: ChainHead | None = field(default=None, compare=False, repr=False)
    seal: CaseSeal | None = field(default=None, compare=False, repr=False)

    @property
    def listed_address(self) -> str | None:
        """The first listed address (the one a signal named, where it named one)."""
        return self.listed_addresses[0] if self.listed_addresses else None

    @property
    def known_as(self) -> frozenset[str]:
        """Every name of the case's account it records, lower case: the address a request
        named or the primary one, the object id, the listed addresses and the aliases."""
        names = (self.user, self.user_id, self.sender, *self.listed_addresses, *self.aliases)
        return frozenset(name.lower() for name in names if name)

    @property
    def block_addresses(self) -> tuple[str, ...]:
        """The addresses to unblock and verify: the listed ones, else the primary one."""
        return self.listed_addresses or (self.sender or self.user,)

    @property
    def acted_at(self) -> datetime | None:
        """When the case acted on its evidence: its unblock, else its end (None while it has
        done neither). Evidence created after this is new: this case's work never answered it.
        """
        if self.unblocked_at is not None:
            return self.unblocked_at
        if self.state.is_final:
            return self.ended_at or self.updated_at
        return None

    def evolve(self, **changes: Any) -> "Case":
        return replace(self, **changes)

    def done(self, step_name: str) -> Step | None:
        """The step's ``done`` record, if a previous attempt finished it."""
        for step in reversed(self.steps):
            if step.name == step_name and step.status is StepStatus.DONE:
                return step
        return None

    def to_dict(self) -> dict[str, Any]:
        """Every field but the steps, as JSON-ready values."""
        return {
            "case_id": self.case_id, "user": self.user, "state": self.state.value,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "source": self.source, "reason": self.reason, "requested_by": self.requested_by,
            "alert_ids": list(self.alert_ids), "request_ids": list(self.request_ids),
            "force": self.force, "user_id": self.user_id, "sender": self.sender,
            "listed_address": self.listed_address,
            "listed_addresses": list(self.listed_addresses), "aliases": list(self.aliases),
            "block_created": _iso(self.block_created), "unblocked_at": _iso(self.unblocked_at),
            "last_block_seen": _iso(self.last_block_seen), "ended_at": _iso(self.ended_at),
            "escalation_kind": self.escalation_kind, "decided_by": self.decided_by,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any], steps: tuple[Step, ...] = ()) -> "Case":
        return cls(
            case_id=raw["case_id"], user=raw["user"], state=CaseState(raw["state"]),
            created_at=datetime.fromisoformat(raw["created_at"]),
            updated_at=datetime.fromisoformat(raw["updated_at"]),
            source=raw.get("source", "manual"), reason=raw.get("reason"),
            requested_by=raw.get("requested_by"), alert_ids=tuple(raw.get("alert_ids", ())),
            request_ids=tuple(raw.get("request_ids", ())), force=bool(raw.get("force", False)),
            user_id=raw.get("user_id"), sender=raw.get("sender"),
            listed_addresses=tuple(raw.get("listed_addresses") or (
                [raw["listed_address"]] if raw.get("listed_address") else [])),
            aliases=tuple(raw.get("aliases") or ()),
            block_created=_parse(raw.get("block_created")),
            unblocked_at=_parse(raw.get("unblocked_at")),
            last_block_seen=_parse(raw.get("last_block_seen")),
            ended_at=_parse(raw.get("ended_at")),
            escalation_kind=raw.get("escalation_kind"),
            decided_by=raw.get("decided_by"),
            version=int(raw.get("version", 0)), steps=steps,
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
