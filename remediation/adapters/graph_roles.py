"""Every directory role an account holds or may activate, read from Microsoft Graph.

``transitiveMemberOf`` lists only active, tenant-wide, built-in roles (as ``directoryRole``
objects). Everything else is under role management (Graph v1.0,
https://learn.microsoft.com/graph/api/rbacapplication-list-roleassignments and
https://learn.microsoft.com/graph/api/rbacapplication-list-roleeligibilityscheduleinstances):

- ``GET /roleManagement/directory/roleAssignments?$filter=principalId eq '{id}'``: active
  assignments at any scope (``directoryScopeId`` ``/`` or ``/administrativeUnits/{id}``), of
  built-in roles (``roleDefinitionId`` = template id) and custom ones;
- ``GET /roleManagement/directory/roleEligibilityScheduleInstances?$filter=...``: PIM
  eligibility. A tenant without Entra ID P2 answers ``400 AadPremiumLicenseRequired``: no
  PIM data, not a failure;
- both again for every role-assignable group (``isAssignableToRole``, returned by default on
  groups) the account is a transitive member of: a role held through such a group names the
  group as ``principalId``;
- PIM for Groups: ``GET /identityGovernance/privilegedAccess/group/eligibilityScheduleInstances
  ?$filter=principalId eq '{id}'`` (membership or ownership the account may activate) and
  ``.../assignmentScheduleInstances`` likewise (active through PIM; an ownership is not in
  ``transitiveMemberOf``). Each group named there is asked about as above: an eligible member
  or owner of a group that holds (or may activate) a role can give itself the role. Graph
  requires the ``principalId`` (or ``groupId``) filter on both lists.

What a PIM read may answer a tenant without PIM, and what the guardrails make of it
(``pim_shape``; the sandbox plays each shape per read, remediation/sandbox/pim_shapes.py):

- ``AadPremiumLicenseRequired`` (400, or the code inside another status's message, or the
  older words "The tenant needs an AAD Premium 2 license."): **no PIM data**, the account has
  no eligibility. Microsoft's licensing page ("When a license expires for PIM",
  entra-docs ``docs/id-governance/licensing-fundamentals.md``,
  https://learn.microsoft.com/entra/id-governance/licensing-fundamentals): without an Entra
  ID P2, ID Governance or trial licence, PIM's Graph interfaces "will no longer be available
  for users to activate privileged roles" and "Eligible role assignments of Microsoft Entra
  roles are removed"; every user eligible for PIM for Groups needs one of those licences
  (entra-docs ``groups-assign-member-owner.md``). So eligibility cannot be used where the
  licence is refused. Public tools read the code the same way: maester365/maester#1421
  (roleEligibilityScheduleInstances), Microsoft365DSC (``[AadPremiumLicenseRequired]`` or
  "The tenant needs an AAD Premium": "does not meet license requirement"),
  microsoft/EntraExporter#61 (the older words from a P1 tenant).
- "The tenant has not onboarded to PIM." (``UnauthorizedAccessException``): **fails
  closed**. It is PIM for Azure resources' answer (legacy ``privilegedAccess/azureResources``
  and ARM, EntraExporter's ``IgnoreError`` for that list only), given by tenants that do use
  PIM (MicrosoftDocs/azure-docs#50033 "despite PIM being onboarded";
  Azure/azure-docs-powershell-azuread#414: ``aadRoles`` answered while ``azureResources``
  said this), while EntraExporter#61 shows a tenant without P2 answering the licence words
  instead. Graph documents the PIM for Groups lists as callable for groups that are not
  onboarded ("Onboarding groups to PIM for Groups",
  https://learn.microsoft.com/graph/api/resources/privilegedidentitymanagement-for-groups-api-overview).
  On our reads it proves no absence of eligibility.
- ``ResourceTypeNotSupported``: **fails closed**. No public sample of it on these lists from
  a tenant without P2 was found; the code says the service did not take the kind of request,
  not that the tenant has no eligibility.
- Any other error fails closed too (raises, and the guardrails escalate): so does a page
  without a ``value`` list (GraphCaller.get_all). When in doubt, a person decides.

``remediation doctor`` probes each of these reads and says which of "readable", "no PIM data
in this tenant" or "refused: every case will escalate because ..." cases will meet
(adapters/preflight.py, service/doctor.py).

Protected groups (``PROTECTED_GROUP_IDS``): active membership, direct or nested, is in
``transitiveMemberOf``. Ownership is not (an owner may add itself as a member at will): each
protected group's owners are read, ``GET /groups/{id}/owners`` (Graph v1.0 "List group
owners", https://learn.microsoft.com/graph/api/group-list-owners, least privileged
application permission ``GroupMember.Read.All``). ``GET /users/{id}/ownedObjects`` would
answer from the account's side, but Graph v1.0 "List ownedObjects"
(https://learn.microsoft.com/graph/api/user-list-ownedobjects) supports no application
permission. A group PIM for Groups lets the account join or own (eligibly or actively) counts
when it is a protected group or is nested in one: the groups nested in each protected group,
``GET /groups/{id}/transitiveMembers/microsoft.graph.group`` (Graph v1.0 "List group
transitive members", whose permission table lists ``GroupMember.Read.All`` for applications;
"List group transitive memberOf" lists only GroupMember.ReadBasic.All, Group.ReadBasic.All and
Directory.Read.All, none of which the app holds), read once per protected group. The owners
of each nested group are read too: an owner of a group nested in a protected one can add
itself to it, and so to the protected group. PIM for Groups reads follow the decision below
(a licence answer: no PIM data, so no eligibility; anything else fails closed).

Cost per account: 1 (transitiveMemberOf) + 2 (PIM for Groups) + 2 per principal (the account,
each role-assignable group it is in, each group PIM for Groups names), + 1 per protected group
(nested groups) + 1 per protected group and per group nested in one (owners), each one page
in the usual case.

Permission: ``RoleManagement.Read.Directory`` covers both lists (least privileged for
roleAssignments; for the eligibility instances ``RoleEligibilitySchedule.Read.Directory`` is
narrower, but RoleManagement.Read.Directory is listed too and is needed anyway): Graph v1.0
reference, "List unifiedRoleAssignments" and "List roleEligibilityScheduleInstances"
(https://learn.microsoft.com/graph/api/rbacapplication-list-roleassignments,
https://learn.microsoft.com/graph/api/rbacapplication-list-roleeligibilityscheduleinstances).
Groups and ``directoryRole`` objects: ``GroupMember.Read.All``. PIM for Groups:
``PrivilegedEligibilitySchedule.Read.AzureADGroup`` and
``PrivilegedAssignmentSchedule.Read.AzureADGroup``, each the least privileged application
permission of its list (Graph v1.0 privilegedAccessGroup "List eligibilityScheduleInstances",
https://learn.microsoft.com/graph/api/privilegedaccessgroup-list-eligibilityscheduleinstances,
and "List assignmentScheduleInstances",
https://learn.microsoft.com/graph/api/privilegedaccessgroup-list-assignmentscheduleinstances).
See remediation/permissions.py.
"""

