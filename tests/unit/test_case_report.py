"""What `remediation report CASE_ID` says, read from a journal written by hand (issue 17,
point 4): each change with its time and its undo, what is left for a person with the
README's "what to do", decisions, pauses, undos and the alerts' final state; a fact added
by later work (the record's integrity) in every format; and never a secret."""

import json
from datetime import UTC, datetime, timedelta

from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.escalation_advice import ADVICE, FORCE, advice_for
from remediation.domain.escalation_kinds import EscalationKind
from remediation.domain.undo import item_step
from remediation.entrypoints.case_report_render import as_json, html_page, markdown
from remediation.service.case_report import case_report, first_signal
from remediation.service.report_model import CaseReport, Section
from tests.rendered import Page
from tests.unit.test_escalation_kinds import table_rows

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def section(report: CaseReport, key: str) -> Section:
    return next(s for s in report.sections if s.key == key)


def texts(report: CaseReport, key: str) -> list[str]:
    return [item.text for item in section(report, key).items]


def notes(report: CaseReport, key: str) -> list[dict[str, str]]:
    return [{note.label: note.value for note in item.notes}
            for item in section(report, key).items]


RULE = {"rule_id": "AQAAAJ5dZqE=", "name": "Invoices", "why": "moves mail to RSS Feeds",
        "snapshot": {"id": "AQAAAJ5dZqE=", "isEnabled": True}}
FORWARDING = {"rule_id": None, "name": "mailbox forwarding", "why": "forwards to x@evil.example",
              "snapshot": {"ForwardingSmtpAddress": "smtp:x@evil.example"}}


def worked_case(**changes: object) -> Case:
    """Approved, secured, a rule restored by an undo, paused once, verified."""
    steps = (
        Step("received", StepStatus.INFO, at(0), "alert request", {
            "source": "alert", "reason": "Defender alert: Suspicious email sending patterns "
            "detected", "alert_ids": ["fa1", "fa2"], "evidence_at": at(-30).isoformat()}),
        Step("lookup_user", StepStatus.DONE, at(0), "found rob@contoso.com",
             {"user_id": "0b1d", "enabled": True, "user_type": "Member"}),
        Step("alert_confirmed", StepStatus.INFO, at(0), "alert fa1: read back from Graph",
             {"alert_id": "fa1", "first_activity": at(-40).isoformat()}),
        Step("alert_ignored", StepStatus.INFO, at(0), "alert fa2: another person's alert",
             {"alert_id": "fa2"}),
        Step("awaiting_approval", StepStatus.INFO, at(1), "run `remediation approve` ..."),
        Step("paused", StepStatus.INFO, at(2), "paused by carol since 09:02: mass phishing"),
        Step("approved", StepStatus.INFO, at(5), "approved by alice@contoso.com"),
        Step("reset_password", StepStatus.DONE, at(6), "new random password set"),
        Step("revoke_sessions", StepStatus.DONE, at(6.5), "sign-in sessions revoked"),
        Step("mailbox_hygiene", StepStatus.DONE, at(7), "disabled or cleared",
             {"findings": [RULE, FORWARDING], "mode": "disable"}),
        Step("unblock", StepStatus.INFO, at(8), "rob@contoso.com listed since 08:20 UTC "
             "(ExceedingLimitType=External)", {"address": "rob@contoso.com"}),
        Step("unblock", StepStatus.DONE, at(8), "removed from the Restricted users list",
             {"listed": True}),
        Step("schedule_verification", StepStatus.DONE, at(8), "verification scheduled at "
             "+1h, 4h, 24h"),
        Step("verify_0", StepStatus.DONE, at(68), "not on the Restricted users list 1h after "
             "the unblock", {"listed": False}),
        Step("alert_comment:verified:fa1", StepStatus.DONE, at(69), "commented on alert fa1"),
        Step("alert_status:verified:fa1", StepStatus.DONE, at(69), "alert fa1 set to "
             "status=resolved, classification=truePositive, determination=compromisedAccount"),
        Step("undo_queued", StepStatus.INFO, at(120), "undo by bob queued", {"by": "bob"}),
        Step(item_step("mailbox_hygiene", "AQAAAJ5dZqE="), StepStatus.DONE, at(121),
             "enabled inbox rule Invoices again", {"step": "mailbox_hygiene",
                                                   "key": "AQAAAJ5dZqE=", "by": "bob"}),
        Step("undo_finished", StepStatus.INFO, at(122), "undo (bob): restored 1"),
    )
    fields: dict[str, object] = dict(
        case_id="20260105-0badcafe", user="rob@contoso.com", state=CaseState.VERIFIED,
        created_at=at(0), updated_at=at(122), source="alert", alert_ids=("fa1",),
        user_id="0b1d", sender="rob@contoso.com", listed_addresses=("rob@contoso.com",),
        block_created=at(-20), unblocked_at=at(8), ended_at=at(68), steps=steps)
    fields.update(changes)
    return Case(**fields)  # type: ignore[arg-type]


