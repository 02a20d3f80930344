"""Inbox rules through Exchange admin REST, and their history in the unified audit log.

Cmdlets (InvokeCommand; each sent only parameters its office-docs-powershell reference lists):

- ``Get-InboxRule {"Mailbox": upn, "IncludeHidden": true}``: every rule, the hidden ones too;
- ``Disable-InboxRule {"Identity": <RuleIdentity>, "Mailbox": upn, "Confirm": false}``: the
  reference takes the RuleIdentity alone as an Identity; with it the Mailbox parameter names
  the mailbox once (an Identity ``<owner>\\<RuleIdentity>`` names it again, and a docs issue
  reports "You can't use both the Identity and Mailbox parameters to specify a mailbox",
  office-docs-powershell#4087);
- ``Get-MailboxFolderStatistics {"Identity": upn, "FolderScope": <type>}``: the well-known
  folder of each type (Inbox, Archive, ConversationHistory, DeletedItems, JunkEmail,
  RssSubscriptions), its
  ``FolderPath`` in the mailbox's language: rules name folders by path, so a path is matched to
  a folder *type*, never to an English name;
- ``Get-AdminAuditLogConfig``: ``UnifiedAuditLogIngestionEnabled`` (read it in Exchange Online,
  as the reference says; CIPP's BEC run checks it before searching);
- ``Search-UnifiedAuditLog {"StartDate", "EndDate", "Operations": [...], "UserIds": [upn],
  "SessionCommand": "ReturnLargeSet", "SessionId", "ResultSize": 5000}``, called again with the
  same SessionId until a page comes back short (the reference: "Use SessionId and
  SessionCommand to repeatedly run the cmdlet until you get zero returns"; at most 5,000 a
  call, 50,000 a session). ``UserIds`` "filters the log entries by the account
  (UserPrincipalName) of the user who performed the action": the rules' history, which the
  mailbox's own sessions wrote. ``ObjectIds`` filters by "the target object that was acted
  upon" (the AuditData ObjectId): the mailbox permissions' history, whoever granted them
  (``UnifiedAuditLog``). ``UserIds``, ``ObjectIds`` and ``Operations`` go as JSON arrays: a
  bare string is refused as a String[] (CIPP-API ``Push-BECRun.ps1``).

Why this and not Graph's ``/security/auditLog/queries`` (v1.0, "List records": application
permission ``AuditLogsQuery-Exchange.Read.All``): that needs another permission and answers
asynchronously (a query to create, then poll); the cmdlet runs app-only through the same
InvokeCommand endpoint (invictus-ir/Microsoft-Extractor-Suite#172 calls it with a client
credentials token) with what the app already holds: ``Exchange.ManageAsApp`` and the Exchange
Administrator role, whose Organization Management role group holds the Audit Logs role the
search needs ("You have to be assigned the Audit Logs or View-Only Audit Logs roles ...",
Microsoft Purview ``audit-search``; Organization Management by default, ``audit-log-enable-
disable``).

Graph's rule ids come from ``GraphExchangeMailbox.inbox_rules`` (``MailboxSettings.ReadWrite``).
Errors arrive translated (TransientError / PermanentError) from ExchangeAdminClient.
"""

import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from remediation.adapters.exchange_client import ExchangeAdminClient
from remediation.adapters.mailbox import GraphExchangeMailbox
from remediation.domain.exchange_rules import folder_path
from remediation.domain.hygiene import INBOX, RSS_FEEDS
from remediation.domain.rule_history import RULE_OPERATIONS, AuditLogOff

# Get-MailboxFolderStatistics FolderScope values (its reference lists them) -> Graph's
# well-known names (mailFolder resource type, "Well-known folder names"): inbox and hygiene's
# RARELY_READ_FOLDERS; and RssSubscriptions, which Graph v1.0 has no name for (RSS_FEEDS).
FOLDER_SCOPES = {"Inbox": INBOX, "Archive": "archive",
                 "ConversationHistory": "conversationhistory", "DeletedItems": "deleteditems",
                 "JunkEmail": "junkemail", "RssSubscriptions": RSS_FEEDS}
PAGE = 5000  # Search-UnifiedAuditLog's largest ResultSize
MAX_PAGES = 10  # a session holds at most 50,000 records
# Records reach the log minutes after the fact; a margin past now costs nothing.
END_MARGIN = timedelta(minutes=15)
FOLDERS_TTL = 600.0
CONFIG_TTL = 600.0  # seconds a "the log is recorded" answer is trusted
_FOLDERS_CACHED = 256


