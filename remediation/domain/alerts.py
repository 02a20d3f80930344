"""Defender alerts (Graph ``alerts_v2``): which ones mean "this account sent outbound spam",
and whose account it is.

Real alerts often carry empty or null user fields with the address only in the mailbox
evidence, and evidence of unrelated kinds in the same list; nothing here assumes a field is
filled.
"""

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from remediation.domain.alert_ids import ALERT_ID_RULE as ALERT_ID_RULE
from remediation.domain.alert_ids import is_alert_id as is_alert_id
from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import InvalidRequest
from remediation.domain.requests import (
    RemediationRequest,
    describe,
    normalise_user,
    parse_evidence_time,
)

DEFAULT_ALERT_TITLES = (
    "User restricted from sending email",
    "Suspicious email sending patterns detected",
    "Email sending limit exceeded",
)
OFFICE_365_SOURCE = "microsoftDefenderForOffice365"
# Alerts that report a block or a volume, never why: "User restricted from sending email" is
# raised for every restricted user, whatever the cause, and "Email sending limit exceeded" for
# a user over a sending limit, the recipient rate limit included (defender-docs
# outbound-spam-sending-limits-troubleshoot.md, "What happens when limits are exceeded").
# Every other outbound-spam alert (by default "Suspicious email sending patterns detected",
# raised for outbound spam itself) is a compromise alert: it speaks to a takeover.
BLOCK_REPORT_TITLES = (
    "User restricted from sending email",
    "Email sending limit exceeded",
)

_MAILBOX = "#microsoft.graph.security.mailboxEvidence"
_USER = "#microsoft.graph.security.userEvidence"


@dataclass(frozen=True)
class Alert:
    id: str
    title: str
    status: str
    service_source: str
    sender: str | None
    created: datetime | None = None  # createdDateTime: None when missing or unreadable
    # When the evidence names several accounts and marks none of them alone as compromised
    # (``sender`` is then None): each account's best name, for a person to choose from.
    candidates: tuple[str, ...] = ()

    @property
    def ambiguous(self) -> bool:
        return bool(self.candidates)

    @property
    def request_id(self) -> str:
        return alert_request_id(self.id)


def alert_request_id(alert_id: str) -> str:
    """The message id (and request id) of an alert: one alert enqueues at most once."""
    return "alert-" + hashlib.sha256(alert_id.encode()).hexdigest()[:32]


def parse_alert(raw: Mapping[str, Any]) -> Alert:
    alert_id = raw.get("id")
    if not is_alert_id(alert_id):
        raise InvalidRequest(f"alert has no usable id: {describe(alert_id)}")
    assert isinstance(alert_id, str)
    return Alert(id=alert_id, title=_text(raw.get("title")), status=_text(raw.get("status")),
                 service_source=_text(raw.get("serviceSource")),
                 created=parse_evidence_time(raw.get("createdDateTime")),
                 **_sender_fields(sender_evidence(raw.get("evidence"))))


def is_outbound_spam(alert: Alert, titles: Iterable[str]) -> bool:
    """A Defender for Office 365 alert whose title is one of ``titles`` (any letter case)."""
    wanted = {title.strip().casefold() for title in titles}
    return (alert.service_source.casefold() == OFFICE_365_SOURCE.casefold()
            and alert.title.strip().casefold() in wanted)


def is_compromise_alert(alert: Alert) -> bool:
    """A Defender for Office 365 alert that is evidence of a takeover, not a mere report of
    a block or a sending volume (BLOCK_REPORT_TITLES; any letter case)."""
    reports = {title.casefold() for title in BLOCK_REPORT_TITLES}
    return (alert.service_source.casefold() == OFFICE_365_SOURCE.casefold()
            and alert.title.strip().casefold() not in reports)


def why_not_outbound_spam(alert: Alert, titles: Iterable[str]) -> str | None:
    """Why the poll would not act on ``alert`` (not Defender for Office 365, or not one of
    ``titles``), or None when it would; the reason quotes the alert's own text escaped."""
    if alert.service_source.casefold() != OFFICE_365_SOURCE.casefold():
        return (f"not a Defender for Office 365 alert (serviceSource "
                f"{describe(alert.service_source)})")
    if not is_outbound_spam(alert, titles):
        return f"not an outbound-spam alert (title {describe(alert.title)})"
    return None


def names_account(alert: Alert, user: DirectoryUser) -> bool:
    """Does the sender the alert's evidence names belong to ``user`` (object id, UPN, mail or
    any SMTP alias)? An alert naming nobody names no account."""
    return alert.sender is not None and user.owns(alert.sender)


@dataclass(frozen=True)
class SenderEvidence:
    """Whose account an alert's evidence names: ``sender`` when it names one account, or
    marks exactly one of several as the compromised one; else ``candidates``, each account
    it names (at least two), for a person to choose from. Neither: it names nobody."""

    sender: str | None
    candidates: tuple[str, ...] = ()


