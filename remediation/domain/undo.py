"""Undoing a case: which of its changes can be put back, and how the journal records it.

Plain values, no I/O. What a case changed is read from its journal by
``remediation/service/progress.py`` (``changes``), which attaches a ``Restore`` to each
change the robot can put back; ``remediation/service/undo.py`` acts on them.

Journal records of an undo (all on the case, its state unchanged):

- ``undo_queued`` (note): a person queued an undo; ``token`` (the message acts only with it),
  ``by``, ``step`` (None: every step);
- ``undo:<step>:<digest of the change's key>``: one restoration, ``started`` then ``done``
  (``result`` ``restored`` or ``already``) or ``failed`` (``permanent``, ``why``); data
  ``step`` and ``key`` name the change;
- ``undo_finished`` (note): the undo with ``token`` ended: what was restored, what was not;
- ``undo_refused`` (note): an undo message that may not act (forged, replayed, another
  account's, a case still working, an account the guardrails forbid); nothing changed.
- ``undo_not_queued`` (note): queuing the message failed after ``undo_queued`` was written.
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from remediation.domain.cases import Case, Step, StepStatus

UNDO_QUEUED, UNDO_NOT_QUEUED = "undo_queued", "undo_not_queued"
UNDO_FINISHED, UNDO_REFUSED = "undo_finished", "undo_refused"
ITEM_PREFIX = "undo:"
RESTORED, ALREADY = "restored", "already"


class Call(StrEnum):
    """How a change is put back (each call's source is in adapters/tenant_restorer.py)."""

    GRAPH_RULE = "graph_rule"  # PATCH the messageRule with isEnabled true
    EXCHANGE_RULE = "exchange_rule"  # Enable-InboxRule
    FORWARDING = "forwarding"  # Set-Mailbox with the values Get-Mailbox showed before
    CONSENT = "consent"  # POST /oauth2PermissionGrants with the revoked grant's fields


@dataclass(frozen=True)
class Restore:
    """What puts a change back: ``call`` and what it needs (``target``: ``rule_id``;
    ``identity``; the three forwarding values as Get-Mailbox gave them; the grant's ``id``
    and ``body``). Never a secret."""

    call: Call
    target: Mapping[str, Any] = field(default_factory=dict)


def item_step(step: str, key: str) -> str:
    """The journal step of the restoration of ``step``'s change ``key``: a key may be long
    or hold spaces (a consent's "<id> consented <time>"), the step name stays short."""
    digest = hashlib.sha256(f"{step}\n{key}".encode()).hexdigest()[:12]
    return f"{ITEM_PREFIX}{step}:{digest}"


def restorations(case: Case) -> dict[tuple[str, str], Step]:
    """The last finished record (done, or failed for good) of each restoration, by the
    (step, key) of the change it restores."""
    found: dict[tuple[str, str], Step] = {}
    for record in case.steps:
        if not record.name.startswith(ITEM_PREFIX):
            continue
        if record.status is StepStatus.DONE or (
                record.status is StepStatus.FAILED and record.data.get("permanent")):
            found[(str(record.data.get("step")), str(record.data.get("key")))] = record
    return found


def restored(case: Case, step: str, key: str) -> Step | None:
    """The ``done`` record of the restoration of ``step``'s change ``key``, if any."""
    record = restorations(case).get((step, key))
    return record if record is not None and record.status is StepStatus.DONE else None


def queued(case: Case, token: str) -> Step | None:
    """The ``undo_queued`` note that carries ``token``."""
    return next((record for record in case.steps if record.name == UNDO_QUEUED
                 and record.data.get("token") == token), None)


def ended(case: Case, token: str) -> Step | None:
    """The note that ended the undo queued with ``token``: finished, refused or not queued."""
    return next((record for record in reversed(case.steps)
                 if record.name in (UNDO_FINISHED, UNDO_REFUSED, UNDO_NOT_QUEUED)
                 and record.data.get("token") == token), None)


def pending(case: Case) -> Step | None:
    """The newest ``undo_queued`` note whose undo has not ended yet, if any."""
    for record in reversed(case.steps):
        if record.name == UNDO_QUEUED and ended(case, str(record.data.get("token"))) is None:
            return record
    return None
