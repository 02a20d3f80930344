"""The sandbox tenant's sign-in methods and its directory audit log.

What Microsoft Graph v1.0 shows and refuses (sources in ``signin_routes.py`` and below):

- every account has its password method (fixed id ``28c10230-…``, ``createdDateTime`` the time
  the password was last set); Graph never deletes it;
- ``createdDateTime`` is answered for some types (Authenticator, FIDO2, Windows Hello,
  Temporary Access Pass, platform credential, external) and not for others (phone, email,
  software OATH): for those only the directory audit log says when they were registered;
- phone methods have one fixed id per phone type ("Delete phoneAuthenticationMethod":
  ``mobile`` ``3179e48a-…``, ``alternateMobile`` ``b6332ec1-…``, ``office`` ``e37fc753-…``), so
  a number registered again after a removal comes back under the same id; a ``mobile``
  number cannot be deleted while an ``alternateMobile`` one exists (same page);
- the user's default method cannot be deleted while other methods exist: ``400 badRequest``
  "Cannot delete default method with other methods configured. Please change default method
  before deletion." (microsoft-graph-docs #14470); Graph v1.0 has no way to read or change
  the default (``signInPreferences`` is beta only);
- registrations are written to the directory audit log as "User registered security info" /
  "Admin registered security info", the method named only in ``resultReason`` ("User
  registered Mobile Phone SMS", "User registered Authenticator App with Notification and
  Code", ...: public detections and audit exports quote these), kept 30 days (Entra ID P1/P2;
  7 on Free: ``audit_retention``).

Secrets a method holds in Microsoft 365 (a Temporary Access Pass, an OATH secret key) are kept
here only to prove that Graph's answers, and so the robot, never carry them: Graph returns
them as null.
"""

from __future__ import annotations

import copy
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from remediation.sandbox.audit_log import AuditLog
from remediation.sandbox.clock import graph_timestamp, utc_now

PASSWORD_METHOD_ID = "28c10230-6103-485e-b985-444c60001490"  # noqa: S105 (an id)
EMAIL_METHOD_ID = "3ddfcfc8-9383-446f-83cc-3ab9be4be18f"
PHONE_METHOD_IDS = {"mobile": "3179e48a-750b-4051-897c-87b9720928f7",
                    "alternateMobile": "b6332ec1-7057-4abe-9331-3d72feddfe41",
                    "office": "e37fc753-ff3b-4958-9484-eaa9425c82bc"}
DEFAULT_REFUSAL = ("Cannot delete default method with other methods configured. Please change "
                   "default method before deletion.")
# The sandbox's own words: the refusal is documented, its text is not.
MOBILE_REFUSAL = ("A mobile number cannot be deleted while an alternateMobile number exists: "
                  "update the mobile number instead.")
USER_REGISTERED = "User registered security info"
ADMIN_REGISTERED = "Admin registered security info"
# The collection each type lives in (``/users/{id}/authentication/{segment}/{id}``), as
# msgraph-sdk v1.0 builds the paths; password methods are listed but never deleted.
SEGMENTS = {
    "phoneAuthenticationMethod": "phoneMethods",
    "emailAuthenticationMethod": "emailMethods",
    "softwareOathAuthenticationMethod": "softwareOathMethods",
    "microsoftAuthenticatorAuthenticationMethod": "microsoftAuthenticatorMethods",
    "fido2AuthenticationMethod": "fido2Methods",
    "windowsHelloForBusinessAuthenticationMethod": "windowsHelloForBusinessMethods",
    "temporaryAccessPassAuthenticationMethod": "temporaryAccessPassMethods",
    "platformCredentialAuthenticationMethod": "platformCredentialMethods",
    "externalAuthenticationMethod": "externalAuthenticationMethods",
    "passwordAuthenticationMethod": "passwordMethods",
}
# Types Graph answers without a createdDateTime (the audit log dates them).
UNDATED = frozenset({"phoneAuthenticationMethod", "emailAuthenticationMethod",
                     "softwareOathAuthenticationMethod"})
