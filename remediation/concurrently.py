"""Independent reads run side by side, failing as the first of them would have alone.

``all_of`` runs awaitables in one ``asyncio.TaskGroup``: the first to fail cancels the others
(none is left running after it returns or raises) and its own exception is raised as it is,
never wrapped in an ``ExceptionGroup``, so a caller's ``except PermanentError`` /
``except TransientError`` behave as they did when the reads ran one after another. When
several fail before the others are cancelled, the one listed first is raised (what the
sequential order would have met first).
"""

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


async def all_of(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """The results of ``awaitables``, in their order. Raises the exception of the first
    (by position) that failed; the rest are cancelled and awaited before it is raised."""
    pending = list(awaitables)
    if len(pending) == 1:  # nothing to overlap: no task for it
        return [await pending[0]]
    tasks: list[asyncio.Task[T]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_awaited(item)) for item in pending]
    except BaseExceptionGroup as failed:
        raise _first(tasks, failed) from None
    return [task.result() for task in tasks]


async def each(*awaitables: Awaitable[Any]) -> list[Any]:
    """``all_of`` for awaitables of different types (the caller unpacks the answers)."""
    return await all_of(list(awaitables))


async def _awaited(item: Awaitable[T]) -> T:
    return await item


def _first(tasks: list[asyncio.Task[Any]], failed: BaseExceptionGroup[Any]) -> BaseException:
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            error = task.exception()
            assert error is not None
            return error
    return failed.exceptions[0]
