"""Inbox rules as Exchange shows them, and the well-known folders as Exchange names them.

- ``Get-InboxRule -Mailbox x -IncludeHidden`` lists every rule Graph's ``messageRules`` lists
  (rendered in Exchange's shape from the same rule, so a change through either side shows on
  both) and, with ``IncludeHidden`` only, the rules Graph never shows: ``SandboxUser.
  exchange_rules``, rows already in Exchange's shape (hidden rules an attacker planted over
  MAPI, the junk e-mail rule, out-of-office rules, a delegate rule).
- Shapes (CIPP's calls of the real endpoint; a real ``Get-InboxRule | Format-List``): ``Identity``
  is ``<owner>\\<RuleIdentity>``; ``RuleIdentity`` a number larger than int64 (a JSON number);
  ``ForwardTo``, ``RedirectTo``, ``ForwardAsAttachmentTo`` lists of ``"Name" [SMTP:x@y]``
  (outside) or ``"Name" [EX:/o=...]`` (a mailbox of the organisation); ``MoveToFolder``
  ``<mailbox>:\\<folder path>`` (the form Set-InboxRule's reference gives for the parameter).
  Rows of the hidden rules may leave keys out: a missing key is false or empty.
- A Graph messageRule id is the rule's ``RuleIdentity`` as eight little-endian bytes, base64:
  every public pair seen has that form (``AQAAA...`` ids; RuleIdentity values whose low 32
  bits are 1). Undocumented, so ids that are not canonical base64 of eight bytes get a number
  of their own (the product must not rely on the pairing beyond what it checks).
- ``Disable-InboxRule`` / ``Enable-InboxRule`` take ``Identity`` as the RuleIdentity, as
  ``<owner>\\<RuleIdentity>`` or as the rule's name (the cmdlets' reference), with ``Mailbox``.
  A delegate rule cannot be disabled (CIPP skips it, as the junk and OOF rules); Exchange's
  words for the refusal are documented nowhere, so the sandbox's text says it is the sandbox's.
- ``Get-MailboxFolderStatistics -Identity x -FolderScope <type>`` lists the folder of that
  type (the well-known folder, whatever its display name) with ``FolderPath`` and
  ``FolderType``; the sandbox models top-level folders only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

from remediation.sandbox.state import (
    FOLDER_WELL_KNOWN_NAMES,
    LOCALISED_FOLDERS,
    NOT_FOUND_EXCEPTION,
    SandboxTenant,
    SandboxUser,
    TenantError,
)

# FolderScope values (Get-MailboxFolderStatistics reference) the sandbox answers, with the
# English folder each names and the FolderType its row carries.
FOLDER_SCOPES = {
    "inbox": ("Inbox", "Inbox"), "archive": ("Archive", "Archive"),
    "conversationhistory": ("Conversation History", "ConversationHistory"),
    "deleteditems": ("Deleted Items", "DeletedItems"), "junkemail": ("Junk Email", "JunkEmail"),
    "sentitems": ("Sent Items", "SentItems"), "rsssubscriptions": ("RSS Feeds", "RssSubscription"),
}
DELEGATE_REFUSAL = ("(sandbox wording; Exchange's text is undocumented) The delegate rule "
                    "'{name}' can't be disabled: change the mailbox's delegates instead.")
_DIGITS = re.compile(r"^\d+$")


def rule_identity(graph_id: str) -> int:
    """The RuleIdentity of a rule Graph lists under ``graph_id``."""
    try:
        raw = base64.b64decode(graph_id, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == 8 and base64.b64encode(raw).decode() == graph_id:
        return int.from_bytes(raw, "little")
    digest = hashlib.sha256(graph_id.encode()).digest()[:8]
    return int.from_bytes(digest, "little") | (1 << 63)


def hidden_rule(owner: SandboxUser, name: str, rule_id: int, **fields: Any) -> dict[str, Any]:
    """A rule Graph never shows, in Get-InboxRule's shape; ``fields`` as Exchange names them
    (``ForwardTo=['"x" [SMTP:x@y]']``, ``MarkAsRead=True``, ...). Keys left out are false or
    empty, as in Exchange's rows."""
    return {"Name": name, "Identity": f"{owner.id}\\{rule_id}", "RuleIdentity": rule_id,
            "Enabled": True, "MailboxOwnerId": owner.id, **fields}


def system_rules(owner: SandboxUser) -> list[dict[str, Any]]:
    """The rules Exchange keeps for itself in many mailboxes: the junk e-mail rule, the two
    out-of-office rules, and (a mailbox with a delegate) the delegate rule."""
    base = int.from_bytes(hashlib.sha256(owner.id.encode()).digest()[:4], "little") << 32
    return [hidden_rule(owner, "Junk E-Mail Rule", base | 1),
            hidden_rule(owner, "Microsoft.Exchange.OOF.KnownSenders.Rule", base | 2),
            hidden_rule(owner, "Microsoft.Exchange.OOF.AllExternalSenders.Rule", base | 3),
            hidden_rule(owner, "Delegate Rule -1", base | 4,
                        ForwardTo=['"Assistant" [EX:/o=ExchangeLabs/ou=Exchange Administrative '
                                   'Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=assistant]'])]


