"""Inbox rules as Exchange sees them: hidden rules Graph never shows, and rules the attacker
deleted after use. A ``LeftoverKind`` (step ``exchange_inbox_rules``).

- Survey: every rule ``Get-InboxRule -IncludeHidden`` lists, judged by mailbox hygiene's
  criteria (``domain.exchange_rules``). Exchange's own rules (junk e-mail, out of office,
  delegate) are left out. A suspicious rule Graph also lists is mailbox hygiene's when that
  step's judgement finds it too (``graph_judgement``: it was disabled or reported there,
  once): kept here, its key recorded. A suspicious rule only Exchange shows, and one Graph
  lists that mailbox hygiene cannot find (it moves mail to RSS Feeds, a folder Graph v1.0
  has no well-known name for, and reading its container class would need ``Mail.Read``), is
  disabled (``MAILBOX_HYGIENE=disable``) or reported (``report``) here.
  Ordinary rules are the owner's and no leftover at all, so a rule the owner adds after the
  case acted does not read as the attacker's return, while an ordinary rule turned
  suspicious, or a disabled one enabled again, does (``Cleanup.returned``).
- Rules created and deleted inside the compromise window (the unified audit log, where it
  can be read: ``domain.rule_history``) are reported with their forwarding targets, the people
  who may have received copies. An audit log that cannot be read (ingestion off, no right,
  no answer) is journaled as such, and the case goes on.
- Disabling goes through ``Disable-InboxRule``, which removes the mailbox's Outlook
  client-side rules ("When you create, modify, remove, enable, or disable an Inbox rule in
  Exchange PowerShell, any client-side rules created by Microsoft Outlook are removed",
  office-docs-powershell ``Disable-InboxRule.md``): each disabled rule's reason says so.
  Undo: ``Enable-InboxRule -Identity <RuleIdentity> -Mailbox <upn>``.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import RemediationError
from remediation.domain.exchange_rules import (
    ExchangeRule,
    graph_judgement,
    graph_rule_identity,
    graph_shape,
    judge,
    moves_mail,
    read_rule,
    system_rule,
)
from remediation.domain.hygiene import Finding
from remediation.domain.leftovers import CompromiseWindow, Disposition, Leftover
from remediation.domain.rule_history import (
    DeletedRule,
    RuleEvent,
    created_at,
    creation_times,
    deleted_rules,
    read_event,
)
from remediation.service.leftovers import Wording
from remediation.service.ports import Directory

STEP = "exchange_inbox_rules"
HISTORY_KEY = "audit-log"
CLIENT_SIDE = ("disabled through Exchange, which also removes the mailbox's Outlook "
               "client-side rules (Disable-InboxRule reference)")
GRAPH_BLIND = ("Graph lists it, but the mailbox hygiene step cannot tell this folder through "
               "Graph (no well-known name): handled here")
HYGIENE_HANDLES = "hygiene_handles"  # a snapshot flag: the plan lists it under hygiene
FORWARDING_REASONS = ("forwardTo", "forwardAsAttachmentTo", "redirectTo")  # hygiene's words
_SNAPSHOT = ("Name", "RuleIdentity", "Identity", "Enabled", "Priority", "ForwardTo",
             "RedirectTo", "ForwardAsAttachmentTo", "MoveToFolder", "CopyToFolder",
             "DeleteMessage", "SoftDeleteMessage", "MarkAsRead", "StopProcessingRules",
             "Description")


class ExchangeRuleReader(Protocol):
    """What the kind reads and changes (``adapters/exchange_rules.py``)."""

    async def inbox_rules(self, mailbox: str) -> list[dict[str, Any]]:
        """Get-InboxRule -Mailbox -IncludeHidden rows."""
        ...

    async def graph_rule_ids(self, user_id: str) -> list[str]:
        """The ids of the rules Graph's messageRules lists."""
        ...

    async def well_known_folders(self, mailbox: str) -> dict[str, str]:
        """Folder path (``exchange_rules.folder_path``) -> well-known name (``inbox`` and the
        rarely read folders) of those the mailbox has."""
        ...

    async def disable_rule(self, mailbox: str, rule_identity: str) -> None: ...

    async def rule_history(self, mailbox: str, since: datetime) -> list[dict[str, Any]]:
        """Search-UnifiedAuditLog rows of the mailbox's inbox rule operations since ``since``.
        AuditLogOff when the tenant records no audit log."""
        ...