def test_every_change_has_its_time_and_its_undo_and_an_undo_says_it_restored() -> None:
    report = case_report(worked_case(), at(200))

    assert texts(report, "changes") == [
        "password reset", "sign-in sessions revoked", "inbox rule “Invoices” disabled",
        "mailbox forwarding cleared", "block removed from the Restricted users list"]
    assert [item.at for item in section(report, "changes").items] == [
        at(6), at(6.5), at(7), at(7), at(8)]
    undo = [n["undo"] for n in notes(report, "changes")]
    assert undo[0].startswith("cannot be undone")
    assert undo[2] == "restored by undo (bob) at 2026-01-05 11:01 UTC"
    assert "Set-Mailbox" in undo[3]
    assert texts(report, "undos") == ["undo by bob queued", "enabled inbox rule Invoices "
                                      "again", "undo (bob): restored 1"]


def test_what_started_it_what_was_checked_and_how_each_alert_ended() -> None:
    report = case_report(worked_case(), at(200))

    [started] = texts(report, "trigger")
    assert started == "a Defender alert: Suspicious email sending patterns detected"
    assert notes(report, "trigger") == [{"alerts": "fa1, fa2",
                                         "evidence_created": "2026-01-05 08:30:00 UTC"}]
    assert first_signal(worked_case()) == (at(-40), "first Defender alert")
    facts = {fact.label: fact.value for fact in report.facts}
    assert facts["First signal"] == "2026-01-05 08:20:00 UTC (first Defender alert)"
    assert facts["State"].startswith("verified")
    assert texts(report, "verification") == [
        "verification scheduled at +1h, 4h, 24h",
        "not on the Restricted users list 1h after the unblock",
        "verified: the block is gone and nothing was added since the case acted"]
    assert texts(report, "alerts") == [
        "alert fa1 set to status=resolved, classification=truePositive, "
        "determination=compromisedAccount",
        "alert fa2: not this case's to update: alert fa2: another person's alert"]
    assert notes(report, "alerts")[0] == {"comments": "1 comment(s) by the robot"}
    assert texts(report, "decisions") == ["waiting for a person's approval: run "
                                          "`remediation approve` ...",
                                          "approved by alice@contoso.com"]
    assert texts(report, "pauses") == ["paused by carol since 09:02: mass phishing"]
    assert texts(report, "left") == []  # verified, nothing reported: nothing for a person
    found = {part.key: part for part in section(report, "found").parts}
    assert [item.text for item in found["rules"].items] == ["Invoices", "mailbox forwarding"]
    assert "ExceedingLimitType=External" in found["block"].items[0].text


def test_an_escalation_names_its_kind_and_the_readme_s_what_to_do() -> None:
    case = worked_case(state=CaseState.ESCALATED, escalation_kind="guardrail",
                       reason="holds directory role(s) Global Administrator: secure this "
                       "account by hand", steps=worked_case().steps[:3])
    report = case_report(case, at(200))

    first = section(report, "left").items[0]
    said = {note.label: note for note in first.notes}
    assert first.text.startswith("escalated: holds directory role(s)")
    assert said["kind"].value == "guardrail"
    assert said["what_to_do"].value == ("by hand (an administrator's reset is an "
                                        "administrator's decision)")
    assert said["what_to_do"].ours and "force" not in said
    assert "password not reset" in texts(report, "left")
    text = markdown(report)
    assert "  - *what to do:* by hand (an administrator's reset" in text


def test_the_force_note_goes_with_advice_that_says_force() -> None:
    case = worked_case(state=CaseState.ESCALATED, escalation_kind="circuit_breaker",
                       reason="circuit breaker open: ...")
    said = notes(case_report(case, at(200)), "left")[0]
    assert said["what_to_do"].endswith("`--force`") and said["force"] == FORCE
    html = html_page(case_report(case, at(200)))
    assert "<code>remediation enqueue --user ADDRESS --force</code>" in html


def test_a_person_s_rejection_is_a_decision_and_leaves_the_block_to_a_person() -> None:
    case = worked_case(state=CaseState.REJECTED, decided_by="alice@contoso.com",
                       reason="rejected by alice@contoso.com: the owner was sending",
                       steps=(*worked_case().steps[:5], Step(
                           "rejected", StepStatus.INFO, at(3), "by "
                           "alice@contoso.com: the owner was sending",
                           {"by": "alice@contoso.com"})))
    report = case_report(case, at(200))

    assert texts(report, "decisions")[-1] == ("rejected by alice@contoso.com: the owner "
                                              "was sending")
    assert {f.label: f.value for f in report.facts}["Decided by"] == "alice@contoso.com"
    assert texts(report, "changes") == []
    assert section(report, "changes").none == "nothing was changed in the tenant"
    assert "stays with a person" in texts(report, "left")[0]


