"""Tenant calls per case by kind (Graph reads, Graph writes, Exchange cmdlets that read and
that change), and how they grow with the account's aliases, group memberships and roles.

Usage: python -m bench.calls_per_case [STEPS]
STEPS: the counts tried for each dimension (default 0,5,20; groups add 150, past one page of
Graph's transitiveMemberOf). Counts do not depend on latency; the tenant adds ``LATENCY``
(20 ms) to each call only so that calls sent side by side can be told from calls sent one
after another: the calls on each case's path to the reset and to the unblock are the longest
chain of calls each sent after the one before it was answered (``harness.calls_on_path``).

One warm ``remediation run`` works one case at a time (each queued once the last settled, so
every call between two cases is the case's own); each case's calls are read from the
tenant's request log (``tenant.requests()``), split into those before the journal's
``unblock`` done (or the case's end when it escalates) and those after (verification, alert
updates). The first case of the process is the warm-up (its per-process reads, e.g. the
tenant's domains): it is shown apart.
"""

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

from bench import harness
from bench.harness import Report
from remediation.domain.alerts import parse_alert, request_for_alert
from remediation.domain.cases import Case
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import SandboxTenant
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence
from remediation.sandbox.state import RecordedRequest

LATENCY = 0.02
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def variations(steps: list[int]) -> list[tuple[str, dict[str, int]]]:
    rows: list[tuple[str, dict[str, int]]] = [("warm-up (first case of the process)", {}),
                                              ("baseline", {})]
    for count in steps:
        if count:
            rows.append((f"{count} aliases", {"aliases": count}))
    for count in [*steps, 150]:
        if count:
            rows.append((f"{count} groups", {"groups": count}))
    for count in sorted({1, *steps}):
        if count:
            rows.append((f"{count} roles (escalates)", {"roles": count}))
    return rows


async def main() -> None:
    steps = [int(n) for n in harness.arg(1, "0,5,20").split(",")]
    report = Report("calls_per_case")
    tenant = harness.bench_tenant(latency=LATENCY)
    rows = variations(steps)
    users = [harness.add_blocked_user(tenant, harness.address(n, "calls"), **shape).
             user_principal_name for n, (_, shape) in enumerate(rows)]
    extra = {name: harness.add_blocked_user(tenant, harness.address(0, name)).user_principal_name
             for name in ("alerted", "twice")}
    results: list[dict[str, Any]] = []
    with harness.scratch() as folder:
        async with harness.served(tenant) as url:
            db = Path(folder) / "calls.db"
            env = harness.runtime_env(url, tenant, db)
            runtime = harness.Runtime(env, Path(folder))
            await runtime.start()
            app = harness.application(env)
            try:
                await runtime.ready(tenant)
                count = 0
                for (label, _), user in zip(rows, users, strict=True):
                    request = _manual(user)
                    count += 1
                    results.append(await _one(app, db, runtime, tenant, label, [request],
                                              count))
                raw = alert(RESTRICTED, [mailbox_evidence(extra["alerted"])])
                tenant.add_alert(raw)
                count += 1
                results.append(await _one(app, db, runtime, tenant, "alert-driven (one alert)",
                                          [request_for_alert(parse_alert(raw))], count))
                count += 1
                results.append(await _one(app, db, runtime, tenant,
                                          "two requests, one case (the second merges)",
                                          [_manual(extra["twice"]), _manual(extra["twice"])],
                                          count))
            finally:
                await app.aclose()
                await runtime.stop()
    report.say("tenant calls per case (Graph reads / Graph writes / Exchange reads / Exchange "
               "changes = total; before the unblock + after it)")
    for row in results:
        c = row["calls"]
        state = row["state"] + (f" +{row['cases'] - 1}" if row["cases"] > 1 else "")
        report.say(f"  {row['case']:<46} {state:<11} {c['graph_read']:>3} / "
                   f"{c['graph_write']:>2} / {c['exchange_read']:>3} / {c['exchange_write']:>2}"
                   f" = {row['total']:>3}  ({row['before_unblock']} + "
                   f"{row['total'] - row['before_unblock']}); on the path: "
                   f"{row['path_to_reset']} to the reset, {row['path_to_unblock']} to the unblock")
    baseline = next(row for row in results if row["case"] == "baseline")
    report.say("\nthe baseline case's calls by endpoint:")
    for endpoint, number in baseline["by_endpoint"].items():
        report.say(f"  {number:>3}  {endpoint}")
    report.figures["cases"] = results
    report.emit()


def _manual(user: str) -> RemediationRequest:
    import uuid

    return RemediationRequest(user=user, request_id=uuid.uuid4().hex, reason="bench")


async def _one(app: Any, db: Path, runtime: harness.Runtime, tenant: SandboxTenant, label: str,
               requests: list[RemediationRequest], count: int) -> dict[str, Any]:
    before = len(tenant.requests())
    for request in requests:
        await app.requests.send(request)
    cases = await harness.wait_settled(app, db, count, runtime, poll=0.05)
    mine = [c for c in cases if c.user == requests[0].user]
    case: Case = mine[-1]  # newest first: the one opened first
    calls = tenant.requests()[before:]
    offset = harness.wall_offset()
    end = harness.done_at(case, "unblock") or (case.ended_at or case.updated_at).timestamp()
    reset = harness.done_at(case, "reset_password")
    kinds = harness.count_kinds(calls)
    return {"case": label, "state": case.state.value, "calls": kinds, "cases": len(mine),
            "total": sum(kinds.values()),
            "before_unblock": sum(1 for r in calls if r.at + offset <= end),
            "path_to_reset": 0 if reset is None else harness.calls_on_path(
                calls, LATENCY, reset - offset),
            "path_to_unblock": harness.calls_on_path(calls, LATENCY, end - offset),
            "by_endpoint": dict(Counter(_endpoint(r) for r in calls).most_common())}


def _endpoint(request: RecordedRequest) -> str:
    if request.cmdlet is not None:
        return f"Exchange {request.cmdlet}"
    path = GUID.sub("{id}", request.path)
    path = re.sub(r"/users/[^/]+@[^/]+", "/users/{upn}", path)
    return f"{request.method} {path}"


if __name__ == "__main__":
    asyncio.run(main())
