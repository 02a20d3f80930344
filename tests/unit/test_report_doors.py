"""`remediation report` refuses in one line, exit 2, what it cannot answer: a case the
journal does not hold, a case and a period at once, a journal that does not exist (never
created by reading it); a period of no case is still a report."""

import asyncio
import json
from pathlib import Path

import pytest

from remediation.bootstrap import bootstrap
from remediation.config import Settings
from tests.cli_helpers import clean_environment, run_cli
from tests.journal_cases import make_case, seed

__all__ = ["clean_environment"]  # a fixture, used by name


def journal_with_one_case(db: Path) -> None:
    async def write() -> None:
        app = bootstrap(Settings.from_env({"REMEDIATION_DB": str(db)}))
        try:
            await seed(app.journal, make_case("20240501-0badcafe"))
        finally:
            await app.aclose()
    asyncio.run(write())


@pytest.mark.usefixtures("clean_environment")
def test_report_refuses_what_it_cannot_answer_in_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    journal_with_one_case(db)
    env = {"REMEDIATION_DB": str(db)}

    assert run_cli(monkeypatch, capsys, env, "report", "20990101-deadbeef") == (
        2, "", "remediation: no case '20990101-deadbeef' in the journal\n")
    assert run_cli(monkeypatch, capsys, env, "report", "20240501-0badcafe", "--since",
                   "1d") == (2, "", "remediation: report: a CASE_ID, or --since/--state for "
                                    "a period, not both\n")
    missing = tmp_path / "typo.db"
    code, out, err = run_cli(monkeypatch, capsys, {"REMEDIATION_DB": str(missing)}, "report")
    assert (code, out) == (2, "") and err.startswith(f"remediation: no such journal: {missing}")
    assert not missing.exists()

    code, out, _ = run_cli(monkeypatch, capsys, env, "report", "--since", "2099-01-01",
                           "--json")
    assert code == 0 and json.loads(out)["total"] == 0
    code, out, _ = run_cli(monkeypatch, capsys, env, "report", "20240501-0badcafe")
    assert code == 0 and out.startswith("# Case report 20240501-0badcafe\n")
