"""``WORKER_PROCESSES``: one ``remediation run`` working the local queue from several
processes (README, "Configuration"; ``entrypoints/helper_processes.py``)."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import harness
from remediation.sandbox import Fault, SandboxServer, SandboxTenant
from tests.conftest import sandbox_env

USERS = [harness.address(n) for n in range(4)]
HANGING = USERS[0]


@pytest.fixture
def served() -> Iterator[tuple[str, SandboxTenant]]:
    tenant = harness.blocked_tenant(len(USERS), latency=0.0)
    server = SandboxServer(tenant)
    url = server.start_in_thread()
    yield url, tenant
    server.stop_thread()


def environment(url: str, tenant: SandboxTenant, db: Path, **settings: str) -> dict[str, str]:
    return {**os.environ, **sandbox_env(url, tenant, db),
            "PROTECTED_GROUP_IDS": harness.BREAK_GLASS_GROUP_ID, "VERIFY_DELAYS": "1s",
            "ALERT_POLL_INTERVAL": "30m", **settings}


def enqueue(env: dict[str, str], users: list[str]) -> None:
    for user in users:
        done = subprocess.run([sys.executable, "-m", "remediation", "enqueue", "--user", user,
                               "--reason", "test"], env=env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr


def done_steps(db: Path, name: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            rows = connection.execute("SELECT doc FROM steps").fetchall()
    except sqlite3.OperationalError:
        return 0
    return sum(1 for (doc,) in rows
               if json.loads(doc)["name"] == name and json.loads(doc)["status"] == "done")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as listed:
            found.extend(int(child) for child in listed.read().split())
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_two_processes_with_one_message_each_work_around_a_hanging_case(
        served: tuple[str, SandboxTenant], tmp_path: Path) -> None:
    """WORKER_CONCURRENCY 2 over 2 processes is one message per process: while one hangs in
    a 6 s reset, the other secures every other user; one reset each, all verified, and the
    summary of the run counts the cases its helper worked on."""
    url, tenant = served
    db = tmp_path / "state.db"
    env = environment(url, tenant, db, WORKER_PROCESSES="2", WORKER_CONCURRENCY="2")
    tenant.add_fault(Fault(delay=6, method="PATCH", target=HANGING))
    enqueue(env, USERS)

    run = subprocess.Popen([sys.executable, "-m", "remediation", "run", "--until-idle"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while done_steps(db, "reset_password") < len(USERS) - 1:
            assert time.monotonic() < deadline, "the other users waited for the hanging one"
            assert run.poll() is None, run.communicate()
            time.sleep(0.05)
        # Every other user secured while the first is still in its reset.
        assert HANGING not in [u.user_principal_name for u in tenant.users()
                               if u.password_changes]
        helpers = children(run.pid)
        assert len(helpers) == 1
        with open(f"/proc/{helpers[0]}/cmdline", "rb") as cmdline:
            assert b"--helper" in cmdline.read().split(b"\0")
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, err
    assert all(len(tenant.user(user).password_changes) == 1 for user in USERS)
    assert tenant.blocked_addresses() == []
    assert f"{len(USERS)} verified" in out, out
    assert not alive(helpers[0])


def test_a_helper_does_not_outlive_its_run(served: tuple[str, SandboxTenant],
                                           tmp_path: Path) -> None:
    """``run`` killed outright (SIGKILL: no chance to stop its helper): the helper sees its
    stdin close and stops; the message it held comes again to the next run."""
    url, tenant = served
    db = tmp_path / "state.db"
    env = environment(url, tenant, db, WORKER_PROCESSES="2", LOCK_DURATION="2s")
    run = subprocess.Popen([sys.executable, "-m", "remediation", "run"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not children(run.pid):
            assert time.monotonic() < deadline, "no helper started"
            time.sleep(0.05)
        [helper] = children(run.pid)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    deadline = time.monotonic() + 30
    while alive(helper):
        assert time.monotonic() < deadline, "the helper outlived its run"
        time.sleep(0.05)
