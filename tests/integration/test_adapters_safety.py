"""The adapters behind the guardrails and mailbox hygiene, over HTTP: memberships and domains
(Graph), rules and folders (Graph) with forwarding (Exchange) against the sandbox, and the
escalation webhook against a local server."""

import asyncio
import json
import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from remediation.adapters.credentials import StaticTokenCredential
from remediation.adapters.exchange_client import ExchangeAdminClient
from remediation.adapters.graph_caller import GraphCaller
from remediation.adapters.graph_directory import GraphDirectory
from remediation.adapters.mailbox import GraphExchangeMailbox
from remediation.adapters.webhook import JsonWebhook
from remediation.domain.cases import Case, CaseState
from remediation.domain.errors import PermanentError, TransientError
from remediation.domain.hygiene import suspicious_forwarding, suspicious_rules
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import BREAK_GLASS_GROUP_ID, Fault, SandboxTenant, SandboxUser
from remediation.sandbox.state import GLOBAL_ADMINISTRATOR
from remediation.service.ports import WebhookDelivery
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings
from tests.fakes import FakeAlertNotifier, FakeTenant

GRACE = "grace.taylor@contoso.com"
PATTI = "patti.fernandez@contoso.com"
LYNNE = "lynne.robbins@contoso.com"
GUEST_MAIL = "pradeep.gupta@fabrikam.com"
GUEST_UPN = "pradeep.gupta_fabrikam.com#ext#@contoso.onmicrosoft.com"


@pytest.fixture
async def graph(sandbox_url: str, tenant: SandboxTenant) -> AsyncIterator[GraphCaller]:
    caller = GraphCaller(sandbox_url, StaticTokenCredential(tenant.token), timeout=0.5,
                         max_retries=1, retry_delay=0.05)
    yield caller
    await caller.close()


@pytest.fixture
def directory(graph: GraphCaller) -> GraphDirectory:
    return GraphDirectory(graph)


@pytest.fixture
async def mailbox(graph: GraphCaller, sandbox_url: str,
                  tenant: SandboxTenant) -> AsyncIterator[GraphExchangeMailbox]:
    exchange = ExchangeAdminClient(sandbox_url, tenant.tenant_id,
                                   StaticTokenCredential(tenant.token), timeout=0.5,
                                   max_retries=1)
    yield GraphExchangeMailbox(graph, exchange)
    await exchange.close()


def gets(tenant: SandboxTenant, suffix: str) -> int:
    return sum(1 for r in tenant.requests() if r.method == "GET" and r.path.endswith(suffix))


# -- directory: memberships, domains, lookup by mail ------------------------------------------


async def test_memberships_name_groups_and_roles(directory: GraphDirectory,
                                                 tenant: SandboxTenant) -> None:
    grace = await directory.memberships(tenant.user(GRACE).id)
    patti = await directory.memberships(tenant.user(PATTI).id)

    assert grace.group_ids == frozenset({BREAK_GLASS_GROUP_ID})
    assert grace.roles == ()
    assert patti.group_ids == frozenset()
    assert patti.roles == ("Global Administrator",)


async def test_memberships_read_every_page(directory: GraphDirectory,
                                           tenant: SandboxTenant) -> None:
    tenant.graph_page_size = 2
    user = tenant.add_user(SandboxUser(
        "busy@contoso.com", "Busy", group_ids=["g1", "g2", "g3"],
        role_template_ids=[GLOBAL_ADMINISTRATOR, "fe930be7-5e62-47db-91af-98c3a49a38b1"]))

    found = await directory.memberships(user.id)

    assert found.group_ids == frozenset({"g1", "g2", "g3"})
    assert found.roles == ("Global Administrator", "User Administrator")
    assert gets(tenant, "/transitiveMemberOf") == 3


async def test_memberships_of_an_unknown_user_are_permanent(directory: GraphDirectory) -> None:
    with pytest.raises(PermanentError, match="not found"):
        await directory.memberships("00000000-0000-0000-0000-000000000000")


async def test_tenant_domains_tell_federated_ones_and_are_cached(
        directory: GraphDirectory, tenant: SandboxTenant) -> None:
    tenant.domains.append("fabrikam-corp.com")
    tenant.federated_domains.append("fabrikam-corp.com")

    first = await directory.tenant_domains()
    second = await directory.tenant_domains()

    assert first.names == frozenset({"contoso.com", "fabrikam-corp.com"})
    assert first.federated == frozenset({"fabrikam-corp.com"})
    assert second == first
    assert gets(tenant, "/v1.0/domains") == 1


