"""GraphCaller against Graph's (and the network's) unkind answers, over HTTP with the real
msgraph-sdk client: redirects, bodies the SDK cannot read, pages without a value list, next
links elsewhere or in a circle, throttling across pages, and answers that drip."""

import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from remediation.adapters import retrying
from remediation.adapters.credentials import StaticTokenCredential
from remediation.adapters.graph_caller import GraphCaller
from remediation.adapters.graph_directory import GraphDirectory
from remediation.domain.errors import PermanentError, RemediationError, TransientError
from remediation.sandbox import Fault, SandboxServer, SandboxTenant, SandboxUser
from remediation.sandbox.state import GLOBAL_ADMINISTRATOR

ADELE = "adele.vance@contoso.com"
PASSWORD = "Tq9!mZ4#vL2@pX7$"
TIER0_GROUP = "9a6e3c1f-5b7d-4e28-b0c4-3f8d2a1e6b97"


@pytest.fixture
async def caller(sandbox_url: str, tenant: SandboxTenant) -> AsyncIterator[GraphCaller]:
    graph = GraphCaller(sandbox_url, StaticTokenCredential(tenant.token), timeout=1.0,
                        max_retries=1, retry_delay=0.01)
    yield graph
    await graph.close()


@pytest.fixture
def directory(caller: GraphCaller) -> GraphDirectory:
    return GraphDirectory(caller)


@dataclass
class Elsewhere:
    """Another server (a sandbox with its own tenant) at another origin: it must never hear
    from us."""

    tenant: SandboxTenant
    url: str

    @property
    def netloc(self) -> str:
        return self.url.split("://", 1)[1]


@pytest.fixture
async def elsewhere() -> AsyncIterator[Elsewhere]:
    other = SandboxTenant()
    server = SandboxServer(other)
    yield Elsewhere(other, await server.start())
    await server.stop()


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits between retries, recorded instead of slept."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(retrying, "asyncio", types.SimpleNamespace(sleep=sleep))
    return waits


def graph_calls(directory: GraphDirectory, adele_id: str,
                ) -> dict[str, Callable[[], Awaitable[object]]]:
    return {"revoke": lambda: directory.revoke_sessions(adele_id),
            "reset": lambda: directory.reset_password(adele_id, PASSWORD),
            "find": lambda: directory.find_user(ADELE),
            "roles": lambda: directory.memberships(adele_id)}


# -- only our errors leave GraphCaller ----------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_an_error_and_never_followed(
        directory: GraphDirectory, tenant: SandboxTenant, elsewhere: Elsewhere,
        status: int) -> None:
    adele = tenant.user(ADELE)
    target = f"{elsewhere.url}/v1.0/users/{adele.id}"
    tenant.add_fault(Fault(status=status, raw_body="", location=target, times=None))

    for name, call in graph_calls(directory, adele.id).items():
        with pytest.raises(PermanentError) as raised:
            await call()
        assert "Graph answered a redirect" in raised.value.reason, name
        assert "check GRAPH_ENDPOINT" in raised.value.reason
        assert elsewhere.url not in raised.value.reason
    assert elsewhere.tenant.requests() == []
    assert adele.password_changes == [] and adele.sessions_revoked == 0


async def test_a_redirect_to_the_same_graph_is_no_success(directory: GraphDirectory,
                                                          tenant: SandboxTenant,
                                                          sandbox_url: str) -> None:
    adele = tenant.user(ADELE)
    tenant.add_fault(Fault(status=302, raw_body="", path=r"^/v1\.0/users/[^/]+$",
                           location=f"{sandbox_url}/v1.0/users/{adele.id}"))

    with pytest.raises(PermanentError, match="redirect"):
        await directory.find_user(ADELE)


@pytest.mark.parametrize("fault", [
    Fault(status=302, raw_body="", location="https://127.0.0.1:1/v1.0/users", times=None),
    Fault(status=302, raw_body="", location="http://[::1", times=None),
    Fault(status=200, raw_body="<html><body>Sign in to continue</body></html>", times=None),
    Fault(status=200, raw_body='{"value": [', content_type="application/json", times=None),
    Fault(status=200, raw_body="\xff\xfe{", content_type="application/json", times=None),
], ids=["scheme-change", "bad-location", "200-html", "200-broken-json", "200-bad-utf8"])
async def test_nothing_but_our_errors_leaves_graph(directory: GraphDirectory,
                                                   tenant: SandboxTenant, fault: Fault) -> None:
    tenant.add_fault(fault)

    reasons: list[str] = []
    for name, call in graph_calls(directory, tenant.user(ADELE).id).items():
        try:
            await call()
        except RemediationError as error:
            reasons.append(error.reason)
            continue
        except Exception as error:
            pytest.fail(f"{name}: {type(error).__module__}.{type(error).__name__}: {error}")
        pytest.fail(f"{name} succeeded on {fault.raw_body!r}")

    assert not [r for r in reasons if "Traceback" in r or "127.0.0.1" in r], reasons


