"""`status --user` finds an account's cases by any name of the account (issue 13, point 7):
the address a signal named (an alias, the one on the Restricted users list), the primary
address, the UPN, the object id, in any letter case; against the sandbox over HTTP, with a
case the worker really ran."""

import asyncio
import json
from pathlib import Path

import pytest

from remediation.bootstrap import bootstrap
from remediation.sandbox import SandboxTenant, SandboxUser
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence
from tests.cli_helpers import clean_environment, run_cli
from tests.conftest import sandbox_settings

__all__ = ["clean_environment"]  # a fixture, used by name

PRIMARY, ALIAS, UPN = "rob.young@contoso.com", "rob@contoso.com", "ryoung@contoso.onmicrosoft.com"


@pytest.fixture
async def ran(sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> tuple[Path, str]:
    """An alert naming Rob's alias, worked to its end: (the journal, Rob's object id)."""
    rob = tenant.add_user(SandboxUser(UPN, "Rob Young", mail=PRIMARY, proxy_addresses=[
        f"SMTP:{PRIMARY}", f"smtp:{ALIAS}", f"smtp:{UPN}"]))
    tenant.block(ALIAS)
    db = tmp_path / "state.db"
    app = bootstrap(sandbox_settings(sandbox_url, tenant, db, sweep_restricted_users=False))
    try:
        tenant.add_alert(alert(RESTRICTED, [mailbox_evidence(ALIAS)]))
        await app.intake.poll()
        await app.worker(poll_interval=0.05, retry_backoff=0.05).run(until_idle=True)
    finally:
        await app.aclose()
    return db, rob.id


def status(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db: Path,
           *args: str) -> str:
    code, out, err = run_cli(monkeypatch, capsys, {"REMEDIATION_DB": str(db)}, "status", *args)
    assert code == 0, err
    return out


@pytest.mark.usefixtures("clean_environment")
async def test_status_finds_the_case_by_any_name_of_the_account(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        ran: tuple[Path, str]) -> None:
    db, object_id = ran
    [case] = json.loads(await asyncio.to_thread(status, monkeypatch, capsys, db, "--json"))
    assert case["user"] == PRIMARY and case["user_id"] == object_id  # as the journal keeps it

    for name in (PRIMARY, ALIAS, UPN, object_id, UPN.upper(), ALIAS.title()):
        found = json.loads(await asyncio.to_thread(status, monkeypatch, capsys, db, "--json",
                                                   "--user", name))
        assert [c["case_id"] for c in found] == [case["case_id"]], name
        details = await asyncio.to_thread(status, monkeypatch, capsys, db, "--user", name)
        assert f"case {case['case_id']}" in details, (name, details)
        assert "no cases" not in details


@pytest.mark.usefixtures("clean_environment")
async def test_status_of_another_account_finds_none_of_its_cases(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        ran: tuple[Path, str]) -> None:
    db, _ = ran
    for name in ("young@contoso.com", "rob@contoso.org", "adele.vance@contoso.com"):
        assert json.loads(await asyncio.to_thread(status, monkeypatch, capsys, db, "--json",
                                                  "--user", name)) == []
        table = await asyncio.to_thread(status, monkeypatch, capsys, db, "--user", name)
        assert table.strip().splitlines()[-1] == f"no cases for {name}"  # after the sources
