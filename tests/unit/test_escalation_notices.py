"""Escalations people see: what the robot did and did not do, in the Teams card, the Slack
text and the Defender comment; outside text shown escaped; the format is a setting."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from remediation.config import ConfigError, Settings
from remediation.domain.cases import Case, CaseState
from remediation.domain.errors import PermanentError, TransientError
from remediation.domain.requests import RemediationRequest
from remediation.service.escalations import escalation_payload
from remediation.service.ports import WebhookDelivery
from remediation.service.progress import progress
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings
from tests.fakes import (
    FakeAlertNotifier,
    FakeAlertSource,
    FakeAlertUpdater,
    FakeMailbox,
    FakeTenant,
    FakeWebhook,
)

ROB = "rob@contoso.com"
ROB_ID = "3f2a1b4c-0000-4000-8000-00000000abcd"
DELAYS = (timedelta(hours=1), timedelta(hours=4), timedelta(hours=24))
HOSTILE = ("Exchange said:\r\n\x1b[31mBLOCKED\x1b[0m\x07 \x1b]0;owned\x07<!channel> & "
           "[click](https://evil.example) \u202egnp.exe\x9b1m")


def delete_rule(rule_id: str, name: str) -> dict[str, Any]:
    return {"id": rule_id, "displayName": name, "isEnabled": True, "actions": {"delete": True}}


@dataclass
class Harness:
    tenant: FakeTenant
    alerts: FakeAlertUpdater
    notifier: FakeAlertNotifier
    webhook: FakeWebhook
    mailbox: FakeMailbox

    def workflow(self, **settings: Any) -> RemediationWorkflow:
        return RemediationWorkflow(
            directory=self.tenant.directory, exchange=self.tenant.exchange,
            journal=self.tenant.journal, scheduler=self.tenant.scheduler,
            clock=self.tenant.clock, settings=WorkflowSettings(verify_delays=DELAYS, **settings),
            alerts=self.alerts, notifier=self.notifier, mailbox=self.mailbox,
            webhook=self.webhook, alert_source=FakeAlertSource(stand_in_sender=ROB))

    async def escalate(self, **settings: Any) -> Case:
        workflow = self.workflow(**settings)
        case = await workflow.remediate(RemediationRequest(
            user=ROB, request_id="alert-req-1", source="alert", alert_ids=("fa-1",)))
        assert case.state is CaseState.ESCALATED
        queued, self.notifier.updates = self.notifier.updates, []
        for update in queued:
            case = await workflow.update_alerts(update)
        return case


@pytest.fixture
def h() -> Harness:
    tenant = FakeTenant()
    tenant.directory.add_user(ROB, user_id=ROB_ID)
    tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30))
    mailbox = FakeMailbox()
    mailbox.add_rule(ROB_ID, delete_rule("r1", "Clean up"))
    mailbox.add_rule(ROB_ID, delete_rule("r2", "zz\x1b[8m hidden"))
    return Harness(tenant, FakeAlertUpdater(), FakeAlertNotifier(), FakeWebhook(), mailbox)


def texts(node: object) -> list[str]:
    """Every string a person can read in a card: texts, fact titles and values, actions."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("text", "title", "value", "url") and isinstance(value, str):
                found.append(value)
            else:
                found += texts(value)
    elif isinstance(node, list):
        for item in node:
            found += texts(item)
    return found


def container(card: dict[str, Any], container_id: str) -> list[str]:
    [found] = [item for item in card["body"] if item.get("id") == container_id]
    return [block["text"] for block in found["items"]]