import logging
from typing import TYPE_CHECKING, Any, Literal

from remediation.adapters.graph_caller import GraphCaller, GraphRequestError
from remediation.concurrently import all_of, each
from remediation.domain.errors import PermanentError
from remediation.domain.guardrails import Memberships
from remediation.domain.roles import RoleHolding

if TYPE_CHECKING:
    from collections.abc import Callable

    from kiota_abstractions.request_information import RequestInformation
    from msgraph.graph_service_client import GraphServiceClient

    from remediation.adapters.graph_caller import BuildRequest

    # Builds one list request for a `$filter` clause.
    RequestFor = Callable[[GraphServiceClient, str], RequestInformation]

log = logging.getLogger(__name__)

_GROUP = "#microsoft.graph.group"
_ROLE = "#microsoft.graph.directoryRole"
NO_P2 = "AadPremiumLicenseRequired"
PimShape = Literal["licence", "not onboarded", "unsupported"]
# Graph's words for each shape (module docstring), compared in lower case.
_SHAPE_WORDS: tuple[tuple[PimShape, tuple[str, ...]], ...] = (
    ("licence", (NO_P2.lower(), "needs an aad premium 2 license")),
    ("not onboarded", ("has not onboarded to pim",)),
    ("unsupported", ("resourcetypenotsupported",)),
)