async def test_only_verified_domains_are_the_tenants_when_judging_forwarding(
        directory: GraphDirectory, mailbox: GraphExchangeMailbox,
        tenant: SandboxTenant) -> None:
    tenant.unverified_domains.append("evil-mail.example")

    domains = await directory.tenant_domains()

    assert domains.names == frozenset({"contoso.com"})
    finding = suspicious_forwarding(await mailbox.forwarding(LYNNE), domains.names)
    assert finding is not None and "drop@evil-mail.example" in finding.why


async def test_tenant_domains_are_read_again_when_the_cache_expires(
        graph: GraphCaller, tenant: SandboxTenant) -> None:
    directory = GraphDirectory(graph, domains_ttl=timedelta(0))
    await directory.tenant_domains()
    await directory.tenant_domains()
    assert gets(tenant, "/v1.0/domains") == 2


async def test_a_guest_is_found_by_mail_and_by_its_ext_upn(directory: GraphDirectory,
                                                           tenant: SandboxTenant) -> None:
    by_mail = await directory.find_user(GUEST_MAIL)
    by_upn = await directory.find_user(GUEST_UPN)

    assert by_mail == by_upn
    assert by_mail.id == tenant.user(GUEST_MAIL).id
    assert by_mail.user_type == "Guest"
    assert by_mail.sender_address == GUEST_MAIL
    assert by_mail.user_principal_name == GUEST_UPN
    # Graph's /users/{key} takes an id or UPN only: the mail address needs the filter. Each
    # look-up asks key, mail and alias (nobody else may claim the address).
    assert [r.status for r in tenant.requests() if r.path.startswith("/v1.0/users")] == [
        404, 200, 200, 200, 200, 200]


async def test_guardrail_facts_of_the_seeded_accounts(directory: GraphDirectory) -> None:
    isaiah = await directory.find_user("isaiah.langer@contoso.com")
    miriam = await directory.find_user("miriam.graham@contoso.com")
    assert isaiah.on_premises_sync_enabled is True
    assert miriam.account_enabled is False


# -- mailbox: rules, folders, forwarding ------------------------------------------------------


async def test_rules_and_folders_show_the_planted_rules(mailbox: GraphExchangeMailbox,
                                                        tenant: SandboxTenant) -> None:
    lynne = tenant.user(LYNNE)
    tenant.folder_page_size = 3

    rules = await mailbox.inbox_rules(lynne.id)
    folders = await mailbox.folder_names(lynne.id)

    assert [rule["displayName"] for rule in rules] == ["..", "Invoices", "Newsletters"]
    assert folders == lynne.folders
    assert {"Inbox", "RSS Feeds", "Archive", "Newsletters"} <= set(folders.values())
    assert gets(tenant, "/mailFolders") == 3  # eight folders, three a page
    findings = suspicious_rules(rules, folders, frozenset({"contoso.com"}))
    assert [finding.name for finding in findings] == ["..", "Invoices"]


async def test_disabling_one_rule_leaves_the_others_enabled(mailbox: GraphExchangeMailbox,
                                                            tenant: SandboxTenant) -> None:
    lynne = tenant.user(LYNNE)
    first, second, third = (rule["id"] for rule in lynne.inbox_rules)

    await mailbox.disable_rule(lynne.id, second)

    enabled = {rule["id"]: rule["isEnabled"] for rule in await mailbox.inbox_rules(lynne.id)}
    assert enabled == {first: True, second: False, third: True}
    [patch] = [r for r in tenant.requests() if r.method == "PATCH"]
    assert patch.body == {"isEnabled": False}


async def test_disabling_an_unknown_rule_is_permanent(mailbox: GraphExchangeMailbox,
                                                      tenant: SandboxTenant) -> None:
    with pytest.raises(PermanentError, match="not found"):
        await mailbox.disable_rule(tenant.user(LYNNE).id, "AQAAAnope=")


