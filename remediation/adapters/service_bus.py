"""Service Bus queues (azure-servicebus, async): the Azure twin of the SQLite queue.

- Requests go to a **session-enabled** queue with ``session_id`` = the user's normalised
  address (one user's messages are never processed by two instances at once) and
  ``message_id`` = the request id (alert, block entry or manual request), which duplicate
  detection uses. Either one longer than Service Bus takes (128 characters) travels as a
  stable digest (``queue_limits``), exactly as on the local twin.
- Verification checks are scheduled with ``schedule_messages``; the sequence number is
  journaled so a superseded check can be cancelled. Alert updates share that queue.
- ``application_properties`` carry ``kind``, ``source`` and ``case_id`` for operators reading
  the queue, and the sender's trace context (``traceparent``, ``tracestate``: W3C, when
  telemetry is on), so a check hours later joins its case's trace; bodies are JSON with a
  schema version.
- Delayed retries (``ServiceBusMessageRetries``) are copies of a delivered message scheduled
  with ``schedule_messages`` under a **new** message id: duplicate detection would drop a
  copy that reused the original's.

Roles: "Azure Service Bus Data Sender" (this code) and "Azure Service Bus Data Receiver"
(the Functions triggers) on the namespace, for the app's managed identity.
"""

import asyncio
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from azure.core.credentials_async import AsyncTokenCredential

from remediation.adapters.queue_limits import check_message, fitted_id, session_id_for
from remediation.domain.errors import TransientError
from remediation.domain.requests import SCHEMA_VERSION, RemediationRequest
from remediation.service import telemetry
from remediation.service.messages import AlertUpdate, Approval, VerificationCheck

log = logging.getLogger(__name__)


class QueueSender(Protocol):
    """The part of ``ServiceBusSender`` we use (a recording fake stands in for tests)."""

    async def send_messages(self, message: Any) -> None: ...

    async def schedule_messages(self, messages: Any, schedule_time_utc: datetime) -> list[int]: ...

    async def cancel_scheduled_messages(self, sequence_numbers: int) -> None: ...


class QueueClient(Protocol):
    def get_queue_sender(self, queue_name: str) -> QueueSender: ...


class ServiceBusQueues:
    """One client per process and one sender per queue, created on first use."""

    def __init__(self, namespace: str, credential: AsyncTokenCredential, *,
                 client: QueueClient | None = None) -> None:
        self._namespace = namespace
        self._credential = credential
        self._client = client
        self._senders: dict[str, QueueSender] = {}
        self._lock = asyncio.Lock()

    async def sender(self, queue: str) -> QueueSender:
        async with self._lock:
            if queue not in self._senders:
                self._senders[queue] = self._get_client().get_queue_sender(queue)
            return self._senders[queue]

    async def close(self) -> None:
        for sender in self._senders.values():
            close = getattr(sender, "close", None)
            if close is not None:
                await close()
        close_client = getattr(self._client, "close", None)
        if close_client is not None:
            await close_client()

    def _get_client(self) -> QueueClient:
        if self._client is None:
            from azure.servicebus.aio import ServiceBusClient

            client: Any = ServiceBusClient(self._namespace, self._credential)
            self._client = client
        assert self._client is not None
        return self._client


def _message(body: str, *, message_id: str, user: str,
             properties: dict[str, str | int]) -> Any:
    application_properties: dict[str, str | int] = {"schema": SCHEMA_VERSION}
    application_properties.update(properties)
    return _service_bus_message(body.encode(), message_id=fitted_id(message_id),
                                session_id=session_id_for(user),
                                properties=application_properties)


def _service_bus_message(body: bytes, *, message_id: str, session_id: str | None,
                         properties: Mapping[str, Any]) -> Any:
    from azure.servicebus import ServiceBusMessage

    # The trace context of the work sending it (a copy's own replaces the original's).
    properties = {**properties, **telemetry.current().carrier()}
    check_message(body, message_id=message_id, session_id=session_id, properties=properties)
    kind = properties.get("kind")
    application_properties: dict[str | bytes, Any] = {
        key: value for key, value in properties.items()}
    return ServiceBusMessage(body, message_id=message_id, session_id=session_id,
                             content_type="application/json",
                             subject=str(kind) if kind is not None else None,
                             application_properties=application_properties)


async def _guarded(what: str, action: Any) -> Any:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.servicebus.exceptions import ServiceBusError

    from remediation.adapters.credentials import token_failure

    try:
        return await action
    except ClientAuthenticationError as error:  # the credential gave no token
        raise token_failure("Service Bus", error) from None
    except ServiceBusError as error:
        raise TransientError(f"Service Bus: {what} failed ({type(error).__name__})") from None


class ServiceBusRequestSender:
    def __init__(self, queues: ServiceBusQueues, queue_name: str) -> None:
        self._queues = queues
        self._name = queue_name

    async def send(self, request: RemediationRequest) -> str:
        assert request.request_id is not None
        sender = await self._queues.sender(self._name)
        message = _message(request.to_json(), message_id=request.request_id, user=request.user,
                           properties={"kind": "remediate", "source": request.source})
        await _guarded("sending a request", sender.send_messages(message))
        return str(message.message_id)

    async def send_approval(self, approval: Approval) -> None:
        sender = await self._queues.sender(self._name)
        await _guarded("sending an approval", sender.send_messages(_message(
            approval.to_json(), message_id=approval.message_id, user=approval.user,
            properties={"kind": "approve", "case_id": approval.case_id})))


class ServiceBusFollowUps:
    """Verification checks (scheduled) and alert updates, on the verifications queue."""

    def __init__(self, queues: ServiceBusQueues, queue_name: str) -> None:
        self._queues = queues
        self._name = queue_name

    async def schedule(self, check: VerificationCheck, at: datetime) -> int:
        sender = await self._queues.sender(self._name)
        numbers = await _guarded("scheduling a verification", sender.schedule_messages(
            _message(check.to_json(), message_id=check.message_id, user=check.user,
                     properties={"kind": "verify", "case_id": check.case_id,
                                 "attempt": check.attempt}), at))
        return int(numbers[0])

    async def cancel(self, sequence_number: int) -> None:
        sender = await self._queues.sender(self._name)
        await _guarded("cancelling a verification",
                       sender.cancel_scheduled_messages(sequence_number))

    async def notify(self, update: AlertUpdate) -> None:
        sender = await self._queues.sender(self._name)
        await _guarded("queuing an alert update", sender.send_messages(_message(
            update.to_json(), message_id=update.message_id, user=update.user,
            properties={"kind": "alerts", "case_id": update.case_id})))


class ServiceBusMessageRetries:
    """One queue's delayed retries: a copy of a delivered message, scheduled for ``at`` with
    ``schedule_messages`` under a new message id: duplicate detection would drop a copy that
    reused the original's."""

    def __init__(self, queues: ServiceBusQueues, queue_name: str) -> None:
        self._queues = queues
        self._name = queue_name

    async def schedule_copy(self, body: bytes, *, session_id: str | None,
                            properties: Mapping[str, str | int | float | bool],
                            at: datetime | None) -> str:
        message_id = uuid.uuid4().hex
        sender = await self._queues.sender(self._name)
        message = _service_bus_message(body, message_id=message_id, session_id=session_id,
                                       properties=properties)
        if at is None:  # at once: no ScheduledEnqueueTimeUtc, the broker enqueues it now
            await _guarded("queuing a copy", sender.send_messages(message))
        else:
            await _guarded("scheduling a retry", sender.schedule_messages(message, at))
        return message_id