def find_sender(evidence: object) -> str | None:
    """The sender's address (or object id), or None when the evidence names nobody or
    several accounts without marking one (``sender_evidence`` tells those apart)."""
    return sender_evidence(evidence).sender


def sender_evidence(evidence: object) -> SenderEvidence:
    """The accounts that mailbox and user evidence name, and which one is the sender.

    Every name one evidence item carries (mailbox ``primaryAddress`` and ``upn``, its
    ``userAccount``; user ``userPrincipalName`` and ``azureAdUserId``) belongs to its one
    account, and items sharing a name (an address in any letter case, an object id) are one
    account. Nothing else joins them: an address in one item and an object id or another
    address in another may be one person or two, and only the directory could tell. One
    account: its most reliable name (mailbox ``primaryAddress``, mailbox ``upn``, user
    ``userPrincipalName``, the mailbox account's ``userPrincipalName``, ``azureAdUserId``).
    Several: the one whose evidence ``roles`` say ``compromised`` (``impacted``, the stream's
    EvidenceRole, counts too) when exactly one does; otherwise nobody is chosen.
    """
    accounts = _accounts(evidence)
    if len(accounts) <= 1:
        return SenderEvidence(accounts[0].name if accounts else None)
    marked = [account for account in accounts if account.marked]
    if len(marked) == 1:
        return SenderEvidence(marked[0].name)
    return SenderEvidence(None, tuple(account.name for account in accounts))


# Evidence roles that single out the account an alert is about: Graph's evidenceRole
# ``compromised``; ``impacted`` is the Defender stream's EvidenceRole for it.
MARKED_ROLES = frozenset({"compromised", "impacted"})


@dataclass(eq=False)
class _Account:
    names: set[str]
    best: tuple[int, int, str]  # (field rank, position in the evidence, name)
    marked: bool
    first: int  # where the evidence first names it

    @property
    def name(self) -> str:
        return self.best[2]


def _accounts(evidence: object) -> list[_Account]:
    """The accounts mailbox and user evidence name, in the order the evidence names them."""
    items = [item for item in evidence if isinstance(item, Mapping)] if isinstance(
        evidence, list) else []
    accounts: list[_Account] = []
    owner: dict[str, _Account] = {}  # name -> the account holding it
    for position, item in enumerate(items):
        named = _names(item, position)
        if not named:
            continue
        account = _Account({name for _, _, name in named}, min(named), _marked(item),
                           position)
        # Every account already holding one of these names is this account too.
        for other in {id(owner[n]): owner[n] for n in account.names if n in owner}.values():
            account.names |= other.names
            account.best = min(account.best, other.best)
            account.marked = account.marked or other.marked
            account.first = min(account.first, other.first)
            accounts.remove(other)
        for name in account.names:
            owner[name] = account
        accounts.append(account)
    return sorted(accounts, key=lambda account: account.first)


def _names(item: Mapping[str, Any], position: int) -> list[tuple[int, int, str]]:
    """The usable names in one mailbox or user evidence item, each with its field's rank."""
    kind = item.get("@odata.type")
    account = _account(item)
    if kind == _MAILBOX:
        fields = [(0, item.get("primaryAddress")), (1, item.get("upn")),
                  (3, account.get("userPrincipalName")), (4, account.get("azureAdUserId"))]
    elif kind == _USER:
        fields = [(2, account.get("userPrincipalName")), (4, account.get("azureAdUserId"))]
    else:
        return []
    named: list[tuple[int, int, str]] = []
    for rank, value in fields:
        try:
            named.append((rank, position, normalise_user(value)))
        except InvalidRequest:
            continue
    return named


def evidence_accounts(evidence: object) -> list[frozenset[str]]:
    """Every account mailbox and user evidence names, each as the set of its names
    (addresses and object ids, lower case), joined as ``sender_evidence`` joins them."""
    return [frozenset(account.names) for account in _accounts(evidence)]


def _marked(item: Mapping[str, Any]) -> bool:
    roles = item.get("roles")
    return isinstance(roles, list) and any(
        isinstance(role, str) and role.strip().casefold() in MARKED_ROLES for role in roles)


def _sender_fields(found: SenderEvidence) -> dict[str, Any]:
    return {"sender": found.sender, "candidates": found.candidates}


def request_for_alert(alert: Alert) -> RemediationRequest:
    if alert.ambiguous:
        raise InvalidRequest(f"alert {alert.id} names {len(alert.candidates)} accounts and "
                             "marks none of them alone as compromised")
    if alert.sender is None:
        raise InvalidRequest(f"alert {alert.id} names no usable sender address")
    return RemediationRequest(user=alert.sender, source="alert", alert_ids=(alert.id,),
                              reason=f"Defender alert: {' '.join(alert.title.split())}"[:1000],
                              request_id=alert.request_id, evidence_at=alert.created)


def _account(item: Mapping[str, Any]) -> Mapping[str, Any]:
    account = item.get("userAccount")
    return account if isinstance(account, Mapping) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
