"""A token Entra revoked (Continuous Access Evaluation, sandbox/cae.py) is refused by Graph
with a claims challenge; the request is retried once with a new token, and the requests after
it carry that new token, never the revoked one again."""

from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken

from remediation.bootstrap import _Shared, _tenant_ports
from remediation.sandbox import SandboxTenant
from tests.conftest import sandbox_settings

ADELE = "adele.vance@contoso.com"


class ClientCredentials:
    """What azure-identity's client secret credential does with CAE (``enable_cae``): a token
    kept in its cache until near expiry; a claims challenge skips the cache, asks Entra for a
    new token and keeps that one (``aad_client_base``: no cached token when claims are given).
    Entra here is the sandbox tenant, which signs the tokens its Graph accepts."""

    def __init__(self, tenant: SandboxTenant) -> None:
        self._tenant = tenant
        self._cached: AccessToken | None = None

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        if self._cached is None or kwargs.get("claims"):
            self._cached = AccessToken(self._tenant.access_token(), 2_000_000_000)
        return self._cached

    async def close(self) -> None:
        return None


async def test_the_token_a_claims_challenge_refused_is_not_sent_again(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    settings = sandbox_settings(sandbox_url, tenant, tmp_path / "db")
    closers: list[Any] = []
    # The adapters as the worker builds them: the credential behind the TokenGuard.
    shared = _Shared(settings, closers, ClientCredentials(tenant))  # type: ignore[arg-type]
    directory = _tenant_ports(settings, shared, closers).directory
    try:
        await directory.find_user(ADELE)
        tenant.revoke_tokens()  # the app's service principal disabled and enabled again
        await directory.find_user(ADELE)  # its calls refused once each, retried with claims
        challenged = sum(r.status == 401 for r in tenant.requests())
        for _ in range(3):
            await directory.find_user(ADELE)
    finally:
        for close in reversed(closers):
            await close()

    assert challenged > 0
    # The lookups after that carry the new token. Before: for a minute, every Graph call
    # sent the revoked token first (a refused request and a retry each).
    again = [r.path for r in tenant.requests() if r.status == 401][challenged:]
    assert again == []
