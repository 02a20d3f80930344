"""What `remediation undo` makes of a case's record, without a tenant: which changes it can
restore and which it cannot, refusals, and the undo message (service/undo.py)."""

from datetime import UTC, datetime, timedelta

import pytest

from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.errors import InvalidRequest
from remediation.domain.undo import Call, item_step
from remediation.service import verification
from remediation.service.progress import BLOCK_SIGN_IN, changes, made_changes
from remediation.service.undo import UndoRequest, plan, refusal, undo_in

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ROB = "rob@contoso.com"


def case(case_id: str, *steps: Step, state: CaseState = CaseState.VERIFIED,
         at: datetime = T0) -> Case:
    return Case(case_id, ROB, state, at, at, user_id="0b0c0d0e-0000-4000-8000-000000000001",
                steps=steps)


def done(name: str, **data: object) -> Step:
    return Step(name, StepStatus.DONE, T0, "", dict(data))


HOSTILE = "\x1b]0;owned\x07\x1b[2J\u202eforward"
HYGIENE = done("mailbox_hygiene", mode="disable", findings=[
    {"rule_id": "AQAAAJ5dZqA=", "name": HOSTILE, "why": "forwards", "snapshot": {}},
    {"rule_id": None, "name": "mailbox forwarding", "why": "forwards all mail",
     "snapshot": {"ForwardingSmtpAddress": "smtp:drop@evil.example",
                  "ForwardingAddress": None, "DeliverToMailboxAndForward": True}}])


def test_each_change_says_how_it_is_restored_or_why_it_cannot_be() -> None:
    made = made_changes(case("c1", done("reset_password"), HYGIENE, done("unblock"),
                             done(BLOCK_SIGN_IN)))

    assert [(m.step, m.restore.call if m.restore else None) for m in made] == [
        ("reset_password", None), ("mailbox_hygiene", Call.GRAPH_RULE),
        ("mailbox_hygiene", Call.FORWARDING), ("unblock", None), ("block_sign_in", None)]
    assert "never re-enables an account" in made[-1].undo
    assert BLOCK_SIGN_IN == verification.BLOCK_SIGN_IN
    assert [c.what for c in changes(case("c1", HYGIENE))] == [m.what for m in made[1:3]]


def test_the_lines_for_a_person_are_escaped_and_say_where_forwarding_goes() -> None:
    lines = plan(case("c1", done("reset_password"), HYGIENE)).lines("would restore")

    assert all("\x1b" not in line and "\x07" not in line and "\u202e" not in line
               for line in lines)
    assert lines[0].startswith("would restore: inbox rule “")
    assert lines[1] == ("would restore: mailbox forwarding cleared [mailbox_hygiene] "
                        "(Set-Mailbox: forwards all mail to drop@evil.example (keeping a "
                        "copy) again)")
    assert lines[2].startswith("cannot be restored: password reset [reset_password]: ")


def test_a_restored_change_is_listed_as_such_and_not_restored_again() -> None:
    restored = Step(item_step("mailbox_hygiene", "forwarding"), StepStatus.DONE,
                    T0 + timedelta(hours=1), "restored", {
                        "step": "mailbox_hygiene", "key": "forwarding", "by": "alice",
                        "result": "restored"})
    undone = plan(case("c1", HYGIENE, restored))

    assert [m.key for m in undone.to_restore] == ["AQAAAJ5dZqA="]
    assert [m.key for m in undone.restored] == ["forwarding"]
    assert dict(changes(case("c1", HYGIENE, restored)))["mailbox forwarding cleared"] == (
        "restored by undo (alice) at 2026-01-05 10:00 UTC")


def test_a_step_without_changes_is_refused_naming_those_with_some() -> None:
    with pytest.raises(InvalidRequest, match="its steps with changes: reset_password, "
                                             "mailbox_hygiene"):
        plan(case("c1", done("reset_password"), HYGIENE), "consent_grants")


def test_working_cases_and_newer_cases_at_work_are_refused() -> None:
    undone = case("c1", HYGIENE)
    assert refusal(case("c0", state=CaseState.IN_PROGRESS), []) is not None
    assert "nothing to undo" in (refusal(case("c0", state=CaseState.PLANNED), []) or "")
    newer_working = case("c2", state=CaseState.AWAITING_VERIFICATION, at=T0 + timedelta(1))
    newer_with_rules = case("c3", HYGIENE, at=T0 + timedelta(days=2))
    newer_reset_only = case("c4", done("reset_password"), at=T0 + timedelta(days=3))

    assert "c2, is awaiting_verification" in (refusal(undone, [newer_working]) or "")
    assert "c3, changed it since" in (refusal(undone, [newer_with_rules]) or "")
    assert refusal(undone, [newer_reset_only, undone]) is None
    assert refusal(newer_with_rules, [undone]) is None  # an older case is no obstacle


def test_an_undo_message_carries_exactly_its_fields() -> None:
    message = UndoRequest("c1", ROB, "t" * 32)
    assert undo_in(message.to_json().encode()) == message
    assert undo_in(b'{"user": "rob@contoso.com"}') is None  # a request, not an undo
    with pytest.raises(InvalidRequest, match="unknown field"):
        undo_in(b'{"kind": "undo", "case_id": "c1", "user": "rob@contoso.com", '
                b'"token": "t", "step": "unblock"}')
    with pytest.raises(InvalidRequest, match="needs a 'token'"):
        undo_in(b'{"kind": "undo", "case_id": "c1", "user": "rob@contoso.com"}')
