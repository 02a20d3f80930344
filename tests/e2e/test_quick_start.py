"""The README's sandbox quick start, done as a person would: `remediation sandbox` in one
terminal, and in another only the lines it printed, pasted into a shell as they are (the
worker's environment, then `remediation enqueue` and `remediation run --until-idle`). Nothing
else is set: the test's own environment stays out of the shell."""

import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from urllib.request import urlopen

REPOSITORY = Path(__file__).resolve().parents[2]
WAIT = 300  # seconds: the quick start's checks come at +10s, +20s, +30s


def remediation_on_path(folder: Path) -> Path:
    """A ``remediation`` command, as `. .venv/bin/activate` gives one, for this checkout."""
    folder.mkdir()
    command = folder / "remediation"
    command.write_text(f'#!/bin/sh\nPYTHONPATH={REPOSITORY} exec {sys.executable} '
                       '-m remediation "$@"\n')
    command.chmod(0o755)
    return folder


def shell(lines: list[str], bin_folder: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The lines, pasted into a fresh shell (``sh -e``: the first failing line stops it)."""
    return subprocess.run(["sh", "-ec", "\n".join(line.strip() for line in lines)],
                          env={"PATH": f"{bin_folder}:/usr/bin:/bin", "HOME": str(cwd)},
                          cwd=cwd, capture_output=True, text=True, timeout=WAIT, check=False)


def test_pasting_what_the_sandbox_prints_runs_a_case_through(tmp_path: Path) -> None:
    bin_folder = remediation_on_path(tmp_path / "bin")
    terminal_one = tmp_path / "one"
    terminal_one.mkdir()
    sandbox = subprocess.Popen(
        [str(bin_folder / "remediation"), "sandbox", "--port", "0"], cwd=terminal_one,
        env={"PATH": f"{bin_folder}:/usr/bin:/bin", "HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert sandbox.stderr is not None
        printed: list[str] = []
        while not any("sandbox tenant listening on" in line for line in printed):
            line = sandbox.stderr.readline()
            assert line, f"the sandbox ended: {printed}"
            printed.append(line.rstrip("\n"))
        logged: list[str] = []  # what the sandbox's terminal shows from now on
        reader = threading.Thread(target=lambda: logged.extend(sandbox.stderr or ()),
                                  daemon=True)
        reader.start()
        doctor = next(n for n, line in enumerate(printed) if "remediation doctor" in line)
        pasted = [line for line in printed[:doctor] if line.startswith("  ")]
        url = re.search(r"serving on (http://127\.0\.0\.1:\d+)", printed[0])
        assert url is not None, printed

        terminal_two = tmp_path / "two"
        terminal_two.mkdir()
        worked = shell(pasted, bin_folder, terminal_two)
        exports = [line for line in pasted if line.strip().startswith(("export", "unset"))]
        status = shell([*exports, "remediation status --json"], bin_folder, terminal_two)
        with urlopen(f"{url.group(1)}/_sandbox/webhook", timeout=30) as answer:  # noqa: S310
            posts = json.load(answer)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    reader.join(timeout=30)  # what the sandbox's terminal showed, to its last line

    assert worked.returncode == 0, worked.stdout + worked.stderr
    assert "queued request" in worked.stdout
    summary = worked.stdout[worked.stdout.index("run summary:"):].splitlines()
    assert summary[0] == "run summary: idle, every case is final", summary
    assert re.search(r"(waiting|working \(.*\)): \d+ cases? open", worked.stderr)
    cases = json.loads(status.stdout)
    states = {case["user"]: case["state"] for case in cases}
    assert states["adele.vance@contoso.com"] == "verified"  # the request the paste queued
    assert states["grace.taylor@contoso.com"] == "escalated"  # PROTECTED_GROUP_IDS was set

    # The storm trips the breaker: one post names every case it held; every other escalated
    # case has a card of its own.
    held = [case for case in cases if case.get("escalation_kind") == "circuit_breaker"]
    assert held and f"circuit_breaker {len(held)}" in summary[2]
    grouped = [post for post in posts if post["headline"].startswith("Circuit breaker open")]
    assert len(grouped) == 1
    assert all(case["case_id"] in json.dumps(grouped[0]["payload"]) for case in held)
    others = [case for case in cases
              if case["state"] == "escalated" and case not in held]
    assert len(posts) == 1 + len(others)
    assert all(post["shown"] for post in posts)
    assert any("received a post: Circuit breaker open" in line for line in logged)
