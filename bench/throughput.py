"""How many blocked accounts the local worker remediates per second, by concurrency.

Usage: .venv/bin/python bench/throughput.py [USERS] [LATENCY_SECONDS]
The sandbox adds LATENCY to every tenant call; the breaker is raised above USERS.
"""

import asyncio
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from remediation.bootstrap import bootstrap
from remediation.domain.requests import RemediationRequest
from remediation.entrypoints.demo import demo_settings
from remediation.sandbox import SandboxServer, SandboxTenant, SandboxUser


async def measure(users: int, latency: float, concurrency: int) -> tuple[float, float]:
    tenant = SandboxTenant()
    tenant.latency = latency
    for index in range(users):
        user = tenant.add_user(SandboxUser(f"user{index}@contoso.com", f"User {index}"))
        tenant.block(user.user_principal_name)
    server = SandboxServer(tenant)
    url = await server.start()
    with tempfile.TemporaryDirectory() as folder:
        settings = replace(demo_settings(url, tenant, Path(folder) / "state.db"),
                           verify_delays=(timedelta(seconds=0.1),),
                           worker_concurrency=concurrency,
                           max_remediations_per_hour=users + 1)
        app = bootstrap(settings)
        for index in range(users):
            await app.requests.send(RemediationRequest(user=f"user{index}@contoso.com",
                                                       request_id=uuid.uuid4().hex))
        started = time.perf_counter()
        await app.worker(poll_interval=0.02).run(until_idle=True)
        elapsed = time.perf_counter() - started
        states = {case.state.value for case in await app.journal.list_cases()}
        await app.aclose()
    await server.stop()
    assert states == {"verified"}, states
    return elapsed, len(tenant.requests()) / users


async def main() -> None:
    users = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    latency = float(sys.argv[2]) if len(sys.argv) > 2 else 0.05
    print(f"{users} blocked users, {latency * 1000:.0f} ms per tenant call, "
          "one 0.1 s verification each")
    for concurrency in (1, 8, 32):
        elapsed, calls = await measure(users, latency, concurrency)
        print(f"  concurrency {concurrency:>2}: {elapsed:6.2f} s  "
              f"({users / elapsed:6.1f} users/s, {calls:.1f} tenant calls per user)")


if __name__ == "__main__":
    asyncio.run(main())
