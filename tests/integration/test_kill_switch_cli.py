"""The kill switch from the command line, against the sandbox tenant: `pause` and `resume`,
`status` and `doctor` saying PAUSED first, and `run --until-idle` changing nothing and ending
with exit status 3 while paused."""

import json
import re
from pathlib import Path

import pytest

from remediation.sandbox import SandboxTenant
from tests.cli_helpers import clean_environment, run_cli  # noqa: F401 (a fixture)
from tests.conftest import sandbox_env
from tests.e2e.test_safety import ADELE, writes

PAUSED_LINE = re.compile(r"^PAUSED since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC by alice@contoso\.com"
                         r": phishing wave under review\. Nothing changes in the tenant")
REASON = "phishing wave under review"


@pytest.fixture
def env(clean_environment: None,  # noqa: F811 (the fixture imported above)
        threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> dict[str, str]:
    return {**sandbox_env(threaded_sandbox_url, tenant, tmp_path / "state.db"),
            "HTTP_MAX_RETRIES": "0"}


Cli = tuple[pytest.MonkeyPatch, pytest.CaptureFixture[str], dict[str, str]]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str]) -> Cli:
    return monkeypatch, capsys, env


def remediation(cli: Cli, *args: str) -> tuple[int, str, str]:
    status, out, err = run_cli(*cli, *args)
    assert "Traceback" not in out + err
    return status, out, err


def test_pause_and_resume_from_the_command_line(cli: Cli) -> None:
    status, out, _ = remediation(cli, "pause", "--by", "alice@contoso.com", "--reason", REASON)
    assert status == 0
    assert PAUSED_LINE.match(out), out

    status, out, _ = remediation(cli, "pause", "--by", "bob@contoso.com", "--reason", "other")
    assert status == 0
    assert out.startswith("already paused; nothing changed. PAUSED since ")
    assert "by alice@contoso.com: phishing wave under review" in out

    _, table, _ = remediation(cli, "status")
    assert PAUSED_LINE.match(table), table
    _, details, _ = remediation(cli, "status", "--user", ADELE)
    assert PAUSED_LINE.match(details), details
    _, raw, _ = remediation(cli, "status", "--json", "--with-total")
    paused = json.loads(raw)["paused"]
    assert (paused["by"], paused["reason"]) == ("alice@contoso.com", REASON)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", paused["since"])
    _, bare, _ = remediation(cli, "status", "--json")
    assert json.loads(bare) == []  # the bare list stays a list of cases

    status, out, _ = remediation(cli, "resume", "--by", "bob@contoso.com")
    assert status == 0
    assert out.startswith("resumed by bob@contoso.com: the pause by alice@contoso.com since ")
    _, raw, _ = remediation(cli, "status", "--json", "--with-total")
    assert json.loads(raw)["paused"] is None
    _, table, _ = remediation(cli, "status")
    assert "PAUSED" not in table
    assert remediation(cli, "resume")[:2] == (0, "not paused: nothing to resume\n")


@pytest.mark.parametrize(("args", "error"), [
    (["--reason", "  "], "remediation: 'reason' is blank: say why the robot is paused\n"),
    (["--reason", "x" * 1001], "remediation: 'reason' is longer than 1000 characters\n"),
    (["--reason", "storm", "--by", "eve\x1b[2J"],
     "remediation: 'approved_by' contains control characters\n"),
])
def test_pause_refuses_what_it_cannot_show_and_stores_nothing(
        cli: Cli, args: list[str], error: str) -> None:
    assert remediation(cli, "pause", *args)[::2] == (2, error)

    remediation(cli, "enqueue", "--user", ADELE)  # a journal file to read
    _, raw, _ = remediation(cli, "status", "--json", "--with-total")
    assert json.loads(raw)["paused"] is None


def test_run_until_idle_while_paused_changes_nothing_and_exits_3(
        cli: Cli, tenant: SandboxTenant) -> None:
    remediation(cli, "enqueue", "--user", ADELE, "--reason", "help desk ticket 4711")
    remediation(cli, "pause", "--by", "alice@contoso.com", "--reason", REASON)

    for _ in range(2):
        status, _, err = remediation(cli, "run", "--until-idle")
        assert status == 3
        last = err.splitlines()[-1]  # after the log lines
        assert PAUSED_LINE.match(last.removeprefix("remediation: ")), err
        assert last.startswith("remediation: PAUSED since "), err

    assert writes(tenant) == []
    assert tenant.user(ADELE).password_changes == []
    assert ADELE in tenant.blocked_addresses()
    _, raw, _ = remediation(cli, "status", "--json")
    [case] = json.loads(raw)
    assert case["state"] == "received"
    [note] = [step for step in case["steps"] if step["name"] == "paused"]
    assert note["data"]["by"] == "alice@contoso.com"


def test_run_help_names_the_exit_status_of_a_pause(cli: Cli) -> None:
    with pytest.raises(SystemExit):
        remediation(cli, "run", "--help")
    out = cli[1].readouterr().out
    assert "3 if paused" in " ".join(out.split())


def test_doctor_says_paused_first_and_fails_until_resumed(cli: Cli) -> None:
    remediation(cli, "enqueue", "--user", ADELE)  # the local database, as a worker leaves it
    remediation(cli, "pause", "--by", "alice@contoso.com", "--reason", REASON)

    status, out, _ = remediation(cli, "doctor")

    assert status == 1, out
    first = " ".join(out.split("\n\n")[0].split())
    assert first.startswith("PAUSED since ")
    assert first.endswith(f"by alice@contoso.com: {REASON}: nothing will change in the "
                          "tenant until `remediation resume`")
    rows = out.split("fix: what to do\n\n", 1)[1]
    assert rows.startswith("FAIL        kill switch: PAUSED since "), out  # the first row
    assert f"by alice@contoso.com: {REASON} fix: remediation resume --by NAME" in " ".join(
        rows.split())

    remediation(cli, "resume", "--by", "bob@contoso.com")
    status, out, _ = remediation(cli, "doctor")
    assert status == 0, out
    assert "PAUSED" not in out
    assert re.search(r"^ok\s+kill switch: not paused", out, re.MULTILINE), out