class ExchangeInboxRules:
    step = STEP
    label = "inbox rules seen by Exchange"
    wording = Wording(remove="disable", removed="disabled", kept="noted",
                      none_kept="nothing else to note")

    def __init__(self, reader: ExchangeRuleReader, directory: Directory, *, mode: str,
                 tenant_domains: frozenset[str] = frozenset()) -> None:
        self._reader = reader
        self._directory = directory
        self._mode = mode  # MAILBOX_HYGIENE: "disable" | "report"
        self._domains = tenant_domains

    async def survey(self, user: DirectoryUser, window: CompromiseWindow) -> list[Leftover]:
        mailbox = user.user_principal_name
        rules = [rule for rule in map(read_rule, await self._reader.inbox_rules(mailbox))
                 if rule is not None]
        judged = [rule for rule in rules if system_rule(rule.name) is None]
        events, history, note = await self._history(mailbox, window, rules)
        times = creation_times(events)
        shapes = [graph_shape(rule) for rule in judged] + [rule.shape for rule in history]
        folders = await self._reader.well_known_folders(mailbox) if moves_mail(shapes) else {}
        domains = await self._tenant_domains()
        findings = judge(shapes, folders, domains)
        in_graph = await self._in_graph(user, any(rule.identity in findings for rule in judged))
        # What mailbox hygiene found in the rules Graph lists: those are its, handled once.
        hygiene = graph_judgement([graph_shape(rule) for rule in judged
                                   if rule.identity in in_graph], folders, domains)
        found = []
        for rule in judged:
            finding = findings.get(rule.identity)
            if finding is not None:
                found.append(self._rule(mailbox, rule, finding.why, rule.identity in in_graph,
                                        rule.identity in hygiene,
                                        created_at(times, rule.name, rule.identity)))
        found += [_deleted(rule, findings.get(rule.key)) for rule in history
                  if rule.targets or rule.key in findings]
        return [*found, note]

    async def remove(self, user: DirectoryUser, leftover: Leftover) -> None:
        await self._reader.disable_rule(user.user_principal_name, leftover.key)

    def _rule(self, mailbox: str, rule: ExchangeRule, why: str, in_graph: bool,
              hygiene_s: bool, created: datetime | None) -> Leftover:
        snapshot = {key: rule.row[key] for key in _SNAPSHOT if key in rule.row}
        snapshot["RuleIdentity"] = rule.identity
        if in_graph and hygiene_s and self._mode != "disable":
            return Leftover("inbox rule", rule.identity, f"{rule.name!r}", Disposition.KEEP,
                            f"{why}; Graph lists it too: the mailbox hygiene step handles it",
                            snapshot=snapshot)
        if in_graph and hygiene_s:
            # Mailbox hygiene disables it first (the plan shows it there, once). Found
            # enabled after that step, it was enabled again meanwhile (an access token
            # outlives the revocation by up to an hour): disabled here again, and to a
            # verification check it is the attacker back.
            snapshot[HYGIENE_HANDLES] = True
            why = f"{why}; Graph lists it too, and it was found enabled after mailbox hygiene"
        if in_graph:
            why = f"{why}; {GRAPH_BLIND}"
        act = self._mode == "disable"
        return Leftover(
            "inbox rule", rule.identity,
            f"{rule.name!r}" if in_graph else f"{rule.name!r} (not shown by Graph)",
            Disposition.REMOVE if act else Disposition.REPORT,
            f"{why}; {CLIENT_SIDE}" if act else why, created,
            "audit log" if created else "unknown",
            f"Enable-InboxRule -Identity {rule.identity} -Mailbox {mailbox}", snapshot)

    async def _history(self, mailbox: str, window: CompromiseWindow,
                       rules: Sequence[ExchangeRule],
                       ) -> tuple[list[RuleEvent], list[DeletedRule], Leftover]:
        """The audit log's rule events, the deleted rules, and a note on the audit log (read,
        or why not)."""
        try:
            rows = await self._reader.rule_history(mailbox, window.opens)
        except RemediationError as error:
            return [], [], Leftover(
                "inbox rule history", HISTORY_KEY, "the unified audit log", Disposition.REPORT,
                f"could not be read ({error.reason}): rules created and deleted since "
                f"{window.opens:%Y-%m-%d %H:%M} UTC cannot be named; the case goes on")
        events = [event for row in rows if (event := read_event(row)) is not None]
        deleted = deleted_rules(events, (rule.name for rule in rules),
                                (rule.identity for rule in rules))
        return events, deleted, Leftover(
            "inbox rule history", HISTORY_KEY, "the unified audit log", Disposition.KEEP,
            f"read: {len(events)} inbox rule operation(s) since "
            f"{window.opens:%Y-%m-%d %H:%M} UTC, {len(deleted)} rule(s) deleted since")

    async def _in_graph(self, user: DirectoryUser, needed: bool) -> set[str]:
        """The RuleIdentities of the rules Graph lists (read only when a rule is suspicious)."""
        if not needed:
            return set()
        return {identity for graph_id in await self._reader.graph_rule_ids(user.id)
                if (identity := graph_rule_identity(graph_id)) is not None}

    async def _tenant_domains(self) -> frozenset[str]:
        return self._domains or (await self._directory.tenant_domains()).names


def _deleted(rule: DeletedRule, finding: Finding | None) -> Leftover:
    when = " and ".join(part for part in (
        f"created {_when(rule.created)}" if rule.created else "",
        f"deleted {_when(rule.removed)}" if rule.removed else "no longer in the mailbox")
        if part)
    why = [when, f"by {', '.join(rule.operations)}"]
    if rule.targets:
        why.append(f"it forwarded mail to {', '.join(rule.targets)}: they may have received "
                   "copies")
    if finding is not None:  # what else made it suspicious (its forwarding is said above)
        why += [reason for reason in finding.why.split("; ")
                if not reason.startswith(FORWARDING_REASONS)]
    return Leftover("deleted inbox rule", rule.key, f"{rule.name!r}", Disposition.REPORT,
                    "; ".join(why), rule.created, "audit log", "", {
                        "targets": list(rule.targets), "operations": list(rule.operations),
                        "audit_records": list(rule.record_ids),
                        "created": rule.created.isoformat() if rule.created else None,
                        "deleted": rule.removed.isoformat() if rule.removed else None})


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "at an unknown time"
