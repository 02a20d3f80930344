"""Mailbox rules and forwarding that attackers plant to keep reading mail after a reset."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Folders people rarely look in, by Graph's well-known names, which "work regardless of the
# locale of the user's mailbox" (mailFolder resource type, Well-known folder names,
# https://learn.microsoft.com/graph/api/resources/mailfolder). Display names are the
# mailbox's language ("Archiv", "Junk-E-Mail"): never compared. RSS Feeds has no well-known
# name in Graph v1.0: through Graph a rule that moves mail there is found only when it also
# marks it read; Exchange names it by type (Get-MailboxFolderStatistics -FolderScope
# RssSubscriptions), under RSS_FEEDS, a name of ours no Graph folder bears.
RARELY_READ_FOLDERS = ("archive", "conversationhistory", "deleteditems", "junkemail")
RSS_FEEDS = "rssfeeds"
EXCHANGE_ONLY_FOLDERS = (RSS_FEEDS,)
_FOLDER_LABELS = {RSS_FEEDS: "RSS Feeds"}
INBOX = "inbox"
_FORWARDING_ACTIONS = ("forwardTo", "forwardAsAttachmentTo", "redirectTo")


@dataclass(frozen=True)
class MailboxForwarding:
    forwarding_smtp_address: str | None = None
    forwarding_address: str | None = None
    deliver_to_mailbox_and_forward: bool = False


@dataclass(frozen=True)
class Finding:
    """Something suspicious: a rule (``rule_id``) or mailbox forwarding (``rule_id`` None)."""

    rule_id: str | None
    name: str
    why: str
    snapshot: dict[str, Any]


def moves_mail(rules: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any rule moves mail (only then are folders worth reading)."""
    return any(isinstance(rule.get("actions"), Mapping)
               and rule["actions"].get("moveToFolder") for rule in rules)


def suspicious_rules(rules: Iterable[Mapping[str, Any]], folder_names: Mapping[str, str],
                     domains: frozenset[str],
                     well_known: Mapping[str, str] | None = None) -> list[Finding]:
    """``folder_names``: folder id -> display name (only to show); ``well_known``: folder id
    -> well-known name (``inbox``, RARELY_READ_FOLDERS and, from Exchange only,
    EXCHANGE_ONLY_FOLDERS: those the mailbox has)."""
    findings = []
    for rule in rules:
        reasons = _rule_reasons(rule, folder_names, domains, well_known or {})
        if reasons and rule.get("isEnabled", True):
            findings.append(Finding(str(rule.get("id")), str(rule.get("displayName") or ""),
                                    "; ".join(reasons), dict(rule)))
    return findings


def suspicious_forwarding(forwarding: MailboxForwarding,
                          domains: frozenset[str]) -> Finding | None:
    targets = [address for address in (forwarding.forwarding_smtp_address,
                                       forwarding.forwarding_address) if address]
    outside = [address for address in targets if not _internal(_strip_smtp(address), domains)]
    if not outside:
        return None
    return Finding(None, "mailbox forwarding",
                   f"forwards all mail to {', '.join(_strip_smtp(a) for a in outside)}"
                   + (" (keeping a copy)" if forwarding.deliver_to_mailbox_and_forward else ""),
                   {"ForwardingSmtpAddress": forwarding.forwarding_smtp_address,
                    "ForwardingAddress": forwarding.forwarding_address,
                    "DeliverToMailboxAndForward": forwarding.deliver_to_mailbox_and_forward})


def _rule_reasons(rule: Mapping[str, Any], folder_names: Mapping[str, str],
                  domains: frozenset[str], well_known: Mapping[str, str]) -> list[str]:
    actions = rule.get("actions") if isinstance(rule.get("actions"), Mapping) else {}
    assert isinstance(actions, Mapping)
    reasons = []
    for action in _FORWARDING_ACTIONS:
        outside = [a for a in _addresses(actions.get(action)) if not _internal(a, domains)]
        if outside:
            reasons.append(f"{action} {', '.join(outside)} (outside the organisation)")
    if actions.get("delete") or actions.get("permanentDelete"):
        reasons.append("deletes matching mail")
    folder = actions.get("moveToFolder")
    if isinstance(folder, str) and folder:
        name = folder_names.get(folder, folder)
        # A rule may name a folder by its well-known name as well as by its id.
        known = well_known.get(folder) or (folder.lower() if folder.lower() in (
            INBOX, *RARELY_READ_FOLDERS) else None)
        marks_read = actions.get("markAsRead") is True
        if known in RARELY_READ_FOLDERS or known in EXCHANGE_ONLY_FOLDERS:
            label = _FOLDER_LABELS.get(known, known)
            reasons.append(f"moves matching mail to {name} (the {label} folder)"
                           + (" and marks it read" if marks_read else ""))
        elif marks_read and known != INBOX:
            reasons.append(f"moves matching mail to {name} and marks it read")
    return reasons


def _addresses(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    found = []
    for recipient in value:
        email = recipient.get("emailAddress") if isinstance(recipient, Mapping) else None
        address = email.get("address") if isinstance(email, Mapping) else None
        if isinstance(address, str) and address:
            found.append(address.lower())
    return found


def _internal(address: str, domains: frozenset[str]) -> bool:
    if "@" not in address:
        return True  # a recipient object by name: an internal mailbox or contact
    domain = address.rsplit("@", 1)[1].lower()
    return any(domain == d or domain.endswith("." + d) for d in domains)


def _strip_smtp(address: str) -> str:
    return address[5:] if address.lower().startswith("smtp:") else address
