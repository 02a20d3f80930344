"""A breaker limit of 0 is a configuration error, not a pause: it would escalate every case
as a mass compromise. The one line names the setting and says how to stop the robot."""

from __future__ import annotations

import pytest

from remediation.config import ConfigError, Settings
from tests.cli_helpers import clean_environment, run_cli  # noqa: F401 (a fixture)

ZERO = ("MAX_REMEDIATIONS_PER_HOUR: 0 would refuse every password reset and escalate every "
        "case as a mass compromise; it must be at least 1. To stop the robot, run "
        "`remediation pause --by NAME --reason TEXT` (and `remediation resume` to go on)")


def test_zero_is_refused_naming_the_setting_and_the_pause() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"MAX_REMEDIATIONS_PER_HOUR": "0"})

    assert str(refused.value) == ZERO


@pytest.mark.parametrize("value", ["1", "20", "100000"])
def test_one_and_more_are_taken(value: str) -> None:
    assert Settings.from_env({"MAX_REMEDIATIONS_PER_HOUR": value}).max_remediations_per_hour == (
        int(value))


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("command", [["status"], ["run", "--until-idle"], ["doctor"],
                                     ["pause", "--reason", "x"]])
def test_every_command_stops_with_one_line_and_status_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        command: list[str]) -> None:
    status, out, err = run_cli(monkeypatch, capsys, {"MAX_REMEDIATIONS_PER_HOUR": "0"},
                               *command)

    assert (status, out) == (2, "")
    assert err == f"remediation: configuration error: {ZERO}\n"
