"""Calls to Microsoft Graph through msgraph-sdk: one client per process, bounded retries,
errors translated into the core's TransientError / PermanentError."""

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

import httpx
from azure.core.credentials_async import AsyncTokenCredential

from remediation.adapters.retrying import (
    DEFAULT_MAX_WAIT,
    RetryBudget,
    parse_retry_after,
    with_retries,
)
from remediation.domain.errors import PermanentError, TransientError

if TYPE_CHECKING:
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.graph_service_client import GraphServiceClient

    BuildRequest = Callable[[GraphServiceClient], RequestInformation]

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_PAGES = 200


def build_graph_client(endpoint: str, credential: AsyncTokenCredential, *, timeout: float,
                       ) -> tuple["GraphServiceClient", httpx.AsyncClient]:
    """A Graph client for any endpoint (global, sovereign cloud, or the sandbox tenant).

    The SDK's retry middleware is switched off (``RetryHandlerOption(max_retries=0)``): it
    would sleep for any Retry-After under 180 s (kiota_http ``RetryHandler``), longer than a
    call may wait. ``GraphCaller`` retries within its budget instead.
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
    retry = RetryHandlerOption(delay=0, max_retries=0, should_retry=False)
    options: dict[str, Any] = {RetryHandlerOption.get_key(): retry}
    adapter = GraphRequestAdapter(
        auth, client=GraphClientFactory.create_with_default_middleware(client=http,
                                                                       options=options))
    adapter.base_url = f"{endpoint}/v1.0"
    return GraphServiceClient(request_adapter=adapter), http


class GraphCaller:
    """Runs SDK calls: retries throttling (429, honouring Retry-After within the budget), 5xx
    and transport failures, then translates errors into TransientError / PermanentError."""

    def __init__(self, endpoint: str, credential: AsyncTokenCredential, *, timeout: float,
                 max_retries: int, retry_delay: float = 0.5,
                 max_wait: float = DEFAULT_MAX_WAIT) -> None:
        self._endpoint = endpoint
        self._credential = credential
        self._timeout = timeout
        self._budget = RetryBudget(retries=max_retries, max_wait=max_wait,
                                   base_delay=retry_delay)
        self._client: GraphServiceClient | None = None
        self._http: httpx.AsyncClient | None = None

    @property
    def client(self) -> "GraphServiceClient":
        """Built on first use: importing msgraph is slow, and one client serves the process."""
        if self._client is None:
            self._client, self._http = build_graph_client(
                self._endpoint, self._credential, timeout=self._timeout)
        return self._client

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def call(self, what: str, action: Callable[["GraphServiceClient"], Awaitable[T]], *,
                   retry: bool = True) -> T:
        """Run ``action`` with the client. ``retry=False`` for a request that must never be
        sent twice (an alert comment: a repeated POST is a second comment)."""
        budget = self._budget if retry else RetryBudget(retries=0)
        return await with_retries(budget, f"Graph: {what}", lambda: self._once(what, action))

    async def _once(self, what: str, action: Callable[["GraphServiceClient"], Awaitable[T]]) -> T:
        from azure.core.exceptions import ClientAuthenticationError
        from kiota_abstractions.api_error import APIError

        try:
            return await action(self.client)
        except APIError as error:
            raise _translate(what, error) from None
        except (httpx.TimeoutException, httpx.TransportError) as error:
            kind = "timed out" if isinstance(error, httpx.TimeoutException) else "failed"
            raise TransientError(f"Graph: {what} {kind}") from None
        except ClientAuthenticationError as error:
            raise TransientError(
                f"cannot get a token for Graph: {type(error).__name__}") from None

    async def send_json(self, what: str, build: "BuildRequest", *,
                        retry: bool = True) -> dict[str, Any]:
        """Send a request built from the SDK's builders; return the JSON object answered."""
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        async def send(client: "GraphServiceClient") -> bytes | None:
            result: bytes | None = await client.request_adapter.send_primitive_async(
                build(client), "bytes", {"XXX": ODataError})
            return result

        raw = await self.call(what, send, retry=retry)
        if not raw:
            return {}
        try:
            parsed = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise TransientError(f"Graph: {what} returned a body that is not JSON") from None
        return parsed if isinstance(parsed, dict) else {}

    async def get_all(self, what: str, first: "BuildRequest") -> list[dict[str, Any]]:
        """GET a collection: the items of every page, following ``@odata.nextLink``."""
        items: list[dict[str, Any]] = []
        build = first
        for _ in range(MAX_PAGES):
            page = await self.send_json(what, build)
            items.extend(item for item in page.get("value") or [] if isinstance(item, dict))
            link = page.get("@odata.nextLink")
            if not isinstance(link, str) or not link:
                return items
            build = _next_page(link)
        raise TransientError(f"Graph: {what} returned more than {MAX_PAGES} pages")


def _next_page(link: str) -> "BuildRequest":
    def build(_: "GraphServiceClient") -> "RequestInformation":
        from kiota_abstractions.method import Method
        from kiota_abstractions.request_information import RequestInformation

        info = RequestInformation(Method.GET)
        info.url = link
        info.headers.try_add("Accept", "application/json")
        return info

    return build


class GraphRequestError(PermanentError):
    """A permanent Graph failure; ``status`` and ``code`` (Graph's error code, e.g.
    ``Authorization_RequestDenied``) let callers tell kinds apart without parsing text."""

    def __init__(self, reason: str, status: int, code: str) -> None:
        super().__init__(reason)
        self.status, self.code = status, code

    @property
    def not_found(self) -> bool:
        return self.status == 404


def _translate(what: str, error: Exception) -> Exception:
    status = getattr(error, "response_status_code", None) or 0
    odata = getattr(error, "error", None)
    code = getattr(odata, "code", None) or "unknown"
    message = getattr(odata, "message", None) or ""
    detail = f"Graph: {what} failed with {status} {code}" + (f": {message}" if message else "")
    if status in (408, 429) or status >= 500:
        headers = getattr(error, "response_headers", None) or {}
        retry_after = next((str(value) for name, value in dict(headers).items()
                            if str(name).lower() == "retry-after"), None)
        return TransientError(detail, retry_after=parse_retry_after(retry_after))
    if status == 404:
        return GraphRequestError(f"Graph: {what}: not found ({code})", status, code)
    if status in (401, 403):
        return GraphRequestError(detail + " (check the app's Graph permissions and roles)",
                                 status, code)
    return GraphRequestError(detail, status, code)
