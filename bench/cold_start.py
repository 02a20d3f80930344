"""How long `import function_app` takes in a fresh interpreter, and which SDKs (telemetry's
exporter included) it loads.

Usage: .venv/bin/python bench/cold_start.py [RUNS]
"""

import json
import statistics
import subprocess
import sys

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
print(json.dumps({"seconds": elapsed, "heavy": heavy}))
"""


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    results = [json.loads(subprocess.run([sys.executable, "-c", PROBE], capture_output=True,
                                         text=True, check=True).stdout) for _ in range(runs)]
    seconds = [r["seconds"] for r in results]
    print(f"import function_app over {runs} fresh interpreters: "
          f"median {statistics.median(seconds) * 1000:.0f} ms, "
          f"max {max(seconds) * 1000:.0f} ms")
    print(f"SDK modules loaded at import: {results[0]['heavy'] or 'none'}")


if __name__ == "__main__":
    main()
