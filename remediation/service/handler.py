"""From a delivered queue message to a settled one.

The contract with the queue (Service Bus in Azure, SQLite locally): return normally to
complete the message; raise to abandon it for redelivery. A message that cannot succeed
(invalid, or failed permanently) completes after its case is journaled, so it never loops;
on the last delivery a transient failure escalates the case before the broker dead-letters it.
"""

import json
import logging
from dataclasses import dataclass, replace

from remediation.domain.cases import Case
from remediation.domain.errors import InvalidRequest, TransientError
from remediation.domain.requests import describe, parse_request
from remediation.service.messages import AlertUpdate, Approval, approval_in, parse_follow_up
from remediation.service.workflow import RemediationWorkflow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    body: bytes
    message_id: str
    delivery_count: int
    max_delivery_count: int

    @property
    def is_last(self) -> bool:
        return self.delivery_count >= self.max_delivery_count


class MessageHandler:
    def __init__(self, workflow: RemediationWorkflow) -> None:
        self._workflow = workflow

    async def on_request(self, delivery: Delivery) -> Case:
        """The requests queue: remediation requests, and approvals of waiting cases."""
        try:
            approval = approval_in(delivery.body)
            if approval is None:
                request = parse_request(delivery.body)
        except InvalidRequest as error:
            return await self._workflow.reject(_claimed_user(delivery.body), error.reason)
        if approval is not None:
            return await self._approve(delivery, approval)
        if request.request_id is None:
            request = replace(request, request_id=delivery.message_id)
        assert request.request_id is not None
        try:
            return await self._workflow.remediate(request)
        except Exception as error:
            await self._give_up_if_last(delivery, request.request_id, request.user, error)
            raise

    async def _approve(self, delivery: Delivery, approval: Approval) -> Case:
        try:
            return await self._workflow.approve(approval)
        except InvalidRequest as error:
            return await self._workflow.reject(approval.user, error.reason)
        except Exception as error:
            if delivery.is_last:
                await self._workflow.escalate(
                    approval.case_id, _give_up_reason(delivery, error, "approved remediation"))
            raise

    async def on_verification(self, delivery: Delivery) -> Case:
        """The verifications queue: verification checks and Defender alert updates."""
        try:
            message = parse_follow_up(delivery.body)
        except InvalidRequest as error:
            return await self._workflow.reject(_claimed_user(delivery.body), error.reason)
        try:
            if isinstance(message, AlertUpdate):
                return await self._workflow.update_alerts(message)
            return await self._workflow.verify(message)
        except InvalidRequest as error:
            return await self._workflow.reject(message.user, error.reason)
        except Exception as error:
            if not delivery.is_last:
                raise
            if isinstance(message, AlertUpdate):
                # Alerts are the report, not the remediation: give up on them quietly.
                await self._workflow.alert_update_gave_up(
                    message, _give_up_reason(delivery, error, "alert update"))
                return await self._workflow.case(message.case_id)
            await self._workflow.escalate(
                message.case_id, _give_up_reason(delivery, error, "verification"))
            raise

    async def _give_up_if_last(self, delivery: Delivery, request_id: str, user: str,
                               error: Exception) -> None:
        if not isinstance(error, TransientError):
            log.exception("unexpected error on request %s", request_id)
        if delivery.is_last:
            await self._workflow.give_up(request_id, user,
                                         _give_up_reason(delivery, error, "remediation"))


def _give_up_reason(delivery: Delivery, error: Exception, what: str) -> str:
    cause = error.reason if isinstance(error, TransientError) else (
        f"unexpected {type(error).__name__}")
    return f"{what} gave up after {delivery.delivery_count} deliveries: {cause}"


def _claimed_user(body: bytes) -> str:
    """Best-effort, printable 'who was this about' for a rejected message's journal entry."""
    try:
        fields = json.loads(body.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return "(not JSON)"
    user = fields.get("user") if isinstance(fields, dict) else None
    if isinstance(user, str) and user.strip():
        return describe(user.strip().lower(), limit=80).strip("'\"")
    return "(no user)"
