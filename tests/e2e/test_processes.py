"""The command line as separate processes: crash recovery, and no secret anywhere."""

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

from remediation.sandbox import Fault, SandboxServer, SandboxTenant, demo_tenant
from remediation.sandbox.seed import BREAK_GLASS_GROUP_ID, LYNNE_PHONE
from remediation.sandbox.signin_methods import phone, software_oath, temporary_access_pass
from tests.conftest import sandbox_env

ADELE = "adele.vance@contoso.com"
TAP = "Tq4%Lm8!temporary-pass"
OATH_KEY = "JBSWY3DPEHPK3PXP7QWERTY"
ATTACKER_PHONE = "+44 7700 900461"


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


@pytest.fixture
def full_tenant() -> Iterator[tuple[str, SandboxTenant]]:
    """The whole demo tenant: alerts, guardrail accounts, planted rules, the storm."""
    tenant = demo_tenant()
    server = SandboxServer(tenant)
    url = server.start_in_thread()
    yield url, tenant
    server.stop_thread()


def test_no_password_appears_in_logs_journal_queue_or_status(
        full_tenant: tuple[str, SandboxTenant], tmp_path: Path) -> None:
    url, tenant = full_tenant
    # Sign-in methods: the attacker's pass and phone on Lynne (removed: their snapshots are
    # journaled), an OATH app nobody can date on Diego (reported), her own phone (kept).
    lynne, diego = tenant.user("lynne.robbins@contoso.com"), tenant.user(
        "diego.siciliani@contoso.com")
    tenant.signin.register(lynne.id, lynne.user_principal_name, temporary_access_pass(TAP))
    tenant.signin.register(lynne.id, lynne.user_principal_name,
                           phone(ATTACKER_PHONE, "alternateMobile"))
    tenant.signin.register(diego.id, diego.user_principal_name, software_oath(OATH_KEY),
                           audit=False)
    db = tmp_path / "state.db"
    env = {**sandbox_env(url, tenant, db), "SWEEP_RESTRICTED_USERS": "true",
           "PROTECTED_GROUP_IDS": BREAK_GLASS_GROUP_ID, "MAX_REMEDIATIONS_PER_HOUR": "12",
           "REMEDIATION_TELEMETRY": "console"}  # every span, metric and log record too
    # Lynne first: her mailbox hygiene must run before the storm fills the breaker.
    users = ["lynne.robbins@contoso.com", "patti.fernandez@contoso.com",
             "diego.siciliani@contoso.com", "diego.siciliani@contoso.com", "nobody@contoso.com"]
    outputs = [cli(env, "enqueue", "--user", user, "--requested-by", "pytest") for user in users]
    # Every path at once: manual, alert-driven and sweep-driven cases, guardrails, mailbox
    # hygiene, Defender comments, the circuit breaker, verification; debug logging on.
    run = cli(env, "--verbose", "run", "--until-idle", timeout=120)
    outputs += [run, cli(env, "status"), cli(env, "status", "--json"),
                *(cli(env, "status", "--user", user) for user in tenant.blocked_addresses())]
    assert run.returncode == 0, run.stderr

    passwords = [change["password"] for user in tenant.users()
                 for change in user.password_changes]
    assert len(passwords) == 12  # the breaker's limit: the storm filled it
    comments = [c["comment"] for a in tenant.alerts() for c in a.get("comments") or []]
    haystack = b"".join(
        [(o.stdout + o.stderr).encode() for o in outputs]
        + [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()]
        + [comment.encode() for comment in comments])
    for evidence in (b"password reset", b"circuit breaker open", b"mailbox_hygiene",
                     b"evil-mail.example", b"INFO", b"signin_methods", b"consent_grants",
                     b"Mail Organizer Pro", b"mailbox_permissions",
                     b"Temporary Access Pass", b'"name": "step reset_password"',
                     b'"remediation.step": "signin_methods"', b'"http.url": "http',
                     b"remediation.time_to_reset"):
        assert evidence in haystack  # the search covers every new path and the debug log
    for masked in ("+• ••• ••• ••42", "+•• •••• ••••61"):  # journaled masked, as JSON
        assert json.dumps(masked)[1:-1].encode() in haystack, masked
    for number in (LYNNE_PHONE, ATTACKER_PHONE):
        for shown in (number, number.replace(" ", ""), number[-8:]):
            assert shown.encode() not in haystack, "a phone number unmasked"
    for secret in (TAP, OATH_KEY):
        assert secret.encode() not in haystack, "a sign-in method's secret leaked"
    for password in passwords:
        assert password.encode() not in haystack, "a password leaked"
        assert json.dumps(password).encode() not in haystack, "a password leaked (escaped)"
    listed = json.loads(outputs[-len(tenant.blocked_addresses()) - 1].stdout)
    states = {c["user"]: c["state"] for c in listed}
    reasons = {c["user"]: (c["state"], c.get("reason")) for c in listed}
    assert states["patti.fernandez@contoso.com"] == "escalated"
    assert states["lynne.robbins@contoso.com"] == "verified", reasons
    assert states["grace.taylor@contoso.com"] == "escalated"


