"""The administrator's script the bench compares with, in its two modes: the loop (each user
waited out and checked before the next is touched: issue 18's baseline) and batched checks
(every user checked in one pass at the end)."""

import asyncio
import os
from pathlib import Path

import pytest

from bench import time_to_secure

USERS = 3


@pytest.mark.parametrize("per_user_verify", [True, False], ids=["loop", "batched"])
def test_the_script_checks_each_user_in_the_loop_or_all_at_the_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_user_verify: bool) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")])))
    figures = asyncio.run(time_to_secure.script(USERS, 0.0, tmp_path,
                                                per_user_verify=per_user_verify))

    assert figures["mode"] == ("loop" if per_user_verify else "batched")
    assert figures["checked_before_next_user"] is per_user_verify
    assert figures["calls_per_user"]["exchange_read"] == 1  # one check a user, either way
