"""What the bench scripts share: a sandbox tenant with blocked users served in this process,
the real local runtime (``python -m remediation run``) in a process of its own, the
sequential administrator's script (``bench/admin_script.py``) in another, and the arithmetic
the figures need (percentiles, the journal's step times, request kinds).

The tenant lives in the bench's process, the product and the script each in theirs: the
tenant's own work (parsing, answering, the per-call ``latency``) never takes CPU from the
process being measured, as a real tenant's would not. Times are wall-clock seconds; the
journal's step times (``Step.at``, UTC) and the bench's own clock are the same machine clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import resource
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from remediation.bootstrap import bootstrap
from remediation.config import Settings
from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.requests import RemediationRequest
from remediation.entrypoints.demo import OTHER_CREDENTIALS
from remediation.entrypoints.helper_processes import HELPER_READY
from remediation.sandbox import SandboxServer, SandboxTenant, SandboxUser
from remediation.sandbox.identity_routes import IDENTITY_PATH
from remediation.sandbox.seed import BREAK_GLASS_GROUP, BREAK_GLASS_GROUP_ID
from remediation.sandbox.state import RecordedRequest

LATENCY = 0.05  # seconds the sandbox adds to every tenant call
# Seconds from an unblock to its one verification (VERIFY_DELAYS), for the product and the
# script alike; BENCH_VERIFY_DELAY shortens it (tests/bench runs every script in seconds).
VERIFY_DELAY = float(os.environ.get("BENCH_VERIFY_DELAY", "1"))
DOMAIN = "contoso.com"
ALERTS_PATH = "/v1.0/security/alerts_v2"
# A directory role that is no administrator's (any role makes the guardrails escalate).
READER_ROLES = ("88d8e3e3-8f55-4a1e-953a-9b9898b8876b",  # Directory Readers
                "f2ef992c-3afb-46b9-b7cf-a126ee74c451",  # Global Reader
                "790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b",  # Message Center Reader
                "4d6ac14f-3453-41d0-bef9-a3e0c569773a",  # License Administrator
                "95e79109-95c0-4d8e-aee3-d01accf2d47b")  # Guest Inviter


# --- the tenant ------------------------------------------------------------------------------

def address(index: int, prefix: str = "user") -> str:
    return f"{prefix}{index}@{DOMAIN}"


def bench_tenant(latency: float = LATENCY) -> SandboxTenant:
    """An empty tenant with the deployment's protected group (PROTECTED_GROUP_IDS)."""
    tenant = SandboxTenant(domains=[DOMAIN])
    tenant.add_group(BREAK_GLASS_GROUP_ID, BREAK_GLASS_GROUP)
    tenant.latency = latency
    return tenant


def add_blocked_user(tenant: SandboxTenant, upn: str, *, aliases: int = 0, groups: int = 0,
                     roles: int = 0) -> SandboxUser:
    """A blocked member account with ``aliases`` more SMTP addresses, ``groups`` group
    memberships and ``roles`` directory roles (any role makes the case escalate)."""
    local = upn.split("@")[0]
    proxies = [f"SMTP:{upn}", *(f"smtp:{local}.alias{n}@{DOMAIN}" for n in range(aliases))]
    group_ids = []
    for n in range(groups):
        group_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-group-{n}"))
        tenant.add_group(group_id, f"Bench group {n}")
        group_ids.append(group_id)
    role_ids = [READER_ROLES[n % len(READER_ROLES)] for n in range(min(roles, 1))]
    user = tenant.add_user(SandboxUser(upn, local.title(), proxy_addresses=proxies,
                                       group_ids=group_ids, role_template_ids=role_ids))
    for n in range(1, roles):  # further roles as scoped assignments (roleAssignments)
        tenant.assign_role(user.id, READER_ROLES[n % len(READER_ROLES)],
                           scope=f"/administrativeUnits/{uuid.uuid5(uuid.NAMESPACE_URL, str(n))}")
    tenant.block(upn)
    return user


def blocked_tenant(users: int, latency: float = LATENCY) -> SandboxTenant:
    tenant = bench_tenant(latency)
    for index in range(users):
        add_blocked_user(tenant, address(index))
    return tenant


