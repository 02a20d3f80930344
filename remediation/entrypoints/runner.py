"""``remediation run``: the local runtime (``adapters.local_worker`` over the local queue,
the alert poll, the sweeper) and what it tells the person who started it.

While it runs, a progress line goes to the log (stderr, as every line the worker logs), at
most every ``PROGRESS_EVERY`` and only when something changed, else every
``PROGRESS_HEARTBEAT``: ``waiting: 3 cases open, 5 checks scheduled, next at 11:42:10 UTC
(in 59 min)`` (``run_report``). At its end a summary goes to stdout, the command's answer:
how it ended, the cases this run worked on per state, their escalations by kind, what is
still open and when its next check is due.

Stopping: Ctrl-C (SIGINT) or SIGTERM lets the messages in hand finish, takes no new one,
and prints the summary; a second one stops at once (what it cut short is resumed from the
journal by the next run, as after a crash: the message's lock runs out and it comes again).

Exit status (README, "Command line"): ``run --until-idle`` 0 when it went idle with every
case final and every source of its poll read, 1 when a case is still open or a source
failed, 3 while the kill switch is on (``kill_switch``: the work it holds waits), 128 + the
signal's number when a signal stopped it first (130 for Ctrl-C, 143 for
SIGTERM: not idle; the queue keeps the rest); ``run`` 0 when a signal stopped it, its one
way to end. Configuration and database errors stay ``cli``'s (2).
"""

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

from remediation.adapters.clock import SystemClock
from remediation.adapters.local_worker import LocalWorker
from remediation.adapters.sqlite_queue import SqliteQueue
from remediation.bootstrap import Application, bootstrap
from remediation.config import Settings
from remediation.domain.cases import Case
from remediation.domain.display import shown
from remediation.domain.errors import InvalidRequest
from remediation.entrypoints.helper_processes import (
    HELPER_READY,
    STOP_NOW,
    HelperProcesses,
    parent_gone,
    share,
    tell_run,
)
from remediation.entrypoints.kill_switch import paused_exit
from remediation.entrypoints.run_report import (
    PROGRESS_EVERY,
    PROGRESS_HEARTBEAT,
    Ending,
    Progress,
    Snapshot,
    summary,
)
from remediation.logsafety import redact
from remediation.service.intake import IntakeReport
from remediation.service.ports import Clock

log = logging.getLogger("remediation.run")
T = TypeVar("T")

EXIT_IDLE, EXIT_OPEN = 0, 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
FAILED_SOURCE_LIMIT = 1000  # characters of a poll source's failure reason on stderr
CHECK_KIND = "verify"  # the application property of a verification check (local_queue)


def run_local(settings: Settings, *, until_idle: bool, out: TextIO | None = None,
              helper: bool = False, verbose: bool = False) -> int:
    """``remediation run [--until-idle]`` with ``settings``: the exit status. ``helper``:
    ``run --helper``, one of another run's processes (``helper_processes``)."""
    return asyncio.run(run_worker(settings, until_idle=until_idle, out=out, helper=helper,
                                  verbose=verbose))


async def run_worker(settings: Settings, *, until_idle: bool, out: TextIO | None = None,
                     helper: bool = False, verbose: bool = False) -> int:
    """The same, in a running event loop (the summary to ``out``, default stdout)."""
    app = bootstrap(settings)
    try:
        run = LocalRun(app, out=out or sys.stdout, verbose=verbose)
        return await (run.as_helper() if helper else run.run(until_idle=until_idle))
    finally:
        await app.aclose()


