"""Hostile tests (round 18b): WORKER_PROCESSES helpers once their run is gone."""

import signal
import subprocess
import sys
import time
from pathlib import Path

from remediation.sandbox import Fault, SandboxTenant
from tests.e2e.test_worker_processes import (
    USERS,
    alive,
    children,
    enqueue,
    environment,
    served,  # noqa: F401 - the fixture
)


def steps_in_hand(db: Path) -> int:
    import sqlite3
    with sqlite3.connect(db, timeout=5) as connection:
        return int(connection.execute(
            "SELECT COUNT(*) FROM messages WHERE state = 'active' AND locked_until > ?",
            (time.time(),)).fetchone()[0])


def test_a_helper_whose_run_was_killed_finishes_the_messages_in_hand(
        served: tuple[str, SandboxTenant], tmp_path: Path) -> None:  # noqa: F811
    """``run`` SIGKILLed while its helper holds two messages: the helper is told by its
    stdin closing and must finish both (the module's promise), not die on the first case
    it tries to report to a run that is gone (a write to a closed pipe)."""
    url, tenant = served
    db = tmp_path / "state.db"
    env = environment(url, tenant, db, WORKER_PROCESSES="2", WORKER_CONCURRENCY="4")
    for user, delay in zip(USERS, (3, 3, 3, 6), strict=True):
        tenant.add_fault(Fault(delay=delay, method="PATCH", target=user))
    enqueue(env, USERS)
    log = tmp_path / "run.log"
    with open(log, "w") as err:
        run = subprocess.Popen([sys.executable, "-m", "remediation", "run"], env=env,
                               stdout=subprocess.PIPE, stderr=err)
    try:
        deadline = time.monotonic() + 30
        while not children(run.pid) or steps_in_hand(db) < len(USERS):
            assert time.monotonic() < deadline, "the helper never took its messages"
            assert run.poll() is None
            time.sleep(0.05)
        [helper] = children(run.pid)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
        assert run.stdout is not None
        run.stdout.close()  # the pipe the helper writes case ids to is gone with run
    deadline = time.monotonic() + 60
    while alive(helper):
        assert time.monotonic() < deadline, "the helper outlived its run"
        time.sleep(0.05)
    text = log.read_text()
    assert "BrokenPipeError" not in text and "Exception ignored" not in text, text
    # The run's own two cases died with it; the helper's two both went through their
    # reset (the one that waits 6 s too), not only the first to finish.
    changed = {user: len(tenant.user(user).password_changes) for user in USERS}
    assert sum(changed.values()) == 2, (changed, text[-3000:])


def test_a_helper_runs_the_code_of_its_run_not_a_package_in_the_working_directory(
        served: tuple[str, SandboxTenant], tmp_path: Path) -> None:  # noqa: F811
    """``remediation run`` (the console script) started from a directory others can write
    (/tmp, a share) holding a directory named ``remediation``: run itself never imports from
    its working directory, and its helpers, which hold the same credentials, must not
    either (``python -m`` puts the working directory first on sys.path)."""
    url, tenant = served
    here = tmp_path / "shared"
    planted = here / "remediation"
    planted.mkdir(parents=True)
    marker = tmp_path / "planted-code-ran"
    (planted / "__init__.py").write_text("")
    (planted / "__main__.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n")
    root = Path(__file__).resolve().parents[2]
    env = {**environment(url, tenant, tmp_path / "state.db", WORKER_PROCESSES="2"),
           "PYTHONPATH": str(root)}
    enqueue(env, USERS[:1])
    script = Path(sys.executable).parent / "remediation"
    done = subprocess.run([str(script), "run", "--until-idle"], cwd=here, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert not marker.exists(), "the helper ran code from run's working directory"
    assert done.returncode == 0, done.stderr[-3000:]
    assert "run --helper pid" in done.stderr, done.stderr[-3000:]
