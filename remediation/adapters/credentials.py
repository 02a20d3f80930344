"""One credential per process: the managed identity in Azure, a static token for the sandbox.

Whatever a credential raises when it cannot give a token (azure-identity's
CredentialUnavailableError and ClientAuthenticationError, but also a bare OSError, ValueError
or an HTTP library's error from a managed identity endpoint) reaches the adapters as one
ClientAuthenticationError (``TokenGuard``), which each adapter turns into a TransientError
"cannot get a token for <service>: <why>" (``token_failure``): a reason an operator can act
on, retried like any outage, never a crashed poll or an "unexpected" error.
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


class TokenGuard:
    """Wraps a credential so that any failure to get a token is a ClientAuthenticationError
    naming the credential's own error (kind and first line)."""

    def __init__(self, inner: AsyncTokenCredential) -> None:
        self._inner = inner

    def __repr__(self) -> str:
        return f"TokenGuard({self._inner!r})"

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        try:
            return await self._inner.get_token(*scopes, **kwargs)
        except ClientAuthenticationError:
            raise
        except Exception as error:
            why = _first_line(error)
            kind = type(error).__name__
            raise _TokenFailure(message=f"{kind}: {why}" if why else kind) from error

    async def close(self) -> None:
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