# -- pages: a value list, next links only to Graph, never in a circle ------------------------


@pytest.mark.parametrize("path", ["transitiveMemberOf$", "roleAssignments$",
                                  "roleEligibilityScheduleInstances$",
                                  "group/eligibilityScheduleInstances$",
                                  "group/assignmentScheduleInstances$"])
async def test_an_empty_page_never_means_no_roles(directory: GraphDirectory,
                                                  tenant: SandboxTenant, path: str) -> None:
    boss = tenant.add_user(SandboxUser("boss@contoso.com", "Boss",
                                       role_template_ids=[GLOBAL_ADMINISTRATOR]))
    tenant.add_fault(Fault(status=200, raw_body="", path=path, times=None))

    with pytest.raises(TransientError, match="answered without a value list"):
        await directory.memberships(boss.id)


async def test_a_next_link_to_another_host_is_refused_and_reported(
        directory: GraphDirectory, tenant: SandboxTenant, elsewhere: Elsewhere) -> None:
    adele = tenant.user(ADELE)
    tenant.graph_next_link = (f"{elsewhere.url}/v1.0/users/{adele.id}"
                              "/transitiveMemberOf?$skiptoken=1")

    with pytest.raises(PermanentError, match="next link to another host") as raised:
        await directory.memberships(adele.id)

    assert elsewhere.netloc in raised.value.reason and "skiptoken" not in raised.value.reason
    assert elsewhere.tenant.requests() == []


@pytest.mark.parametrize("link", ["http://[::1/v1.0/users", "http://127.0.0.1:99999/v1.0/x",
                                  "https://user@127.0.0.1/v1.0/users", "not a url"])
async def test_a_next_link_that_cannot_be_read_is_our_error(
        directory: GraphDirectory, tenant: SandboxTenant, link: str) -> None:
    tenant.graph_next_link = link

    with pytest.raises(PermanentError, match="next link"):
        await directory.memberships(tenant.user(ADELE).id)


async def test_a_next_link_that_repeats_stops_the_listing(
        directory: GraphDirectory, tenant: SandboxTenant, sandbox_url: str) -> None:
    adele = tenant.user(ADELE)
    tenant.graph_next_link = (f"{sandbox_url}/v1.0/users/{adele.id}"
                              "/transitiveMemberOf?$skiptoken=0")

    with pytest.raises(TransientError, match="next link it had sent before"):
        await directory.memberships(adele.id)

    pages = [r for r in tenant.requests() if r.path.endswith("/transitiveMemberOf")]
    assert len([r for r in pages if "$skiptoken" not in r.query]) == 1
    # Its listing followed the link once and stopped. The guardrails' other first-round
    # listings, read side by side, got the same link (the sandbox sends it on every page):
    # each followed it at most once before the failure cancelled them.
    followed = [r for r in pages if "$skiptoken" in r.query]
    assert 1 <= len(followed) <= 5


async def test_one_listing_waits_within_one_budget_across_its_pages(
        caller: GraphCaller, tenant: SandboxTenant, slept: list[float]) -> None:
    many = tenant.add_user(SandboxUser("many@contoso.com", "Many"))
    for n in range(5):
        tenant.add_group(f"g{n}", f"Group {n}")
        many.group_ids.append(f"g{n}")
    tenant.graph_page_size = 1
    # Each page is throttled once (25 s asked), then answered: each wait fits the budget,
    # four of them do not.
    for after in (0, 1, 1, 1):
        tenant.add_fault(Fault(status=429, retry_after=25, path="transitiveMemberOf$",
                               after=after))
    budgeted = GraphCaller(caller._endpoint, StaticTokenCredential(tenant.token), timeout=1.0,
                           max_retries=3, retry_delay=0.01)
    try:
        with pytest.raises(TransientError):
            await GraphDirectory(budgeted).memberships(many.id)
    finally:
        await budgeted.close()

    assert sum(slept) <= retrying.DEFAULT_MAX_WAIT, slept


async def test_an_answer_that_drips_times_out_as_a_whole(directory: GraphDirectory,
                                                         tenant: SandboxTenant) -> None:
    # Each byte comes quickly (no socket read times out), the whole answer never in time.
    tenant.add_fault(Fault(drip=0.05, path="transitiveMemberOf$", times=None))
    started = time.monotonic()

    with pytest.raises(TransientError, match="timed out"):
        await directory.memberships(tenant.user(ADELE).id)

    assert time.monotonic() - started < 4.0  # two attempts of timeout=1.0, and a short wait
