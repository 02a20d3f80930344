"""The alert poll reads one page ahead (service/read_ahead.py): the next page is asked for
while the one in hand is handled; pages keep their order, a failed page comes after every
page before it, and a caller that stops leaves nothing reading."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from remediation.domain.errors import TransientError
from remediation.service.read_ahead import read_ahead


class Listing:
    def __init__(self, pages: int, fail_at: int | None = None) -> None:
        self.pages, self.fail_at = pages, fail_at
        self.asked: list[int] = []
        self.closed = False

    async def read(self) -> AsyncIterator[int]:
        try:
            for page in range(self.pages):
                self.asked.append(page)
                await asyncio.sleep(0)
                if page == self.fail_at:
                    raise TransientError(f"page {page} failed")
                yield page
        finally:
            self.closed = True


async def test_the_next_page_is_asked_for_while_one_is_handled_and_order_is_kept() -> None:
    listing = Listing(5)
    seen, asked_while_handling = [], []
    async for page in read_ahead(listing.read()):
        await asyncio.sleep(0.01)  # handling the page: the reader goes on meanwhile
        asked_while_handling.append(len(listing.asked))
        seen.append(page)
    assert seen == [0, 1, 2, 3, 4]
    assert asked_while_handling[0] >= 2  # page 1 asked before page 0 was done with
    assert all(asked <= page + 3 for page, asked in enumerate(asked_while_handling))


async def test_a_failed_page_comes_after_every_page_before_it() -> None:
    listing = Listing(5, fail_at=3)
    seen: list[int] = []

    async def handle_all() -> None:
        async for page in read_ahead(listing.read()):
            seen.append(page)

    with pytest.raises(TransientError, match="page 3 failed"):
        await handle_all()
    assert seen == [0, 1, 2]


async def test_a_caller_that_stops_leaves_nothing_reading() -> None:
    listing = Listing(100)
    pages = read_ahead(listing.read())
    async for page in pages:
        if page == 1:
            break
    await pages.aclose()  # type: ignore[attr-defined]
    await asyncio.sleep(0.01)
    assert len(listing.asked) <= 4
    assert listing.closed
