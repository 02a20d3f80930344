"""The MailboxDelegation port: what kind of mailbox an account has and who else can use it,
through Exchange admin REST (InvokeCommand), each cmdlet with only the parameters its
reference lists (office-docs-powershell ``exchange/exchange-ps/ExchangePowerShell/``):

- ``Get-Mailbox {"Identity": x}``: ``RecipientTypeDetails``, the mailbox's ``Name`` (what the
  unified audit log's records name it by) and other names; with
  ``IncludeGrantSendOnBehalfToWithDisplayNames`` (a JSON boolean, as switches are sent),
  the send-on-behalf delegates' addresses (``GrantSendOnBehalfToWithDisplayNames``; without
  it they are GUIDs in ``GrantSendOnBehalfTo``, read as a fallback);
- ``Get-MailboxPermission {"Identity": x, "ResultSize": "Unlimited"}``: FullAccess rows;
- ``Get-RecipientPermission {"Identity": x, "ResultSize": "Unlimited"}``: SendAs rows.
  ``Identity`` is never empty: a null Identity reads every recipient (its reference).

Which rows count: ``domain.delegates.delegates_from``. Permissions: ``Exchange.ManageAsApp``
and the Exchange Administrator role the app already holds ("provide the required permissions
for any task in Exchange Online PowerShell. For example: Recipient management",
office-docs-powershell ``exchange/docs-conceptual/app-only-auth-powershell-v2.md``): nothing
new (remediation/permissions.py). Errors arrive translated from ExchangeAdminClient.
"""

from remediation.adapters.exchange_client import ExchangeAdminClient, ExchangeCmdletError
from remediation.domain.delegates import (
    Delegate,
    MailboxAccess,
    delegates_from,
    mailbox_names,
)
from remediation.domain.errors import PermanentError


class ExchangeMailboxDelegation:
    def __init__(self, client: ExchangeAdminClient) -> None:
        self._exchange = client

    async def recipient_type(self, address: str) -> str | None:
        """RecipientTypeDetails of the mailbox; None when Exchange has no mailbox by that
        address (an account without an Exchange licence)."""
        _require(address)
        try:
            items = await self._exchange.invoke("Get-Mailbox", {"Identity": address})
        except ExchangeCmdletError as failure:
            if failure.error.not_found_about(address):
                return None
            raise
        kind = items[0].get("RecipientTypeDetails") if items else None
        return str(kind) if kind else None

    async def mailbox_delegates(self, address: str) -> list[Delegate]:
        """Everyone holding FullAccess, SendAs or SendOnBehalf on the mailbox (three reads).
        Raises PermanentError when there is no such mailbox."""
        return list((await self.mailbox_access(address)).delegates)

    async def mailbox_access(self, address: str) -> MailboxAccess:
        """The mailbox's names (``delegates.mailbox_names``, from the same Get-Mailbox row)
        and its delegates: the same three reads as ``mailbox_delegates``."""
        _require(address)
        mailboxes = await self._exchange.invoke("Get-Mailbox", {
            "Identity": address, "IncludeGrantSendOnBehalfToWithDisplayNames": True})
        if not mailboxes:
            raise PermanentError(f"Exchange: no mailbox {address}")
        mailbox = mailboxes[0]
        named = mailbox.get("GrantSendOnBehalfToWithDisplayNames")
        behalf = named if isinstance(named, list) and named else (
            mailbox.get("GrantSendOnBehalfTo") or [])
        permissions = await self._exchange.invoke(
            "Get-MailboxPermission", {"Identity": address, "ResultSize": "Unlimited"})
        recipients = await self._exchange.invoke(
            "Get-RecipientPermission", {"Identity": address, "ResultSize": "Unlimited"})
        return MailboxAccess(mailbox_names(mailbox), tuple(delegates_from(
            permissions, recipients, behalf if isinstance(behalf, list) else [behalf])))


def _require(address: str) -> None:
    """Never an empty Identity: Exchange reads it as "all objects"."""
    if not address or not address.strip():
        raise PermanentError("no mailbox address to read (an empty Identity means every "
                             "mailbox)")
