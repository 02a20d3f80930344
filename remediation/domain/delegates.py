"""Who besides its owner can use a mailbox (FullAccess, SendAs, SendOnBehalf), read from
Exchange's answers; and what kind of mailbox it is.

Sources (office-docs-powershell ``exchange/exchange-ps/ExchangePowerShell/``, and public
callers of the real endpoint, CIPP and M365Permissions):

- ``Get-MailboxPermission.md``: rows ``User`` ("the security principal (user, security group,
  Exchange management role group, etc.)"), ``AccessRights`` (a list, or one string such as
  ``"FullAccess, ReadPermission"``), ``IsInherited``, ``Deny``. FullAccess opens the mailbox
  and its contents "but can't send mail" alone; it is named all the same, as whoever holds it
  reads the mail and can plant rules. ``NT AUTHORITY\\SELF`` is the mailbox itself;
  inherited rows come from the database and the directory (administrators, Exchange
  servers); denied rows grant nothing. An unresolved SID (``S-1-5-...``) is a deleted account.
- ``Get-RecipientPermission.md``: rows ``Trustee``, ``AccessRights`` (``SendAs``),
  ``AccessControlType`` (``Allow`` / ``Deny``), ``IsInherited``.
- ``Get-Mailbox.md``: ``RecipientTypeDetails`` (``UserMailbox``, ``SharedMailbox``,
  ``RoomMailbox``, ``EquipmentMailbox``, ...) and the send-on-behalf delegates: GUIDs in
  ``GrantSendOnBehalfTo``, their addresses in ``GrantSendOnBehalfToWithDisplayNames`` when
  ``IncludeGrantSendOnBehalfToWithDisplayNames`` is sent (so documented for
  Get-DistributionGroup and Get-UnifiedGroup; *unconfirmed* for Get-Mailbox, whose reference
  leaves the switch undescribed). Each entry may be an object with ``PrimarySmtpAddress``
  (what public callers read) or a string: both are read; a GUID is kept as a GUID.

A group holding a right is named by the name Exchange gives it: its members hold the right.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FULL_ACCESS, SEND_AS, SEND_ON_BEHALF = "FullAccess", "SendAs", "SendOnBehalf"
RIGHTS = (FULL_ACCESS, SEND_AS, SEND_ON_BEHALF)
# Mailboxes nobody signs in to (their Entra account is disabled when Exchange creates them):
# mail sent as one was sent by a delegate, an application or a connector.
UNOWNED_KINDS = frozenset({"sharedmailbox", "roommailbox", "equipmentmailbox"})
SELF = "nt authority\\self"
_SID = re.compile(r"^S-1-5-", re.IGNORECASE)
_ADDRESS = re.compile(r"[^\s<>\"'\[\]]+@[^\s<>\"'\[\]]+\.[^\s<>\"'\[\]]+")


@dataclass(frozen=True)
class Delegate:
    """A principal holding ``rights`` (in RIGHTS order) on a mailbox, named as Exchange names
    it: a user by its UPN or address, a group by its name, a send-on-behalf delegate Exchange
    gave no address for by its GUID."""

    name: str
    rights: tuple[str, ...]

    @property
    def is_address(self) -> bool:
        return "@" in self.name

    def describe(self) -> str:
        """``ben@contoso.com (SendAs, FullAccess)``; a name that is no address says so."""
        rights = ", ".join(self.rights)
        if self.is_address:
            return f"{self.name} ({rights})"
        return (f"{self.name} ({rights}; not an address: a group, whose members hold the "
                "right, or a principal Exchange gave no address for)")


@dataclass(frozen=True)
class MailboxFacts:
    """What Exchange says of an account's mailbox: its ``kind`` (RecipientTypeDetails; None:
    no mailbox) and, for a mailbox nobody signs in to, who can use it. ``unreadable``: why
    Exchange could not say (the account is then treated as having an ordinary mailbox)."""

    kind: str | None = None
    delegates: tuple[Delegate, ...] = ()
    unreadable: str | None = None

    @property
    def unowned(self) -> bool:
        """A shared, room or equipment mailbox."""
        return (self.kind or "").lower() in UNOWNED_KINDS


@dataclass(frozen=True)
class MailboxAccess:
    """One read of who can use a mailbox: its ``names`` as Exchange gives them (Name,
    ExternalDirectoryObjectId, UserPrincipalName, PrimarySmtpAddress: the unified audit log's
    ObjectId names it by its Name) and its ``delegates``."""

    names: tuple[str, ...]
    delegates: tuple[Delegate, ...]


MAILBOX_NAME_FIELDS = ("Name", "ExternalDirectoryObjectId", "UserPrincipalName",
                       "PrimarySmtpAddress")


def mailbox_names(row: Mapping[str, Any]) -> tuple[str, ...]:
    """A Get-Mailbox row's names of the mailbox, in MAILBOX_NAME_FIELDS order, each once
    (compared without letter case)."""
    found: dict[str, str] = {}
    for key in MAILBOX_NAME_FIELDS:
        value = str(row.get(key) or "").strip()
        if value:
            found.setdefault(value.casefold(), value)
    return tuple(found.values())


def delegates_from(mailbox_rows: Iterable[Mapping[str, Any]],
                   recipient_rows: Iterable[Mapping[str, Any]],
                   send_on_behalf: Iterable[object]) -> list[Delegate]:
    """Every principal with FullAccess (Get-MailboxPermission), SendAs
    (Get-RecipientPermission) or SendOnBehalf (Get-Mailbox), once each with all its rights,
    in the order first seen. Left out: ``NT AUTHORITY\\SELF``, inherited rows, denied rows,
    rows without the right, unresolved SIDs."""
    found: dict[str, tuple[str, set[str]]] = {}

    def add(name: str, right: str) -> None:
        name = name.strip()
        if not name or name.lower() == SELF or _SID.match(name):
            return
        found.setdefault(name.lower(), (name, set()))[1].add(right)

    for row in mailbox_rows:
        granted = row.get("IsInherited") is not True and row.get("Deny") is not True
        if granted and FULL_ACCESS.lower() in _rights(row.get("AccessRights")):
            add(str(row.get("User") or ""), FULL_ACCESS)
    for row in recipient_rows:
        allowed = str(row.get("AccessControlType") or "Allow").lower() != "deny"
        if allowed and row.get("IsInherited") is not True and SEND_AS.lower() in _rights(
                row.get("AccessRights")):
            add(str(row.get("Trustee") or ""), SEND_AS)
    for entry in send_on_behalf:
        add(_send_on_behalf_name(entry), SEND_ON_BEHALF)
    return [Delegate(name, tuple(right for right in RIGHTS if right in rights))
            for name, rights in found.values()]


def _rights(value: object) -> set[str]:
    """``AccessRights`` as Exchange writes it (a list, or ``"A, B"``), lower case."""
    items = value if isinstance(value, list) else str(value or "").split(",")
    return {str(item).strip().lower() for item in items if str(item).strip()}


def _send_on_behalf_name(entry: object) -> str:
    """A GrantSendOnBehalfToWithDisplayNames entry (an object with PrimarySmtpAddress, or a
    string that may hold an address), or a GrantSendOnBehalfTo value (a GUID)."""
    if isinstance(entry, Mapping):
        for key in ("PrimarySmtpAddress", "EmailAddress", "Identity", "DisplayName"):
            if entry.get(key):
                return str(entry[key])
        return ""
    text = str(entry or "")
    address = _ADDRESS.search(text)
    return address.group(0) if address else text
