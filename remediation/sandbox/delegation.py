"""Who besides its owner may use a mailbox, as Exchange Online answers it.

Three reads, each through InvokeCommand (as public callers of the real endpoint read them):

- ``Get-MailboxPermission -Identity x``: one row per security principal and right, ``User``
  (a user's UPN, a group's name, ``NT AUTHORITY\\SELF``), ``AccessRights`` (here a list, or a
  ``", "``-joined string as the SELF row has it), ``IsInherited``, ``Deny``. Every mailbox
  carries the rows the cmdlet's reference describes (office-docs-powershell
  ``Get-MailboxPermission.md``, DESCRIPTION): FullAccess and ReadPermission for
  ``NT AUTHORITY\\SELF``, inherited FullAccess denied to the administrators' groups and
  allowed to Exchange Servers. FullAccess "open[s] the mailbox, access[es] its contents, but
  can't send mail".
- ``Get-RecipientPermission -Identity x``: rows ``Trustee``, ``AccessControlType``,
  ``AccessRights`` (``SendAs``), ``IsInherited``; every mailbox lists SendAs for
  ``NT AUTHORITY\\SELF``. Without ``Identity`` it answers every recipient's rows (its
  reference: a null Identity "returns *all* objects").
- ``Get-Mailbox``'s ``GrantSendOnBehalfTo``: the delegates as GUIDs; their SMTP addresses and
  display names only in ``GrantSendOnBehalfToWithDisplayNames`` when
  ``IncludeGrantSendOnBehalfToWithDisplayNames`` is sent (documented so for
  Get-DistributionGroup and Get-UnifiedGroup; Get-Mailbox's reference leaves the switch
  undescribed: the sandbox assumes the same, *unconfirmed*; the shape of each entry, an
  object with ``DisplayName`` and ``PrimarySmtpAddress``, is what public callers read).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from remediation.sandbox.state import SandboxTenant, SandboxUser

FULL_ACCESS, SEND_AS, SEND_ON_BEHALF = "FullAccess", "SendAs", "SendOnBehalf"
SELF = "NT AUTHORITY\\SELF"
# The forest prefix Exchange Online shows on its own principals.
_FOREST = "NAMPR01A001"


@dataclass(frozen=True)
class MailboxGrant:
    """A right on a mailbox: ``trustee`` is a user's object id, or a group's name (groups
    are shown by name)."""

    mailbox_id: str
    trustee: str
    right: str


class MailboxGrants:
    """Every FullAccess, SendAs and SendOnBehalf grant of the tenant."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._grants: list[MailboxGrant] = []

    def grant(self, mailbox: SandboxUser, trustee: SandboxUser | str, right: str) -> None:
        if right not in (FULL_ACCESS, SEND_AS, SEND_ON_BEHALF):
            raise ValueError(f"no such right {right!r}")
        key = trustee if isinstance(trustee, str) else trustee.id
        with self._lock:
            self._grants.append(MailboxGrant(mailbox.id, key, right))

    def of(self, mailbox: SandboxUser, right: str) -> list[str]:
        with self._lock:
            return [g.trustee for g in self._grants
                    if g.mailbox_id == mailbox.id and g.right == right]


def mailbox_name(user: SandboxUser) -> str:
    """Exchange's Name of the mailbox: the account's object id unless seeded otherwise (the
    real records' ObjectId: blueteam0ps/det-eng-samples ``t1098.002_*``)."""
    return user.mailbox_name or user.id