def test_the_readme_s_what_to_do_is_the_report_s_row_for_row() -> None:
    assert [(advice.kind, advice.what_to_do) for advice in ADVICE] == [
        (kind, cells[2]) for kind, cells in table_rows()]
    for advice in ADVICE:  # each row's markers are words its "the reason says" cell holds
        said = next(cells[0] for kind, cells in table_rows()
                    if kind == advice.kind and cells[2] == advice.what_to_do)
        assert all(marker in said for marker in advice.markers[:1]), advice
    assert {advice.kind for advice in ADVICE} == {kind.value for kind in EscalationKind}


def test_the_row_is_chosen_by_the_reason_among_a_kind_s_rows() -> None:
    def row(kind: str, reason: str) -> str:
        advice = advice_for(kind, reason)
        assert advice is not None
        return advice.what_to_do

    assert row("guardrail", "member of protected group(s) 3f0c: never").startswith("by hand.")
    assert row("guardrail", "guest account: its password lives ...").startswith("remove its")
    assert row("guardrail", "External account (x), though a member").startswith("remove its")
    assert row("new_evidence", "new evidence: ... a human owns it: nothing was changed") == (
        "follow the earlier case's row")
    assert row("new_evidence", "new evidence after the unblock: ...").startswith("investigate")
    assert row("guardrail", "anything else").startswith("by hand.")
    assert advice_for("no_such_kind", "x") is None


def test_a_fact_added_by_later_work_shows_in_every_format() -> None:
    report = case_report(worked_case(), at(200)).with_fact(
        "Integrity", "the journal's hash chain holds: 19 steps")

    assert report.facts[-1].label == "Integrity"
    assert "- **Integrity:** the journal's hash chain holds: 19 steps" in markdown(report)
    assert "<dt>Integrity</dt><dd>the journal&#x27;s hash chain holds: 19 steps</dd>" in (
        html_page(report))
    assert json.loads(as_json(report))["facts"][-1] == {
        "label": "Integrity", "value": "the journal's hash chain holds: 19 steps"}


def test_no_secret_in_any_format() -> None:
    secret = "Xk3$vQ9!mZ2#pL7%wR4&"  # shaped like a generated password
    token = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl"
    leaky = worked_case(reason=f"Graph said: password={secret} with {token}", steps=(
        *worked_case().steps, Step("verification_refused", StepStatus.INFO, at(300),
                                   f"Graph echoed {token} and {secret}")))
    report = case_report(leaky, at(400))

    for text in (markdown(report), html_page(report), as_json(report)):
        assert secret not in text and "eyJhbGciOiJSUzI1NiJ9" not in text
        assert "<redacted" in text or "&lt;redacted" in text
    assert Page(html_page(report)).plain.count("redacted") >= 2


def test_a_closed_escalation_says_who_closed_it_and_what_it_escalated_for() -> None:
    steps = (*worked_case().steps[:3],
             Step("escalated", StepStatus.INFO, at(9), "still on the Restricted users list",
                  {"kind": "still_listed"}),
             Step("closed", StepStatus.INFO, at(300), "by bob@contoso.com: removed by hand",
                  {"decided_by": "bob@contoso.com"}))
    case = worked_case(state=CaseState.CLOSED, escalation_kind="still_listed",
                       decided_by="bob@contoso.com", steps=steps,
                       reason="closed by bob@contoso.com: removed by hand")
    report = case_report(case, at(400))

    assert texts(report, "decisions") == ["closed by bob@contoso.com: removed by hand"]
    [left] = section(report, "left").items
    assert left.text == "nothing: closed by bob@contoso.com: removed by hand"
    assert {n.label: n.value for n in left.notes} == {"escalated_as": "still_listed"}


def test_an_expired_approval_is_a_decision_nobody_made() -> None:
    case = worked_case(state=CaseState.ESCALATED, escalation_kind="approval_expired",
                       reason="approval timed out: nobody approved or rejected the case "
                       "within APPROVAL_TIMEOUT (24h)", steps=worked_case().steps[:5])
    report = case_report(case, at(2000))

    assert texts(report, "decisions")[-1].startswith("nobody decided in time: approval timed")
    said = notes(report, "left")[0]
    assert said["what_to_do"].startswith("decide now: to remediate, `remediation enqueue")
