"""One throttling gate per service (Graph, Exchange) for all the calls of a process.

Microsoft Graph throttles a client app as a whole: "When a throttling threshold is exceeded,
Microsoft Graph limits any further requests from that client app for some time", answers
``429 Too Many Requests`` with a ``Retry-After``, and "continues to log resource usage while
a client is being throttled", so "backing off requests using the Retry-After delay is the
fastest way to recover" (Microsoft Graph throttling guidance,
https://learn.microsoft.com/graph/throttling, "What happens when throttling occurs?" and
"Best practices to handle throttling"; MicrosoftDocs/microsoft-graph-docs-contrib
``concepts/throttling.md``). Its identity limits are per application and tenant pair
(https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits), the
unit this gate stands for. Exchange Online's admin API answers throttling the same way
(429 or 503 with ``Retry-After``, ``ServerBusyException``).

So when any call is told to wait, the gate closes until that moment and every call of the
same service, new or retrying, waits for it before it is sent: no call leaves sooner than a
``Retry-After`` this process has seen. A call never waits longer than its own budget
(``retrying.RetryBudget.max_wait``): one that would fails at once with a TransientError
carrying the delay left, and the queue retries its whole request later.

The processes of one local runtime (``WORKER_PROCESSES``, or two ``run`` on one database) are
one app to Graph: ``share`` makes their gates one. The moment the gate opens is kept as the
modification time of a file beside the database (wall clock), written when a call is told to
wait and read (``os.stat``) with every check. With two processes and separate gates, each
learnt of a 429 only from its own calls: under Graph-like throttling 85 429s and 58 calls
sent into a running hold, against 23 and 5 with one process (docs/BENCHMARKS.md). In Azure
each instance keeps its own gate: instances share no file. No Retry-After is taken beyond
MAX_RETRY_AFTER: a moment further away than that was not written by one (the wall clock
went back since: a VM restored from a snapshot) and is ignored, then written over.
"""

import logging
import os
import time
from collections.abc import Awaitable, Callable

from remediation.domain.errors import MAX_RETRY_AFTER, TransientError

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class ThrottleGate:
    """Closed until a moment on ``clock`` (seconds, ``time.monotonic`` by default).

    ``service`` names the service in messages ("Graph", "Exchange"). ``closings`` counts the
    answers that closed the gate or held it closed longer (for telemetry and the bench).
    """

    def __init__(self, service: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self.closings = 0
        self._clock = clock
        self._until = 0.0
        self._shared: str | None = None

    def share(self, path: str) -> None:
        """Keep the moment this gate opens in ``path`` too, with every gate sharing it (the
        module's note); the file is created, owner-only, at the first wait asked."""
        self._shared = path

    def remaining(self) -> float:
        """Seconds until the gate opens; 0.0 when it is open."""
        return max(self._until - self._clock(), self._shared_left() or 0.0, 0.0)

    def _shared_left(self) -> float | None:
        """Seconds until the shared moment; None without one (no file: no process was told
        to wait) or when no Retry-After could have set it (the module's note)."""
        if self._shared is None:
            return None
        try:
            left = os.stat(self._shared).st_mtime - time.time()
        except OSError:
            return None
        return left if left <= MAX_RETRY_AFTER + 1.0 else None  # 1 s: the file's rounding

    @property
    def throttled(self) -> bool:
        return self.remaining() > 0.0

    def saw(self, error: TransientError) -> None:
        """A call failed: when the service asked for a delay (``retry_after``, seconds, from
        a 429 or 503), no call may be sent before it has passed."""
        if error.retry_after is None or error.retry_after <= 0:
            return
        until = self._clock() + error.retry_after
        if until > self._until:
            if not self.throttled:
                log.info("%s throttled: every call waits %.1f s", self.service,
                         error.retry_after)
            self._until = until
            self.closings += 1
        if self._shared is not None:
            opens = time.time() + error.retry_after
            try:
                os.close(os.open(self._shared, os.O_WRONLY | os.O_CREAT, 0o600))
                if error.retry_after > (self._shared_left() or 0.0):
                    os.utime(self._shared, (opens, opens))
            except OSError:
                log.debug("%s: the shared throttling gate could not be written", self.service)

    async def wait(self, what: str, may_wait: float, sleep: Sleep) -> float:
        """Wait until the gate is open; return the seconds waited.

        ``may_wait``: what is left of the call's budget (seconds). Raises TransientError
        (``retry_after``: the seconds still asked) without waiting when the gate would stay
        closed longer. The gate may close again meanwhile (another call's 429): it is
        checked again after each wait.
        """
        waited = 0.0
        while (left := self.remaining()) > 0.0:
            if waited + left > may_wait:
                raise TransientError(
                    f"{what}: {self.service} is throttling this app for {left:.1f} s more, "
                    f"longer than this call may still wait ({max(may_wait - waited, 0):.1f} s)",
                    retry_after=left)
            await sleep(left)
            waited += left
        return waited
