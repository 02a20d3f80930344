"""The Directory port on Microsoft Graph, through msgraph-sdk.

Every permission and directory role this needs, and why, is listed in
remediation/permissions.py (one source of truth for infra/grant-permissions.sh and the README):
``User.Read.All`` (look-ups), ``User-PasswordProfile.ReadWrite.All`` **and** the User
Administrator directory role (app-only resets), ``User.RevokeSessions.All``,
``GroupMember.Read.All`` and ``RoleManagement.Read.Directory`` (memberships and roles, see
graph_roles.py), ``Domain.Read.All``.

Look-ups (Graph v1.0 "Get user", https://learn.microsoft.com/graph/api/user-get):
``/users/{key}`` takes an object id or a UPN, but a UPN that starts with ``$`` must be sent as
``/users('$x@contoso.com')`` (quotes doubled inside): the plain form is a 400. Other
addresses: ``$filter=mail eq '...'``, then
``$filter=proxyAddresses/any(p:p eq 'smtp:...')`` for aliases. The account found must own
the address asked for; two accounts claiming it is an error, never a guess. All three are
asked, side by side (none waits on another), and their answers united by object id (one
account's UPN can be another's alias): a look-up by address costs three GETs (one page each,
one round-trip of time), by object id one.

Graph may refuse a key segment it cannot parse (an apostrophe, ``+``...) with a 400 instead
of looking it up: 400 Request_BadRequest "Bad request. Please fix the request before
retrying." (msgraph-sdk-dotnet#1101), 400 BadRequest "Bad Request - Error in query syntax."
(jenkinsci/azure-ad-plugin#170), an UnknownError without a message
(microsoft-graph-explorer-v4#1847). Such a refusal is not an answer about the account: the
key's question is asked as ``$filter=userPrincipalName eq '...'`` (quotes doubled, which
Graph takes: pnp/powershell#3570), then mail and alias as always (a fourth GET). Any other
400 (a ``$select`` this Graph does not know, say) fails the look-up with Graph's status,
code and message: the filters would be refused alike and hide the cause.
"""

import asyncio
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from remediation.adapters.graph_caller import GraphCaller, GraphRequestError
from remediation.adapters.graph_roles import GraphRoles
from remediation.concurrently import each
from remediation.domain.directory import DirectoryUser, bare_address
from remediation.domain.errors import OutcomeUnknown, PermanentError, TransientError
from remediation.domain.escalation_kinds import EscalationKind
from remediation.domain.guardrails import Memberships, TenantDomains

if TYPE_CHECKING:
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.graph_service_client import GraphServiceClient

    from remediation.adapters.graph_caller import BuildRequest

# proxyAddresses, creationType and externalUserState come back only when selected.
_USER_FIELDS = ["id", "userPrincipalName", "mail", "displayName", "accountEnabled",
                "onPremisesSyncEnabled", "userType", "proxyAddresses", "creationType",
                "externalUserState"]
# One page is plenty: a correct filter answers at most one owner.
_FILTER_PAGE = 5
# Characters kept as they are inside /users('...'): the OData literal's own and the UPN's.
_LITERAL_SAFE = "$'@!*+,;=:&"
RESET_REFUSED = (
    "Graph refused the password reset (403 Authorization_RequestDenied). App-only resets "
    "need a directory role as well as the permission: grant the app the User Administrator "
    "directory role (User-PasswordProfile.ReadWrite.All alone is not enough); "
    "infra/grant-permissions.sh assigns it. If the app holds it already, the account itself "
    "is an administrator that only a more privileged role may reset: secure it by hand")


# Graph may have set the password without our hearing it: the next attempt, on record (its
# claim and ``started`` entry), sets another one.
RESET_UNSETTLED = ("Graph: reset password failed without a usable answer (timeout, lost "
                   "connection or 5xx); the new password may have been set: not sent again "
                   "in this attempt")


def _reset_failed(status: int, code: str) -> str:
    """A failed reset, by status and code only: Graph's message may quote the request, that
    is the new password (escaped, so no exact-match masking would catch it)."""
    answer = f"{status} {code}" if status else "no usable answer (timeout, throttling or 5xx)"
    return (f"Graph: reset password failed with {answer}; Graph's own message is not kept, "
            "as it may quote the password sent")


