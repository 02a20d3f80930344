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
"""

import logging
import time
from collections.abc import Awaitable, Callable

from remediation.domain.errors import TransientError

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

    def remaining(self) -> float:
        """Seconds until the gate opens; 0.0 when it is open."""
        return max(self._until - self._clock(), 0.0)

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
