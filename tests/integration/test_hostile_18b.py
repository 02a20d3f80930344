"""Hostile tests (round 18b): a change whose request may have reached Graph is never sent
again in the same call, whatever layer would resend it (aiohttp's own retry included)."""

from collections.abc import AsyncIterator

import pytest

from remediation.adapters.credentials import StaticTokenCredential
from remediation.adapters.graph_caller import GraphCaller
from remediation.adapters.graph_directory import GraphDirectory
from remediation.domain.errors import OutcomeUnknown, PermanentError
from remediation.sandbox import Fault, SandboxTenant

ADELE = "adele.vance@contoso.com"


@pytest.fixture
async def caller(sandbox_url: str, tenant: SandboxTenant) -> AsyncIterator[GraphCaller]:
    caller = GraphCaller(sandbox_url, StaticTokenCredential(tenant.token), timeout=0.5,
                         max_retries=3, retry_delay=0.1)
    yield caller
    await caller.close()


def deletes(tenant: SandboxTenant) -> list[str]:
    return [r.path for r in tenant.requests() if r.method == "DELETE"]


async def test_a_delete_whose_kept_alive_connection_drops_is_sent_once(
        caller: GraphCaller, tenant: SandboxTenant) -> None:
    """aiohttp resends an idempotent method (DELETE, PUT) by itself when a kept-alive
    connection drops under it: the removal reached Graph, so it must not go out again."""
    adele = tenant.user(ADELE)
    tenant.add_fault(Fault(disconnect=True, method="DELETE"))
    await GraphDirectory(caller).find_user(ADELE)  # a kept-alive connection
    with pytest.raises(OutcomeUnknown):
        await caller.call("delete sign-in method", lambda c: c.users.by_user_id(
            adele.id).authentication.phone_methods.by_phone_authentication_method_id(
                "3179e48a-750b-4051-897c-87b9720928f7").delete())
    assert len(deletes(tenant)) == 1


async def test_graph_goes_through_the_proxy_the_environment_names(
        sandbox_url: str, tenant: SandboxTenant, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP(S)_PROXY named Graph's way out before Graph moved onto aiohttp (httpx honours
    it; Exchange's azure-core transport still does): a site that allows only its proxy
    out must not see Graph calls go around it."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    seen: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append(str(request.url))
        return web.json_response({"error": {"code": "Forbidden", "message": "proxy"}},
                                 status=403)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{server.port}")
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        caller = GraphCaller(sandbox_url, StaticTokenCredential(tenant.token), timeout=0.5,
                             max_retries=0, retry_delay=0.1)
        try:
            with pytest.raises(PermanentError, match="proxy"):  # the proxy refuses
                await GraphDirectory(caller).find_user(ADELE)
        finally:
            await caller.close()
    finally:
        await server.close()
    assert seen, "Graph went around the proxy"
