"""Cases for the journal tests (contract and SQLite-specific)."""

from datetime import UTC, datetime
from typing import Any

from remediation.domain.cases import Case, CaseState
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
