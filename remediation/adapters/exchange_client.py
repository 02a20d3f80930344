"""Exchange Online admin REST (the InvokeCommand endpoint behind ExchangeOnlineManagement v3).

An azure-core async pipeline (bearer token for the Exchange scope, timeouts on every request,
the X-AnchorMailbox header) and our own bounded retries (``retrying.with_retries``): a
``Retry-After`` is honoured only within the call's time budget, and errors are classified by
their cause, not their HTTP status (API-NOTES §6, from what CIPP, M365Permissions and
graph2otel see from the real endpoint):

- a body may be missing on any status (401 with only ``WWW-Authenticate``, 403 with HTML,
  an empty 200 or a 204 for a cmdlet with no output); each body is read once;
- the top-level error message is generic; the cause sits in ``details[].message`` or
  ``innererror.internalException`` (or ``internalexception``);
- the transient families (``ServerBusyException``, ``CmdletProxyNotAvailableFailure``,
  ``TransientException``, ``BackendCommunicationException``) arrive even as HTTP 400, and a
  permanent cause (not found, unblock limit) may arrive as a 5xx.

Paging follows ``@odata.nextLink`` or ``odata.nextLink`` only to the configured Exchange
host: the bearer token never goes anywhere else.

Permissions: ``Exchange.ManageAsApp`` on "Office 365 Exchange Online" plus the Exchange
Administrator directory role on the service principal (see ``remediation/permissions.py``).
No azure-core exception leaves this module: callers see TransientError or PermanentError.
"""

import json
import logging
from typing import Any
from urllib.parse import urlparse

from azure.core.credentials_async import AsyncTokenCredential

from remediation.adapters.retrying import RetryBudget, parse_retry_after, with_retries
from remediation.domain.errors import PermanentError, TransientError

log = logging.getLogger(__name__)

ANCHOR_MAILBOX = "APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tenant}"
MAX_PAGES = 1000
NEXT_LINK_KEYS = ("@odata.nextLink", "odata.nextLink")
MISSING_RIGHTS = ("grant the app Exchange.ManageAsApp (Office 365 Exchange Online) and assign "
                  "its service principal the Exchange Administrator directory role")
_TRANSIENT_CAUSES = ("serverbusyexception", "cmdletproxynotavailablefailure",
                     "transientexception", "backendcommunicationexception")
# Only the cmdlet's own "no such object", never an endpoint's 404 (a wrong tenant id must
# not read as "not listed").
_NOT_FOUND_CAUSES = ("managementobjectnotfound", "couldn't be found", "could not be found")
_PERMISSION_CAUSES = ("allowed to call", "access is denied", "accessdenied",
                      "unauthorizedaccessexception")


