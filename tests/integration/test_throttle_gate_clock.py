"""The throttling gate shared through a file's modification time (``ThrottleGate.share``)
against a wall clock that went back: a VM restored from a snapshot, a clock corrected by
days. No Retry-After is taken beyond MAX_RETRY_AFTER (``retrying.parse_retry_after``), so a
moment further away than that was not written by one."""

import os
import time
from pathlib import Path

from remediation.adapters.throttle_gate import ThrottleGate
from remediation.domain.errors import MAX_RETRY_AFTER, TransientError

DAYS = 3 * 24 * 3600.0


def test_a_moment_no_retry_after_could_have_set_does_not_hold_every_process(
        tmp_path: Path) -> None:
    path = tmp_path / "state.db-throttled-graph"
    path.touch(mode=0o600)
    later = time.time() + 60 + DAYS  # a 60 s Retry-After, then the clock went back 3 days
    os.utime(path, (later, later))
    one, other = ThrottleGate("Graph"), ThrottleGate("Graph")
    one.share(str(path))
    other.share(str(path))
    assert not other.throttled

    one.saw(TransientError("throttled", retry_after=5))  # the next 429 is shared again
    assert 0 < other.remaining() <= 5


def test_the_longest_retry_after_is_still_shared(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db-throttled-graph")
    one, other = ThrottleGate("Graph"), ThrottleGate("Graph")
    one.share(path)
    other.share(path)
    one.saw(TransientError("throttled", retry_after=MAX_RETRY_AFTER))
    assert MAX_RETRY_AFTER - 60 < other.remaining() <= MAX_RETRY_AFTER