def assert_printable(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text, repr(text)
    assert not [c for c in text if unicodedata.category(c) in ("Cc", "Cf")], repr(text)


# -- what was done and what was not -----------------------------------------------------------


async def test_an_escalated_case_lists_what_was_done_and_what_was_not(h: Harness) -> None:
    h.tenant.exchange.fail(ROB, PermanentError("unblock limit reached for today"), on="unblock")

    case = await h.escalate()

    done, not_done = progress(case)
    assert done[0] == "password reset (change forced at next sign-in)"
    assert done[1] == "sign-in sessions revoked"
    assert done[2].startswith("2 inbox rules disabled")
    assert not_done == ("block not removed from the Restricted users list",)
    [comment] = h.alerts.comments_on("fa-1")[1:]
    assert "needs a human" in comment and "unblock limit reached" in comment
    assert "Done: password reset (change forced at next sign-in); sign-in sessions revoked; " \
           "2 inbox rules disabled" in comment
    assert "Not done: block not removed from the Restricted users list." in comment


async def test_a_case_stopped_after_the_reset_says_the_rest_was_not_done(h: Harness) -> None:
    h.tenant.directory.fail(ROB, PermanentError("403 Forbidden"), on="revoke_sessions")

    case = await h.escalate()

    done, not_done = progress(case)
    assert done == ("password reset (change forced at next sign-in)",)
    assert not_done == ("sign-in sessions not revoked",
                        "2 suspicious inbox rules not disabled: “Clean up”, “zz hidden”",
                        "block not removed from the Restricted users list")
    card = escalation_payload(case, WorkflowSettings(verify_delays=DELAYS))
    content = card["attachments"][0]["content"]
    assert container(content, "done") == ["✔ password reset (change forced at next sign-in)"]
    assert container(content, "not_done")[0] == "✘ sign-in sessions not revoked"


async def test_an_account_never_touched_lists_nothing_done(h: Harness) -> None:
    h.tenant.directory.fail(ROB, PermanentError("403 Forbidden"), on="reset_password")

    case = await h.escalate()

    done, not_done = progress(case)
    assert done == ()
    assert not_done[0] == "password not reset" and not_done[-1].startswith("block not removed")
    [post] = h.webhook.payloads
    assert container(post["attachments"][0]["content"], "done") == [
        "✔ nothing: no change was made to the account"]


async def test_a_step_that_never_got_a_clear_answer_is_not_called_undone(h: Harness) -> None:
    h.tenant.directory.fail(ROB, TransientError("Graph did not answer within 30 s"),
                            on="reset_password")
    workflow = h.workflow()
    with pytest.raises(TransientError):  # the reset may have happened: nobody knows
        await workflow.remediate(RemediationRequest(user=ROB, request_id="req-1"))

    case = await workflow.give_up("req-1", ROB, "gave up after 10 deliveries")

    assert case is not None and case.state is CaseState.ESCALATED
    assert progress(case).not_done[0] == "password reset not confirmed (no clear answer)"
    assert progress(case).not_done[1] == "sign-in sessions not revoked"


async def test_report_mode_says_the_rules_were_left_as_they_are(h: Harness) -> None:
    h.tenant.exchange.fail(ROB, PermanentError("unblock limit reached"), on="unblock")

    case = await h.escalate(hygiene="report")

    assert progress(case).not_done[0].startswith(
        "2 suspicious inbox rules left enabled (MAILBOX_HYGIENE=report)")


# -- the Teams card and the Slack text --------------------------------------------------------


async def test_the_teams_card_is_an_adaptive_card_1_4_in_a_workflows_message(
        h: Harness) -> None:
    h.tenant.exchange.fail(ROB, PermanentError("unblock limit reached"), on="unblock")

    case = await h.escalate(case_link="https://soc.example/cases/{case_id}?user={user}")

    [post] = h.webhook.payloads
    assert set(post) == {"type", "attachments"} and post["type"] == "message"
    [attachment] = post["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    [facts] = [item["facts"] for item in card["body"] if item["type"] == "FactSet"]
    assert {fact["title"]: fact["value"] for fact in facts} == {
        "Case": case.case_id, "Account": ROB, "Reason": "unblock limit reached"}
    assert container(card, "not_done") == ["✘ block not removed from the Restricted users list"]
    assert [action["type"] for action in card["actions"]] == ["Action.OpenUrl"]
    assert card["actions"][0]["url"] == (f"https://soc.example/cases/{case.case_id}"
                                         "?user=rob%40contoso.com")
    used = {item["type"] for item in card["body"]}
    assert used <= {"TextBlock", "FactSet", "Container"}  # nothing newer than 1.4


async def test_a_link_that_is_not_a_url_is_shown_as_text(h: Harness) -> None:
    h.tenant.exchange.fail(ROB, PermanentError("unblock limit reached"), on="unblock")

    await h.escalate()

    [post] = h.webhook.payloads
    card = post["attachments"][0]["content"]
    assert "actions" not in card
    assert f"remediation status --user {ROB}" in texts(card)


async def test_the_slack_text_says_the_same_in_mrkdwn(h: Harness) -> None:
    h.tenant.exchange.fail(ROB, PermanentError("unblock limit reached"), on="unblock")

    case = await h.escalate(webhook_format="slack", case_link="https://soc.example/{case_id}")

    [post] = h.webhook.payloads
    assert set(post) == {"text"}
    text = post["text"]
    assert text.startswith(f"*Remediation case {case.case_id} needs a human*\n")
    assert f"Account: {ROB}\n" in text
    assert "Reason: unblock limit reached\n" in text
    assert "Done: password reset (change forced at next sign-in); sign-in sessions revoked; " \
           "2 inbox rules disabled" in text
    assert "Not done: block not removed from the Restricted users list\n" in text
    assert text.endswith(f"<https://soc.example/{case.case_id}|Open the case>")


async def test_hostile_text_is_shown_escaped_in_the_card_the_text_and_the_comment(
        h: Harness) -> None:
    h.tenant.exchange.fail(ROB, PermanentError(HOSTILE + "x" * 5000), on="unblock")

    case = await h.escalate()
    slack = escalation_payload(case, WorkflowSettings(verify_delays=DELAYS,
                                                      webhook_format="slack"))

    assert case.reason is not None and "\x1b" in case.reason  # stored as it came
    [post] = h.webhook.payloads
    card = post["attachments"][0]["content"]
    for text in [*texts(card), slack["text"].replace("\n", " "), *h.alerts.comments_on("fa-1")]:
        assert_printable(text)
        assert "](" not in text  # no markdown link from outside text
        assert "owned" not in text  # a terminal title sequence is dropped whole
    reason = {fact["title"]: fact["value"] for item in card["body"] if item["type"] == "FactSet"
              for fact in item["facts"]}["Reason"]
    assert reason.startswith("Exchange said: BLOCKED <!channel> & [click] (https://evil.example)")
    assert len(reason) <= 500 and reason.endswith("…")
    assert "“zz hidden”" in json.dumps(card, ensure_ascii=False)
    assert "&lt;!channel&gt; &amp; [click]" in slack["text"]
    assert "<!channel>" not in slack["text"]
    assert len(slack["text"]) < 2000
    assert len(json.dumps(card)) < 10_000


def test_the_webhook_outcome_is_a_plain_word() -> None:
    assert [outcome.value for outcome in WebhookDelivery] == ["delivered", "accepted"]


# -- the setting ------------------------------------------------------------------------------


def test_the_format_is_teams_unless_set_to_slack() -> None:
    assert Settings.from_env({}).escalation_webhook_format == "teams"
    assert Settings.from_env({"ESCALATION_WEBHOOK_FORMAT": " Slack "}
                             ).escalation_webhook_format == "slack"


@pytest.mark.parametrize("value", ["msteams", "MessageCard", "json"])
def test_an_unknown_format_is_a_config_error_naming_the_setting(value: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(
            f"ESCALATION_WEBHOOK_FORMAT: {value.lower()!r} must be teams or slack")):
        Settings.from_env({"ESCALATION_WEBHOOK_FORMAT": value})
