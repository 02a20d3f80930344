"""Exchange admin REST as it really answers (as public tools see it), against the sandbox over HTTP:
free-text Reason refused, bodies missing on any status, causes in details or innererror,
"not found" meaning "not listed", the whole list from the right host only, Retry-After within
a budget, and every timestamp form. The same budget on Graph (SDK retries off, comments never
repeated)."""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from remediation.adapters.credentials import StaticTokenCredential
from remediation.adapters.exchange_client import ExchangeAdminClient
from remediation.adapters.exchange_restricted import (
    ExchangeRestrictedSenders,
    parse_exchange_time,
)
from remediation.adapters.graph_alerts import GraphAlerts
from remediation.adapters.graph_caller import GraphCaller
from remediation.adapters.graph_directory import GraphDirectory
from remediation.adapters.mailbox import GraphExchangeMailbox
from remediation.adapters.retrying import MAX_RETRY_AFTER, RetryBudget, parse_retry_after
from remediation.domain.errors import PermanentError, RemediationError, TransientError
from remediation.sandbox import Fault, SandboxTenant, SandboxUser

ADELE = "adele.vance@contoso.com"
ALEX = "alex.wilber@contoso.com"  # in the directory, not blocked
NOT_FOUND = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
TRANSIENT_CAUSES = [
    "Microsoft.Exchange.Data.Storage.ServerBusyException",
    "Microsoft.Exchange.Configuration.CmdletProxyNotAvailableFailure",
    "Microsoft.Exchange.Data.TransientException",
    "Microsoft.Exchange.Data.BackendCommunicationException",
]


@pytest.fixture
async def client(sandbox_url: str, tenant: SandboxTenant) -> AsyncIterator[ExchangeAdminClient]:
    exchange = ExchangeAdminClient(sandbox_url, tenant.tenant_id,
                                   StaticTokenCredential(tenant.token), timeout=1.0,
                                   max_retries=2, page_size=500,
                                   budget=RetryBudget(retries=2, base_delay=0.05))
    yield exchange
    await exchange.close()


@pytest.fixture
def restricted(client: ExchangeAdminClient) -> ExchangeRestrictedSenders:
    return ExchangeRestrictedSenders(client)


@pytest.fixture
async def graph(sandbox_url: str, tenant: SandboxTenant) -> AsyncIterator[GraphCaller]:
    caller = GraphCaller(sandbox_url, StaticTokenCredential(tenant.token), timeout=1.0,
                         max_retries=2, retry_delay=0.05)
    yield caller
    await caller.close()


def cmdlets(tenant: SandboxTenant, name: str) -> list[float]:
    return [r.at for r in tenant.requests() if r.cmdlet == name]


# -- 1. unblock without free text -----------------------------------------------------------


async def test_the_sandbox_refuses_a_free_text_reason_as_not_found(
        client: ExchangeAdminClient, tenant: SandboxTenant) -> None:
    with pytest.raises(PermanentError, match="couldn't be found"):
        await client.invoke("Remove-BlockedSenderAddress",
                            {"SenderAddress": ADELE, "Reason": "Remediation case 1"})
    assert ADELE in tenant.blocked_addresses()  # the block stays
    [entry] = [e for e in tenant.blocked_entries() if e["SenderAddress"] == ADELE]
    await client.invoke("Remove-BlockedSenderAddress",
                        {"SenderAddress": ADELE, "Reason": entry["Reason"]})
    assert ADELE not in tenant.blocked_addresses()  # the entry's own Reason selects it


async def test_an_unblock_refused_as_not_found_while_still_listed_is_not_done(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(status=400, code="BadRequest", cmdlet="Remove-BlockedSenderAddress",
                           exception_type=NOT_FOUND,
                           message=f"The operation couldn't be performed because object "
                                   f"'{ADELE}' couldn't be found."))
    with pytest.raises(PermanentError, match="still lists it"):
        await restricted.unblock(ADELE)
    assert ADELE in tenant.blocked_addresses()


# -- 2. bodies may be missing on any status ---------------------------------------------------


