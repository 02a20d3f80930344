"""Inbox rules the attacker created and deleted again, from the unified audit log.

Inbox rules carry no timestamps, and a rule deleted after use leaves nothing in the mailbox:
the unified audit log is the only history (CIPP-API PR #2127). Its rows, as
Search-UnifiedAuditLog returns them (a real export: blueteam0ps/det-eng-samples
``dataset/t1114.003_rule_mail_forward_same_dest.json``, ``t1564.008_*``), carry ``AuditData``,
a JSON string with ``Id``, ``CreationTime`` (UTC, no offset), ``Operation``, ``UserId``,
``ObjectId`` and ``Parameters`` ``[{"Name", "Value"}]``:

- ``New-InboxRule``: the rule's name in ``Parameters.Name``, and after the last ``\\`` of the
  ObjectId; its actions as parameters (``ForwardTo`` "a@b;c@d", ``MoveToFolder``, ...);
- ``Set-InboxRule``: ObjectId ``<mailbox guid>\\<RuleIdentity>``, ``Parameters.Identity`` as
  the caller typed it (a name or a number), ``Parameters.Name`` when renamed;
- ``Remove-InboxRule``: the same identities;
- ``UpdateInboxRules`` (Outlook and EWS clients): ``OperationProperties`` ``RuleOperation``
  (``AddMailboxRule``, ``ModifyMailboxRule``, ``RemoveMailboxRule``), ``RuleName``,
  ``RuleId`` and ``RuleActions`` (a JSON string). Seen in public analyses of real logs, not
  documented: read as far as those fields go, and often without a name (CIPP-API #2127).

Records naming the same rule (by name, or by RuleIdentity) are one rule's history. A rule is
*deleted* when a removal is recorded, or when it was created in the window and no rule of the
mailbox bears its name or identity any more. Its forwarding targets are the people who may have
received copies.
"""

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from remediation.domain.errors import PermanentError
from remediation.domain.exchange_rules import addresses_in, messagerule, recipient_addresses

RULE_OPERATIONS = ("New-InboxRule", "Set-InboxRule", "Remove-InboxRule", "UpdateInboxRules")
CREATED, CHANGED, REMOVED = "created", "changed", "removed"
_UPDATE_KINDS = {"addmailboxrule": CREATED, "modifymailboxrule": CHANGED,
                 "removemailboxrule": REMOVED}
_CMDLET_KINDS = {"new-inboxrule": CREATED, "set-inboxrule": CHANGED,
                 "remove-inboxrule": REMOVED}


class AuditLogOff(PermanentError):
    """The tenant does not record the unified audit log (UnifiedAuditLogIngestionEnabled
    False): nothing to search."""


@dataclass(frozen=True)
class RuleEvent:
    """One audit record about an inbox rule. ``tokens`` are the names (casefolded) and
    RuleIdentities it names the rule by; ``fields`` its actions in Exchange's parameter names
    (for ``exchange_rules.messagerule``)."""

    record_id: str
    kind: str
    at: datetime | None
    name: str
    tokens: frozenset[str]
    fields: Mapping[str, Any] = field(default_factory=dict)
    operation: str = ""


@dataclass(frozen=True)
class DeletedRule:
    key: str
    name: str
    created: datetime | None
    removed: datetime | None
    targets: tuple[str, ...]
    shape: dict[str, Any]
    operations: tuple[str, ...]
    record_ids: tuple[str, ...]


def read_event(record: Mapping[str, Any]) -> RuleEvent | None:
    """The event of one Search-UnifiedAuditLog row; None for a row that is not about an inbox
    rule or cannot be read."""
    audit = audit_data(record)
    if audit is None:
        return None
    operation = str(audit.get("Operation") or record.get("Operations") or "")
    at = audit_time(audit.get("CreationTime"))
    record_id = str(audit.get("Id") or record.get("Identity") or "")
    if operation.lower() == "updateinboxrules":
        return _update_event(audit, record_id, at)
    kind = _CMDLET_KINDS.get(operation.lower())
    if kind is None or not succeeded(audit):
        return None
    parameters = pairs(audit.get("Parameters"))
    names: list[str] = []
    identities: list[str] = []
    for text in (str(audit.get("ObjectId") or "").rpartition("\\")[2],
                 str(parameters.get("Identity") or "").rpartition("\\")[2],
                 str(parameters.get("Name") or "")):
        text = text.strip()
        if text:
            (identities if text.isdigit() else names).append(text)
    name = str(parameters.get("Name") or (names[0] if names else ""))
    tokens = frozenset({f"name:{n.casefold()}" for n in names}
                       | {f"id:{int(i)}" for i in identities})
    return RuleEvent(record_id, kind, at, name, tokens, parameters, operation)