@contextlib.asynccontextmanager
async def served(tenant: SandboxTenant) -> AsyncIterator[str]:
    """The tenant served in this process's event loop; its base URL."""
    server = SandboxServer(tenant)
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()


def runtime_env(url: str, tenant: SandboxTenant, db: Path, **settings: str | int) -> dict[str, str]:
    """The environment of a process of the product (or the script) talking to the sandbox:
    tokens from its managed identity endpoint, as in Azure; ``settings`` by their
    configuration names (README, "Configuration")."""
    env = {name: value for name, value in os.environ.items() if name not in OTHER_CREDENTIALS}
    env.update({
        "AZURE_TENANT_ID": tenant.tenant_id, "GRAPH_ENDPOINT": url, "EXCHANGE_ENDPOINT": url,
        "IDENTITY_ENDPOINT": f"{url}{IDENTITY_PATH}", "IDENTITY_HEADER": tenant.identity_header,
        "AZURE_CLIENT_ID": tenant.managed_identity_client_id,
        "REMEDIATION_DB": str(db), "PROTECTED_GROUP_IDS": BREAK_GLASS_GROUP_ID,
        "VERIFY_DELAYS": f"{VERIFY_DELAY:g}s", "SWEEP_RESTRICTED_USERS": "false",
        "ALERT_POLL_INTERVAL": "30m", "MAX_REMEDIATIONS_PER_HOUR": "100000",
        "HTTP_TIMEOUT": "30s", "RETRY_BACKOFF": "1s", "LOCK_DURATION": "1m",
        "WORKER_PROCESSES": str(PROCESSES),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    })
    for name in ("APPLICATIONINSIGHTS_CONNECTION_STRING", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(name, None)
    env.update({name: str(value) for name, value in settings.items()})
    return env


ROOT = Path(__file__).resolve().parent.parent
# The product's processes (WORKER_PROCESSES): one a core, as README advises.
PROCESSES = os.cpu_count() or 1


# --- the product: the local runtime in a process of its own --------------------------------

class Runtime:
    """``python -m remediation run [--until-idle]`` with ``env``; its log in a file."""

    def __init__(self, env: dict[str, str], folder: Path, *, until_idle: bool = False) -> None:
        self.env = env
        self.log = folder / f"runtime-{uuid.uuid4().hex[:6]}.log"
        self.until_idle = until_idle
        self.process: asyncio.subprocess.Process | None = None
        self.started = 0.0

    async def start(self) -> None:
        args = [sys.executable, "-m", "remediation", "run"]
        if self.until_idle:
            args.append("--until-idle")
        with self.log.open("wb") as log:
            self.started = time.time()
            self.process = await asyncio.create_subprocess_exec(
                *args, env=self.env, cwd=ROOT, stdout=log, stderr=asyncio.subprocess.STDOUT)

    async def ready(self, tenant: SandboxTenant, limit: float = 60) -> float:
        """Wait for the runtime's first alert poll (it has imported, built its clients and
        got its token) and for each of its helper processes (WORKER_PROCESSES) to say it
        works the queue; the seconds since it was started."""
        deadline = time.monotonic() + limit
        helpers = int(self.env.get("WORKER_PROCESSES", "1")) - 1
        while not any(r.path == ALERTS_PATH for r in tenant.requests()) or (
                self.log.read_text(errors="replace").count(HELPER_READY) < helpers):
            self._alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the runtime never polled: see {self.log}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)  # the poll's answer, and the worker's first look
        return time.time() - self.started

    async def wait(self, limit: float = 600) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), limit)

    def usage(self) -> dict[str, float]:
        """The running process's CPU seconds (user + system) and peak resident memory (MiB),
        from /proc (Linux), its helper processes (WORKER_PROCESSES) included: CPU summed,
        peak memory the sum of each process's peak (an upper bound)."""
        assert self.process is not None
        cpu = peak = 0.0
        for pid in _tree(self.process.pid):
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{pid}/status") as status:
                    peak += next((int(line.split()[1]) / 1024 for line in status
                                  if line.startswith("VmHWM:")), 0.0)
            except OSError:  # exited meanwhile
                continue
            cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        return {"cpu_s": round(cpu, 2), "peak_rss_mib": round(peak, 1)}

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    def _alive(self) -> None:
        if self.process is not None and self.process.returncode is not None:
            raise RuntimeError(f"the runtime exited ({self.process.returncode}): "
                               f"{self.log.read_text()[-2000:]}")


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (/proc/PID/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(child) for child in children.read().split())
    return found


