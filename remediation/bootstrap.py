"""The composition root: the one place that knows which adapter is real.

The CLI, the demo and the tests all build the application here; tests replace any port by
keyword (cosmicpython's ``bootstrap``). Nothing talks to a tenant until it is first used:
the Graph and Exchange clients are built lazily, one of each per process.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from remediation.adapters.clock import SystemClock
from remediation.adapters.local_queue import LocalRequestSender, LocalVerificationScheduler
from remediation.adapters.local_worker import LocalWorker
from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.adapters.sqlite_journal import SqliteJournal
from remediation.adapters.sqlite_queue import SqliteQueue
from remediation.config import Settings
from remediation.service.handler import MessageHandler
from remediation.service.intake import Intake, IntakeSettings
from remediation.service.ports import (
    AlertSource,
    AlertUpdater,
    Clock,
    Directory,
    Journal,
    RestrictedSenders,
    VerificationScheduler,
)
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings

Closer = Callable[[], Awaitable[None]]


@dataclass
class Application:
    settings: Settings
    journal: Journal
    queue: SqliteQueue
    workflow: RemediationWorkflow
    handler: MessageHandler
    intake: Intake
    requests: LocalRequestSender
    closers: list[Closer] = field(default_factory=list)

    def worker(self, *, concurrency: int | None = None, poll_interval: float = 0.5,
               retry_backoff: float = 2.0) -> LocalWorker:
        return LocalWorker(
            self.queue,
            {self.settings.remediation_queue: self.handler.on_request,
             self.settings.verification_queue: self.handler.on_verification},
            concurrency=concurrency or self.settings.worker_concurrency,
            poll_interval=poll_interval, retry_backoff=retry_backoff)

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            await close()


@dataclass
class TenantPorts:
    directory: Directory
    exchange: RestrictedSenders
    alerts: AlertSource
    alert_updater: AlertUpdater


def bootstrap(
    settings: Settings,
    *,
    tenant: TenantPorts | None = None,
    journal: Journal | None = None,
    scheduler: VerificationScheduler | None = None,
    clock: Clock | None = None,
) -> Application:
    closers: list[Closer] = []
    database = SqliteDatabase(settings.remediation_db)
    closers.append(_close_database(database))
    queue = SqliteQueue(database, lock_duration=settings.lock_duration.total_seconds(),
                        max_delivery_count=settings.max_delivery_count)
    tenant = tenant or _tenant_ports(settings, closers)
    journal = journal or SqliteJournal(database)
    clock = clock or SystemClock()
    local_follow_ups = LocalVerificationScheduler(queue, settings.verification_queue)
    workflow = RemediationWorkflow(
        directory=tenant.directory, exchange=tenant.exchange, journal=journal,
        scheduler=scheduler or local_follow_ups, clock=clock,
        settings=WorkflowSettings(verify_delays=settings.verify_delays),
        alerts=tenant.alert_updater, notifier=local_follow_ups)
    requests = LocalRequestSender(queue, settings.remediation_queue)
    intake = Intake(
        alerts=tenant.alerts, exchange=tenant.exchange, journal=journal, requests=requests,
        workflow=workflow, clock=clock,
        settings=IntakeSettings(titles=settings.alert_titles, lookback=settings.alert_lookback,
                                sweep=settings.sweep_restricted_users))
    return Application(settings=settings, journal=journal, queue=queue, workflow=workflow,
                       handler=MessageHandler(workflow), intake=intake, requests=requests,
                       closers=closers)


def _tenant_ports(settings: Settings, closers: list[Closer]) -> TenantPorts:
    from remediation.adapters.credentials import build_credential
    from remediation.adapters.exchange_client import ExchangeAdminClient
    from remediation.adapters.exchange_restricted import ExchangeRestrictedSenders
    from remediation.adapters.graph_alerts import GraphAlerts
    from remediation.adapters.graph_directory import GraphCaller, GraphDirectory

    credential = build_credential(settings)
    closers.append(credential.close)
    timeout = settings.http_timeout.total_seconds()
    graph = GraphCaller(settings.graph_endpoint, credential, timeout=timeout,
                        max_retries=settings.http_max_retries)
    closers.append(graph.close)
    exchange = ExchangeAdminClient(settings.exchange_endpoint, settings.tenant_id, credential,
                                   timeout=timeout, max_retries=settings.http_max_retries)
    closers.append(exchange.close)
    alerts = GraphAlerts(graph)
    return TenantPorts(directory=GraphDirectory(graph),
                       exchange=ExchangeRestrictedSenders(exchange), alerts=alerts,
                       alert_updater=alerts)


def _close_database(database: SqliteDatabase) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        database.close()

    return close
