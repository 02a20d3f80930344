"""Inbox rules as Exchange shows them, judged by the same rules as Graph's (``hygiene``).

``Get-InboxRule -Mailbox x -IncludeHidden`` (office-docs-powershell ``Get-InboxRule.md``) also
lists the rules Graph's ``messageRules`` never shows: hidden rules an attacker planted over
MAPI, and Exchange's own. Its rows (as CIPP reads them; a real ``Get-InboxRule | Format-List``):

- ``RuleIdentity``: a number larger than int64, kept as text here; ``Identity``
  ``<owner>\\<RuleIdentity>``; ``Name``; ``Enabled``;
- ``ForwardTo`` / ``RedirectTo`` / ``ForwardAsAttachmentTo``: ``"Name" [SMTP:x@y]`` (an
  address) or ``"Name" [EX:/o=...]`` (a mailbox of the organisation, no address);
- ``MoveToFolder``: ``<mailbox>:\\<folder path>`` (Set-InboxRule's reference gives that form);
- ``DeleteMessage``, ``SoftDeleteMessage``, ``MarkAsRead``; a key left out is false or empty.

Each row is mapped onto the messageRule shape ``hygiene.suspicious_rules`` judges, so both
reads of a mailbox are judged by one set of criteria. Folders are recognised by type, never by
display name: the caller passes the paths of the mailbox's well-known folders as Exchange's
``Get-MailboxFolderStatistics -FolderScope`` names them (``folder_key``), and a rule's folder
becomes a key no Graph id or well-known name can equal.

Exchange's own rules are left alone (CIPP's BEC remediation skips them): ``Junk E-mail Rule``
(compared case-insensitively), ``Microsoft.Exchange.OOF.*`` and ``Delegate Rule ...``
(Exchange cannot disable a delegate rule; "Delegate Rule <GUID>" in Microsoft's CSS-Exchange
``Get-RBASummary``, "Delegate Rule -N" elsewhere: compared by prefix).

Graph and Exchange name a rule differently: a messageRule ``id`` is the rule's RuleIdentity
as eight little-endian bytes in base64 (``AQAAAJ5dZqA=`` ↔ 11558028426879172609). Microsoft
documents no such pairing; every public pair has that form (Graph ids ``AQAAA…``, RuleIdentity
values whose low 32 bits are 1, e.g. 16752869479666417665 in the cmdlet references), and the
conversion is exact or nothing: an id that is not canonical base64 of eight bytes pairs with no
rule. A rule that fails to pair is judged here as well as by the Graph step: at worst listed
twice, never missed.
"""

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from remediation.domain.hygiene import EXCHANGE_ONLY_FOLDERS, Finding, suspicious_rules

FOLDER_KEY = "exchange-folder:"
_RECIPIENT = re.compile(r'^\s*(?:"(?P<name>[^"]*)"\s*)?\[(?P<kind>[A-Za-z]+):(?P<value>[^\]]*)\]')
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_FORWARDING = ("ForwardTo", "ForwardAsAttachmentTo", "RedirectTo")
_GRAPH_ACTIONS = {"ForwardTo": "forwardTo", "ForwardAsAttachmentTo": "forwardAsAttachmentTo",
                  "RedirectTo": "redirectTo"}


@dataclass(frozen=True)
class ExchangeRule:
    """One Get-InboxRule row; ``identity`` is its RuleIdentity as text."""

    identity: str
    name: str
    enabled: bool
    row: Mapping[str, Any]

    @property
    def folder(self) -> str | None:
        """The folder path the rule moves mail to, or None."""
        return folder_path(self.row.get("MoveToFolder"))

    @property
    def targets(self) -> tuple[str, ...]:
        """Every address the rule forwards or redirects to (lower case)."""
        return tuple(dict.fromkeys(
            address for field in _FORWARDING for address in recipient_addresses(
                self.row.get(field))))


def read_rule(row: Mapping[str, Any]) -> ExchangeRule | None:
    """The rule of a Get-InboxRule row; None without a readable RuleIdentity."""
    identity = rule_identity(row.get("RuleIdentity"))
    if identity is None:
        identity = rule_identity(str(row.get("Identity") or "").rpartition("\\")[2])
    if identity is None:
        return None
    return ExchangeRule(identity, str(row.get("Name") or ""), row.get("Enabled") is True, row)


