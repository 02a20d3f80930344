"""What the repository says stands on its own: no file points a reader at notes kept outside
it. A fact is stated where it is used, with the source it comes from (a Microsoft reference,
a public repository, a path in this one)."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Spelled in pieces, so that this file does not name what it looks for.
OUTSIDE_NOTES = ("API-" + "NOTES", "DESIGN" + ".md", "../" + "shared")


def repository_files() -> list[Path]:
    """Tracked files, and new ones not yet committed (ignored ones left out)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in listed.decode().split("\0") if name]


def test_no_file_refers_to_notes_outside_the_repository() -> None:
    found = []
    for path in repository_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # binary files, and files deleted but not yet staged
        for number, line in enumerate(text.splitlines(), 1):
            found += [f"{path.relative_to(ROOT)}:{number}: {word}"
                      for word in OUTSIDE_NOTES if word in line]
    assert not found, "\n".join(found)
