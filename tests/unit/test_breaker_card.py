"""The grouped circuit-breaker notice people read: every held case named (id, account shown
escaped, when), the command to handle them, within what Teams and Slack take."""

import json
from datetime import UTC, datetime, timedelta

from remediation.service.breaker_card import PAGE, HeldCase, Page, breaker_payload
from remediation.service.settings import WorkflowSettings

AT = datetime(2026, 1, 5, 9, 12, 3, tzinfo=UTC)
TEAMS_LIMIT = 28 * 1024  # https://learn.microsoft.com/connectors/teams/ (known issues)
SLACK_LIMIT = 40_000


def settings(format: str) -> WorkflowSettings:
    return WorkflowSettings(verify_delays=(timedelta(hours=1),), webhook_format=format,
                            max_resets_per_hour=20)


def held(n: int, user: str = "rob@contoso.com") -> list[HeldCase]:
    return [HeldCase(f"20260105-{k:08x}", user, AT + timedelta(seconds=k)) for k in range(n)]


def test_the_teams_card_names_each_held_case_with_its_account_and_time() -> None:
    payload = breaker_payload(held(3), Page(3), settings("teams"))

    [attachment] = payload["attachments"]
    card = attachment["content"]
    assert (payload["type"], card["type"], card["version"]) == ("message", "AdaptiveCard", "1.4")
    assert card["body"][0]["text"] == "Circuit breaker open: 3 cases held, nothing changed"
    [facts] = [item["facts"] for item in card["body"] if item["type"] == "FactSet"]
    assert facts[1] == {"title": "20260105-00000001",
                        "value": "rob@contoso.com, held 2026-01-05 09:12:04 UTC"}
    text = json.dumps(payload)
    assert "remediation enqueue --user ACCOUNT --force" in text
    assert "MAX_REMEDIATIONS_PER_HOUR (20)" in text


def test_slack_escapes_the_account_and_shows_the_command_as_code() -> None:
    hostile = "a<b>&c@contoso.com\u202e"
    payload = breaker_payload(held(1, hostile), Page(1), settings("slack"))

    lines = payload["text"].splitlines()
    assert lines[0] == "*Circuit breaker open: 1 case held, nothing changed*"
    [row] = [line for line in lines if line.startswith("•")]
    assert "a&lt;b&gt;&amp;c@contoso.com" in row and "<b>" not in row
    assert "\u202e" not in payload["text"]
    assert "`remediation enqueue --user ACCOUNT --force`" in payload["text"]


def test_a_full_page_of_the_longest_accounts_fits_both_webhooks() -> None:
    longest = "x" * 300 + "@contoso.com"  # shown cut to 256 characters
    page = Page(3 * PAGE, part=2, parts=3)
    teams = json.dumps(breaker_payload(held(PAGE, longest), page, settings("teams")))
    slack = breaker_payload(held(PAGE, longest), page, settings("slack"))["text"]

    assert len(teams.encode()) < TEAMS_LIMIT
    assert len(slack) < SLACK_LIMIT
    assert "150 cases held, nothing changed (part 2 of 3)" in teams
