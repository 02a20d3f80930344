"""`remediation doctor` is read in a terminal and run where the deployment's settings are: its
table fits 80 columns (long cells wrap), and it leaves nothing behind, neither a local
database in the current folder nor a message of its own in the queue figures it prints."""

import asyncio
import re
from pathlib import Path

import pytest

from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.adapters.sqlite_queue import SqliteQueue
from remediation.sandbox import SandboxTenant
from tests.cli_helpers import clean_environment, run_cli  # noqa: F401 (a fixture)
from tests.conftest import sandbox_env

QUEUES = ("remediation-requests", "remediation-verifications")


@pytest.fixture
def env(clean_environment: None,  # noqa: F811 (the fixture imported above)
        threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> dict[str, str]:
    return {**sandbox_env(threaded_sandbox_url, tenant, tmp_path / "state.db"),
            "HTTP_MAX_RETRIES": "0"}


def doctor(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           env: dict[str, str]) -> tuple[int, str]:
    status, out, err = run_cli(monkeypatch, capsys, env, "doctor")
    assert "Traceback" not in out + err
    return status, out


def test_doctor_in_a_fresh_folder_creates_no_database_there(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant, tmp_path: Path) -> None:
    folder = tmp_path / "operator"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("REMEDIATION_DB", raising=False)
    del env["REMEDIATION_DB"]  # the default, .remediation/state.db, under the current folder

    status, out = doctor(monkeypatch, capsys, env)

    assert status == 0, out
    assert list(folder.iterdir()) == [], "doctor left files behind"
    assert re.search(r"^ok\s+queues: no local database yet", out, re.MULTILINE), out


async def counts(path: Path) -> dict[str, tuple[int, ...]]:
    database = SqliteDatabase(path, read_only=True)
    try:
        queue = SqliteQueue(database)
        found = {}
        for name in QUEUES:
            c = await queue.counts(name)
            found[name] = (c.ready, c.scheduled, c.locked, c.completed, c.dead_lettered,
                           c.cancelled)
        return found
    finally:
        database.close()


def test_doctor_counts_no_message_of_its_own_and_leaves_none(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant, tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    database = SqliteDatabase(path)
    asyncio.run(SqliteQueue(database).counts())  # an existing, empty local queue
    database.close()

    for _ in range(3):  # the probes run side by side: whatever their order
        status, out = doctor(monkeypatch, capsys,
                             env)
        assert status == 0, out
        flat = " ".join(out.split())  # wrapped or not
        for name in QUEUES:
            assert f"{name} 0 ready, 0 scheduled, 0 dead-lettered" in flat, out
        assert "schedule a message" in out

    assert asyncio.run(counts(path)) == {name: (0, 0, 0, 0, 0, 0) for name in QUEUES}


def test_every_line_of_doctor_fits_80_columns(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    """The longest cells there are: an opaque token leaves every write permission and both
    roles unverified (long fixes), and a closed endpoint makes every read fail."""
    tenant.exchange.app_access = "no_app_role"
    status, out = doctor(monkeypatch, capsys, {**env, "SANDBOX_TOKEN": tenant.token})

    assert status == 1
    wide = [line for line in out.splitlines() if len(line) > 80]
    assert not wide, "\n".join(wide)
    assert "UNVERIFIED" in out and "FAIL" in out


def test_doctor_against_an_unreachable_tenant_fits_80_columns_too(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens
    status, out = doctor(monkeypatch, capsys, {**env, "GRAPH_ENDPOINT": closed,
                                               "EXCHANGE_ENDPOINT": closed,
                                               "SANDBOX_TOKEN": tenant.access_token()})

    assert status == 1
    assert max(len(line) for line in out.splitlines()) <= 80, out
