"""What `remediation doctor` checks of the least privilege the operator chose
(README, "Permissions (least privilege)"; remediation/permissions.py has the options).

With ``SCOPE_ADMINISTRATIVE_UNIT_ID``:

- the unit is read (``GET /directory/administrativeUnits/{id}``): it exists, and the app may
  read it, as the scope guardrail reads its membership for every case;
- the roles come from the app's role assignments, never from the token's ``wids``, which
  lists tenant-wide roles only: User Administrator must be assigned at
  ``/administrativeUnits/{id}``, Directory Readers tenant-wide (an AU-scoped role needs it);
  User Administrator assigned tenant-wide as well is ``info``: broader than chosen.

With ``MAILBOX_ACCESS=exchange-rbac``: the Graph mailbox permissions the Exchange RBAC for
Applications roles replace are not needed (never ``FAIL``), a token that still carries one is
``info`` (the Entra grant reaches every mailbox whatever the Exchange scope says), and one
member's inbox rules and mail folders are read, which only the scoped roles allow.
"""

from collections.abc import Sequence
from typing import Protocol

from remediation.permissions import (
    EXCHANGE_APPLICATION_ROLES,
    TENANT_WIDE,
    USER_ADMINISTRATOR_ID,
    directory_roles,
)
from remediation.service.doctor import Finding, NoMember, Refused, Status, Unreachable

EXCHANGE_SCRIPT = "pwsh infra/grant-exchange-scope.ps1"
UNIT_CHECK = "read the administrative unit"
MAILBOX_CHECK = "read a member's inbox rules and folders (Exchange RBAC scope)"
REMOVE_TENANT_WIDE = ("remove the tenant-wide User Administrator assignment (Entra admin "
                      "center, Roles and administrators, User Administrator, Assignments)")


class ScopePreflight(Protocol):
    """The reads of remediation/service/doctor.py's Preflight this module uses."""

    async def role_assignments_at(self, principal_id: str) -> frozenset[tuple[str, str]]: ...

    async def administrative_unit(self, unit_id: str) -> str: ...

    async def unit_mailbox(self, unit_id: str) -> str: ...


def replaced_permissions(mailbox_access: str) -> frozenset[str]:
    """The Graph permissions Exchange RBAC for Applications stands in for, when chosen."""
    if mailbox_access != "exchange-rbac":
        return frozenset()
    return frozenset(role.replaces for role in EXCHANGE_APPLICATION_ROLES)


def broader_mailbox_grant(name: str) -> Finding:
    """A Graph mailbox permission still granted in Entra although Exchange RBAC was chosen."""
    return Finding(f"permission {name}", Status.INFO,
                   "broader than chosen: granted tenant-wide in Graph (MAILBOX_ACCESS="
                   "exchange-rbac); Entra and Exchange grants add up, so it still reaches "
                   "every mailbox",
                   f"remove {name} from the app (Entra admin center, Enterprise applications, "
                   "the app, Permissions)")


async def scoped_role_findings(preflight: ScopePreflight, principal: str | None, unit: str,
                               grant: str) -> list[Finding]:
    """The directory roles of the AU-scoped option, from the app's role assignments."""
    needed = directory_roles(unit)
    fix = f"{grant.replace('grant-permissions.sh ', f'grant-permissions.sh --scope-au {unit} ')}"
    if principal is None:
        return [Finding(f"role {role.name}", Status.UNVERIFIED, "not seen: no token names the "
                        "app's service principal (oid), and the token's wids would not show a "
                        "role at an administrative unit's scope", fix) for role in needed]
    try:
        held = {(role.lower(), scope) for role, scope in
                await preflight.role_assignments_at(principal)}
    except (Refused, Unreachable) as error:
        answer = (f"{error.status} {error.code}".strip() if isinstance(error, Refused)
                  else error.reason)
        return [Finding(f"role {role.name}", Status.UNVERIFIED, "not seen: the app's role "
                        f"assignments could not be read ({answer})", fix) for role in needed]
    findings = []
    for role in needed:
        where = "tenant-wide" if role.scope == TENANT_WIDE else f"at {role.scope}"
        if (role.template_id, role.scope) in held:
            findings.append(Finding(f"role {role.name}", Status.OK,
                                    f"assigned {where} (roleAssignments)"))
        else:
            findings.append(Finding(f"role {role.name}", Status.FAIL,
                                    f"not assigned {where} (roleAssignments)", fix))
    if (USER_ADMINISTRATOR_ID, TENANT_WIDE) in held:
        findings.append(Finding("broader than chosen: User Administrator", Status.INFO,
                                "also assigned tenant-wide: Graph lets the app manage accounts "
                                f"outside administrative unit {unit} (the robot itself never "
                                "touches them)", REMOVE_TENANT_WIDE))
    return findings


