"""``WORKER_PROCESSES`` above 1: the other processes of one ``remediation run``.

A Python process works on one core (the GIL), and a burst of cases is CPU-bound in it long
before the tenant is (docs/BENCHMARKS.md): ``run`` then starts ``WORKER_PROCESSES - 1``
helpers, ``remediation run --helper``, each working the same local queue with its share of
``WORKER_CONCURRENCY``. It is what the Functions host does with more language worker
processes, or Azure with more instances: each process has its own Graph and Exchange
clients, a 429's Retry-After holds them all (``ThrottleGate.share``: a file beside the
database), and everything that must hold across processes already holds across instances
(the queue's locks and sessions, the journal's claim on a case, the circuit breaker's
reservation: one SQLite write transaction each).

A helper takes no part in the poll, the sweeper, the progress line or the summary: it works
messages, and writes the id of each case it worked on to its stdout, one a line, for the
summary of the ``run`` that started it. It runs in a session of its own, so a terminal's
Ctrl-C reaches ``run`` alone, which passes each stop on: the first by closing the helpers'
stdin (finish the messages in hand), the second as STOP_NOW (stop at once). A helper stops
so too, as at a first signal, when ``run`` exited, however it exited: no helper outlives it.
A service manager's SIGTERM to every process of the unit is each one's first stop.
"""

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

log = logging.getLogger("remediation.run")

HELPER_FLAG = "--helper"
HELPER_READY = "run --helper"  # how a helper's log line saying it works the queue begins
STOP_WAIT = 60.0  # seconds a helper may take to finish its messages once told to stop
# What run sends its helpers on its second stop: they stop at once (Windows has no SIGUSR1).
STOP_NOW: signal.Signals = getattr(signal, "SIGUSR1", signal.SIGTERM)
# The package root this run imported ``remediation`` from (…/remediation/entrypoints/..).
_ROOT = str(Path(__file__).resolve().parents[2])
# A helper's start: ``-P`` keeps the working directory off sys.path, where ``python -m``
# would put it first (Python docs, "Command line and environment", -P, 3.11+); the root
# is appended, after the paths the run found its packages on, so both run the same code.
_BOOT = ("import sys; sys.path.append(sys.argv.pop(1)); "
         "from remediation.entrypoints.cli import main; raise SystemExit(main())")


class HelperProcesses:
    """``count`` helpers of this ``run``; ``on_case`` is told each case id they worked on."""

    def __init__(self, count: int, on_case: Callable[[str], None], *,
                 verbose: bool = False) -> None:
        self._count = count
        self._on_case = on_case
        self._verbose = verbose
        self._processes: list[asyncio.subprocess.Process] = []
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        args = [*helper_command(), *(["--verbose"] if self._verbose else []), "run",
                HELPER_FLAG]
        for _ in range(self._count):
            process = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                start_new_session=True, env=os.environ.copy())
            self._processes.append(process)
            self._readers.append(asyncio.create_task(self._read(process)))
        log.info("run: %d helper process(es) started (pids %s)", self._count,
                 ", ".join(str(p.pid) for p in self._processes))

    def signal_stop(self, *, at_once: bool) -> None:
        """Pass a stop on: the first closes their stdin (as ``stop``: the messages in hand
        finish), ``at_once`` (run's second) sends STOP_NOW. Not SIGTERM for the first: a
        service manager stopping the unit sends every process its own SIGTERM (systemd's
        default ``KillMode=control-group``, systemd.kill(5)), and a second SIGTERM is a
        helper's "stop at once": its messages in hand were cut short."""
        for process in self._processes:
            if not at_once:
                if process.stdin is not None and not process.stdin.is_closing():
                    process.stdin.close()
            elif process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(STOP_NOW)

    async def stop(self) -> None:
        """Stop every helper (its stdin closed: a first stop) and wait for it, at most
        STOP_WAIT seconds, then kill it (its messages come again once their locks run out);
        every case id they wrote is read first."""
        for process in self._processes:
            if process.stdin is not None and not process.stdin.is_closing():
                process.stdin.close()
        for process in self._processes:
            try:
                await asyncio.wait_for(process.wait(), STOP_WAIT)
            except TimeoutError:
                log.warning("run: helper %d still busy after %.0f s: killed", process.pid,
                            STOP_WAIT)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            case_id = line.decode("ascii", "replace").strip()
            if case_id:
                self._on_case(case_id)
        if process.returncode is None:
            await process.wait()
        if process.returncode not in (0, None, -signal.SIGKILL):
            log.warning("run: helper %d exited with status %s; its messages come again to "
                        "the other processes once their locks run out", process.pid,
                        process.returncode)


async def parent_gone(stop: asyncio.Event) -> None:
    """Set ``stop`` when this process's stdin closes (the ``run`` that started it exited)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass
    if not stop.is_set():
        log.info("run --helper: the run that started it is stopping")
        stop.set()


def share(concurrency: int, processes: int) -> int:
    """Each process's share of WORKER_CONCURRENCY (rounded up: at least one)."""
    return max(1, -(-concurrency // processes))


def helper_command() -> list[str]:
    """The command line of a helper, up to its arguments: this Python, never code from the
    working directory (``run`` may start in one others can write: the console script never
    imports from it, and a helper holds the same credentials), the package ``run`` runs."""
    return [sys.executable, "-P", "-c", _BOOT, _ROOT]


def tell_run(out: TextIO, case_id: str) -> None:
    """Write ``case_id`` to ``out``, the pipe the ``run`` that started this helper reads;
    once that run is gone (killed: the pipe is closed, BrokenPipeError), nobody is told, and
    the helper goes on finishing the messages in hand (it was told to stop by its stdin
    closing). ``cli`` treats a BrokenPipeError as the end of the process: let through, it
    cut every other message in hand short, mid-change. Where the pipe was, /dev/null takes
    what is left in the buffer (what Python's signal docs advise for a closed pipe)."""
    try:
        print(case_id, file=out, flush=True)
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
            os.close(devnull)
