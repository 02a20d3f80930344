"""Throttled: a share of the tenant's answers are 429 with ``Retry-After``: the whole run's
time against the same run unthrottled, and no retry sooner than the service asked.

Usage: python -m bench.throttled [USERS] [SHARE] [RETRY_AFTER] [LATENCY] [hold]
Defaults: 20 blocked users, 20% of Graph and Exchange calls answered 429 with
``Retry-After: 1``, 0.05 s per call, WORKER_CONCURRENCY = USERS, RETRY_BACKOFF 1s.
``hold``: throttling as Graph does it (``Fault.holds``): each 429 drawn refuses every
request to the tenant for its ``Retry-After`` ("limits any further requests from that
client app for some time", https://learn.microsoft.com/graph/throttling), not that one
call only; use a small SHARE with it (0.02: a window opened by 2% of the calls).

- The fault (``remediation/sandbox/faults.py``): ``Fault(status=429, retry_after=1,
  chance=0.2, times=None)`` on every ``/v1.0/`` path and another on every ``/adminapi/``
  path (each service throttles on its own), drawn from the
  tenant's seeded random (``seed_faults``), so the same calls in the same order meet the
  same answers.
- Ideal: what the tenant alone imposes on the slowest case, the case's calls one after
  another (its steps run in order): max over users of (its calls x latency + its 429s x
  ``Retry-After``) + the verification delay, counting the calls that name the user (address
  or object id): the few tenant-wide reads every case makes are left out, so it is a lower
  bound. The same floor is given for the unthrottled run: what is left above it is the
  product's own time (CPU, journal, queue polling), not the throttling.
- Sent while throttled: requests to a service that arrived after one of its 429s had been
  answered and before that 429's ``Retry-After`` had passed (``while_throttled``): what
  Graph counts against a client it is throttling, whichever call they belong to.
- Retry sooner than asked: for each 429, the next request identical to it (method, path,
  query, cmdlet and body; a password reset's body aside) is its retry; it is sooner than
  asked when it arrived less than ``Retry-After`` after the 429 left the tenant (its arrival
  plus the latency). A 429 with no later identical request was never retried (counted).
  In the concurrent run only requests naming their user are attributable (``retries``); a
  third run, one user at WORKER_CONCURRENCY 1, checks every request.
"""

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

from bench import harness
from bench.harness import Report
from remediation.sandbox import Fault, SandboxTenant
from remediation.sandbox.state import RecordedRequest

SERVICE_PATHS = (r"^/v1\.0/", r"^/adminapi/")
SEED = 18


async def run(users: int, latency: float, share: float, retry_after: float,
              folder: Path, concurrency: int | None = None,
              holds: bool = False) -> dict[str, Any]:
    tenant = harness.blocked_tenant(users, latency)
    names = [harness.address(n) for n in range(users)]
    async with harness.served(tenant) as url:
        db = folder / f"throttled-{share}-{concurrency}.db"
        concurrency = concurrency or users
        env = harness.runtime_env(url, tenant, db, WORKER_CONCURRENCY=concurrency)
        runtime = harness.Runtime(env, folder)
        await runtime.start()
        try:
            await runtime.ready(tenant)
            if share:
                tenant.seed_faults(SEED)
                # One fault per service: each throttles on its own (Graph's 429 does not
                # hold Exchange's calls, nor the reverse).
                for path in SERVICE_PATHS:
                    tenant.add_fault(Fault(status=429, retry_after=retry_after, chance=share,
                                           times=None, path=path, code="TooManyRequests",
                                           message="Too many requests", holds=holds))
            before = len(tenant.requests())
            app = harness.application(env)
            try:
                sent = await harness.enqueue(app, names)
                cases = await harness.wait_settled(app, db, users, runtime)
            finally:
                await app.aclose()
        finally:
            await runtime.stop()
    calls = tenant.requests()[before:]
    states = sorted({case.state.value for case in cases})
    ended = max((case.ended_at or case.updated_at).timestamp() for case in cases)
    return {"share": share, "whole_run_s": round(ended - min(sent.values()), 3),
            "floor_s": round(floor(calls, tenant, latency, retry_after), 3),
            "states": states, "calls": len(calls),
            "throttled": sum(1 for r in calls if r.status == 429),
            "queue_retries": sum(1 for case in cases for step in case.steps
                                 if step.name == "retry"),
            "resets": sum(len(user.password_changes) for user in tenant.users()),
            "still_blocked": len(tenant.blocked_addresses()),
            **retries(calls, latency, retry_after, tenant, serial=concurrency == 1),
            **while_throttled(calls, retry_after)}