class GraphDirectory:
    def __init__(self, caller: GraphCaller, *,
                 domains_ttl: timedelta = timedelta(hours=1)) -> None:
        self._graph = caller
        self._roles = GraphRoles(caller)
        self._domains_ttl = domains_ttl.total_seconds()
        self._domains: tuple[float, TenantDomains] | None = None
        self._domains_lock = asyncio.Lock()

    async def find_user(self, user: str) -> DirectoryUser:
        """The account that owns ``user`` (object id, UPN, mail or SMTP alias).

        Raises PermanentError "... not found in the directory" when no account owns it, and
        PermanentError "... is ambiguous ..." when two accounts claim it.
        """
        wanted = bare_address(user)
        literal = wanted.replace("'", "''")
        owners: dict[str, DirectoryUser] = {}
        filters: list[tuple[str, str]] = []
        if "@" in wanted:
            filters += [("look up user by mail", f"mail eq '{literal}'"),
                        ("look up user by alias", f"proxyAddresses/any(p:p eq 'smtp:{literal}')")]
        # The key, the mail and the alias are asked side by side: none depends on another.
        keyed, *by_filter = await each(
            self._keyed(wanted), *(self._owners(what, clause, wanted) for what, clause in filters))
        found: DirectoryUser | None = keyed[0]
        refused: bool = keyed[1]
        if refused:  # the key's own question, as a filter (after: it needs the refusal)
            by_filter.insert(0, await self._owners(
                "look up user by UPN", f"userPrincipalName eq '{literal}'", wanted))
        if found is not None and found.owns(wanted):
            owners[found.id] = found
        for answer in by_filter:
            for owner in answer:
                owners.setdefault(owner.id, owner)
        if len(owners) > 1:
            ids = ", ".join(owners)
            raise PermanentError(
                f"the address {user} is ambiguous: directory objects {ids} all claim it; "
                "nobody was changed. Find the right account by hand", EscalationKind.NO_ACCOUNT)
        if owners:
            return next(iter(owners.values()))
        raise PermanentError(f"user {user} not found in the directory",
                             EscalationKind.NO_ACCOUNT)

    async def _keyed(self, key: str) -> tuple[DirectoryUser | None, bool]:
        """``_user_by_key``'s answer, and True when Graph refused the key itself (a 400
        ``_key_refused`` tells); any other failure raises."""
        try:
            return await self._user_by_key(key), False
        except GraphRequestError as error:
            if not _key_refused(error):
                raise
            return None, True

    async def _user_by_key(self, key: str) -> DirectoryUser | None:
        """``/users/{key}``, or ``/users('{key}')`` for a key starting with ``$``; None on
        404. Raises GraphRequestError otherwise (``_key_refused`` tells a refused key)."""
        try:
            found = await self._graph.send_json(
                "look up user", _quoted_key_request(key) if key.startswith("$")
                else _key_request(key))
        except GraphRequestError as error:
            if error.not_found:
                return None
            raise
        return _user_from_json(found) if found.get("id") else None

    async def _owners(self, what: str, clause: str, address: str) -> list[DirectoryUser]:
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.users.users_request_builder import UsersRequestBuilder

        config = RequestConfiguration(
            query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                filter=clause, select=_USER_FIELDS, top=_FILTER_PAGE))
        page = await self._graph.send_json(
            what, lambda c: c.users.to_get_request_information(config))
        found = [_user_from_json(item) for item in page.get("value") or []
                 if isinstance(item, dict) and item.get("id")]
        # Trust no filter: only an account that really owns the address counts.
        return [user for user in found if user.owns(address)]

    async def memberships(self, user_id: str,
                          protected_group_ids: frozenset[str] = frozenset()) -> Memberships:
        """Transitive groups, every directory role held or eligible, and every way into a
        protected group (graph_roles.py)."""
        return await self._roles.memberships(user_id, protected_group_ids)

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
        """``PATCH /users/{id}`` with a passwordProfile that forces a change at next sign-in.

        App-only, this needs ``User-PasswordProfile.ReadWrite.All`` and at least the User
        Administrator directory role: msgraph-sdk's own description of the property
        (msgraph/generated/models/user.py, ``password_profile``: "In app-only scenarios, the
        calling app must be assigned a supported permission and at least the User
        Administrator Microsoft Entra role"). Without the role Graph answers 403
        Authorization_RequestDenied, as it does for an administrator target: raises
        PermanentError (a GraphRequestError) saying both.
        """
        from msgraph.generated.models.password_profile import PasswordProfile
        from msgraph.generated.models.user import User

        body = User(password_profile=PasswordProfile(
            password=password, force_change_password_next_sign_in=True))
        try:
            await self._graph.call("reset password",
                                   lambda c: c.users.by_user_id(user_id).patch(body))
        except GraphRequestError as error:
            if error.status == 403 and error.code == "Authorization_RequestDenied":
                raise GraphRequestError(RESET_REFUSED, error.status, error.code) from None
            if 300 <= error.status < 400:
                raise  # our own words (a redirect is refused), nothing of Graph's
            raise GraphRequestError(_reset_failed(error.status, error.code), error.status,
                                    error.code) from None
        except OutcomeUnknown as error:
            raise OutcomeUnknown(RESET_UNSETTLED, retry_after=error.retry_after) from None
        except TransientError as error:
            raise TransientError(_reset_failed(0, "transient"),
                                 retry_after=error.retry_after) from None

    async def revoke_sessions(self, user_id: str) -> None:
        await self._graph.call(
            "revoke sessions", lambda c: c.users.by_user_id(user_id).revoke_sign_in_sessions.post())

    async def disable_sign_in(self, user_id: str) -> None:
        """``PATCH /users/{id}`` with ``{"accountEnabled": false}`` → 204.

        Least privilege (Graph "Update user", microsoft-graph-docs-contrib
        ``api-reference/v1.0/api/user-update.md``): ``User.EnableDisableAccount.All`` with
        ``User.Read.All``, and, app-only, a directory role that may manage the account (User
        Administrator, which the reset already needs). Refused: PermanentError with Graph's
        code."""
        from msgraph.generated.models.user import User

        body = User(account_enabled=False)
        await self._graph.call("block sign-in",
                               lambda c: c.users.by_user_id(user_id).patch(body))