def deleted_rules(events: Iterable[RuleEvent], present_names: Iterable[str],
                  present_identities: Iterable[str]) -> list[DeletedRule]:
    """The rules the records show created and deleted, oldest first. ``present_*``: the
    names and RuleIdentities of the mailbox's rules now."""
    present = ({f"name:{name.strip().casefold()}" for name in present_names}
               | {f"id:{identity}" for identity in present_identities})
    found = []
    for history in _histories(list(events)):
        kinds = {event.kind for event in history}
        tokens = frozenset().union(*(event.tokens for event in history))
        if REMOVED not in kinds and not (CREATED in kinds and not tokens & present):
            continue
        found.append(_deleted(history))
    return sorted(found, key=lambda rule: (rule.created or rule.removed or datetime.max.replace(
        tzinfo=UTC)))


def creation_times(events: Iterable[RuleEvent]) -> dict[str, datetime]:
    """When each rule the records show created was created (the earliest record), by name
    (``name:<casefolded>``) and by RuleIdentity (``id:<number>``): rules carry no timestamp
    of their own."""
    times: dict[str, datetime] = {}
    for event in events:
        if event.kind == CREATED and event.at is not None:
            for token in event.tokens:
                times[token] = min(times.get(token, event.at), event.at)
    return times


def created_at(times: Mapping[str, datetime], name: str, identity: str) -> datetime | None:
    return times.get(f"id:{identity}") or times.get(f"name:{name.strip().casefold()}")


def _deleted(history: Sequence[RuleEvent]) -> DeletedRule:
    ordered = sorted(history, key=lambda event: event.at or datetime.min.replace(tzinfo=UTC))
    fields: dict[str, Any] = {}
    for event in ordered:
        if event.kind != REMOVED:
            fields.update(event.fields)
    created = next((e.at for e in ordered if e.kind == CREATED), None)
    removed = next((e.at for e in reversed(ordered) if e.kind == REMOVED), None)
    name = next((e.name for e in reversed(ordered) if e.name), "")
    targets = tuple(dict.fromkeys(
        address for event in ordered for key in ("ForwardTo", "ForwardAsAttachmentTo",
                                                 "RedirectTo", "Targets")
        for address in recipient_addresses(event.fields.get(key))))
    enabled = str(fields.get("Enabled", "True")).lower() != "false"
    key = f"audit:{ordered[0].record_id}"
    return DeletedRule(key, name, created, removed, targets,
                       messagerule(key, name, enabled, fields),
                       tuple(dict.fromkeys(e.operation for e in ordered)),
                       tuple(e.record_id for e in ordered))


def _histories(events: list[RuleEvent]) -> list[list[RuleEvent]]:
    """Events grouped by the rule they name: any shared name or RuleIdentity links them."""
    parent = list(range(len(events)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first: dict[str, int] = {}
    for index, event in enumerate(events):
        for token in event.tokens:
            if token in first:
                parent[root(index)] = root(first[token])
            else:
                first[token] = index
    groups: dict[int, list[RuleEvent]] = {}
    for index, event in enumerate(events):
        if event.tokens:
            groups.setdefault(root(index), []).append(event)
    return list(groups.values())


def _update_event(audit: Mapping[str, Any], record_id: str,
                  at: datetime | None) -> RuleEvent | None:
    properties = pairs(audit.get("OperationProperties"))
    kind = _UPDATE_KINDS.get(str(properties.get("RuleOperation") or "").lower())
    if kind is None:
        return None
    name = str(properties.get("RuleName") or "").strip()
    rule_id = str(properties.get("RuleId") or "").strip()
    tokens = {f"name:{name.casefold()}"} if name else set()
    if rule_id.isdigit() and int(rule_id) != 0:
        tokens.add(f"clientid:{int(rule_id)}")  # the client's own numbering: linked apart
    fields: dict[str, Any] = {}
    actions = str(properties.get("RuleActions") or "")
    lowered = actions.lower()
    if "forward" in lowered or "redirect" in lowered:
        fields["ForwardTo"] = ";".join(addresses_in(actions))
    if "delete" in lowered:
        fields["DeleteMessage"] = "True"
    return RuleEvent(record_id, kind, at, name, frozenset(tokens), fields, "UpdateInboxRules")


def audit_data(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A Search-UnifiedAuditLog row's AuditData (a JSON string, or already an object); None
    when it cannot be read."""
    audit = record.get("AuditData")
    if isinstance(audit, str):
        try:
            audit = json.loads(audit)
        except ValueError:
            return None
    return audit if isinstance(audit, Mapping) else None


def succeeded(audit: Mapping[str, Any]) -> bool:
    """Whether the cmdlet the record keeps ran (``ResultStatus`` "True"; a refused one is
    "False" or "Failed")."""
    return str(audit.get("ResultStatus", "True")).lower() not in ("false", "failed")


def pairs(value: object) -> dict[str, Any]:
    """``[{"Name": n, "Value": v}, ...]`` as a dict (later names win)."""
    pairs: dict[str, Any] = {}
    if isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping) and isinstance(item.get("Name"), str):
                pairs[item["Name"]] = item.get("Value")
    return pairs


def audit_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