# How the audit log names a registration of each type, as audit exports quote it; the
# wordings marked (sandbox) are guesses of the same shape.
REASONS = {
    ("phoneAuthenticationMethod", "mobile"): "User registered Mobile Phone SMS",
    ("phoneAuthenticationMethod", "alternateMobile"):
        "User registered Alternate Mobile Phone",  # (sandbox)
    ("phoneAuthenticationMethod", "office"): "User registered Office Phone",  # (sandbox)
    ("emailAuthenticationMethod", None): "User registered Email",  # (sandbox)
    ("softwareOathAuthenticationMethod", None): "User registered Software OATH token",
    ("microsoftAuthenticatorAuthenticationMethod", None):
        "User registered Authenticator App with Notification and Code",
    ("fido2AuthenticationMethod", None): "User registered Fido",
    ("temporaryAccessPassAuthenticationMethod", None):
        "Admin registered temporary access pass method for user",
}


class MethodRefused(Exception):
    """Graph's refusal of a delete: status, code and message, as the route answers them."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class SandboxMethod:
    """One registered method: its Graph type (``phoneAuthenticationMethod``, ...), id, when
    it was registered (the truth, whatever Graph shows), the properties Graph answers, and a
    secret Graph never answers (``temporaryAccessPass``, ``secretKey``)."""

    odata_type: str
    properties: dict[str, Any] = field(default_factory=dict)
    registered: datetime = field(default_factory=utc_now)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    secret: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.odata_type == "phoneAuthenticationMethod":
            self.id = PHONE_METHOD_IDS[self.properties.get("phoneType", "mobile")]
        elif self.odata_type == "emailAuthenticationMethod":
            self.id = EMAIL_METHOD_ID

    def json(self) -> dict[str, Any]:
        item: dict[str, Any] = {"@odata.type": f"#microsoft.graph.{self.odata_type}",
                                "id": self.id}
        if self.odata_type == "emailAuthenticationMethod":
            item["createdDateTime"] = None  # present but empty
        elif self.odata_type not in UNDATED:
            item["createdDateTime"] = graph_timestamp(self.registered)
        item.update(copy.deepcopy(self.properties))
        for name in self.secret:
            item[name] = None  # "returned as null from a LIST or GET operation"
        return item


def phone(number: str, phone_type: str = "mobile", **changes: Any) -> SandboxMethod:
    return SandboxMethod("phoneAuthenticationMethod", {
        "phoneNumber": number, "phoneType": phone_type, "smsSignInState": "notEnabled"},
        **changes)


def authenticator(device: str, **changes: Any) -> SandboxMethod:
    return SandboxMethod("microsoftAuthenticatorAuthenticationMethod", {
        "displayName": device, "deviceTag": "SoftwareTokenActivated",
        "phoneAppVersion": "6.2401.0119"}, **changes)


def temporary_access_pass(value: str, **changes: Any) -> SandboxMethod:
    return SandboxMethod("temporaryAccessPassAuthenticationMethod", {
        "startDateTime": None, "lifetimeInMinutes": 60, "isUsableOnce": False,
        "isUsable": True, "methodUsabilityReason": "EnabledByPolicy"},
        secret={"temporaryAccessPass": value}, **changes)


def software_oath(secret_key: str, **changes: Any) -> SandboxMethod:
    return SandboxMethod("softwareOathAuthenticationMethod", {},
                         secret={"secretKey": secret_key}, **changes)


@dataclass
class _Account:
    methods: list[SandboxMethod] = field(default_factory=list)
    default: str | None = None  # the id of the user's default method
    password_set: datetime | None = None


class SignInMethods:
    """Methods per user (by object id), behind one lock; registrations are written to the
    tenant's directory audit log (``audit_log.AuditLog``, which serves them)."""

    def __init__(self, audit_log: AuditLog) -> None:
        self.audit_log = audit_log
        self._lock = threading.RLock()
        self._accounts: dict[str, _Account] = {}
        # Every successful delete: (user id, method type, method id).
        self.deleted: list[tuple[str, str, str]] = []

    def register(self, user_id: str, upn: str, method: SandboxMethod, *,
                 default: bool = False, audit: bool = True, by_admin: bool = False,
                 reason: str | None = None) -> SandboxMethod:
        """Add ``method`` to the user (a phone replaces the number of its type), as the user
        would in My Sign-Ins (or an admin for them, ``by_admin``), and write the audit record
        unless ``audit`` is False (a registration older than the log, or lost to it)."""
        with self._lock:
            account = self._accounts.setdefault(user_id, _Account())
            account.methods = [m for m in account.methods if m.id != method.id]
            account.methods.append(method)
            if default:
                account.default = method.id
            if audit:
                self.audit_log.add(_registration(
                    user_id, upn, method.registered, by_admin=by_admin,
                    reason=reason or REASONS.get(
                        (method.odata_type, method.properties.get("phoneType")),
                        f"User registered {method.odata_type}")))
            return method

    def password_changed(self, user_id: str, at: datetime) -> None:
        with self._lock:
            self._accounts.setdefault(user_id, _Account()).password_set = at

    def methods(self, user_id: str) -> list[dict[str, Any]]:
        """What ``GET /users/{id}/authentication/methods`` answers: the password first."""
        with self._lock:
            account = self._accounts.get(user_id, _Account())
            password = {"@odata.type": "#microsoft.graph.passwordAuthenticationMethod",
                        "id": PASSWORD_METHOD_ID, "password": None,
                        "createdDateTime": graph_timestamp(
                            account.password_set or utc_now() - timedelta(days=400))}
            return [password] + [method.json() for method in account.methods]

    def held(self, user_id: str) -> list[SandboxMethod]:
        with self._lock:
            return list(self._accounts.get(user_id, _Account()).methods)

    def delete(self, user_id: str, segment: str, method_id: str) -> None:
        """``DELETE /users/{id}/authentication/{segment}/{method id}``: MethodRefused when
        Graph refuses it."""
        with self._lock:
            account = self._accounts.get(user_id, _Account())
            if segment == "passwordMethods":
                raise MethodRefused(400, "badRequest",
                                    "The password method cannot be deleted.")  # (sandbox)
            method = next((m for m in account.methods if m.id == method_id
                           and SEGMENTS.get(m.odata_type) == segment), None)
            if method is None:
                raise MethodRefused(404, "itemNotFound",
                                    f"Authentication method '{method_id}' was not found.")
            others = [m for m in account.methods if m is not method]
            if account.default == method.id and others:
                raise MethodRefused(400, "badRequest", DEFAULT_REFUSAL)
            if method.properties.get("phoneType") == "mobile" and any(
                    m.properties.get("phoneType") == "alternateMobile" for m in others):
                raise MethodRefused(400, "badRequest", MOBILE_REFUSAL)
            account.methods = others
            if account.default == method.id:
                account.default = None
            self.deleted.append((user_id, method.odata_type, method.id))


def _registration(user_id: str, upn: str, at: datetime, *, by_admin: bool,
                  reason: str) -> dict[str, Any]:
    """A directoryAudit record of a registration (Graph v1.0 directoryAudit resource)."""
    actor = ({"user": {"id": str(uuid.uuid4()), "displayName": "Helpdesk",
                       "userPrincipalName": "helpdesk@contoso.com", "ipAddress": "10.0.0.4"},
              "app": None} if by_admin else
             {"user": {"id": user_id, "displayName": None, "userPrincipalName": upn,
                       "ipAddress": "203.0.113.50"}, "app": None})
    return {
        "id": f"SSPR_{uuid.uuid4()}", "category": "UserManagement",
        "correlationId": str(uuid.uuid4()), "result": "success", "resultReason": reason,
        "activityDisplayName": ADMIN_REGISTERED if by_admin else USER_REGISTERED,
        "activityDateTime": graph_timestamp(at), "loggedByService": "Authentication Methods",
        "operationType": "Add", "initiatedBy": actor,
        "targetResources": [{"id": user_id, "displayName": None, "type": "User",
                             "userPrincipalName": upn, "groupType": None,
                             "modifiedProperties": []}],
        "additionalDetails": []}
