"""``make bench`` (``python -m bench``): every bench script at its default size, one after
another, their output as it comes; each script's JSON line (its last) is also appended to
``.remediation/bench-results.jsonl`` (``BENCH_RESULTS`` names another file). Exit status 1
when a script failed. docs/BENCHMARKS.md says what each figure means and what bounds it.

Usage: python -m bench [SCRIPT ...]   (default: all, in the order below)
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

SCRIPTS = ("time_to_secure", "calls_per_case", "storm", "throttled", "cold_start",
           "alert_flood", "cpu_per_case")
ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    chosen = sys.argv[1:] or list(SCRIPTS)
    unknown = [name for name in chosen if name not in SCRIPTS]
    if unknown:
        print(f"unknown bench script(s): {', '.join(unknown)}; known: {', '.join(SCRIPTS)}",
              file=sys.stderr)
        return 2
    results = Path(os.environ.get("BENCH_RESULTS", ROOT / ".remediation/bench-results.jsonl"))
    results.parent.mkdir(parents=True, exist_ok=True)
    started, failed = time.monotonic(), []
    for name in chosen:
        print(f"\n== bench/{name}.py  (load average {_load()})", flush=True)
        last = ""
        with subprocess.Popen([sys.executable, "-m", f"bench.{name}"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) as process:
            assert process.stdout is not None
            for line in process.stdout:
                print(line, end="", flush=True)
                last = line.strip() or last
        if process.returncode != 0:
            failed.append(name)
            continue
        with results.open("a") as out:
            out.write(json.dumps(json.loads(last), sort_keys=True) + "\n")
    minutes = (time.monotonic() - started) / 60
    print(f"\n{len(chosen) - len(failed)} of {len(chosen)} bench scripts done in "
          f"{minutes:.1f} min (load average now {_load()}); JSON lines appended to {results}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
