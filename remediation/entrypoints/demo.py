"""``remediation demo``: the whole product against the built-in sandbox tenant, in seconds."""

import asyncio
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from remediation.bootstrap import bootstrap
from remediation.config import Settings
from remediation.domain.durations import format_duration
from remediation.domain.requests import RemediationRequest
from remediation.entrypoints.report import cases_as_table
from remediation.sandbox import SandboxServer, SandboxTenant, demo_tenant

DEMO_DELAYS = (timedelta(seconds=2), timedelta(seconds=4), timedelta(seconds=6))

# (user, what the sandbox does with them, what the demo expects)
DEMO_REQUESTS = (
    ("adele.vance@contoso.com", "an ordinary blocked account"),
    ("lee.gu@contoso.com", "block lingers past the first check"),
    ("megan.bowen@contoso.com", "blocked again right after the unblock"),
    ("patti.fernandez@contoso.com", "an admin the app may not reset (403)"),
    ("nobody@contoso.com", "no such user"),
    ("diego.siciliani@contoso.com", "an ordinary blocked account"),
    ("diego.siciliani@contoso.com", "the same request again (duplicate)"),
)


def demo_settings(base_url: str, tenant: SandboxTenant, db: Path) -> Settings:
    return Settings(tenant_id=tenant.tenant_id, graph_endpoint=base_url,
                    exchange_endpoint=base_url, sandbox_token=tenant.token,
                    verify_delays=DEMO_DELAYS, remediation_db=db,
                    lock_duration=timedelta(seconds=30), http_timeout=timedelta(seconds=5))


async def run_demo(out: TextIO) -> int:
    tenant = demo_tenant()
    server = SandboxServer(tenant)
    base_url = await server.start()
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="remediation-demo-") as folder:
            app = bootstrap(demo_settings(base_url, tenant, Path(folder) / "state.db"))
            try:
                delays = ", ".join(format_duration(d) for d in DEMO_DELAYS)
                print(f"Sandbox tenant at {base_url}; verification checks at +{delays} "
                      "(production: +1h, +4h, +24h)\n", file=out)
                for user, story in DEMO_REQUESTS:
                    print(f"  request: {user:<32} {story}", file=out)
                    await app.requests.send(RemediationRequest(
                        user=user, reason=f"demo: {story}", requested_by="make demo",
                        request_id=uuid.uuid4().hex))
                await app.queue.send(app.settings.remediation_queue, '{"user": "not-an-address"}')
                print(f"  request: {'not-an-address':<32} invalid input\n", file=out)
                await app.worker(poll_interval=0.2, retry_backoff=0.5).run(until_idle=True)
                cases = await app.journal.list_cases()
            finally:
                await app.aclose()
    finally:
        await server.stop()
    print(cases_as_table(cases), file=out)
    print(f"\nWhat the tenant saw: {_tenant_summary(tenant)}", file=out)
    print(f"Finished in {time.monotonic() - started:.1f}s. Passwords were never shown, "
          "stored or logged.", file=out)
    return 0


def _tenant_summary(tenant: SandboxTenant) -> str:
    counts: Counter[str] = Counter()
    for request in tenant.requests():
        if request.method == "PATCH" and request.path.startswith("/v1.0/users/"):
            counts["password resets"] += request.status == 204
        elif request.path.endswith("/revokeSignInSessions"):
            counts["session revocations"] += request.status == 200
        elif request.cmdlet == "Remove-BlockedSenderAddress":
            counts["unblocks"] += request.status == 200
        elif request.cmdlet == "Get-BlockedSenderAddress":
            counts["block lookups"] += 1
    return ", ".join(f"{count} {name}" for name, count in counts.items())


def main(out: TextIO) -> int:
    return asyncio.run(run_demo(out))
