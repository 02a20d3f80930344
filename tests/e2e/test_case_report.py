"""`remediation report CASE_ID` on cases the product made against the sandbox tenant over
HTTP (issue 17, point 4): a verified case, an escalated one, one a person rejected, a dry-run
and a shared mailbox's, each in Markdown, HTML and JSON, read through the command line from
the local journal as `status` reads it; and a rule name and addresses full of hostile text
that stay text in every format."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.domain.display import shown
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import SandboxTenant
from remediation.sandbox.alert_seed import (
    RESTRICTED,
    alert,
    mailbox_evidence,
    shared_mailbox_alert,
)
from remediation.sandbox.seed import BREAK_GLASS_GROUP_ID, SHARED_GROUP, SHARED_MAILBOX
from tests.cli_helpers import clean_environment, run_cli
from tests.conftest import sandbox_settings
from tests.fuzz.test_hostile_text import FORGED
from tests.rendered import Page, github, li_texts, linkified

__all__ = ["clean_environment"]  # a fixture, used by name

LYNNE, GRACE, ADELE = ("lynne.robbins@contoso.com", "grace.taylor@contoso.com",
                       "adele.vance@contoso.com")
ALEX, NESTOR = "alex.wilber@contoso.com", "nestor.wilke@contoso.com"
SECTIONS = ["trigger", "found", "changes", "verification", "left", "decisions", "pauses",
            "undos", "alerts", "journal"]
PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "dl", "dt",
             "dd", "section", "div", "ul", "li", "time", "span", "p", "code", "em", "footer"}


class Reports:
    """The worker on the sandbox, and a person reading reports at the command line; one
    local database."""

    def __init__(self, url: str, tenant: SandboxTenant, db: Path,
                 monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                 **settings: Any) -> None:
        self.tenant, self.db = tenant, db
        self.monkeypatch, self.capsys = monkeypatch, capsys
        self.app: Application = bootstrap(sandbox_settings(
            url, tenant, db, sweep_restricted_users=False,
            protected_group_ids=frozenset({BREAK_GLASS_GROUP_ID}), **settings))

    async def request(self, *users: str) -> None:
        for user in users:
            await self.app.requests.send(RemediationRequest(
                user=user, reason="help desk ticket 4711", requested_by="alice@contoso.com",
                request_id=uuid.uuid4().hex))
        await self.run()

    async def alert(self, raised: dict[str, Any]) -> None:
        self.tenant.add_alert(raised)
        await self.app.intake.poll()
        await self.run()

    async def run(self) -> None:
        await self.app.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=True)

    async def case(self, user: str) -> Case:
        [case] = await self.app.journal.list_cases(user)
        return case

    async def cli(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        return await asyncio.to_thread(run_cli, self.monkeypatch, self.capsys,
                                       {"REMEDIATION_DB": str(self.db)}, *args)

    async def report(self, user: str) -> dict[str, Any]:
        """The case's report in each format, each checked for its shape."""
        case = await self.case(user)
        said: dict[str, Any] = {}
        for shape, extra in (("markdown", ()), ("html", ("--html",)), ("json", ("--json",))):
            code, out, err = await self.cli("report", case.case_id, *extra)
            assert (code, err) == (0, ""), err
            said[shape] = out
        assert_shapes(said, case)
        said["json"] = json.loads(said["json"])
        said["page"] = Page(said["html"]).plain
        return said


def assert_shapes(said: dict[str, str], case: Case) -> None:
    """Markdown renders to our headings and lists only; the page loads nothing and prints;
    JSON holds every section and the case as the journal has it."""
    for render in (github, linkified):
        page = Page(render(said["markdown"]))
        assert set(page.tags) <= {"h1", "h2", "h3", "ul", "li", "strong", "em", "code", "p"}
        assert not page.attributes and page.tags.count("h2") == len(SECTIONS)
    page = Page(said["html"])
    assert set(page.tags) <= PAGE_TAGS
    assert not {name for name, _ in page.attributes} & {"href", "src", "style", "action"}
    assert "default-src 'none'" in said["html"] and "@media print" in said["html"]
    body = json.loads(said["json"])
    assert list(body["sections"]) == SECTIONS
    assert body["case"]["case_id"] == case.case_id and body["case"]["state"] == case.state
    assert body["facts"][0] == {"label": "Case", "value": case.case_id}


