"""Defender alerts for the demo tenant, in the alerts_v2 shape Graph returns."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from remediation.sandbox.clock import graph_timestamp, utc_now

OFFICE = "microsoftDefenderForOffice365"
RESTRICTED = "User restricted from sending email"
SUSPICIOUS = "Suspicious email sending patterns detected"
LIMIT = "Email sending limit exceeded"


def mailbox_evidence(address: str, upn: str | None = None,
                     roles: list[str] | None = None) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.security.mailboxEvidence",
            "primaryAddress": address, "upn": upn if upn is not None else address,
            "displayName": address.split("@")[0], "userAccount": None,
            "roles": roles or [], "verdict": "suspicious", "remediationStatus": "none"}


def user_evidence(upn: str | None, object_id: str | None = None,
                  roles: list[str] | None = None) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.security.userEvidence",
            "roles": ["compromised"] if roles is None else roles,
            "userAccount": {"accountName": (upn or "").split("@")[0], "domainName": None,
                            "userPrincipalName": upn, "azureAdUserId": object_id,
                            "displayName": None, "userSid": None}}


def device_evidence() -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.security.deviceEvidence",
            "deviceDnsName": "laptop-17.contoso.com", "osPlatform": "Windows11"}


def alert(title: str, evidence: list[dict[str, Any]], *, service_source: str = OFFICE,
          created: datetime | None = None, severity: str = "medium",
          alert_id: str | None = None) -> dict[str, Any]:
    stamp = graph_timestamp(created or utc_now() - timedelta(minutes=5))
    # Graph names a Defender for Office 365 alert "fa" + its provider GUID.
    identifier = alert_id or f"fa{uuid.uuid4()}"
    return {
        "id": identifier, "providerAlertId": identifier[2:], "incidentId": "41",
        "status": "new", "severity": severity, "classification": None, "determination": None,
        "serviceSource": service_source, "detectionSource": service_source,
        "title": title, "description": f"{title}.", "category": "ThreatManagement",
        "assignedTo": None, "alertWebUrl": f"https://security.microsoft.com/alerts/{identifier}",
        "createdDateTime": stamp, "lastUpdateDateTime": stamp, "resolvedDateTime": None,
        "comments": [], "evidence": evidence,
    }


def shared_mailbox_alert(mailbox: str, sender: str) -> dict[str, Any]:
    """The block of a shared mailbox, with the account that sent as it: Defender's evidence
    for mail sent as a shared mailbox is not documented; here the restricted mailbox is the
    compromised one and the sending account is named beside it (role ``source``)."""
    return alert(RESTRICTED, [mailbox_evidence(mailbox, roles=["compromised"]),
                              user_evidence(sender, roles=["source"])], severity="high")


def demo_alerts() -> list[dict[str, Any]]:
    """Each default title (in any letter case), two alerts for one user, an alert whose user
    fields are empty, one with no usable sender at all, a shared mailbox's block naming its
    sender, a bulk sender over its limit, and alerts that are none of ours."""
    return [
        alert(RESTRICTED, [mailbox_evidence("adele.vance@contoso.com", upn=""),
                           user_evidence("", None)], severity="high"),
        alert(SUSPICIOUS, [mailbox_evidence("lee.gu@contoso.com")]),
        alert(RESTRICTED.upper(), [user_evidence("lee.gu@contoso.com")], severity="high"),
        alert(LIMIT.lower(), [mailbox_evidence("megan.bowen@contoso.com"), device_evidence()]),
        alert(SUSPICIOUS, [user_evidence("", None), device_evidence()]),
        alert(RESTRICTED, [mailbox_evidence("$scanner@contoso.com")], severity="high"),
        alert(LIMIT, [mailbox_evidence("sales@contoso.com", upn="")]),
        shared_mailbox_alert("info@contoso.com", "nestor.wilke@contoso.com"),
        alert(LIMIT, [mailbox_evidence("newsletter@contoso.com")]),
        alert(RESTRICTED, [device_evidence()], service_source="microsoftDefenderForEndpoint"),
        alert("Email messages containing malicious URL removed after delivery",
              [mailbox_evidence("alex.wilber@contoso.com")]),
    ]
