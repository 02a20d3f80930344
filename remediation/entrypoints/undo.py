"""``remediation undo CASE_ID [--step STEP] --by NAME [--dry-run]`` (issue 16, point 3).

The command checks and queues; a worker acts (``service/undo.py``), with the app's identity,
like every change to the tenant. It prints one line per change: what it will restore (or
would, with ``--dry-run`` or REMEDIATION_MODE=dry-run, which queue nothing), what was
restored already, what cannot be restored and who does what instead. A refusal is one line on
stderr, exit status 2 (``cli.main``), nothing queued.
"""

import argparse
import asyncio
import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TextIO

from remediation.domain.display import shown
from remediation.domain.errors import InvalidRequest
from remediation.domain.requests import checked_text

if TYPE_CHECKING:
    from remediation.config import Settings

# An undo queued this long ago whose undo has not ended may have been lost: queued again.
UNDO_REQUEUE = timedelta(hours=1)
BY_LIMIT = 256

Command = Callable[..., argparse.ArgumentParser]


def add_command(commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
                command: Command) -> None:
    """``undo`` on the command line (``command`` is cli's ``_command``)."""
    undo = command(
        commands, "undo", "restore what a case changed that can be restored (inbox rules, "
        "mailbox forwarding, app consents) and say what cannot be",
        "remediation undo 20260105-0badcafe --by alice@contoso.com --dry-run",
        "remediation undo 20260105-0badcafe --by alice@contoso.com",
        "remediation undo 20260105-0badcafe --step consent_grants --by alice@contoso.com")
    undo.add_argument("case_id", help="the case id shown by `status`")
    undo.add_argument("--step", help="only this step's changes, named as `status --user` "
                      "shows the steps (mailbox_hygiene, exchange_inbox_rules, "
                      "consent_grants, ...)")
    undo.add_argument("--by", required=True, help="who undoes (kept in the journal)")
    undo.add_argument("--dry-run", action="store_true",
                      help="say what would be restored and what cannot be; queue nothing")
    undo.set_defaults(command=_undo)


def _undo(args: argparse.Namespace) -> int:
    by = checked_text(args.by, "--by", BY_LIMIT)
    if by is None:
        raise InvalidRequest("--by is blank: name who undoes the case")
    return asyncio.run(undo_case(args.settings, args.case_id, by=by, step=args.step,
                                 dry_run=args.dry_run, out=sys.stdout))


async def undo_case(settings: "Settings", case_id: str, *, by: str, step: str | None,
                    dry_run: bool, out: TextIO) -> int:
    """Check case ``case_id``, then print its plan (``dry_run``, or REMEDIATION_MODE=dry-run)
    or queue its undo. InvalidRequest (exit 2) for a case that may not be undone."""
    from remediation.adapters.clock import SystemClock
    from remediation.adapters.queue_limits import session_id_for
    from remediation.bootstrap import bootstrap
    from remediation.domain.cases import StepStatus
    from remediation.domain.undo import UNDO_NOT_QUEUED, UNDO_QUEUED, pending
    from remediation.entrypoints.cli import _check_local_database
    from remediation.service.journaling import CaseRecorder
    from remediation.service.undo import UndoRequest, account_cases, plan, refusal

    dry_run = dry_run or settings.mode == "dry-run"
    await _check_local_database(settings)
    app = bootstrap(settings)
    try:
        case = await app.journal.get_case(case_id)
        if case is None:
            raise InvalidRequest(f"no case {case_id!r} in the journal")
        why = refusal(case, await account_cases(app.journal, case))
        if why is not None:
            raise InvalidRequest(why)
        undo = plan(case, step)
        waiting = pending(case)
        if (not dry_run and waiting is not None
                and datetime.now(UTC) - waiting.at <= UNDO_REQUEUE):
            who = shown(str(waiting.data.get("by")), BY_LIMIT)
            print(f"undo of case {case_id} ({case.user}) already queued by {who} at "
                  f"{waiting.at:%Y-%m-%d %H:%M} UTC: a worker restores what it names; "
                  "nothing queued again", file=out)
            return 0
        print("\n".join(undo.lines("would restore" if dry_run else "will restore")), file=out)
        if not undo.to_restore:
            if undo.restored:
                print(f"case {case_id}: everything it can restore was restored already; "
                      "nothing queued", file=out)
                return 0
            raise InvalidRequest(f"case {case_id} has nothing the robot can restore"
                                 + (f" in step {step}" if step else "") + "; nothing queued")
        if dry_run:
            why = "--dry-run" if settings.mode != "dry-run" else "REMEDIATION_MODE=dry-run"
            print(f"dry run ({why}): nothing queued, nothing changed", file=out)
            return 0
        copies = app.request_copies
        assert copies is not None
        recorder = CaseRecorder(app.journal, SystemClock())
        token = secrets.token_hex(16)
        case = await recorder.note(case, UNDO_QUEUED, StepStatus.INFO, (
            f"undo by {by} queued: {len(undo.to_restore)} change(s) to restore"
            + (f" (step {step})" if step else "")), {"token": token, "by": by, "step": step})
        message = UndoRequest(case.case_id, case.user, token)
        try:
            await copies.schedule_copy(message.to_json().encode(),
                                       session_id=session_id_for(case.user),
                                       properties={"kind": "undo", "case_id": case.case_id},
                                       at=None)
        except BaseException:
            await recorder.note(case, UNDO_NOT_QUEUED, StepStatus.INFO,
                                "the undo could not be queued", {"token": token})
            raise
    finally:
        await app.aclose()
    print(f"undo of case {case_id} ({case.user}) queued by {by}: a worker restores "
          f"{len(undo.to_restore)} change(s); `remediation status --user {case.user}` shows "
          "each", file=out)
    return 0
