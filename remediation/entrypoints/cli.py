"""The ``remediation`` command line (also ``python -m remediation``)."""

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import socket
import sqlite3
import sys
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from remediation.config import ConfigError, Settings
from remediation.domain.errors import InvalidRequest
from remediation.domain.requests import parse_request
from remediation.entrypoints.case_report import add_command as add_report_command
from remediation.entrypoints.decisions import add_commands as add_decisions
from remediation.entrypoints.helper_processes import HELPER_FLAG
from remediation.entrypoints.undo import add_command as add_undo_command
from remediation.logsafety import configure_logging

if TYPE_CHECKING:
    from datetime import datetime

    from remediation.domain.cases import Case, CaseState
    from remediation.domain.requests import RemediationRequest
    from remediation.sandbox import SandboxTenant
    from remediation.service.status import StatusQuery, StatusView

log = logging.getLogger("remediation.cli")

# The journal step `approve` writes once it queued an approval, and how long after it a
# repeated `approve` of a case still waiting queues another (the first may have been lost).
APPROVAL_QUEUED = "approval_queued"
APPROVAL_REQUEUE = timedelta(hours=1)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        # The configuration first, before anything happens (the demo and the sandbox bring
        # their own settings).
        if not getattr(args, "own_settings", False):
            args.settings = Settings.from_env()
        result: int = args.command(args)
        return result
    except ConfigError as error:
        print(f"remediation: configuration error: {error}", file=sys.stderr)
        return 2
    except InvalidRequest as error:
        print(f"remediation: {error.reason}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`remediation status | head`): nothing is wrong and nothing
        # more is said; stdout points at /dev/null so the interpreter's own flush at exit
        # stays quiet too (Python docs, "Note on SIGPIPE").
        with contextlib.suppress(OSError, ValueError):  # a stdout with no descriptor
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a process a closed pipe stopped
    except (OSError, sqlite3.Error) as error:  # the local database, a file, the network
        print(f"remediation: {_failure(error, getattr(args, 'settings', None))}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _failure(error: OSError | sqlite3.Error, settings: Settings | None) -> str:
    """One line for a failure of the system under a command (no traceback)."""
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, OSError) and error.filename is not None:
        text = f"cannot use {error.filename}: {error.strerror or type(error).__name__}"
    if isinstance(error, sqlite3.Error) and settings is not None:
        return f"the local database {settings.remediation_db} (REMEDIATION_DB): {text}"
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remediation",
        description="Secure and unblock Microsoft 365 accounts restricted for sending spam.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("remediation demo", "remediation doctor",
                         "remediation status --user rob@contoso.com",
                         "remediation approve CASE_ID   # or: reject / close CASE_ID "
                         "--reason TEXT",
                         "remediation COMMAND --help   # what COMMAND does, with an example"))
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    demo = _command(commands, "demo", "run everything against the built-in sandbox tenant",
                    "remediation demo")
    demo.set_defaults(command=_demo, own_settings=True)

    run = _command(commands, "run", "process the local queue against the configured tenant",
                   "remediation run --until-idle")
    run.add_argument("--until-idle", action="store_true",
                     help="poll once, exit once nothing is queued or scheduled (0 if every "
                          "case is final and every source of the poll was read; 3 if paused "
                          "by `remediation pause`: the work waits)")
    run.add_argument(HELPER_FLAG, action="store_true",
                     help="one of the other processes of a run with WORKER_PROCESSES above 1: "
                          "run starts and stops them itself (not for use by hand)")
    run.set_defaults(command=_run)

    enqueue = _command(
        commands, "enqueue", "request remediation of one account by hand",
        'remediation enqueue --user rob@contoso.com --reason "help desk ticket 4711"',
        "remediation enqueue --user rob@contoso.com --force   # a new case even if one is open")
    enqueue.add_argument("--user", required=True, help="email address or object id")
    enqueue.add_argument("--reason", help="why (kept in the journal)")
    enqueue.add_argument("--requested-by", help="who asks (default: your login@host)")
    enqueue.add_argument("--alert-id", action="append", default=[], dest="alert_ids",
                         help="a Defender alert id this request answers (repeatable)")
    enqueue.add_argument("--force", action="store_true",
                         help="start a new case even if one is open or recently verified")
    enqueue.set_defaults(command=_enqueue)

    approve = _command(commands, "approve", "let a case waiting for approval proceed",
                       "remediation approve 20260105-0badcafe --by alice@contoso.com")
    approve.add_argument("case_id", help="the case id shown by `status`")
    approve.add_argument("--by", help="who approves (default: your login@host)")
    approve.set_defaults(command=_approve)
    add_decisions(commands, _command)  # reject, close

    add_undo_command(commands, _command)

    pause = _command(
        commands, "pause", "the kill switch: from their next message no worker changes "
        "anything in the tenant until `resume` (requests and checks wait)",
        'remediation pause --by alice@contoso.com --reason "mass phishing: reviewing by hand"')
    pause.add_argument("--by", help="who pauses (default: your login@host)")
    pause.add_argument("--reason", required=True, help="why (shown by status and doctor, and "
                       "on every case kept)")
    pause.set_defaults(command=_pause)

    resume = _command(commands, "resume", "lift the pause: workers act again from their next "
                      "message", "remediation resume --by alice@contoso.com")
    resume.add_argument("--by", help="who resumes (default: your login@host)")
    resume.set_defaults(command=_resume)

    status = _command(
        commands, "status", "show when each source of the poll last succeeded, then cases, "
        "newest first (open and escalated ones first in the table)",
        "remediation status --state open,escalated --since 1d",
        "remediation status --user rob@contoso.com   # or an alias, the UPN, the object id",
        "remediation status --json --with-total")
    status.add_argument("--user", help="only this account, by any of its names (an address "
                        "or alias, its UPN, its object id), with every step")
    status.add_argument("--state", action="append", default=[], dest="states",
                        metavar="STATE", help="only cases in this state (repeatable or a comma "
                        "list; 'open' is every state not final)")
    status.add_argument("--since", metavar="DURATION|TIME",
                        help="only cases created in the last DURATION (30m, 1d) or since an "
                             "ISO 8601 time (2026-01-05T09:00Z)")
    status.add_argument("--limit", type=_positive, metavar="N",
                        help="at most N cases (table default: 50; JSON default: all)")
    status.add_argument("--json", action="store_true",
                        help="machine-readable: a list of cases, newest first")
    status.add_argument("--with-total", action="store_true",
                        help="with --json: an object {total, shown, counts, sources, cases} "
                             "instead of the bare list")
    status.set_defaults(command=_status)
    add_report_command(commands, _command)

    doctor = _command(
        commands, "doctor", "preflight: settings, the token's permissions and roles, and one "
        "harmless read per capability (exit 0 only when all is in place)",
        "remediation doctor   # with the deployment's app settings in the environment",
        "remediation doctor --json   # the document GET /api/preflight answers")
    doctor.add_argument("--json", action="store_true",
                        help="machine-readable: {ready, summary, counts, findings: [{check, "
                             "status, result, fix}]}, the preflight function's answer")
    doctor.set_defaults(command=_doctor)

    sandbox = _command(commands, "sandbox", "serve the sandbox tenant alone",
                       "remediation sandbox --port 8080")
    sandbox.add_argument("--port", type=int, default=8080,
                         help="the loopback port to listen on (default: 8080; 0: any free "
                              "one, named in what it prints)")
    sandbox.set_defaults(command=_sandbox, own_settings=True)
    return parser


