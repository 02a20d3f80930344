"""`remediation run` speaks (issue 16, point 7): while it waits for scheduled checks it says
how many cases are open, how many checks are scheduled and when the next is due; at its end
it sums up the cases per state and the escalations by kind; Ctrl-C stops it cleanly, with
that summary. In-process against the sandbox over HTTP, and as a separate process sent
signals the way a terminal sends them."""

import io
import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from remediation.bootstrap import bootstrap
from remediation.domain.requests import RemediationRequest
from remediation.entrypoints.run_report import Progress
from remediation.entrypoints.runner import LocalRun
from remediation.sandbox import Fault, SandboxTenant
from tests.conftest import sandbox_env, sandbox_settings

ADELE = "adele.vance@contoso.com"  # an ordinary account: verified
PATTI = "patti.fernandez@contoso.com"  # a Global Administrator: escalated (guardrail)
WAITING = re.compile(r"waiting: 1 case open, ([123]) checks? scheduled, next at "
                     r"(?:\d{4}-\d\d-\d\d )?(\d\d:\d\d:\d\d) UTC \((?:in \d+ s|due now)\)")
WAIT = 60.0  # seconds a process is given to answer a signal (it answers at once)


async def test_while_checks_are_due_the_run_says_so_and_sums_up_at_its_end(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    delays = (timedelta(seconds=2), timedelta(seconds=3), timedelta(seconds=4))
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "state.db",
                                     sweep_restricted_users=False, verify_delays=delays))
    out = io.StringIO()
    caplog.set_level(logging.INFO, logger="remediation.run")
    try:
        for user in (ADELE, PATTI):
            await app.requests.send(RemediationRequest(user=user, request_id=uuid.uuid4().hex))
        run = LocalRun(app, out=out, worker_poll=0.05, progress=lambda started: Progress(
            started, every=timedelta(seconds=0.2)))
        status = await run.run(until_idle=True)
        [adele] = await app.journal.list_cases(ADELE)
    finally:
        await app.aclose()

    lines = [record.getMessage() for record in caplog.records
             if record.name == "remediation.run"]
    waiting = [line for line in lines if line.startswith("waiting: ")]
    assert waiting, lines
    schedule = adele.done("schedule_verification")
    assert schedule is not None
    due = {f"{datetime.fromisoformat(check['at']):%H:%M:%S}" for check in
           schedule.data["checks"]}
    counts = []
    for line in waiting:  # Adele's case is the one open; Patti's ended at once
        if line == "waiting: 0 cases open, nothing scheduled":  # verified, not yet exited
            continue
        shown = WAITING.fullmatch(line)
        assert shown is not None, line
        assert shown.group(2) in due  # the next check, as the journal scheduled it
        counts.append(int(shown.group(1)))
    assert counts, waiting
    assert counts == sorted(counts, reverse=True)  # checks are taken, none added
    assert status == 0
    assert out.getvalue().splitlines() == [
        "run summary: idle, every case is final",
        "  cases worked on: 2 (1 verified, 1 escalated)",
        "  escalations by kind: guardrail 1",
        "  still open: none"]


# -- as a separate process, sent signals ----------------------------------------------------


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "remediation", *args],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=WAIT, check=False)


def start(env: dict[str, str], *args: str) -> "subprocess.Popen[str]":
    return subprocess.Popen([sys.executable, "-m", "remediation", *args],
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def states(db: Path) -> dict[str, str]:
    if not db.exists():
        return {}
    with sqlite3.connect(db) as connection:
        return dict(connection.execute("SELECT user, state FROM cases").fetchall())


def steps_started(db: Path, name: str) -> bool:
    if not db.exists():
        return False
    with sqlite3.connect(db) as connection:
        docs = [json.loads(row[0]) for row in connection.execute("SELECT doc FROM steps")]
    return any(doc["name"] == name and doc["status"] == "started" for doc in docs)


def wait_for(worker: "subprocess.Popen[str]", ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not ready():
        assert worker.poll() is None, f"the worker ended early: {worker.communicate()}"
        assert time.monotonic() < deadline, "the worker never got there"
        time.sleep(0.05)


@pytest.fixture
def env(threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> dict[str, str]:
    """A worker on the sandbox whose checks are an hour away: it waits, as in production."""
    return {**sandbox_env(threaded_sandbox_url, tenant, tmp_path / "state.db"),
            "VERIFY_DELAYS": "1h,4h,24h"}


def test_ctrl_c_stops_a_waiting_run_until_idle_with_its_summary_and_status_130(
        env: dict[str, str], tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    for user in (ADELE, PATTI):
        assert cli(env, "enqueue", "--user", user).returncode == 0
    worker = start(env, "run", "--until-idle")
    try:
        wait_for(worker, lambda: states(db) == {ADELE: "awaiting_verification",
                                                PATTI: "escalated"})
        worker.send_signal(signal.SIGINT)
        out, err = worker.communicate(timeout=WAIT)
    finally:
        worker.kill()

    assert worker.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    lines = out.splitlines()
    assert lines[:3] == [
        "run summary: stopped by Ctrl-C (SIGINT) before it was idle; the queue keeps what is "
        "left for the next `remediation run`",
        "  cases worked on: 2 (1 awaiting_verification, 1 escalated)",
        "  escalations by kind: guardrail 1"]
    # With its date when the check falls on another day (UTC): a run just before midnight.
    assert re.fullmatch(r"  still open: 1 \(1 awaiting_verification\); 3 checks scheduled, "
                        r"next at (?:\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d UTC "
                        r"\(in (59|60) min\)", lines[3]), lines
    assert len(lines) == 4


def test_sigterm_ends_run_with_status_0_and_its_summary(
        env: dict[str, str], tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    assert cli(env, "enqueue", "--user", ADELE).returncode == 0
    worker = start(env, "run")
    try:
        wait_for(worker, lambda: states(db) == {ADELE: "awaiting_verification"})
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=WAIT)
    finally:
        worker.kill()

    assert worker.returncode == 0, err
    assert out.splitlines()[:2] == [
        "run summary: stopped by SIGTERM; the queue keeps what is left for the next "
        "`remediation run`",
        "  cases worked on: 1 (1 awaiting_verification)"]


def test_a_second_ctrl_c_stops_at_once_even_with_a_message_in_hand(
        env: dict[str, str], tmp_path: Path, tenant: SandboxTenant) -> None:
    """The first Ctrl-C waits for the message in hand (here a revocation Graph takes minutes
    to answer); the second does not: the next run resumes the case from its journal."""
    db = tmp_path / "state.db"
    tenant.add_fault(Fault(delay=600, path=r"/revokeSignInSessions$", target=ADELE))
    assert cli(env, "enqueue", "--user", ADELE).returncode == 0
    worker = start(env, "run", "--until-idle")
    try:
        wait_for(worker, lambda: steps_started(db, "revoke_sessions"))
        worker.send_signal(signal.SIGINT)
        assert worker.stderr is not None
        while "stopping once the messages in hand are done" not in worker.stderr.readline():
            assert worker.poll() is None
        worker.send_signal(signal.SIGINT)
        out, err = worker.communicate(timeout=WAIT)
    finally:
        worker.kill()

    assert worker.returncode == 130, err
    assert "Traceback" not in err
    assert out.splitlines()[0].startswith("run summary: stopped by Ctrl-C (SIGINT)")
    assert "  still open: 1 (1 in_progress); nothing scheduled" in out.splitlines()