@pytest.mark.parametrize("access", ["no_app_role", "no_directory_role"])
async def test_401_and_403_without_json_name_what_is_missing(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant, access: str) -> None:
    tenant.exchange.app_access = access  # type: ignore[assignment]
    with pytest.raises(PermanentError) as raised:
        await restricted.blocked_entries(ADELE)
    assert "Exchange.ManageAsApp" in raised.value.reason
    assert "Exchange Administrator" in raised.value.reason
    assert len(cmdlets(tenant, "Get-BlockedSenderAddress")) == 1  # never retried


@pytest.mark.parametrize(("status", "cause_in"), [
    (400, "both"), (400, "message"), (403, "details"), (500, "innererror"), (503, "both")])
async def test_exchanges_own_words_for_a_role_it_does_not_take_are_missing_rights(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant, status: int,
        cause_in: str) -> None:
    """"The role assigned to application … isn't supported in this scenario", wherever it
    sits and on any status (a 5xx included): permanent, with the fix, never retried."""
    tenant.exchange.app_access = "role_not_supported"
    tenant.exchange.app_access_status = status
    tenant.exchange.app_access_cause_in = cause_in  # type: ignore[assignment]
    with pytest.raises(PermanentError) as raised:
        await restricted.blocked_entries(ADELE)
    assert "Exchange.ManageAsApp" in raised.value.reason
    assert "Exchange Administrator" in raised.value.reason
    assert "isn't supported in this scenario" in raised.value.reason
    assert len(cmdlets(tenant, "Get-BlockedSenderAddress")) == 1  # never retried


async def test_user_is_not_allowed_to_call_is_missing_rights(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant) -> None:
    tenant.exchange.app_access = "not_allowed_to_call"
    with pytest.raises(PermanentError) as raised:
        await restricted.unblock(ADELE)
    assert "not allowed to call Remove-BlockedSenderAddress" in raised.value.reason
    assert "Exchange Administrator" in raised.value.reason
    assert ADELE in tenant.blocked_addresses()


@pytest.mark.parametrize("empty_success", ["empty", "no_content", "json"])
async def test_an_empty_success_is_success(restricted: ExchangeRestrictedSenders,
                                           tenant: SandboxTenant, empty_success: str) -> None:
    tenant.exchange.empty_success = empty_success  # type: ignore[assignment]
    await restricted.unblock(ADELE)
    assert ADELE not in tenant.blocked_addresses()
    assert len(cmdlets(tenant, "Remove-BlockedSenderAddress")) == 1


async def test_set_mailbox_with_an_empty_answer_succeeds(
        sandbox_url: str, graph: GraphCaller, client: ExchangeAdminClient,
        tenant: SandboxTenant) -> None:
    lynne = "lynne.robbins@contoso.com"
    await GraphExchangeMailbox(graph, client).clear_forwarding(lynne)
    assert tenant.user(lynne).forwarding_smtp_address is None


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_an_empty_throttling_or_server_error_is_transient_and_retried(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant, status: int) -> None:
    tenant.add_fault(Fault(status=status, raw_body="", cmdlet="Get-BlockedSenderAddress"))
    assert len(await restricted.blocked_entries(ADELE)) == 1
    assert len(cmdlets(tenant, "Get-BlockedSenderAddress")) == 2


@pytest.mark.parametrize("status", [200, 204, 400, 401, 403, 404, 429, 500, 502, 503])
@pytest.mark.parametrize("body", ["", "<html>gateway</html>", "{", "[]", '{"error": 7}',
                                  '{"error": {"details": "x", "innererror": []}}', "null"])
async def test_no_answer_lets_anything_but_our_errors_out(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant, status: int,
        body: str) -> None:
    tenant.add_fault(Fault(status=status, raw_body=body, cmdlet="Get-BlockedSenderAddress",
                           times=None))
    with contextlib.suppress(RemediationError):  # anything else fails the test
        await restricted.blocked_entries(ADELE)


# -- 3. classify from the cause, not the status ---------------------------------------------


