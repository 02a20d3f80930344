"""A case opens `received` or `rejected` (``INITIAL`` in the state table): both journals
refuse any other opening state (found by a hostile tester; failed before)."""

import pytest

from remediation.domain.case_states import INITIAL, ForbiddenTransition
from remediation.domain.cases import CaseState
from remediation.service.ports import Journal
from tests.integration.conftest import OpenJournal
from tests.journal_cases import make_case


@pytest.fixture
def journal(open_journal: OpenJournal) -> Journal:
    return open_journal()


@pytest.mark.parametrize("state", [CaseState.VERIFIED, CaseState.AWAITING_VERIFICATION])
async def test_a_case_opened_in_a_state_no_case_starts_in_is_refused(
        journal: Journal, state: CaseState) -> None:
    """case_states says "a case is opened received or rejected" and that the journal
    refuses to break the table; ``INITIAL`` is used nowhere, and both journals store a case
    born ``verified`` (a record with no unblock, no check) or ``awaiting_verification``
    with no check scheduled (a working case nothing moves, found only by the sweeper)."""
    assert state not in INITIAL
    with pytest.raises(ForbiddenTransition):
        await journal.add_case(make_case("born-late", state=state))
    assert await journal.get_case("born-late") is None
