"""``remediation reject`` and ``remediation close``: a person's decision on one case.

Each reads and writes the journal of the deployment (SQLite locally, Table Storage when it
is configured) and queues the decision's notices on the follow-ups queue, as ``approve``
queues its approval: the worker comments on the case's Defender alerts and posts to the
escalation channel. Each sets up telemetry as ``run`` does (``entrypoints.telemetry``): the
final state it stores is counted by this process, with the same exporter settings. How a
decision stays safe against a worker approving the same case at the same moment:
``remediation.service.decisions``.
"""

import argparse
import asyncio
import getpass
import socket
from collections.abc import Awaitable, Callable

from remediation.config import Settings
from remediation.domain.display import shown
from remediation.service.admission import decided_at

NAME_LIMIT = 256


def default_decider() -> str:
    """Who decides when ``--by`` is not given: ``login@host``, as for ``approve``."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def reject(args: argparse.Namespace) -> int:
    return _decided(args, "rejected")


def close(args: argparse.Namespace) -> int:
    return _decided(args, "closed")


def _decided(args: argparse.Namespace, decision: str) -> int:
    """The decision, with the process's telemetry as ``run`` sets it up (flushed before the
    command exits): the final state it stores is counted here, by the process that stores
    it (``remediation.cases.final``), and nowhere else."""
    from remediation.entrypoints.telemetry import configured

    with configured(args.settings.mode):
        return asyncio.run(_decide(args.settings, decision, args.case_id, _by(args),
                                   args.reason))


def _by(args: argparse.Namespace) -> str:
    """``--by`` as given (a blank one is refused, never replaced), else the default."""
    return default_decider() if args.by is None else str(args.by)


async def _decide(settings: Settings, decision: str, case_id: str, by: str,
                  reason: str) -> int:
    """Store the decision and print one line: what was decided, or that a person had
    decided the case already (exit 0). Refusals raise InvalidRequest (one line, exit 2)."""
    from remediation.bootstrap import bootstrap
    from remediation.entrypoints.cli import _check_local_database
    from remediation.service.decisions import Decided

    await _check_local_database(settings)
    app = bootstrap(settings)
    try:
        act: Callable[..., Awaitable[Decided]] = (
            app.workflow.reject_waiting if decision == "rejected"
            else app.workflow.close_escalated)
        decided = await act(case_id, by=by, reason=reason)
    finally:
        await app.aclose()
    case = decided.case
    who = f"case {case.case_id} ({shown(case.user, NAME_LIMIT)})"
    by_whom = shown(case.decided_by or by, NAME_LIMIT)
    if not decided.now:
        print(f"{who} was already {decision} by {by_whom} "
              f"({decided_at(case):%Y-%m-%d %H:%M} UTC): nothing changed")
    elif decision == "rejected":
        print(f"{who} rejected by {by_whom}: nothing was changed in the tenant")
    else:
        print(f"{who} closed by {by_whom}")
    return 0


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
                 command: Callable[..., argparse.ArgumentParser]) -> None:
    """``reject`` and ``close`` on the command line (``command``: ``cli._command``)."""
    rejecting = command(
        commands, "reject", "end a case waiting for approval: rejected, nothing changes in "
        "the tenant",
        'remediation reject 20260105-0badcafe --by alice@contoso.com --reason "the owner '
        'sent it: a planned mailing"')
    closing = command(
        commands, "close", "end an escalated case a person has handled: closed (its alerts "
        "are commented on, never resolved for you)",
        'remediation close 20260105-0badcafe --by alice@contoso.com --reason "password reset '
        'by phone, block removed by hand"')
    for parser, run, what in ((rejecting, reject, "rejects"), (closing, close, "closes")):
        parser.add_argument("case_id", help="the case id shown by `status`")
        parser.add_argument("--by", help=f"who {what} (default: your login@host)")
        parser.add_argument("--reason", required=True,
                            help="why (kept in the journal, shown in status, the alerts' "
                                 "comment and the escalation channel)")
        parser.set_defaults(command=run)
