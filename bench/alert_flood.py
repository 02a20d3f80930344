"""How long one alert poll takes when tens of thousands of unrelated Office 365 alerts fill the
look-back window, and how long the stream door takes to de-duplicate a large batch.

Usage: .venv/bin/python bench/alert_flood.py [ALERTS] [PAGE_SIZE] [STREAM_RECORDS]
Defaults: 30000 unrelated alerts (plus one outbound-spam alert near the end), pages of 1000,
a stream batch of 100000 hinted records (every id twice).
"""

import asyncio
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from remediation.bootstrap import bootstrap
from remediation.domain.alerts import DEFAULT_ALERT_TITLES
from remediation.domain.push import pushed_alert_ids
from remediation.domain.streaming import ALERT_INFO, OFFICE_365_DISPLAY_NAME, alert_hints
from remediation.entrypoints.demo import demo_settings
from remediation.sandbox import SandboxServer, demo_tenant
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence

OTHER = "Email messages containing malicious URL removed after delivery"


async def poll(alerts: int, page_size: int) -> None:
    tenant = demo_tenant(with_alerts=False)
    tenant.alert_page_size = page_size
    started = time.perf_counter()
    for index in range(alerts):
        if index == alerts - alerts // 10:
            tenant.add_alert(alert(RESTRICTED, [mailbox_evidence("adele.vance@contoso.com")]))
        tenant.add_alert(alert(OTHER, [mailbox_evidence(f"user{index}@contoso.com")]))
    seeded = time.perf_counter() - started
    server = SandboxServer(tenant)
    url = await server.start()
    with tempfile.TemporaryDirectory() as folder:
        app = bootstrap(replace(demo_settings(url, tenant, Path(folder) / "state.db"),
                                sweep_restricted_users=False))
        started = time.perf_counter()
        report = await app.intake.poll()
        elapsed = time.perf_counter() - started
        await app.aclose()
    await server.stop()
    pages = len([r for r in tenant.requests() if r.path == "/v1.0/security/alerts_v2"])
    print(f"poll: {alerts + 1} alerts in pages of {page_size} ({pages} requests): "
          f"{elapsed:.2f} s; {report.alerts_seen} read, {len(report.enqueued)} queued"
          + (f", errors: {report.errors}" if report.errors else "")
          + f" (seeding the sandbox: {seeded:.2f} s)")


def stream(records: int) -> None:
    distinct = records // 2
    batch: list[bytes | str] = []
    per_event = 5000
    for start in range(0, records, per_event):
        batch.append(json.dumps({"records": [
            {"category": ALERT_INFO, "properties": {
                "AlertId": f"fa{(n % distinct):030x}", "Title": DEFAULT_ALERT_TITLES[0],
                "ServiceSource": OFFICE_365_DISPLAY_NAME}}
            for n in range(start, min(start + per_event, records))]}))
    started = time.perf_counter()
    hints, problems = alert_hints(batch, DEFAULT_ALERT_TITLES)
    elapsed = time.perf_counter() - started
    print(f"stream: {records} hinted records ({distinct} distinct ids) read and de-duplicated "
          f"in {elapsed:.3f} s; {len(hints)} kept, {len(problems)} problem(s)")

    pushed = [f"fa{(n % 50):030x}" for n in range(1000)]
    started = time.perf_counter()
    ids = pushed_alert_ids({"alertIds": pushed})
    print(f"push: 1000 ids ({len(ids)} distinct) in {time.perf_counter() - started:.4f} s")


def main() -> None:
    alerts = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000
    page_size = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    records = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    asyncio.run(poll(alerts, page_size))
    stream(records)


if __name__ == "__main__":
    main()