def while_throttled(calls: list[RecordedRequest], retry_after: float) -> dict[str, Any]:
    """Requests to a service that arrived while one of its 429s still held: after the 429's
    answer left the tenant (``answered``) and before its ``Retry-After`` had passed. Graph
    limits "any further requests from that client app for some time"
    (https://learn.microsoft.com/graph/throttling): each such request is sent into the
    throttling, whichever call it belongs to. A few are unavoidable: the requests already on
    their way when the 429 was read."""
    holds: dict[str, list[tuple[float, float]]] = {"graph": [], "exchange": []}
    for request in calls:
        if request.status == 429:
            holds[_service(request)].append((request.answered, request.answered + retry_after))
    sent = [request for request in calls
            if any(start < request.at < end for start, end in holds[_service(request)])]
    return {"sent_while_throttled": len(sent),
            "sent_while_throttled_by_service": dict(Counter(_service(r) for r in sent))}


def _service(request: RecordedRequest) -> str:
    return "exchange" if request.path.startswith("/adminapi/") else "graph"


def retries(calls: list[RecordedRequest], latency: float, retry_after: float,
            tenant: SandboxTenant, *, serial: bool) -> dict[str, Any]:
    """How long after each 429 its retry came, measured from the answer. A retry is the next
    request identical to the 429's (``_identity``). Where several cases run at once, only
    requests that name their user (by address or object id) are attributable: a tenant-wide
    read (the protected group's members, the tenant's consents) is the same request in every
    case, and the next identical one may be another case's first try. ``serial``: one case
    at a time, every request is its case's."""
    keys = {name: user.user_principal_name for user in tenant.users()
            for name in (user.id.lower(), user.user_principal_name.lower())}
    gaps: list[float] = []
    never: list[str] = []
    shared = 0
    for index, answer in enumerate(calls):
        if answer.status != 429:
            continue
        key = _identity(answer)
        named = next((user for name, user in keys.items() if name in key[-1]), None)
        if not serial and named is None:
            shared += 1
            continue
        retry = next((r for r in calls[index + 1:] if _identity(r) == key), None)
        if retry is None:
            never.append(answer.cmdlet or f"{answer.method} {answer.path}")
            continue
        gaps.append(retry.at - (answer.at + latency))
    return {"retried": len(gaps), "never_retried": len(never), "never_retried_calls": never,
            "shared_unattributed": shared,
            "sooner_than_asked": sum(1 for gap in gaps if gap < retry_after),
            "min_wait_s": round(min(gaps), 3) if gaps else None,
            "median_wait_s": round(harness.median(gaps), 3) if gaps else None}


def floor(calls: list[RecordedRequest], tenant: SandboxTenant, latency: float,
          retry_after: float) -> float:
    """The tenant's floor under the slowest case (the module's "Ideal"), in seconds: its
    calls that name it, one after another, each with its latency, each 429 among them with
    ``Retry-After`` more, then the verification delay. The tenant-wide reads every case makes
    are left out (nothing says which case made which), so this is a true lower bound."""
    keys = {name: user.user_principal_name for user in tenant.users()
            for name in (user.id.lower(), user.user_principal_name.lower())}
    own: Counter[str] = Counter()
    throttled: Counter[str] = Counter()
    for request in calls:
        text = _identity(request)[-1]
        named = next((user for name, user in keys.items() if name in text), None)
        if named is not None:
            own[named] += 1
            throttled[named] += request.status == 429
    return max((own[user] * latency + throttled[user] * retry_after for user in own),
               default=0.0) + harness.VERIFY_DELAY


