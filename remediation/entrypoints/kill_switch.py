"""``remediation pause`` and ``remediation resume``: the kill switch, and how it is shown.

The switch is kept in the deployment's journal (SQLite locally, Table Storage in Azure), next
to the reset breaker, so every worker reads it at its next message: no redeploy, no restart.
While it is on nothing changes in any tenant (``service.pausing``); ``status`` and ``doctor``
say so on their first line, and ``run --until-idle`` ends with ``EXIT_PAUSED``.
"""

import getpass
import socket
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from remediation.config import Settings
from remediation.domain.display import shown
from remediation.domain.durations import format_duration
from remediation.domain.pause import Paused, pause_reason
from remediation.logsafety import redact
from remediation.service.messages import approver
from remediation.service.pausing import PAUSE_RECHECK

if TYPE_CHECKING:
    from remediation.bootstrap import Application

EXIT_PAUSED = 3  # `run --until-idle` while paused: nothing was done, work waits
_SHOWN = 1000  # characters of a pause's reason or name on a line (the most it may have)


def default_operator() -> str:
    """Who, when ``--by`` is not given: the login and host, as for ``approve``."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def paused_line(paused: Paused) -> str:
    """The line ``status``, ``doctor`` and ``run`` put first while paused (text escaped)."""
    return (f"PAUSED since {paused.since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC by "
            f"{shown(paused.by, _SHOWN)}: {shown(paused.reason, _SHOWN)}. Nothing changes in "
            "the tenant: requests and checks wait (asked again every "
            f"{format_duration(PAUSE_RECHECK)}). To go on: remediation resume --by NAME")


def paused_json(paused: Paused | None) -> dict[str, str] | None:
    """``status --json --with-total``'s ``paused``: who, why, since (ISO 8601), or null."""
    return None if paused is None else paused.to_dict()


async def pause(settings: Settings, by: str, reason: str, out: TextIO | None = None) -> int:
    """Turn the switch on (exit 0; already on: say by whom, change nothing, exit 0). Who and
    why are checked first (InvalidRequest: exit 2, nothing stored), then masked if they
    hold a secret (``logsafety.redact``, as a reject's are: the journal keeps them and
    ``status`` shows them). ``out``: stdout."""
    out = out or sys.stdout
    wanted = Paused(redact(approver(by)), redact(pause_reason(reason)), datetime.now(UTC))
    app = _application(settings)
    try:
        paused = await app.journal.pause(wanted)
    finally:
        await app.aclose()
    if paused != wanted:
        out.write(f"already paused; nothing changed. {paused_line(paused)}\n")
        return 0
    out.write(f"{paused_line(paused)}\nEvery worker obeys it from its next message; a "
              "delivery already running finishes first.\n")
    return 0


async def resume(settings: Settings, by: str, out: TextIO | None = None) -> int:
    """Turn the switch off (exit 0; off already: say so, exit 0). ``out``: stdout."""
    out = out or sys.stdout
    who = approver(by)
    app = _application(settings)
    try:
        lifted = await app.journal.resume(who, datetime.now(UTC))
    finally:
        await app.aclose()
    if lifted is None:
        out.write("not paused: nothing to resume\n")
        return 0
    out.write(f"resumed by {shown(who, _SHOWN)}: the pause by {shown(lifted.by, _SHOWN)} since "
              f"{lifted.since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC is lifted. Workers act "
              "again from their next message; the work kept comes back within "
              f"{format_duration(PAUSE_RECHECK)}.\n")
    return 0


async def paused_exit(app: "Application", err: TextIO | None = None) -> int | None:
    """For ``run --until-idle`` once its work is done: EXIT_PAUSED with the PAUSED line on
    ``err`` (stderr) when the switch is on, else None (the run ends as it would have)."""
    paused = await app.journal.pause_state()
    if paused is None:
        return None
    (err or sys.stderr).write(f"remediation: {paused_line(paused)}\n")
    return EXIT_PAUSED


def _application(settings: Settings) -> "Application":
    """The deployment's journal, as every worker opens it (Table Storage, or the SQLite
    file, created if missing: a pause set before the first run is obeyed by it)."""
    from remediation.bootstrap import bootstrap

    return bootstrap(settings)
