"""How long one alert poll takes when tens of thousands of unrelated Office 365 alerts fill the
look-back window, and how long the stream door takes to de-duplicate a large batch.

Usage: python -m bench.alert_flood [ALERTS] [PAGE_SIZE] [STREAM_RECORDS]
Defaults: 30000 unrelated alerts (plus one outbound-spam alert near the end), pages of 1000,
a stream batch of 100000 hinted records (every id twice). The intake runs in this process
against the sandbox with no latency: what is measured is the product's own work per page.
"""

import asyncio
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.harness import Report
from remediation.bootstrap import bootstrap
from remediation.domain.alerts import DEFAULT_ALERT_TITLES
from remediation.domain.push import pushed_alert_ids
from remediation.domain.streaming import ALERT_INFO, OFFICE_365_DISPLAY_NAME, alert_hints
from remediation.entrypoints.demo import demo_settings, managed_identity_environment
from remediation.sandbox import SandboxServer, demo_tenant
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence

OTHER = "Email messages containing malicious URL removed after delivery"


async def poll(alerts: int, page_size: int, report: Report) -> None:
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
    with tempfile.TemporaryDirectory() as folder, managed_identity_environment(url, tenant):
        app = bootstrap(replace(demo_settings(url, tenant, Path(folder) / "state.db"),
                                sweep_restricted_users=False))
        started = time.perf_counter()
        polled = await app.intake.poll()
        elapsed = time.perf_counter() - started
        await app.aclose()
    await server.stop()
    pages = len([r for r in tenant.requests() if r.path == "/v1.0/security/alerts_v2"])
    report.figures["poll"] = {"alerts": alerts + 1, "page_size": page_size, "pages": pages,
                              "seconds": round(elapsed, 3), "read": polled.alerts_seen,
                              "queued": len(polled.enqueued), "errors": len(polled.errors)}
    report.say(f"poll: {alerts + 1} alerts in pages of {page_size} ({pages} requests): "
               f"{elapsed:.2f} s; {polled.alerts_seen} read, {len(polled.enqueued)} queued"
               + (f", errors: {polled.errors}" if polled.errors else "")
               + f" (seeding the sandbox: {seeded:.2f} s)")


def stream(records: int, report: Report) -> None:
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
    report.figures["stream"] = {"records": records, "distinct": distinct,
                                "seconds": round(elapsed, 4), "kept": len(hints),
                                "problems": len(problems)}
    report.say(f"stream: {records} hinted records ({distinct} distinct ids) read and de-duplicated "
          f"in {elapsed:.3f} s; {len(hints)} kept, {len(problems)} problem(s)")

    pushed = [f"fa{(n % 50):030x}" for n in range(1000)]
    started = time.perf_counter()
    ids = pushed_alert_ids({"alertIds": pushed})
    seconds = time.perf_counter() - started
    report.figures["push"] = {"ids": 1000, "distinct": len(ids), "seconds": round(seconds, 5)}
    report.say(f"push: 1000 ids ({len(ids)} distinct) in {seconds:.4f} s")


def main() -> None:
    alerts = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000
    page_size = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    records = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    report = Report("alert_flood")
    asyncio.run(poll(alerts, page_size, report))
    stream(records, report)
    report.emit()


if __name__ == "__main__":
    main()
