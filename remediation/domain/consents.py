"""App consents: which of an account's delegated permission grants the attacker gave.

A consent lets an app act as the account (``oAuth2PermissionGrant``, Graph v1.0 resource
type): ``clientId`` is the app's service principal (object id), ``resourceId`` the API's,
``scope`` the space-separated delegated permissions (it may start with a space: "List a
user's oauth2PermissionGrants", microsoft-graph-docs-contrib
``api-reference/v1.0/api/user-list-oauth2permissiongrants.md``). ``consentType``
``Principal`` covers one account (``principalId``); ``AllPrincipals`` is an administrator's
consent for the whole organisation (``principalId`` null) and is never a user case's to
remove. Grants carry no timestamps: *when* is in the directory audit log, as "Consent to
application" records initiated by the account whose target is the app's service principal.

Microsoft's "Detect and Remediate Illicit Consent Grants" (defender-docs
``defender-office-365/detect-and-remediate-illicit-consent-grants.md``): a password reset does
not stop such an app; the remedy is revoking the grant. Revoking is final for the app's
future tokens only: "Existing access tokens will continue to be valid for their lifetime"
(Graph "Delete oAuth2PermissionGrant"), about an hour; its refresh tokens ended with the
session revocation, which "invalidates all the refresh tokens issued to applications for a
user" (Graph "user: revokeSignInSessions").

A grant's id is the base64url of its client's, its resource's and (for ``Principal``) its
principal's object ids (the documented examples decode so:
``E3NHhUPq…`` is 85477313-…, 27fb395a-…, 7d54cb02-… in user-list-oauth2permissiongrants.md):
a consent given again after a revocation brings the same id back. A grant's ``key`` therefore
names the consent behind it when that consent came at or after the trouble started, so a
grant that returns after the case acted is a new key to verification.

Plain values and judgement only; the reads and the revocation are in
``remediation/adapters/graph_consents.py``.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from remediation.domain.leftovers import CompromiseWindow, Disposition, Leftover

KIND = "consent grant"
PRINCIPAL, ALL_PRINCIPALS = "Principal", "AllPrincipals"
OFFLINE_ACCESS = "offline_access"
# Delegated permissions that read or send the account's mail, change what happens to it, or
# open the mailbox over a mail protocol; compared case-insensitively, on any resource (Graph
# or Office 365 Exchange Online name them alike). Sources: the Microsoft Graph permissions
# reference (microsoft-graph-docs-contrib ``concepts/permissions-reference.md``, "Mail
# permissions", "Mailbox settings permissions", and EAS/EWS/IMAP/POP/SMTP.AccessAsUser.All,
# SMTP.Send); Exchange's "Authenticate an IMAP, POP or SMTP connection using OAuth"
# (IMAP.AccessAsUser.All, POP.AccessAsUser.All, SMTP.Send) and "Authenticate an EWS
# application by using OAuth" (EWS.AccessAsUser.All; ``full_access_as_user``, the older
# name of full EWS access on Exchange Online). Left out: Mail.ReadBasic (no body, no
# attachments) and MailboxSettings.Read (reads, changes nothing). ``offline_access`` alone is
# no mail permission; alongside one it gives the app refresh tokens (the same Exchange page:
# "Refresh tokens are long-lived"), which the report says.
MAIL_SCOPES = frozenset(scope.lower() for scope in (
    "Mail.Read", "Mail.ReadWrite", "Mail.Send",
    "Mail.Read.Shared", "Mail.ReadWrite.Shared", "Mail.Send.Shared",
    "MailboxSettings.ReadWrite",
    "EWS.AccessAsUser.All", "EAS.AccessAsUser.All", "full_access_as_user",
    "IMAP.AccessAsUser.All", "POP.AccessAsUser.All", "SMTP.Send",
))
TOKENS_NOTE = ("access tokens the app already holds stay valid until they expire (about an "
               "hour: Graph, Delete oAuth2PermissionGrant); its refresh tokens ended with the "
               "session revocation, which ran before this step")


@dataclass(frozen=True)
class Grant:
    """One ``oAuth2PermissionGrant`` as Graph lists it."""

    id: str
    client_id: str
    consent_type: str
    principal_id: str | None
    resource_id: str
    scope: str

    @property
    def scopes(self) -> tuple[str, ...]:
        """The permissions, in Graph's order, each once (the string may start with a
        space, or hold two in a row)."""
        return tuple(dict.fromkeys(self.scope.split()))

    @property
    def tenant_wide(self) -> bool:
        return self.consent_type.lower() == ALL_PRINCIPALS.lower()

    def covers(self, user_id: str) -> bool:
        """A grant for this account alone (``Principal``, its ``principalId``)."""
        return (self.consent_type.lower() == PRINCIPAL.lower()
                and (self.principal_id or "").lower() == user_id.lower())


@dataclass(frozen=True)
class App:
    """A service principal: the client app of a grant, or the API it reaches.
    ``verified_publisher`` is the publisher's verified name, None when unverified
    (``verifiedPublisher`` fields null, Graph "servicePrincipal resource type");
    ``found`` False when Graph no longer has the service principal."""

    id: str
    display_name: str | None = None
    app_id: str | None = None
    publisher_name: str | None = None
    verified_publisher: str | None = None
    found: bool = True

    @property
    def name(self) -> str:
        return self.display_name or (f"app {self.app_id}" if self.app_id else
                                     f"service principal {self.id}")


@dataclass(frozen=True)
class Consent:
    """A "Consent to application" record of the directory audit log, initiated by the
    account: when, to which service principal (``client_id``), whether for the whole
    organisation (``ConsentContext.OnBehalfOfAll``; None when the record does not say) and
    the grant ids its ``ConsentAction.Permissions`` names."""

    at: datetime
    client_id: str
    tenant_wide: bool | None = None
    grant_ids: frozenset[str] = frozenset()

    def gave(self, grant: Grant) -> bool:
        """Whether this consent made or changed ``grant``: the record names its id, or the
        same app with the same reach (one account, or everyone)."""
        if grant.id in self.grant_ids:
            return True
        return (self.client_id.lower() == grant.client_id.lower()
                and self.tenant_wide in (None, grant.tenant_wide))


def mail_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Those of ``scopes`` that reach the account's mail (MAIL_SCOPES)."""
    return tuple(scope for scope in scopes if scope.lower() in MAIL_SCOPES)