class LocalRun:
    """One ``remediation run``: the work, its progress line, its summary, its signals."""

    def __init__(self, app: Application, *, out: TextIO, clock: Clock | None = None,
                 progress: Callable[[float], Progress] | None = None,
                 worker_poll: float = 0.5, verbose: bool = False) -> None:
        """``progress``: builds the pacing of the progress line from the start time
        (default: every PROGRESS_EVERY, heartbeat PROGRESS_HEARTBEAT); ``worker_poll``:
        seconds between two looks at an empty queue; ``verbose``: its helpers log at debug
        level too."""
        if app.queue is None:
            raise InvalidRequest("`remediation run` works the local queue; with "
                                 "ServiceBusConnection__fullyQualifiedNamespace set, the "
                                 "Functions app works the Service Bus queues")
        self._app = app
        self._queue: SqliteQueue = app.queue
        self._out = out
        self._clock = clock or SystemClock()
        self._progress = progress or (lambda started: Progress(
            started, every=PROGRESS_EVERY, heartbeat=PROGRESS_HEARTBEAT))
        self._worker_poll = worker_poll
        self._stop = asyncio.Event()
        self._signal: signal.Signals | None = None
        self._worked_on: dict[str, None] = {}  # case ids, in the order first seen
        self._paused = False  # idle because the kill switch holds the work
        self._helpers: HelperProcesses | None = None
        self._verbose = verbose
        self._is_helper = False

    async def run(self, *, until_idle: bool) -> int:
        processes = self._app.settings.worker_processes
        if processes > 1:
            self._helpers = HelperProcesses(processes - 1, self._saw_id, verbose=self._verbose)
            await self._helpers.start()
        work = asyncio.create_task(self._until_idle() if until_idle else self._forever())
        try:
            report = await self._signalled(work, self._report_progress())
        finally:
            if self._helpers is not None:
                await self._helpers.stop()
        if self._signal is not None:  # run's way to end; run --until-idle's cut short
            status = 128 + self._signal if until_idle else EXIT_IDLE
        else:
            status = await self._idle_status(report) if until_idle else EXIT_IDLE
        await self._print_summary(until_idle)
        return status

    # -- the work -----------------------------------------------------------------------------

    async def _until_idle(self) -> IntakeReport:
        """Poll once and work the queue meanwhile (the cases the first alert pages name
        start while later pages are read: the poll queues each request as it reads its
        alert), until the poll is done and nothing is queued or scheduled; then let the
        sweeper resume what nothing moves (a bounded number of rounds)."""
        polled = asyncio.Event()
        worker = asyncio.create_task(self._worker().run(until_idle=True, stop=self._stop,
                                                        fed=polled))
        try:
            report = await self._app.intake.poll()
        except BaseException:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            raise
        finally:
            polled.set()
        self._worked_on.update(dict.fromkeys(report.stalled))
        await worker
        sweeper = self._app.intake.sweeper
        for _ in range(0 if sweeper is None else sweeper.max_resumes + 1):
            if self._stop.is_set() or sweeper is None:
                break
            swept = await sweeper.sweep(idle=True)
            self._worked_on.update(dict.fromkeys(swept.escalated))
            if not swept.resumed:
                break
            await self._worker().run(until_idle=True, stop=self._stop)
        return report

    async def _forever(self) -> None:
        """Poll alerts and the Restricted users list every ALERT_POLL_INTERVAL and work the
        queue, until a signal stops it."""
        poller = asyncio.create_task(self._poll_until_stopped())
        try:
            await self._worker().run(stop=self._stop)
        except asyncio.CancelledError:
            poller.cancel()
            raise
        finally:
            self._stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    async def _poll_until_stopped(self) -> None:
        interval = self._app.settings.alert_poll_interval.total_seconds()
        while not self._stop.is_set():
            try:
                report = await self._app.intake.poll()
                self._worked_on.update(dict.fromkeys(report.stalled))
            except Exception:  # a failed poll must not stop the worker; the next overlaps
                log.exception("alert poll failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval)

    async def as_helper(self) -> int:
        """``run --helper``: work the queue with this process's share of
        WORKER_CONCURRENCY until a signal, or until the ``run`` that started it exits
        (``helper_processes``); each case worked on, its id on stdout. Exit status 0."""
        self._is_helper = True
        settings = self._app.settings
        log.info("%s pid %d: working the queue, %d message(s) at once", HELPER_READY,
                 os.getpid(), share(settings.worker_concurrency, settings.worker_processes))
        await self._signalled(asyncio.create_task(self._worker().run(stop=self._stop)),
                              parent_gone(self._stop))
        return EXIT_IDLE

    async def _signalled(self, work: "asyncio.Task[T]",
                         alongside: Coroutine[Any, Any, None]) -> T | None:
        """Await ``work`` with Ctrl-C and SIGTERM taken (``_stopping``) and ``alongside``
        running until it ends; None when a second signal cancelled it."""
        loop = asyncio.get_running_loop()
        handled = _handle_signals(loop, self._stopping, work,
                                  (*STOP_SIGNALS, STOP_NOW) if self._is_helper else STOP_SIGNALS)
        companion = asyncio.create_task(alongside)
        try:
            return await work
        except asyncio.CancelledError:
            if self._signal is None:  # cancelled from outside, not by a second signal
                raise
            return None
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)
            companion.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await companion

    def _worker(self) -> LocalWorker:
        settings = self._app.settings
        return self._app.worker(
            concurrency=share(settings.worker_concurrency, settings.worker_processes),
            poll_interval=self._worker_poll, on_case=self._saw)

    def _saw(self, case: Case) -> None:
        if self._is_helper:
            tell_run(self._out, case.case_id)
        else:
            self._saw_id(case.case_id)

    def _saw_id(self, case_id: str) -> None:
        self._worked_on[case_id] = None

    def _stopping(self, signum: signal.Signals, work: "asyncio.Task[object]") -> None:
        name = _signal_name(signum)
        if self._helpers is not None:
            self._helpers.signal_stop(at_once=self._signal is not None)
        if signum == STOP_NOW and self._is_helper:  # the run that started it stops at once
            self._signal = self._signal or signum
            log.warning("run --helper: the run that started it stops at once: stopping now")
            work.cancel()
            return
        if self._signal is None:
            self._signal = signum
            self._stop.set()
            log.warning("%s: stopping once the messages in hand are done (%s again stops at "
                        "once; the next run resumes what is cut short)", name, name)
            return
        log.warning("%s again: stopping now", name)
        work.cancel()

    # -- what it says -------------------------------------------------------------------------

    async def _report_progress(self) -> None:
        progress = self._progress(time.monotonic())
        while True:
            await asyncio.sleep(progress.every)
            try:
                snapshot = await self._snapshot()
            except Exception as error:  # a busy database: the next tick tries again
                log.debug("progress: %s", type(error).__name__)
                continue
            line = progress.line(snapshot, time.monotonic(), self._clock.now())
            if line is not None:
                log.info("%s", line)

    async def _snapshot(self, open_cases: int | None = None) -> Snapshot:
        settings = self._app.settings
        backlog = await self._queue.backlog((settings.remediation_queue,
                                             settings.verification_queue))
        if open_cases is None:
            open_cases = len(await self._app.journal.working_cases())
        checks = backlog.scheduled.get(CHECK_KIND, 0)
        return Snapshot(
            open_cases=open_cases, ready=backlog.ready, in_hand=backlog.locked, checks=checks,
            other=sum(backlog.scheduled.values()) - checks,
            next_at=None if backlog.next_at is None else _utc(backlog.next_at))

    async def _idle_status(self, report: IntakeReport | None) -> int:
        """Gone idle: 3 (``kill_switch.EXIT_PAUSED``, its PAUSED line on stderr) while the
        kill switch is on, else 0 when every case is final and every source of the poll
        was read, 1 otherwise (each open case logged, each failed source on stderr)."""
        if (paused := await paused_exit(self._app)) is not None:  # the work waits
            self._paused = True
            return paused
        still_open = await self._app.journal.working_cases()
        for case in still_open:
            log.warning("case %s for %s is still %s", case.case_id, case.user,
                        case.state.value)
        failed = {} if report is None else report.failed_sources
        for source, reason in failed.items():
            # stderr does not pass the logging filter: the reason is masked here.
            print(f"remediation: source {source.label} failed in this poll: "
                  f"{shown(redact(reason), FAILED_SOURCE_LIMIT)}", file=sys.stderr)
        return EXIT_OPEN if still_open or failed else EXIT_IDLE

    async def _print_summary(self, until_idle: bool) -> None:
        journal = self._app.journal
        worked_on = [case for case in [await journal.get_case(case_id)
                                       for case_id in self._worked_on] if case is not None]
        still_open = await journal.working_cases()
        snapshot = await self._snapshot(open_cases=len(still_open))
        ending = Ending(until_idle, None if self._signal is None else _signal_name(self._signal),
                        paused=self._paused)
        lines = summary(ending, worked_on, still_open, snapshot, self._clock.now())
        print("\n".join(lines), file=self._out, flush=True)


def _handle_signals(loop: asyncio.AbstractEventLoop,
                    stopping: Callable[[signal.Signals, "asyncio.Task[object]"], None],
                    work: "asyncio.Task[object]",
                    signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> list[signal.Signals]:
    """``signals`` (Ctrl-C and SIGTERM; a helper's STOP_NOW too) call ``stopping``, where the
    loop can take them (its main thread, not Windows); the signals taken."""
    handled = []
    for signum in dict.fromkeys(signals):
        try:
            loop.add_signal_handler(signum, stopping, signum, work)
        except (NotImplementedError, RuntimeError):  # Ctrl-C stays KeyboardInterrupt there
            continue
        handled.append(signum)
    return handled


def _signal_name(signum: signal.Signals) -> str:
    return "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
