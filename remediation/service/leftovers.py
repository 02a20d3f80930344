"""Removing what the attacker left behind, after the reset and before the unblock.

Each sort of leftover (sign-in methods, consent grants, hidden inbox rules, mailbox
permissions) is a ``LeftoverKind``: it surveys the account (reads only; each leftover with its
disposition) and removes one leftover. ``Cleanup`` runs them:

- in the plan (dry-run and approve mode show every planned removal), from the same surveys;
- as one journaled step per kind, after the reset and the revocation and before the unblock:
  what the survey says to remove is removed, what it says to report is reported, and the step
  lists every change with what undoes it. A read that fails is the step's failure (retried
  within bounds, then escalated) and undoes nothing already secured; a removal the service
  refuses (a default sign-in method) is done for the others, then escalated naming what stayed
  and why;
- in each verification check (``returned``): a survey whose keys the cleaning step never saw
  is an addition after the case acted — the attacker is still active; so is a leftover the
  step removed that is found again to remove or report (re-enabled, re-registered under the
  same id: a phone method's id is fixed per phone type, a grant's per app, user and resource).

A kind may say how its removals read (``wording``: inbox rules are *disabled*, not removed).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from remediation.concurrently import all_of
from remediation.domain.blocks import BlockedSender
from remediation.domain.cases import Case, StepStatus
from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import OutcomeUnknown, PermanentError
from remediation.domain.escalation_kinds import EscalationKind
from remediation.domain.leftovers import (
    CompromiseWindow,
    Disposition,
    Leftover,
    compromise_window,
    newly_added,
)
from remediation.service.claims import CONFIRMED
from remediation.service.journaling import CaseRecorder, StepResult
from remediation.service.pass_reads import PassReads

WINDOW = "compromise_window"
PARTIAL = "partial"  # a note of a cleanup step: one removal, journaled as it was done
UNSURE = "unsure"  # with PARTIAL: a removal whose answer was lost (made perhaps, perhaps not)


def removed_before(case: Case, step: str) -> list[Leftover]:
    """What earlier attempts of cleanup step ``step`` removed (its ``partial`` notes)."""
    return [Leftover.from_dict(note.data[PARTIAL]) for note in case.steps
            if note.name == step and note.status is StepStatus.INFO
            and isinstance(note.data.get(PARTIAL), dict)]


@dataclass(frozen=True)
class Wording:
    """How a kind's removals read in the plan, the journal's changes and the step's summary."""

    remove: str = "remove"
    removed: str = "removed"
    kept: str = "older kept"
    none_kept: str = "nothing older to keep"


DEFAULT_WORDING = Wording()


def wording(kind: object) -> Wording:
    """A kind's ``wording`` attribute, if it has one (optional: most kinds remove)."""
    found = getattr(kind, "wording", None)
    return found if isinstance(found, Wording) else DEFAULT_WORDING


class LeftoverKind(Protocol):
    """One sort of leftover. ``step`` is its journal step name (``signin_methods``),
    ``label`` what a person reads ("sign-in methods")."""

    step: str
    label: str

    async def survey(self, user: DirectoryUser, window: CompromiseWindow) -> list[Leftover]:
        """Everything of this sort in the account, each with its disposition (additions in
        ``window``: remove or report, as this kind's setting says; older ones: keep).
        Reads only. PermanentError when the read is refused (the case escalates),
        TransientError when a later attempt may succeed."""
        ...

    async def remove(self, user: DirectoryUser, leftover: Leftover) -> None:
        """Remove ``leftover``. PermanentError with the service's reason when it refuses."""
        ...


