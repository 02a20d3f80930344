"""Calls to Microsoft Graph through msgraph-sdk: one client per process, bounded retries,
errors translated into the core's TransientError / PermanentError.

Only those two (and GraphRequestError, a PermanentError) leave this module, whatever Graph or
the network answers: a redirect is an error (never followed: the token stays with the
configured host), a body the SDK cannot read is transient, an answer that takes longer than
the timeout as a whole (not per socket read) is transient, anything else the SDK raises is
permanent, with a reason that names the call and the kind of failure, never the URL.

A change (any method but GET, HEAD, OPTIONS) is never sent twice in one call once it may have
reached Graph: a timeout, a connection lost after sending or a 5xx (503 included: Graph's
docs say a 503 means busy, never that the request was not carried out) raises OutcomeUnknown
and the step decides at its next attempt. Only a 429 is retried inside the call, as for a
read: Graph's throttling guidance (https://learn.microsoft.com/graph/throttling) says a
throttled request fails. A connection that could not be opened never carried a request.
"""

import asyncio
import json
import logging
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

import httpx
from azure.core.credentials_async import AsyncTokenCredential

from remediation.adapters.credentials import token_failure
from remediation.adapters.never_sent import never_sent
from remediation.adapters.retrying import (
    DEFAULT_MAX_WAIT,
    RetryBudget,
    parse_retry_after,
    with_retries,
)
from remediation.adapters.throttle_gate import ThrottleGate
from remediation.adapters.token_scopes import graph_scope
from remediation.domain.errors import OutcomeUnknown, PermanentError, TransientError

if TYPE_CHECKING:
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.graph_service_client import GraphServiceClient

    BuildRequest = Callable[[GraphServiceClient], RequestInformation]

log = logging.getLogger(__name__)
T = TypeVar("T")

# get_all keeps every item in memory: meant for small collections (roles, groups, rules).
MAX_PAGES = 200
# pages hands each page on as it arrives: this bound only stops a server that pages forever.
MAX_STREAMED_PAGES = 100_000
# The methods of the requests the current attempt sent (the request hook adds them).
_SENT: ContextVar[list[str] | None] = ContextVar("graph_requests_sent", default=None)
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
# Failures before a request left: no connection, so nothing reached Graph.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


# TCP connections Graph's pool holds, each kept alive between calls for httpx's default
# keep-alive expiry (5 s): more calls at once wait for one (the pool's timeout is the call's).
GRAPH_CONNECTIONS = 32


def _traced(http: httpx.AsyncClient) -> None:
    """Graph call spans (entrypoints/telemetry.py): the httpx instrumentation, once on,
    wraps httpx's own transport class, not the aiohttp transport under this client, so the
    client is instrumented by itself (``HTTPXClientInstrumentor.instrument_client``), before
    the SDK's middleware wraps its transport."""
    try:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    except ImportError:
        return
    if HTTPXClientInstrumentor().is_instrumented_by_opentelemetry:
        HTTPXClientInstrumentor.instrument_client(http)


def _transport_error(error: httpx.TransportError) -> str:
    """The name of what failed: aiohttp's own error when it is the cause (httpx-aiohttp maps
    several to one httpx type: a dropped connection reads as ``ConnectTimeout``)."""
    cause = error.__cause__
    return type(cause if cause is not None else error).__name__