class ExchangeRuleReader:
    def __init__(self, exchange: ExchangeAdminClient, mailbox: GraphExchangeMailbox,
                 audit: "UnifiedAuditLog | None" = None) -> None:
        self._exchange = exchange
        self._mailbox = mailbox
        self._audit = audit or UnifiedAuditLog(exchange)
        self._folders: OrderedDict[str, tuple[float, dict[str, str]]] = OrderedDict()

    async def inbox_rules(self, mailbox: str) -> list[dict[str, Any]]:
        return await self._exchange.invoke("Get-InboxRule",
                                           {"Mailbox": mailbox, "IncludeHidden": True})

    async def graph_rule_ids(self, user_id: str) -> list[str]:
        return [str(rule["id"]) for rule in await self._mailbox.inbox_rules(user_id)
                if rule.get("id")]

    async def well_known_folders(self, mailbox: str) -> dict[str, str]:
        """Kept for FOLDERS_TTL per mailbox: a case reads them when it plans, cleans and
        verifies, and a well-known folder keeps its path for the mailbox's life."""
        cached = self._folders.get(mailbox.lower())
        if cached is not None and time.monotonic() - cached[0] < FOLDERS_TTL:
            return dict(cached[1])
        found: dict[str, str] = {}
        for scope, name in FOLDER_SCOPES.items():
            rows = await self._exchange.invoke("Get-MailboxFolderStatistics",
                                               {"Identity": mailbox, "FolderScope": scope})
            # The scope's own folder is the shallowest of its rows (subfolders follow it).
            paths = [path for row in rows if (path := folder_path(row.get("FolderPath")))]
            if paths:
                found[min(paths, key=lambda path: path.count("/"))] = name
        self._folders[mailbox.lower()] = (time.monotonic(), found)
        self._folders.move_to_end(mailbox.lower())
        while len(self._folders) > _FOLDERS_CACHED:
            self._folders.popitem(last=False)
        return dict(found)

    async def disable_rule(self, mailbox: str, rule_identity: str) -> None:
        await self._exchange.invoke("Disable-InboxRule", {
            "Identity": rule_identity, "Mailbox": mailbox, "Confirm": False})

    async def rule_history(self, mailbox: str, since: datetime) -> list[dict[str, Any]]:
        return await self._audit.search(RULE_OPERATIONS, since, user_ids=[mailbox])


class UnifiedAuditLog:
    """Search-UnifiedAuditLog through Exchange admin REST, paged by session (the module's
    note), for any operations: by who acted (``user_ids``) or by the object acted on
    (``object_ids``, "the target object that was acted upon": its AuditData ObjectId, the
    reference). One per process: Get-AdminAuditLogConfig's "yes, recorded" is kept for
    CONFIG_TTL (a search of a tenant that stopped recording fails all the same), a "no" is
    asked again each time."""

    def __init__(self, exchange: ExchangeAdminClient) -> None:
        self._exchange = exchange
        self._recorded_at: float | None = None

    async def search(self, operations: Sequence[str], since: datetime, *,
                     user_ids: Sequence[str] = (),
                     object_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every record of ``operations`` since ``since`` (UTC) matching the filters given,
        each once. AuditLogOff when the tenant records no audit log; the cmdlet's refusals
        as ExchangeAdminClient translates them."""
        await self._require_recording()
        parameters: dict[str, Any] = {
            "StartDate": _stamp(since), "EndDate": _stamp(datetime.now(UTC) + END_MARGIN),
            "Operations": list(operations)}
        if user_ids:
            parameters["UserIds"] = list(user_ids)
        if object_ids:
            parameters["ObjectIds"] = list(object_ids)
        parameters |= {"SessionCommand": "ReturnLargeSet",
                       "SessionId": f"remediation-{secrets.token_hex(8)}", "ResultSize": PAGE}
        rows: dict[str, dict[str, Any]] = {}
        for _ in range(MAX_PAGES):
            page = await self._exchange.invoke("Search-UnifiedAuditLog", parameters)
            for row in page:  # a page may repeat a record: one each
                rows.setdefault(str(row.get("Identity") or len(rows)), row)
            if len(page) < PAGE:
                break
        return list(rows.values())

    async def _require_recording(self) -> None:
        if self._recorded_at is not None and time.monotonic() - self._recorded_at < CONFIG_TTL:
            return
        [config, *_] = await self._exchange.invoke("Get-AdminAuditLogConfig", {}) or [{}]
        if config.get("UnifiedAuditLogIngestionEnabled") is False:
            self._recorded_at = None
            raise AuditLogOff("the tenant records no unified audit log (Get-AdminAuditLogConfig:"
                              " UnifiedAuditLogIngestionEnabled is False)")
        self._recorded_at = time.monotonic()


def _stamp(moment: datetime) -> str:
    """UTC, as the reference writes it: ``"2018-05-06 14:30:00z"``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%Sz")