def test_a_request_whose_lookup_never_succeeded_is_escalated_and_sent_again_by_enqueue(
        threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    env = {**sandbox_env(threaded_sandbox_url, tenant, db), "MAX_DELIVERY_COUNT": "2",
           "RETRY_BACKOFF": "0.1s", "HTTP_MAX_RETRIES": "0"}
    tenant.add_fault(Fault(status=503, path=r"^/v1\.0/users/", method="GET", times=None))
    assert cli(env, "enqueue", "--user", ADELE).returncode == 0
    gave_up = cli(env, "run", "--until-idle")
    assert gave_up.returncode == 0, gave_up.stderr  # its case is final: escalated
    with sqlite3.connect(db) as connection:
        [(first_id, reason)] = connection.execute(
            "SELECT message_id, dead_letter_reason FROM messages WHERE state = 'dead'").fetchall()
    assert reason == "MaxDeliveryCountExceeded"
    # Journaled before its first lookup, so on record with its reason, not only in a log.
    [escalated] = json.loads(cli(env, "status", "--json").stdout)
    assert (escalated["user"], escalated["state"]) == (ADELE, "escalated")
    assert escalated["reason"].startswith("remediation gave up after 2 deliveries: Graph: ")

    tenant.clear_faults()
    resent = cli(env, "enqueue", "--user", ADELE)  # a new message id: not a duplicate
    assert resent.returncode == 0
    assert first_id not in resent.stdout
    assert cli(env, "run", "--until-idle").returncode == 0
    cases = json.loads(cli(env, "status", "--json").stdout)
    assert [(case["user"], case["state"]) for case in cases] == [
        (ADELE, "verified"), (ADELE, "escalated")]


def test_enqueue_refuses_an_invalid_address(tmp_path: Path) -> None:
    result = cli({"REMEDIATION_DB": str(tmp_path / "db")}, "enqueue", "--user", "not an address")
    assert result.returncode == 2
    assert "'user' must be an email address or an object id" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_of_an_empty_journal(tmp_path: Path) -> None:
    env = {"REMEDIATION_DB": str(tmp_path / "db")}
    missing = cli(env, "status")  # a mistyped path: said so, and no empty journal made
    assert missing.returncode == 2 and "remediation: no such journal: " in missing.stderr
    assert not (tmp_path / "db").exists()
    assert cli(env, "enqueue", "--user", ADELE).returncode == 0  # a journal, with no case
    shown = cli(env, "status").stdout.strip().splitlines()
    assert shown[-1] == "no cases"
    # Nothing has polled yet: each source is flagged on the first lines, never left out.
    assert [line.split(":")[0] for line in shown if "NEVER SUCCEEDED" in line] == [
        "Defender alerts (Graph alerts_v2)", "Restricted users sweep (Get-BlockedSenderAddress)"]
    assert json.loads(cli(env, "status", "--json").stdout) == []


def test_sandbox_token_is_refused_for_a_real_endpoint(tmp_path: Path) -> None:
    result = cli({"REMEDIATION_DB": str(tmp_path / "db"), "SANDBOX_TOKEN": "x",
                  "GRAPH_ENDPOINT": "https://graph.microsoft.com"}, "run", "--until-idle")
    assert result.returncode == 2
    assert "SANDBOX_TOKEN is honoured only" in result.stderr