@pytest.mark.parametrize("cause", TRANSIENT_CAUSES)
@pytest.mark.parametrize("where", ["details", "innererror"])
async def test_transient_families_on_400_are_retried_wherever_the_cause_sits(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant, cause: str,
        where: str) -> None:
    tenant.exchange.inner_key = "internalexception"
    tenant.add_fault(Fault(status=400, code="BadRequest", cmdlet="Get-BlockedSenderAddress",
                           exception_type=cause, cause_in=where, message="try again later"))
    assert len(await restricted.blocked_entries(ADELE)) == 1
    assert len(cmdlets(tenant, "Get-BlockedSenderAddress")) == 2


async def test_a_not_found_cause_on_a_500_is_not_listed_and_not_retried(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(status=500, code="InternalServerError",
                           cmdlet="Get-BlockedSenderAddress", exception_type=NOT_FOUND,
                           cause_in="innererror",
                           message=f"The operation couldn't be performed because object "
                                   f"'{ADELE}' couldn't be found."))
    assert await restricted.blocked_entries(ADELE) == []
    assert len(cmdlets(tenant, "Get-BlockedSenderAddress")) == 1


async def test_the_unblock_limit_on_a_500_is_permanent_and_not_retried(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(status=500, code="InternalServerError",
                           cmdlet="Remove-BlockedSenderAddress", cause_in="details",
                           exception_type="Microsoft.Exchange.Management.Tasks."
                                          "UnblockLimitExceededException",
                           message="The user has reached the limit of unblocks for this "
                                   "period. Please contact Microsoft support."))
    with pytest.raises(PermanentError, match="only Microsoft support"):
        await restricted.unblock(ADELE)
    assert len(cmdlets(tenant, "Remove-BlockedSenderAddress")) == 1


async def test_a_wrong_tenant_is_not_taken_for_not_listed(
        sandbox_url: str, tenant: SandboxTenant) -> None:
    wrong = ExchangeAdminClient(sandbox_url, "00000000-0000-0000-0000-000000000000",
                                StaticTokenCredential(tenant.token), timeout=1.0,
                                max_retries=0)
    try:
        with pytest.raises(PermanentError):
            await ExchangeRestrictedSenders(wrong).blocked_entries(ADELE)
    finally:
        await wrong.close()


# -- 4. "is it listed?" has two answers -----------------------------------------------------


@pytest.mark.parametrize("answer", ["not_found", "empty"])
async def test_an_unlisted_sender_is_not_listed_either_way(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant, answer: str) -> None:
    tenant.exchange.unlisted_sender = answer  # type: ignore[assignment]
    assert await restricted.blocked_entries(ALEX) == []
    assert len(await restricted.blocked_entries(ADELE)) == 1


# -- 5. the whole list, from the right host -------------------------------------------------


def add_blocked(tenant: SandboxTenant, count: int) -> None:
    for index in range(count):
        address = f"bulk{index:04d}@contoso.com"
        tenant.add_user(SandboxUser(address, f"Bulk {index}"))
        tenant.block(address)


async def test_the_whole_list_is_read_with_no_parameter_the_cmdlet_lacks(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant) -> None:
    """Get-BlockedSenderAddress has -SenderAddress only: a ResultSize is a binding error in a
    real tenant (and in the sandbox), so the sweep asks with no parameters and pages."""
    add_blocked(tenant, 1000)
    entries = await restricted.all_blocked()
    assert len(entries) == len(tenant.blocked_addresses()) > 1000
    sent = [r for r in tenant.requests() if r.cmdlet == "Get-BlockedSenderAddress"]
    assert len(sent) > 1  # paged
    assert all(r.body["CmdletInput"]["Parameters"] == {} for r in sent)
    assert all(r.status == 200 for r in sent)


async def test_next_links_in_either_spelling_are_followed(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant) -> None:
    tenant.exchange_page_size = 5
    tenant.exchange.next_link_key = "odata.nextLink"
    entries = await restricted.all_blocked()
    assert len(entries) == len(tenant.blocked_addresses())
    assert len(cmdlets(tenant, "Get-BlockedSenderAddress")) > 2


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """Another host that records what reaches it."""
    seen: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"value": [{"SenderAddress": "planted@evil.example"}]})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.2:{port}", seen
    await runner.cleanup()


