"""Every ``--help`` of the command line shows an example and describes every option, so a
newcomer never has to read the source to run a command."""

import argparse

import pytest

from remediation.entrypoints import cli


def parsers() -> dict[str, argparse.ArgumentParser]:
    """The top-level parser and every subcommand's, by the command line that shows them."""
    top = cli._parser()
    found = {"remediation": top}
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update({f"remediation {name}": parser
                          for name, parser in action.choices.items()})
    return found


def test_there_are_subcommands_to_check() -> None:
    assert {"remediation demo", "remediation doctor", "remediation status",
            "remediation sandbox"} <= set(parsers())


@pytest.mark.parametrize("command", sorted(parsers()))
def test_every_help_has_an_example(command: str) -> None:
    parser = parsers()[command]
    epilog = parser.epilog or ""
    assert "example" in epilog.lower(), f"{command} --help shows no example"
    assert command in epilog, f"{command} --help: the example does not run {command}"


@pytest.mark.parametrize("command", sorted(parsers()))
def test_every_option_and_argument_is_described(command: str) -> None:
    parser = parsers()[command]
    undescribed = [action.dest for action in parser._actions
                   if not isinstance(action, argparse._SubParsersAction)
                   and (not action.help or action.help == argparse.SUPPRESS)]
    assert not undescribed, f"{command} --help: no description for {undescribed}"


@pytest.mark.parametrize("command", sorted(parsers()))
def test_help_prints_the_example_as_written(command: str, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*command.split()[1:], "--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    for line in (parsers()[command].epilog or "").splitlines():
        assert line in shown.splitlines(), f"{command} --help reflowed its example: {line!r}"
