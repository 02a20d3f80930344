"""Every bench script (``make bench``) still runs, at its smallest size, and still says what
it measures: its last line is its JSON, with the figures a reader of docs/BENCHMARKS.md
looks for. The scripts run side by side (each starts the product, the script or both as
processes of their own), no latency, the verification at +0.2 s."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SMALLEST = {
    "time_to_secure": ["1,2", "0"],  # 2 users: the repeated runs too (BENCH_REPEATS)
    "calls_per_case": ["0"],
    "storm": ["20", "3", "2", "0"],
    "throttled": ["1", "0.2", "0.1", "0"],
    "cold_start": ["1", "0", "--no-install"],
    "alert_flood": ["100", "50", "100"],
    "cpu_per_case": ["2", "1", "0"],
}


def run(script: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    env = {**os.environ, "BENCH_VERIFY_DELAY": "0.2", "BENCH_REPEATS": "2",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", f"bench.{script}", *SMALLEST[script]], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    lines = done.stdout.strip().splitlines()
    try:
        return done, json.loads(lines[-1]) if lines else None
    except ValueError:
        return done, None


def test_every_bench_script_runs_at_its_smallest_size_and_ends_with_its_figures() -> None:
    with ThreadPoolExecutor(max_workers=len(SMALLEST)) as pool:
        results = dict(zip(SMALLEST, pool.map(run, SMALLEST), strict=True))
    for script, (done, figures) in results.items():
        assert done.returncode == 0, f"{script}: {done.stderr[-3000:]}"
        assert figures is not None, f"{script} printed no JSON line last: {done.stdout[-1000:]}"
        assert figures["bench"] == script
        assert figures["machine"]["nproc"] >= 1

    cpu = results["cpu_per_case"][1]
    assert cpu is not None and cpu["calls_per_case"] > 0 and cpu["connections"] >= 1

    secure = results["time_to_secure"][1]["runs"][0]  # type: ignore[index]
    assert secure["product"]["password_resets"] == 1
    assert secure["product"]["calls_on_path"]["reset_password"] > 0
    assert secure["script"]["calls_per_user"]["graph_write"] == 2  # the reset, the revocation
    assert (secure["script"]["mode"], secure["script_loop"]["mode"]) == ("batched", "loop")
    assert secure["script_loop"]["calls_per_user"] == secure["script"]["calls_per_user"]
    assert secure["product"]["over_script_loop"] > 0
    assert secure["product"]["over_script_batched"] > 0
    again = results["time_to_secure"][1]["runs"][1]["product"]  # type: ignore[index]
    assert len(again["p95_over_critical_path_secure_runs"]) == 2  # each on its own journal
    assert again["password_resets"] == 2

    calls = {row["case"]: row for row in results["calls_per_case"][1]["cases"]}  # type: ignore[index]
    assert calls["baseline"]["state"] == "verified"
    assert calls["baseline"]["calls"]["exchange_write"] == 1  # the unblock
    role_holder = calls["1 roles (escalates)"]
    assert (role_holder["state"], role_holder["calls"]["graph_write"]) == ("escalated", 0)

    storm = results["storm"][1]["product"]  # type: ignore[index]
    assert (storm["cases"], storm["password_resets"], storm["unblocks"]) == (2, 2, 2)
    assert (storm["alerts_joined"], storm["still_blocked"]) == (3, 0)
    storm_scripts = results["storm"][1]  # type: ignore[index]
    assert (storm_scripts["script"]["mode"], storm_scripts["script_loop"]["mode"]) == (
        "batched", "loop")
    assert storm_scripts["script_loop"]["accounts"] == storm_scripts["script"]["accounts"] == 2
    assert storm["over_script_loop"] > 0 and storm["over_script_batched"] > 0

    throttled = results["throttled"][1]  # type: ignore[index]
    assert throttled["throttled"]["throttled"] > 0
    assert throttled["throttled"]["sooner_than_asked"] == 0
    assert throttled["serial"]["sooner_than_asked"] == 0

    cold = results["cold_start"][1]  # type: ignore[index]
    assert cold["import"]["sdk_modules"] == []
    assert cold["first_remediation"]["peak_rss_mib"] > 0
    # Equal when pip compiled nothing (make installs with --no-compile).
    assert cold["installed"]["bytes"] >= cold["installed"]["bytes_without_pycache"] > 0

    flood = results["alert_flood"][1]["poll"]  # type: ignore[index]
    assert (flood["read"], flood["queued"]) == (101, 1)
