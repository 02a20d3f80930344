"""An unwritable REMEDIATION_DB is one line and exit status 2 before any work: no alert read,
no traceback per alert (issue 14, point 9). The sandbox holds alerts the run would take."""

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from remediation.sandbox import SandboxTenant
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence
from tests import cli_helpers
from tests.cli_helpers import clean_environment  # noqa: F401 (a fixture)
from tests.conftest import sandbox_env


def not_a_database(db: Path) -> None:
    db.write_bytes(b"this is no SQLite file, but nobody may overwrite it\n" * 100)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A journal this process may read but not write: mode 0400, or for root (whom modes do
    not stop) the immutable attribute."""
    db = tmp_path / "state.db"
    db.write_bytes(b"")
    if os.geteuid() != 0:
        db.chmod(0o400)
        yield db
        return
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(db)], capture_output=True, check=False).returncode != 0:
        pytest.skip("root, and no immutable attribute here: nothing makes a file read-only")
    try:
        yield db
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=False)


def run_against(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                sandbox_url: str, tenant: SandboxTenant, db: Path,
                *command: str) -> tuple[int, str, str]:
    for user in ("adele.vance@contoso.com", "lynne.robbins@contoso.com"):
        tenant.add_alert(alert(RESTRICTED, [mailbox_evidence(user)]))
    # The sandbox shares this thread's event loop, which the command's own loop blocks: a
    # read would only time out. None may be tried at all.
    settings = {**sandbox_env(sandbox_url, tenant, db), "HTTP_TIMEOUT": "1s",
                "HTTP_MAX_RETRIES": "0"}
    return cli_helpers.run_cli(monkeypatch, capsys, settings, *command)


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("command", [["run", "--until-idle"], ["enqueue", "--user",
                                                                "adele.vance@contoso.com"]],
                         ids=" ".join)
@pytest.mark.parametrize("kind", ["read-only", "not a database"])
def test_an_unwritable_database_is_one_line_and_exit_2_before_any_work(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
        request: pytest.FixtureRequest, kind: str, command: list[str]) -> None:
    if kind == "read-only":
        db = request.getfixturevalue("read_only")
    else:
        db = tmp_path / "state.db"
        not_a_database(db)

    status, out, err = run_against(monkeypatch, capsys, sandbox_url, tenant, db, *command)

    assert (status, out) == (2, "")
    assert err.startswith(f"remediation: the local database {db} (REMEDIATION_DB): "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert [r.path for r in tenant.requests() if "alerts_v2" in r.path] == []
