"""``remediation demo``: the whole product against the built-in sandbox tenant, in seconds."""

import asyncio
import contextlib
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from remediation.adapters.local_worker import LocalWorker
from remediation.bootstrap import Application, bootstrap
from remediation.config import Settings
from remediation.domain.cases import Case
from remediation.domain.display import shown
from remediation.domain.durations import format_duration
from remediation.domain.requests import RemediationRequest
from remediation.entrypoints.demo_story import report_hint
from remediation.entrypoints.demo_story import story as told
from remediation.entrypoints.report import cases_as_table
from remediation.sandbox import SandboxServer, SandboxTenant, demo_tenant
from remediation.sandbox.identity_routes import IDENTITY_PATH
from remediation.sandbox.seed import BREAK_GLASS_GROUP_ID, start_storm, storm_addresses

DEMO_DELAYS = (timedelta(seconds=2), timedelta(seconds=4), timedelta(seconds=6))

# Manual requests (user, what the sandbox does with them). Alert-driven and sweep-driven
# cases come from the sandbox's Defender alerts and Restricted users list.
DEMO_REQUESTS = (
    ("patti.fernandez@contoso.com", "a Global Administrator (never reset by a robot)"),
    ("nobody@contoso.com", "no such user"),
    ("diego.siciliani@contoso.com", "an ordinary blocked account"),
    ("diego.siciliani@contoso.com", "the same request again (duplicate)"),
)


DEMO_BREAKER = 13
# The demo's own journal (and local queue), kept after it exits so that `remediation report`
# and `status` can read its cases (REMEDIATION_DB=.remediation/demo.db); each run starts it
# afresh. Never the operator's REMEDIATION_DB.
DEMO_JOURNAL = Path(".remediation/demo.db")
# The account whose leftovers (what the attacker added: sign-in methods, ...) the demo shows.
LEFT_BEHIND_SHOWN = "lynne.robbins@contoso.com"
_DONE_WITH = {"keep": "kept", "report": "reported"}


def demo_settings(base_url: str, tenant: SandboxTenant, db: Path) -> Settings:
    """No static token: tokens come from the sandbox's managed identity endpoint
    (``managed_identity_environment``), the way the Functions app gets them in Azure."""
    return Settings(tenant_id=tenant.tenant_id, graph_endpoint=base_url,
                    exchange_endpoint=base_url,
                    verify_delays=DEMO_DELAYS, remediation_db=db,
                    lock_duration=timedelta(seconds=30), http_timeout=timedelta(seconds=5),
                    protected_group_ids=frozenset({BREAK_GLASS_GROUP_ID}),
                    max_remediations_per_hour=DEMO_BREAKER,
                    retry_backoff=timedelta(seconds=0.5))


# What would make DefaultAzureCredential use another identity than the sandbox's.
OTHER_CREDENTIALS = ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME",
                      "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT",
                      "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT")


@contextlib.contextmanager
def managed_identity_environment(base_url: str, tenant: SandboxTenant) -> Iterator[None]:
    """What App Service gives a Functions app (``IDENTITY_ENDPOINT``, ``IDENTITY_HEADER``,
    the user-assigned identity's ``AZURE_CLIENT_ID``), pointing at the sandbox, for as long as
    the demo runs; the process's own environment is put back afterwards."""
    wanted = {"IDENTITY_ENDPOINT": f"{base_url}{IDENTITY_PATH}",
              "IDENTITY_HEADER": tenant.identity_header,
              "AZURE_CLIENT_ID": tenant.managed_identity_client_id}
    saved = {name: os.environ.get(name) for name in (*wanted, *OTHER_CREDENTIALS)}
    try:
        for name in OTHER_CREDENTIALS:
            os.environ.pop(name, None)
        os.environ.update(wanted)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def run_demo(out: TextIO, journal: Path = DEMO_JOURNAL) -> int:
    """The demo, its story on ``out`` (log lines go to the log, stderr); its cases stay in
    ``journal`` (a file it replaces) for ``remediation report``."""
    for leftover in (journal, Path(f"{journal}-wal"), Path(f"{journal}-shm")):
        leftover.unlink(missing_ok=True)  # a fresh journal: the last run's cases would merge
    tenant = demo_tenant(storm=False)
    server = SandboxServer(tenant)
    base_url = await server.start()
    started = time.monotonic()
    try:
        with managed_identity_environment(base_url, tenant):
            app = bootstrap(demo_settings(base_url, tenant, journal))
            try:
                cases = await _play(app, tenant, base_url, out)
            finally:
                await app.aclose()
    finally:
        await server.stop()
    print(cases_as_table(cases), file=out)
    for line in _left_behind(cases, LEFT_BEHIND_SHOWN):
        print(line, file=out)
    print("\nDefender alerts afterwards, each with its account:", file=out)
    for line in _alert_lines(tenant, cases):
        print(f"  {line}", file=out)
    print(f"\nWhat the tenant saw: {_tenant_summary(tenant)}", file=out)
    resources = ", ".join(sorted(set(tenant.token_requests))) or "none"
    print("Tokens: from the sandbox's managed identity endpoint through "
          f"DefaultAzureCredential, as in Azure; resources asked for: {resources}", file=out)
    print("", *told(cases, tenant.alerts(), storm_addresses()), sep="\n", file=out)
    print(f"\nFinished in {time.monotonic() - started:.1f}s. Passwords were never shown, "
          "stored or logged.", file=out)
    print(*report_hint(cases, journal, LEFT_BEHIND_SHOWN), sep="\n", file=out)
    return 0


