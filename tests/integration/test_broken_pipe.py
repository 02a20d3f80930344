"""`remediation status | head`: the reader going away is no failure of ours. Before, the
command ended with `remediation: [Errno 32] Broken pipe` on stderr and exit status 2."""

import io
from pathlib import Path

import pytest

from remediation.entrypoints import cli
from tests.cli_helpers import clean_environment

__all__ = ["clean_environment"]


class ClosedPipe(io.TextIOBase):
    """A stdout whose reader went away: every write fails as a closed pipe does."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_ends_the_command_quietly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        clean_environment: None) -> None:
    monkeypatch.setenv("REMEDIATION_DB", str(tmp_path / "state.db"))
    assert cli.main(["enqueue", "--user", "rob@contoso.com"]) == 0
    capsys.readouterr()
    monkeypatch.setattr("sys.stdout", ClosedPipe())

    status = cli.main(["status"])

    assert status == 141
    assert "Broken pipe" not in capsys.readouterr().err
