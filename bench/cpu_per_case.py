"""CPU seconds the local runtime spends per case, tenant calls per case and the TCP
connections the runtime opened to the tenant, for a burst of blocked users; optionally the
runtime's cProfile (``--profile FILE``: pstats, sorted by own time, the top printed).

Usage: python -m bench.cpu_per_case [USERS] [CONCURRENCY] [LATENCY_SECONDS] [--profile FILE]
Defaults: 30 users at WORKER_CONCURRENCY 8, 0.05 s per tenant call.

How each figure is taken:
- The tenant is served in this process (``harness.served``), the product is
  ``python -m remediation run`` in a process of its own, warm (it has polled once) before
  the burst is queued; CPU is the runtime's user + system seconds (/proc) from then until
  every case is final, divided by the users.
- Connections: each distinct client (address, port) the sandbox saw a tenant call from after
  the runtime was warm, counted by a middleware this script adds to the sandbox's app.
- With ``--profile`` the runtime (``bench/profiled_run.py``) is profiled from the burst to
  the last case final (start-up left out); its CPU figure then includes the profiler's own
  cost, so compare CPU from runs without it.
"""

import asyncio
import pstats
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from bench import harness
from bench.harness import Report
from remediation.sandbox import server as sandbox_server

PEERS: list[tuple[str, int]] = []
_create_app = sandbox_server.create_app


@web.middleware
async def _peer(request: web.Request,
                handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                ) -> web.StreamResponse:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    if peer is not None and not request.path.startswith("/_sandbox"):
        PEERS.append((str(peer[0]), int(peer[1])))
    return await handler(request)


def _counting_app(tenant: Any) -> web.Application:
    app = _create_app(tenant)
    app.middlewares.insert(0, _peer)
    return app


class ProfiledRuntime(harness.Runtime):
    """The runtime under cProfile, its stats written to ``profile`` when it stops."""

    def __init__(self, env: dict[str, str], folder: Path, profile: Path) -> None:
        super().__init__(env, folder)
        self.profile = profile

    async def start(self) -> None:
        args = [sys.executable, "-m", "bench.profiled_run"]
        env = {**self.env, "PROFILE_OUT": str(self.profile)}
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *args, env=env, cwd=harness.ROOT, stdout=log,
                stderr=asyncio.subprocess.STDOUT)

    def switch(self, on: bool) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGUSR1 if on else signal.SIGUSR2)


async def measure(users: int, concurrency: int, latency: float,
                  profile: Path | None) -> dict[str, Any]:
    sandbox_server.create_app = _counting_app  # this script's process only
    tenant = harness.blocked_tenant(users, latency)
    names = [harness.address(n) for n in range(users)]
    with harness.scratch() as name:
        folder = Path(name)
        async with harness.served(tenant) as url:
            db = folder / "cpu.db"
            env = harness.runtime_env(url, tenant, db, WORKER_CONCURRENCY=concurrency,
                                      WORKER_PROCESSES=1)  # per process: one
            runtime = (harness.Runtime(env, folder) if profile is None
                       else ProfiledRuntime(env, folder, profile))
            await runtime.start()
            try:
                await runtime.ready(tenant)
                before, peers_before = len(tenant.requests()), len(PEERS)
                cpu_before = runtime.usage()["cpu_s"]
                if isinstance(runtime, ProfiledRuntime):
                    runtime.switch(on=True)
                app = harness.application(env)
                try:
                    await harness.enqueue(app, names)
                    cases = await harness.wait_settled(app, db, users, runtime)
                finally:
                    await app.aclose()
                cpu = runtime.usage()["cpu_s"] - cpu_before
                if isinstance(runtime, ProfiledRuntime):
                    runtime.switch(on=False)
                    await asyncio.sleep(1)
            finally:
                await runtime.stop()
            calls = tenant.requests()[before:]
            threads = [line for line in runtime.log.read_text().splitlines()
                       if line.startswith("profiled_run:")]
    states = sorted({case.state.value for case in cases})
    if states != ["verified"] or len(cases) != users:
        raise RuntimeError(f"expected {users} verified cases, got {len(cases)}: {states}")
    return {"users": users, "concurrency": concurrency, "cpu_s": round(cpu, 2),
            "cpu_per_case_s": round(cpu / users, 4),
            "calls_per_case": round(len(calls) / users, 2),
            "calls_by_kind": {k: round(v / users, 1)
                              for k, v in harness.count_kinds(calls).items()},
            "connections": len(set(PEERS[peers_before:])),
            "profiled": profile is not None, "threads": threads}


async def main(users: int, concurrency: int, latency: float, profile: Path | None) -> None:
    report = Report("cpu_per_case")
    figures = await measure(users, concurrency, latency, profile)
    report.say(f"{users} users at WORKER_CONCURRENCY {concurrency}: "
               f"{figures['cpu_per_case_s']:.3f} CPU s per case, "
               f"{figures['calls_per_case']:.1f} tenant calls per case "
               f"{figures['calls_by_kind']}, {figures['connections']} TCP connection(s)")
    for line in figures["threads"]:
        report.say(line)
    if profile is not None:
        pstats.Stats(str(profile)).sort_stats("tottime").print_stats(25)
    report.figures.update(figures)
    report.emit()


def _arguments() -> tuple[int, int, float, Path | None]:
    args = sys.argv[1:]
    profile = None
    if "--profile" in args:
        at = args.index("--profile")
        profile = Path(args[at + 1]).resolve()
        del args[at:at + 2]
    return (int(args[0]) if args else 30, int(args[1]) if len(args) > 1 else 8,
            float(args[2]) if len(args) > 2 else harness.LATENCY, profile)


if __name__ == "__main__":
    asyncio.run(main(*_arguments()))
