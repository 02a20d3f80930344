"""Read one page ahead: the next page of a listing is asked for while the caller handles the
one in hand, so a poll through thousands of alerts waits on Graph and on its own work side
by side rather than one after the other.

At most ``ahead`` pages wait in hand besides the one being handled (memory stays bounded
whatever the listing holds). Pages come in their order; a failure of the listing comes
after every page read before it, as it would without the read-ahead (the pages before a
failed one are still handled). When the caller stops early (an exception, a ``break``), the
reading is cancelled and awaited: nothing keeps reading behind its back.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar, cast

T = TypeVar("T")

_END = object()


async def read_ahead(source: AsyncIterator[T], ahead: int = 1) -> AsyncIterator[T]:
    """The items of ``source``, in order, with up to ``ahead`` (>= 1) read before asked for.
    Raises what ``source`` raised, once the items before it were yielded."""
    waiting: asyncio.Queue[object] = asyncio.Queue(maxsize=ahead)

    async def read() -> None:
        try:
            async for item in source:
                await waiting.put(item)
        except Exception as error:
            await waiting.put(_Failed(error))
        else:
            await waiting.put(_END)

    reader = asyncio.create_task(read())
    try:
        while True:
            item = await waiting.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield cast(T, item)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


class _Failed:
    def __init__(self, error: Exception) -> None:
        self.error = error
