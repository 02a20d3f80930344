"""The sandbox tenant's directory audit log (Graph v1.0 ``/auditLogs/directoryAudits``).

What "List directoryAudits" documents (microsoft-graph-docs-contrib
``api-reference/v1.0/api/directoryaudit-list.md`` and the directoryAudit resource page):
``$filter`` on ``activityDisplayName`` (eq, startswith), ``activityDateTime`` (eq, ge, le; an
unquoted DateTimeOffset), ``loggedByService`` (eq), ``initiatedBy/user/id``,
``initiatedBy/user/displayName``, ``initiatedBy/user/userPrincipalName``,
``initiatedBy/app/appId``, ``initiatedBy/app/appDisplayName`` (eq), ``startswith`` on
``initiatedBy/user/userPrincipalName``, and ``targetResources/any(t: t/id eq '…')`` (or
``t/displayName``), joined by ``and``. Anything else, a quoted time among them, is answered
``400 BadRequest`` "Invalid filter clause" (the words Graph PowerShell users quote:
microsoft-graph-docs#17309, wazuh#31451). Records come newest first, and only those younger
than the tenant's retention (7 days on Entra ID Free, 30 on P1/P2; ``retention``).

Records are stored in Graph's JSON shape; ``consent_record`` builds a "Consent to
application" one (the app's service principal as target, ``modifiedProperties`` values as
JSON-encoded strings). Other record kinds (sign-in methods registered, ...) go in as
``add(record)``.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from remediation.sandbox.clock import graph_timestamp, parse_timestamp, utc_now

Record = dict[str, Any]
Test = Callable[[Record], bool]

_STRING = r"'((?:[^']|'')*)'"
_EQ_FIELDS = {
    "activitydisplayname": ("activityDisplayName",),
    "loggedbyservice": ("loggedByService",),
    "initiatedby/user/id": ("initiatedBy", "user", "id"),
    "initiatedby/user/displayname": ("initiatedBy", "user", "displayName"),
    "initiatedby/user/userprincipalname": ("initiatedBy", "user", "userPrincipalName"),
    "initiatedby/app/appid": ("initiatedBy", "app", "appId"),
    "initiatedby/app/appdisplayname": ("initiatedBy", "app", "displayName"),
}
_STARTSWITH_FIELDS = ("activitydisplayname", "initiatedby/user/userprincipalname")
_EQ = re.compile(rf"^([\w/]+)\s+eq\s+{_STRING}$", re.IGNORECASE)
_STARTSWITH = re.compile(rf"^startswith\(\s*([\w/]+)\s*,\s*{_STRING}\s*\)$", re.IGNORECASE)
_TIME = re.compile(
    r"^activityDateTime\s+(eq|ge|le)\s+(\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:\d{2}))$",
    re.IGNORECASE)
_TARGET = re.compile(rf"^targetResources/any\(\s*(\w+)\s*:\s*\1/(id|displayName)\s+eq\s+{_STRING}"
                     r"\s*\)$", re.IGNORECASE)
INVALID_FILTER = "Invalid filter clause"


class AuditLog:
    """Directory audit records, in Graph's shape. Thread-safe."""

    def __init__(self, retention: timedelta = timedelta(days=30)) -> None:
        self.retention = retention
        self._records: list[Record] = []
        self._lock = threading.RLock()

    def add(self, record: Record) -> Record:
        with self._lock:
            self._records.append(copy.deepcopy(record))
        return record

    def records(self) -> list[Record]:
        with self._lock:
            return copy.deepcopy(self._records)

    def query(self, clause: str | None, now: datetime | None = None) -> list[Record] | None:
        """The records ``clause`` selects, newest first, within the retention; None when
        Graph would refuse the clause."""
        tests = [] if clause is None else parse_filter(clause)
        if tests is None:
            return None
        oldest = (now or utc_now()) - self.retention
        with self._lock:
            kept = [record for record in self._records
                    if _time(record) >= oldest and all(test(record) for test in tests)]
        kept.sort(key=_time, reverse=True)
        return copy.deepcopy(kept)


def parse_filter(clause: str) -> list[Test] | None:
    """One test per ``and``-joined part; None for a clause Graph refuses."""
    tests: list[Test] = []
    for part in re.split(r"\s+and\s+", clause.strip(), flags=re.IGNORECASE):
        test = _part(part.strip())
        if test is None:
            return None
        tests.append(test)
    return tests


