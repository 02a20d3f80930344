"""Bounded retries inside one call to Graph or Exchange, with a time budget.

Both services answer throttling with ``Retry-After``. Within one call we honour it only while
the total waiting stays inside the budget (``max_wait``): a service asking for longer makes the
call fail at once with a TransientError carrying the delay it asked for, and the queue retries
the whole request later. The SDKs' own retry loops would sleep for anything up to 180 s
(kiota's RetryHandler, ``RetryHandlerOption.MAX_DELAY``) or without a cap (azure-core's
``AsyncRetryPolicy``), which an Azure Functions invocation cannot afford.

A change whose request may have reached the service is never re-sent here: the adapters
raise OutcomeUnknown for it, which ends the call at once (the step decides at its next
attempt).
"""

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from remediation.adapters.throttle_gate import ThrottleGate
from remediation.domain.errors import MAX_RETRY_AFTER, OutcomeUnknown, TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Seconds one call may spend waiting between its attempts, in all. With HTTP_TIMEOUT 30 s and
# 4 attempts, one call ends within about 2.5 minutes, well inside the 10-minute
# functionTimeout of host.json.
DEFAULT_MAX_WAIT = 30.0


@dataclass(frozen=True)
class RetryBudget:
    """``retries`` after the first attempt; exponential delays from ``base_delay`` capped at
    ``max_delay``; at most ``max_wait`` seconds of waiting in one call."""

    retries: int
    max_wait: float = DEFAULT_MAX_WAIT
    base_delay: float = 0.5
    max_delay: float = 10.0

    def delay(self, retry: int, retry_after: float | None, waited: float) -> float | None:
        """Seconds to wait before retry number ``retry`` (1-based), or None to give up."""
        if retry > self.retries:
            return None
        backoff = min(self.base_delay * 2 ** (retry - 1), self.max_delay)
        delay = max(backoff, retry_after or 0.0)
        if retry_after is not None and retry_after > self.max_wait:
            return None
        return delay if waited + delay <= self.max_wait else None


async def with_retries(budget: RetryBudget, what: str, attempt: Callable[[], Awaitable[T]],
                       spent: list[float] | None = None, gate: ThrottleGate | None = None) -> T:
    """Run ``attempt`` until it succeeds, retrying TransientError within ``budget``;
    OutcomeUnknown (a change that may have been carried out) is raised at once, never retried.

    ``spent`` (a one-item list, seconds) carries the waiting already done by earlier
    requests of the same call (the pages of one listing), so the budget holds for the whole
    call. ``gate``: the service's ``ThrottleGate``, waited for before every attempt (inside
    the budget) and told of every ``Retry-After``. Raises the last TransientError (its reason
    says how many attempts were made; its ``retry_after`` keeps the delay the service asked
    for) or any other error at once.
    """
    spent = spent if spent is not None else [0.0]
    retry = 0
    while True:
        try:
            if gate is not None:
                spent[0] += await gate.wait(what, budget.max_wait - spent[0], asyncio.sleep)
            return await attempt()
        except OutcomeUnknown as error:
            if gate is not None:
                gate.saw(error)  # a 503 with Retry-After on a change still holds the others
            raise  # a change that may have been carried out is never sent twice in one call
        except TransientError as error:
            if gate is not None:
                gate.saw(error)
            retry += 1
            delay = budget.delay(retry, error.retry_after, spent[0])
            if delay is None:
                raise _gave_up(error, retry, budget) from None
            log.info("%s: %s; retry %d of %d in %.1f s", what, error.reason, retry,
                     budget.retries, delay)
            await asyncio.sleep(delay)
            spent[0] += delay


def _gave_up(error: TransientError, attempts: int, budget: RetryBudget) -> TransientError:
    reason = error.reason
    if error.retry_after is not None and error.retry_after > budget.max_wait:
        reason += (f" (the service asked to wait {error.retry_after:g} s, more than the "
                   f"{budget.max_wait:g} s one call may wait)")
    elif attempts > 1:
        reason += f" ({attempts} attempts)"
    return TransientError(reason, retry_after=error.retry_after)




def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds (at most MAX_RETRY_AFTER), from delta-seconds or an HTTP
    date (RFC 9110 §10.2.3); None when absent or unreadable."""
    seconds = _retry_after(value, now)
    return min(seconds, MAX_RETRY_AFTER) if seconds is not None else None


def _retry_after(value: str | None, now: datetime | None) -> float | None:
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