def get_inbox_rule(tenant: SandboxTenant, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    user = tenant.mailbox(_mailbox(parameters))
    hidden = parameters.get("IncludeHidden") is True
    return tenant.with_mailbox(user, lambda: [
        *(_exchange_row(tenant, user, rule) for rule in user.inbox_rules),
        *(dict(row) for row in user.exchange_rules if hidden)])


def set_rule_enabled(tenant: SandboxTenant, parameters: dict[str, Any], enabled: bool) -> None:
    """Disable-InboxRule / Enable-InboxRule."""
    identity = str(parameters.get("Identity") or "")
    if not identity:
        raise TenantError(400, "BadRequest", "Cannot bind argument to parameter 'Identity' "
                          "because it is an empty string or null.",
                          "System.Management.Automation.ParameterBindingValidationException")
    owner, _, rule_part = identity.rpartition("\\")
    user = tenant.mailbox(str(parameters.get("Mailbox") or owner))

    def change() -> None:
        for rule in user.inbox_rules:
            if _names(rule_part, rule_identity(str(rule.get("id"))), rule.get("displayName")):
                rule["isEnabled"] = enabled
                return
        for row in user.exchange_rules:
            if _names(rule_part, row.get("RuleIdentity"), row.get("Name")):
                name = str(row.get("Name"))
                if name.lower().startswith("delegate rule"):
                    raise TenantError(400, "BadRequest", DELEGATE_REFUSAL.format(name=name),
                                      "Microsoft.Exchange.Data.StoreObjects.InvalidRuleException")
                row["Enabled"] = enabled
                return
        raise TenantError(400, "ManagementObjectNotFound",
                          f"The operation couldn't be performed because object '{identity}' "
                          "couldn't be found.", NOT_FOUND_EXCEPTION)

    tenant.with_mailbox(user, change)


def get_mailbox_folder_statistics(tenant: SandboxTenant,
                                  parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """The folder a FolderScope names (all top-level folders without one)."""
    user = tenant.mailbox(str(parameters.get("Identity") or ""))
    scope = str(parameters.get("FolderScope") or "All")
    if scope.lower() != "all" and scope.lower() not in FOLDER_SCOPES:
        raise TenantError(400, "BadRequest", f"Cannot bind parameter 'FolderScope'. Cannot "
                          f"convert value \"{scope}\" to type "
                          "\"Microsoft.Exchange.Data.Directory.SystemConfiguration."
                          "ElcFolderType\".",
                          "System.Management.Automation.ParameterBindingException")

    def rows() -> list[dict[str, Any]]:
        found = []
        for key, (english, folder_type) in FOLDER_SCOPES.items():
            if scope.lower() not in ("all", key):
                continue
            shown = LOCALISED_FOLDERS.get(user.language, {}).get(english, english)
            well_known = FOLDER_WELL_KNOWN_NAMES.get(english)
            if well_known is not None and well_known not in user.well_known:
                continue  # a folder the mailbox lacks
            found.append({"Name": shown, "FolderPath": f"/{shown}", "FolderType": folder_type,
                          "Identity": f"{user.id}\\{shown}"})
        return found

    return tenant.with_mailbox(user, rows)


def _mailbox(parameters: dict[str, Any]) -> str:
    mailbox = parameters.get("Mailbox")
    if not mailbox:  # app-only there is no "own" mailbox to fall back on
        raise TenantError(400, "ManagementObjectNotFound", "The operation couldn't be "
                          "performed because object '' couldn't be found.", NOT_FOUND_EXCEPTION)
    return str(mailbox)


def _names(wanted: str, rule_id: object, name: object) -> bool:
    if _DIGITS.match(wanted):
        return str(rule_id) == wanted
    return isinstance(name, str) and name.lower() == wanted.lower()


def _exchange_row(tenant: SandboxTenant, user: SandboxUser,
                  rule: dict[str, Any]) -> dict[str, Any]:
    """A Graph messageRule as Get-InboxRule shows it."""
    rule_id = rule_identity(str(rule.get("id")))
    actions = rule.get("actions") or {}
    folder = actions.get("moveToFolder")
    folder_id = user.well_known.get(str(folder).lower(), folder) if folder else None
    alias = user.address.split("@", 1)[0]
    return {
        "Name": rule.get("displayName"), "Identity": f"{user.id}\\{rule_id}",
        "RuleIdentity": rule_id, "Enabled": rule.get("isEnabled", True) is True,
        "Priority": rule.get("sequence"), "MailboxOwnerId": user.id,
        "ForwardTo": _recipients(tenant, actions.get("forwardTo")),
        "RedirectTo": _recipients(tenant, actions.get("redirectTo")),
        "ForwardAsAttachmentTo": _recipients(tenant, actions.get("forwardAsAttachmentTo")),
        "MoveToFolder": (f"{alias}:\\{user.folders[folder_id]}"
                         if folder_id in user.folders else None),
        "DeleteMessage": actions.get("delete") is True,
        "SoftDeleteMessage": actions.get("permanentDelete") is True,
        "MarkAsRead": actions.get("markAsRead") is True,
        "StopProcessingRules": actions.get("stopProcessingRules") is True,
        "InError": rule.get("hasError") is True}


def _recipients(tenant: SandboxTenant, value: object) -> list[str] | None:
    if not isinstance(value, list) or not value:
        return None
    shown = []
    for recipient in value:
        email = recipient.get("emailAddress") or {} if isinstance(recipient, dict) else {}
        address, name = str(email.get("address") or ""), str(email.get("name") or "")
        domain = address.rsplit("@", 1)[-1].lower()
        if domain in tenant.domains:
            shown.append(f'"{name or address}" [EX:/o=ExchangeLabs/ou=Exchange Administrative '
                         f'Group (FYDIBOHF23SPDLT)/cn=Recipients/cn={address.split("@")[0]}]')
        else:
            shown.append(f'"{name or address}" [SMTP:{address}]')
    return shown
