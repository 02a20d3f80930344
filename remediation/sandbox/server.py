"""The sandbox tenant's HTTP server: app factory, middleware and runners."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import threading
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from remediation.sandbox import (
    admin_unit_routes,
    alert_routes,
    cae,
    consent_routes,
    control_routes,
    exchange_routes,
    graph_routes,
    identity_routes,
    mailbox_rbac,
    role_routes,
    signin_routes,
    webhook_routes,
)
from remediation.sandbox.app_rights import (
    BEARER,
    Bearer,
    accepts_audience,
    required_permission,
    verify,
)
from remediation.sandbox.context import CALL, CONTROL_PREFIX, TENANT, describe
from remediation.sandbox.errors import (
    error_for_path,
    graph_error,
    is_exchange_path,
    raw_response,
)
from remediation.sandbox.state import RecordedRequest, SandboxTenant

logger = logging.getLogger(__name__)

# nginx's "client closed request": what the log shows for a request abandoned mid-answer.
CLIENT_CLOSED = 499
_SHUTDOWN_TIMEOUT = 0.25


def create_app(tenant: SandboxTenant) -> web.Application:
    app = web.Application(middlewares=[record, authenticate, authorize, inject_faults])
    app[TENANT] = tenant
    for table in (control_routes.routes, identity_routes.routes, graph_routes.routes,
                  role_routes.routes, consent_routes.routes, signin_routes.routes,
                  alert_routes.routes, exchange_routes.routes, admin_unit_routes.routes,
                  webhook_routes.routes):
        app.add_routes(table)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


@web.middleware
async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    arrived = time.monotonic()
    tenant = request.app[TENANT]
    call = describe(request.path, await request.read(), tenant.address_of)
    request[CALL] = call
    status = CLIENT_CLOSED
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as error:
        status = error.status
        raise
    except Exception:
        status = 500
        raise
    finally:
        tenant.record(RecordedRequest(
            at=arrived,
            method=request.method,
            path=request.path,
            query=dict(request.query),
            body=call.body,
            status=status,
            cmdlet=call.cmdlet,
            target=call.target,
            headers={name: value for name, value in request.headers.items()
                     if name.lower() != "authorization"},
            answered=time.monotonic(),
            connection=_peer(request),
        ))


def _peer(request: web.Request) -> str:
    """The client's address and port: one value per TCP connection."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else ""


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    tenant = request.app[TENANT]
    given = request.headers.get("Authorization", "")
    if hmac.compare_digest(given.encode(), f"Bearer {tenant.token}".encode()):
        request[BEARER] = Bearer(roles=None)  # the static token: the tenant's current rights
        return await handler(request)
    scheme, _, token = given.partition(" ")
    issued = verify(tenant.token, token, tenant.tenant_id) if scheme == "Bearer" else None
    if issued is None:
        return graph_error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
    if not accepts_audience(request.path, issued.audience):
        # A token for another service: Graph says so; Exchange answers 401 with only its
        # WWW-Authenticate header.
        if is_exchange_path(request.path):
            return exchange_routes.unauthorized(tenant)
        return graph_error(401, "InvalidAuthenticationToken",
                           "Access token validation failure. Invalid audience.")
    if not is_exchange_path(request.path) and (refused := cae.challenge(tenant, token)):
        return refused
    request[BEARER] = issued
    return await handler(request)


@web.middleware
async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The application permission each endpoint needs (sandbox/app_rights.py)."""
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    tenant = request.app[TENANT]
    permission = required_permission(request.method, request.path)
    if permission is None or tenant.allows(permission, request[BEARER]):
        return await handler(request)
    scoped = mailbox_rbac.scoped_answer(tenant, permission, request.path)
    if scoped is None:
        return await handler(request)
    if not mailbox_rbac.not_scoped(scoped):
        return scoped
    if is_exchange_path(request.path):
        return exchange_routes.unauthorized(tenant)
    return graph_error(403, "Authorization_RequestDenied",
                       "Insufficient privileges to complete the operation.")


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    tenant = request.app[TENANT]
    if tenant.latency:
        await asyncio.sleep(tenant.latency)
    call = request[CALL]
    fault = tenant.take_fault(request.method, request.path, call.cmdlet, call.target)
    if fault is None:
        return await handler(request)
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.status is None:
        # Shielded: a client that stops waiting must not undo a write the service made.
        answer = await asyncio.shield(handler(request))
        if fault.delay_after:
            await asyncio.sleep(fault.delay_after)
        if fault.disconnect:
            return _dropped(request)
        if fault.drip and isinstance(answer, web.Response) and answer.body is not None:
            return await _drip(request, answer, fault.drip)
        return answer
    if fault.raw_body is not None:
        return raw_response(fault.status, fault.raw_body, fault.headers(), fault.content_type)
    return error_for_path(request.path, fault.status, fault.code, fault.message, fault.headers(),
                          fault.exception_type, fault.cause_in, tenant.exchange.inner_key)


def _dropped(request: web.Request) -> web.StreamResponse:
    """Close the connection, the request handled and unanswered (``Fault.disconnect``)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)  # never sent: the connection is gone


async def _drip(request: web.Request, answer: web.Response,
                interval: float) -> web.StreamResponse:
    """Send ``answer`` one byte at a time: each read is quick, the whole answer is not."""
    body = answer.body if isinstance(answer.body, bytes) else b""
    stream = web.StreamResponse(status=answer.status, headers={
        "Content-Type": answer.content_type or "application/json"})
    await stream.prepare(request)
    for index in range(len(body)):
        await stream.write(body[index:index + 1])
        await asyncio.sleep(interval)
    await stream.write_eof()
    return stream


async def not_found(request: web.Request) -> web.Response:
    if is_exchange_path(request.path):
        return error_for_path(request.path, 404, "NotFound", "The resource was not found.")
    if request.path.startswith("/v1.0/"):
        return graph_error(404, "UnknownError", "Resource not found for the segment.")
    return web.json_response({"error": "not found"}, status=404)


class SandboxServer:
    """Serves a tenant on a local port, in the caller's event loop or in a thread of its own."""

    def __init__(self, tenant: SandboxTenant, host: str = "127.0.0.1", port: int = 0) -> None:
        self.tenant = tenant
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the sandbox server is not running")
        return self._base_url

    @property
    def graph_url(self) -> str:
        return self.base_url

    @property
    def exchange_url(self) -> str:
        return self.base_url

    async def start(self) -> str:
        runner = web.AppRunner(
            create_app(self.tenant),
            access_log=None,
            handler_cancellation=True,  # a client that gives up on a delayed answer frees it
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._base_url = f"http://{_url_host(str(host))}:{port}"
        return self._base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._base_url = None

    def start_in_thread(self) -> str:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failures: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as error:  # handed to the caller below
                failures.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        thread = threading.Thread(target=run, name="sandbox-tenant", daemon=True)
        thread.start()
        ready.wait()
        if failures:
            thread.join()
            raise failures[0]
        self._loop, self._thread = loop, thread
        return self.base_url

    def stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._loop = self._thread = None


async def serve_forever(tenant: SandboxTenant, host: str = "127.0.0.1", port: int = 8080) -> None:
    server = SandboxServer(tenant, host, port)
    url = await server.start()
    logger.info("sandbox tenant listening on %s", url)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def _url_host(host: str) -> str:
    if not host or ipaddress.ip_address(host).is_unspecified:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