def _part(part: str) -> Test | None:
    match = _TIME.match(part)
    if match is not None:
        try:
            moment = parse_timestamp(match.group(2))
        except ValueError:
            return None
        operator = match.group(1).lower()
        return lambda record: {"eq": _time(record) == moment, "ge": _time(record) >= moment,
                               "le": _time(record) <= moment}[operator]
    match = _EQ.match(part)
    if match is not None and match.group(1).lower() in _EQ_FIELDS:
        path, wanted = _EQ_FIELDS[match.group(1).lower()], _value(match.group(2))
        return lambda record: (_at(record, path) or "").lower() == wanted
    match = _STARTSWITH.match(part)
    if match is not None and match.group(1).lower() in _STARTSWITH_FIELDS:
        path, prefix = _EQ_FIELDS[match.group(1).lower()], _value(match.group(2))
        return lambda record: (_at(record, path) or "").lower().startswith(prefix)
    match = _TARGET.match(part)
    if match is not None:
        field, wanted = ("id" if match.group(2).lower() == "id" else "displayName",
                         _value(match.group(3)))
        return lambda record: any(
            str(target.get(field) or "").lower() == wanted
            for target in record.get("targetResources") or [] if isinstance(target, dict))
    return None


def _value(raw: str) -> str:
    return raw.replace("''", "'").lower()


def _at(record: Record, path: tuple[str, ...]) -> str | None:
    value: Any = record
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None


def _time(record: Record) -> datetime:
    return parse_timestamp(str(record["activityDateTime"]))


def consent_record(*, user_id: str, upn: str, sp_id: str, sp_name: str, app_id: str,
                   at: datetime, grant: dict[str, Any], tenant_wide: bool = False,
                   old_scope: str | None = None) -> Record:
    """A "Consent to application" record as Graph lists it: initiated by the account, the
    app's service principal as target, the consent's context and the grant (before and
    after) in ``modifiedProperties`` as JSON-encoded strings."""
    def entry(scope: str) -> str:
        return (f"[Id: {grant['id']}, ClientId: {grant['clientId']}, PrincipalId: "
                f"{grant.get('principalId') or ''}, ResourceId: {grant['resourceId']}, "
                f"ConsentType: {grant['consentType']}, Scope: {scope}, CreatedDateTime: , "
                "LastModifiedDateTime ]")

    before = f"[{entry(old_scope)}]" if old_scope is not None else "[]"
    permissions = f"{before} => [{entry(grant['scope'])}]; "

    def prop(name: str, value: str) -> dict[str, Any]:
        return {"displayName": name, "oldValue": None, "newValue": json.dumps(value)}

    return {
        "id": f"Directory_{uuid.uuid4()}_{uuid.uuid4().hex[:5].upper()}_{uuid.uuid4().int % 10**9}",
        "category": "ApplicationManagement",
        "correlationId": str(uuid.uuid4()),
        "result": "success",
        "resultReason": "",
        "activityDisplayName": "Consent to application",
        "activityDateTime": graph_timestamp(at),
        "loggedByService": "Core Directory",
        "operationType": "Assign",
        "initiatedBy": {"app": None, "user": {
            "id": user_id, "displayName": None, "userPrincipalName": upn,
            "ipAddress": "203.0.113.50", "userType": None, "homeTenantId": None,
            "homeTenantName": None}},
        "targetResources": [{
            "id": sp_id, "displayName": sp_name, "type": "ServicePrincipal",
            "userPrincipalName": None, "groupType": None,
            "modifiedProperties": [
                prop("ConsentContext.IsAdminConsent", str(tenant_wide)),
                prop("ConsentContext.IsAppOnly", "False"),
                prop("ConsentContext.OnBehalfOfAll", str(tenant_wide)),
                prop("ConsentContext.Tags", "WindowsAzureActiveDirectoryIntegratedApp"),
                prop("ConsentAction.Permissions", permissions),
                prop("TargetId.ServicePrincipalNames", app_id),
            ]}],
        "additionalDetails": [{"key": "User-Agent", "value": "Mozilla/5.0"}],
    }
