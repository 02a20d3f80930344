"""When the circuit breaker trips, one grouped post names every case it holds (issue 16,
point 7): two workers on one shared journal (SQLite, or Table Storage on Azurite), the
escalation webhook's far end in the sandbox (Teams Workflows and Slack), never one post per
held case, none lost, none twice when a message comes again."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from remediation.adapters.table_journal import build_table_journal
from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState, StepStatus
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import SandboxTenant
from remediation.sandbox.seed import storm_addresses
from remediation.sandbox.webhook_routes import SLACK_PATH, TEAMS_PATH
from remediation.service.ports import Journal
from tests.conftest import sandbox_settings

OpenJournal = Callable[[], Journal | None]
LIMIT = 2  # MAX_REMEDIATIONS_PER_HOUR: of the eight storm accounts, six are held
# The first delay is how long a grouped post waits for the storm's other holds (the shorter of
# two minutes and the first verification delay): long enough for all eight to reach the
# breaker, however slow the machine.
DELAYS = (timedelta(seconds=5), timedelta(seconds=5.5), timedelta(seconds=6))
JOHANNA = "johanna.lorenz@contoso.com"


@pytest.fixture(params=["sqlite", "table"])
async def shared_journal(request: pytest.FixtureRequest) -> AsyncIterator[OpenJournal]:
    """How each worker opens the journal they share: the SQLite file of the settings (None),
    or one table on Azurite."""
    if request.param == "sqlite":
        yield lambda: None
        return
    connection_string = request.getfixturevalue("azurite_table_connection_string")
    table_name = f"journal{uuid.uuid4().hex}"
    opened: list[Any] = []

    def opener() -> Journal:
        journal = build_table_journal(endpoint=None, connection_string=connection_string,
                                      table_name=table_name)
        opened.append(journal)
        return journal

    yield opener
    for journal in opened:
        await journal.close()


def two_workers(url: str, tenant: SandboxTenant, db: Path, open_journal: OpenJournal,
                format: str = "teams") -> list[Application]:
    hook = url + (SLACK_PATH if format == "slack" else TEAMS_PATH)
    return [bootstrap(sandbox_settings(url, tenant, db, sweep_restricted_users=False,
                                       max_remediations_per_hour=LIMIT,
                                       escalation_webhook_url=hook, verify_delays=DELAYS,
                                       escalation_webhook_format=format),
                      journal=open_journal()) for _ in range(2)]


async def drain(*apps: Application) -> None:
    await asyncio.gather(*(app.worker(poll_interval=0.02, retry_backoff=0.05)
                           .run(until_idle=True) for app in apps))


async def request(app: Application, user: str) -> None:
    await app.requests.send(RemediationRequest(user=user, reason="storm",
                                               request_id=uuid.uuid4().hex))


def posted_text(tenant: SandboxTenant) -> list[str]:
    return [json.dumps(post.payload, ensure_ascii=False) for post in tenant.webhook.posts]


def held(cases: list[Case]) -> list[Case]:
    return [case for case in cases if case.escalation_kind == "circuit_breaker"]


@pytest.mark.parametrize("format", ["teams", "slack"])
async def test_one_post_names_every_case_the_breaker_holds(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
        shared_journal: OpenJournal, format: str) -> None:
    apps = two_workers(sandbox_url, tenant, tmp_path / "state.db", shared_journal, format)
    try:
        for n, user in enumerate(storm_addresses()):  # half the requests to each worker
            await request(apps[n % 2], user)
        await drain(*apps)
        cases = await apps[0].journal.list_cases()
    finally:
        for app in apps:
            await app.aclose()

    stopped = held(cases)
    assert len(stopped) == len(storm_addresses()) - LIMIT
    [post] = tenant.webhook.posts  # one post, never one per held case
    assert post.format == format and post.shown
    [text] = posted_text(tenant)
    for case in stopped:
        assert case.state is CaseState.ESCALATED  # held is still escalated, for status
        assert case.case_id in text and case.user in text
        grouped = case.done("webhook:escalated")
        assert grouped is not None and grouped.data.get("grouped") is True
        named = case.done("webhook:grouped")
        assert named is not None and f"{len(stopped)} held" in named.detail
    for case in cases:
        if case not in stopped:
            assert case.state is CaseState.VERIFIED
            assert case.case_id not in text
    assert "remediation enqueue --user" in text and "--force" in text
    assert f"{len(stopped)} case" in post.headline


async def test_a_message_that_comes_again_posts_nothing_and_a_later_hold_gets_its_own_post(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
        shared_journal: OpenJournal) -> None:
    apps = two_workers(sandbox_url, tenant, tmp_path / "state.db", shared_journal)
    try:
        for n, user in enumerate(storm_addresses()):
            await request(apps[n % 2], user)
        await drain(*apps)
        assert len(tenant.webhook.posts) == 1
        first = set(case.case_id for case in held(await apps[0].journal.list_cases()))

        # Every grouped-post message delivered again (a redelivery, a retry copy): the cases
        # it names were named already, so nothing more is posted.
        assert apps[0].queue is not None
        again = await redeliver_breaker_posts(apps[0])
        assert again == len(first)
        await drain(*apps)
        assert len(tenant.webhook.posts) == 1

        # The breaker is still open: a case held after the post is named in a post of its own.
        await request(apps[1], JOHANNA)
        await drain(*apps)
        cases = await apps[0].journal.list_cases()
    finally:
        for app in apps:
            await app.aclose()

    assert len(tenant.webhook.posts) == 2
    [johanna] = [case for case in cases if case.user == JOHANNA]
    assert johanna.escalation_kind == "circuit_breaker"
    later = posted_text(tenant)[1]
    assert johanna.case_id in later
    assert not any(case_id in later for case_id in first)
    assert "1 case" in tenant.webhook.posts[1].headline


async def test_a_refused_post_is_journaled_on_every_case_it_named_and_never_retried(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Slack answers ``no_text`` to a post without text; here the URL is the Teams door with
    the Slack format, whose answer (202) Slack never gives: refused for good, journaled."""
    hook = sandbox_url + TEAMS_PATH
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "state.db",
                                     sweep_restricted_users=False,
                                     max_remediations_per_hour=LIMIT,
                                     escalation_webhook_url=hook,
                                     escalation_webhook_format="slack"))
    try:
        for user in storm_addresses():
            await request(app, user)
        await drain(app)
        cases = await app.journal.list_cases()
    finally:
        await app.aclose()

    # Tried once, refused, never tried again: each held case is named in exactly one post
    # (one post, unless a hold came after the first post went, on a slow machine: then that
    # case is in a later post of its own, never in two).
    texts = posted_text(tenant)
    for case in held(cases):
        assert sum(case.case_id in text for text in texts) == 1, (case.case_id, texts)
    assert all(any(case.case_id in text for case in held(cases)) for text in texts)
    for case in held(cases):
        failed = [step for step in case.steps if step.name == "webhook:grouped"]
        assert [step.status for step in failed] == [StepStatus.FAILED]
        assert "unexpected body" in failed[0].detail or "202" in failed[0].detail


async def redeliver_breaker_posts(app: Application) -> int:
    """Send every grouped-post message the workers received again, under a new id."""
    assert app.queue is not None
    queue = app.queue
    database = queue._db  # the test reads the queue's own file
    rows = await database.read(lambda connection: connection.execute(
        "SELECT queue, session_id, body, properties FROM messages"
        " WHERE json_extract(properties, '$.kind') = 'breaker_post'").fetchall())
    for row in rows:
        await queue.send(row["queue"], bytes(row["body"]), session_id=row["session_id"],
                         properties=json.loads(row["properties"]))
    return len(rows)
