"""One credential per process: the managed identity in Azure, a static token for the sandbox."""

import time
from types import TracebackType
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential

from remediation.config import ConfigError, Settings


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


def build_credential(settings: Settings) -> AsyncTokenCredential:
    if settings.sandbox_token:
        if not settings.uses_loopback_endpoints:
            raise ConfigError("SANDBOX_TOKEN is honoured only for loopback endpoints")
        return StaticTokenCredential(settings.sandbox_token)
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential()