@pytest.fixture
async def reports(sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
                  clean_environment: None, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> AsyncIterator[Reports]:
    made = Reports(sandbox_url, tenant, tmp_path / "state.db", monkeypatch, capsys)
    yield made
    await made.app.aclose()


async def test_a_verified_case_says_what_was_found_changed_undone_and_verified(
        reports: Reports) -> None:
    await reports.request(LYNNE)
    case = await reports.case(LYNNE)
    assert case.state is CaseState.VERIFIED, case.reason

    said = await reports.report(LYNNE)

    text, body, page = said["markdown"], said["json"], said["page"]
    changes = {item["text"]: item for item in body["sections"]["changes"]}
    assert changes["inbox rule “Invoices” disabled"]["undo"].startswith("enable it again")
    assert "Set-Mailbox" in changes["mailbox forwarding cleared"]["undo"]
    assert changes["disabled inbox rule '.' (not shown by Graph)"]["undo"] == (
        f"Enable-InboxRule -Identity 16752869479666417665 -Mailbox {LYNNE}")
    assert all(item["at"] for item in changes.values())
    # Uncut, unlike a card: the consent's undo holds the whole Graph body that grants it again.
    [consent] = [item for text, item in changes.items()
                 if text.startswith("removed consent grant Mail Organizer Pro")]
    assert consent["text"].endswith("on Microsoft Graph: Mail.ReadWrite Mail.Send "
                                    "offline_access User.Read")
    assert consent["undo"].endswith('"scope": "Mail.ReadWrite Mail.Send offline_access '
                                    'User.Read"}')
    methods = {i["text"]: i["outcome"] for i in body["sections"]["found"]["signin_methods"]}
    assert methods["Microsoft Authenticator on SM-G991B"] == "removed"
    assert "kept" in methods.values()
    permissions = body["sections"]["found"]["mailbox_permissions"]
    assert (permissions[0]["text"], permissions[0]["outcome"]) == (
        "megan.bowen@contoso.com (FullAccess)", "reported, left in place for a person")
    assert body["sections"]["verification"][-1]["text"].startswith("verified")
    # Left for a person: what was only reported (the FullAccess given by a stolen session).
    left = [item["text"] for item in body["sections"]["left"]]
    assert left == ["reported, left in place: deleted inbox rule 'Payroll'",
                    "reported, left in place: mailbox permission megan.bowen@contoso.com "
                    "(FullAccess)"]
    # Markdown: the same, an address in a code span (GitHub links it however it is escaped).
    assert "- **" in text and "  - *undo:* Enable-InboxRule -Identity" in text
    assert "mailbox permission `megan.bowen@contoso.com` (FullAccess)" in text
    assert "## What was changed, and how to undo it" in text
    for item in body["sections"]["changes"]:
        assert shown(item["text"], 4000) in page
    assert "Every journal step" in page and "reset_password (done)" in page


async def test_an_escalated_case_names_its_kind_and_what_to_do(reports: Reports) -> None:
    await reports.request(GRACE)

    said = await reports.report(GRACE)

    [first, *not_done] = said["json"]["sections"]["left"]
    assert first["kind"] == "guardrail" and first["text"].startswith(
        "escalated: member of protected group(s)")
    assert first["what_to_do"] == ("by hand. If the membership itself is the mistake, remove "
                                   "it, then `--force`")
    assert first["force"].startswith("`--force` is `remediation enqueue --user ADDRESS")
    assert "password not reset" in [item["text"] for item in not_done]
    assert said["json"]["sections"]["changes"] == []
    assert "- _nothing was changed in the tenant_" in said["markdown"]
    assert "  - *what to do:* by hand. If the membership itself is the mistake, remove it, " \
           "then `--force`" in said["markdown"]
    assert "<code>--force</code>" in said["html"]
    assert "nothing was changed in the tenant" in said["page"]


async def test_a_case_a_person_rejected_says_who_and_why_and_that_nothing_changed(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, clean_environment: None,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    reports = Reports(sandbox_url, tenant, tmp_path / "state.db", monkeypatch, capsys,
                      mode="approve")
    try:
        await reports.alert(alert(RESTRICTED, [mailbox_evidence(ADELE)]))
        waiting = await reports.case(ADELE)
        assert waiting.state is CaseState.AWAITING_APPROVAL
        code, _, err = await reports.cli("reject", waiting.case_id, "--by", "alice@contoso.com",
                                         "--reason", "the owner confirmed the mailing")
        assert code == 0, err
        await reports.run()  # the rejection's comment on the alert

        said = await reports.report(ADELE)
    finally:
        await reports.app.aclose()

    body = said["json"]
    facts = {fact["label"]: fact["value"] for fact in body["facts"]}
    assert facts["Decided by"] == "alice@contoso.com" and facts["State"] == "rejected"
    decisions = [item["text"] for item in body["sections"]["decisions"]]
    assert decisions[-1] == ("rejected by alice@contoso.com: the owner confirmed the "
                             "mailing")
    assert decisions[0].startswith("waiting for a person's approval: run `remediation "
                                   "approve")
    assert body["sections"]["changes"] == []
    assert "stays with a person" in body["sections"]["left"][0]["text"]
    [alert_state] = body["sections"]["alerts"]
    assert alert_state["text"].endswith("its status was not changed by the robot")
    assert alert_state["comments"] == "1 comment(s) by the robot"
    assert len(tenant.user(ADELE).password_changes) == 0
    assert "rejected by `alice@contoso.com`: the owner confirmed the mailing" in (
        said["markdown"])
    assert "Decided by" in said["page"]


async def test_a_dry_run_says_what_it_would_have_done_and_that_nothing_changed(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, clean_environment: None,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    reports = Reports(sandbox_url, tenant, tmp_path / "state.db", monkeypatch, capsys,
                      mode="dry-run")
    try:
        await reports.request(LYNNE)
        assert (await reports.case(LYNNE)).state is CaseState.PLANNED
        said = await reports.report(LYNNE)
    finally:
        await reports.app.aclose()

    body = said["json"]
    found = body["sections"]["found"]
    assert "reset the password (change forced at next sign-in)" in [
        item["text"] for item in found["plan"]]
    assert {item["outcome"] for item in found["rules"]} == {"planned: disable or clear"}
    assert "planned: to remove" in {item["outcome"] for item in found["consent_grants"]}
    assert body["sections"]["changes"] == []
    assert body["sections"]["left"][0]["text"].startswith("everything: a dry-run")
    assert "- _nothing was changed in the tenant (dry-run)_" in said["markdown"]
    assert "planned (dry-run)" in said["page"]
    assert len(tenant.user(LYNNE).password_changes) == 0


async def test_a_shared_mailbox_case_names_its_delegates_and_the_case_it_opened(
        reports: Reports) -> None:
    await reports.alert(shared_mailbox_alert(SHARED_MAILBOX, NESTOR))

    mailbox = await reports.report(SHARED_MAILBOX)
    delegate = await reports.report(NESTOR)

    body = mailbox["json"]
    holders = {item["text"]: item["rights"]
               for item in body["sections"]["found"]["mailbox_permissions"]}
    assert holders[ALEX] == "FullAccess, SendOnBehalf" and holders[NESTOR] == "SendAs"
    assert holders[SHARED_GROUP] == "FullAccess"
    assert holders[f"a case of its own opened for {NESTOR}"] == "SendAs"
    [left] = body["sections"]["left"][:1]
    assert left["kind"] == "shared_mailbox" and left["what_to_do"].startswith(
        "secure each delegate named")
    assert body["sections"]["changes"] == []
    assert body["sections"]["alerts"][0]["text"].endswith("set to status=inProgress")
    # The delegate's own case: started by the mailbox's, secured, verified.
    started = delegate["json"]["sections"]["trigger"][0]["text"]
    assert started.startswith("a shared mailbox's case: ") and SHARED_MAILBOX in started
    assert [item["text"] for item in delegate["json"]["sections"]["changes"]][:2] == [
        "password reset", "sign-in sessions revoked"]
    assert f"`{NESTOR}`" in mailbox["markdown"] and NESTOR in mailbox["page"]


HOSTILE_NAME = ("\x1b]8;;https://evil.example/\x1b\\[click](https://evil.example)"
                f"\x1b]8;;\x1b\\ <img src=x onerror=alert(1)> *urgent* \n{FORGED} "
                "www.evil.example # `x` | y")
HOSTILE_ADDRESS = "[me](https://evil.example)<b>x</b>@evil-mail.example"


async def test_hostile_rule_names_and_addresses_stay_text_in_every_format(
        reports: Reports, tenant: SandboxTenant) -> None:
    lynne = tenant.user(LYNNE)
    lynne.inbox_rules[0]["displayName"] = HOSTILE_NAME
    lynne.inbox_rules[0]["actions"]["forwardTo"][0]["emailAddress"]["address"] = (
        HOSTILE_ADDRESS)
    await reports.request(LYNNE)

    said = await reports.report(LYNNE)

    rules = said["json"]["sections"]["found"]["rules"]
    assert rules[0]["text"] == HOSTILE_NAME  # exact for tools
    assert HOSTILE_ADDRESS in rules[0]["why"]
    name, address = shown(HOSTILE_NAME, 4000), shown(HOSTILE_ADDRESS, 4000)
    for render in (github, linkified):
        html = render(said["markdown"])
        assert not Page(html).attributes  # no link, no image
        items = [item.strip() for item in li_texts(html)]
        assert name in items  # the rule, as its name, in "What was found"
        assert any(address in item for item in items)
    assert name in said["page"] and address in said["page"]
    assert "<img" not in said["html"] and "&lt;img src=x" in said["html"]
    for line in said["markdown"].splitlines():  # no line of the attacker's
        assert line == "" or line.startswith(("# ", "## ", "### ", "- ", "  - ")), line
        assert not line.startswith(FORGED)
