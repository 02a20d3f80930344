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

import pytest
from aiohttp import web

from remediation.adapters.credentials import StaticTokenCredential
from remediation.adapters.exchange_client import ExchangeAdminClient
from remediation.adapters.graph_caller import GraphCaller
from remediation.adapters.graph_directory import GraphDirectory
from remediation.adapters.mailbox import GraphExchangeMailbox
from remediation.adapters.webhook import JsonWebhook
from remediation.domain.errors import PermanentError, TransientError
from remediation.domain.hygiene import suspicious_forwarding, suspicious_rules
from remediation.sandbox import BREAK_GLASS_GROUP_ID, Fault, SandboxTenant, SandboxUser
from remediation.sandbox.state import GLOBAL_ADMINISTRATOR

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
    # Graph's /users/{key} takes an id or UPN only: the mail address needs the filter.
    assert [r.status for r in tenant.requests() if r.path.startswith("/v1.0/users")] == [
        404, 200, 200]


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
    await webhook.post(payload)
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
