"""`remediation doctor` against the sandbox tenant warns about two settings an operator would
regret: no protected group (admins are still guarded by their roles, but break-glass and VIP
accounts are not), and `enforce` on a first run (no case has ever been planned: nobody has
seen a plan). A warning (`WARN`) is counted in the closing line and never fails the exit status: the
closing line no longer says "everything needed is in place" unqualified."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.adapters.sqlite_journal import SqliteJournal
from remediation.domain.cases import Case, CaseState
from remediation.sandbox import SandboxTenant
from remediation.sandbox.seed import BREAK_GLASS_GROUP_ID
from tests.cli_helpers import clean_environment, run_cli  # noqa: F401 (a fixture)
from tests.conftest import sandbox_env
from tests.integration.test_doctor import row
from tests.journal_cases import seed

IN_PLACE = "everything needed is in place"


@pytest.fixture
def env(clean_environment: None,  # noqa: F811 (the fixture imported above)
        threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> dict[str, str]:
    return {**sandbox_env(threaded_sandbox_url, tenant, tmp_path / "state.db"),
            "HTTP_MAX_RETRIES": "0"}


def doctor(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           env: dict[str, str], **settings: str) -> tuple[int, str, str]:
    """Exit status, the whole table, and its closing line (unwrapped)."""
    status, out, err = run_cli(monkeypatch, capsys, {**env, **settings}, "doctor")
    assert "Traceback" not in out + err and err == "", err
    closing = " ".join(out.rstrip("\n").split("\n\n")[-1].split())
    return status, out, closing


def seed_cases(db: Path, *states: CaseState) -> None:
    async def store() -> None:
        database = SqliteDatabase(db)
        try:
            journal = SqliteJournal(database)
            at = datetime.now(UTC) - timedelta(days=1)
            for n, state in enumerate(states):
                await seed(journal, Case(case_id=f"{at:%Y%m%d}-{n:08x}",
                                         user=f"user{n}@contoso.com", state=state,
                                         created_at=at, updated_at=at, source="alert"))
        finally:
            database.close()

    asyncio.run(store())


def test_no_protected_group_is_a_warning_naming_the_risk(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str]) -> None:
    status, out, closing = doctor(monkeypatch, capsys, env, REMEDIATION_MODE="dry-run")

    assert status == 0, out  # a warning never fails the preflight
    line = row(out, "protected groups")
    assert line.startswith("WARN protected groups: none (PROTECTED_GROUP_IDS is empty)"), line
    assert "directory role" in line and "break-glass" in line, line
    assert "fix: list" in line and "azd env set AZURE_PROTECTED_GROUP_IDS" in line, line
    assert closing == (f"{IN_PLACE}, with 1 warning: read each WARN line before you switch "
                       "it on"), closing


def test_a_protected_group_configured_is_ok_and_the_closing_line_unqualified(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str]) -> None:
    status, out, closing = doctor(monkeypatch, capsys, env, REMEDIATION_MODE="dry-run",
                                  PROTECTED_GROUP_IDS=BREAK_GLASS_GROUP_ID)

    assert status == 0, out
    assert row(out, "protected groups").startswith("ok protected groups: 1 group"), out
    assert "WARN" not in out
    assert closing == IN_PLACE


def test_enforce_on_a_first_run_is_a_warning_suggesting_dry_run_or_approve(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tmp_path: Path) -> None:
    # A request refused at the door, one just received: neither was planned.
    seed_cases(tmp_path / "state.db", CaseState.REJECTED, CaseState.RECEIVED)

    status, out, closing = doctor(monkeypatch, capsys, env, REMEDIATION_MODE="enforce",
                                  PROTECTED_GROUP_IDS=BREAK_GLASS_GROUP_ID)

    assert status == 0, out
    line = row(out, "mode")
    assert line.startswith("WARN mode: enforce on a first run"), line
    assert "no case has been planned" in line, line
    assert "REMEDIATION_MODE=dry-run" in line and "approve" in line, line
    assert closing == (f"{IN_PLACE}, with 1 warning: read each WARN line before you switch "
                       "it on"), closing


def test_enforce_with_no_journal_yet_is_a_first_run_too(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str]) -> None:
    status, out, closing = doctor(monkeypatch, capsys, env)  # enforce: the code's default

    assert status == 0, out
    assert row(out, "mode").startswith("WARN mode: enforce on a first run"), out
    assert row(out, "protected groups").startswith("WARN "), out
    assert closing == (f"{IN_PLACE}, with 2 warnings: read each WARN line before you switch "
                       "it on"), closing


@pytest.mark.parametrize("finished", [CaseState.PLANNED, CaseState.VERIFIED,
                                      CaseState.AWAITING_VERIFICATION])
def test_enforce_after_a_finished_case_is_no_first_run(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tmp_path: Path, finished: CaseState) -> None:
    seed_cases(tmp_path / "state.db", CaseState.RECEIVED, finished)

    status, out, closing = doctor(monkeypatch, capsys, env, REMEDIATION_MODE="enforce",
                                  PROTECTED_GROUP_IDS=BREAK_GLASS_GROUP_ID)

    assert status == 0, out
    assert row(out, "mode").startswith("ok mode: enforce"), out
    assert "WARN" not in out and closing == IN_PLACE


def test_warnings_are_counted_beside_failures(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    tenant.denied_permissions.add("RoleManagement.Read.Directory")  # its line, two reads
    status, out, closing = doctor(monkeypatch, capsys, env, REMEDIATION_MODE="dry-run")

    assert status == 1, out
    assert closing == ("not everything needed is in place: 3 check(s) failed, 0 could not be "
                       "verified, 1 warning; apply each fix, then run doctor again"), closing