# Graph's words for a key segment it would not parse (the module docstring has the sources).
_KEY_REFUSALS = ("please fix the request", "error in query syntax", "invalid object identifier")


def _key_refused(error: GraphRequestError) -> bool:
    """A 400 that refuses the key itself, not a question about the account."""
    if error.status != 400:
        return False
    if error.code == "UnknownError":
        return True  # Graph gave no words at all
    return (error.code in ("Request_BadRequest", "BadRequest")
            and any(words in error.reason.lower() for words in _KEY_REFUSALS))


def _key_request(key: str) -> "BuildRequest":
    def build(client: "GraphServiceClient") -> "RequestInformation":
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.users.item.user_item_request_builder import (
            UserItemRequestBuilder,
        )

        config = RequestConfiguration(
            query_parameters=UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
                select=_USER_FIELDS))
        return client.users.by_user_id(key).to_get_request_information(config)

    return build


def _quoted_key_request(key: str) -> "BuildRequest":
    """``/users('key')``: msgraph-sdk's ``by_user_id`` cannot build it, so the URL is ours."""
    def build(client: "GraphServiceClient") -> "RequestInformation":
        from kiota_abstractions.method import Method
        from kiota_abstractions.request_information import RequestInformation

        literal = quote(key.replace("'", "''"), safe=_LITERAL_SAFE)
        info = RequestInformation(Method.GET)
        info.url = (f"{client.request_adapter.base_url}/users('{literal}')"
                    f"?$select={','.join(_USER_FIELDS)}")
        info.headers.try_add("Accept", "application/json")
        return info

    return build


def _user_from_json(item: dict[str, Any]) -> DirectoryUser:
    return DirectoryUser(
        id=str(item["id"]), user_principal_name=str(item.get("userPrincipalName") or ""),
        mail=item.get("mail"), display_name=item.get("displayName"),
        account_enabled=item.get("accountEnabled"),
        on_premises_sync_enabled=item.get("onPremisesSyncEnabled"),
        user_type=item.get("userType"),
        proxy_addresses=_smtp_addresses(item.get("proxyAddresses")),
        creation_type=item.get("creationType"),
        external_user_state=item.get("externalUserState"))


def _smtp_addresses(proxies: Any) -> tuple[str, ...]:
    """SMTP proxy addresses, bare and lower case, the primary ("SMTP:") first."""
    if not isinstance(proxies, list):
        return ()
    smtp = [str(p).strip() for p in proxies if str(p).strip().lower().startswith("smtp:")]
    primary = [p for p in smtp if p.startswith("SMTP:")]
    ordered = primary + [p for p in smtp if not p.startswith("SMTP:")]
    return tuple(dict.fromkeys(bare_address(p) for p in ordered))


def _tenant_domains(items: list[dict[str, Any]]) -> TenantDomains:
    """The verified domains only: an unverified one was added to the tenant but never proved
    by DNS, so mail to it may reach anybody (it is "outside" when judging forwarding)."""
    names = {str(item["id"]).lower(): item for item in items
             if item.get("id") and item.get("isVerified") is True}
    federated = {name for name, item in names.items()
                 if str(item.get("authenticationType") or "").lower() == "federated"}
    return TenantDomains(names=frozenset(names), federated=frozenset(federated))