def latest_consent(grant: Grant, consents: Iterable[Consent]) -> Consent | None:
    """The newest consent that gave ``grant``, None when the audit log has none."""
    given = [consent for consent in consents if consent.gave(grant)]
    return max(given, key=lambda consent: consent.at) if given else None


def judge(grant: Grant, client: App, resource: App, consents: Iterable[Consent],
          window: CompromiseWindow, mode: str) -> Leftover | None:
    """What the case does with ``grant`` (``mode``: ``remove`` or ``report``, the
    SIGNIN_CLEANUP setting). None for a tenant-wide grant that is not this account's
    concern (neither consented by it inside the window nor a mail app from an unverified
    publisher).

    - a ``Principal`` grant this account consented to inside the window: removed (reported
      in ``report`` mode), whoever published the app;
    - an older one (or one the audit log has no consent for) with mail permissions, for an
      app whose publisher is not verified: reported, never removed;
    - any other older one: kept (the owner's);
    - an ``AllPrincipals`` grant is never removed by a user's case: reported, an
      administrator to decide, when this account consented to it inside the window or when
      it is a mail app from an unverified publisher.
    """
    consent = latest_consent(grant, consents)
    inside = consent is not None and window.contains(consent.at) is True
    mail = mail_scopes(grant.scopes)
    unverified = client.verified_publisher is None
    when = f"{consent.at:%Y-%m-%d %H:%M:%S} UTC" if consent else None
    key = grant_key(grant, consent, window)
    if grant.tenant_wide:
        if inside:
            why = (f"consented for the whole organisation by this account at {when}, inside "
                   "the compromise window: an administrator must decide (a user's case never "
                   "removes an admin consent)")
        elif mail and unverified:
            why = (f"an admin consent for the whole organisation giving {_listed(mail)} to an "
                   "app whose publisher is not verified: an administrator must decide")
        else:
            return None
        return _leftover(grant, key, client, resource, consent, Disposition.REPORT, why)
    if inside:
        disposition = Disposition.REMOVE if mode == "remove" else Disposition.REPORT
        why = f"consented by this account at {when}, inside the compromise window"
        if disposition is Disposition.REPORT:
            why += " (SIGNIN_CLEANUP=report: left in place)"
        return _leftover(grant, key, client, resource, consent, disposition, why)
    since = (f"consented at {when}, before the window" if consent else
             "no consent by this account in the audit log since the window opened")
    if mail and unverified:
        why = (f"{since}, but it gives {_listed(mail)}"
               f"{' with offline_access (refresh tokens)' if _offline(grant) else ''} to an "
               "app whose publisher is not verified: a person should check it")
        return _leftover(grant, key, client, resource, consent, Disposition.REPORT, why)
    return _leftover(grant, key, client, resource, consent, Disposition.KEEP,
                     f"{since}: taken for the owner's")


