"""``Journal.add_steps`` (issue 18: a step's held ``done`` and the next step's ``started`` in
one write) against both real journals, racing other writers on other journal objects (other
processes, as far as the store can tell): each write's steps stay together and in order, and
the hash chain stays whole (``check_chain``)."""

from __future__ import annotations

import asyncio

from remediation.domain.cases import Step, StepStatus
from remediation.domain.journal_chain import check_chain
from tests.journal_cases import T0, make_case, stored, updated_over_races
from tests.journal_tampering import Store, store  # noqa: F401 (a fixture)


async def test_pairs_appended_at_once_by_two_writers_stay_together_and_chained(
        store: Store) -> None:  # noqa: F811
    writers = [store.journal(), store.journal()]
    await writers[0].add_case(make_case("c1", steps=(Step("received", StepStatus.INFO, T0),)))

    async def pair(n: int) -> None:
        await writers[n % 2].add_steps("c1", [
            Step(f"read-{n}", StepStatus.DONE, T0, data={"n": n}),
            Step(f"next-{n}", StepStatus.STARTED, T0, data={"n": n})])

    await asyncio.gather(*(pair(n) for n in range(12)),
                         *(writers[n % 2].add_step("c1", Step(f"one-{n}", StepStatus.INFO, T0))
                           for n in range(6)),
                         *(updated_over_races(writers[n % 2], "c1", f"update {n}", tries=40)
                           for n in range(3)))

    case = await stored(writers[1], "c1")
    names = [step.name for step in case.steps]
    for n in range(12):
        at = names.index(f"read-{n}")
        assert names[at + 1] == f"next-{n}", names  # one write: nothing in between
    assert len(names) == 1 + 24 + 6
    assert [s.link.seq for s in case.steps if s.link is not None] == list(range(1, 32))
    assert case.version == 3
    assert check_chain(case).problems == ()
