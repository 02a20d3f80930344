"""The Directory port on Microsoft Graph, through msgraph-sdk.

Permissions (application, admin-consented):
- ``User.Read.All`` to look users up;
- ``User-PasswordProfile.ReadWrite.All`` to reset passwords (admins cannot be reset by an
  app without a privileged role: Graph answers 403, which escalates);
- ``User.RevokeSessions.All`` to revoke sign-in sessions.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

import httpx
from azure.core.credentials_async import AsyncTokenCredential

from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import PermanentError, TransientError

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

log = logging.getLogger(__name__)
T = TypeVar("T")

_USER_FIELDS = ["id", "userPrincipalName", "mail", "displayName", "accountEnabled",
                "onPremisesSyncEnabled", "userType"]


def build_graph_client(endpoint: str, credential: AsyncTokenCredential, *, timeout: float,
                       max_retries: int, retry_delay: float = 1.0,
                       ) -> tuple["GraphServiceClient", httpx.AsyncClient]:
    """A Graph client for any endpoint (global, sovereign cloud, or the sandbox tenant).

    The SDK's retry middleware handles 429/503/504 and honours Retry-After.
    """
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from kiota_http.middleware.options import RetryHandlerOption
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph.graph_service_client import GraphServiceClient
    from msgraph_core import GraphClientFactory

    host = urlparse(endpoint).hostname or ""
    auth = AzureIdentityAuthenticationProvider(
        credential, scopes=[f"{endpoint}/.default"], allowed_hosts=[host])
    http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
    retry = RetryHandlerOption(delay=retry_delay, max_retries=max_retries)
    options: dict[str, Any] = {RetryHandlerOption.get_key(): retry}
    adapter = GraphRequestAdapter(
        auth, client=GraphClientFactory.create_with_default_middleware(client=http,
                                                                       options=options))
    adapter.base_url = f"{endpoint}/v1.0"
    return GraphServiceClient(request_adapter=adapter), http


class GraphCaller:
    """Runs SDK calls, retries transport failures within bounds, translates errors."""

    def __init__(self, endpoint: str, credential: AsyncTokenCredential, *, timeout: float,
                 max_retries: int, transport_attempts: int = 3, retry_delay: float = 1.0) -> None:
        self._endpoint = endpoint
        self._retry_delay = retry_delay
        self._credential = credential
        self._timeout = timeout
        self._max_retries = max_retries
        self._attempts = transport_attempts
        self._client: GraphServiceClient | None = None
        self._http: httpx.AsyncClient | None = None

    @property
    def client(self) -> "GraphServiceClient":
        """Built on first use: importing msgraph is slow, and one client serves the process."""
        if self._client is None:
            self._client, self._http = build_graph_client(
                self._endpoint, self._credential, timeout=self._timeout,
                max_retries=self._max_retries, retry_delay=self._retry_delay)
        return self._client

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def call(self, what: str, action: Callable[["GraphServiceClient"], Awaitable[T]]) -> T:
        from kiota_abstractions.api_error import APIError

        for attempt in range(1, self._attempts + 1):
            try:
                return await action(self.client)
            except APIError as error:
                raise _translate(what, error) from None
            except (httpx.TimeoutException, httpx.TransportError) as error:
                kind = "timed out" if isinstance(error, httpx.TimeoutException) else "failed"
                log.warning("Graph: %s %s (attempt %d of %d)", what, kind, attempt,
                            self._attempts)
                if attempt == self._attempts:
                    raise TransientError(
                        f"Graph: {what} {kind} {self._attempts} times") from None
                await asyncio.sleep(min(self._retry_delay * 2 ** (attempt - 1), 10.0))
        raise AssertionError("unreachable")


def _translate(what: str, error: Exception) -> Exception:
    status = getattr(error, "response_status_code", None) or 0
    odata = getattr(error, "error", None)
    code = getattr(odata, "code", None) or "unknown"
    message = getattr(odata, "message", None) or ""
    detail = f"Graph: {what} failed with {status} {code}" + (f": {message}" if message else "")
    if status == 429 or status >= 500:
        return TransientError(detail)
    if status == 404:
        return PermanentError(f"Graph: {what}: not found ({code})")
    if status in (401, 403):
        return PermanentError(detail + " (check the app's Graph permissions and roles)")
    return PermanentError(detail)


class GraphDirectory:
    def __init__(self, caller: GraphCaller) -> None:
        self._graph = caller

    async def find_user(self, user: str) -> DirectoryUser:
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
