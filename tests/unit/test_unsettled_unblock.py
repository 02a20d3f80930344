"""The unblock step's memory of a removal whose answer was lost."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

from remediation.domain.blocks import BlockedSender
from remediation.domain.cases import Case, Step, StepStatus
from remediation.service.journaling import UNBLOCK
from remediation.service.unsettled_unblock import (
    SETTLE_READS,
    UNSETTLED,
    WAITING,
    still_settling,
    unsettled,
)

ADDRESS = "adele.vance@contoso.com"
BLOCKED = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def note(**data: Any) -> Step:
    return Step(UNBLOCK, StepStatus.INFO, AT, "", {"address": ADDRESS, **data})


SENT = note(block_created=BLOCKED.isoformat())
LOST = note(**{UNSETTLED: True, "block_created": BLOCKED.isoformat(), "block_reason": "spam"})
WAITED = note(**{WAITING: True})


def case_of(*steps: Step) -> Case:
    return cast(Case, SimpleNamespace(steps=list(steps)))


def listed(created: datetime = BLOCKED) -> BlockedSender:
    return BlockedSender(ADDRESS, "spam", created)


def test_a_removal_answered_is_not_unsettled() -> None:
    assert unsettled(case_of(SENT), ADDRESS) is None


def test_a_lost_answer_waits_for_the_reads_then_sends_again() -> None:
    lost = unsettled(case_of(SENT, LOST), ADDRESS)
    assert lost is not None and lost.block.created == BLOCKED and lost.block.reason == "spam"
    assert still_settling(lost, listed())
    waited = unsettled(case_of(SENT, LOST, *[WAITED] * SETTLE_READS), ADDRESS)
    assert waited is not None and not still_settling(waited, listed())


def test_a_removal_sent_again_settles_the_lost_one() -> None:
    assert unsettled(case_of(SENT, LOST, WAITED, WAITED, SENT), ADDRESS) is None


def test_a_newer_block_is_not_the_one_the_lost_request_lifted() -> None:
    lost = unsettled(case_of(SENT, LOST), ADDRESS)
    assert not still_settling(lost, listed(BLOCKED + timedelta(minutes=5)))


def test_another_address_is_not_concerned() -> None:
    assert unsettled(case_of(SENT, LOST), "other@contoso.com") is None