def _graph_transport(endpoint: str, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """``httpx_aiohttp.AiohttpTransport`` to ``endpoint`` with the session Graph needs
    (imported on first use, as msgraph is)."""
    import aiohttp
    from httpx_aiohttp import AiohttpTransport

    class GraphTransport(AiohttpTransport):
        """Its aiohttp session never sends a request again by itself: aiohttp resends an
        idempotent method (``IDEMPOTENT_METHODS``: DELETE and PUT too) when a kept-alive
        connection drops or resets under it (aiohttp ``client.py``,
        ``retry_persistent_connection``), after the request reached Graph; a change goes
        out once (module docstring). ``_retry_connection`` is the switch aiohttp's own test
        client turns off (aiohttp ``test_utils.py``, ``TestClient.__init__``)."""

        def get_client(self) -> aiohttp.ClientSession:
            connector = aiohttp.TCPConnector(
                keepalive_timeout=self.limits.keepalive_expiry, ssl=self.ssl_context,
                limit=self.limits.max_connections or 0)
            session = aiohttp.ClientSession(connector=connector)
            session._retry_connection = False
            return session

    return GraphTransport(limits=limits, proxy=_env_proxy(endpoint))


def _env_proxy(endpoint: str) -> httpx.Proxy | None:
    """The proxy HTTP(S)_PROXY / ALL_PROXY name for ``endpoint`` unless NO_PROXY exempts
    it, as httpx read them before it had a transport of ours (httpx ignores them once given
    one: ``allow_env_proxies = trust_env and transport is None``, httpx ``_client.py``).
    Not aiohttp's ``trust_env``: that also adds ~/.netrc credentials, and a netrc entry for
    the host beside Graph's bearer header makes aiohttp refuse every call."""
    parts = urlparse(endpoint)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    url = proxies.get(parts.scheme) or proxies.get("all")
    return httpx.Proxy(url) if url else None


def build_graph_client(endpoint: str, credential: AsyncTokenCredential, *, timeout: float,
                       ) -> tuple["GraphServiceClient", Callable[[], Awaitable[None]]]:
    """A Graph client for any endpoint (global, sovereign cloud, or the sandbox tenant), and
    what closes its connections.

    One ``httpx.AsyncClient`` (its connection pool shared by every call of the process)
    behind the SDK's middleware chain (``GraphClientFactory.create_with_custom_middleware``)
    with three of kiota's defaults left out, each because its job is done elsewhere or is
    none here (kiota_http ``KiotaClientFactory.get_default_middleware``):

    - ``RetryHandler``: it would sleep for any Retry-After under 180 s, longer than a call
      may wait; ``GraphCaller`` retries within its budget instead (``with_retries``).
    - ``RedirectHandler``: redirects are never followed (kiota would follow them, and raise
      bare exceptions on a scheme change or an unreadable Location); httpx does not follow
      them either, and a response hook turns any 3xx into ``_Redirected``: Graph never
      redirects an API call, so a redirect means a wrong endpoint or something in between.
    - ``UrlReplaceHandler``: it rewrites URL segments from its replacement pairs, and its
      default has none (``UrlReplaceHandlerOption``), so all it did was parse every URL anew.

    Under httpx, the connections are aiohttp's (``httpx_aiohttp.AiohttpTransport``, through
    httpx's public transport interface; by httpx's maintainer): httpcore's pool checked every
    connection it held on every request, and held 16-32 in a burst, about 40% of the
    runtime's CPU per case (docs/BENCHMARKS.md). HTTP/1.1, as before. What a failure means
    (sent or not) is read from aiohttp's own error (``never_sent``). aiohttp sends an
    idempotent request (GET, DELETE) once more when a kept-alive connection drops under it
    (RFC 9112 9.3.1.1); a DELETE answered 404 the second time counts as done here.

    Kept: parameter-name decoding (``%24filter`` -> ``$filter``), the User-Agent, headers
    and body inspection (off unless asked), and Graph's telemetry handler
    (``SdkVersion`` and ``client-request-id`` headers, msgraph-core ``GraphTelemetryHandler``).
    """
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from kiota_http.kiota_client_factory import KiotaClientFactory
    from kiota_http.middleware import RedirectHandler, RetryHandler, UrlReplaceHandler
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph.graph_service_client import GraphServiceClient
    from msgraph_core import GraphClientFactory
    from msgraph_core.middleware import GraphTelemetryHandler

    host = urlparse(endpoint).hostname or ""
    auth = AzureIdentityAuthenticationProvider(
        credential, scopes=[graph_scope(endpoint)], allowed_hosts=[host])
    limits = httpx.Limits(max_connections=GRAPH_CONNECTIONS,
                          max_keepalive_connections=GRAPH_CONNECTIONS)
    transport = _graph_transport(endpoint, limits)
    http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                             limits=limits, transport=transport,
                             event_hooks={"request": [_note_method],
                                          "response": [_refuse_redirects]})
    _traced(http)
    left_out = (RetryHandler, RedirectHandler, UrlReplaceHandler)
    middleware = [handler for handler in KiotaClientFactory.get_default_middleware(None)
                  if not isinstance(handler, left_out)]
    middleware.append(GraphTelemetryHandler())
    adapter = GraphRequestAdapter(
        auth, client=GraphClientFactory.create_with_custom_middleware(middleware, client=http))
    adapter.base_url = f"{endpoint}/v1.0"

    async def close() -> None:
        # msgraph-core's transport (AsyncGraphTransport) has no aclose: closing the client
        # never reaches the transport under it, and aiohttp's session would stay open.
        await http.aclose()
        await transport.aclose()

    return GraphServiceClient(request_adapter=adapter), close