def grant_recorded(tenant: SandboxTenant, mailbox: SandboxUser, trustee: SandboxUser,
                   right: str, *, actor: str, at: datetime | None = None,
                   by_id: bool = False) -> dict[str, Any]:
    """Grant ``right`` as ``actor`` running the cmdlet would, and keep the unified audit log's
    record of it (``unified_audit_log``'s module note): FullAccess by Add-MailboxPermission,
    SendAs by Add-RecipientPermission, SendOnBehalf by Set-Mailbox -GrantSendOnBehalfTo.
    ``by_id``: the caller named both accounts by object id (as the admin center does), not
    by address. Returns the log's row."""
    from remediation.sandbox.unified_audit_log import HOSTED  # it imports state: not above

    tenant.mailbox_grants.grant(mailbox, trustee, right)
    who = trustee.id if by_id else trustee.user_principal_name
    whose = mailbox.id if by_id else mailbox.user_principal_name
    parameters: list[tuple[str, str]]
    if right == FULL_ACCESS:
        operation = "Add-MailboxPermission"
        parameters = [("Identity", whose), ("AccessRights", FULL_ACCESS), ("User", who),
                      ("InheritanceType", "All")]
    elif right == SEND_AS:
        operation = "Add-RecipientPermission"
        parameters = [("Identity", whose), ("Trustee", who), ("AccessRights", SEND_AS)]
    else:
        operation = "Set-Mailbox"
        parameters = [("Identity", f"{HOSTED}/{mailbox_name(mailbox)}"),
                      ("GrantSendOnBehalfTo", who)]
    return tenant.unified_audit_log.admin_cmdlet(mailbox_name(mailbox), operation, parameters,
                                                 actor=actor, at=at)


def permission_rows(tenant: SandboxTenant, mailbox: SandboxUser) -> list[dict[str, Any]]:
    """Get-MailboxPermission's rows for ``mailbox``: the defaults, then each FullAccess
    grant."""
    name = mailbox.address.split("@")[0]
    rows = [
        _permission(name, SELF, "FullAccess, ReadPermission"),
        _permission(name, f"{_FOREST}\\Administrator", [FULL_ACCESS], inherited=True,
                    deny=True),
        _permission(name, f"{_FOREST}\\Organization Management", [FULL_ACCESS],
                    inherited=True, deny=True),
        _permission(name, f"{_FOREST}\\Exchange Servers", [FULL_ACCESS, "ReadPermission"],
                    inherited=True),
        _permission(name, "NT AUTHORITY\\SYSTEM", [FULL_ACCESS], inherited=True),
    ]
    rows += [_permission(name, _principal(tenant, trustee), [FULL_ACCESS])
             for trustee in tenant.mailbox_grants.of(mailbox, FULL_ACCESS)]
    return rows


def recipient_rows(tenant: SandboxTenant, mailbox: SandboxUser) -> list[dict[str, Any]]:
    """Get-RecipientPermission's rows for ``mailbox``: SELF, then each SendAs grant."""
    name = mailbox.address.split("@")[0]
    trustees = [SELF, *(_principal(tenant, trustee)
                        for trustee in tenant.mailbox_grants.of(mailbox, SEND_AS))]
    return [{"Identity": name, "Trustee": trustee, "AccessControlType": "Allow",
             "AccessRights": [SEND_AS], "IsInherited": False, "InheritanceType": "None"}
            for trustee in trustees]


def send_on_behalf(tenant: SandboxTenant, mailbox: SandboxUser,
                   with_names: bool) -> dict[str, Any]:
    """Get-Mailbox's GrantSendOnBehalfTo (GUIDs) and GrantSendOnBehalfToWithDisplayNames
    (filled only when ``with_names``)."""
    delegates = [tenant.user(trustee) for trustee in
                 tenant.mailbox_grants.of(mailbox, SEND_ON_BEHALF)]
    return {
        "GrantSendOnBehalfTo": [user.exchange_guid for user in delegates],
        "GrantSendOnBehalfToWithDisplayNames": [
            {"DisplayName": user.display_name, "PrimarySmtpAddress": user.address}
            for user in delegates] if with_names else [],
    }


def _principal(tenant: SandboxTenant, trustee: str) -> str:
    """How Exchange names a trustee: a user by its UPN, a group by its name."""
    try:
        return tenant.user(trustee).user_principal_name
    except KeyError:
        return trustee


def _permission(identity: str, user: str, rights: list[str] | str, *, inherited: bool = False,
                deny: bool = False) -> dict[str, Any]:
    return {"Identity": identity, "User": user, "AccessRights": rights,
            "IsInherited": inherited, "Deny": deny, "InheritanceType": "All"}
