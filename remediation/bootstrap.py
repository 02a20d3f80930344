"""The composition root: the one place that knows which adapter is real.

The CLI, the demo and the tests all build the application here; tests replace any port by
keyword (cosmicpython's ``bootstrap``).
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
from remediation.service.ports import (
    Clock,
    Directory,
    Journal,
    RestrictedSenders,
    VerificationScheduler,
)
from remediation.service.workflow import RemediationWorkflow, WorkflowSettings


@dataclass
class Application:
    settings: Settings
    journal: Journal
    queue: SqliteQueue
    workflow: RemediationWorkflow
    handler: MessageHandler
    requests: LocalRequestSender
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

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


def bootstrap(
    settings: Settings,
    *,
    directory: Directory | None = None,
    exchange: RestrictedSenders | None = None,
    journal: Journal | None = None,
    scheduler: VerificationScheduler | None = None,
    clock: Clock | None = None,
) -> Application:
    closers: list[Callable[[], Awaitable[None]]] = []
    database = SqliteDatabase(settings.remediation_db)
    closers.append(_close_database(database))
    queue = SqliteQueue(database, lock_duration=settings.lock_duration.total_seconds(),
                        max_delivery_count=settings.max_delivery_count)
    if directory is None or exchange is None:
        directory, exchange = _tenant_adapters(settings, directory, exchange, closers)
    journal = journal or SqliteJournal(database)
    workflow = RemediationWorkflow(
        directory=directory, exchange=exchange, journal=journal,
        scheduler=scheduler or LocalVerificationScheduler(queue, settings.verification_queue),
        clock=clock or SystemClock(),
        settings=WorkflowSettings(verify_delays=settings.verify_delays))
    return Application(settings=settings, journal=journal, queue=queue, workflow=workflow,
                       handler=MessageHandler(workflow),
                       requests=LocalRequestSender(queue, settings.remediation_queue),
                       closers=closers)


def _tenant_adapters(
    settings: Settings, directory: Directory | None, exchange: RestrictedSenders | None,
    closers: list[Callable[[], Awaitable[None]]],
) -> tuple[Directory, RestrictedSenders]:
    from remediation.adapters.credentials import build_credential
    from remediation.adapters.exchange_client import ExchangeAdminClient
    from remediation.adapters.exchange_restricted import ExchangeRestrictedSenders
    from remediation.adapters.graph_directory import GraphCaller, GraphDirectory

    credential = build_credential(settings)
    timeout = settings.http_timeout.total_seconds()
    if directory is None:
        caller = GraphCaller(settings.graph_endpoint, credential, timeout=timeout,
                             max_retries=settings.http_max_retries)
        closers.append(caller.close)
        directory = GraphDirectory(caller)
    if exchange is None:
        client = ExchangeAdminClient(settings.exchange_endpoint, settings.tenant_id, credential,
                                     timeout=timeout, max_retries=settings.http_max_retries)
        closers.append(client.close)
        exchange = ExchangeRestrictedSenders(client)
    closers.insert(0, credential.close)
    return directory, exchange


def _close_database(database: SqliteDatabase) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        database.close()

    return close