class _Redirected(Exception):
    """A 3xx answer: raised by the response hook, turned into GraphRequestError in _once."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def _note_method(request: httpx.Request) -> None:
    sent = _SENT.get()
    if sent is not None:
        sent.append(request.method.upper())


async def _refuse_redirects(response: httpx.Response) -> None:
    if 300 <= response.status_code < 400:
        raise _Redirected(response.status_code)


class GraphCaller:
    """Runs SDK calls: retries throttling (429, honouring Retry-After within the budget), 5xx
    and transport failures (for a change, only 429 and failures to connect: see the module's
    docstring), then translates errors into TransientError / PermanentError."""

    def __init__(self, endpoint: str, credential: AsyncTokenCredential, *, timeout: float,
                 max_retries: int, retry_delay: float = 0.5,
                 max_wait: float = DEFAULT_MAX_WAIT) -> None:
        self._endpoint = endpoint
        self.gate = ThrottleGate("Graph")  # one caller per process: all its calls share it
        self._origin = _origin(endpoint)
        self._credential = credential
        self._timeout = timeout
        self._budget = RetryBudget(retries=max_retries, max_wait=max_wait,
                                   base_delay=retry_delay)
        self._client: GraphServiceClient | None = None
        self._close: Callable[[], Awaitable[None]] | None = None

    @property
    def client(self) -> "GraphServiceClient":
        """Built on first use: importing msgraph is slow, and one client serves the process."""
        if self._client is None:
            self._client, self._close = build_graph_client(
                self._endpoint, self._credential, timeout=self._timeout)
        return self._client

    async def close(self) -> None:
        if self._close is not None:
            await self._close()

    async def call(self, what: str, action: Callable[["GraphServiceClient"], Awaitable[T]], *,
                   retry: bool = True, spent: list[float] | None = None) -> T:
        """Run ``action`` with the client. ``retry=False`` for a request that must never be
        sent twice (an alert comment: a repeated POST is a second comment). ``spent`` carries
        the seconds already waited by earlier requests of the same call (the pages of one
        listing): one budget for all of them."""
        budget = self._budget if retry else RetryBudget(retries=0)
        return await with_retries(budget, f"Graph: {what}", lambda: self._once(what, action),
                                  spent, self.gate)

    async def _once(self, what: str, action: Callable[["GraphServiceClient"], Awaitable[T]]) -> T:
        sent: list[str] = []
        token = _SENT.set(sent)
        try:
            return await self._attempt(what, action)
        except TransientError as error:
            raise _unsettled(error, sent) from None
        finally:
            _SENT.reset(token)

    async def _attempt(self, what: str,
                       action: Callable[["GraphServiceClient"], Awaitable[T]]) -> T:
        from azure.core.exceptions import ClientAuthenticationError
        from kiota_abstractions.api_error import APIError

        try:
            # httpx's timeout is per socket read: an answer that drips would outlive it. The
            # whole attempt has a deadline too.
            async with asyncio.timeout(self._timeout):
                return await action(self.client)
        except APIError as error:
            raise _translate(what, error) from None
        except (httpx.TimeoutException, TimeoutError) as error:
            raise _Failed(f"Graph: {what} timed out", unsent=never_sent(
                error, otherwise=isinstance(error, _UNSENT))) from None
        except httpx.TransportError as error:
            raise _Failed(f"Graph: {what} failed ({_transport_error(error)})",
                          unsent=never_sent(error, otherwise=isinstance(error, _UNSENT))
                          ) from None
        except ClientAuthenticationError as error:
            raise token_failure("Graph", error) from None
        except _Redirected as redirect:
            raise GraphRequestError(
                f"Graph: {what}: Graph answered a redirect ({redirect.status}); redirects are "
                "not followed (the token stays with the configured host): check "
                "GRAPH_ENDPOINT", redirect.status, "redirect") from None
        except Exception as error:
            raise _unexpected(what, error) from None

    async def send_json(self, what: str, build: "BuildRequest", *,
                        retry: bool = True, spent: list[float] | None = None) -> dict[str, Any]:
        """Send a request built from the SDK's builders; return the JSON object answered."""
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        async def send(client: "GraphServiceClient") -> bytes | None:
            result: bytes | None = await client.request_adapter.send_primitive_async(
                _expanded_once(client, build(client)), "bytes", {"XXX": ODataError})
            return result

        raw = await self.call(what, send, retry=retry, spent=spent)
        if not raw:
            return {}
        try:
            parsed = json.loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise TransientError(f"Graph: {what} returned a body that is not JSON") from None
        return parsed if isinstance(parsed, dict) else {}

    async def get_all(self, what: str, first: "BuildRequest") -> list[dict[str, Any]]:
        """GET a small collection: the items of every page (at most MAX_PAGES), in memory.

        Fails closed like ``pages``: a Global Administrator must never read as "no roles".
        A collection that may be large (alerts) is read with ``pages`` instead.
        """
        items: list[dict[str, Any]] = []
        async for page in self.pages(what, first, max_pages=MAX_PAGES):
            items.extend(page)
        return items

    async def pages(self, what: str, first: "BuildRequest", *,
                    max_pages: int = MAX_STREAMED_PAGES,
                    ) -> AsyncIterator[list[dict[str, Any]]]:
        """GET a collection one page at a time, following ``@odata.nextLink``: each page's
        items (JSON objects) are yielded as they arrive, so a failure on page N costs
        nothing of what the caller did with pages 1..N-1.

        Fails closed: a page without a ``value`` list (an empty 200, say) is a TransientError,
        never "no items". Next links are followed only to the configured Graph origin
        (PermanentError otherwise, the token never sent) and never twice; all pages share one
        retry budget. ``max_pages`` only stops a server that never stops paging: the pages
        read before it are yielded, then TransientError says so.
        """
        build = first
        spent = [0.0]
        seen: set[str] = set()
        for _ in range(max_pages):
            page = await self.send_json(what, build, spent=spent)
            values = page.get("value")
            if not isinstance(values, list):
                raise TransientError(f"Graph: {what} answered without a value list")
            items = [item for item in values if isinstance(item, dict)]
            if len(items) != len(values):
                log.warning("Graph: %s: %d item(s) of a page were not JSON objects; skipped",
                            what, len(values) - len(items))
            yield items
            link = page.get("@odata.nextLink")
            if link is None or link == "":
                return
            link = self._next_link(what, link)
            if link in seen:
                raise TransientError(f"Graph: {what} sent a next link it had sent before; "
                                     "stopped paging")
            seen.add(link)
            build = _next_page(link)
        raise TransientError(f"Graph: {what} returned more than {max_pages} pages; "
                             "stopped paging")

    def _next_link(self, what: str, link: object) -> str:
        """``link`` when it points at the configured Graph origin; PermanentError (logged)
        when it points elsewhere or cannot be read."""
        if not isinstance(link, str):
            raise PermanentError(f"Graph: {what} answered a next link that is not a string; "
                                 "refused")
        origin = _origin(link)
        if origin is None:
            log.error("Graph: %s answered a next link that cannot be read; refused", what)
            raise PermanentError(f"Graph: {what} answered a next link that cannot be read; "
                                 "refused, the token was not sent")
        if origin != self._origin:
            host = _netloc(link)
            log.error("Graph: %s answered with a next link to %r, not the configured Graph "
                      "host; refused", what, host)
            raise PermanentError(
                f"Graph: {what} answered with a next link to another host ({host!r}, not "
                f"{_netloc(self._endpoint)!r}); refused, the token was not sent")
        return link