async def test_forwarding_is_read_and_cleared(mailbox: GraphExchangeMailbox,
                                              tenant: SandboxTenant) -> None:
    before = await mailbox.forwarding(LYNNE)
    await mailbox.clear_forwarding(LYNNE)
    after = await mailbox.forwarding(LYNNE)

    assert before.forwarding_smtp_address == "smtp:drop@evil-mail.example"
    finding = suspicious_forwarding(before, frozenset({"contoso.com"}))
    assert finding is not None and "drop@evil-mail.example" in finding.why
    assert after.forwarding_smtp_address is None
    assert after.forwarding_address is None
    assert after.deliver_to_mailbox_and_forward is False
    assert tenant.user(LYNNE).forwarding_smtp_address is None
    [change] = [r for r in tenant.requests() if r.cmdlet == "Set-Mailbox"]
    assert change.body["CmdletInput"]["Parameters"] == {
        "Identity": LYNNE, "ForwardingSmtpAddress": None, "ForwardingAddress": None,
        "DeliverToMailboxAndForward": False}


async def test_mailbox_errors_are_translated(mailbox: GraphExchangeMailbox,
                                             tenant: SandboxTenant) -> None:
    lynne = tenant.user(LYNNE)
    tenant.add_fault(Fault(status=503, path=r"/messageRules$", times=None))
    tenant.add_fault(Fault(status=403, path=r"/mailFolders$", code="ErrorAccessDenied",
                           message="Access is denied."))
    tenant.add_fault(Fault(status=500, cmdlet="Get-Mailbox", times=None))

    with pytest.raises(TransientError, match="503"):
        await mailbox.inbox_rules(lynne.id)
    with pytest.raises(PermanentError, match=r"403 ErrorAccessDenied.*permissions"):
        await mailbox.folder_names(lynne.id)
    with pytest.raises(TransientError, match="Get-Mailbox failed with 500"):
        await mailbox.forwarding(LYNNE)
    with pytest.raises(PermanentError, match="couldn't be found"):
        await mailbox.clear_forwarding("nobody@contoso.com")


# -- the escalation webhook -------------------------------------------------------------------

