"""The Directory port on Microsoft Graph, through msgraph-sdk.

Permissions (application, admin-consented):
- ``User.Read.All`` to look users up;
- ``User-PasswordProfile.ReadWrite.All`` to reset passwords (admins cannot be reset by an
  app without a privileged role: Graph answers 403, which escalates);
- ``User.RevokeSessions.All`` to revoke sign-in sessions;
- ``GroupMember.Read.All`` for transitive group memberships; with it alone, directory roles
  come back as bare objects (type and id, no name), so grant ``Directory.Read.All`` to read
  role names (a role is recognised by its type either way);
- ``Domain.Read.All`` to list the tenant's domains and which are federated.
"""

import asyncio
import time
from datetime import timedelta
from typing import Any

from remediation.adapters.graph_caller import GraphCaller
from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import PermanentError
from remediation.domain.guardrails import Memberships, TenantDomains

_USER_FIELDS = ["id", "userPrincipalName", "mail", "displayName", "accountEnabled",
                "onPremisesSyncEnabled", "userType"]
_GROUP = "#microsoft.graph.group"
_ROLE = "#microsoft.graph.directoryRole"


class GraphDirectory:
    def __init__(self, caller: GraphCaller, *,
                 domains_ttl: timedelta = timedelta(hours=1)) -> None:
        self._graph = caller
        self._domains_ttl = domains_ttl.total_seconds()
        self._domains: tuple[float, TenantDomains] | None = None
        self._domains_lock = asyncio.Lock()

    async def find_user(self, user: str) -> DirectoryUser:
        """By object id or UPN; failing that, by ``mail`` (a guest's or an alias's address,
        which ``/users/{key}`` does not accept)."""
        try:
            return await self._user_by_key(user)
        except PermanentError as error:
            if "not found" not in error.reason or "@" not in user:
                raise
        found = await self._user_by_mail(user)
        if found is None:
            raise PermanentError(f"user {user} not found in the directory")
        return found

    async def _user_by_key(self, user: str) -> DirectoryUser:
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.users.item.user_item_request_builder import (
            UserItemRequestBuilder,
        )

        config = RequestConfiguration(
            query_parameters=UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
                select=_USER_FIELDS))
        try:
            found = await self._graph.call(
                "look up user", lambda c: c.users.by_user_id(user).get(
                    request_configuration=config))
        except PermanentError as error:
            if "not found" in error.reason:
                raise PermanentError(f"user {user} not found in the directory") from None
            raise
        if found is None or not found.id:
            raise PermanentError(f"user {user} not found in the directory")
        return DirectoryUser(
            id=found.id, user_principal_name=found.user_principal_name or user,
            mail=found.mail, display_name=found.display_name,
            account_enabled=found.account_enabled,
            on_premises_sync_enabled=found.on_premises_sync_enabled, user_type=found.user_type)

    async def _user_by_mail(self, address: str) -> DirectoryUser | None:
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.users.users_request_builder import UsersRequestBuilder

        literal = address.replace("'", "''")
        config = RequestConfiguration(
            query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                filter=f"mail eq '{literal}'", select=_USER_FIELDS, top=2))
        page = await self._graph.send_json(
            "look up user by mail", lambda c: c.users.to_get_request_information(config))
        matches = [item for item in page.get("value") or []
                   if isinstance(item, dict) and item.get("id")]
        if len(matches) > 1:
            raise PermanentError(f"more than one user has the address {address}")
        return _user_from_json(matches[0], address) if matches else None

    async def memberships(self, user_id: str) -> Memberships:
        """Transitive groups and directory roles (every page)."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.users.item.transitive_member_of.transitive_member_of_request_builder import (  # noqa: E501
            TransitiveMemberOfRequestBuilder,
        )

        query = TransitiveMemberOfRequestBuilder.TransitiveMemberOfRequestBuilderGetQueryParameters(
            top=999)
        config = RequestConfiguration(query_parameters=query)
        items = await self._graph.get_all(
            "read memberships", lambda c: c.users.by_user_id(
                user_id).transitive_member_of.to_get_request_information(config))
        return _memberships(items)

    async def tenant_domains(self) -> TenantDomains:
        """The tenant's domains, read at most once an hour (they change rarely)."""
        async with self._domains_lock:
            cached = self._domains
            if cached is not None and time.monotonic() - cached[0] < self._domains_ttl:
                return cached[1]
            items = await self._graph.get_all(
                "list domains", lambda c: c.domains.to_get_request_information())
            domains = _tenant_domains(items)
            self._domains = (time.monotonic(), domains)
            return domains

    async def reset_password(self, user_id: str, password: str) -> None:
        from msgraph.generated.models.password_profile import PasswordProfile
        from msgraph.generated.models.user import User

        body = User(password_profile=PasswordProfile(
            password=password, force_change_password_next_sign_in=True))
        await self._graph.call("reset password",
                               lambda c: c.users.by_user_id(user_id).patch(body))

    async def revoke_sessions(self, user_id: str) -> None:
        await self._graph.call(
            "revoke sessions", lambda c: c.users.by_user_id(user_id).revoke_sign_in_sessions.post())


def _user_from_json(item: dict[str, Any], fallback: str) -> DirectoryUser:
    return DirectoryUser(
        id=str(item["id"]), user_principal_name=item.get("userPrincipalName") or fallback,
        mail=item.get("mail"), display_name=item.get("displayName"),
        account_enabled=item.get("accountEnabled"),
        on_premises_sync_enabled=item.get("onPremisesSyncEnabled"),
        user_type=item.get("userType"))


def _memberships(items: list[dict[str, Any]]) -> Memberships:
    groups = frozenset(str(item["id"]) for item in items
                       if item.get("@odata.type") == _GROUP and item.get("id"))
    # Without Directory.Read.All a role may come back nameless: still a role, by its type.
    roles = tuple(dict.fromkeys(
        str(item.get("displayName") or item.get("roleTemplateId") or item.get("id") or "role")
        for item in items if item.get("@odata.type") == _ROLE))
    return Memberships(group_ids=groups, roles=roles)


def _tenant_domains(items: list[dict[str, Any]]) -> TenantDomains:
    names = {str(item["id"]).lower(): item for item in items if item.get("id")}
    federated = {name for name, item in names.items()
                 if str(item.get("authenticationType") or "").lower() == "federated"}
    return TenantDomains(names=frozenset(names), federated=frozenset(federated))