def _identity(request: RecordedRequest) -> tuple[str, ...]:
    """What a retry repeats; its last item is the request's whole text, lower case."""
    body = "" if request.method == "PATCH" and "/users/" in request.path else json.dumps(
        request.body, sort_keys=True, default=str)
    query = json.dumps(request.query, sort_keys=True)
    text = " ".join((request.method, request.path, query, request.target or "", body))
    return (request.method, request.path, query, request.cmdlet or "", text.lower())


async def main() -> None:
    users = int(harness.arg(1, "20"))
    share = float(harness.arg(2, "0.2"))
    retry_after = float(harness.arg(3, "1"))
    latency = float(harness.arg(4, str(harness.LATENCY)))
    holds = harness.arg(5, "") == "hold"
    report = Report("throttled")
    report.say(f"throttled: {users} users, {share:.0%} of calls answered 429 with Retry-After "
               f"{retry_after:g}" + (" (each holding every call for it, as Graph does)"
                                     if holds else "")
               + f", {latency * 1000:.0f} ms per call, WORKER_CONCURRENCY {users}")
    with harness.scratch() as name:
        folder = Path(name)
        ideal = await run(users, latency, 0.0, retry_after, folder)
        throttled = await run(users, latency, share, retry_after, folder, holds=holds)
        serial = throttled if users == 1 else await run(1, latency, share, retry_after,
                                                        folder, concurrency=1, holds=holds)
    for figures, expected in ((ideal, users), (throttled, users), (serial, 1)):
        if figures["states"] != ["verified"] or figures["resets"] != expected:
            raise RuntimeError(f"expected {expected} verified cases, one reset each: {figures}")
    report.say(f"  unthrottled: {ideal['whole_run_s']:.2f} s, {ideal['calls']} calls; the "
               f"tenant's floor {ideal['floor_s']:.2f} s (x{_over(ideal):.2f})")
    report.say(f"  throttled:   {throttled['whole_run_s']:.2f} s, {throttled['calls']} calls, "
               f"{throttled['throttled']} answered 429 ({throttled['throttled'] / users:.1f} "
               f"per case), {throttled['queue_retries']} deliveries retried through the queue")
    report.say(f"  ideal under throttling (the slowest case's calls x latency + its 429s x "
               f"Retry-After + the verification): {throttled['floor_s']:.2f} s; throttled / "
               f"ideal {_over(throttled):.2f}, throttled / unthrottled "
               f"{throttled['whole_run_s'] / ideal['whole_run_s']:.2f}")
    for label, figures in (("requests naming their user", throttled),
                           ("one case alone, every request", serial)):
        report.say(f"  retries ({label}): {figures['retried']} after a 429, "
                   f"{figures['sooner_than_asked']} sooner than asked (shortest wait "
                   f"{figures['min_wait_s']} s, median {figures['median_wait_s']} s from the "
                   f"answer), {figures['never_retried']} never retried"
                   + (f" ({', '.join(figures['never_retried_calls'])})"
                      if figures["never_retried_calls"] else ""))
    report.say(f"  sent while a 429 of the same service still held (after its answer, within "
               f"Retry-After): {throttled['sent_while_throttled']} of {throttled['calls']} "
               f"requests {throttled['sent_while_throttled_by_service']}; one case alone "
               f"{serial['sent_while_throttled']} of {serial['calls']}")
    report.say(f"  ({throttled['shared_unattributed']} 429s on tenant-wide reads in the "
               "concurrent run: the same request in every case, not attributable there)")
    report.say(f"  every case verified, {throttled['resets']} resets for {users} users, "
               f"{throttled['still_blocked']} still blocked")
    report.figures.update({"unthrottled": ideal, "throttled": throttled, "serial": serial,
                           "over_ideal": round(_over(throttled), 3),
                           "unthrottled_over_floor": round(_over(ideal), 3),
                           "users": users, "latency_s": latency, "retry_after_s": retry_after,
                           "holds": holds})
    report.emit()


def _over(figures: dict[str, Any]) -> float:
    return float(figures["whole_run_s"]) / float(figures["floor_s"])


if __name__ == "__main__":
    asyncio.run(main())
