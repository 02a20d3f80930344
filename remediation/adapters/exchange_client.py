"""Exchange Online admin REST (the InvokeCommand endpoint behind ExchangeOnlineManagement v3).

An azure-core async pipeline (bearer token for the Exchange scope, timeouts on every request,
the X-AnchorMailbox header) and our own bounded retries (``retrying.with_retries``): a
``Retry-After`` is honoured only within the call's time budget, and errors are classified by
their cause, not their HTTP status (as CIPP, M365Permissions and graph2otel see the real
endpoint answer):

- a body may be missing on any status (401 with only ``WWW-Authenticate``, 403 with HTML,
  an empty 200 or a 204 for a cmdlet with no output); each body is read once;
- the top-level error message is generic; the cause sits in ``details[].message`` or
  ``innererror.internalException`` (or ``internalexception``);
- the transient families (``ServerBusyException``, ``CmdletProxyNotAvailableFailure``,
  ``TransientException``, ``BackendCommunicationException``) arrive even as HTTP 400, and a
  permanent cause (not found, unblock limit) may arrive as a 5xx.

A cmdlet that changes something (any verb but Get and Search) is never sent twice in one call
once it may have reached Exchange: a timeout, an answer lost after sending, a 5xx or a
transient family raises OutcomeUnknown (Exchange may have carried it out, as it does a
``Remove-BlockedSenderAddress`` answered late) and the step decides at its next attempt. Only
a 429 is retried inside the call (a throttled request is refused, as for Graph), and a
request that never left (azure-core's ServiceRequestError: "no request was sent").

Paging follows ``@odata.nextLink`` or ``odata.nextLink`` only to the configured Exchange
host: the bearer token never goes anywhere else.

Permissions: ``Exchange.ManageAsApp`` on "Office 365 Exchange Online" plus the Exchange
Administrator directory role on the service principal (see ``remediation/permissions.py``).
No azure-core exception leaves this module: callers see TransientError or PermanentError.
"""

import asyncio
import json
import logging
from functools import partial
from typing import Any
from urllib.parse import urlparse

from azure.core.credentials_async import AsyncTokenCredential

from remediation.adapters.credentials import token_failure
from remediation.adapters.never_sent import never_sent
from remediation.adapters.retrying import RetryBudget, parse_retry_after, with_retries
from remediation.adapters.throttle_gate import ThrottleGate
from remediation.adapters.token_scopes import exchange_scope
from remediation.domain.errors import OutcomeUnknown, PermanentError, TransientError

log = logging.getLogger(__name__)

ANCHOR_MAILBOX = "APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tenant}"
MAX_PAGES = 1000
NEXT_LINK_KEYS = ("@odata.nextLink", "odata.nextLink")
MISSING_RIGHTS = ("grant the app Exchange.ManageAsApp (Office 365 Exchange Online) and assign "
                  "its service principal the Exchange Administrator directory role")
_TRANSIENT_CAUSES = ("serverbusyexception", "cmdletproxynotavailablefailure",
                     "transientexception", "backendcommunicationexception")
# Only the cmdlet's own "no such object", inside Exchange's structured error: never a
# gateway page or an endpoint's 404 (a wrong tenant id must not read as "not listed").
_NOT_FOUND_CAUSES = ("managementobjectnotfound", "couldn't be found", "could not be found")
# Exchange's own words for an app without the rights, on any status and anywhere in the body:
# "User is not allowed to call <Cmdlet>" (office-docs-powershell#7970, a 401 with a body) and
# "The role assigned to application <id> isn't supported in this scenario" (Microsoft365DSC
# #4530, maester#718). They decide before the status does: a 5xx saying so is no outage.
_RIGHTS_WORDS = ("not allowed to call", "isn't supported in this scenario",
                 "is not supported in this scenario")
_PERMISSION_CAUSES = ("allowed to call", "access is denied", "accessdenied",
                      "unauthorizedaccessexception", *_RIGHTS_WORDS)
# The unblock limit's exact text is documented nowhere and no public sample of it was found:
# recognise the family, not one sentence.
_UNBLOCK_LIMIT_CAUSES = (("unblocklimit",), ("unblock", "limit"), ("unblock", "quota"),
                         ("unblock", "maximum"), ("maximum number", "support"),
                         ("limit", "support"))
_PAGINATION_EXPIRED = "expired or invalid pagination request"
_SHOWN = 500  # characters of Exchange's text kept in a reason
_READ_VERBS = ("get-", "search-")  # cmdlets that change nothing; any other may