def rule_identity(value: object) -> str | None:
    """A RuleIdentity as text: an integer (JSON numbers larger than int64 arrive whole in
    Python) or a string of digits. A float lost digits already: refused."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return str(int(value.strip()))
    return None


def graph_rule_identity(graph_id: str) -> str | None:
    """The RuleIdentity a Graph messageRule id stands for, or None (see the module's note)."""
    try:
        raw = base64.b64decode(graph_id, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 8 or base64.b64encode(raw).decode() != graph_id:
        return None
    return str(int.from_bytes(raw, "little"))


def system_rule(name: str) -> str | None:
    """Why Exchange's own rule is left alone, or None for any other rule."""
    lowered = name.strip().lower()
    if lowered == "junk e-mail rule":
        return "Exchange's junk e-mail rule"
    if lowered.startswith("microsoft.exchange.oof."):
        return "Exchange's out-of-office rule"
    if lowered.startswith("delegate rule"):
        return "Exchange's delegate rule (Exchange cannot disable it)"
    return None


def recipient(text: str) -> dict[str, Any]:
    """``"Name" [SMTP:x@y]`` → a Graph recipient with that address; ``"Name" [EX:/o=...]``
    → one without (a mailbox of the organisation); a bare address as it is."""
    match = _RECIPIENT.match(text)
    if match is None:
        address = text.strip().strip('"')
        found = _ADDRESS.search(address)
        return {"emailAddress": {"name": address,
                                 **({"address": found.group(0).lower()} if found else {})}}
    name = (match.group("name") or "").strip()
    if match.group("kind").lower() == "smtp" and "@" in match.group("value"):
        return {"emailAddress": {"name": name, "address": match.group("value").strip().lower()}}
    return {"emailAddress": {"name": name or match.group("value")}}


def recipient_addresses(value: object) -> list[str]:
    """The SMTP addresses of a ForwardTo-like value (a list, or one ``;``-separated string)."""
    items = value if isinstance(value, list) else (
        [part for part in re.split(r"[;,]", value)] if isinstance(value, str) else [])
    found = []
    for item in items:
        if isinstance(item, str) and item.strip():
            address = recipient(item)["emailAddress"].get("address")
            if address:
                found.append(address)
    return found


def addresses_in(text: str) -> list[str]:
    """Every e-mail address written anywhere in ``text`` (lower case)."""
    return [match.group(0).lower() for match in _ADDRESS.finditer(text)]


def folder_path(value: object) -> str | None:
    """A folder as compared: ``lynne:\\Deleted Items``, ``\\Deleted Items`` and ``/Deleted
    Items`` (Get-MailboxFolderStatistics' FolderPath) all become ``deleted items``."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if ":\\" in text:
        text = text.split(":\\", 1)[1]
    parts = [part for part in re.split(r"[\\/]", text) if part.strip()]
    return "/".join(part.strip() for part in parts).casefold() or None


def graph_shape(rule: ExchangeRule) -> dict[str, Any]:
    """The rule as a Graph messageRule, as far as ``hygiene`` judges one."""
    return messagerule(rule.identity, rule.name, rule.enabled, rule.row)


def messagerule(rule_id: str, name: str, enabled: bool,
                fields: Mapping[str, Any]) -> dict[str, Any]:
    """A messageRule from Exchange's rule fields (a Get-InboxRule row, or the parameters of a
    New-InboxRule the audit log kept: there every value is a string, ``"True"`` for true)."""
    actions: dict[str, Any] = {}
    for field, action in _GRAPH_ACTIONS.items():
        value = fields.get(field)
        items = value if isinstance(value, list) else (
            re.split(r"[;,]", value) if isinstance(value, str) else [])
        recipients = [recipient(item) for item in items if isinstance(item, str) and item.strip()]
        if recipients:
            actions[action] = recipients
    actions["delete"] = _true(fields.get("DeleteMessage"))
    actions["permanentDelete"] = _true(fields.get("SoftDeleteMessage"))
    actions["markAsRead"] = _true(fields.get("MarkAsRead"))
    folder = folder_path(fields.get("MoveToFolder"))
    if folder is not None:
        actions["moveToFolder"] = FOLDER_KEY + folder
    return {"id": rule_id, "displayName": name, "isEnabled": enabled, "actions": actions}


def judge(rules: Iterable[Mapping[str, Any]], well_known: Mapping[str, str],
          domains: frozenset[str]) -> dict[str, Finding]:
    """``hygiene``'s findings for messageRules made by ``messagerule``, by rule id.
    ``well_known``: folder path (``folder_path``) -> well-known name (``inbox``, ``archive``,
    ...) of the mailbox's well-known folders."""
    shapes = list(rules)
    shown = {shape["actions"]["moveToFolder"]: shape["actions"]["moveToFolder"][
        len(FOLDER_KEY):] for shape in shapes if "moveToFolder" in shape["actions"]}
    known = {FOLDER_KEY + path: name for path, name in well_known.items()}
    return {str(finding.rule_id): finding
            for finding in suspicious_rules(shapes, shown, domains, known)}


def graph_judgement(rules: Iterable[Mapping[str, Any]], well_known: Mapping[str, str],
                    domains: frozenset[str]) -> dict[str, Finding]:
    """What mailbox hygiene finds judging the same rules through Graph: ``judge`` without the
    folder types Graph has no well-known name for (``hygiene.EXCHANGE_ONLY_FOLDERS``). A rule
    ``judge`` finds and this does not is one the Graph step leaves alone."""
    return judge(rules, {path: name for path, name in well_known.items()
                         if name not in EXCHANGE_ONLY_FOLDERS}, domains)


def moves_mail(rules: Iterable[Mapping[str, Any]]) -> bool:
    return any("moveToFolder" in rule.get("actions", {}) for rule in rules)


def _true(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")
