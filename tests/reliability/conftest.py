"""Time compressed for the reliability suite: the waits inside one call, a tenth as long."""

from dataclasses import replace

import pytest

from remediation.adapters.retrying import RetryBudget

SCALE = 0.1


@pytest.fixture
def compressed_call_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Graph and Exchange clients' own back-off between the attempts of one call starts
    at 0.05 s instead of 0.5 s (and is capped at 1 s instead of 10 s); every decision to
    retry or give up is the product's, and a Retry-After the sandbox sends is still never
    cut short. The scenarios send Retry-After compressed the same way (0.1 s for 1 s)."""
    delay = RetryBudget.delay

    def compressed(self: RetryBudget, retry: int, retry_after: float | None,
                   waited: float) -> float | None:
        return delay(replace(self, base_delay=self.base_delay * SCALE,
                             max_delay=self.max_delay * SCALE), retry, retry_after, waited)

    monkeypatch.setattr(RetryBudget, "delay", compressed)
