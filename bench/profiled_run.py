"""``python -m remediation run`` with cProfile switched on by SIGUSR1 and off (its stats
written to PROFILE_OUT) by SIGUSR2: the bench profiles the cases only, not start-up."""

import cProfile
import os
import signal
import sys
import time
from types import FrameType

from remediation.entrypoints.cli import main

_profile = cProfile.Profile(time.process_time)  # CPU seconds, not wall


_threads: dict[str, float] = {}


def _thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each thread of this process, by thread id (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        seconds[task] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def _on(signum: int, frame: FrameType | None) -> None:
    _threads.update(_thread_cpu())
    _profile.enable()


def _off(signum: int, frame: FrameType | None) -> None:
    _profile.disable()
    _profile.dump_stats(os.environ["PROFILE_OUT"])
    main_thread = str(os.getpid())
    spent = {task: cpu - _threads.get(task, 0.0) for task, cpu in _thread_cpu().items()}
    others = sum(cpu for task, cpu in spent.items() if task != main_thread)
    print(f"profiled_run: CPU s main thread {spent.get(main_thread, 0.0):.2f}, other threads "
          f"{others:.2f}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _on)
    signal.signal(signal.SIGUSR2, _off)
    sys.argv = ["remediation", "run"]
    raise SystemExit(main())