async def _play(app: Application, tenant: SandboxTenant, base_url: str,
                out: TextIO) -> list[Case]:
    delays = ", ".join(format_duration(d) for d in DEMO_DELAYS)
    print(f"Sandbox tenant at {base_url}; verification checks at +{delays} "
          "(production: +1h, +4h, +24h)\n", file=out)
    print("1. Manual requests (remediation enqueue):", file=out)
    for user, story in DEMO_REQUESTS:
        print(f"     {user:<32} {story}", file=out)
        await app.requests.send(RemediationRequest(
            user=user, reason=f"demo: {story}", requested_by="make demo",
            request_id=uuid.uuid4().hex))
    assert app.queue is not None
    await app.queue.send(app.settings.remediation_queue, '{"user": "not-an-address"}',
                         session_id="not-an-address")  # a session queue refuses none
    print(f"     {'not-an-address':<32} invalid input", file=out)
    await _drain_requests(app)
    print("\n2. Alert poll and Restricted users sweep:", file=out)
    report = await app.intake.poll()
    print(f"     {report.summary()}", file=out)
    await _drain_requests(app)
    print(f"\n3. A storm: {len(storm_addresses())} more accounts blocked at once "
          f"(circuit breaker: {DEMO_BREAKER} resets per hour)", file=out)
    start_storm(tenant)
    report = await app.intake.poll()
    print(f"     {report.summary()}", file=out)
    print("\n4. Worker runs until every case is final...\n", file=out)
    await app.worker(poll_interval=0.2, retry_backoff=0.5).run(until_idle=True)
    return (await app.journal.list_cases())[::-1]  # the story's order: oldest first


async def _drain_requests(app: Application) -> None:
    """Work the requests queue only, so the sweep then sees the manual cases open."""
    assert app.queue is not None
    requests_only = LocalWorker(app.queue, {app.settings.remediation_queue:
                                            app.handler.on_request}, poll_interval=0.1)
    await requests_only.run(until_idle=True)


def _left_behind(cases: list[Case], user: str) -> list[str]:
    """What each leftover kind's step found and changed on ``user``'s case, with the undo."""
    lines: list[str] = []
    for case in (c for c in cases if c.user == user):
        for step in case.steps:
            if "found" not in step.data or "changes" not in step.data:
                continue
            lines.append("  " + shown(step.detail, 300))
            lines += ["    " + shown(f"{change['what']}; undo: {change['undo']}", 300)
                      for change in step.data["changes"]]
            lines += ["    " + shown(f"{_DONE_WITH[entry['disposition']]} {entry['kind']} "
                                     f"{entry['name']}: {entry['why']}", 300)
                      for entry in step.data["found"] if entry.get("disposition") != "remove"]
    if not lines:
        return []
    return [f"\nWhat the attacker left behind on {user} (cleaned between the revocation and "
            "the unblock):", *lines]


def _alert_lines(tenant: SandboxTenant, cases: list[Case]) -> list[str]:
    owner = {alert_id: case.user for case in cases for alert_id in case.alert_ids}
    lines = []
    for alert in tenant.alerts():
        outcome = alert["status"] + (f"/{alert['classification']}/{alert['determination']}"
                                     if alert.get("classification") else "")
        account = shown(owner.get(str(alert["id"]), "(no case: not ours)"), 30)
        lines.append(f"{account:<30} {shown(alert['title'], 44):<44} "
                     f"{alert['serviceSource'][:30]:<30} {outcome:<42} "
                     f"{len(alert.get('comments') or [])} comment(s)")
    return lines


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
        elif request.method == "DELETE" and "/oauth2PermissionGrants/" in request.path:
            counts["app consents revoked"] += request.status == 204
        elif request.method == "DELETE" and "/authentication/" in request.path:
            counts["sign-in method removals"] += request.status == 204
    return ", ".join(f"{count} {name}" for name, count in counts.items())


def main(out: TextIO) -> int:
    return asyncio.run(run_demo(out))
