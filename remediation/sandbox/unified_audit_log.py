"""The unified audit log, as Exchange admin REST's Search-UnifiedAuditLog and
Get-AdminAuditLogConfig answer.

- Rows are what the cmdlet returns (a real export, blueteam0ps/det-eng-samples
  ``dataset/t1114.003_rule_mail_forward_same_dest.json`` and the ``t1564.008_*`` files):
  ``RecordType`` ``ExchangeAdmin``, ``CreationDate``, ``UserIds``, ``Operations``,
  ``AuditData`` (a JSON **string**), ``ResultIndex``, ``ResultCount``, ``Identity``. Inside
  AuditData: ``CreationTime`` (UTC, no offset), ``Id``, ``Operation``, ``UserId``,
  ``ObjectId`` and ``Parameters`` ``[{"Name", "Value"}]`` (every value a string). A
  New-InboxRule's ObjectId ends ``\\<rule name>``; Set-InboxRule's (and so Remove-InboxRule's)
  ``<mailbox guid>\\<RuleIdentity>``; ``Identity`` in Parameters is what the caller typed.
- Mailbox permissions (real records: blueteam0ps/det-eng-samples ``dataset/t1098.002_Mail
  Account Delegation full access permissions.json``, ``t1098.002_Mail account
  delegation-SendAs permission.csv``, ``t1098.002_user-reset_mailbox_full_access.json``;
  Set-Mailbox: ``t1114_Set-Mailbox-ForwardSMTPAddress.csv``): the ObjectId is the mailbox's
  Name (its Entra object id, or an older name such as ``stinger_1ea0eb0f93``), ``UserId``
  who ran the cmdlet; Parameters as typed: ``Add-MailboxPermission`` ``Identity`` (an
  address or an object id), ``AccessRights`` ``FullAccess``, ``User``, ``InheritanceType``;
  ``Add-RecipientPermission`` ``Identity``, ``Trustee``, ``AccessRights`` ``SendAs``;
  ``Set-Mailbox`` ``Identity`` ``<forest>/Microsoft Exchange Hosted Organizations/<org>/
  <Name>``. How a ``GrantSendOnBehalfTo`` value is kept is seen in no public record: the
  sandbox keeps the delegate as typed (*unconfirmed*).
- Search-UnifiedAuditLog (office-docs-powershell ``Search-UnifiedAuditLog.md``): StartDate
  and EndDate required; ResultSize at most 5,000 (100 by default); SessionCommand
  ``ReturnLargeSet`` or ``ReturnNextPreviewPage``; the same SessionId pages on until a call
  returns nothing. ``UserIds`` filters by who acted, ``ObjectIds`` by "the target object
  that was acted upon" (its AuditData ObjectId; ``*`` a wildcard). ``UserIds``,
  ``ObjectIds`` and ``Operations`` are String[]: a bare string is refused
  ("Must be an array ... a bare string binds ... as a scalar, which EXO rejects with an
  argument transformation error", CIPP-API ``Push-BECRun.ps1``).
- Ingestion off (``UnifiedAuditLogIngestionEnabled`` False, as Get-AdminAuditLogConfig reports
  it in Exchange Online): searches fail with BadRequest (T0pCyber/hawk#303: "all
  Search-UnifiedAuditLog calls silently return BadRequest"); the text is the sandbox's.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from remediation.sandbox.clock import parse_timestamp, utc_now
from remediation.sandbox.state import SandboxUser, TenantError

MAX_RESULT_SIZE = 5000
DEFAULT_RESULT_SIZE = 100
SESSION_COMMANDS = ("returnlargeset", "returnnextpreviewpage")
INGESTION_OFF = ("(sandbox wording; Hawk#303 reports only 'BadRequest') The unified audit log "
                 "is not being recorded in this organization.")
_TRANSFORMATION = "System.Management.Automation.ParameterBindingArgumentTransformationException"
# How the log names a mailbox's home in an ObjectId or an Identity it kept.
HOSTED = ("NAMPR01A001.PROD.OUTLOOK.COM/Microsoft Exchange Hosted Organizations/"
           "contoso.onmicrosoft.com")


@dataclass
class SandboxAuditLog:
    ingestion_enabled: bool = True
    records: list[dict[str, Any]] = field(default_factory=list)
    # SessionId -> how many matching rows earlier calls of that session returned.
    sessions: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, row: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.records.append(row)
        return row

    def rule_change(self, user: SandboxUser, operation: str, parameters: dict[str, str], *,
                    at: datetime | None = None, object_id: str | None = None,
                    actor: str | None = None) -> dict[str, Any]:
        """Record an inbox rule cmdlet the way the log keeps it (the rule's name ends the
        ObjectId of a New-InboxRule; give ``object_id`` for Set- and Remove-InboxRule)."""
        name = parameters.get("Name") or parameters.get("Identity") or ""
        return self.admin_cmdlet(
            object_id or (f"{HOSTED}/{user.id}\\{name}"), operation,
            [("AlwaysDeleteOutlookRulesBlob", "False"), ("Force", "False"),
             *parameters.items()],
            at=at, actor=actor or user.user_principal_name)

    def admin_cmdlet(self, object_id: str, operation: str,
                     parameters: list[tuple[str, str]], *, actor: str,
                     at: datetime | None = None,
                     app_id: str = "00000002-0000-0ff1-ce00-000000000000") -> dict[str, Any]:
        """Record an Exchange cmdlet ``actor`` ran on ``object_id`` (ExchangeAdmin, RecordType
        1), its ``parameters`` as typed (every value a string)."""
        when = at or utc_now()
        record_id = str(uuid.uuid4())
        audit = {
            "CreationTime": when.strftime("%Y-%m-%dT%H:%M:%S"), "Id": record_id,
            "Operation": operation, "OrganizationId": str(uuid.uuid4()), "RecordType": 1,
            "ResultStatus": "True", "UserKey": actor, "UserType": 2, "Version": 1,
            "Workload": "Exchange", "ClientIP": "203.0.113.7:51000", "ObjectId": object_id,
            "UserId": actor, "AppId": app_id, "ExternalAccess": False,
            "OrganizationName": "contoso.onmicrosoft.com",
            "Parameters": [{"Name": key, "Value": value} for key, value in parameters],
            "SessionId": str(uuid.uuid4())}
        return self.add({"RecordType": "ExchangeAdmin",
                         "CreationDate": when.strftime("%Y-%m-%dT%H:%M:%S"),
                         "UserIds": actor, "Operations": operation,
                         "AuditData": json.dumps(audit), "Identity": record_id,
                         "IsValid": True, "ObjectState": "Unchanged"})

    def config(self) -> list[dict[str, Any]]:
        """Get-AdminAuditLogConfig."""
        return [{"Name": "Admin Audit Log Settings", "AdminAuditLogEnabled": True,
                 "UnifiedAuditLogIngestionEnabled": self.ingestion_enabled,
                 "UnifiedAuditLogFirstOptInDate": None}]

    def search(self, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        """Search-UnifiedAuditLog."""
        start, end = _date(parameters, "StartDate"), _date(parameters, "EndDate")
        operations = _strings(parameters, "Operations")
        users = _strings(parameters, "UserIds")
        objects = _strings(parameters, "ObjectIds")
        size = _result_size(parameters.get("ResultSize"))
        command = parameters.get("SessionCommand")
        if command is not None and str(command).lower() not in SESSION_COMMANDS:
            raise TenantError(400, "BadRequest", f"Cannot bind parameter 'SessionCommand'. "
                              f"Cannot convert value \"{command}\" to type "
                              "\"Microsoft.Exchange.Management.SystemConfigurationTasks."
                              "UnifiedAuditSessionCommand\".", _TRANSFORMATION)
        if not self.ingestion_enabled:
            raise TenantError(400, "BadRequest", INGESTION_OFF)
        with self._lock:
            found = [row for row in self.records
                     if _matches(row, start, end, operations, users, objects)]
            session = parameters.get("SessionId")
            first = self.sessions.get(str(session), 0) if session else 0
            page = found[first:first + size]
            if session:
                self.sessions[str(session)] = first + len(page)
        return [{**row, "ResultIndex": first + index + 1, "ResultCount": len(found)}
                for index, row in enumerate(page)]


def _matches(row: dict[str, Any], start: datetime, end: datetime,
             operations: list[str] | None, users: list[str] | None,
             objects: list[str] | None) -> bool:
    at = parse_timestamp(str(row["CreationDate"]))
    if not start <= at <= end:
        return False
    if operations is not None and str(row["Operations"]).lower() not in operations:
        return False
    if users is not None and str(row["UserIds"]).lower() not in users:
        return False
    if objects is None:
        return True
    object_id = str(json.loads(row["AuditData"]).get("ObjectId") or "").lower()
    return any(_object_pattern(pattern).fullmatch(object_id) for pattern in objects)


def _object_pattern(value: str) -> re.Pattern[str]:
    """An ObjectIds value: the object id itself, ``*`` its only wildcard (the reference's
    SharePoint example puts one in front of a site URL)."""
    return re.compile(".*".join(re.escape(part) for part in value.split("*")))


def _date(parameters: dict[str, Any], name: str) -> datetime:
    value = parameters.get(name)
    if value in (None, ""):
        raise TenantError(400, "BadRequest", f"Cannot bind argument to parameter '{name}' "
                          "because it is null.",
                          "System.Management.Automation.ParameterBindingValidationException")
    try:
        # The reference's own example: "2018-05-06 14:30:00z" (UTC).
        text = str(value).strip().replace(" ", "T")
        return parse_timestamp(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
    except ValueError:
        raise TenantError(400, "BadRequest", f"Cannot process argument transformation on "
                          f"parameter '{name}'. Cannot convert value \"{value}\" to type "
                          "\"Microsoft.Exchange.ExchangeSystem.ExDateTime\".",
                          _TRANSFORMATION) from None


def _strings(parameters: dict[str, Any], name: str) -> list[str] | None:
    value = parameters.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TenantError(400, "BadRequest", f"Cannot process argument transformation on "
                          f"parameter '{name}'. Cannot convert the \"{value}\" value of type "
                          "\"System.String\" to type \"System.String[]\".", _TRANSFORMATION)
    return [item.lower() for item in value]


def _result_size(value: object) -> int:
    if value is None:
        return DEFAULT_RESULT_SIZE
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_RESULT_SIZE:
        return value
    raise TenantError(400, "BadRequest", f"Cannot validate argument on parameter 'ResultSize'. "
                      f"The {value} argument is greater than the maximum allowed range of "
                      f"{MAX_RESULT_SIZE}.",
                      "System.Management.Automation.ParameterBindingValidationException")


def hours_ago(hours: float) -> datetime:
    return utc_now() - timedelta(hours=hours)
