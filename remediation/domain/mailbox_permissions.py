"""Who else can use a mailbox, and which of them the attacker added (issue 15, point 5).

Every FullAccess, SendAs and SendOnBehalf holder (``delegates.delegates_from``) is recorded in
the case, one leftover per holder and right (key ``<right>:<holder>``: a new right for an old
holder is a new key). Nothing here is ever removed by the robot: a holder added inside the
compromise window is *reported* as the attacker's, a person decides; any other is *kept*.

When a holder was added comes from the unified audit log (Search-UnifiedAuditLog), the only
place Exchange keeps it: Get-MailboxPermission and Get-RecipientPermission rows carry no
date. The records (real ones: blueteam0ps/det-eng-samples ``dataset/t1098.002_Mail Account
Delegation full access permissions.json``, ``t1098.002_Mail account delegation-SendAs
permission.csv``, ``t1098.002_user-reset_mailbox_full_access.json``; Set-Mailbox:
``t1114_Set-Mailbox-ForwardSMTPAddress.csv``; Hawk's ``Get-HawkTenantAdminMailboxPermission
Change`` reads the same fields) carry in AuditData:

- ``ObjectId``: the mailbox acted on, by its Name (an Entra object id, or an older name such
  as ``stinger_1ea0eb0f93``); ``UserId``: who ran the cmdlet; ``CreationTime`` (UTC);
- ``Parameters`` as the caller typed them: ``Add-MailboxPermission`` ``Identity`` (an address
  or an object id), ``User``, ``AccessRights`` (``FullAccess``), ``InheritanceType``;
  ``Add-RecipientPermission`` ``Identity``, ``Trustee``, ``AccessRights`` (``SendAs``);
  ``Set-Mailbox`` ``Identity`` (``<forest>/Microsoft Exchange Hosted Organizations/<org>/
  <Name>``) and, for a send-on-behalf delegate, ``GrantSendOnBehalfTo``: how its value is
  kept is seen in no public record (*unconfirmed*): a delegate as typed, a list, or the
  ``@{Add=...; Remove=...}`` form Set-Mailbox's reference documents are all read.

A record names the holder as it was typed: an address, an object id, sometimes a name. The
caller resolves what it can (``Directory.find_user``) and passes each typed value with the
account names it stands for. A holder no record names is kept: "no record of it being added
since the window opened" (or earlier than the log keeps: 180 days on Audit Standard,
Microsoft Purview ``audit-log-retention-policies``).
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from remediation.domain.delegates import FULL_ACCESS, SEND_AS, SEND_ON_BEHALF, Delegate
from remediation.domain.leftovers import CompromiseWindow, Disposition, Leftover
from remediation.domain.rule_history import audit_data, audit_time, pairs, succeeded

PERMISSION_OPERATIONS = ("Add-MailboxPermission", "Add-RecipientPermission", "Set-Mailbox")
KIND = "mailbox permission"
NEVER_REMOVED = ("reported as the attacker's, never removed automatically (a person decides; "
                 "to remove it: {command})")
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
                   re.IGNORECASE)


@dataclass(frozen=True)
class PermissionGrant:
    """One record of a right given on a mailbox. ``mailbox``: the names the record gives the
    mailbox (casefolded); ``holders``: the accounts given ``rights``, as typed."""

    record_id: str
    operation: str
    at: datetime | None
    actor: str
    mailbox: frozenset[str]
    holders: tuple[str, ...]
    rights: tuple[str, ...]

    def about(self, names: Iterable[str]) -> bool:
        """Whether the record acted on the mailbox of these ``names``."""
        return bool(self.mailbox & {name.casefold() for name in names})


def read_grant(record: Mapping[str, object]) -> PermissionGrant | None:
    """The grant a Search-UnifiedAuditLog row records; None for any other row (another
    operation, a Set-Mailbox that named no send-on-behalf delegate, a refused cmdlet)."""
    audit = audit_data(record)
    if audit is None or not succeeded(audit):
        return None
    operation = str(audit.get("Operation") or record.get("Operations") or "")
    parameters = pairs(audit.get("Parameters"))
    rights = _rights(parameters.get("AccessRights"))
    if operation.lower() == "add-mailboxpermission" and FULL_ACCESS.lower() in rights:
        holders, granted = [str(parameters.get("User") or "")], (FULL_ACCESS,)
    elif operation.lower() == "add-recipientpermission" and (
            not rights or SEND_AS.lower() in rights):
        holders, granted = [str(parameters.get("Trustee") or "")], (SEND_AS,)
    elif operation.lower() == "set-mailbox" and "GrantSendOnBehalfTo" in parameters:
        holders, granted = added_delegates(parameters["GrantSendOnBehalfTo"]), (SEND_ON_BEHALF,)
    else:
        return None
    holders = [holder.strip() for holder in holders if holder.strip()]
    if not holders:
        return None
    mailbox = {_last_part(audit.get("ObjectId")), _last_part(parameters.get("Identity"))}
    return PermissionGrant(
        str(audit.get("Id") or record.get("Identity") or ""), operation,
        audit_time(audit.get("CreationTime")), str(audit.get("UserId") or "someone"),
        frozenset(name for name in mailbox if name), tuple(holders), granted)


def added_delegates(value: object) -> list[str]:
    """The delegates a GrantSendOnBehalfTo value adds: ``x``, ``x,y``, a list, or
    ``@{Add="x","y"; Remove="z"}`` (the removed ones are left out)."""
    items = value if isinstance(value, list) else [value]
    found: list[str] = []
    for item in items:
        text = str(item or "").strip()
        if text.startswith("@{") and text.endswith("}"):
            text = text[2:-1]
        for part in re.split(r";", text):
            key, _, rest = part.partition("=")
            if rest and key.strip().lower() == "remove":
                continue
            names = rest if rest and key.strip().lower() == "add" else part
            found += [name.strip().strip("'\"").strip() for name in names.split(",")]
    return [name for name in found if name]


def looks_resolvable(value: str) -> bool:
    """Whether a typed holder is worth looking up in the directory (an object id or an
    address); a display name is not looked up."""
    return bool(_GUID.match(value.strip())) or "@" in value


def holder_leftovers(mailbox: str, delegates: Iterable[Delegate],
                     grants: Iterable[PermissionGrant], names_of: Mapping[str, Iterable[str]],
                     window: CompromiseWindow, unreadable: str | None = None,
                     ) -> list[Leftover]:
    """One leftover per holder and right, in the delegates' order. ``names_of``: a typed
    holder (casefolded) -> the account names it stands for (itself when unknown);
    ``unreadable``: why the audit log could not be read (every holder is then kept)."""
    grants = list(grants)
    found = []
    for delegate in delegates:
        for right in delegate.rights:
            added = None if unreadable else _latest(delegate, right, grants, names_of, window)
            found.append(_leftover(mailbox, delegate, right, added, window, unreadable))
    return found


def _leftover(mailbox: str, delegate: Delegate, right: str, added: PermissionGrant | None,
              window: CompromiseWindow, unreadable: str | None) -> Leftover:
    key = f"{right}:{delegate.name.casefold()}"
    name = f"{delegate.name} ({right})"
    snapshot: dict[str, object] = {"holder": delegate.name, "right": right,
                                   "rights": list(delegate.rights)}
    opened = f"{window.opens:%Y-%m-%d %H:%M} UTC"
    if unreadable is not None:
        return Leftover(KIND, key, name, Disposition.KEEP,
                        f"kept: the unified audit log could not be read ({unreadable}), so when "
                        "it was added is unknown", snapshot=snapshot)
    if added is None:
        return Leftover(KIND, key, name, Disposition.KEEP,
                        f"no record of it being added since the window opened ({opened})",
                        snapshot=snapshot)
    when = f"{added.at:%Y-%m-%d %H:%M} UTC" if added.at else "at an unknown time"
    snapshot |= {"added_by": added.actor, "operation": added.operation,
                 "audit_record": added.record_id}
    why = (f"given {when} by {added.actor} ({added.operation}), inside the compromise "
           "window: " + NEVER_REMOVED.format(command=removal(mailbox, delegate.name, right)))
    return Leftover(KIND, key, name, Disposition.REPORT, why, added.at, "audit log",
                    snapshot=snapshot)


def removal(mailbox: str, holder: str, right: str) -> str:
    """The cmdlet a person runs to take ``right`` away (office-docs-powershell
    ``Remove-MailboxPermission.md``, ``Remove-RecipientPermission.md``, ``Set-Mailbox.md``
    GrantSendOnBehalfTo's ``@{Remove=...}``)."""
    if right == FULL_ACCESS:
        return f"Remove-MailboxPermission -Identity {mailbox} -User {holder} -AccessRights " \
               "FullAccess"
    if right == SEND_AS:
        return f"Remove-RecipientPermission -Identity {mailbox} -Trustee {holder} " \
               "-AccessRights SendAs"
    return f'Set-Mailbox -Identity {mailbox} -GrantSendOnBehalfTo @{{Remove="{holder}"}}'


def _latest(delegate: Delegate, right: str, grants: list[PermissionGrant],
            names_of: Mapping[str, Iterable[str]],
            window: CompromiseWindow) -> PermissionGrant | None:
    """The latest record inside the window giving ``right`` to ``delegate``."""
    wanted = delegate.name.casefold()
    matching = [grant for grant in grants if right in grant.rights
                and window.contains(grant.at) is not False
                and any(wanted in {name.casefold() for name in names_of.get(
                    holder.casefold(), (holder,))} | {holder.casefold()}
                        for holder in grant.holders)]
    return max(matching, key=lambda grant: grant.at or window.opens, default=None)


def _rights(value: object) -> set[str]:
    items = value if isinstance(value, list) else str(value or "").split(",")
    return {str(item).strip().lower() for item in items if str(item).strip()}


def _last_part(value: object) -> str:
    """``…/Microsoft Exchange Hosted Organizations/org/Name`` or ``owner\\x`` → the last
    name, casefolded."""
    return re.split(r"[\\/]", str(value or "").strip())[-1].casefold()