class ExchangeError(Exception):
    """A failed InvokeCommand; ``cause`` is Exchange's real text (details, inner error)."""

    def __init__(self, status: int, code: str, message: str, cause: str = "") -> None:
        text = " ".join(part for part in (message, cause) if part) or "no error text"
        super().__init__(f"{status} {code}: {text}")
        self.status, self.code, self.message, self.cause = status, code, text, cause

    def _mentions(self, needles: tuple[str, ...]) -> bool:
        text = f"{self.code} {self.message}".lower()
        return any(needle in text for needle in needles)

    @property
    def transient(self) -> bool:
        return self._mentions(_TRANSIENT_CAUSES)

    @property
    def not_found(self) -> bool:
        return self._mentions(_NOT_FOUND_CAUSES)

    @property
    def unblock_limit(self) -> bool:
        text = self.message.lower()
        return "unblocklimit" in text or ("limit" in text and "support" in text)

    @property
    def missing_rights(self) -> bool:
        return self.status in (401, 403) or self._mentions(_PERMISSION_CAUSES)


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
        self._scope = f"{self._origin}/.default"
        self._tenant_id = tenant_id
        self._credential = credential
        self._timeout = timeout
        self._budget = budget or RetryBudget(retries=max_retries)
        self._page_size = page_size
        self._https = urlparse(endpoint).scheme == "https"
        self._pipeline: Any = None

    async def invoke(self, cmdlet: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        """Run a cmdlet and return every item of every page.

        Raises ExchangeCmdletError (permanent; ``.error`` tells not-found, unblock limit and
        missing rights apart), TransientError (after the retry budget; ``retry_after`` set when
        the service asked for a delay), or PermanentError for a next link to another host.
        """
        body = json.dumps({"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}})
        items: list[dict[str, Any]] = []
        url: str | None = self._url
        for _ in range(MAX_PAGES):
            if url is None:
                return items
            page = await self._post_with_retries(cmdlet, url, body)
            value = page.get("value")
            items.extend(item for item in value or [] if isinstance(item, dict))
            url = self._next_link(cmdlet, page)
        raise TransientError(f"Exchange: {cmdlet} returned more than {MAX_PAGES} pages")

    async def close(self) -> None:
        if self._pipeline is not None:
            await self._pipeline.close()

    async def _post_with_retries(self, cmdlet: str, url: str, body: str) -> dict[str, Any]:
        return await with_retries(self._budget, f"Exchange: {cmdlet}",
                                  lambda: self._post(cmdlet, url, body))

    def _next_link(self, cmdlet: str, page: dict[str, Any]) -> str | None:
        link = next((page[key] for key in NEXT_LINK_KEYS if page.get(key)), None)
        if link is None:
            return None
        if not isinstance(link, str) or _origin(link) != self._origin:
            host = urlparse(link).netloc if isinstance(link, str) else "?"
            log.error("Exchange: %s answered with a next link to %r, not the configured "
                      "Exchange host; refused", cmdlet, host)
            raise PermanentError(
                f"Exchange: {cmdlet} answered with a next link to another host ({host!r}, "
                f"not {urlparse(self._origin).netloc!r}); refused, the token was not sent")
        return link

    async def _post(self, cmdlet: str, url: str, body: str) -> dict[str, Any]:
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            ServiceRequestError,
            ServiceResponseError,
        )
        from azure.core.rest import HttpRequest

        request = HttpRequest("POST", url, content=body, headers={
            "Content-Type": "application/json",
            "X-AnchorMailbox": ANCHOR_MAILBOX.format(tenant=self._tenant_id),
            "Prefer": f"odata.maxpagesize={self._page_size}",
        })
        try:
            response = await self._client().send_request(
                request, enforce_https=self._https,
                connection_timeout=min(self._timeout, 10.0), read_timeout=self._timeout)
            raw = bytes(response.content)  # read once, by send_request (stream=False)
        except ClientAuthenticationError as error:
            raise TransientError(
                f"cannot get a token for Exchange: {type(error).__name__}") from None
        except (ServiceRequestError, ServiceResponseError) as error:
            kind = "timed out" if "timeout" in type(error).__name__.lower() or (
                "timeout" in str(error).lower()) else "failed to connect"
            raise TransientError(f"Exchange: {cmdlet} {kind}") from None
        except AzureError as error:
            raise TransientError(f"Exchange: {cmdlet} failed: {type(error).__name__}") from None
        status = response.status_code
        if status >= 400:
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
                UserAgentPolicy,
            )

            # No azure-core retry policy: ours (with_retries) classifies by cause and keeps
            # to the budget; no ContentDecodePolicy: we read each body once, ourselves.
            self._pipeline = AsyncPipelineClient(
                base_url=self._url,
                policies=[
                    UserAgentPolicy("remediation-worker"),
                    AsyncBearerTokenCredentialPolicy(self._credential, self._scope),
                ],
            )
        return self._pipeline


def _origin(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.scheme.lower()}://{(parsed.netloc or '').lower()}"


def _error(status: int, raw: bytes) -> ExchangeError:
    """Exchange's error body, wherever its cause sits; any body, or none, is accepted."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return ExchangeError(status, "unparsed", "", " ".join(text.split())[:300])
    causes: list[str] = []
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("message"):
            causes.append(str(detail["message"]))
    inner = error.get("innererror")
    if isinstance(inner, dict):
        for key, value in inner.items():
            if key.lower() == "internalexception" and isinstance(value, dict):
                causes.extend(str(value[k]) for k in ("message", "type") if value.get(k))
    unique = [cause for cause in dict.fromkeys(causes) if cause]
    return ExchangeError(status, str(error.get("code") or "unknown"),
                         str(error.get("message") or ""), " ".join(unique)[:1000])


def _classify(cmdlet: str, error: ExchangeError, retry_after: float | None) -> Exception:
    """The cause decides: transient families even on 400, permanent causes even on 5xx."""
    detail = f"Exchange: {cmdlet} failed with {error}"
    if error.transient:
        return TransientError(detail, retry_after=retry_after)
    if error.not_found:
        return ExchangeCmdletError(detail, error)
    if error.unblock_limit:
        return ExchangeCmdletError(
            "Exchange: unblock limit reached for this account; only Microsoft support can "
            f"remove the block ({error.message})", error)
    if error.missing_rights:
        return ExchangeCmdletError(
            f"Exchange answered {error.status} to {cmdlet}: {MISSING_RIGHTS} "
            f"({error.message})", error)
    if error.status in (408, 429) or error.status >= 500:
        return TransientError(detail, retry_after=retry_after)
    return ExchangeCmdletError(detail, error)
