"""Sign-in methods: what each is, when it was registered, and what a case does with it.

Facts about Microsoft Graph v1.0 this relies on (sources in the adapter,
``remediation/adapters/graph_signin_methods.py``):

- ``GET /users/{id}/authentication/methods`` lists every method, each with ``@odata.type``;
  ``createdDateTime`` is given for some types and null or absent for others (phone, email,
  software OATH, older Authenticator registrations); a placeholder before 2000 counts as none.
- When Graph gives no time, the directory audit log may: "User registered security info" /
  "Admin registered security info" records, the method named only in ``resultReason`` ("User
  registered Mobile Phone SMS", "User registered Authenticator App with Notification and
  Code", "User registered Software OATH token", "Admin registered phone method for user"). The
  log keeps 7 days on Entra ID Free and 30 on P1/P2.
- Phone and email methods have fixed ids (one per phone type): a number registered again after
  a removal comes back under the same id, so a method dated inside the window by the audit log
  carries that time in its key, and a new registration is a new key.
- Secrets (a Temporary Access Pass, an OATH secret key, key material) are never copied: each
  type's snapshot is an allow-list of what a person needs to register the method again, the
  phone number masked (``mask_phone``).

Pure: the adapter reads, this decides.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from remediation.domain.leftovers import CompromiseWindow, Disposition, Leftover, mask_phone
from remediation.domain.requests import parse_evidence_time

KIND = "sign-in method"
PASSWORD = "passwordAuthenticationMethod"  # noqa: S105 (a type name)
PHONE = "phoneAuthenticationMethod"
REGISTERED = ("User registered security info", "Admin registered security info")
AUDIT_RETENTION = "the directory audit log keeps 7 days on Entra ID Free, 30 on P1/P2"
SECURITY_INFO = ("the user in My Sign-Ins (Security info), or an authentication administrator "
                 "in the Entra admin center (the user's Authentication methods)")


@dataclass(frozen=True)
class MethodKind:
    """A method type: the collection Graph v1.0 deletes it from (``{segment}/{id}``; None:
    v1.0 deletes none), what a person calls it, its category in the audit log's words, and the
    properties a snapshot keeps (Graph name → snapshot name), never a secret."""

    segment: str | None
    label: str
    category: str
    keeps: tuple[tuple[str, str], ...] = ()


KINDS: dict[str, MethodKind] = {
    PHONE: MethodKind("phoneMethods", "phone", "phone",
                      (("phoneNumber", "phone_number"), ("phoneType", "phone_type"))),
    "emailAuthenticationMethod": MethodKind("emailMethods", "email", "email",
                                            (("emailAddress", "email"),)),
    "softwareOathAuthenticationMethod": MethodKind(
        "softwareOathMethods", "authenticator app (OATH code)", "oath"),
    "microsoftAuthenticatorAuthenticationMethod": MethodKind(
        "microsoftAuthenticatorMethods", "Microsoft Authenticator", "authenticator",
        (("displayName", "device"), ("deviceTag", "device_tag"),
         ("phoneAppVersion", "app_version"))),
    "fido2AuthenticationMethod": MethodKind(
        "fido2Methods", "security key", "fido",
        (("displayName", "name"), ("model", "model"), ("aaGuid", "aa_guid"))),
    "windowsHelloForBusinessAuthenticationMethod": MethodKind(
        "windowsHelloForBusinessMethods", "Windows Hello for Business", "hello",
        (("displayName", "device"), ("keyStrength", "key_strength"))),
    "temporaryAccessPassAuthenticationMethod": MethodKind(
        "temporaryAccessPassMethods", "Temporary Access Pass", "pass",
        (("startDateTime", "start"), ("lifetimeInMinutes", "lifetime_minutes"),
         ("isUsableOnce", "usable_once"))),
    "platformCredentialAuthenticationMethod": MethodKind(
        "platformCredentialMethods", "platform credential (Platform SSO)", "platform",
        (("displayName", "device"), ("platform", "platform"), ("keyStrength", "key_strength"))),
    "externalAuthenticationMethod": MethodKind(
        "externalAuthenticationMethods", "external authentication method", "external",
        (("displayName", "name"), ("configurationId", "configuration_id"))),
    PASSWORD: MethodKind(None, "password", "password"),
}


@dataclass(frozen=True)
class SignInMethod:
    """One method as Graph lists it: its type (``phoneAuthenticationMethod``), id,
    ``createdDateTime`` (None when Graph gives none), and the kept properties (allow-listed,
    the phone number already masked)."""

    odata_type: str
    id: str
    created: datetime | None
    details: Mapping[str, Any]

    @property
    def kind(self) -> MethodKind:
        return KINDS.get(self.odata_type) or MethodKind(None, self.odata_type, "other")

    @property
    def phone_type(self) -> str | None:
        value = self.details.get("phone_type")
        return str(value) if value else None

    @property
    def name(self) -> str:
        """What a person reads: never a secret, the phone number masked."""
        kind, details = self.kind, self.details
        if self.odata_type == PHONE:
            return f"phone {details.get('phone_number') or '(no number)'} " \
                   f"({self.phone_type or 'unknown type'})"
        if self.odata_type == "emailAuthenticationMethod":
            return f"email {details.get('email') or '(no address)'}"
        if "device" in details:
            return f"{kind.label} on {details['device'] or 'an unnamed device'}"
        if details.get("name"):
            model = f" ({details['model']})" if details.get("model") else ""
            return f"{kind.label} {details['name']}{model}"
        return kind.label

    def undo(self) -> str:
        """What a person does to restore the method after its removal."""
        details, who = self.details, SECURITY_INFO
        confirm = " if the user confirms it was theirs"
        if self.odata_type == PHONE:
            return (f"add the phone {details.get('phone_number')} ({self.phone_type}) again"
                    f"{confirm}: {who}, with the full number from the user")
        if self.odata_type == "microsoftAuthenticatorAuthenticationMethod":
            device = details.get("device") or "the user's phone"
            return (f"re-register the Authenticator app on {device}{confirm}: "
                    "the user adds it again in My Sign-Ins (Security info)")
        if self.odata_type == "temporaryAccessPassAuthenticationMethod":
            return ("a Temporary Access Pass cannot be restored: an authentication "
                    "administrator issues a new one if the user still needs one")
        if self.odata_type == "emailAuthenticationMethod":
            return f"add the email {details.get('email')} again{confirm}: {who}"
        return f"register the {self.name} again{confirm}: {who}"

    def snapshot(self, added: datetime | None, added_from: str) -> dict[str, Any]:
        """Enough to register it again, never a secret."""
        return {"type": self.odata_type, "id": self.id,
                "registered": added.isoformat() if added else None,
                "registered_from": added_from, **self.details}


def method_from_json(raw: Mapping[str, Any]) -> SignInMethod | None:
    """A listed method; None for an item without a usable id or type."""
    odata = raw.get("@odata.type")
    method_id = raw.get("id")
    if not isinstance(odata, str) or not isinstance(method_id, str) or not method_id:
        return None
    odata_type = odata.rsplit(".", 1)[-1]
    kind = KINDS.get(odata_type)
    keeps = kind.keeps if kind is not None else (("displayName", "name"),)
    details: dict[str, Any] = {}
    for source, name in keeps:
        value = raw.get(source)
        if isinstance(value, (str, int, bool)) and not isinstance(value, float):
            details[name] = mask_phone(str(value)) if name == "phone_number" else value
    return SignInMethod(odata_type, method_id, parse_evidence_time(raw.get("createdDateTime")),
                        details)


@dataclass(frozen=True)
class Registration:
    """A "User/Admin registered security info" record: when, and its ``resultReason``."""

    at: datetime
    reason: str

    def names(self, method: SignInMethod) -> bool:
        """Whether this record may be the registration of ``method`` (same category; a phone
        record that says which phone type, only that type)."""
        category, phone_type = _category(self.reason)
        return category == method.kind.category and (
            phone_type is None or phone_type == method.phone_type)

    def says_which(self, method: SignInMethod) -> bool:
        """Whether it names ``method``'s own phone type (no other method can be meant)."""
        phone_type = _category(self.reason)[1]
        return phone_type is not None and phone_type == method.phone_type