async def test_a_next_link_to_another_host_is_refused_and_the_token_stays_home(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant,
        elsewhere: tuple[str, list[dict[str, str]]]) -> None:
    origin, seen = elsewhere
    tenant.exchange_page_size = 5
    tenant.exchange.next_link_origin = origin
    with pytest.raises(PermanentError, match="another host"):
        await restricted.all_blocked()
    assert seen == []


# -- 6. Retry-After within a budget ---------------------------------------------------------


async def test_a_short_retry_after_is_honoured(restricted: ExchangeRestrictedSenders,
                                               tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(status=429, raw_body="", retry_after=1,
                           cmdlet="Get-BlockedSenderAddress"))
    assert len(await restricted.blocked_entries(ADELE)) == 1
    first, second = cmdlets(tenant, "Get-BlockedSenderAddress")
    assert second - first >= 1.0


async def test_a_retry_after_beyond_the_budget_fails_at_once_carrying_the_delay(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(status=429, retry_after=120, cmdlet="Get-BlockedSenderAddress",
                           times=None))
    started = time.monotonic()
    with pytest.raises(TransientError) as raised:
        await asyncio.wait_for(restricted.blocked_entries(ADELE), 10)
    assert time.monotonic() - started < 5
    assert raised.value.retry_after == 120
    assert "asked to wait 120 s" in raised.value.reason
    assert len(cmdlets(tenant, "Get-BlockedSenderAddress")) == 1


async def test_graph_throttling_beyond_the_budget_fails_at_once_carrying_the_delay(
        graph: GraphCaller, tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(status=429, retry_after=120, method="GET", target=ADELE,
                           times=None, code="TooManyRequests"))
    started = time.monotonic()
    with pytest.raises(TransientError) as raised:
        await asyncio.wait_for(GraphDirectory(graph).find_user(ADELE), 10)
    assert time.monotonic() - started < 5
    assert raised.value.retry_after == 120
    assert len([r for r in tenant.requests() if r.target == ADELE]) == 1


async def test_graph_honours_a_short_retry_after(graph: GraphCaller,
                                                 tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(status=503, retry_after=1, method="GET", target=ADELE))
    user = await GraphDirectory(graph).find_user(ADELE)
    assert user.sender_address == ADELE
    first, second = [r.at for r in tenant.requests() if r.target == ADELE][:2]
    assert second - first >= 1.0


async def test_an_alert_comment_is_never_sent_twice(graph: GraphCaller,
                                                    tenant: SandboxTenant) -> None:
    tenant.add_alert({"id": "da-1", "title": "User restricted from sending email",
                      "createdDateTime": "2026-11-29T10:00:00Z"})
    tenant.add_fault(Fault(status=503, method="POST", path=r"/comments$"))
    with pytest.raises(TransientError):
        await GraphAlerts(graph).comment("da-1", "remediation started")
    posts = [r for r in tenant.requests() if r.method == "POST" and r.path.endswith("/comments")]
    assert len(posts) == 1


# -- 7. timestamps in every form ------------------------------------------------------------


TEN = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-26T10:00:00.1234567Z", TEN.replace(microsecond=123456)),
    ("2026-11-26T10:00:00.1234567+00:00", TEN.replace(microsecond=123456)),
    ("2026-11-26T11:00:00.1234567+01:00", TEN.replace(microsecond=123456)),
    ("2026-11-26T10:00:00.123Z", TEN.replace(microsecond=123000)),
    ("2026-11-26T10:00:00Z", TEN),
    ("2026-11-26T10:00:00", TEN),  # no offset: UTC
    ("/Date(1795687200123)/", TEN.replace(microsecond=123000)),
    ("/Date(1795687200123+0000)/", TEN.replace(microsecond=123000)),
    ("/Date(1795687200123+0100)/", TEN.replace(microsecond=123000)),  # ms are UTC anyway
])
def test_exchange_times_in_every_form(text: str, expected: datetime) -> None:
    parsed = parse_exchange_time(text)
    assert parsed is not None and parsed.utcoffset() is not None
    assert parsed == expected