def grant_key(grant: Grant, consent: Consent | None, window: CompromiseWindow) -> str:
    """The grant's id, followed by the time of the consent behind it when that consent came
    at or after the trouble started: a grant revoked and consented to again (same id) is a
    new key. Earlier consents are left out, so a key never changes as the audit log's
    retention drops them."""
    if consent is not None and consent.at >= window.trouble_started:
        return f"{grant.id} consented {consent.at.isoformat()}"
    return grant.id


def regrant_body(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The body of Graph's ``POST /oauth2PermissionGrants`` that gives a revoked grant back
    ("Create oAuth2PermissionGrant": clientId, consentType, principalId, resourceId, scope)."""
    body = {"clientId": snapshot["clientId"], "consentType": snapshot["consentType"],
            "resourceId": snapshot["resourceId"], "scope": snapshot["scope"]}
    if snapshot.get("principalId"):
        body["principalId"] = snapshot["principalId"]
    return body


def _leftover(grant: Grant, key: str, client: App, resource: App, consent: Consent | None,
              disposition: Disposition, why: str) -> Leftover:
    scope = " ".join(grant.scopes)
    snapshot: dict[str, Any] = {
        "id": grant.id, "clientId": grant.client_id, "app": client.display_name,
        "appId": client.app_id, "publisher": client.verified_publisher,
        "resourceId": grant.resource_id, "resource": resource.display_name,
        "consentType": grant.consent_type, "principalId": grant.principal_id,
        "scope": scope}
    undo = ""
    if disposition is Disposition.REMOVE:
        snapshot["tokens"] = TOKENS_NOTE
        # "/v1.0/oauth2PermissionGrants" (or the name next to punctuation) is password-shaped
        # to the journal's masking (remediation/logsafety.py): named bare, between spaces.
        undo = ("if the owner wants the app back: the owner consents to it again, or an "
                "administrator creates it anew: Graph POST to oauth2PermissionGrants with "
                "DelegatedPermissionGrant.ReadWrite.All and the body "
                + json.dumps(regrant_body(snapshot), sort_keys=True))
    tenant = " for the whole organisation" if grant.tenant_wide else ""
    name = f"{client.name}{_app_id(client)} on {resource.name}{tenant}: {scope or '(no scope)'}"
    return Leftover(KIND, key, name, disposition, why,
                    consent.at if consent else None,
                    "audit log" if consent else "unknown", undo, snapshot)


def _app_id(client: App) -> str:
    return f" (appId {client.app_id})" if client.app_id and client.display_name else ""


def _listed(scopes: tuple[str, ...]) -> str:
    return ", ".join(scopes)


def _offline(grant: Grant) -> bool:
    return any(scope.lower() == OFFLINE_ACCESS for scope in grant.scopes)
