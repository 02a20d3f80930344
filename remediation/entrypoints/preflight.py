"""The preflight inside the deployment: ``remediation doctor``'s checks, run by the Function
App itself, under its own identity and with its own app settings.

Two doors, both in ``entrypoints/functions.py``:

- ``GET /api/preflight`` (a function key): ``answer`` gives ``(200, the document)`` whatever
  the verdict, the document being ``doctor --json``'s (``doctor.document``: ``ready`` says it);
  ``(500, {"error": "the preflight could not run: <one line>"})`` when the preflight itself
  failed (a bad setting, a crash): one line, secrets masked, never a traceback.
- At start-up (a timer with ``runOnStartup``): ``log_at_start`` logs the table, a record per
  finding, WARNING for any status but ``ok`` and ``info``. The host starts on every restart,
  scale-out and wake-up from idle (Microsoft Learn, "Timer trigger for Azure Functions",
  ``runOnStartup``: "the runtime starts when the function app wakes up after going idle due to
  inactivity, when the function app restarts due to function changes, and when the function app
  scales out"); each run costs some twenty calls to Graph, Exchange, the queues and the
  journal. So one start per ``STARTUP_LOG_INTERVAL`` runs it, whichever instance takes the
  journal's lease first (``Journal.claim_step`` on ``STARTUP_MARKER``); the others log one
  line saying so.
"""

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from remediation.config import ConfigError, Settings
from remediation.logsafety import redact

if TYPE_CHECKING:
    from remediation.bootstrap import Application
    from remediation.service.doctor import Report
    from remediation.service.ports import Journal

log = logging.getLogger(__name__)

# A lease in the journal, under a case id no case can have (case ids are dated): shared by
# every instance of the app, it keeps a start-up run to one per interval.
STARTUP_MARKER = ("preflight", "startup-log")
STARTUP_LOG_INTERVAL = timedelta(hours=1)
_LINE_LIMIT = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

ApplicationFactory = Callable[[], Awaitable["Application"]]


async def answer(application: ApplicationFactory) -> tuple[int, str]:
    """The HTTP answer: (status, JSON body). The settings are the app's own (``application``
    builds the process's application from them on first use, checking them)."""
    from remediation.entrypoints.doctor import diagnose, report_json, summary

    try:
        settings = (await application()).settings
        report = await diagnose(settings)
    except Exception as error:  # the doctor itself failed: one line, never a traceback
        line = failure(error)
        log.error("preflight: %s", line)
        return 500, json.dumps({"error": line})
    log.log(logging.INFO if report.ready else logging.WARNING, "preflight requested: %s",
            summary(report))
    return 200, report_json(report, settings)


async def log_at_start(application: ApplicationFactory) -> None:
    """The table into the logs, once per ``STARTUP_LOG_INTERVAL`` across the app's starts.
    Never raises: a preflight that cannot run says so in one ERROR line."""
    from remediation.entrypoints.doctor import diagnose

    try:
        app = await application()
        if not await _first_start_in_interval(app.journal):
            log.info("preflight at start: skipped, a start of this app logged it less than "
                     "%s ago; GET /api/preflight runs it now",
                     _hours(STARTUP_LOG_INTERVAL))
            return
        report = await diagnose(app.settings)
    except Exception as error:
        log.error("preflight at start: %s", failure(error))
        return
    log_report(report, app.settings)


def log_report(report: "Report", settings: Settings) -> None:
    """A record for the table's head, one per finding (the table's words on one line: status,
    check, result, fix), and one for its verdict; WARNING for any status but ``ok`` and
    ``info`` (FAIL, UNVERIFIED, and whatever else asks for attention), and for a verdict of
    not ready. ``preflight_check`` and ``preflight_status`` ride along on each finding's
    record (custom dimensions in Application Insights)."""
    from remediation.entrypoints.doctor import document
    from remediation.service.doctor import Status

    quiet = {Status.OK.value, Status.INFO.value}
    shown = document(report, settings)
    log.info("preflight at start: tenant %s, Graph %s, Exchange %s: %d finding(s)",
             shown["tenant_id"], shown["graph_endpoint"], shown["exchange_endpoint"],
             len(shown["findings"]))
    for item in shown["findings"]:
        text = f"preflight: {item['status']} {item['check']}"
        text += f": {item['result']}" if item["result"] else ""
        text += f"; fix: {item['fix']}" if item["fix"] else ""
        log.log(logging.INFO if item["status"] in quiet else logging.WARNING, "%s", text,
                extra={"preflight_check": item["check"], "preflight_status": item["status"]})
    log.log(logging.INFO if report.ready else logging.WARNING, "preflight at start: %s",
            shown["summary"])


def failure(error: BaseException) -> str:
    """Why the preflight could not run, in one line (``described``)."""
    return f"the preflight could not run: {described(error)}"


def described(error: BaseException) -> str:
    """An error in one line: a setting named as the command line names it, any other error
    by its kind and first line; secrets masked, at most ``_LINE_LIMIT`` characters."""
    if isinstance(error, ConfigError):
        why = f"configuration error: {error}"
    else:
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        why = f"{type(error).__name__}: {first}" if first else type(error).__name__
    line = " ".join(redact(_CONTROL.sub(" ", why)).split())
    return line if len(line) <= _LINE_LIMIT else line[:_LINE_LIMIT - 3] + "..."


async def _first_start_in_interval(journal: "Journal") -> bool:
    """Take the start-up lease for ``STARTUP_LOG_INTERVAL`` (a new holder each time, so only
    its expiry lets the next run through). A journal that cannot take it does not hide the
    table: the run goes ahead, and its journal row says what is wrong."""
    try:
        return await journal.claim_step(*STARTUP_MARKER, uuid.uuid4().hex, datetime.now(UTC),
                                        STARTUP_LOG_INTERVAL)
    except Exception as error:
        log.info("preflight at start: the journal did not take the start-up marker (%s); "
                 "running it anyway", described(error))
        return True


def _hours(interval: timedelta) -> str:
    hours = interval.total_seconds() / 3600
    return f"{hours:g} hour" + ("" if hours == 1 else "s")