SECRET_PATH = "/webhookb2/0f3c1d2e-secret-key-9a8b7c/IncomingWebhook/5e6f7a8b"
Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Receiver:
    """A local webhook endpoint that answers with the scripted responses, in order."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.bodies: list[object] = []
        self.content_types: list[str] = []
        self.times: list[float] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.times.append(time.monotonic())
        self.content_types.append(request.content_type)
        self.bodies.append(json.loads(await request.read()))
        if self.answers:
            return await self.answers.pop(0)(request)
        return web.Response(text="1")


def status(code: int, headers: dict[str, str] | None = None) -> Answer:
    async def answer(_: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text=f"answered {code}", headers=headers)

    return answer


def slow(seconds: float) -> Answer:
    async def answer(_: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.Response(text="late")

    return answer


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    app = web.Application()
    endpoint = Receiver()
    app.router.add_post(SECRET_PATH, endpoint.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    endpoint.url = f"http://127.0.0.1:{port}{SECRET_PATH}"
    yield endpoint
    await runner.cleanup()


@pytest.fixture
async def webhook(receiver: Receiver) -> AsyncIterator[JsonWebhook]:
    hook = JsonWebhook(receiver.url, timeout=0.3, retry_delay=0.01, max_retry_after=2)
    yield hook
    await hook.close()


def assert_secret_kept(error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    told = [str(error), repr(error), "".join(traceback.format_exception(error)), caplog.text]
    assert all(SECRET_PATH not in text and "secret-key" not in text for text in told)


async def test_the_payload_arrives_as_json(webhook: JsonWebhook, receiver: Receiver) -> None:
    payload = {"case": "20240501-abcd1234", "user": "rob@contoso.com", "reason": "admin",
               "steps": [{"name": "reset", "ok": False}]}
    assert await webhook.post(payload) is WebhookDelivery.DELIVERED
    assert receiver.bodies == [payload]
    assert receiver.content_types == ["application/json"]


async def test_a_5xx_is_retried(webhook: JsonWebhook, receiver: Receiver,
                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.answers = [status(500)]
    await webhook.post({"n": 1})
    assert receiver.bodies == [{"n": 1}, {"n": 1}]
    assert "escalation webhook" in caplog.text
    assert SECRET_PATH not in caplog.text


async def test_429_waits_for_retry_after(webhook: JsonWebhook, receiver: Receiver) -> None:
    receiver.answers = [status(429, {"Retry-After": "1"})]
    await webhook.post({"n": 1})
    first, second = receiver.times
    assert second - first >= 1.0


async def test_a_retry_after_too_long_to_wait_is_left_to_the_queue(
        webhook: JsonWebhook, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.answers = [status(429, {"Retry-After": "120"})]
    with pytest.raises(TransientError, match="429") as caught:
        await webhook.post({"n": 1})
    assert len(receiver.bodies) == 1
    assert_secret_kept(caught.value, caplog)


async def test_persistent_5xx_is_transient_after_three_attempts(
        webhook: JsonWebhook, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.answers = [status(503), status(502), status(500), status(200)]
    with pytest.raises(TransientError, match="escalation webhook answered 500") as caught:
        await webhook.post({"n": 1})
    assert len(receiver.bodies) == 3
    assert_secret_kept(caught.value, caplog)


async def test_a_400_is_permanent_at_once(webhook: JsonWebhook, receiver: Receiver,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.answers = [status(400)]
    with pytest.raises(PermanentError, match="refused the payload: 400") as caught:
        await webhook.post({"n": 1})
    assert len(receiver.bodies) == 1
    assert_secret_kept(caught.value, caplog)


async def test_a_timeout_is_transient(webhook: JsonWebhook, receiver: Receiver,
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.answers = [slow(1.0)]
    with pytest.raises(TransientError, match="did not answer") as caught:
        await webhook.post({"n": 1})
    assert len(receiver.bodies) == 1  # it may have arrived: no second copy from here
    assert_secret_kept(caught.value, caplog)


async def test_an_unreachable_webhook_is_transient(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hook = JsonWebhook(f"http://127.0.0.1:9{SECRET_PATH}", timeout=0.5, retry_delay=0.01)
    try:
        with pytest.raises(TransientError, match="could not be reached") as caught:
            await hook.post({"n": 1})
    finally:
        await hook.close()
    assert_secret_kept(caught.value, caplog)
    assert SECRET_PATH not in repr(hook)


def test_only_https_or_loopback_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="https") as caught:
        JsonWebhook(f"http://hooks.example.com{SECRET_PATH}")
    assert SECRET_PATH not in str(caught.value)
    JsonWebhook(f"https://hooks.example.com{SECRET_PATH}")


# -- escalations people see ---------------------------------------------------------------------

ROB, ROB_ID = "rob@contoso.com", "3f2a1b4c-0000-4000-8000-00000000abcd"


def text(body: str, code: int = 200) -> Answer:
    async def answer(_: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text=body)

    return answer


async def escalate_through(hook: JsonWebhook, **settings: Any) -> Case:
    """A case secured as far as the reset, refused at the session revocation, escalated, and
    its escalation notice delivered through ``hook``."""
    tenant = FakeTenant()
    tenant.directory.add_user(ROB, user_id=ROB_ID)
    tenant.exchange.block(ROB, created=tenant.clock.now() - timedelta(minutes=30))
    tenant.directory.fail(ROB, PermanentError("403 Forbidden <revoke>"), on="revoke_sessions")
    notifier = FakeAlertNotifier()
    workflow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=tenant.journal,
        scheduler=tenant.scheduler, clock=tenant.clock, notifier=notifier, webhook=hook,
        settings=WorkflowSettings(verify_delays=(timedelta(hours=1),), **settings))
    case = await workflow.remediate(RemediationRequest(user=ROB, request_id="req-1"))
    assert case.state is CaseState.ESCALATED
    [update] = notifier.updates
    return await workflow.update_alerts(update)


def webhook_step(case: Case) -> str:
    step = case.done("webhook:escalated")
    assert step is not None, [(s.name, s.status.value, s.detail) for s in case.steps]
    return step.detail


async def test_teams_gets_an_adaptive_card_1_4_and_a_202_is_journaled_as_accepted(
        webhook: JsonWebhook, receiver: Receiver) -> None:
    receiver.answers = [text("", 202)]

    case = await escalate_through(webhook, case_link="https://soc.example/case/{case_id}")

    [post] = receiver.bodies
    assert isinstance(post, dict) and post["type"] == "message"
    [attachment] = post["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    [facts] = [item["facts"] for item in card["body"] if item["type"] == "FactSet"]
    assert {fact["title"]: fact["value"] for fact in facts} == {
        "Case": case.case_id, "Account": ROB, "Reason": "403 Forbidden <revoke>"}
    lists = {item["id"]: [block["text"] for block in item["items"]]
             for item in card["body"] if item["type"] == "Container"}
    assert lists == {
        "done": ["✔ password reset (change forced at next sign-in)"],
        "not_done": ["✘ sign-in sessions not revoked", "✘ inbox rules and forwarding not checked",
                     "✘ block not removed from the Restricted users list"]}
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open the case",
                                "url": f"https://soc.example/case/{case.case_id}"}]
    assert webhook_step(case) == ("escalation accepted by the webhook (202): Teams shows the "
                                  "card only if the flow runs")


async def test_slack_gets_text_and_200_ok_is_journaled_as_delivered(
        webhook: JsonWebhook, receiver: Receiver) -> None:
    receiver.answers = [text("ok")]

    case = await escalate_through(webhook, webhook_format="slack")

    [post] = receiver.bodies
    assert post == {"text": (
        f"*Remediation case {case.case_id} needs a human*\n"
        f"Account: {ROB}\n"
        "Reason: 403 Forbidden &lt;revoke&gt;\n"
        "Done: password reset (change forced at next sign-in)\n"
        "Not done: sign-in sessions not revoked; inbox rules and forwarding not checked; "
        "block not removed from the Restricted users list\n"
        f"Case: `remediation status --user {ROB}`")}
    assert webhook_step(case) == "escalation delivered to the webhook"


async def test_a_plain_text_error_body_is_never_quoted_only_its_size(
        webhook: JsonWebhook, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = f"invalid_payload\x1b[31m\r\nfor {receiver.url} and {SECRET_PATH} " + "x" * 500
    receiver.answers = [text(body, 400)]

    with pytest.raises(PermanentError) as caught:
        await webhook.post({"text": "hello"})

    reason = caught.value.reason
    assert reason == (f"the escalation webhook refused the payload: 400 (a {len(body)}-"
                      "character body; not quoted: it may echo the webhook's URL)")
    assert len(receiver.bodies) == 1
    assert_secret_kept(caught.value, caplog)


async def test_a_refused_escalation_is_journaled_and_never_blocks_the_case(
        webhook: JsonWebhook, receiver: Receiver) -> None:
    receiver.answers = [text("no_text", 400)]

    case = await escalate_through(webhook, webhook_format="slack")

    assert case.state is CaseState.ESCALATED
    assert case.done("webhook:escalated") is None
    [failed] = [s for s in case.steps if s.name == "webhook:escalated" and s.status.value ==
                "failed"]
    assert failed.detail == "the escalation webhook refused the payload: 400 no_text"


async def test_no_piece_of_the_url_survives_a_long_error_body(
        webhook: JsonWebhook, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    # Whitespace collapses in the excerpt: a URL cut where the body is cut must not come
    # forward as a fragment no scrubbing recognises.
    for size in (65_536 - 40, 65_536 - 25, 65_536 - 60):
        receiver.answers = [text("error:" + " " * size + receiver.url, 400)]
        with pytest.raises(PermanentError) as caught:
            await webhook.post({"text": "hello"})
        assert "0f3c1d2e" not in caught.value.reason, caught.value.reason
        assert "webhookb2" not in caught.value.reason, caught.value.reason
        assert_secret_kept(caught.value, caplog)


def echoes(url: str) -> list[str]:
    """The webhook's URL as an error page may echo it, in encodings no scrubbing list holds."""
    return [quote(url, safe=""), quote(quote(url, safe=""), safe=""),
            json.dumps(url).replace("/", "\\/"),
            "".join(f"\\u{ord(c):04x}" if c in "/-" else c for c in url),
            url.replace("/", "&#x2F;"), url.upper()]


