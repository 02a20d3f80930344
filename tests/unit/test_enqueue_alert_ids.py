"""`enqueue --alert-id` takes what every other door takes, and names the accepted forms when
it refuses (issue 14, points 8 and 9)."""

import asyncio
import json
from pathlib import Path

import pytest

from remediation.bootstrap import bootstrap
from remediation.config import Settings
from tests import cli_helpers
from tests.cli_helpers import clean_environment  # noqa: F401 (a fixture)

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