class ExchangeError(Exception):
    """A failed InvokeCommand. ``causes`` are every text of Exchange's structured error
    (``details``, ``innererror`` at any depth, any key casing); ``structured`` is False for a
    body that was not Exchange's JSON error (a gateway page, nothing at all)."""

    def __init__(self, status: int, code: str, message: str, causes: tuple[str, ...] = (),
                 structured: bool = True) -> None:
        self.status, self.code, self.structured = status, code, structured
        self.causes = tuple(dict.fromkeys(cause for cause in causes if cause))
        self.text = " ".join((code, message, *self.causes)).lower()
        shown = " ".join(part for part in (message, *self.causes) if part) or "no error text"
        self.message = " ".join(shown.split())[:_SHOWN]
        super().__init__(f"{status} {code}: {self.message}")

    def _mentions(self, needles: tuple[str, ...]) -> bool:
        return any(needle in self.text for needle in needles)

    @property
    def transient(self) -> bool:
        return self._mentions(_TRANSIENT_CAUSES)

    @property
    def not_found(self) -> bool:
        """The cmdlet said its object does not exist (in its structured error)."""
        return self.structured and any(
            needle in cause.lower() for cause in self.causes for needle in _NOT_FOUND_CAUSES)

    def not_found_about(self, subject: str) -> bool:
        """"Not found", and the cause names ``subject``: only then is it an answer about it."""
        wanted = subject.lower()
        return self.not_found and any(
            wanted in cause.lower() and any(needle in cause.lower()
                                            for needle in _NOT_FOUND_CAUSES)
            for cause in self.causes)

    @property
    def unblock_limit(self) -> bool:
        return any(all(part in self.text for part in parts) for parts in _UNBLOCK_LIMIT_CAUSES)

    @property
    def missing_rights(self) -> bool:
        return self.status in (401, 403) or self._mentions(_PERMISSION_CAUSES)

    @property
    def says_missing_rights(self) -> bool:
        """Exchange said so in its own words (whatever the status)."""
        return self._mentions(_RIGHTS_WORDS)

    @property
    def pagination_expired(self) -> bool:
        return _PAGINATION_EXPIRED in self.text


class ExchangeCmdletError(PermanentError):
    """A permanent cmdlet failure, with Exchange's error for callers that tell kinds apart."""

    def __init__(self, reason: str, error: ExchangeError) -> None:
        super().__init__(reason)
        self.error = error