@dataclass(frozen=True)
class Cleanup:
    recorder: CaseRecorder
    kinds: Sequence[LeftoverKind]
    length: timedelta

    def window(self, case: Case, blocks: Sequence[BlockedSender]) -> CompromiseWindow:
        """The case's compromise window: from its blocks' ``CreatedDatetime`` and the first
        activity of the alerts it confirmed (read back from Graph, ``claims``)."""
        signs: list[tuple[str, datetime | None]] = [
            (f"block of {block.sender_address}", block.created) for block in blocks]
        for step in case.steps:
            first = step.data.get("first_activity") if step.name == CONFIRMED else None
            if isinstance(first, str) and step.data.get("alert_id") in case.alert_ids:
                signs.append((f"alert {step.data['alert_id']} first activity",
                              datetime.fromisoformat(first)))
        return compromise_window(signs, self.length, self.recorder.clock.now())

    async def survey(self, user: DirectoryUser, window: CompromiseWindow,
                     ) -> tuple[dict[str, list[Leftover]], dict[str, str]]:
        """Every kind's survey, by step name (the plan's reads), and the kinds whose read
        was refused, with the reason. A refusal does not stop the plan: the account is
        still reset and its sessions revoked; the kind's own step after them meets the
        refusal again and escalates, before the unblock. The kinds are read side by side;
        a TransientError from one cancels the others and is raised."""
        answers = await all_of([self._surveyed(kind, user, window) for kind in self.kinds])
        surveys: dict[str, list[Leftover]] = {}
        refused: dict[str, str] = {}
        for kind, answer in zip(self.kinds, answers, strict=True):
            if isinstance(answer, str):
                refused[kind.step] = f"{kind.label} could not be read: {answer}"
            else:
                surveys[kind.step] = answer
        return surveys, refused

    @staticmethod
    async def _surveyed(kind: LeftoverKind, user: DirectoryUser,
                        window: CompromiseWindow) -> list[Leftover] | str:
        """The kind's survey, or the reason its read was refused."""
        try:
            return await kind.survey(user, window)
        except PermanentError as error:
            return error.reason

    async def clean(self, case: Case, user: DirectoryUser,
                    window: CompromiseWindow, reads: PassReads | None = None) -> Case:
        """Each kind as its own journaled step (a redelivery skips the finished ones).
        ``reads``: the plan's surveys in the same pass, taken instead of reading again while
        nothing else has changed (``service.pass_reads``)."""
        for kind in self.kinds:
            case, _ = await self.recorder.run(
                case, kind.step,
                lambda kind=kind, case=case: self._clean(case, kind, user, window, reads))  # type: ignore[misc]
        return case

    async def _clean(self, case: Case, kind: LeftoverKind, user: DirectoryUser,
                     window: CompromiseWindow, reads: PassReads | None = None) -> StepResult:
        """Survey, then remove what the survey says to. Each removal is journaled the moment
        it is done (a ``partial`` note of the step): an attempt that fails after it (a 503
        on the next one) leaves the record, and the retry, which no longer finds what it
        removed, counts it from that note. A removal whose answer was lost (OutcomeUnknown)
        is journaled so too before the attempt fails: it may have been carried out."""
        earlier = removed_before(case, kind.step)
        planned = reads.take_survey(kind.step) if reads is not None else None
        found = planned if planned is not None else await kind.survey(user, window)
        removed: list[Leftover] = [leftover for leftover in earlier
                                   if leftover.key not in {f.key for f in found}]
        found = [*removed, *found]
        stayed: list[tuple[Leftover, str]] = []
        for leftover in found:
            if leftover.disposition is not Disposition.REMOVE or leftover in removed:
                continue
            if reads is not None:  # the account changes: later steps read it afresh
                reads.changed = True
            try:
                await kind.remove(user, leftover)
            except PermanentError as error:
                stayed.append((leftover, error.reason))
                continue
            except OutcomeUnknown:  # removed perhaps: the retry may no longer find it
                await self.recorder.note(
                    case, kind.step, StepStatus.INFO, f"{wording(kind).removed} "
                    f"{leftover.kind} {leftover.name}, perhaps (the answer was lost)",
                    {PARTIAL: leftover.to_dict(), UNSURE: True})
                raise
            removed.append(leftover)
            case = await self.recorder.note(
                case, kind.step, StepStatus.INFO,
                f"{wording(kind).removed} {leftover.kind} {leftover.name}",
                {PARTIAL: leftover.to_dict()})
        data: dict[str, Any] = {
            "found": [leftover.to_dict() for leftover in found],
            "removed": [leftover.key for leftover in removed],
            "stayed": [{"key": leftover.key, "why": why} for leftover, why in stayed],
            "changes": [{"what": f"{wording(kind).removed} {leftover.kind} {leftover.name}",
                         "undo": leftover.undo} for leftover in removed]}
        if stayed:
            shown = "; ".join(f"{leftover.kind} {leftover.name} stayed: {why}"
                              for leftover, why in stayed)
            raise _Stayed(f"{kind.label}: {shown}", data)
        return StepResult(_summary(kind, found, removed), data)

    async def returned(self, case: Case, user: DirectoryUser) -> list[Leftover]:
        """What each kind finds now that its cleaning step never saw: additions after the
        case acted. Kinds the case never cleaned (an older case) are not asked."""
        window = self._journaled_window(case)
        if window is None:
            return []
        added: list[Leftover] = []
        cleaned = [(kind, step) for kind in self.kinds
                   if (step := case.done(kind.step)) is not None]
        # Every kind's survey side by side (reads only; the first failure is raised).
        answers = await all_of([kind.survey(user, window) for kind, _ in cleaned])
        for (_kind, step), found in zip(cleaned, answers, strict=True):
            known = [entry["key"] for entry in step.data.get("found", [])]
            removed = set(step.data.get("removed", []))
            added += newly_added(found, known)
            added += [leftover for leftover in found if leftover.key in removed
                      and leftover.disposition is not Disposition.KEEP]
        return added

    @staticmethod
    def _journaled_window(case: Case) -> CompromiseWindow | None:
        step = case.done(WINDOW)
        return CompromiseWindow.from_dict(step.data) if step is not None else None

    def plan_actions(self, surveys: dict[str, list[Leftover]],
                     refused: dict[str, str] | None = None) -> list[str]:
        """The plan's lines: every planned removal and every report, and each kind that
        could not be read (escalated after the reset, before the unblock)."""
        lines = [f"{why}: escalate after the reset, before the unblock"
                 for why in (refused or {}).values()]
        verbs = {kind.step: wording(kind).remove for kind in self.kinds}
        for step, found in surveys.items():
            for leftover in found:
                if (leftover.disposition is Disposition.KEEP
                        or leftover.snapshot.get("hygiene_handles")):
                    continue  # kept, or already a line of mailbox hygiene's in the plan
                verb = (verbs.get(step, DEFAULT_WORDING.remove)
                        if leftover.disposition is Disposition.REMOVE else "report")
                lines.append(f"{verb} {leftover.kind} {leftover.name}: {leftover.why}")
        return lines


class _Stayed(PermanentError):
    """A removal the service refused: the rest is done, the case escalates naming it."""

    def __init__(self, reason: str, data: dict[str, Any]) -> None:
        super().__init__(reason, EscalationKind.LEFTOVER_STAYED)
        self.data = data


def _summary(kind: LeftoverKind, found: list[Leftover], removed: list[Leftover]) -> str:
    reported = [leftover for leftover in found if leftover.disposition is Disposition.REPORT]
    kept = len(found) - len(removed) - len(reported)
    words = wording(kind)
    parts = []
    if removed:
        parts.append(f"{words.removed} " + ", ".join(leftover.name for leftover in removed))
    if reported:
        parts.append("reported " + ", ".join(f"{leftover.name} ({leftover.why})"
                                             for leftover in reported))
    parts.append(f"{kept} {words.kept}" if kept else words.none_kept)
    return f"{kind.label}: " + "; ".join(parts)


