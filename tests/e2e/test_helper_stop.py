"""Stopping a ``run`` with helpers the way a service manager does: systemd's default
``KillMode=control-group`` sends SIGTERM to every process of the unit at once, the helpers
too (systemd.kill(5), "KillMode="). One SIGTERM each is a first stop: the messages in hand
finish, in the helpers as in ``run``."""

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
from tests.e2e.test_worker_processes import USERS, alive, children, done_steps, enqueue, environment

IN_HAND = USERS[:2]


@pytest.fixture
def served() -> Iterator[tuple[str, SandboxTenant]]:
    tenant = harness.blocked_tenant(len(USERS), latency=0.0)
    server = SandboxServer(tenant)
    url = server.start_in_thread()
    yield url, tenant
    server.stop_thread()


def start_with_both_resets_in_hand(url: str, tenant: SandboxTenant, db: Path,
                                   delay: float) -> tuple[subprocess.Popen[str], int]:
    """``run`` with one helper, each process in the middle of one reset (its answer
    ``delay`` seconds away); the run and its helper's pid."""
    env = environment(url, tenant, db, WORKER_PROCESSES="2", WORKER_CONCURRENCY="2")
    for user in IN_HAND:
        tenant.add_fault(Fault(delay=delay, method="PATCH", target=user))
    enqueue(env, IN_HAND)
    run = subprocess.Popen([sys.executable, "-m", "remediation", "run"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while resets_in_hand(db) < len(IN_HAND):
        if time.monotonic() > deadline or run.poll() is not None:
            run.kill()
            raise AssertionError(f"the two resets never were in hand at once: {run.communicate()}")
        time.sleep(0.05)
    [helper] = children(run.pid)
    return run, helper


def resets_in_hand(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            return int(connection.execute(
                "SELECT COUNT(*) FROM step_claims WHERE step = 'reset_password'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_one_sigterm_to_every_process_lets_each_finish_its_message(
        served: tuple[str, SandboxTenant], tmp_path: Path) -> None:
    url, tenant = served
    db = tmp_path / "state.db"
    run, helper = start_with_both_resets_in_hand(url, tenant, db, delay=3)
    try:
        for pid in (run.pid, helper):  # systemctl stop: the whole control group at once
            os.kill(pid, signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, err
    assert done_steps(db, "reset_password") == len(IN_HAND), err
    assert all(len(tenant.user(user).password_changes) == 1 for user in IN_HAND)


def test_a_second_sigterm_to_run_stops_its_helper_at_once_too(
        served: tuple[str, SandboxTenant], tmp_path: Path) -> None:
    """Both resets wait a minute for their answers: a second SIGTERM ends ``run`` and its
    helper long before, each reset cut short (the next run resumes them)."""
    url, tenant = served
    db = tmp_path / "state.db"
    run, helper = start_with_both_resets_in_hand(url, tenant, db, delay=60)
    try:
        run.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, err
    assert "stopping now" in err
    assert done_steps(db, "reset_password") == 0, err
    deadline = time.monotonic() + 10
    while alive(helper):
        assert time.monotonic() < deadline, "the helper went on with its reset"
        time.sleep(0.05)