class GraphRoles:
    def __init__(self, caller: GraphCaller) -> None:
        self._graph = caller

    async def memberships(self, user_id: str,
                          protected_group_ids: frozenset[str] = frozenset()) -> Memberships:
        """Transitive groups, and every role held actively or eligibly, directly, through a
        role-assignable group, or through a group PIM for Groups lets the account join or
        own; and every way into a protected group other than active membership
        (``_protected_access``). Raises PermanentError / TransientError as GraphCaller does
        (e.g. 403 without RoleManagement.Read.Directory: the guardrails then escalate).

        Two rounds of reads, each side by side (``remediation.concurrently.all_of``: the
        first failure cancels the rest and is raised as it is): first everything that names
        only the account or a protected group (transitiveMemberOf, both PIM for Groups
        lists, the account's own role assignments and eligibility, each protected group's
        nested groups); then what those answers name (the roles of each group the account
        may hold them through, the owners of each protected and nested group)."""
        protected = sorted(protected_group_ids)
        items, (access, groups_pim), own_rows, own_eligible, nested_lists = await each(
            self._transitive_member_of(user_id), self._pim_for_groups(user_id),
            self._rows("read role assignments", user_id, _assignments_request),
            self._eligibility(user_id), all_of([self._graph.get_all(
                "read groups nested in a protected group", _nested_groups_request(group_id))
                for group_id in protected]))
        groups = {str(item["id"]): item for item in items
                  if item.get("@odata.type") == _GROUP and item.get("id")}
        holdings = [_directory_role(item) for item in items if item.get("@odata.type") == _ROLE]
        # (principal id, the group it stands for); the user itself was asked about above.
        principals: dict[str, str] = {
            group_id: str(group.get("displayName") or group_id)
            for group_id, group in groups.items() if group.get("isAssignableToRole") is True}
        for group_id, how in access:
            known = groups.get(group_id)
            if group_id == user_id or group_id in principals or (
                    known and known.get("isAssignableToRole") is False):
                continue  # asked about already, or a group that cannot hold a role
            name = str(known.get("displayName") or group_id) if known else group_id
            principals[group_id] = f"{name} as {how}"
        nested = {group_id: frozenset(str(item["id"]) for item in inside if item.get("id"))
                  for group_id, inside in zip(protected, nested_lists, strict=True)}
        # Asked even when PIM for Groups had no data: one license answer proves nothing
        # about another list. Once the account's own eligibility says "no PIM data", its
        # groups' is not asked (the same tenant, the same answer).
        roles_pim = own_eligible is not None
        owner_groups = list(dict.fromkeys(
            group_id for protected_id in protected
            for group_id in (protected_id, *sorted(nested[protected_id]))))
        assigned, eligible, owners = await each(
            all_of([self._rows("read role assignments", principal, _assignments_request)
                    for principal in principals]),
            all_of([self._eligibility(principal) for principal in principals]
                   if roles_pim else []),
            all_of([self._graph.get_all("read protected group owners", _owners_request(group))
                    for group in owner_groups]))
        holdings += [_holding(row, eligible=False, via=None) for row in own_rows]
        for (_principal, via), rows in zip(principals.items(), assigned, strict=True):
            holdings += [_holding(row, eligible=False, via=via) for row in rows]
        holdings += [_holding(row, eligible=True, via=None) for row in own_eligible or []]
        for (_principal, via), maybe in zip(principals.items(), eligible or
                                           [[]] * len(principals), strict=True):
            if maybe is None:
                roles_pim = False
                continue
            holdings += [_holding(row, eligible=True, via=via) for row in maybe]
        pim_data = groups_pim and roles_pim
        if not pim_data:
            log.info("Graph: no PIM data (the tenant has no Entra ID P2); eligible roles "
                     "cannot be seen")
        roles = tuple(dict.fromkeys(holding.describe() for holding in holdings))
        owned = {group: any(owner.get("id") == user_id for owner in answer)
                 for group, answer in zip(owner_groups, owners, strict=True)}
        reached = _protected_access(frozenset(groups), access, protected, nested, owned)
        return Memberships(group_ids=frozenset(groups), roles=roles, pim_data=pim_data,
                           group_access=reached)

    async def _eligibility(self, principal: str) -> list[dict[str, Any]] | None:
        """The principal's PIM role eligibility; None when the tenant has no PIM data
        (``_no_pim_data_or_raise``: any other refusal raises)."""
        what = "read PIM role eligibility"
        try:
            return await self._rows(what, principal, _eligibility_request)
        except GraphRequestError as error:
            _no_pim_data_or_raise(what, error)
            return None

    async def _pim_for_groups(self, user_id: str) -> tuple[list[tuple[str, str]], bool]:
        """The groups PIM for Groups lets the account join or own, eligibly or actively, as
        (group id, how, e.g. ``eligible owner (PIM for Groups)``); and False when the tenant
        has no PIM data (no Entra ID P2). Both lists are read side by side."""
        access: list[tuple[str, str]] = []
        pim_data = True
        kinds = (("read PIM for Groups eligibility", _group_eligibility_request, True),
                 ("read PIM for Groups assignments", _group_assignment_request, False))
        answers = await all_of([self._pim_rows(what, user_id, request)
                                for what, request, _ in kinds])
        for (what, _, eligible), rows in zip(kinds, answers, strict=True):
            if rows is None:
                pim_data = False
                continue
            for row in rows:
                group_id = row.get("groupId")
                if not isinstance(group_id, str) or not group_id:
                    raise PermanentError(f"Graph: {what} answered an instance without a "
                                         "groupId; cannot tell which group it grants")
                relation = str(row.get("accessId") or "member")  # member or owner
                access.append((group_id, f"{'eligible ' if eligible else ''}{relation} "
                                         "(PIM for Groups)"))
        return access, pim_data

    async def _pim_rows(self, what: str, user_id: str,
                        request: "RequestFor") -> list[dict[str, Any]] | None:
        try:
            return await self._rows(what, user_id, request)
        except GraphRequestError as error:
            _no_pim_data_or_raise(what, error)
            return None

    async def _transitive_member_of(self, user_id: str) -> list[dict[str, Any]]:
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.users.item.transitive_member_of.transitive_member_of_request_builder import (  # noqa: E501
            TransitiveMemberOfRequestBuilder,
        )

        query = TransitiveMemberOfRequestBuilder.TransitiveMemberOfRequestBuilderGetQueryParameters(
            top=999)
        config = RequestConfiguration(query_parameters=query)
        return await self._graph.get_all(
            "read memberships", lambda c: c.users.by_user_id(
                user_id).transitive_member_of.to_get_request_information(config))

    async def _rows(self, what: str, principal: str,
                    request: "RequestFor") -> list[dict[str, Any]]:
        literal = principal.replace("'", "''")
        clause = f"principalId eq '{literal}'"
        return await self._graph.get_all(what, lambda c: request(c, clause))