def test_dotnet_dates_keep_their_instant_and_offset() -> None:
    moment = parse_exchange_time("/Date(1714645531895-0500)/")
    assert moment is not None
    assert moment.utcoffset() == -timedelta(hours=5)
    assert moment.astimezone(UTC) == datetime.fromtimestamp(1714645531.895, UTC)
    assert parse_exchange_time("/Date(1714645531895+0000)/") == moment


@pytest.mark.parametrize("text", ["", "  ", "Tuesday, sometime", "/Date(abc)/",
                                  "/Date(99999999999999999999)/", "2026-13-45T99:00:00Z"])
def test_unreadable_times_are_unknown(text: str) -> None:
    assert parse_exchange_time(text) is None


@pytest.mark.parametrize("style", ["iso7", "ms", "ms_offset"])
async def test_every_time_format_the_sandbox_writes_is_read(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant, style: str) -> None:
    tenant.exchange.time_format = style  # type: ignore[assignment]
    [entry] = await restricted.blocked_entries(ADELE)
    assert entry.created is not None
    assert abs((entry.created - datetime.now(UTC)).total_seconds()) < 60


# -- what a hostile review found: answers that must never read as "not listed" or "done" --


GATEWAY_PAGES = [
    (404, "<html><body>The resource you are looking for could not be found.</body></html>"),
    (503, "<html><body>Service Unavailable: the page couldn't be found</body></html>"),
    (404, json.dumps({"error": {"code": "NotFound",
                                "message": "Tenant 'x' could not be found."}})),
    (400, json.dumps({"error": {"code": "BadRequest", "message": "Error executing cmdlet",
                                "details": [{"message": f"|{NOT_FOUND}|The operation couldn't "
                                             "be performed because object 'APP:SystemMailbox"
                                             "{bb558c35}' couldn't be found."}]}})),
]


@pytest.mark.parametrize(("status", "body"), GATEWAY_PAGES)
async def test_a_not_found_that_is_not_about_the_sender_is_never_not_listed(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant, status: int,
        body: str) -> None:
    tenant.add_fault(Fault(status=status, raw_body=body, times=None,
                           cmdlet="Get-BlockedSenderAddress"))
    with pytest.raises(RemediationError):
        await restricted.blocked_entries(ADELE)
    tenant.clear_faults()
    tenant.add_fault(Fault(status=status, raw_body=body, times=None,
                           cmdlet="Remove-BlockedSenderAddress"))
    with pytest.raises(RemediationError):
        await restricted.unblock(ADELE)
    assert ADELE in tenant.blocked_addresses()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_never_an_empty_success(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant, status: int) -> None:
    tenant.add_fault(Fault(status=status, raw_body="", times=None))
    with pytest.raises(PermanentError, match="redirect"):
        await restricted.blocked_entries(ADELE)
    with pytest.raises(PermanentError, match="redirect"):
        await restricted.unblock(ADELE)
    assert ADELE in tenant.blocked_addresses()


def busy(shape: str) -> str:
    cause = "|Microsoft.Exchange.Data.Storage.ServerBusyException|The server is busy."
    error: dict[str, object] = {"code": "BadRequest", "message": "Error executing cmdlet"}
    if shape == "innererror.message":
        error["innererror"] = {"message": cause}
    elif shape == "nested":
        error["innererror"] = {"internalexception": {"message": "outer",
                                                     "innerException": {"message": cause}}}
    elif shape == "innerError casing":
        error["innerError"] = {"InternalException": {"Message": cause}}
    elif shape == "details as a string":
        error["details"] = cause
    elif shape == "details as an object":
        error["details"] = {"message": cause}
    elif shape == "after 1000 characters":
        error["details"] = [{"message": "x" * 1200 + cause}]
    return json.dumps({"error": error})


@pytest.mark.parametrize("shape", ["innererror.message", "nested", "innerError casing",
                                   "details as a string", "details as an object",
                                   "after 1000 characters"])
async def test_a_transient_cause_is_found_in_any_shape(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant, shape: str) -> None:
    tenant.add_fault(Fault(status=400, raw_body=busy(shape), cmdlet="Get-BlockedSenderAddress"))
    assert len(await restricted.blocked_entries(ADELE)) == 1
    assert len(cmdlets(tenant, "Get-BlockedSenderAddress")) == 2


