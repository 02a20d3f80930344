"""Cold start: how long ``import function_app`` takes in a fresh interpreter and which SDKs
(telemetry's exporter included) it loads; the first remediation in a fresh process (time
and peak memory); the installed size of ``requirements.txt``.

Usage: python -m bench.cold_start [RUNS] [LATENCY] [--no-install]
RUNS (default 5): fresh interpreters for the import, and fresh processes for the first
remediation (each a ``remediation run --until-idle`` with one request queued, against a
sandbox served by this process with LATENCY, default 0.05 s, per call). Its time is from
the process's spawn to the journal's ``reset_password`` done, to ``unblock`` done, and to
its exit (after the verification at +1 s); its peak memory is the child's ``ru_maxrss``
(``os.wait4``).

Installed size: ``pip install --target TMP -r requirements.txt`` (the whole resolved set,
from the configured index; bytecode compiled as pip does by default), then the files' bytes,
with and without ``__pycache__``, what ``du -sk`` counts on disk (whole blocks), and the
largest top-level folders. With ``--no-install``, or
when pip fails (no index reachable), the size is summed from the files this interpreter's
environment installed for the requirements' closure (their RECORD files).
"""

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import harness
from bench.harness import ROOT, Report

PROBE = """
import json, sys, time
started = time.perf_counter()
import function_app
elapsed = time.perf_counter() - started
heavy = sorted({m.split('.')[0] + '.' + m.split('.')[1] if m.startswith('azure.') else
                m.split('.')[0] for m in sys.modules
                if m.startswith(('msgraph', 'kiota', 'azure.servicebus', 'azure.data',
                                 'azure.identity', 'aiohttp', 'httpx', 'azure.monitor',
                                 'opentelemetry'))})
print(json.dumps({"seconds": elapsed, "heavy": heavy, "modules": len(sys.modules)}))
"""


def import_time(runs: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = [json.loads(subprocess.run([sys.executable, "-c", PROBE], capture_output=True,
                                         text=True, check=True, cwd=ROOT, env=env).stdout)
               for _ in range(runs)]
    seconds = [r["seconds"] for r in results]
    return {"runs": runs, "median_s": round(statistics.median(seconds), 3),
            "max_s": round(max(seconds), 3), "sdk_modules": results[0]["heavy"],
            "modules": results[0]["modules"]}


async def first_remediation(folder: Path, latency: float) -> dict[str, Any]:
    tenant = harness.blocked_tenant(1, latency)
    async with harness.served(tenant) as url:
        db = folder / f"cold-{time.monotonic_ns()}.db"
        env = harness.runtime_env(url, tenant, db, WORKER_PROCESSES=1)  # one fresh process
        app = harness.application(env)
        try:
            await harness.enqueue(app, [harness.address(0)])
            spawned, exited, code, usage = await asyncio.to_thread(_run_until_idle, env)
            [case] = await app.journal.list_cases()
        finally:
            await app.aclose()
    if code != 0 or case.state.value != "verified":
        raise RuntimeError(f"the first remediation ended {case.state.value}, exit {code}")
    reset, unblock = harness.done_at(case, "reset_password"), harness.done_at(case, "unblock")
    assert reset is not None and unblock is not None
    return {"to_reset_s": reset - spawned, "to_unblock_s": unblock - spawned,
            "to_exit_s": exited - spawned, "peak_rss_mib": usage.ru_maxrss / 1024,
            "cpu_s": usage.ru_utime + usage.ru_stime}


def _run_until_idle(env: dict[str, str]) -> tuple[float, float, int, Any]:
    """Spawn ``remediation run --until-idle``, wait for it: spawn and exit times, exit status,
    and the child's own resource usage (``os.wait4``: its peak RSS, its CPU)."""
    spawned = time.time()
    process = subprocess.Popen([sys.executable, "-m", "remediation", "run", "--until-idle"],
                               env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = code = os.waitstatus_to_exitcode(status)
    return spawned, time.time(), code, usage


def installed_size(install: bool) -> dict[str, Any]:
    if install:
        with tempfile.TemporaryDirectory(prefix="remediation-size-") as folder:
            target = Path(folder) / "site"
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 "--target", str(target), "-r", str(ROOT / "requirements.txt")],
                capture_output=True, text=True, timeout=600, check=False)
            if done.returncode == 0:
                sizes = _folder_sizes(target)
                du = subprocess.run(["du", "-sk", str(target)], capture_output=True,
                                    text=True, check=True).stdout.split()[0]
                sizes["du_bytes"] = int(du) * 1024  # blocks on disk: small files round up
                return {"method": "pip install --target", "seconds": round(
                    time.monotonic() - started, 1), **sizes}
            print(f"pip install failed ({done.stderr.strip()[-300:]}): summing RECORD files",
                  file=sys.stderr)
    return {"method": "RECORD files of the installed closure", **_closure_sizes()}


