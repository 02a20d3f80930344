"""``remediation report CASE_ID [--html | --json]`` and ``remediation report [--since
DURATION|TIME] [--state STATE] [--html | --json]`` (issue 17, point 4).

The first is one case's record for whoever asks (its owner, a manager, an auditor, a
ticket): what started it, what was found, every change with its time and how to undo it,
what was verified, what is left for a person and why, the decisions, pauses and undos, and
the Defender alerts' final state (``service.case_report``). The second counts the cases of
a period (``service.period_report``). Both read the journal only, as ``status`` does: the
Table Storage journal when one is configured, else the local SQLite file, opened read-only.
"""

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from remediation.domain.errors import InvalidRequest

if TYPE_CHECKING:
    from remediation.config import Settings
    from remediation.domain.cases import Case, CaseState
    from remediation.service.ports import Journal

Command = Callable[..., argparse.ArgumentParser]


def add_command(commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
                command: Command) -> None:
    """``report`` on the command line (``command`` is cli's ``_command``)."""
    report = command(
        commands, "report", "one case's record for its owner, an auditor or a ticket: what "
        "was found, changed (and how to undo it), verified and left for a person; or, "
        "without CASE_ID, the cases of a period counted",
        "remediation report 20260105-0badcafe",
        "remediation report 20260105-0badcafe --html > case.html   # a page to print",
        "remediation report --since 7d --state escalated,verified --json")
    report.add_argument("case_id", nargs="?", metavar="CASE_ID",
                        help="the case id shown by `status`; without it, a period report")
    shape = report.add_mutually_exclusive_group()
    shape.add_argument("--html", action="store_true",
                       help="a self-contained HTML page (no external resource; prints well)")
    shape.add_argument("--json", action="store_true",
                       help="machine-readable, text exact")
    report.add_argument("--since", metavar="DURATION|TIME",
                        help="period report: cases created in the last DURATION (30m, 7d) or "
                             "since an ISO 8601 time")
    report.add_argument("--state", action="append", default=[], dest="states",
                        metavar="STATE", help="period report: only cases in this state "
                        "(repeatable or a comma list; 'open' is every state not final)")
    report.set_defaults(command=_report)


def _report(args: argparse.Namespace) -> int:
    from remediation.entrypoints.cli import _since, _states

    shape = "html" if args.html else "json" if args.json else "markdown"
    if args.case_id is not None:
        if args.since or args.states:
            raise InvalidRequest("report: a CASE_ID, or --since/--state for a period, not "
                                 "both")
        return asyncio.run(write_case_report(args.settings, args.case_id.strip(), shape,
                                             sys.stdout))
    return asyncio.run(write_period_report(args.settings, _since(args.since),
                                           _states(args.states), shape, sys.stdout))


async def write_case_report(settings: "Settings", case_id: str, shape: str,
                            out: TextIO) -> int:
    """Print case ``case_id``'s report as ``shape`` (markdown, html, json). InvalidRequest
    (exit 2) for a case the journal does not hold."""
    from remediation.entrypoints.case_report_render import as_json, html_page, markdown
    from remediation.service.case_report import case_report

    async with reading_journal(settings) as journal:
        case = await journal.get_case(case_id)
    if case is None:
        raise InvalidRequest(f"no case {case_id[:80]!r} in the journal")
    report = case_report(case, datetime.now(UTC)).with_fact("Integrity", integrity(case))
    render = {"html": html_page, "json": as_json}.get(shape, markdown)
    out.write(render(report).rstrip("\n") + "\n")
    return 0


async def write_period_report(settings: "Settings", since: datetime | None,
                              states: "frozenset[CaseState] | None", shape: str,
                              out: TextIO) -> int:
    """Print the report of the cases created since ``since`` in ``states``."""
    from remediation.entrypoints.period_report_render import (
        period_html,
        period_json,
        period_markdown,
    )
    from remediation.service.period_report import period_report

    async with reading_journal(settings) as journal:
        report = await period_report(journal, since=since, states=states,
                                     now=datetime.now(UTC))
    render = {"html": period_html, "json": period_json}.get(shape, period_markdown)
    out.write(render(report).rstrip("\n") + "\n")
    return 0


@asynccontextmanager
async def reading_journal(settings: "Settings") -> AsyncIterator["Journal"]:
    """The deployment's journal to read, as ``status`` reads it: Table Storage when
    configured, else the local SQLite file opened read-only (a missing file is refused,
    never created)."""
    if settings.journal_table_endpoint or settings.journal_table_connection_string:
        from remediation.bootstrap import bootstrap

        app = bootstrap(settings)
        try:
            yield app.journal
        finally:
            await app.aclose()
        return
    from remediation.adapters.sqlite_db import SqliteDatabase
    from remediation.adapters.sqlite_journal import SqliteJournal

    path = settings.remediation_db
    if not path.is_file():  # a mistyped path must not quietly read an empty, new journal
        raise InvalidRequest(f"no such journal: {path} (REMEDIATION_DB): nothing has been "
                             "queued or run with it here; check the path")
    database = SqliteDatabase(path, read_only=True)
    try:
        yield SqliteJournal(database)
    finally:
        database.close()


def integrity(case: "Case") -> str:
    """The record's hash chain (domain/journal_chain.py) in one line: intact, or each edit
    and deletion it shows, then what could not be checked (steps written before the chain)."""
    from remediation.domain.journal_chain import check_chain

    check = check_chain(case)
    verdict = ("TAMPERED: " + "; ".join(check.problems) if check.problems
               else "intact: every chained step is as it was written")
    return verdict + ("; " + "; ".join(check.notes) if check.notes else "")