@pytest.mark.parametrize("text", [
    "This sender has been released the maximum number of times. Contact Microsoft Support.",
    "Unblock quota exceeded for this account.",
    "The user has reached the limit of unblocks for this period. Please contact Microsoft "
    "support."])
async def test_the_unblock_limit_in_other_words_is_permanent_even_on_a_500(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant, text: str) -> None:
    tenant.add_fault(Fault(status=500, code="InternalServerError", times=None,
                           cmdlet="Remove-BlockedSenderAddress", message=text))
    with pytest.raises(PermanentError, match="only Microsoft support"):
        await restricted.unblock(ADELE)
    assert len(cmdlets(tenant, "Remove-BlockedSenderAddress")) == 1


async def test_the_budget_holds_for_all_pages_of_one_listing(
        sandbox_url: str, tenant: SandboxTenant) -> None:
    tenant.exchange_page_size = 8
    for after in (0, 1):  # the first request of page 1, then (one let through) of page 2
        tenant.add_fault(Fault(status=429, retry_after=0.6, after=after,
                               cmdlet="Get-BlockedSenderAddress"))
    exchange = ExchangeAdminClient(sandbox_url, tenant.tenant_id,
                                   StaticTokenCredential(tenant.token), timeout=1.0,
                                   max_retries=3, budget=RetryBudget(retries=3, max_wait=1.0))
    try:
        with pytest.raises(TransientError):
            await ExchangeRestrictedSenders(exchange).all_blocked()
    finally:
        await exchange.close()
    assert len(cmdlets(tenant, "Get-BlockedSenderAddress")) == 3  # page 1 twice, page 2 once


async def test_a_dripping_answer_times_out_as_a_whole(
        sandbox_url: str, tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(drip=0.05, cmdlet="Get-BlockedSenderAddress", times=None))
    exchange = ExchangeAdminClient(sandbox_url, tenant.tenant_id,
                                   StaticTokenCredential(tenant.token), timeout=0.5,
                                   max_retries=0)
    started = time.monotonic()
    try:
        with pytest.raises(TransientError, match="timed out"):
            await ExchangeRestrictedSenders(exchange).blocked_entries(ADELE)
    finally:
        await exchange.close()
    assert time.monotonic() - started < 1.5


async def test_an_expired_next_link_reads_the_list_again_once(
        restricted: ExchangeRestrictedSenders, tenant: SandboxTenant) -> None:
    tenant.exchange_page_size = 5
    tenant.exchange.expire_next_links = 1
    assert len(await restricted.all_blocked()) == len(tenant.blocked_addresses())
    tenant.exchange.expire_next_links = 2
    with pytest.raises(TransientError, match="expired"):
        await restricted.all_blocked()


async def test_a_next_link_in_a_circle_stops(restricted: ExchangeRestrictedSenders,
                                            tenant: SandboxTenant) -> None:
    tenant.exchange_page_size = 5
    tenant.exchange.repeat_next_link = True
    with pytest.raises(TransientError, match="sent before"):
        await restricted.all_blocked()
    assert len(cmdlets(tenant, "Get-BlockedSenderAddress")) == 2


@pytest.mark.parametrize("link", ["http://[::1", "https://outlook.office365.com@evil.example/x",
                                  "//evil.example/x", "/relative", 7])
async def test_a_malformed_or_foreign_next_link_is_our_error(
        client: ExchangeAdminClient, link: object) -> None:
    with pytest.raises(PermanentError, match="another host"):
        client._next_link("Get-BlockedSenderAddress", {"@odata.nextLink": link})


def test_an_absurd_retry_after_is_capped() -> None:
    assert parse_retry_after("99999999999") == MAX_RETRY_AFTER
    assert parse_retry_after("Thu, 01 Jan 2099 00:00:00 GMT") == MAX_RETRY_AFTER
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("nan") is None


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59.9999999", "/Date(253402300799999)/"])
def test_dotnet_max_value_is_no_time(text: str) -> None:
    assert parse_exchange_time(text) is None
