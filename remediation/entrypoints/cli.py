"""The ``remediation`` command line (also ``python -m remediation``)."""

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from remediation.config import ConfigError, Settings
from remediation.domain.errors import InvalidRequest
from remediation.domain.requests import parse_request
from remediation.logsafety import configure_logging

if TYPE_CHECKING:
    from remediation.bootstrap import Application
    from remediation.domain.requests import RemediationRequest

log = logging.getLogger("remediation.cli")


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
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remediation",
        description="Secure and unblock Microsoft 365 accounts restricted for sending spam.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run everything against the built-in sandbox tenant")
    demo.set_defaults(command=_demo, own_settings=True)

    run = commands.add_parser("run", help="process the local queue against the configured tenant")
    run.add_argument("--until-idle", action="store_true",
                     help="exit once nothing is queued or scheduled (0 if every case is final)")
    run.set_defaults(command=_run)

    enqueue = commands.add_parser("enqueue", help="request remediation of one account by hand")
    enqueue.add_argument("--user", required=True, help="email address or object id")
    enqueue.add_argument("--reason", help="why (kept in the journal)")
    enqueue.add_argument("--requested-by", help="who asks (default: your login@host)")
    enqueue.add_argument("--alert-id", action="append", default=[], dest="alert_ids",
                         help="a Defender alert id this request answers (repeatable)")
    enqueue.add_argument("--force", action="store_true",
                         help="start a new case even if one is open or recently verified")
    enqueue.set_defaults(command=_enqueue)

    approve = commands.add_parser("approve", help="let a case waiting for approval proceed")
    approve.add_argument("case_id", help="the case id shown by `status`")
    approve.add_argument("--by", help="who approves (default: your login@host)")
    approve.set_defaults(command=_approve)

    status = commands.add_parser("status", help="show cases and their steps")
    status.add_argument("--user", help="only this account, with every step")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(command=_status)

    doctor = commands.add_parser(
        "doctor", help="preflight: settings, the token's permissions and roles, and one "
                       "harmless read per capability (exit 0 only when all is in place)")
    doctor.set_defaults(command=_doctor)

    sandbox = commands.add_parser("sandbox", help="serve the sandbox tenant alone")
    sandbox.add_argument("--port", type=int, default=8080)
    sandbox.set_defaults(command=_sandbox, own_settings=True)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from remediation.entrypoints.demo import main as demo_main

    return demo_main(sys.stdout)


def _run(args: argparse.Namespace) -> int:
    settings: Settings = args.settings.require_tenant()
    return asyncio.run(_run_worker(settings, until_idle=args.until_idle))


async def _run_worker(settings: Settings, *, until_idle: bool) -> int:
    from remediation.bootstrap import bootstrap

    app = bootstrap(settings)
    try:
        if until_idle:
            await app.intake.poll()
            await app.worker().run(until_idle=True)
            open_cases = [c for c in await app.journal.list_cases() if not c.state.is_final]
            for case in open_cases:
                log.warning("case %s for %s is still %s", case.case_id, case.user,
                            case.state.value)
            return 1 if open_cases else 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        poller = asyncio.create_task(_poll_until(app, stop))
        await app.worker().run(stop=stop)
        await poller
        return 0
    finally:
        await app.aclose()


async def _poll_until(app: "Application", stop: asyncio.Event) -> None:
    """Poll alerts and the Restricted users list every ALERT_POLL_INTERVAL until stopped."""
    interval = app.settings.alert_poll_interval.total_seconds()
    while not stop.is_set():
        try:
            await app.intake.poll()
        except Exception:  # a failed poll must not stop the worker; the next one overlaps
            log.exception("alert poll failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


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
    from remediation.bootstrap import bootstrap
    from remediation.domain.cases import CaseState
    from remediation.service.messages import Approval

    app = bootstrap(settings)
    try:
        case = await app.journal.get_case(case_id)
        if case is None:
            raise InvalidRequest(f"no case {case_id!r} in the journal")
        if case.state is not CaseState.AWAITING_APPROVAL:
            raise InvalidRequest(f"case {case_id} is {case.state.value}, not awaiting approval")
        await app.requests.send_approval(Approval(case_id, case.user, approved_by[:256]))
    finally:
        await app.aclose()
    print(f"approval of case {case_id} ({case.user}) queued")
    return 0


def _status(args: argparse.Namespace) -> int:
    settings: Settings = args.settings
    return asyncio.run(_show(settings, user=args.user, as_json=args.json))


async def _show(settings: Settings, *, user: str | None, as_json: bool) -> int:
    from remediation.adapters.sqlite_db import SqliteDatabase
    from remediation.adapters.sqlite_journal import SqliteJournal
    from remediation.domain.requests import normalise_user
    from remediation.entrypoints.report import case_details, cases_as_json, cases_as_table

    database = SqliteDatabase(settings.remediation_db)
    try:
        cases = await SqliteJournal(database).list_cases(
            normalise_user(user) if user else None)
    finally:
        database.close()
    if as_json:
        print(cases_as_json(cases))
    elif user:
        print("\n\n".join(case_details(case) for case in cases) or f"no cases for {user}")
    else:
        print(cases_as_table(cases) if cases else "no cases")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    settings: Settings = args.settings.require_tenant()
    from remediation.entrypoints.doctor import run_doctor

    return asyncio.run(run_doctor(settings, sys.stdout))


def _sandbox(args: argparse.Namespace) -> int:
    from remediation.sandbox import demo_tenant
    from remediation.sandbox.server import serve_forever

    tenant = demo_tenant()
    if os.environ.get("SANDBOX_TOKEN"):
        tenant.token = os.environ["SANDBOX_TOKEN"]
    url = f"http://127.0.0.1:{args.port}"
    print(f"sandbox tenant serving on {url}; point the worker at it with:\n"
          f"  export AZURE_TENANT_ID={tenant.tenant_id} GRAPH_ENDPOINT={url} "
          f"EXCHANGE_ENDPOINT={url}\n  and SANDBOX_TOKEN set to the same value as here "
          "(default: see README), or, for `remediation doctor` to read the permissions from "
          f"the token, to what {url}/_sandbox/token answers", file=sys.stderr)
    asyncio.run(serve_forever(tenant, "127.0.0.1", args.port))
    return 0