async def scope_reads(preflight: ScopePreflight, unit: str | None, mailbox_access: str,
                      grant: str) -> list[Finding]:
    """The unit's read, and the scoped mailbox read when Exchange RBAC was chosen."""
    if unit is None:
        return []
    findings = [await _unit_read(preflight, unit, grant)]
    if mailbox_access == "exchange-rbac":
        findings.append(await _mailbox_read(preflight, unit))
    return findings


def mailbox_permission_findings(replaced: Sequence[str], mailbox: Finding | None,
                                token_roles: frozenset[str] | None) -> list[Finding]:
    """Each replaced Graph permission: broader than chosen when still in the token; else
    granted through Exchange, as far as the scoped read shows."""
    findings = []
    for name in replaced:
        if token_roles is not None and name in token_roles:
            findings.append(broader_mailbox_grant(name))
        elif mailbox is not None and mailbox.status is Status.OK:
            findings.append(Finding(f"permission {name}", Status.OK, "not needed in Graph: "
                                    "Exchange RBAC for Applications grants it for the unit's "
                                    f"mailboxes (the read '{mailbox.check}' passed)"))
        else:
            findings.append(Finding(f"permission {name}", Status.UNVERIFIED, "not needed in "
                                    "Graph; its Exchange RBAC grant is not seen: the read "
                                    f"'{MAILBOX_CHECK}' did not pass", "apply that read's fix"))
    return findings


async def _unit_read(preflight: ScopePreflight, unit: str, grant: str) -> Finding:
    try:
        name = await preflight.administrative_unit(unit)
    except Refused as error:
        if error.status == 404:
            return Finding(UNIT_CHECK, Status.FAIL, f"no administrative unit {unit}: every "
                           "case would escalate out_of_scope",
                           "set SCOPE_ADMINISTRATIVE_UNIT_ID to the unit's object id (Entra "
                           "admin center, Roles and administrators, Admin units)")
        return Finding(UNIT_CHECK, Status.FAIL, f"refused: every case will escalate because "
                       f"Graph answered {error.status} {error.code}".strip(),
                       f"grant Directory.Read.All (Microsoft Graph): {grant}")
    except Unreachable as error:
        return Finding(UNIT_CHECK, Status.FAIL, f"no answer: {error.reason}",
                       "check GRAPH_ENDPOINT and that this machine reaches it")
    return Finding(UNIT_CHECK, Status.OK, f"{unit} ({name}): its membership is readable, "
                   "only its direct members are ever changed")


async def _mailbox_read(preflight: ScopePreflight, unit: str) -> Finding:
    fix = (f"an Exchange administrator runs {EXCHANGE_SCRIPT} -AppId <client id> -ObjectId "
           f"<principal id> -AdministrativeUnitId {unit} (a new assignment may take up to two "
           "hours to apply)")
    try:
        seen = await preflight.unit_mailbox(unit)
    except NoMember:
        return Finding(MAILBOX_CHECK, Status.UNVERIFIED, f"administrative unit {unit} has no "
                       "user member whose mailbox could be read", "add the accounts the robot "
                       "may secure to the unit, then run doctor again")
    except Refused as error:
        return Finding(MAILBOX_CHECK, Status.FAIL, f"Graph answered {error.status} "
                       f"{error.code}".strip() + (f": {error.detail}" if error.detail else ""),
                       fix)
    except Unreachable as error:
        return Finding(MAILBOX_CHECK, Status.FAIL, f"no answer: {error.reason}",
                       "check GRAPH_ENDPOINT and that this machine reaches it")
    return Finding(MAILBOX_CHECK, Status.OK, seen)
