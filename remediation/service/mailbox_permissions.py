"""Who else can send as this mailbox: a ``LeftoverKind`` (step ``mailbox_permissions``) that
records every FullAccess, SendAs and SendOnBehalf holder in the case and never removes one.

- Survey: the holders, read once through ``MailboxDelegation.mailbox_access`` (Get-Mailbox,
  Get-MailboxPermission, Get-RecipientPermission: the reads and the row rules the shared
  mailbox escalation uses). Only when somebody holds a right is the unified audit log
  searched, for this mailbox's Add-MailboxPermission, Add-RecipientPermission and Set-Mailbox
  records since the window opened (``ObjectIds``: the mailbox acted on; ``UserIds`` would
  name who acted, and the attacker acts through whatever account they hold). Holders a record
  names by object id or address are looked up in the directory. A holder added inside the
  window is reported, with when and by whom; any other is kept. An audit log that cannot be
  read keeps every holder, says why in each, and the case goes on.
- Removal: never. ``remove`` is never called (nothing is to be removed) and refuses if it is:
  taking a right away is a person's decision (a delegate's access may be legitimate, and
  only a person can ask the owner).
- Verification (``Cleanup.returned``): a holder or a right that was not there when the step
  ran is the attacker still active.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from remediation.domain.delegates import MailboxAccess
from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import PermanentError, RemediationError
from remediation.domain.leftovers import CompromiseWindow, Leftover
from remediation.domain.mailbox_permissions import (
    PERMISSION_OPERATIONS,
    PermissionGrant,
    holder_leftovers,
    looks_resolvable,
    read_grant,
)
from remediation.service.leftovers import Wording
from remediation.service.ports import Directory

STEP = "mailbox_permissions"
MAX_LOOKUPS = 10  # accounts a survey looks up in the directory, at most


class MailboxAccessReader(Protocol):
    async def mailbox_access(self, address: str) -> MailboxAccess:
        """The mailbox's names and delegates (``adapters/mailbox_delegation.py``)."""
        ...


class AuditLogSearch(Protocol):
    async def search(self, operations: Sequence[str], since: datetime, *,
                     user_ids: Sequence[str] = (),
                     object_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Search-UnifiedAuditLog rows (``adapters/exchange_rules.py``); AuditLogOff when the
        tenant records no audit log."""
        ...


class MailboxPermissions:
    step = STEP
    label = "mailbox permissions"
    wording = Wording(kept="kept", none_kept="no other holder to keep")

    def __init__(self, mailboxes: MailboxAccessReader, audit: AuditLogSearch,
                 directory: Directory) -> None:
        self._mailboxes = mailboxes
        self._audit = audit
        self._directory = directory

    async def survey(self, user: DirectoryUser, window: CompromiseWindow) -> list[Leftover]:
        mailbox = user.sender_address
        access = await self._mailboxes.mailbox_access(mailbox)
        if not access.delegates:
            return []
        names = (*access.names, user.id, *user.aliases)
        try:
            rows = await self._audit.search(PERMISSION_OPERATIONS, window.opens,
                                            object_ids=_unique(access.names or (user.id,)))
        except RemediationError as error:
            return holder_leftovers(mailbox, access.delegates, (), {}, window, error.reason)
        grants = [grant for row in rows if (grant := read_grant(row)) is not None
                  and grant.about(names)]
        return holder_leftovers(mailbox, access.delegates, grants,
                                await self._names_of(grants, access), window)

    async def remove(self, user: DirectoryUser, leftover: Leftover) -> None:
        raise PermanentError(
            f"{leftover.kind} {leftover.name} is not removed by the robot: taking a right "
            f"away from a mailbox is a person's decision ({leftover.why})")

    async def _names_of(self, grants: Iterable[PermissionGrant],
                        access: MailboxAccess) -> dict[str, set[str]]:
        """Each typed holder no delegate is named by -> the names of the account the
        directory finds for it (an object id or an address; at most MAX_LOOKUPS)."""
        known = {delegate.name.casefold() for delegate in access.delegates}
        wanted = [holder for holder in dict.fromkeys(
            holder.strip() for grant in grants for holder in grant.holders)
            if holder.casefold() not in known and looks_resolvable(holder)]
        names: dict[str, set[str]] = {}
        for holder in wanted[:MAX_LOOKUPS]:
            try:
                account = await self._directory.find_user(holder)
            except PermanentError:  # nobody (any more), or ambiguous: it names no holder
                continue
            names[holder.casefold()] = {holder.casefold(), account.id.casefold(),
                                        *account.aliases}
        return names


def _unique(names: Iterable[str]) -> list[str]:
    return list({name.casefold(): name for name in names if name}.values())
