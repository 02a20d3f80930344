"""The two kinds of failure the workflow distinguishes, and invalid input.

Adapters translate their SDK's exceptions into these at the boundary, so the core decides
what to do (retry, escalate, reject) without knowing which service failed.
"""

from remediation.domain.escalation_kinds import EscalationKind


class RemediationError(Exception):
    """Base class; ``reason`` is safe to journal and show to an operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# A Retry-After beyond this is taken as this (seconds): the value feeds a scheduled retry,
# and a service asking for days means "not now", not "in 70 years".
MAX_RETRY_AFTER = 24 * 3600.0


class TransientError(RemediationError):
    """Worth retrying later: throttling, 5xx, timeouts, connection failures.

    ``retry_after`` (seconds) is the delay the service asked for when it said so
    (``Retry-After``), so the retry scheduled later is never sooner than that.
    """

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class OutcomeUnknown(TransientError):
    """A change (a Graph write, an Exchange cmdlet that changes something) whose request may
    have reached the service failed without a definitive answer: a timeout or a connection
    lost after sending, a 5xx. It may have been carried out. Never re-sent inside the call
    (``retrying.with_retries``); the step decides at its next attempt, from what it reads
    and what it journaled (retried later like any TransientError)."""


class PermanentError(RemediationError):
    """Retrying cannot help (403, unknown user, unblock limit): a human must act.

    ``kind``: the escalation it leads to (``REFUSED`` unless the raiser knows better: an
    unknown user, a guardrail, the circuit breaker...)."""

    def __init__(self, reason: str, kind: EscalationKind = EscalationKind.REFUSED) -> None:
        super().__init__(reason)
        self.kind = kind


class InvalidRequest(ValueError):
    """A request or message that cannot be accepted; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConcurrentUpdate(RemediationError):
    """Another writer changed the case since it was read (optimistic concurrency)."""


class CaseBusy(TransientError):
    """Another worker holds the case right now (``service.case_lease``): this delivery leaves
    the case to it, records no failure and uses no attempt; its message is kept (a copy
    asks again later), so the case still moves on if that worker dies."""