def _protected_access(groups: frozenset[str], access: list[tuple[str, str]],
                      protected: list[str], nested: dict[str, frozenset[str]],
                      owned: dict[str, bool]) -> tuple[tuple[str, str], ...]:
    """(protected group id, how) for each way into a protected group that
    ``transitiveMemberOf`` does not show: ownership of it (``GET /groups/{id}/owners``, one
    read per protected group and per group nested in it: an owner of either can add itself),
    and membership or ownership, eligible or active, through PIM for Groups, of it or of a
    group nested in it (the protected groups' nested groups, ``GET
    /groups/{id}/transitiveMembers/microsoft.graph.group``, one read per protected group).
    ``owned``: by group id, whether the account is among its owners (every read answered:
    any failed read raised before, and the guardrails escalate)."""
    if not protected:
        return ()
    reached: list[tuple[str, str]] = []
    for protected_id in protected:
        for group_id in (protected_id, *sorted(nested[protected_id])):
            if owned[group_id]:
                reached.append((protected_id, "owner" if group_id == protected_id else
                                f"owner of group {group_id}, nested in it"))
    for group_id, how in access:
        if group_id in protected:
            reached.append((group_id, how))
            continue
        if group_id in groups and "owner" not in how:
            continue  # an active member: its parents are in transitiveMemberOf already
        reached += [(protected_id, f"{how} of group {group_id}, nested in it")
                    for protected_id in protected if group_id in nested[protected_id]]
    return tuple(dict.fromkeys(reached))


def _owners_request(group_id: str) -> "BuildRequest":
    def build(client: "GraphServiceClient") -> "RequestInformation":
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.groups.item.owners.owners_request_builder import (
            OwnersRequestBuilder,
        )

        query = OwnersRequestBuilder.OwnersRequestBuilderGetQueryParameters(
            select=["id"], top=999)
        return client.groups.by_group_id(group_id).owners.to_get_request_information(
            RequestConfiguration(query_parameters=query))

    return build


def _nested_groups_request(group_id: str) -> "BuildRequest":
    def build(client: "GraphServiceClient") -> "RequestInformation":
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.groups.item.transitive_members.graph_group.graph_group_request_builder import (  # noqa: E501
            GraphGroupRequestBuilder,
        )

        query = GraphGroupRequestBuilder.GraphGroupRequestBuilderGetQueryParameters(
            select=["id"], top=999)
        group = client.groups.by_group_id(group_id)
        return group.transitive_members.graph_group.to_get_request_information(
            RequestConfiguration(query_parameters=query))

    return build


