"""`remediation doctor` against the sandbox tenant checks the journal's hash chain: with the
journal as the app wrote it, one ok line; with a step's detail edited, or a step deleted, by
hand in the SQLite file or in the table on Azurite (sqlite3, the Azure Tables SDK), a FAIL line
naming the case and the step, and exit status 1. ``doctor --json`` (the preflight function's
answer) carries the same line."""

import asyncio
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from remediation.domain.cases import CaseState, Step, StepStatus
from remediation.sandbox import SandboxTenant
from tests.cli_helpers import clean_environment, run_cli  # noqa: F401 (a fixture)
from tests.conftest import sandbox_env
from tests.journal_cases import T0, make_case, stored
from tests.journal_tampering import Store, store  # noqa: F401 (a fixture)

CASE = "20240501-0badcafe"
STEPS = ["lookup_user", "guardrails", "reset_password", "revoke_sessions", "unblock"]


@pytest.fixture
def env(clean_environment: None,  # noqa: F811 (the fixture imported above)
        threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
        store: Store) -> dict[str, str]:  # noqa: F811
    """The sandbox's settings, with the journal on ``store``."""
    return {**sandbox_env(threaded_sandbox_url, tenant, store.path), "HTTP_MAX_RETRIES": "0",
           **store.settings}


async def remediation(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                      env: dict[str, str], *args: str) -> tuple[int, str]:
    """The command line in a thread of its own (it runs its own event loop)."""
    status, out, err = await asyncio.to_thread(run_cli, monkeypatch, capsys, env, *args)
    assert "Traceback" not in out + err
    return status, out


def row(out: str, check: str) -> str:
    """The table's row for ``check`` on one line (a row wraps over the indented lines)."""
    lines = out.splitlines()
    [start] = [n for n, line in enumerate(lines)
               if re.search(rf"^\S+\s+{re.escape(check)}(:|$)", line)]
    end = start + 1
    while end < len(lines) and lines[end].startswith(" "):
        end += 1
    return " ".join(" ".join(lines[start:end]).split())


async def journal_a_case(store: Store) -> None:  # noqa: F811
    journal = store.journal()
    await journal.add_case(make_case(CASE, steps=(Step("received", StepStatus.INFO, T0),)))
    for n, name in enumerate(STEPS, start=1):
        await journal.add_step(CASE, Step(name, StepStatus.DONE, T0 + timedelta(seconds=n),
                                          f"{name} done"))
    await journal.update_case((await stored(journal, CASE)).evolve(
        state=CaseState.IN_PROGRESS))
    await journal.add_case(make_case("20240501-00000002", "adele@contoso.com",
                                     at=T0 + timedelta(hours=1)))


async def test_doctor_passes_a_journal_as_the_app_wrote_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], store: Store) -> None:  # noqa: F811
    await journal_a_case(store)

    status, out = await remediation(monkeypatch, capsys, env, "doctor")

    assert row(out, "journal integrity") == (
        "ok journal integrity: the newest 2 cases are as the app wrote them")
    assert status == 0, out
    status, out = await remediation(monkeypatch, capsys, env, "report", CASE, "--json")
    [integrity] = [fact["value"] for fact in json.loads(out)["facts"]
                   if fact["label"] == "Integrity"]
    assert integrity.startswith("intact"), integrity


async def test_doctor_names_an_edited_step_and_a_deleted_one(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], store: Store) -> None:  # noqa: F811
    await journal_a_case(store)
    await store.edit_step(CASE, 4, detail="reset_password skipped")
    await store.delete_step(CASE, 5)

    status, out = await remediation(monkeypatch, capsys, env, "doctor")

    line = row(out, f"journal integrity of case {CASE}")
    assert line.startswith(f"FAIL journal integrity of case {CASE}: step 4 (reset_password) "
                           "was changed after it was written; a step between 4 and 6 is "
                           "missing fix: "), line
    assert "Log Analytics" in line
    assert status == 1
    _, document = await remediation(monkeypatch, capsys, env, "doctor", "--json")
    [finding] = [f for f in json.loads(document)["findings"]
                 if f["check"] == f"journal integrity of case {CASE}"]
    assert finding["status"] == "FAIL"
    assert "step 4 (reset_password) was changed" in finding["result"]
    # `remediation report` says it too, in its header facts.
    status, out = await remediation(monkeypatch, capsys, env, "report", CASE, "--json")
    assert status == 0, out
    [integrity] = [fact["value"] for fact in json.loads(out)["facts"]
                   if fact["label"] == "Integrity"]
    assert integrity.startswith("TAMPERED: step 4 (reset_password) was changed after it was "
                                "written; a step between 4 and 6 is missing"), integrity
    status, out = await remediation(monkeypatch, capsys, env, "report", CASE)
    assert "TAMPERED" in out


async def test_doctor_names_an_edited_case_record(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], store: Store) -> None:  # noqa: F811
    await journal_a_case(store)
    await store.edit_case(CASE, state="verified")

    status, out = await remediation(monkeypatch, capsys, env, "doctor")

    assert row(out, f"journal integrity of case {CASE}").startswith(
        f"FAIL journal integrity of case {CASE}: the case record (state verified) was "
        "changed after it was written")
    assert status == 1
