"""Administrative units: their members, the Graph routes that read them, and what a role
assigned at an administrative unit's scope lets the app do.

Routes (sandbox/admin_unit_routes.py; Graph v1.0, directory management, "Get
administrativeUnit", "List members", "Get a member": microsoft-graph-docs-contrib
api-reference/v1.0/api/administrativeunit-get.md, administrativeunit-list-members.md,
administrativeunit-get-members.md):

- ``GET /directory/administrativeUnits/{id}``: the unit, or ``404 Request_ResourceNotFound``;
- ``GET /directory/administrativeUnits/{id}/members/{member-id}``: the member (a user), or
  ``404 Request_ResourceNotFound`` when it is not one (Graph's answer for a key its collection
  does not hold);
- ``GET /directory/administrativeUnits/{id}/members/microsoft.graph.user``: the user members
  (the documented OData cast), paged.

Each needs ``AdministrativeUnit.Read.All`` or ``Directory.Read.All`` (application); the app
holds the second (sandbox/app_rights.py).

What a role at ``/administrativeUnits/{id}`` allows (entra-docs
docs/identity/role-based-access-control/admin-units-assign-roles.md): it applies only to the
unit's members; service principals may hold it, but "won't be able to use a role assignment
scoped to an administrative unit unless they're also assigned ... the Directory Readers role
(or another role that includes read permissions) at a tenant scope"; and its password resets
reach only members without administrator roles (the same page, and admin-units-faq-
troubleshoot.yml: "an administrative unit-scoped administrator can't reset the password of a
user who's assigned to a role with an organization-wide scope"). A unit's members are
assigned directly: a group in a unit does not bring its members (the same FAQ).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

AU_SCOPE_PREFIX = "/administrativeUnits/"
DIRECTORY_READERS = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"


@dataclass
class AdministrativeUnit:
    id: str
    display_name: str
    members: set[str] = field(default_factory=set)  # user object ids

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "displayName": self.display_name, "description": None,
                "visibility": None, "membershipType": "Assigned",
                "isMemberManagementRestricted": False}


class AdministrativeUnits:
    """The tenant's units. Thread-safe: tests change them while the server reads them."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._units: dict[str, AdministrativeUnit] = {}

    def add(self, unit_id: str, display_name: str, members: set[str] | None = None) -> None:
        with self._lock:
            self._units[unit_id] = AdministrativeUnit(unit_id, display_name, set(members or ()))

    def add_member(self, unit_id: str, user_id: str) -> None:
        with self._lock:
            self._units[unit_id].members.add(user_id)

    def remove_member(self, unit_id: str, user_id: str) -> None:
        with self._lock:
            self._units[unit_id].members.discard(user_id)

    def unit(self, unit_id: str) -> AdministrativeUnit | None:
        with self._lock:
            return self._units.get(unit_id)

    def holds(self, unit_id: str, user_id: str) -> bool:
        with self._lock:
            unit = self._units.get(unit_id)
            return unit is not None and user_id in unit.members


def scope_unit(scope: str) -> str | None:
    """The unit id of a ``directoryScopeId`` ``/administrativeUnits/{id}``, else None."""
    return scope[len(AU_SCOPE_PREFIX):] if scope.startswith(AU_SCOPE_PREFIX) else None
