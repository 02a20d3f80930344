"""Text from outside stays text in a case report (issue 17, point 4): rendered by GitHub
(cmark-gfm, which autolinks addresses and URLs) or by markdown-it with linkify (which links
bare domains), a rule name or an address is shown as it came, never a link, an image, an
emphasis, a heading, a list or HTML; in the HTML page it is text, and the page loads
nothing; in JSON it is exact."""

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings

from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.display import shown
from remediation.entrypoints.case_report_render import (
    TEXT_LIMIT,
    as_json,
    html_page,
    markdown,
    md,
)
from remediation.service.case_report import case_report
from remediation.service.report_model import CaseReport, Fact, Item, Note, Section
from tests.fuzz.test_hostile_text import PIECES, hostile_text
from tests.rendered import Page, github, li_texts, linkified

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
TEXTS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow])
PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "dl", "dt",
             "dd", "section", "div", "ul", "li", "time", "span", "p", "code", "em", "footer",
             "table", "tr", "th", "td"}
OUR_ATTRIBUTES = {"lang", "charset", "http-equiv", "content", "name", "id", "class",
                  "datetime"}
HOSTILE = [*PIECES, "mallory@evil.example", "see www.evil.example", "evil.example",
           "https://evil.example/x", "mailto:a@b.example", "<img src=x onerror=alert(1)>",
           "![x](https://evil.example/p.png)", "# heading", "1. item", "- item", "> quote",
           "| a | b |", "$x^2$", "~~gone~~", "__bold__", "<script>alert(1)</script>",
           "[a]: https://evil.example", "`x@y.example`", "``a`b@c.example", "@mention",
           "javascript:alert(1)", "&#x3C;b&#x3E;", "\\", "line\nbreak <b>x</b>"]


def assert_text_only(html: str, text: str, tags: set[str]) -> None:
    page = Page(html)
    assert set(page.tags) <= tags, html
    assert not page.attributes, html
    assert [item.strip() for item in li_texts(html)][:1] == [shown(text, TEXT_LIMIT)], html


def test_every_hostile_piece_renders_as_itself_in_markdown() -> None:
    for text in HOSTILE:
        for render in (github, linkified):
            assert_text_only(render(f"- {md(text)}\n"), text, {"ul", "li", "code"})


@TEXTS
@given(hostile_text)
def test_any_outside_text_renders_as_itself_in_markdown(text: str) -> None:
    for render in (github, linkified):
        assert_text_only(render(f"- {md(text)}\n"), text, {"ul", "li", "code"})


@TEXTS
@given(hostile_text)
def test_any_outside_text_is_only_text_in_the_html_page(text: str) -> None:
    report = CaseReport("20260105-0badcafe", T0, (Fact("Account", text),), (
        Section("rules", "Inbox rules", (Item(text, T0, (Note("why", text),)),)),
        Section("found", "What was found", parts=(
            Section("block", "The block", (Item(text),)),))), {"user": text})

    page = Page(html_page(report))

    assert_our_page(page)
    said = shown(text, TEXT_LIMIT)
    assert not said or page.plain.count(said) >= 4
    assert json.loads(as_json(report))["case"]["user"] == text  # exact for tools


def hostile_case(text: str) -> Case:
    """A verified case whose rule names, addresses, methods, apps, delegates and reasons
    are ``text``."""
    address = f"{text}@evil.example"
    finding = {"rule_id": "AQAAAJ5dZqA=", "name": text, "why": f"forwardTo {address}",
               "snapshot": {}}
    found = {"kind": "sign-in method", "key": "k1", "name": text, "disposition": "remove",
             "why": text, "added": T0.isoformat(), "added_from": text,
             "undo": f"re-register {text}"}
    steps = (
        Step("received", StepStatus.INFO, T0, "alert request", {
            "source": "alert", "reason": f"Defender alert: {text}", "alert_ids": [text]}),
        Step("lookup_user", StepStatus.DONE, T0, f"found {address}", {"user_id": text}),
        Step("guardrails", StepStatus.DONE, T0, text, {"roles": [text], "mailbox": {
            "kind": text, "delegates": [{"name": text, "rights": [text]}]}}),
        Step("plan", StepStatus.DONE, T0, text, {"actions": [text], "findings": [finding]}),
        Step("reset_password", StepStatus.DONE, T0, "new random password set"),
        Step("mailbox_hygiene", StepStatus.DONE, T0, text, {"findings": [finding],
                                                             "mode": "disable"}),
        Step("signin_methods", StepStatus.DONE, T0, text, {
            "found": [found], "removed": ["k1"], "stayed": [],
            "changes": [{"what": f"removed {text}", "undo": f"re-register {text}"}]}),
        Step("unblock", StepStatus.INFO, T0, f"{address} listed since {text}",
             {"address": address}),
        Step("alert_status:verified:" + text, StepStatus.DONE, T0, f"alert {text} resolved"),
        Step("paused", StepStatus.INFO, T0, f"paused by {text}: {text}"),
    )
    return Case(case_id="20260105-0badcafe", user=address, state=CaseState.ESCALATED,
                created_at=T0, updated_at=T0, reason=text, escalation_kind="refused",
                listed_addresses=(address,), aliases=(address, text), alert_ids=(text,),
                decided_by=text, steps=steps)


SECTIONS = 10  # h2 of a case report
PARTS = 9  # h3: the parts of "What was found"


@TEXTS
@given(hostile_text)
def test_a_report_full_of_outside_text_keeps_its_shape_when_rendered(text: str) -> None:
    report = case_report(hostile_case(text), T0)
    document = markdown(report)

    for render in (github, linkified):
        html = render(document)
        page = Page(html)
        assert set(page.tags) <= {"h1", "h2", "h3", "ul", "li", "strong", "em", "code", "p"}
        assert not page.attributes, html  # no link, no image, nothing of the attacker's
        assert page.tags.count("h1") == 1
        assert page.tags.count("h2") == SECTIONS and page.tags.count("h3") == PARTS
    for line in document.splitlines():  # no line of the attacker's: each one is ours
        assert line == "" or line.startswith(("# ", "## ", "### ", "- ", "  - ")), line
    page = Page(html_page(report))
    assert_our_page(page)
    assert page.tags.count("h2") == SECTIONS and page.tags.count("h3") == PARTS


def assert_our_page(page: Page) -> None:
    """Only our tags, and only our attributes with our values: no link, no source, no
    script, no style of the attacker's."""
    assert set(page.tags) <= PAGE_TAGS
    for name, value in page.attributes:
        assert name in OUR_ATTRIBUTES, name
        if name == "class":
            assert value in {"facts", "notes", "label", "none", "n"}, value
        elif name == "id":
            assert value is not None and value.replace("_", "").isalpha(), value
        elif name == "datetime":
            assert value == T0.isoformat(), value