class _Failed(TransientError):
    """A transient failure of one attempt; ``unsent``: Graph cannot have heard the request
    (no connection, or a 429: a throttled request fails, https://learn.microsoft.com/graph/
    throttling)."""

    def __init__(self, reason: str, *, unsent: bool, retry_after: float | None = None,
                 ) -> None:
        super().__init__(reason, retry_after=retry_after)
        self.unsent = unsent


def _unsettled(error: TransientError, sent: list[str]) -> TransientError:
    """``error`` as a plain TransientError (retried inside the call) unless a change was sent
    and may have been carried out: then OutcomeUnknown (never re-sent in this call)."""
    unsent = isinstance(error, _Failed) and error.unsent
    if unsent or all(method in _READS for method in sent):
        return TransientError(error.reason, retry_after=error.retry_after)
    return OutcomeUnknown(f"{error.reason}; the change may have been carried out: not sent "
                          "again in this call", retry_after=error.retry_after)


def _origin(url: str) -> str | None:
    """scheme://host:port of a URL, lower case; None when it cannot be read (no scheme or
    host, a bad port, an unbalanced IPv6 bracket). Userinfo (``https://graph@elsewhere``)
    never passes as the configured host."""
    try:
        parsed = urlparse(url)
        port = parsed.port
    except ValueError:
        return None
    scheme = parsed.scheme.lower()
    if (scheme not in ("http", "https") or not parsed.hostname
            or parsed.username is not None or parsed.password is not None):
        return None
    return f"{scheme}://{parsed.hostname.lower()}:{port or (443 if scheme == 'https' else 80)}"


