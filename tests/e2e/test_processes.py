"""The command line as separate processes: crash recovery, and no secret anywhere."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from remediation.sandbox import Fault, SandboxTenant
from tests.conftest import sandbox_env

ADELE = "adele.vance@contoso.com"


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "remediation", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout, check=False)


def journal_steps(db: Path, name: str, status: str) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT doc FROM steps").fetchall()
    docs = [json.loads(row[0]) for row in rows]
    return sum(1 for doc in docs if doc["name"] == name and doc["status"] == status)


def test_killed_worker_resumes_without_repeating_done_steps(
        threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    env = {**sandbox_env(threaded_sandbox_url, tenant, db), "LOCK_DURATION": "2s"}
    tenant.add_fault(Fault(delay=30, path=r"/revokeSignInSessions$", target=ADELE))
    assert cli(env, "enqueue", "--user", ADELE, "--reason", "test").returncode == 0

    worker = subprocess.Popen([sys.executable, "-m", "remediation", "run"],
                              env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while journal_steps(db, "revoke_sessions", "started") == 0:
            assert time.monotonic() < deadline, "the worker never reached the revocation"
            assert worker.poll() is None, "the worker exited early"
            time.sleep(0.05)
        # Killed between two steps: the reset is done, the revocation hangs unanswered.
        assert journal_steps(db, "reset_password", "done") == 1
        assert journal_steps(db, "revoke_sessions", "done") == 0
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()

    resumed = cli(env, "run", "--until-idle")
    assert resumed.returncode == 0, resumed.stderr

    assert len(tenant.user(ADELE).password_changes) == 1
    assert journal_steps(db, "reset_password", "done") == 1
    assert journal_steps(db, "revoke_sessions", "done") == 1
    assert journal_steps(db, "unblock", "done") == 1
    [case] = json.loads(cli(env, "status", "--json").stdout)
    assert case["state"] == "verified"
    assert ADELE not in tenant.blocked_addresses()


def test_no_password_appears_in_logs_journal_queue_or_status(
        threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    env = sandbox_env(threaded_sandbox_url, tenant, db)
    users = ["adele.vance@contoso.com", "lee.gu@contoso.com", "megan.bowen@contoso.com",
             "patti.fernandez@contoso.com", "diego.siciliani@contoso.com",
             "diego.siciliani@contoso.com", "nobody@contoso.com"]
    outputs = [cli(env, "enqueue", "--user", user, "--requested-by", "pytest") for user in users]
    run = cli(env, "--verbose", "run", "--until-idle")
    outputs += [run, cli(env, "status"), cli(env, "status", "--json"),
                cli(env, "status", "--user", ADELE)]
    assert run.returncode == 0, run.stderr

    passwords = [change["password"] for user in tenant.users()
                 for change in user.password_changes]
    assert len(passwords) == 4  # adele, lee, megan, diego (once); patti's reset was refused
    haystack = b"".join(
        [(o.stdout + o.stderr).encode() for o in outputs]
        + [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()])
    assert b"password reset" in haystack  # the search does cover the journal and the logs
    for password in passwords:
        assert password.encode() not in haystack, "a password leaked"
        assert json.dumps(password).encode() not in haystack, "a password leaked (escaped)"
    states = {c["user"]: c["state"] for c in json.loads(outputs[-2].stdout)}
    assert states == {"adele.vance@contoso.com": "verified", "lee.gu@contoso.com": "verified",
                      "megan.bowen@contoso.com": "escalated",
                      "patti.fernandez@contoso.com": "escalated",
                      "diego.siciliani@contoso.com": "verified",
                      "nobody@contoso.com": "escalated"}


def test_enqueue_refuses_an_invalid_address(tmp_path: Path) -> None:
    result = cli({"REMEDIATION_DB": str(tmp_path / "db")}, "enqueue", "--user", "not an address")
    assert result.returncode == 2
    assert "'user' must be an email address or an object id" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_of_an_empty_journal(tmp_path: Path) -> None:
    env = {"REMEDIATION_DB": str(tmp_path / "db")}
    assert cli(env, "status").stdout.strip() == "no cases"
    assert json.loads(cli(env, "status", "--json").stdout) == []


def test_sandbox_token_is_refused_for_a_real_endpoint(tmp_path: Path) -> None:
    result = cli({"REMEDIATION_DB": str(tmp_path / "db"), "SANDBOX_TOKEN": "x",
                  "GRAPH_ENDPOINT": "https://graph.microsoft.com"}, "run", "--until-idle")
    assert result.returncode == 2
    assert "SANDBOX_TOKEN is honoured only" in result.stderr