class ExchangeAdminClient:
    def __init__(self, endpoint: str, tenant_id: str, credential: AsyncTokenCredential, *,
                 timeout: float, max_retries: int, page_size: int = 1000,
                 budget: RetryBudget | None = None) -> None:
        self._url = f"{endpoint.rstrip('/')}/adminapi/beta/{tenant_id}/InvokeCommand"
        self._origin = _origin(endpoint)
        self._scope = exchange_scope(endpoint)
        self._tenant_id = tenant_id
        self._credential = credential
        self._timeout = timeout
        self._budget = budget or RetryBudget(retries=max_retries)
        self._page_size = page_size
        self._https = urlparse(endpoint).scheme == "https"
        self._pipeline: Any = None
        self.gate = ThrottleGate("Exchange")  # one client per process: all its calls share it

    async def invoke(self, cmdlet: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        """Run a cmdlet and return every item of every page.

        Raises ExchangeCmdletError (permanent; ``.error`` tells not-found, unblock limit and
        missing rights apart), TransientError (after the retry budget, which holds for all
        pages together; ``retry_after`` set when the service asked for a delay), or
        PermanentError for a next link to another host.
        """
        body = json.dumps({"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}})
        spent = [0.0]
        try:
            return await self._pages(cmdlet, body, spent)
        except ExchangeCmdletError as failure:
            if not failure.error.pagination_expired:
                raise
        # A next link Exchange no longer honours ("400 Expired or Invalid pagination request",
        # as a public tool replaying links reported it): read the list again, once.
        log.warning("Exchange: %s next link expired; reading the list again", cmdlet)
        try:
            return await self._pages(cmdlet, body, spent)
        except ExchangeCmdletError as failure:
            if failure.error.pagination_expired:
                raise TransientError(f"Exchange: {cmdlet} next links expired twice while "
                                     "paging; try again later") from None
            raise

    async def _pages(self, cmdlet: str, body: str, spent: list[float]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = self._url
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            if url is None:
                return items
            seen.add(url)
            page = await with_retries(self._budget, f"Exchange: {cmdlet}",
                                      partial(self._post, cmdlet, url, body), spent, self.gate)
            value = page.get("value")
            items.extend(item for item in value or [] if isinstance(item, dict))
            url = self._next_link(cmdlet, page)
            if url is not None and url in seen:
                raise TransientError(f"Exchange: {cmdlet} sent a next link it had sent before; "
                                     "stopped paging")
        raise TransientError(f"Exchange: {cmdlet} returned more than {MAX_PAGES} pages")

    async def close(self) -> None:
        if self._pipeline is not None:
            await self._pipeline.close()

    async def _post_with_retries(self, cmdlet: str, url: str, body: str) -> dict[str, Any]:
        return await with_retries(self._budget, f"Exchange: {cmdlet}",
                                  lambda: self._post(cmdlet, url, body), gate=self.gate)

    def _next_link(self, cmdlet: str, page: dict[str, Any]) -> str | None:
        link = next((page[key] for key in NEXT_LINK_KEYS if page.get(key)), None)
        if link is None:
            return None
        origin = _origin(link) if isinstance(link, str) else None
        if origin != self._origin:
            host = _netloc(link) if isinstance(link, str) else "?"
            log.error("Exchange: %s answered with a next link to %r, not the configured "
                      "Exchange host; refused", cmdlet, host)
            raise PermanentError(
                f"Exchange: {cmdlet} answered with a next link to another host ({host!r}, "
                f"not {urlparse(self._origin).netloc!r}); refused, the token was not sent")
        return str(link)

    async def _post(self, cmdlet: str, url: str, body: str) -> dict[str, Any]:
        from azure.core.rest import HttpRequest

        request = HttpRequest("POST", url, content=body, headers={
            "Content-Type": "application/json",
            "X-AnchorMailbox": ANCHOR_MAILBOX.format(tenant=self._tenant_id),
            "Prefer": f"odata.maxpagesize={self._page_size}",
        })
        try:
            return await self._send(cmdlet, request)
        except TransientError as error:
            raise _unsettled(cmdlet, error) from None

    async def _send(self, cmdlet: str, request: Any) -> dict[str, Any]:
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            ServiceRequestError,
            ServiceResponseError,
        )

        try:
            # The transport's timeouts are per socket read: a dripping answer would outlive
            # them, so the whole request has a deadline too.
            async with asyncio.timeout(self._timeout):
                response = await self._client().send_request(
                    request, enforce_https=self._https,
                    connection_timeout=min(self._timeout, 10.0), read_timeout=self._timeout)
                raw = bytes(response.content)  # read once, by send_request (stream=False)
        except TimeoutError:
            raise TransientError(f"Exchange: {cmdlet} timed out") from None
        except ClientAuthenticationError as error:
            raise token_failure("Exchange", error) from None
        except (ServiceRequestError, ServiceResponseError) as error:
            kind = "timed out" if "timeout" in type(error).__name__.lower() or (
                "timeout" in str(error).lower()) else "failed to connect"
            raise _Failed(f"Exchange: {cmdlet} {kind}",
                          unsent=never_sent(error, otherwise=isinstance(
                              error, ServiceRequestError))) from None
        except AzureError as error:
            raise TransientError(f"Exchange: {cmdlet} failed: {type(error).__name__}") from None
        status = response.status_code
        if 300 <= status < 400:
            raise PermanentError(
                f"Exchange: {cmdlet} answered a redirect ({status}); redirects are not "
                "followed (the token stays with the configured host): check EXCHANGE_ENDPOINT")
        if status >= 400 or status < 200:
            raise _classify(cmdlet, _error(status, raw),
                            parse_retry_after(response.headers.get("Retry-After")))
        if not raw.strip():
            return {}  # 204, or an empty 200: a cmdlet with no output succeeded
        try:
            parsed = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            raise TransientError(
                f"Exchange: {cmdlet} answered {status} with a body that is not JSON") from None
        if not isinstance(parsed, dict):
            raise TransientError(f"Exchange: {cmdlet} answered {status} with an unexpected body")
        for warning in parsed.get("@adminapi.warnings") or []:
            log.info("Exchange: %s warning: %s", cmdlet, warning)
        return parsed

    def _client(self) -> Any:
        if self._pipeline is None:
            from azure.core import AsyncPipelineClient
            from azure.core.pipeline.policies import (
                AsyncBearerTokenCredentialPolicy,
                DistributedTracingPolicy,
                UserAgentPolicy,
            )

            # No azure-core retry policy: ours (with_retries) classifies by cause and keeps
            # to the budget; no ContentDecodePolicy: we read each body once, ourselves. The
            # tracing policy makes each request a client span when telemetry is on (its URL
            # with every query value but api-version redacted), as in every Azure SDK.
            self._pipeline = AsyncPipelineClient(
                base_url=self._url,
                policies=[
                    UserAgentPolicy("remediation-worker"),
                    AsyncBearerTokenCredentialPolicy(self._credential, self._scope),
                    DistributedTracingPolicy(),
                ],
            )
        return self._pipeline


def _origin(url: str) -> str | None:
    """scheme://host:port of a URL, lower case; None when it cannot be read. Userinfo
    (``https://host@elsewhere``) never passes as the configured host."""
    try:
        parsed = urlparse(url)
        port = parsed.port
    except ValueError:
        return None
    if parsed.username is not None or parsed.password is not None or not parsed.hostname:
        return None
    default = {"https": 443, "http": 80}.get(parsed.scheme.lower())
    return f"{parsed.scheme.lower()}://{parsed.hostname.lower()}:{port or default}"


def _netloc(url: str) -> str:
    try:
        return urlparse(url).netloc[:100]
    except ValueError:
        return "(unreadable)"


def _texts(value: object, depth: int = 0) -> list[str]:
    """Every string inside an error object, depth first (Exchange nests its causes)."""
    if depth > 8:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _texts(item, depth + 1)]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item, depth + 1)]
    return []


