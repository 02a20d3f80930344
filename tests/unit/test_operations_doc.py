"""The operators' runbook (docs/OPERATIONS.md) stays true to the command line and to the kinds
of escalation: every ``remediation COMMAND --flag`` it shows is a command and a flag the parser
takes, every kind of escalation has its subsection of numbered steps, every link into the
README or into the runbook itself lands on a heading, and the README points at the runbook.

A command the runbook names before it exists (``report``, being built beside it) fails here
until it lands: the runbook promises nothing the product does not do."""

import argparse
import re
from pathlib import Path

import pytest

from remediation.domain.escalation_kinds import EscalationKind
from remediation.entrypoints import cli

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "OPERATIONS.md"
README = ROOT / "README.md"

# Fenced blocks, indented ones (inside a list item) included.
FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`]+)`")
# "remediation status" as a command, not "remediation-requests", "remediation/domain" or a
# hyphenated product name ("Spam-block remediation - ...").
COMMAND = re.compile(r"(?<![\w./-])remediation\s+([a-z][a-z-]*)")
# Where a shell command line ends: a pipe, a list, a redirect, a comment.
COMMAND_END = re.compile(r"\s\|\s|;|&&|\s>|\s#")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$", re.MULTILINE)
LINK = re.compile(r"\]\(([^)\s]*)\)")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """The command line's subcommands, by name, as its parser declares them."""
    for action in cli._parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the command line declares no subcommands")


def code_of(text: str) -> list[str]:
    """Every piece of code in a Markdown text: fenced blocks (their continued lines joined)
    and inline spans."""
    pieces = [block.replace("\\\n", " ") for block in FENCE.findall(text)]
    prose = FENCE.sub("", text)
    pieces += [" ".join(span.split()) for span in INLINE.findall(prose)]
    return pieces


def commands_in(text: str) -> list[tuple[str, list[str]]]:
    """Each ``remediation COMMAND ...`` the text shows as code, with the flags given to it."""
    found = []
    for piece in code_of(text):
        for line in piece.splitlines():
            for match in COMMAND.finditer(line):
                rest = COMMAND_END.split(line[match.end():], maxsplit=1)[0]
                found.append((match[1], FLAG.findall(rest)))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped (hyphens and
    underscores kept), spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    return {slug(title) for _, title in HEADING.findall(FENCE.sub("", text))}


def runbook() -> str:
    assert RUNBOOK.is_file(), "docs/OPERATIONS.md is missing"
    return RUNBOOK.read_text(encoding="utf-8")


def test_the_runbook_exists_and_shows_commands() -> None:
    shown = {name for name, _ in commands_in(runbook())}
    assert {"enqueue", "status", "pause", "resume", "doctor", "approve", "reject", "close",
            "undo"} <= shown


def test_every_command_the_runbook_shows_is_a_real_subcommand() -> None:
    known = subcommands()
    unknown = sorted({name for name, _ in commands_in(runbook()) if name not in known})
    assert not unknown, (f"docs/OPERATIONS.md shows `remediation {unknown[0]}`, which the "
                         f"command line does not have (it has: {', '.join(sorted(known))})")


def test_every_flag_the_runbook_gives_a_command_is_one_it_takes() -> None:
    known = subcommands()
    wrong = []
    for name, flags in commands_in(runbook()):
        parser = known.get(name)
        if parser is None:
            continue  # the test above names it
        taken = set(parser._option_string_actions)
        wrong += [f"remediation {name} {flag}" for flag in flags if flag not in taken]
    assert not wrong, "docs/OPERATIONS.md gives flags the command does not take: " + \
        "; ".join(sorted(set(wrong)))


@pytest.mark.parametrize("kind", [kind.value for kind in EscalationKind])
def test_every_kind_of_escalation_has_a_subsection_of_steps(kind: str) -> None:
    text = runbook()
    _, found, after = text.partition("\n## When a case escalates\n")
    assert found, "docs/OPERATIONS.md has no section 'When a case escalates'"
    section = after.split("\n## ", 1)[0]
    heading = re.search(rf"^### `{kind}`: .+$", section, re.MULTILINE)
    assert heading, f"no subsection '### `{kind}`: ...' under 'When a case escalates'"
    body = section[heading.end():].split("\n### ", 1)[0]
    steps = re.findall(r"^\d+\. ", body, re.MULTILINE)
    assert len(steps) >= 2, f"the subsection of {kind} says what to do in no numbered steps"
    assert "remediation close" in body or "Close" in body, \
        f"the subsection of {kind} does not end the case (remediation close)"


def test_every_link_into_the_readme_or_the_runbook_lands_on_a_heading() -> None:
    text = runbook()
    targets = {"../README.md": anchors(README.read_text(encoding="utf-8")),
               "": anchors(text)}
    broken = []
    for link in LINK.findall(text):
        page, _, anchor = link.partition("#")
        if page not in targets:
            assert (RUNBOOK.parent / page).exists() or "://" in page, f"no such file: {link}"
            continue
        if anchor and anchor not in targets[page]:
            broken.append(link)
    assert not broken, f"links to no heading: {broken}"


def test_the_readme_points_at_the_runbook() -> None:
    assert "](docs/OPERATIONS.md)" in README.read_text(encoding="utf-8")
