"""The sweeper while paused: it resumes nothing and escalates nothing as stuck (a case held
by a pause is not stuck), however long the pause lasts; after ``resume`` it sweeps again."""

from __future__ import annotations

from datetime import timedelta

from remediation.domain.cases import CaseState
from remediation.domain.pause import Paused
from remediation.service.sweeper import MAX_RESUMES, STALL_AFTER
from tests.unit.test_sweeper import Swept, s, stuck_in_progress  # noqa: F401


async def test_the_sweeper_leaves_every_case_alone_while_paused(s: Swept) -> None:  # noqa: F811
    case = await stuck_in_progress(s)
    await s.h.tenant.journal.pause(Paused("alice@contoso.com", "storm", s.h.tenant.clock.now()))

    for _ in range(MAX_RESUMES + 2):  # long past the point a stuck case escalates
        s.h.tenant.clock.advance(STALL_AFTER + timedelta(seconds=1))
        report = await s.sweeper.sweep()
        assert (report.resumed, report.escalated, report.errors) == ([], [], [])
        report = await s.sweeper.sweep(idle=True)
        assert (report.resumed, report.escalated) == ([], [])
    assert s.queue.sent == []
    stored = await s.h.tenant.journal.get_case(case.case_id)
    assert stored is not None and stored.state is CaseState.IN_PROGRESS
    assert stored.steps == case.steps  # not even claimed

    await s.h.tenant.journal.resume("bob@contoso.com", s.h.tenant.clock.now())
    assert (await s.sweeper.sweep()).resumed == [case.case_id]