def _command(commands: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str,
             summary: str, *examples: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` says what it does and shows how to run it."""
    return commands.add_parser(name, help=summary, description=summary,
                               epilog=_examples(*examples),
                               formatter_class=argparse.RawDescriptionHelpFormatter)


def _examples(*lines: str) -> str:
    return "example" + ("s" if len(lines) > 1 else "") + ":\n" + "\n".join(
        f"  {line}" for line in lines)


def _demo(args: argparse.Namespace) -> int:
    from remediation.entrypoints.demo import main as demo_main
    from remediation.entrypoints.telemetry import configured

    with configured(Settings().mode):  # the demo's own settings: the default mode
        return demo_main(sys.stdout)


def _run(args: argparse.Namespace) -> int:
    from remediation.entrypoints.runner import run_local
    from remediation.entrypoints.telemetry import configured

    settings: Settings = args.settings.require_tenant()
    asyncio.run(_check_local_database(settings))
    with configured(settings.mode):  # flushed before the process exits
        return run_local(settings, until_idle=args.until_idle, helper=args.helper,
                         verbose=args.verbose)


async def _check_local_database(settings: Settings) -> None:
    """Before any work: the local database (queue or journal) takes a write. Unwritable, it
    is one line and exit status 2 (main), not a traceback for every alert the poll reads."""
    if not settings.uses_local_database:
        return
    from remediation.adapters.sqlite_db import SqliteDatabase

    database = SqliteDatabase(settings.remediation_db)
    try:
        await database.check_writable()
    except OSError as error:  # said as the database's failure, like SQLite's own
        raise sqlite3.OperationalError(error.strerror or type(error).__name__) from None
    finally:
        database.close()


def _enqueue(args: argparse.Namespace) -> int:
    settings: Settings = args.settings
    request = parse_request({
        "user": args.user, "reason": args.reason, "alert_ids": args.alert_ids,
        "requested_by": args.requested_by or f"{getpass.getuser()}@{socket.gethostname()}",
        "force": args.force, "source": "manual", "request_id": uuid.uuid4().hex})
    return asyncio.run(_send(settings, request))


async def _send(settings: Settings, request: "RemediationRequest") -> int:
    """To Service Bus when a namespace is configured, else to the local queue."""
    from remediation.bootstrap import bootstrap

    await _check_local_database(settings)
    app = bootstrap(settings)
    try:
        message_id = await app.requests.send(request)
    finally:
        await app.aclose()
    where = (f"Service Bus queue {settings.remediation_queue} on "
             f"{settings.service_bus_namespace}" if settings.service_bus_namespace
             else f"the local queue in {settings.remediation_db}")
    print(f"queued request {message_id} for {request.user} on {where}")
    return 0


def _approve(args: argparse.Namespace) -> int:
    return asyncio.run(_send_approval(args.settings, args.case_id,
                                      args.by or f"{getpass.getuser()}@{socket.gethostname()}"))


async def _send_approval(settings: Settings, case_id: str, approved_by: str) -> int:
    from remediation.adapters.clock import SystemClock
    from remediation.bootstrap import bootstrap
    from remediation.domain.cases import CaseState, Step, StepStatus
    from remediation.domain.decisions import described_state
    from remediation.service.journaling import CaseRecorder
    from remediation.service.messages import Approval, approver

    approved_by = approver(approved_by)  # refused with the reason (exit 2), never cut short
    await _check_local_database(settings)
    app = bootstrap(settings)
    try:
        case = await app.journal.get_case(case_id)
        if case is None:
            raise InvalidRequest(f"no case {case_id!r} in the journal")
        already = _already_approved(case)
        if already is not None:
            print(already)
            return 0
        if case.state is not CaseState.AWAITING_APPROVAL:
            raise InvalidRequest(f"case {case_id} is {described_state(case)}, not awaiting "
                                 "approval")
        await app.requests.send_approval(Approval(case_id, case.user, approved_by))
        recorder = CaseRecorder(app.journal, SystemClock())
        await recorder.add_step(case_id, Step(
            APPROVAL_QUEUED, StepStatus.INFO, recorder.clock.now(),
            f"approval by {approved_by} queued", {"approved_by": approved_by}))
    finally:
        await app.aclose()
    print(f"approval of case {case_id} ({case.user}) queued")
    return 0


def _already_approved(case: "Case") -> str | None:
    """What to tell a person who approves a case again: approved already (it went on), or an
    approval already queued (a worker lets it proceed when it takes it); None when the
    approval is to be queued. An approval queued longer than APPROVAL_REQUEUE ago whose case
    still waits is queued again: the first may have been lost (a case proceeds once)."""
    from datetime import UTC, datetime

    from remediation.domain.cases import CaseState

    approved = next((s for s in reversed(case.steps) if s.name == "approved"), None)
    if approved is not None and case.state is not CaseState.AWAITING_APPROVAL:
        return (f"case {case.case_id} ({case.user}) was already approved "
                f"({approved.detail}, {approved.at:%Y-%m-%d %H:%M} UTC) and is "
                f"{case.state.value}: nothing queued")
    queued = next((s for s in reversed(case.steps) if s.name == APPROVAL_QUEUED), None)
    if (queued is None or case.state is not CaseState.AWAITING_APPROVAL
            or datetime.now(UTC) - queued.at > APPROVAL_REQUEUE):
        return None
    return (f"approval of case {case.case_id} ({case.user}) already queued "
            f"({queued.detail}, {queued.at:%Y-%m-%d %H:%M} UTC): the case proceeds when a "
            "worker takes it; nothing queued again")


def _pause(args: argparse.Namespace) -> int:
    from remediation.entrypoints.kill_switch import default_operator, pause

    return asyncio.run(pause(args.settings, args.by or default_operator(), args.reason))


def _resume(args: argparse.Namespace) -> int:
    from remediation.entrypoints.kill_switch import default_operator, resume

    return asyncio.run(resume(args.settings, args.by or default_operator()))


def _status(args: argparse.Namespace) -> int:
    from remediation.domain.requests import normalise_user
    from remediation.domain.sources import polled
    from remediation.service.status import StatusQuery

    settings: Settings = args.settings
    if args.with_total and not args.json:
        raise InvalidRequest("--with-total goes with --json")
    query = StatusQuery(user=normalise_user(args.user) if args.user else None,
                        states=_states(args.states), since=_since(args.since),
                        limit=args.limit,
                        sources=polled(sweep=settings.sweep_restricted_users))
    return asyncio.run(_show(settings, query, as_json=args.json, with_total=args.with_total))


async def _show(settings: Settings, query: "StatusQuery", *, as_json: bool,
                with_total: bool) -> int:
    from remediation.adapters.sqlite_db import SqliteDatabase
    from remediation.adapters.sqlite_journal import SqliteJournal
    from remediation.service.status import cases_for_people, newest_cases

    if settings.journal_table_endpoint or settings.journal_table_connection_string:
        # The deployment's journal is Table Storage: read that one, not a local file.
        from remediation.bootstrap import bootstrap

        app = bootstrap(settings)
        try:
            view = await (newest_cases if as_json else cases_for_people)(app.journal, query)
        finally:
            await app.aclose()
        return _print_status(view, query, as_json=as_json, with_total=with_total)
    path = settings.remediation_db
    if not path.is_file():  # a mistyped path must not quietly show an empty, new journal
        raise InvalidRequest(f"no such journal: {path} (REMEDIATION_DB): nothing has been "
                             "queued or run with it here; check the path")
    database = SqliteDatabase(path, read_only=True)  # status reads; it never writes
    try:
        journal = SqliteJournal(database)
        view = await (newest_cases if as_json else cases_for_people)(journal, query)
    finally:
        database.close()
    return _print_status(view, query, as_json=as_json, with_total=with_total)


def _print_status(view: "StatusView", query: "StatusQuery", *, as_json: bool,
                  with_total: bool) -> int:
    from remediation.entrypoints.report import (
        cases_as_json,
        status_as_json,
        status_details,
        status_table,
    )

    if as_json:
        print(status_as_json(view) if with_total else cases_as_json(view.cases))
        if view.not_shown and not with_total:  # tools read stdout; a person may read this
            print(f"remediation: {view.not_shown} more case(s) not shown (--limit)",
                  file=sys.stderr)
    elif query.user:
        print(status_details(view, query.user))
    else:
        print(status_table(view))
    return 0


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return number


def _states(given: list[str]) -> "frozenset[CaseState] | None":
    """``--state`` values (repeated or comma lists) as states; ``open`` is every open one."""
    from remediation.domain.cases import CaseState
    from remediation.service.status import OPEN_STATES

    names = [name.strip().lower() for value in given for name in value.split(",")
             if name.strip()]
    if not names:
        return None
    states: set[CaseState] = set()
    for name in names:
        if name == "open":
            states |= OPEN_STATES
        elif name in {state.value for state in CaseState}:
            states.add(CaseState(name))
        else:
            known = ", ".join(["open", *(state.value for state in CaseState)])
            raise InvalidRequest(f"--state: no state {name[:40]!r} (one of: {known})")
    return frozenset(states)


def _since(text: str | None) -> "datetime | None":
    """``--since``: a duration back from now (``30m``, ``1d``) or an ISO 8601 time (UTC
    when it names no offset)."""
    from datetime import UTC, datetime

    from remediation.domain.durations import DurationTooLong, parse_duration

    if text is None:
        return None
    try:
        return datetime.now(UTC) - parse_duration(text)
    except DurationTooLong as error:
        raise InvalidRequest(f"--since: {error}") from None
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(f"--since: {text[:40]!r} is neither a duration (30m, 1d) nor "
                             "an ISO 8601 time (2026-01-05T09:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _doctor(args: argparse.Namespace) -> int:
    settings: Settings = args.settings.require_tenant()
    from remediation.entrypoints.doctor import run_doctor

    return asyncio.run(run_doctor(settings, sys.stdout, as_json=args.json))


def _sandbox(args: argparse.Namespace) -> int:
    from remediation.sandbox import demo_tenant
    from remediation.sandbox.server import serve_forever

    tenant = demo_tenant()
    if os.environ.get("SANDBOX_TOKEN"):
        tenant.token = os.environ["SANDBOX_TOKEN"]
    if os.environ.get("IDENTITY_HEADER"):  # keep the secret a shell already holds
        tenant.identity_header = os.environ["IDENTITY_HEADER"]
    port = args.port or _free_port()
    url = f"http://127.0.0.1:{port}"
    print("\n".join(_sandbox_banner(tenant, url, port)), file=sys.stderr, flush=True)
    asyncio.run(serve_forever(tenant, "127.0.0.1", port))
    return 0


def _free_port() -> int:
    """A loopback port nobody listens on now (``--port 0``)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _sandbox_banner(tenant: "SandboxTenant", url: str, port: int) -> list[str]:
    """The quick start to paste: the worker's environment, the commands, then doctor's
    identity (``sandbox_banner``)."""
    from remediation.entrypoints.sandbox_banner import banner

    return banner(tenant, url, port)
