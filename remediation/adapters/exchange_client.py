"""Exchange Online admin REST (the InvokeCommand endpoint behind ExchangeOnlineManagement v3).

An azure-core async pipeline: bearer token for the Exchange scope, a retry policy that
honours Retry-After (POST included: the cmdlets we call are safe to repeat), timeouts on
every request, the X-AnchorMailbox header, and @odata.nextLink paging.

Permissions: ``Exchange.ManageAsApp`` on "Office 365 Exchange Online" plus the Security
Administrator (or Exchange Administrator) directory role on the service principal.
"""

import json
import logging
from typing import Any
from urllib.parse import urlparse

from azure.core.credentials_async import AsyncTokenCredential

from remediation.domain.errors import PermanentError, TransientError

log = logging.getLogger(__name__)

ANCHOR_MAILBOX = "APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tenant}"
MAX_PAGES = 1000


class ExchangeError(Exception):
    """A cmdlet failed; ``status`` is the HTTP status, ``message`` Exchange's own words."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message

    @property
    def not_found(self) -> bool:
        text = self.message.lower()
        return "couldn't be found" in text or "could not be found" in text or (
            "notfound" in self.code.lower())

    @property
    def unblock_limit(self) -> bool:
        text = self.message.lower()
        return "limit" in text and "support" in text


class ExchangeCmdletError(PermanentError):
    """A permanent cmdlet failure, with Exchange's error for callers that tell kinds apart."""

    def __init__(self, reason: str, error: ExchangeError) -> None:
        super().__init__(reason)
        self.error = error


class ExchangeAdminClient:
    def __init__(self, endpoint: str, tenant_id: str, credential: AsyncTokenCredential, *,
                 timeout: float, max_retries: int, page_size: int = 1000) -> None:
        self._url = f"{endpoint.rstrip('/')}/adminapi/beta/{tenant_id}/InvokeCommand"
        self._scope = f"{_resource(endpoint)}/.default"
        self._tenant_id = tenant_id
        self._credential = credential
        self._timeout = timeout
        self._max_retries = max_retries
        self._page_size = page_size
        self._https = urlparse(endpoint).scheme == "https"
        self._pipeline: Any = None

    async def invoke(self, cmdlet: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        """Run a cmdlet and return every item of every page."""
        body = json.dumps({"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}})
        items: list[dict[str, Any]] = []
        url: str | None = self._url
        for _ in range(MAX_PAGES):
            if url is None:
                return items
            page = await self._post(cmdlet, url, body)
            items.extend(page.get("value") or [])
            url = page.get("@odata.nextLink")
        raise TransientError(f"Exchange: {cmdlet} returned more than {MAX_PAGES} pages")

    async def close(self) -> None:
        if self._pipeline is not None:
            await self._pipeline.close()

    async def _post(self, cmdlet: str, url: str, body: str) -> dict[str, Any]:
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError
        from azure.core.rest import HttpRequest

        request = HttpRequest("POST", url, content=body, headers={
            "Content-Type": "application/json",
            "X-AnchorMailbox": ANCHOR_MAILBOX.format(tenant=self._tenant_id),
            "Prefer": f"odata.maxpagesize={self._page_size}",
        })
        try:
            response = await self._client().send_request(
                request, enforce_https=self._https, retry_on_methods=["GET", "POST"],
                connection_timeout=min(self._timeout, 10.0), read_timeout=self._timeout)
            await response.read()
        except (ServiceRequestError, ServiceResponseError) as error:
            kind = "timed out" if "timeout" in type(error).__name__.lower() or (
                "timeout" in str(error).lower()) else "failed to connect"
            raise TransientError(
                f"Exchange: {cmdlet} {kind} after {self._max_retries + 1} attempts") from None
        if response.status_code >= 400:
            raise _classify(cmdlet, _error(response.status_code, response.text()))
        parsed: dict[str, Any] = response.json()
        for warning in parsed.get("@adminapi.warnings") or []:
            log.info("Exchange: %s warning: %s", cmdlet, warning)
        return parsed

    def _client(self) -> Any:
        if self._pipeline is None:
            from azure.core import AsyncPipelineClient
            from azure.core.pipeline.policies import (
                AsyncBearerTokenCredentialPolicy,
                AsyncRetryPolicy,
                ContentDecodePolicy,
                UserAgentPolicy,
            )

            self._pipeline = AsyncPipelineClient(
                base_url=self._url,
                policies=[
                    UserAgentPolicy("remediation-worker"),
                    AsyncRetryPolicy(retry_total=self._max_retries,
                                     retry_connect=self._max_retries,
                                     retry_read=self._max_retries,
                                     retry_status=self._max_retries,
                                     retry_backoff_factor=0.5, retry_backoff_max=30),
                    AsyncBearerTokenCredentialPolicy(self._credential, self._scope),
                    ContentDecodePolicy(),
                ],
            )
        return self._pipeline


def _resource(endpoint: str) -> str:
    parsed = urlparse(endpoint)
    return f"{parsed.scheme}://{parsed.netloc}"


def _error(status: int, text: str) -> ExchangeError:
    try:
        error = json.loads(text).get("error") or {}
    except (ValueError, AttributeError):
        return ExchangeError(status, "unparsed", text[:300])
    message = error.get("message") or ""
    details = [d.get("message") for d in error.get("details") or [] if isinstance(d, dict)]
    inner = ((error.get("innererror") or {}).get("internalException") or {}).get("message")
    for extra in [*details, inner]:
        if extra and extra not in message:
            message = f"{message} {extra}".strip()
    return ExchangeError(status, str(error.get("code") or "unknown"), message[:1000])


def _classify(cmdlet: str, error: ExchangeError) -> Exception:
    detail = f"Exchange: {cmdlet} failed with {error}"
    if error.status == 429 or error.status >= 500:
        return TransientError(detail)
    if error.unblock_limit:
        return ExchangeCmdletError(
            "Exchange: unblock limit reached for this account; only Microsoft support can "
            f"remove the block ({error.message})", error)
    # Missing RBAC often arrives as a 400 whose text says the caller "isn't allowed to call".
    if error.status in (401, 403) or "allowed to call" in error.message.lower():
        return ExchangeCmdletError(
            detail + " (check Exchange.ManageAsApp and the directory role)", error)
    return ExchangeCmdletError(detail, error)
