"""remediation.concurrently: reads side by side, failing as the first of them would alone."""

import asyncio

import pytest

from remediation.concurrently import all_of, each
from remediation.domain.errors import PermanentError, TransientError


async def test_answers_come_back_in_the_order_asked() -> None:
    async def answer(value: int, wait: float) -> int:
        await asyncio.sleep(wait)
        return value

    assert await all_of([answer(1, 0.02), answer(2, 0.0), answer(3, 0.01)]) == [1, 2, 3]
    assert await each(answer(1, 0), answer(2, 0)) == [1, 2]
    assert await all_of([]) == []


async def test_the_first_failure_is_raised_as_it_is_and_cancels_the_rest() -> None:
    finished: list[str] = []
    cancelled: list[str] = []

    async def slow() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise
        finished.append("slow")
        return "slow"

    async def refused() -> str:
        raise PermanentError("refused")

    with pytest.raises(PermanentError) as raised:  # never an ExceptionGroup
        await all_of([slow(), refused()])
    assert raised.value.reason == "refused"
    assert cancelled == ["slow"] and finished == []  # nothing left running


async def test_of_two_failures_the_one_asked_first_is_raised() -> None:
    async def fails(error: Exception) -> None:
        raise error

    with pytest.raises(TransientError):
        await all_of([fails(TransientError("later")), fails(PermanentError("refused"))])