def registration_from_json(raw: Mapping[str, Any]) -> Registration | None:
    """A directoryAudit record of a successful registration; None for anything else."""
    if raw.get("activityDisplayName") not in REGISTERED or raw.get("result") not in (
            None, "success"):
        return None
    at = parse_evidence_time(raw.get("activityDateTime"))
    reason = raw.get("resultReason")
    if at is None or not isinstance(reason, str):
        return None
    return Registration(at, reason)


def _category(reason: str) -> tuple[str | None, str | None]:
    """The method category (and phone type) a ``resultReason`` names."""
    text = reason.lower()
    if "phone" in text or "sms" in text:
        if "alternate" in text:
            return "phone", "alternateMobile"
        if "office" in text:
            return "phone", "office"
        return "phone", "mobile" if "mobile" in text else None
    for words, category in ((("email",), "email"), (("oath", "software token"), "oath"),
                            (("authenticator app",), "authenticator"),
                            (("fido", "passkey", "security key"), "fido"),
                            (("temporary access pass",), "pass"),
                            (("windows hello",), "hello")):
        if any(word in text for word in words):
            return category, None
    return None, None


def judge(methods: Sequence[SignInMethod], registrations: Iterable[Registration],
          window: CompromiseWindow, *, remove: bool) -> list[Leftover]:
    """Each method with its disposition, in an order Graph can delete them in (a ``mobile``
    phone last: it cannot go while an ``alternateMobile`` one exists).

    Never the password. Registered inside ``window`` (by ``createdDateTime``, else by the
    latest registration record that names it): removed (``remove``) or reported; before it:
    kept. A method no time can be found for, or that a record in the window names only
    ambiguously (two phones, one record without a phone type), is reported: removing it might
    lock the owner out.
    """
    records = list(registrations)
    found = [_judged(method, methods, records, window, remove) for method in methods]
    return sorted(found, key=lambda leftover: leftover.snapshot.get("phone_type") == "mobile")