@pytest.mark.parametrize("code", [400, 200])
async def test_an_error_body_echoing_the_url_in_any_encoding_leaks_no_piece_of_it(
        webhook: JsonWebhook, receiver: Receiver, caplog: pytest.LogCaptureFixture,
        code: int) -> None:
    caplog.set_level(logging.DEBUG)
    for echoed in echoes(receiver.url):
        body = f"Error: bad request to {echoed}"
        receiver.answers = [text(body, code)]

        with pytest.raises(PermanentError) as caught:
            await webhook.post({"type": "message"})

        told = [str(caught.value), caught.value.reason, caplog.text]
        for piece in ("0f3c1d2e", "9a8b7c", "5e6f7a8b", "webhookb2", "WEBHOOKB2"):
            assert all(piece not in said for said in told), (echoed, told)
        assert_secret_kept(caught.value, caplog)


async def test_an_echoing_error_body_never_reaches_the_journal(
        receiver: Receiver) -> None:
    hook = JsonWebhook(receiver.url, format="slack", timeout=0.3, retry_delay=0.01)
    receiver.answers = [text(f"no_service for {quote(receiver.url, safe='')}", 404)]
    try:
        case = await escalate_through(hook, webhook_format="slack")
    finally:
        await hook.close()

    [failed] = [s for s in case.steps if s.name == "webhook:escalated"
                and s.status.value == "failed"]
    assert "0f3c1d2e" not in json.dumps([s.detail for s in case.steps])
    assert failed.detail.startswith("the escalation webhook refused the payload: 404 (")