def application(env: dict[str, str]) -> Any:
    """The product's composition root on the runtime's database, for the bench's side:
    queueing requests and reading the journal (no tenant call is made through it)."""
    return bootstrap(Settings.from_env(env))


async def enqueue(app: Any, users: Iterable[str]) -> dict[str, float]:
    """One manual request per user, as ``remediation enqueue`` queues it; when each was in."""
    sent: dict[str, float] = {}
    for user in users:
        await app.requests.send(RemediationRequest(user=user, request_id=uuid.uuid4().hex,
                                                   reason="bench", requested_by="bench"))
        sent[user] = time.time()
    return sent


async def wait_settled(app: Any, db: Path, count: int, runtime: Runtime,
                       limit: float = 600, poll: float = 0.2) -> list[Case]:
    """Wait until the journal holds ``count`` cases, every one final, and the queue holds no
    active message due within a minute (alert updates included); then every case, read
    through the journal."""
    deadline = time.monotonic() + limit
    while not _settled(db, count):
        runtime._alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"cases still working after {limit:.0f} s: see {runtime.log}")
        await asyncio.sleep(poll)
    cases: list[Case] = await app.journal.list_cases()
    return cases


def _settled(db: Path, count: int) -> bool:
    """A plain read of the runtime's database (cheap: the bench's process serves the tenant)."""
    working = ",".join(f"'{state.value}'" for state in CaseState if not state.is_final)
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as db_:
        try:
            total, open_cases = db_.execute(
                f"SELECT count(*), coalesce(sum(state IN ({working})), 0) FROM cases"
            ).fetchone()
            (active,) = db_.execute(  # a message due within a minute is work still to do
                "SELECT count(*) FROM messages WHERE state = 'active' AND visible_at < ?",
                (time.time() + 60,)).fetchone()
        except sqlite3.OperationalError:  # not created yet, or busy: look again
            return False
    return bool(total >= count and open_cases == 0 and active == 0)


# --- the sequential administrator's script -----------------------------------------------------