def _error(status: int, raw: bytes) -> ExchangeError:
    """Exchange's error body, wherever its cause sits; any body, or none, is accepted."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text) if text else None
    except (ValueError, RecursionError):
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return ExchangeError(status, "unparsed", "", (text,), structured=False)
    fields = {str(key).lower(): value for key, value in error.items()}
    causes = [*_texts(fields.get("details")), *_texts(fields.get("innererror"))]
    for key, value in fields.items():
        if key not in ("code", "message", "details", "innererror"):
            causes += _texts(value)
    return ExchangeError(status, str(fields.get("code") or "unknown"),
                         str(fields.get("message") or ""), tuple(causes))


def _classify(cmdlet: str, error: ExchangeError, retry_after: float | None) -> Exception:
    """The cause decides: transient families even on 400, permanent causes even on 5xx."""
    detail = f"Exchange: {cmdlet} failed with {error}"
    if error.says_missing_rights:
        return _missing_rights(cmdlet, error)
    if error.transient:
        return _Failed(detail, unsent=error.status == 429, retry_after=retry_after)
    if error.not_found or error.pagination_expired:
        return ExchangeCmdletError(detail, error)
    if error.unblock_limit:
        return ExchangeCmdletError(
            "Exchange: unblock limit reached for this account; only Microsoft support can "
            f"remove the block ({error.message})", error)
    if error.missing_rights:
        return _missing_rights(cmdlet, error)
    if error.status in (408, 429) or error.status >= 500:
        return _Failed(detail, unsent=error.status == 429, retry_after=retry_after)
    return ExchangeCmdletError(detail, error)


class _Failed(TransientError):
    """A transient failure of one request; ``unsent``: Exchange cannot have carried it out
    (it never left, or a 429 refused it)."""

    def __init__(self, reason: str, *, unsent: bool, retry_after: float | None = None,
                 ) -> None:
        super().__init__(reason, retry_after=retry_after)
        self.unsent = unsent


def _unsettled(cmdlet: str, error: TransientError) -> TransientError:
    """``error`` as a plain TransientError (retried inside the call) for a read or a request
    Exchange cannot have carried out; OutcomeUnknown (never re-sent in this call) for a
    change that may have been."""
    if cmdlet.lower().startswith(_READ_VERBS) or (isinstance(error, _Failed) and error.unsent):
        return TransientError(error.reason, retry_after=error.retry_after)
    return OutcomeUnknown(f"{error.reason}; Exchange may have carried it out: not sent again "
                          "in this call", retry_after=error.retry_after)


def _missing_rights(cmdlet: str, error: ExchangeError) -> ExchangeCmdletError:
    return ExchangeCmdletError(
        f"Exchange answered {error.status} to {cmdlet}: {MISSING_RIGHTS} ({error.message})",
        error)