def _folder_sizes(target: Path) -> dict[str, Any]:
    total = compiled = 0
    per_top: dict[str, int] = {}
    for path in target.rglob("*"):
        if path.is_file() and not path.is_symlink():
            size = path.stat().st_size
            total += size
            if "__pycache__" in path.parts:
                compiled += size
            top = path.relative_to(target).parts[0]
            per_top[top] = per_top.get(top, 0) + size
    largest = sorted(per_top.items(), key=lambda item: -item[1])[:5]
    return {"bytes": total, "bytes_without_pycache": total - compiled,
            "distributions": sum(1 for p in target.iterdir() if p.name.endswith(".dist-info")),
            "largest": {name: size for name, size in largest}}


def _closure_sizes() -> dict[str, Any]:
    from packaging.requirements import Requirement

    wanted = [Requirement(line.split("#")[0].strip())
              for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.split("#")[0].strip()]
    seen: dict[str, metadata.Distribution] = {}
    while wanted:
        requirement = wanted.pop()
        key = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if key in seen:
            continue
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            continue
        seen[key] = dist
        for text in dist.requires or []:
            child = Requirement(text)
            if child.marker is None or child.marker.evaluate({"extra": ""}):
                wanted.append(child)
    total = compiled = 0
    per_dist: dict[str, int] = {}
    for key, dist in seen.items():
        for file in dist.files or []:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                size = path.stat().st_size
                total += size
                compiled += size if "__pycache__" in path.parts else 0
                per_dist[key] = per_dist.get(key, 0) + size
    largest = sorted(per_dist.items(), key=lambda item: -item[1])[:5]
    return {"bytes": total, "bytes_without_pycache": total - compiled,
            "distributions": len(seen), "largest": dict(largest)}


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


async def main() -> None:
    numbers = [a for a in sys.argv[1:] if not a.startswith("--")]
    runs = int(numbers[0]) if numbers else 5
    latency = float(numbers[1]) if len(numbers) > 1 else harness.LATENCY
    install = "--no-install" not in sys.argv and shutil.which("du") is not None
    report = Report("cold_start")
    imported = import_time(runs)
    report.say(f"import function_app over {runs} fresh interpreters: median "
               f"{imported['median_s'] * 1000:.0f} ms, max {imported['max_s'] * 1000:.0f} ms "
               f"({imported['modules']} modules)")
    report.say(f"SDK modules loaded at import: {imported['sdk_modules'] or 'none'}")
    firsts = []
    with harness.scratch() as folder:
        for _ in range(runs):
            firsts.append(await first_remediation(Path(folder), latency))
    first = {name: round(statistics.median(r[name] for r in firsts), 3) for name in firsts[0]}
    first.update(runs=runs, latency_s=latency)
    report.say(f"first remediation in a fresh `remediation run --until-idle` (median of {runs}, "
               f"{latency * 1000:.0f} ms per call): reset {first['to_reset_s']:.2f} s, "
               f"unblock {first['to_unblock_s']:.2f} s, exit {first['to_exit_s']:.2f} s after "
               f"the spawn; peak RSS {first['peak_rss_mib']:.0f} MiB, CPU "
               f"{first['cpu_s']:.2f} s")
    size = installed_size(install)
    largest = ", ".join(f"{name} {_mib(b)}" for name, b in size["largest"].items())
    report.say(f"installed size of requirements.txt ({size['method']}): {_mib(size['bytes'])}, "
               f"{_mib(size['bytes_without_pycache'])} without __pycache__"
               + (f", {_mib(size['du_bytes'])} on disk (du)" if "du_bytes" in size else "")
               + f", "
               f"{size['distributions']} distributions; largest: {largest}")
    report.figures.update({"import": imported, "first_remediation": first,
                           "installed": size})
    report.emit()


if __name__ == "__main__":
    asyncio.run(main())