def _assignments_request(client: "GraphServiceClient", clause: str) -> "RequestInformation":
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.role_management.directory.role_assignments.role_assignments_request_builder import (  # noqa: E501
        RoleAssignmentsRequestBuilder,
    )

    query = RoleAssignmentsRequestBuilder.RoleAssignmentsRequestBuilderGetQueryParameters(
        filter=clause)
    return client.role_management.directory.role_assignments.to_get_request_information(
        RequestConfiguration(query_parameters=query))


def _eligibility_request(client: "GraphServiceClient", clause: str) -> "RequestInformation":
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.role_management.directory.role_eligibility_schedule_instances.role_eligibility_schedule_instances_request_builder import (  # noqa: E501
        RoleEligibilityScheduleInstancesRequestBuilder as Builder,
    )

    query = Builder.RoleEligibilityScheduleInstancesRequestBuilderGetQueryParameters(
        filter=clause)
    directory = client.role_management.directory
    return directory.role_eligibility_schedule_instances.to_get_request_information(
        RequestConfiguration(query_parameters=query))


def _group_eligibility_request(client: "GraphServiceClient",
                               clause: str) -> "RequestInformation":
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.identity_governance.privileged_access.group.eligibility_schedule_instances.eligibility_schedule_instances_request_builder import (  # noqa: E501
        EligibilityScheduleInstancesRequestBuilder as Builder,
    )

    query = Builder.EligibilityScheduleInstancesRequestBuilderGetQueryParameters(filter=clause)
    group = client.identity_governance.privileged_access.group
    return group.eligibility_schedule_instances.to_get_request_information(
        RequestConfiguration(query_parameters=query))


def _group_assignment_request(client: "GraphServiceClient",
                              clause: str) -> "RequestInformation":
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.identity_governance.privileged_access.group.assignment_schedule_instances.assignment_schedule_instances_request_builder import (  # noqa: E501
        AssignmentScheduleInstancesRequestBuilder as Builder,
    )

    query = Builder.AssignmentScheduleInstancesRequestBuilderGetQueryParameters(filter=clause)
    group = client.identity_governance.privileged_access.group
    return group.assignment_schedule_instances.to_get_request_information(
        RequestConfiguration(query_parameters=query))


def pim_shape(error: GraphRequestError) -> PimShape | None:
    """Which answer of a tenant without PIM a failed PIM read is (module docstring), by
    Graph's code or by its words anywhere in the message (PIM's lists sometimes wrap them in
    UnknownError or another status); None for any other error."""
    text = f"{error.code} {error.reason}".lower()
    return next((shape for shape, words in _SHAPE_WORDS
                 if any(word in text for word in words)), None)


def _no_pim_data_or_raise(what: str, error: GraphRequestError) -> None:
    """Return when ``error`` means the tenant has no PIM data; raise otherwise, saying why
    an answer that proves nothing stops the case."""
    shape = pim_shape(error)
    if shape == "licence":
        return
    if shape is None:
        raise error
    said = ("the tenant has not onboarded to PIM" if shape == "not onboarded"
            else "ResourceTypeNotSupported")
    raise GraphRequestError(
        f"Graph: {what} answered {said} ({error.status} {error.code}), which does not say "
        "the tenant has no PIM: eligible roles cannot be ruled out, so the account is not "
        "changed automatically (remediation doctor shows what every case will meet)",
        error.status, error.code) from None


def _directory_role(item: dict[str, Any]) -> RoleHolding:
    # Without a directory read permission a role may come back bare (type and id only):
    # still a role, by its type.
    template = item.get("roleTemplateId")
    name = item.get("displayName")
    if not template and not name:
        return RoleHolding(str(item.get("id") or "unknown"),
                           name=f"directory role {item.get('id') or '(no id)'}")
    return RoleHolding(str(template or item.get("id")), name=str(name) if name else None)


def _holding(row: dict[str, Any], *, eligible: bool, via: str | None) -> RoleHolding:
    return RoleHolding(str(row.get("roleDefinitionId") or "unknown"),
                       scope=str(row.get("directoryScopeId") or "/"), eligible=eligible,
                       via_group=via)
