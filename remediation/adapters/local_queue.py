"""The local queue seen through the workflow's ports: scheduling checks, sending requests,
scheduling retries. Ids go through the same ``queue_limits`` as on Service Bus, so a user
maps to the same session on both twins."""

import uuid
from collections.abc import Mapping
from datetime import datetime

from remediation.adapters.queue_limits import fitted_id, session_id_for
from remediation.adapters.sqlite_queue import SqliteQueue
from remediation.domain.requests import RemediationRequest
from remediation.service.messages import AlertUpdate, Approval, VerificationCheck


class LocalVerificationScheduler:
    def __init__(self, queue: SqliteQueue, queue_name: str) -> None:
        self._queue = queue
        self._name = queue_name

    async def schedule(self, check: VerificationCheck, at: datetime) -> int:
        return await self._queue.send(
            self._name, check.to_json(), message_id=fitted_id(check.message_id),
            session_id=session_id_for(check.user), scheduled_at=at,
            properties={"case_id": check.case_id, "kind": "verify", "attempt": check.attempt})

    async def cancel(self, sequence_number: int) -> None:
        await self._queue.cancel_scheduled(sequence_number)

    async def notify(self, update: AlertUpdate) -> None:
        """Alert updates share the verifications queue (and its worker) with the checks."""
        await self._queue.send(
            self._name, update.to_json(), message_id=fitted_id(update.message_id),
            session_id=session_id_for(update.user),
            properties={"case_id": update.case_id, "kind": "alerts"})


class LocalRequestSender:
    def __init__(self, queue: SqliteQueue, queue_name: str) -> None:
        self._queue = queue
        self._name = queue_name

    async def send(self, request: RemediationRequest) -> str:
        """Enqueue a request; returns the message id (the request id, or its digest)."""
        assert request.request_id is not None
        message_id = fitted_id(request.request_id)
        await self._queue.send(self._name, request.to_json(), message_id=message_id,
                               session_id=session_id_for(request.user),
                               properties={"kind": "remediate", "source": request.source})
        return message_id

    async def send_approval(self, approval: Approval) -> None:
        await self._queue.send(self._name, approval.to_json(),
                               message_id=fitted_id(approval.message_id),
                               session_id=session_id_for(approval.user),
                               properties={"kind": "approve", "case_id": approval.case_id})


class LocalMessageRetries:
    """One queue's delayed retries: a copy of a delivered message, scheduled under a new
    message id (a reused one would be dropped as a duplicate, here as on Service Bus)."""

    def __init__(self, queue: SqliteQueue, queue_name: str) -> None:
        self._queue = queue
        self._name = queue_name

    async def schedule_copy(self, body: bytes, *, session_id: str | None,
                            properties: Mapping[str, str | int | float | bool],
                            at: datetime | None) -> str:
        message_id = uuid.uuid4().hex
        await self._queue.send(self._name, body, message_id=message_id, session_id=session_id,
                               scheduled_at=at, properties=dict(properties))
        return message_id
