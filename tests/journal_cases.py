"""Cases for the journal tests (contract and SQLite-specific)."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from typing import Any
from unittest import mock

from remediation.domain.cases import Case, CaseState
from remediation.domain.errors import ConcurrentUpdate
from remediation.service.ports import Journal

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
ROB = "rob@contoso.com"


def make_case(case_id: str, user: str = ROB, *, at: datetime = T0,
              state: CaseState = CaseState.RECEIVED, **fields: Any) -> Case:
    return Case(case_id=case_id, user=user, state=state, created_at=at, updated_at=at,
                **fields)


async def stored(journal: Journal, case_id: str) -> Case:
    case = await journal.get_case(case_id)
    assert case is not None
    return case


async def updated_over_races(journal: Journal, case_id: str, reason: str, *,
                             tries: int) -> None:
    """Store ``reason`` on the case while other writers race it: on ConcurrentUpdate, read it
    again and try again, as ``CaseRecorder.save`` does (AssertionError after ``tries``)."""
    for _ in range(tries):
        case = await stored(journal, case_id)
        try:
            await journal.update_case(case.evolve(reason=reason))
            return
        except ConcurrentUpdate:  # a lost race: the next read wins
            continue
    raise AssertionError(f"an update of case {case_id} never got through")


_SEEDING = ExitStack()
_seeders = 0  # seeds under way (concurrent ones share one patch)


@contextmanager
def any_opening_state() -> Iterator[None]:
    """While it lasts, the journals store a new case in any state: for tests that start from
    a case in a later state (no product path opens one; ``check_opening``). Concurrent seeds
    (asyncio.gather) share one patch, taken off when the last ends."""
    global _seeders
    import remediation.adapters.sqlite_journal as sqlite_journal
    import remediation.adapters.table_journal as table_journal
    import tests.fakes as fakes

    if _seeders == 0:
        for module in (sqlite_journal, table_journal, fakes):
            _SEEDING.enter_context(mock.patch.object(module, "check_opening", _any_state))
    _seeders += 1
    try:
        yield
    finally:
        _seeders -= 1
        if _seeders == 0:
            _SEEDING.close()


def _any_state(case_id: str, state: CaseState) -> None:
    """``check_opening`` for ``any_opening_state``: every state passes."""


async def seed(journal: Journal, case: Case) -> None:
    """Store ``case`` as it is, whatever its state (``any_opening_state``)."""
    with any_opening_state():
        await journal.add_case(case)
