"""The composition root: the one place that knows which adapter is real.

The CLI, the demo, the Functions app and the tests all build the application here; tests
replace any port by keyword (cosmicpython's ``bootstrap``). Configuration picks the twins:
Service Bus or the SQLite queue, Table Storage or the SQLite journal. Nothing talks to a
service until it is first used, and each client exists once per process.
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from azure.core.credentials_async import AsyncTokenCredential

from remediation.adapters.clock import SystemClock
from remediation.adapters.local_queue import (
    LocalMessageRetries,
    LocalRequestSender,
    LocalVerificationScheduler,
)
from remediation.adapters.local_worker import LocalWorker
from remediation.adapters.queue_limits import session_id_for
from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.adapters.sqlite_journal import SqliteJournal
from remediation.adapters.sqlite_queue import SqliteQueue
from remediation.config import Settings
from remediation.domain.cases import Case
from remediation.service.handler import MessageHandler, Retrying, RetryPolicy
from remediation.service.intake import Intake, IntakeSettings
from remediation.service.journaling import CaseRecorder
from remediation.service.leftovers import LeftoverKind
from remediation.service.ports import (
    AlertSource,
    AlertUpdater,
    Clock,
    Directory,
    EscalationWebhook,
    FollowUps,
    Journal,
    Mailbox,
    MailboxDelegation,
    MessageRetries,
    RequestSender,
    RestrictedSenders,
    VerificationScheduler,
)
from remediation.service.scope import AdministrativeScope
from remediation.service.sweeper import Sweeper
from remediation.service.undo import Restorer, Undoing
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings

if TYPE_CHECKING:
    from remediation.adapters.exchange_client import ExchangeAdminClient
    from remediation.adapters.graph_caller import GraphCaller
    from remediation.adapters.mailbox import GraphExchangeMailbox
    from remediation.adapters.mailbox_delegation import ExchangeMailboxDelegation
    from remediation.adapters.service_bus import QueueClient

Closer = Callable[[], Awaitable[None]]
log = logging.getLogger(__name__)


@dataclass
class Application:
    settings: Settings
    journal: Journal
    workflow: RemediationWorkflow
    handler: MessageHandler
    intake: Intake
    requests: RequestSender
    queue: SqliteQueue | None = None
    closers: list[Closer] = field(default_factory=list)
    # Internal messages queued at once on the requests queue (an undo: remediation undo).
    request_copies: MessageRetries | None = None
    # Seconds until the tenant's throttling gates open (0.0: open); see TenantPorts.
    throttled: Callable[[], float] | None = None

    def worker(self, *, concurrency: int | None = None, poll_interval: float = 0.5,
               retry_backoff: float | None = None,
               on_case: Callable[[Case], None] | None = None) -> LocalWorker:
        """The local runtime's worker; ``retry_backoff`` (seconds) replaces RETRY_BACKOFF
        for the retries its handler schedules (the demo's compressed time); ``on_case``:
        told of each case a message returned (``LocalWorker``)."""
        if self.queue is None:
            raise RuntimeError("no local queue: this application sends to Service Bus")
        handler = self.handler if retry_backoff is None else self.handler.with_backoff(
            timedelta(seconds=retry_backoff))
        return LocalWorker(
            self.queue,
            {self.settings.remediation_queue: handler.on_request,
             self.settings.verification_queue: handler.on_verification},
            concurrency=concurrency or self.settings.worker_concurrency,
            poll_interval=poll_interval, max_attempts=self.settings.max_delivery_count,
            paused=self._paused, on_case=on_case, throttled=self.throttled)

    async def _paused(self) -> bool:
        return await self.journal.pause_state() is not None

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            await close()


@dataclass
class TenantPorts:
    directory: Directory
    exchange: RestrictedSenders
    alerts: AlertSource
    alert_updater: AlertUpdater
    mailbox: Mailbox | None = None
    # What the attacker left behind, each sort a kind (issue 15): cleaned after the
    # revocation, re-read by verification.
    leftover_kinds: Sequence[LeftoverKind] = ()
    delegation: MailboxDelegation | None = None
    scope: AdministrativeScope | None = None  # administrative unit membership
    # Puts a case's changes back (remediation undo, issue 16).
    restorer: Restorer | None = None
    # Seconds until Graph's and Exchange's throttling gates both open (throttle_gate.py).
    throttled: Callable[[], float] | None = None


def bootstrap(
    settings: Settings,
    *,
    tenant: TenantPorts | None = None,
    journal: Journal | None = None,
    scheduler: VerificationScheduler | None = None,
    clock: Clock | None = None,
    service_bus_client: "QueueClient | None" = None,
    credential: AsyncTokenCredential | None = None,
) -> Application:
    """``credential``: one the caller already holds and closes (the doctor shares it)."""
    closers: list[Closer] = []
    shared = _Shared(settings, closers, credential)
    tenant = tenant or _tenant_ports(settings, shared, closers)
    clock = clock or SystemClock()
    queue: SqliteQueue | None = None
    follow_ups: FollowUps
    requests: RequestSender
    retries: tuple[MessageRetries, MessageRetries]  # requests queue, verifications queue
    if settings.service_bus_namespace or service_bus_client is not None:
        requests, follow_ups, retries = _service_bus(settings, shared, closers,
                                                     service_bus_client)
    else:
        queue = SqliteQueue(shared.database(),
                            lock_duration=settings.lock_duration.total_seconds(),
                            max_delivery_count=settings.broker_max_delivery_count,
                            session_queues=(settings.remediation_queue,
                                            settings.verification_queue))
        requests = LocalRequestSender(queue, settings.remediation_queue)
        follow_ups = LocalVerificationScheduler(queue, settings.verification_queue)
        retries = (LocalMessageRetries(queue, settings.remediation_queue),
                   LocalMessageRetries(queue, settings.verification_queue))
    journal = journal or _journal(settings, shared, closers)
    workflow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=journal,
        scheduler=scheduler or follow_ups, clock=clock, settings=workflow_settings(settings),
        alerts=tenant.alert_updater, alert_source=tenant.alerts, notifier=follow_ups,
        mailbox=tenant.mailbox, leftover_kinds=tenant.leftover_kinds,
        delegation=tenant.delegation, requests=requests,
        webhook=_webhook(settings, closers), scope=tenant.scope,
        follow_up_sends=retries[1])
    sweeper = Sweeper(journal=journal, workflow=workflow, resumes=retries[0], clock=clock,
                      session_for=session_id_for, approval_timeout=settings.approval_timeout)
    intake = Intake(
        alerts=tenant.alerts, exchange=tenant.exchange, journal=journal, requests=requests,
        workflow=workflow, clock=clock, directory=tenant.directory,
        settings=IntakeSettings(titles=settings.alert_titles, lookback=settings.alert_lookback,
                                sweep=settings.sweep_restricted_users,
                                acts=settings.mode != "dry-run"),
        sweeper=sweeper)
    undo = None if tenant.restorer is None else Undoing(
        CaseRecorder(journal, clock), tenant.restorer, workflow.guardrails, mode=settings.mode)
    handler = MessageHandler(workflow, retrying=Retrying(
        requests=retries[0], follow_ups=retries[1], clock=clock,
        backoff=RetryPolicy(first=settings.retry_backoff)), undo=undo)
    return Application(settings=settings, journal=journal, workflow=workflow,
                       handler=handler, intake=intake, requests=requests,
                       queue=queue, closers=closers, request_copies=retries[0],
                       throttled=tenant.throttled)


class _Shared:
    """What several adapters share, built the first time one needs it: one credential per
    process, one SQLite database for the local queue and journal."""

    def __init__(self, settings: Settings, closers: list[Closer],
                 credential: AsyncTokenCredential | None = None) -> None:
        from remediation.adapters.credentials import TokenGuard

        self._settings = settings
        self._closers = closers
        # Guarded: whatever a credential raises instead of a token is one clear, transient
        # reason in every adapter ("cannot get a token for Graph: ...").
        self._credential: AsyncTokenCredential | None = (
            None if credential is None else TokenGuard(credential))
        self._database: SqliteDatabase | None = None

    def credential(self) -> AsyncTokenCredential:
        if self._credential is None:
            from remediation.adapters.credentials import TokenGuard, build_credential

            self._credential = TokenGuard(build_credential(self._settings))
            self._closers.insert(0, self._credential.close)
        return self._credential

    def database(self) -> SqliteDatabase:
        if self._database is None:
            database = SqliteDatabase(self._settings.remediation_db)

            async def close() -> None:
                database.close()

            self._database = database
            self._closers.append(close)
        return self._database


def workflow_settings(settings: Settings) -> WorkflowSettings:
    return WorkflowSettings(
        verify_delays=settings.verify_delays, mode=settings.mode,
        hygiene=settings.mailbox_hygiene, protected_group_ids=settings.protected_group_ids,
        max_resets_per_hour=settings.max_remediations_per_hour,
        tenant_domains=settings.tenant_domains, case_link=settings.case_link_template,
        webhook_format=settings.escalation_webhook_format, alert_titles=settings.alert_titles,
        compromise_window=settings.compromise_window, signin_cleanup=settings.signin_cleanup,
        return_action=settings.return_action,
        rate_limit_blocks=settings.rate_limit_blocks,
        administrative_unit_id=settings.scope_administrative_unit_id,
        approval_timeout=settings.approval_timeout, case_lease=settings.lock_duration)


def _webhook(settings: Settings, closers: list[Closer]) -> EscalationWebhook | None:
    if not settings.escalation_webhook_url:
        return None
    from remediation.adapters.webhook import JsonWebhook
    from remediation.logsafety import remember_secret

    remember_secret(settings.escalation_webhook_url)  # its path carries the webhook's key
    webhook = JsonWebhook(settings.escalation_webhook_url,
                          format=settings.escalation_webhook_format)
    closers.append(webhook.close)
    return webhook


def _tenant_ports(settings: Settings, shared: _Shared, closers: list[Closer]) -> TenantPorts:
    from remediation.adapters.exchange_client import ExchangeAdminClient
    from remediation.adapters.exchange_restricted import ExchangeRestrictedSenders
    from remediation.adapters.graph_admin_units import GraphAdministrativeUnits
    from remediation.adapters.graph_alerts import GraphAlerts
    from remediation.adapters.graph_caller import GraphCaller
    from remediation.adapters.graph_directory import GraphDirectory
    from remediation.adapters.mailbox import GraphExchangeMailbox
    from remediation.adapters.mailbox_delegation import ExchangeMailboxDelegation
    from remediation.adapters.tenant_restorer import TenantRestorer

    timeout = settings.http_timeout.total_seconds()
    graph = GraphCaller(settings.graph_endpoint, shared.credential(), timeout=timeout,
                        max_retries=settings.http_max_retries)
    closers.append(graph.close)
    exchange = ExchangeAdminClient(settings.exchange_endpoint, settings.tenant_id,
                                   shared.credential(), timeout=timeout,
                                   max_retries=settings.http_max_retries)
    closers.append(exchange.close)
    if not settings.service_bus_namespace:  # the local runtime: its processes are one app
        graph.gate.share(f"{settings.remediation_db}-throttled-graph")
        exchange.gate.share(f"{settings.remediation_db}-throttled-exchange")
    alerts = GraphAlerts(graph)
    directory, mailbox = GraphDirectory(graph), GraphExchangeMailbox(graph, exchange)
    delegation = ExchangeMailboxDelegation(exchange)
    return TenantPorts(directory=directory, scope=GraphAdministrativeUnits(graph),
                       exchange=ExchangeRestrictedSenders(exchange), alerts=alerts,
                       alert_updater=alerts, mailbox=mailbox,
                       leftover_kinds=_leftover_kinds(settings, graph, directory, mailbox,
                                                      exchange, delegation),
                       delegation=delegation,
                       restorer=TenantRestorer(graph, exchange, mailbox),
                       throttled=lambda: max(graph.gate.remaining(),
                                             exchange.gate.remaining()))


def _leftover_kinds(settings: Settings, graph: "GraphCaller", directory: Directory,
                    mailbox: "GraphExchangeMailbox", exchange: "ExchangeAdminClient",
                    delegation: "ExchangeMailboxDelegation") -> tuple[LeftoverKind, ...]:
    """What the attacker left behind, one kind each (service/leftovers.py), in the order
    they are cleaned: sign-in methods first (with one of theirs the attacker passes
    self-service password reset and takes the account back), then the consents whose tokens
    outlive the reset, then the inbox rules only Exchange shows, then who else holds a right
    on the mailbox (reported, never removed). One unified audit log reader for both."""
    from remediation.adapters.exchange_rules import ExchangeRuleReader, UnifiedAuditLog
    from remediation.adapters.graph_consents import GraphConsentGrants
    from remediation.adapters.graph_signin_methods import GraphSignInMethods
    from remediation.service.exchange_rules import ExchangeInboxRules
    from remediation.service.mailbox_permissions import MailboxPermissions

    audit = UnifiedAuditLog(exchange)
    return (GraphSignInMethods(graph, settings.signin_cleanup),
            GraphConsentGrants(graph, settings.signin_cleanup),
            ExchangeInboxRules(ExchangeRuleReader(exchange, mailbox, audit), directory,
                               mode=settings.mailbox_hygiene,
                               tenant_domains=settings.tenant_domains),
            MailboxPermissions(delegation, audit, directory))


def _service_bus(settings: Settings, shared: _Shared, closers: list[Closer],
                 client: "QueueClient | None",
                 ) -> tuple[RequestSender, FollowUps, tuple[MessageRetries, MessageRetries]]:
    from remediation.adapters.service_bus import (
        ServiceBusFollowUps,
        ServiceBusMessageRetries,
        ServiceBusQueues,
        ServiceBusRequestSender,
    )

    queues = ServiceBusQueues(settings.service_bus_namespace or "", shared.credential(),
                              client=client)
    closers.append(queues.close)
    return (ServiceBusRequestSender(queues, settings.remediation_queue),
            ServiceBusFollowUps(queues, settings.verification_queue),
            (ServiceBusMessageRetries(queues, settings.remediation_queue),
             ServiceBusMessageRetries(queues, settings.verification_queue)))


def _journal(settings: Settings, shared: _Shared, closers: list[Closer]) -> Journal:
    if settings.journal_table_endpoint or settings.journal_table_connection_string:
        from remediation.adapters.table_journal import build_table_journal

        journal = build_table_journal(
            endpoint=settings.journal_table_endpoint,
            connection_string=settings.journal_table_connection_string,
            table_name=settings.journal_table_name,
            credential=None if settings.journal_table_connection_string else shared.credential())
        closers.append(journal.close)
        table_journal: Journal = journal
        return table_journal
    if settings.service_bus_namespace:
        log.warning("Service Bus is configured but the journal is a local SQLite file: set "
                    "AzureWebJobsStorage__accountName or JOURNAL_TABLE_ENDPOINT in Azure")
    return SqliteJournal(shared.database())