# -- what a 2xx proves, by format ---------------------------------------------------------------


@pytest.fixture
async def slack(receiver: Receiver) -> AsyncIterator[JsonWebhook]:
    hook = JsonWebhook(receiver.url, format="slack", timeout=0.3, retry_delay=0.01)
    yield hook
    await hook.close()


@pytest.mark.parametrize(("answer", "reason"), [
    (text("invalid_payload"),
     "the escalation webhook answered 200 with an unexpected body: invalid_payload"),
    (text("no_text\x1b[31m\r\n<!channel>"),
     "the escalation webhook answered 200 with an unexpected body: (a 24-character body; "
     "not quoted: it may echo the webhook's URL)"),
    (text("1"), "the escalation webhook answered 200 with an unexpected body: (a 1-character "
     "body; not quoted: it may echo the webhook's URL)"),
    (text("", 202), "the escalation webhook answered 202 with an unexpected body: (empty)"),
    (text("", 204), "the escalation webhook answered 204 with an unexpected body: (empty)"),
])
async def test_for_slack_only_200_ok_is_delivered(slack: JsonWebhook, receiver: Receiver,
                                                  answer: Answer, reason: str) -> None:
    receiver.answers = [text("ok"), answer]
    assert await slack.post({"text": "hello"}) is WebhookDelivery.DELIVERED

    with pytest.raises(PermanentError) as caught:
        await slack.post({"text": "hello"})

    assert caught.value.reason == reason
    assert len(receiver.bodies) == 2  # not sent again: the same payload gets the same answer


async def test_a_slack_200_with_another_body_is_journaled_as_not_delivered(
        slack: JsonWebhook, receiver: Receiver) -> None:
    receiver.answers = [text("invalid_payload")]

    case = await escalate_through(slack, webhook_format="slack")

    assert case.done("webhook:escalated") is None
    [failed] = [s for s in case.steps if s.name == "webhook:escalated"
                and s.status.value == "failed"]
    assert failed.detail == ("the escalation webhook answered 200 with an unexpected body: "
                             "invalid_payload")


@pytest.mark.parametrize(("body", "error"), [
    ("Microsoft Teams endpoint returned HTTP error 429", TransientError),
    ("Microsoft Teams endpoint returned HTTP error 503", TransientError),
    ("Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP "
     "error 413", PermanentError),
    ("Error: the connector has been disabled", PermanentError),
])
async def test_a_teams_200_whose_body_says_an_error_is_not_delivered(
        webhook: JsonWebhook, receiver: Receiver, body: str,
        error: type[Exception]) -> None:
    receiver.answers = [text(body)]

    with pytest.raises(error) as caught:
        await webhook.post({"type": "message"})

    assert isinstance(caught.value, PermanentError | TransientError)
    assert caught.value.reason.startswith(
        "the escalation webhook answered 200 with an unexpected body: ")


@pytest.mark.parametrize(("answer", "outcome"), [
    (text("", 202), WebhookDelivery.ACCEPTED), (text("1"), WebhookDelivery.DELIVERED),
    (text(""), WebhookDelivery.DELIVERED), (text("", 204), WebhookDelivery.DELIVERED),
    (text('{"id": 7, "error": null}', 201), WebhookDelivery.DELIVERED)])
async def test_teams_keeps_202_accepted_and_a_plain_200_delivered(
        webhook: JsonWebhook, receiver: Receiver, answer: Answer,
        outcome: WebhookDelivery) -> None:
    receiver.answers = [answer]

    assert await webhook.post({"type": "message"}) is outcome