async def admin_script(env: dict[str, str], users: Sequence[str], *,
                       verify_after: float = VERIFY_DELAY, alerts: bool = False,
                       per_user_verify: bool = False) -> dict[str, Any]:
    """Run ``bench/admin_script.py`` for ``users`` (or, with ``alerts``, for the senders the
    outbound-spam alerts name); its JSON answer (per user: reset, revoke, unblock, verify
    wall-clock times; ``started``, ``ended``). ``per_user_verify``: each user waited out and
    checked before the next (the loop), not all checked in one pass at the end."""
    args = [sys.executable, "-m", "bench.admin_script", "--verify-after", str(verify_after)]
    if alerts:
        args.append("--alerts")
    if per_user_verify:
        args.append("--per-user-verify")
    process = await asyncio.create_subprocess_exec(
        *args, env=env, cwd=ROOT, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate(json.dumps(list(users)).encode())
    if process.returncode != 0:
        raise RuntimeError(f"the administrator's script failed: {err.decode()[-2000:]}")
    answer: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    return answer


# --- the journal's record ----------------------------------------------------------------------

def done_at(case: Case, name: str) -> float | None:
    step = case.done(name)
    return None if step is None else step.at.timestamp()


def step_spans(case: Case) -> list[tuple[str, float, float]]:
    """(name, started, ended) of each step the journal opened and closed, in order."""
    spans: list[tuple[str, float, float]] = []
    open_steps: dict[str, Step] = {}
    for step in case.steps:
        if step.status is StepStatus.STARTED:
            open_steps[step.name] = step
        elif step.status in (StepStatus.DONE, StepStatus.FAILED) and step.name in open_steps:
            started = open_steps.pop(step.name)
            spans.append((step.name, started.at.timestamp(), step.at.timestamp()))
    return spans


def critical_path(case: Case, until: str) -> float | None:
    """The case's critical path to step ``until``: the longest chain of the steps the
    journal records up to and including ``until``'s, where a step follows another when it
    started after that one was done (it waited on it), each counting its duration (started
    to done). The workflow runs its steps one after another, so today the chain is every
    step and the path is the sum of their durations; reads that run side by side do so
    inside one step, and shorten that step. Were two steps ever journaled overlapping, the
    longer branch would count, not both. What the case costs with no queue wait and no
    gap between steps."""
    end = done_at(case, until)
    if end is None:
        return None
    spans = sorted((started, ended) for _, started, ended in step_spans(case) if ended <= end)
    return longest_chain(spans)


def longest_chain(spans: Sequence[tuple[float, float]]) -> float:
    """The largest sum of durations over chains of ``spans`` (started, ended; seconds), each
    one starting no earlier than the one before it ended."""
    best: list[float] = []
    ordered = sorted(spans)
    for index, (started, ended) in enumerate(ordered):
        before = [best[j] for j in range(index) if ordered[j][1] <= started]
        best.append(max(before, default=0.0) + (ended - started))
    return max(best, default=0.0)


def calls_on_path(requests: Sequence[RecordedRequest], latency: float,
                  until: float | None = None) -> int:
    """The tenant calls on the longest chain of calls one after another, from the tenant's
    record of when each arrived (``at``, time.monotonic): a call waited on another when it
    arrived at least ``latency`` (the tenant's per-call delay, > 0) after it, that is after
    its answer; calls sent side by side arrive within a few milliseconds and are not a
    chain. ``until``: only calls that arrived up to then (same clock)."""
    times = sorted(r.at for r in requests if until is None or r.at <= until)
    depth: list[int] = []
    for index, at in enumerate(times):
        depth.append(1 + max((depth[j] for j in range(index) if times[j] + latency <= at),
                             default=0))
    return max(depth, default=0)


# --- the tenant's record -----------------------------------------------------------------------

def kind(request: RecordedRequest) -> str:
    """``graph_read``, ``graph_write``, ``exchange_read`` or ``exchange_write``: a Graph GET
    reads, any other Graph method writes; a cmdlet named Get-*/Search-* reads, any other
    changes (Exchange admin REST carries every cmdlet as a POST to InvokeCommand)."""
    if request.cmdlet is not None:
        verb = request.cmdlet.split("-", 1)[0].lower()
        return "exchange_read" if verb in ("get", "search", "test") else "exchange_write"
    return "graph_read" if request.method == "GET" else "graph_write"


KINDS = ("graph_read", "graph_write", "exchange_read", "exchange_write")


def count_kinds(requests: Iterable[RecordedRequest]) -> dict[str, int]:
    counted = Counter(kind(r) for r in requests)
    return {name: counted.get(name, 0) for name in KINDS}


def own_cpu() -> float:
    """CPU seconds this process (the tenant's) has used, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wall_offset() -> float:
    """Add to a request's ``at`` (time.monotonic) to get wall-clock time."""
    return time.time() - time.monotonic()


# --- figures -----------------------------------------------------------------------------------

def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))
    return ordered[int(rank) - 1]


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 0.5), 3), "p95": round(percentile(values, 0.95), 3),
            "max": round(max(values), 3)}


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass
class Report:
    """The figures of one bench script: printed as they come, one JSON line at the end."""

    name: str
    figures: dict[str, Any] = field(default_factory=dict)

    def say(self, line: str) -> None:
        print(line, flush=True)

    def emit(self) -> None:
        print(json.dumps({"bench": self.name, "machine": machine(), **self.figures},
                         sort_keys=True), flush=True)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo
                      if line.startswith("model name")), "")
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "load": [round(x, 2) for x in os.getloadavg()],
            "at": datetime.now().astimezone().isoformat(timespec="seconds")}


def scratch() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="remediation-bench-")


def arg(position: int, default: str) -> str:
    return sys.argv[position] if len(sys.argv) > position else default
