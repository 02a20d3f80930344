"""Defender alerts (Graph ``alerts_v2``): which ones mean "this account sent outbound spam",
and whose account it is.

Real alerts often carry empty or null user fields with the address only in the mailbox
evidence, and evidence of unrelated kinds in the same list; nothing here assumes a field is
filled.
"""

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from remediation.domain.errors import InvalidRequest
from remediation.domain.requests import RemediationRequest, describe, normalise_user

DEFAULT_ALERT_TITLES = (
    "User restricted from sending email",
    "Suspicious email sending patterns detected",
    "Email sending limit exceeded",
)
OFFICE_365_SOURCE = "microsoftDefenderForOffice365"

_MAILBOX = "#microsoft.graph.security.mailboxEvidence"
_USER = "#microsoft.graph.security.userEvidence"


@dataclass(frozen=True)
class Alert:
    id: str
    title: str
    status: str
    service_source: str
    sender: str | None

    @property
    def request_id(self) -> str:
        return alert_request_id(self.id)


def alert_request_id(alert_id: str) -> str:
    """The message id (and request id) of an alert: one alert enqueues at most once."""
    return "alert-" + hashlib.sha256(alert_id.encode()).hexdigest()[:32]


ALERT_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,200}")


def is_alert_id(value: object) -> bool:
    return isinstance(value, str) and ALERT_ID.fullmatch(value) is not None


def parse_alert(raw: Mapping[str, Any]) -> Alert:
    alert_id = raw.get("id")
    if not is_alert_id(alert_id):
        raise InvalidRequest(f"alert has no usable id: {describe(alert_id)}")
    assert isinstance(alert_id, str)
    return Alert(id=alert_id, title=_text(raw.get("title")), status=_text(raw.get("status")),
                 service_source=_text(raw.get("serviceSource")),
                 sender=find_sender(raw.get("evidence")))


def is_outbound_spam(alert: Alert, titles: Iterable[str]) -> bool:
    """A Defender for Office 365 alert whose title is one of ``titles`` (any letter case)."""
    wanted = {title.strip().casefold() for title in titles}
    return (alert.service_source.casefold() == OFFICE_365_SOURCE.casefold()
            and alert.title.strip().casefold() in wanted)


def find_sender(evidence: object) -> str | None:
    """The sender's address (or object id), by the most reliable field that is filled:
    mailbox ``primaryAddress``, mailbox ``upn``, user ``userPrincipalName``, ``azureAdUserId``.
    """
    items = [item for item in evidence if isinstance(item, Mapping)] if isinstance(
        evidence, list) else []
    mailboxes = [item for item in items if item.get("@odata.type") == _MAILBOX]
    users = [item for item in items if item.get("@odata.type") == _USER]
    candidates = [
        *(item.get("primaryAddress") for item in mailboxes),
        *(item.get("upn") for item in mailboxes),
        *(_account(item).get("userPrincipalName") for item in users),
        *(_account(item).get("userPrincipalName") for item in mailboxes),
        *(_account(item).get("azureAdUserId") for item in (*users, *mailboxes)),
    ]
    for candidate in candidates:
        try:
            return normalise_user(candidate)
        except InvalidRequest:
            continue
    return None


def request_for_alert(alert: Alert) -> RemediationRequest:
    if alert.sender is None:
        raise InvalidRequest(f"alert {alert.id} names no usable sender address")
    return RemediationRequest(user=alert.sender, source="alert", alert_ids=(alert.id,),
                              reason=f"Defender alert: {' '.join(alert.title.split())}"[:1000],
                              request_id=alert.request_id)


def _account(item: Mapping[str, Any]) -> Mapping[str, Any]:
    account = item.get("userAccount")
    return account if isinstance(account, Mapping) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
