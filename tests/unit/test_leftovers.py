"""The cleanup of what the attacker left behind, with an in-memory sort of leftover: the
compromise window, removal between the reset and the unblock, the plan, a refused removal,
and verification catching an addition after the case acted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from remediation.domain.cases import CaseState
from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import PermanentError, TransientError
from remediation.domain.leftovers import (
    CompromiseWindow,
    Disposition,
    Leftover,
    compromise_window,
    mask_phone,
)
from remediation.domain.requests import RemediationRequest
from remediation.entrypoints.report import case_details
from remediation.service.leftovers import Wording
from remediation.service.progress import changes, progress
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings
from tests.fakes import FakeAlertSource, FakeTenant

ROB = "rob@contoso.com"
ROB_ID = "3f2a1b4c-0000-4000-8000-00000000abcd"
DELAYS = (timedelta(hours=1), timedelta(hours=4))


@dataclass
class Gadget:
    key: str
    added: datetime
    refuse: str | None = None
    busy: int = 0  # answers "try later" this many times first


@dataclass
class Gadgets:
    """A sort of leftover held in memory: 'gadgets' added at known times."""

    held: list[Gadget] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    events: list[str] | None = None
    step: str = "gadgets"
    label: str = "gadgets"
    mode: str = "remove"

    async def survey(self, user: DirectoryUser, window: CompromiseWindow) -> list[Leftover]:
        found = []
        for gadget in self.held:
            inside = window.contains(gadget.added)
            disposition = (Disposition.KEEP if not inside else
                           Disposition.REMOVE if self.mode == "remove" else Disposition.REPORT)
            found.append(Leftover("gadget", gadget.key, f"gadget {gadget.key}", disposition,
                                  "added inside the window" if inside else "older",
                                  gadget.added, "createdDateTime",
                                  f"add gadget {gadget.key} again"))
        return found

    async def remove(self, user: DirectoryUser, leftover: Leftover) -> None:
        gadget = next(g for g in self.held if g.key == leftover.key)
        if gadget.refuse:
            raise PermanentError(gadget.refuse)
        if gadget.busy:
            gadget.busy -= 1
            raise TransientError("503 from the service")
        if self.events is not None:
            self.events.append(f"remove {leftover.key}")
        self.held.remove(gadget)
        self.removed.append(leftover.key)


def make(tenant: FakeTenant, gadgets: Gadgets, **settings: object) -> RemediationWorkflow:
    tenant.directory.add_user(ROB, user_id=ROB_ID)
    gadgets.events = tenant.directory.events
    return RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock,
        settings=WorkflowSettings(verify_delays=DELAYS, **settings),  # type: ignore[arg-type]
        alert_source=FakeAlertSource(stand_in_sender=ROB), leftover_kinds=(gadgets,))


def test_the_window_opens_its_length_before_the_earliest_dated_sign() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    block, alert = now - timedelta(hours=2), now - timedelta(hours=5)
    window = compromise_window([("block", block), ("alert", alert), ("alert 2", None)],
                               timedelta(days=7), now)
    assert window.trouble_started == alert
    assert window.opens == alert - timedelta(days=7)
    assert window.contains(alert - timedelta(days=6)) is True
    assert window.contains(alert - timedelta(days=8)) is False
    assert window.contains(None) is None
    assert compromise_window([], timedelta(days=7), now).opens == now - timedelta(days=7)


def test_a_phone_number_is_masked_but_for_its_last_two_digits() -> None:
    assert mask_phone("+1 425 555 0100") == "+• ••• ••• ••00"
    assert "0100" not in mask_phone("+14255550100")


async def test_additions_in_the_window_are_removed_after_the_revocation_older_ones_kept() -> None:
    tenant = FakeTenant()
    now = tenant.clock.now()
    tenant.exchange.block(ROB, created=now - timedelta(hours=1))
    gadgets = Gadgets([Gadget("new", now - timedelta(hours=3)),
                       Gadget("old", now - timedelta(days=30))])
    workflow = make(tenant, gadgets)

    case = await workflow.remediate(RemediationRequest(ROB, request_id="r1"))

    assert case.state is CaseState.AWAITING_VERIFICATION
    assert gadgets.removed == ["new"]
    events = tenant.directory.events
    assert events.index("revoke_sessions") < events.index("remove new")
    window = case.done("compromise_window")
    assert window is not None and window.data["trouble_started"] == (
        now - timedelta(hours=1)).isoformat()
    step = case.done("gadgets")
    assert step is not None
    assert step.data["changes"] == [{"what": "removed gadget gadget new",
                                     "undo": "add gadget new again"}]
    assert "1 older kept" in step.detail


async def test_report_mode_changes_nothing_and_the_plan_names_every_planned_removal() -> None:
    tenant = FakeTenant()
    now = tenant.clock.now()
    gadgets = Gadgets([Gadget("new", now - timedelta(hours=3))], mode="report")
    workflow = make(tenant, gadgets, mode="dry-run")

    case = await workflow.remediate(RemediationRequest(ROB, request_id="r1"))

    assert case.state is CaseState.PLANNED
    plan = case.done("plan")
    assert plan is not None and "report gadget gadget new" in plan.detail
    assert gadgets.removed == []


async def test_a_refused_removal_removes_the_rest_and_escalates_naming_it_before_the_unblock(
        ) -> None:
    tenant = FakeTenant()
    now = tenant.clock.now()
    tenant.exchange.block(ROB, created=now - timedelta(hours=1))
    gadgets = Gadgets([Gadget("default", now - timedelta(hours=2), refuse="it is the default"),
                       Gadget("other", now - timedelta(hours=2))])
    workflow = make(tenant, gadgets)

    case = await workflow.remediate(RemediationRequest(ROB, request_id="r1"))

    assert case.state is CaseState.ESCALATED
    assert "gadget default stayed: it is the default" in (case.reason or "")
    assert gadgets.removed == ["other"]
    assert tenant.exchange.unblocks == []  # the block stays until a person decides
    failed = [s for s in case.steps if s.name == "gadgets" and s.status.value == "failed"]
    assert failed and failed[0].data["removed"] == ["other"]


async def test_verification_escalates_when_something_is_added_after_the_case_acted() -> None:
    tenant = FakeTenant()
    now = tenant.clock.now()
    tenant.exchange.block(ROB, created=now - timedelta(hours=1))
    gadgets = Gadgets([Gadget("old", now - timedelta(days=30))])
    workflow = make(tenant, gadgets, return_action="disable")
    case = await workflow.remediate(RemediationRequest(ROB, request_id="r1"))
    assert case.state is CaseState.AWAITING_VERIFICATION
    gadgets.held.append(Gadget("back", tenant.clock.now()))

    tenant.clock.set(tenant.exchange.unblocks[0].at + DELAYS[0])
    [check] = tenant.scheduler.due(tenant.clock.now())[:1]
    case = await workflow.verify(check)

    assert case.state is CaseState.ESCALATED
    assert "the attacker is still active" in (case.reason or "")
    assert "gadget back" in (case.reason or "")
    assert "sign-in blocked" in (case.reason or "")
    assert "disable_sign_in" in tenant.directory.events


async def test_verification_with_nothing_added_goes_on_as_before() -> None:
    tenant = FakeTenant()
    now = tenant.clock.now()
    tenant.exchange.block(ROB, created=now - timedelta(hours=1))
    gadgets = Gadgets([Gadget("old", now - timedelta(days=30))])
    workflow = make(tenant, gadgets)
    case = await workflow.remediate(RemediationRequest(ROB, request_id="r1"))

    tenant.clock.set(tenant.exchange.unblocks[0].at + DELAYS[0])
    [check] = tenant.scheduler.due(tenant.clock.now())[:1]
    case = await workflow.verify(check)

    assert case.state is CaseState.VERIFIED
    assert "disable_sign_in" not in tenant.directory.events


async def test_a_removed_leftover_found_again_under_its_old_key_escalates() -> None:
    """Re-registered under the same id (a phone method's id is fixed per phone type, a grant's
    per app, user and resource, a disabled rule enabled again): the attacker is back."""
    tenant = FakeTenant()
    now = tenant.clock.now()
    tenant.exchange.block(ROB, created=now - timedelta(hours=1))
    gadgets = Gadgets([Gadget("phone", now - timedelta(hours=3))])
    workflow = make(tenant, gadgets)
    case = await workflow.remediate(RemediationRequest(ROB, request_id="r1"))
    assert gadgets.removed == ["phone"]
    gadgets.held.append(Gadget("phone", tenant.clock.now()))

    tenant.clock.set(tenant.exchange.unblocks[0].at + DELAYS[0])
    [check] = tenant.scheduler.due(tenant.clock.now())[:1]
    case = await workflow.verify(check)

    assert case.state is CaseState.ESCALATED
    assert "the attacker is still active: added since the case acted: gadget gadget phone" in (
        case.reason or "")


async def test_a_kind_s_wording_reads_in_the_plan_the_changes_and_the_summary() -> None:
    tenant = FakeTenant()
    now = tenant.clock.now()
    tenant.exchange.block(ROB, created=now - timedelta(hours=1))
    gadgets = Gadgets([Gadget("new", now - timedelta(hours=3))])
    gadgets.wording = Wording(remove="disable", removed="disabled", kept="noted")  # type: ignore[attr-defined]
    workflow = make(tenant, gadgets)

    case = await workflow.remediate(RemediationRequest(ROB, request_id="r1"))

    plan, step = case.done("plan"), case.done("gadgets")
    assert plan is not None and "disable gadget gadget new: added inside" in plan.detail
    assert step is not None and step.detail.startswith("gadgets: disabled gadget new")
    assert step.data["changes"][0]["what"] == "disabled gadget gadget new"


async def test_every_change_is_listed_with_what_undoes_it_and_shown_in_status() -> None:
    tenant = FakeTenant()
    now = tenant.clock.now()
    tenant.exchange.block(ROB, created=now - timedelta(hours=1))
    gadgets = Gadgets([Gadget("new", now - timedelta(hours=3))])
    case = await make(tenant, gadgets).remediate(RemediationRequest(ROB, request_id="r1"))

    made = changes(case)
    assert [change.what for change in made] == [
        "password reset", "sign-in sessions revoked", "removed gadget gadget new",
        "block removed from the Restricted users list"]
    assert made[2].undo == "add gadget new again"
    assert "cannot be undone" in made[0].undo
    assert "removed gadget gadget new" in progress(case).done
    shown = case_details(case)
    assert "changes made, and what undoes each:" in shown
    assert "- removed gadget gadget new: add gadget new again" in shown


async def test_what_stayed_or_was_only_planned_is_listed_as_not_done() -> None:
    tenant = FakeTenant()
    now = tenant.clock.now()
    tenant.exchange.block(ROB, created=now - timedelta(hours=1))
    gadgets = Gadgets([Gadget("default", now - timedelta(hours=2), refuse="it is the default")])
    case = await make(tenant, gadgets).remediate(RemediationRequest(ROB, request_id="r1"))
    assert "not removed: gadget gadget default (it is the default)" in progress(case).not_done

    planned = Gadgets([Gadget("new", now - timedelta(hours=2))])
    other = FakeTenant()
    other.exchange.block(ROB, created=now - timedelta(hours=1))
    workflow = make(other, planned, mode="approve")
    waiting = await workflow.remediate(RemediationRequest(ROB, source="sweep",
                                                          request_id="r2"))
    assert waiting.state is CaseState.AWAITING_APPROVAL
    assert "not removed: gadget gadget new" in progress(waiting).not_done


async def test_a_removal_made_before_a_failure_stays_on_record_and_is_not_repeated() -> None:
    tenant = FakeTenant()
    now = tenant.clock.now()
    tenant.exchange.block(ROB, created=now - timedelta(hours=1))
    gadgets = Gadgets([Gadget("first", now - timedelta(hours=2)),
                       Gadget("second", now - timedelta(hours=2), busy=1)])
    workflow = make(tenant, gadgets)
    with pytest.raises(TransientError):
        await workflow.remediate(RemediationRequest(ROB, request_id="r1"))
    [case] = await tenant.journal.list_cases()
    # Made, though the step did not finish: listed as done, with its undo, never as planned.
    assert "removed gadget gadget first" in progress(case).done
    assert not [line for line in progress(case).not_done if "gadget first" in line]
    assert ("removed gadget gadget first", "add gadget first again") in [
        tuple(change) for change in changes(case)]

    case = await workflow.remediate(RemediationRequest(ROB, request_id="r1"))  # the retry

    assert gadgets.removed == ["first", "second"]
    step = case.done("gadgets")
    assert step is not None and step.data["removed"] == ["first", "second"]
    assert [c["what"] for c in step.data["changes"]] == [
        "removed gadget gadget first", "removed gadget gadget second"]
