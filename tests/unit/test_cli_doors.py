"""`enqueue --alert-id` takes what every other door takes, and names the accepted forms when
it refuses; `approve` said twice says what became of the first (issue 14, points 8 and 9)."""

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from remediation.bootstrap import bootstrap
from remediation.config import Settings
from remediation.domain.cases import Case, CaseState, Step, StepStatus
from tests import cli_helpers
from tests.cli_helpers import clean_environment  # noqa: F401 (a fixture)
from tests.journal_cases import seed as seed_case

ROB = "rob@contoso.com"
GUID = "4dde311e-5509-9c6a-ce00-08dee8f01678"


def queued_alert_ids(db: Path) -> list[list[str]]:
    async def read() -> list[list[str]]:
        app = bootstrap(Settings.from_env({"REMEDIATION_DB": str(db)}))
        try:
            found = []
            while (message := await app.queue.receive((app.settings.remediation_queue,))):
                found.append(json.loads(message.body).get("alert_ids", []))
                await app.queue.complete(message)
            return found
        finally:
            await app.aclose()
    return asyncio.run(read())


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("alert_id", ["../../users", "fa/../x", "fa.1", "fa:1", "..", "a b"])
def test_enqueue_refuses_an_alert_id_every_other_door_refuses(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        alert_id: str) -> None:
    db = tmp_path / "state.db"

    status, out, err = cli_helpers.run_cli(monkeypatch, capsys, {"REMEDIATION_DB": str(db)},
                                           "enqueue", "--user", ROB, "--alert-id", alert_id)

    assert (status, out) == (2, "")
    assert "is not a valid alert id" in err and "provider's GUID" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not db.exists() or queued_alert_ids(db) == []


@pytest.mark.usefixtures("clean_environment")
def test_enqueue_reads_a_provider_guid_as_the_office_365_alert_graph_names(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    db = tmp_path / "state.db"

    status, _, err = cli_helpers.run_cli(monkeypatch, capsys, {"REMEDIATION_DB": str(db)},
                                         "enqueue", "--user", ROB, "--alert-id", GUID.upper())

    assert (status, err) == (0, "")
    assert queued_alert_ids(db) == [["fa" + GUID]]


# -- approve, said twice ------------------------------------------------------------------------


def seeded(db: Path, state: CaseState, *steps: Step) -> str:
    async def seed() -> str:
        app = bootstrap(Settings.from_env({"REMEDIATION_DB": str(db)}))
        now = datetime.now(UTC)
        try:
            await seed_case(app.journal, Case(
                case_id="20260101-abcdef12", user=ROB, state=state, created_at=now,
                updated_at=now, source="alert", steps=steps))
        finally:
            await app.aclose()
        return "20260101-abcdef12"
    return asyncio.run(seed())


def queued_approvals(db: Path) -> int:
    async def count() -> int:
        app = bootstrap(Settings.from_env({"REMEDIATION_DB": str(db)}))
        try:
            assert app.queue is not None
            return (await app.queue.counts(app.settings.remediation_queue)).ready
        finally:
            await app.aclose()
    return asyncio.run(count())


@pytest.mark.usefixtures("clean_environment")
def test_approving_twice_says_the_approval_is_already_queued_and_queues_one(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    case_id = seeded(db, CaseState.AWAITING_APPROVAL)
    settings = {"REMEDIATION_DB": str(db)}

    first = cli_helpers.run_cli(monkeypatch, capsys, settings, "approve", case_id, "--by", "lee")
    again = cli_helpers.run_cli(monkeypatch, capsys, settings, "approve", case_id, "--by", "kim")

    assert first == (0, f"approval of case {case_id} ({ROB}) queued\n", "")
    status, out, err = again
    assert (status, err) == (0, "")
    assert out.startswith(f"approval of case {case_id} ({ROB}) already queued (approval by "
                          "lee queued, ")
    assert out.endswith("the case proceeds when a worker takes it; nothing queued again\n")
    assert queued_approvals(db) == 1


@pytest.mark.usefixtures("clean_environment")
def test_approving_a_case_that_went_on_after_its_approval_says_so_with_exit_0(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    at = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    case_id = seeded(db, CaseState.AWAITING_VERIFICATION, Step(
        "approved", StepStatus.INFO, at, "approved by lee", {"approved_by": "lee"}))

    status, out, err = cli_helpers.run_cli(monkeypatch, capsys, {"REMEDIATION_DB": str(db)},
                                           "approve", case_id)

    assert (status, err) == (0, "")
    assert out == (f"case {case_id} ({ROB}) was already approved (approved by lee, "
                   "2026-01-01 09:30 UTC) and is awaiting_verification: nothing queued\n")
    assert queued_approvals(db) == 0
