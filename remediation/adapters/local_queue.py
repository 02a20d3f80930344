"""The local queue seen through the workflow's ports: scheduling checks, sending requests."""

from datetime import datetime

from remediation.adapters.sqlite_queue import SqliteQueue
from remediation.domain.requests import RemediationRequest
from remediation.service.messages import AlertUpdate, Approval, VerificationCheck


class LocalVerificationScheduler:
    def __init__(self, queue: SqliteQueue, queue_name: str) -> None:
        self._queue = queue
        self._name = queue_name

    async def schedule(self, check: VerificationCheck, at: datetime) -> int:
        return await self._queue.send(
            self._name, check.to_json(), message_id=check.message_id, session_id=check.user,
            scheduled_at=at, properties={"case_id": check.case_id, "kind": "verify"})

    async def cancel(self, sequence_number: int) -> None:
        await self._queue.cancel_scheduled(sequence_number)

    async def notify(self, update: AlertUpdate) -> None:
        """Alert updates share the verifications queue (and its worker) with the checks."""
        await self._queue.send(
            self._name, update.to_json(), message_id=update.message_id, session_id=update.user,
            properties={"case_id": update.case_id, "kind": "alerts"})


class LocalRequestSender:
    def __init__(self, queue: SqliteQueue, queue_name: str) -> None:
        self._queue = queue
        self._name = queue_name

    async def send(self, request: RemediationRequest) -> str:
        """Enqueue a request; returns the message id (the request id)."""
        assert request.request_id is not None
        await self._queue.send(self._name, request.to_json(), message_id=request.request_id,
                               session_id=request.user,
                               properties={"kind": "remediate", "source": request.source})
        return request.request_id

    async def send_approval(self, approval: Approval) -> None:
        await self._queue.send(self._name, approval.to_json(), message_id=approval.message_id,
                               session_id=approval.user,
                               properties={"kind": "approve", "case_id": approval.case_id})