def _netloc(url: str) -> str:
    """The host (and port) of a URL, for a message: never its path or query."""
    try:
        return urlparse(url).netloc.rsplit("@", 1)[-1][:100]
    except ValueError:
        return "(unreadable)"


def _unexpected(what: str, error: Exception) -> Exception:
    """Anything else the SDK raised: a body it could not read (an HTML page on 200, broken
    JSON) is transient; the rest is permanent. The reason names the kind, never the URL."""
    kind = type(error).__name__
    if isinstance(error, (ValueError, RecursionError)) or (
            "does not have a factory" in str(error)):
        log.warning("Graph: %s: the answer could not be read (%s)", what, kind)
        return TransientError(f"Graph: {what} answered a body that could not be read "
                              f"({kind}); not JSON from Graph")
    log.warning("Graph: %s failed unexpectedly (%s)", what, kind, exc_info=error)
    return PermanentError(f"Graph: {what} failed unexpectedly ({kind}); see the worker's log")


def _expanded_once(client: "GraphServiceClient",
                   info: "RequestInformation") -> "RequestInformation":
    """``info`` with its URL expanded once and set: the SDK's own expansion
    (``RequestInformation.url``: std-uritemplate over the template, the path and query
    parameters and the adapter's base URL, put in by the adapter's own
    ``set_base_url_for_request_information``), kept as the request's URL.

    Kiota reads ``RequestInformation.url`` three times per request (the bearer-token provider
    once, ``get_request_from_request_information`` twice) and expands the template anew each
    time; a URL that is set is read as set (as kiota's ``PageIterator`` sets a next page's).
    The URL sent is the same; the template stays for the adapter's trace attribute.
    """
    from kiota_http.httpx_request_adapter import HttpxRequestAdapter

    adapter = client.request_adapter
    if info.url_template and isinstance(adapter, HttpxRequestAdapter):
        adapter.set_base_url_for_request_information(info)
        info.url = info.url
    return info


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
        return _Failed(detail, unsent=status == 429,
                       retry_after=parse_retry_after(retry_after))
    if status == 404:
        return GraphRequestError(f"Graph: {what}: not found ({code})", status, code)
    if status in (401, 403):
        return GraphRequestError(detail + " (check the app's Graph permissions and roles)",
                                 status, code)
    return GraphRequestError(detail, status, code)