def _judged(method: SignInMethod, methods: Sequence[SignInMethod],
            records: list[Registration], window: CompromiseWindow,
            remove: bool) -> Leftover:
    opens = f"the compromise window opened {_when(window.opens)}"
    if method.odata_type == PASSWORD:
        return _leftover(method, Disposition.KEEP, "the password is never removed: the case "
                         "resets it instead", method.created, "createdDateTime")
    if method.created is not None:
        added, source, specific = method.created, "createdDateTime", True
        told = f"registered {_when(added)} (createdDateTime)"
    else:
        naming = [record for record in records if record.names(method)]
        if not naming:
            return _leftover(method, Disposition.REPORT, (
                f"registration time unknown: Graph gives a {method.kind.label} no "
                "createdDateTime and the directory audit log holds no registration of one "
                f"({AUDIT_RETENTION}); not removed, as it may be the owner's: ask the user "
                "whether it is theirs"), None, "unknown")
        latest = max(naming, key=lambda record: record.at)
        added, source = latest.at, "audit log"
        alike = [m for m in methods if m.created is None and m.kind == method.kind]
        specific = latest.says_which(method) or len(alike) == 1
        told = f"registered {_when(added)} (directory audit log: '{latest.reason}')"
    if not window.contains(added):
        return _leftover(method, Disposition.KEEP, f"{told}, before {opens}", added, source)
    if not specific:
        return _leftover(method, Disposition.REPORT, (
            f"{told}, inside the window, but the record does not say which of the account's "
            f"{method.kind.label} methods it was; not removed: ask the user"),
            added, source, dated_key=True)
    if remove:
        return _leftover(method, Disposition.REMOVE, f"{told}, inside {opens}", added, source,
                         dated_key=source == "audit log")
    return _leftover(method, Disposition.REPORT, f"{told}, inside {opens}; SIGNIN_CLEANUP="
                     "report: not removed", added, source, dated_key=source == "audit log")


def _leftover(method: SignInMethod, disposition: Disposition, why: str,
              added: datetime | None, added_from: str, *, dated_key: bool = False,
              ) -> Leftover:
    # A fixed-id method (phone, email) registered again keeps its id: the time of the
    # registration in the window tells the new one from the one the case saw.
    key = f"{method.id}@{added.isoformat()}" if dated_key and added is not None else method.id
    return Leftover(KIND, key, method.name, disposition, why, added, added_from,
                    method.undo() if disposition is not Disposition.KEEP else "",
                    method.snapshot(added, added_from))


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"
