"""One credential per process: the managed identity in Azure, a static token for the sandbox.

Whatever a credential raises when it cannot give a token (azure-identity's
CredentialUnavailableError and ClientAuthenticationError, but also a bare OSError, ValueError
or an HTTP library's error from a managed identity endpoint) reaches the adapters as one
ClientAuthenticationError (``TokenGuard``), which each adapter turns into a TransientError
"cannot get a token for <service>: <why>" (``token_failure``): a reason an operator can act
on, retried like any outage, never a crashed poll or an "unexpected" error.

``TokenGuard`` also hands a token it got back out for up to ``REUSE`` seconds: the Graph SDK
asks for a token on every request (kiota's ``AzureIdentityAccessTokenProvider``), and
azure-identity's own cache look-up (msal's ``TokenCache.search``, under the managed identity
credential) cost about 7% of the worker's CPU under a burst (docs/BENCHMARKS.md). Never a
token within ``REFRESH_MARGIN`` of its expiry, nor for a claims challenge (Continuous Access
Evaluation): those go to the credential each time, and a claims challenge forgets every token
remembered (the one the resource refused would otherwise be shown again for up to ``REUSE``:
kiota retries a request once with the claims, ``retry_cae_response_if_required``, then asks
without them). The credential is asked at least once a
``REUSE``, so azure-identity's own refresh still happens on time (five minutes before expiry,
or once the token's ``refresh_on`` passed: ``get_refresh_status`` in
``azure/identity/_internal/utils.py``).
"""

import re
import time
from types import TracebackType
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError

from remediation.config import ConfigError, Settings
from remediation.domain.errors import PermanentError, RemediationError, TransientError


class StaticTokenCredential:
    """Hands out a fixed bearer token. Only ever built for loopback endpoints."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "StaticTokenCredential(<redacted>)"

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> "StaticTokenCredential":
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None = None,
                        exc_value: BaseException | None = None,
                        traceback: TracebackType | None = None) -> None:
        return None


REUSE = 60.0  # seconds a token is handed out again without asking the credential
REFRESH_MARGIN = 600.0  # seconds before its expiry a token is no longer handed out again


class TokenGuard:
    """Wraps a credential so that any failure to get a token is a ClientAuthenticationError
    naming the credential's own error (kind and first line); a token it got is handed out
    again for the same request for up to ``REUSE`` seconds (the module's note)."""

    def __init__(self, inner: AsyncTokenCredential) -> None:
        self._inner = inner
        # (scopes, options) -> (token, monotonic time it was got)
        self._recent: dict[tuple[tuple[str, ...], str], tuple[AccessToken, float]] = {}
        self._forgotten = 0  # how many times every remembered token was forgotten

    def __repr__(self) -> str:
        return f"TokenGuard({self._inner!r})"

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        if kwargs.get("claims"):
            # A claims challenge (CAE) says a token a resource was shown is revoked: none
            # remembered is handed out again, nor one asked for before and got after this.
            self._forget()
            return await self._asked(*scopes, **kwargs)
        key = (scopes, repr(sorted(kwargs.items())))
        if (recent := self._recent.get(key)) is not None:
            token, got = recent
            if (time.monotonic() - got < REUSE
                    and token.expires_on - time.time() > REFRESH_MARGIN):
                return token
        forgotten = self._forgotten
        token = await self._asked(*scopes, **kwargs)
        if forgotten == self._forgotten:
            self._recent[key] = (token, time.monotonic())
        return token

    def _forget(self) -> None:
        self._recent.clear()
        self._forgotten += 1

    async def _asked(self, *scopes: str, **kwargs: Any) -> AccessToken:
        try:
            return await self._inner.get_token(*scopes, **kwargs)
        except ClientAuthenticationError:
            raise
        except Exception as error:
            why = _first_line(error)
            kind = type(error).__name__
            raise _TokenFailure(message=f"{kind}: {why}" if why else kind) from error

    async def close(self) -> None:
        self._forget()
        await self._inner.close()

    async def __aenter__(self) -> "TokenGuard":
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None = None,
                        exc_value: BaseException | None = None,
                        traceback: TracebackType | None = None) -> None:
        await self.close()


class _TokenFailure(ClientAuthenticationError):
    """Another kind of error a credential raised; its message names that kind."""


_SETTING = {"Graph": "GRAPH_ENDPOINT", "Exchange": "EXCHANGE_ENDPOINT"}


def token_failure(service: str, error: ClientAuthenticationError) -> RemediationError:
    """The error of a credential that gave no token for ``service``: transient, except
    Entra's ``AADSTS500011`` (the resource is no name of any service principal in the tenant):
    asking again cannot help, so it is permanent, naming the setting the scope comes from."""
    why = _first_line(error)
    if "AADSTS500011" in str(error):
        setting = _SETTING.get(service, "the endpoint")
        return PermanentError(f"cannot get a token for {service}: Entra does not know the "
                              f"resource asked for (AADSTS500011): check {setting}")
    if why.startswith("Operation returned an invalid status"):  # azure-core's default text
        why = ""
    kind = type(error).__name__
    if isinstance(error, _TokenFailure) and why:
        return TransientError(f"cannot get a token for {service}: {why}")
    return TransientError(f"cannot get a token for {service}: {why} ({kind})" if why
                          else f"cannot get a token for {service}: {kind}")


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_WHY_LIMIT = 200


def _first_line(error: BaseException) -> str:
    """The first line of an error's message, printable and short (azure-identity lists every
    credential it tried on the lines after it)."""
    message = getattr(error, "message", None)
    text = message if isinstance(message, str) else str(error)
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = _UNPRINTABLE.sub(" ", line)
    return line if len(line) <= _WHY_LIMIT else line[:_WHY_LIMIT - 3] + "..."


def build_credential(settings: Settings) -> AsyncTokenCredential:
    if settings.sandbox_token:
        if not settings.uses_loopback_endpoints:
            raise ConfigError("SANDBOX_TOKEN is honoured only for loopback endpoints")
        return StaticTokenCredential(settings.sandbox_token)
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential()
