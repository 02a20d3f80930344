"""The grouped circuit-breaker post in Azure: Service Bus (a recording client at the SDK
boundary) and the Table Storage journal (Azurite), messages handed to the functions the way
the host hands them. Every grouped-post message goes on one session of the verifications
queue, so Service Bus gives them to one instance at a time; delivered in any order, and
again, they make one post naming every held case."""

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.servicebus import ServiceBusMessage

from remediation.bootstrap import Application, bootstrap
from remediation.domain.requests import RemediationRequest
from remediation.entrypoints import functions
from remediation.sandbox import SandboxTenant
from remediation.sandbox.seed import storm_addresses
from remediation.sandbox.webhook_routes import TEAMS_PATH
from remediation.service.messages import BREAKER_SESSION
from tests.conftest import sandbox_settings
from tests.service_bus_fake import RecordingServiceBusClient, body_of, properties_of

REQUESTS, VERIFICATIONS = "remediation-requests", "remediation-verifications"
LIMIT = 1  # MAX_REMEDIATIONS_PER_HOUR: of four storm accounts, three are held


@pytest.fixture
def bus() -> RecordingServiceBusClient:
    return RecordingServiceBusClient()


@pytest.fixture
async def app(sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
              bus: RecordingServiceBusClient,
              azurite_table_connection_string: str) -> AsyncIterator[Application]:
    settings = sandbox_settings(
        sandbox_url, tenant, tmp_path / "db", service_bus_namespace="x.servicebus.windows.net",
        journal_table_connection_string=azurite_table_connection_string,
        journal_table_name=f"journal{uuid.uuid4().hex[:12]}", sweep_restricted_users=False,
        max_remediations_per_hour=LIMIT, escalation_webhook_url=sandbox_url + TEAMS_PATH)
    application = bootstrap(settings, service_bus_client=bus)
    functions.use_application(application)
    yield application
    functions.use_application(None)
    await application.aclose()


def delivered(recorded: Any) -> func.ServiceBusMessage:
    """What the host hands a trigger for a message our adapter sent or scheduled."""
    return ServiceBusMessage(body=b"".join(recorded.body), message_id=recorded.message_id,
                             session_id=recorded.session_id, delivery_count=1,
                             application_properties=properties_of(recorded),
                             user_properties={})


async def test_held_cases_are_named_in_one_post_whatever_order_their_messages_come_in(
        app: Application, tenant: SandboxTenant, bus: RecordingServiceBusClient) -> None:
    for user in storm_addresses()[:4]:
        await app.requests.send(RemediationRequest(user=user, request_id=uuid.uuid4().hex))
    for request in bus.senders[REQUESTS].sent:
        await functions.remediate(delivered(request))
    notices = [m for m in bus.senders[VERIFICATIONS].sent
               if properties_of(m)["kind"] == "alerts" and body_of(m)["phase"] == "escalated"]
    assert len(notices) == 3
    for notice in notices:  # each held case's escalation notice: no card of its own
        await functions.verify(delivered(notice))
    assert tenant.webhook.posts == []

    # Scheduled a little after each hold (sent at once when that time has passed already).
    sender = bus.senders[VERIFICATIONS]
    posts = [m for m in [*(s.message for s in sender.scheduled), *sender.sent]
             if properties_of(m)["kind"] == "breaker_post"]
    assert len(posts) == 3
    assert {message.session_id for message in posts} == {BREAKER_SESSION}
    for message in [*reversed(posts), *posts]:  # any order, and each one again
        await functions.verify(delivered(message))

    [post] = tenant.webhook.posts
    held = [case for case in await app.journal.list_cases()
            if case.escalation_kind == "circuit_breaker"]
    assert len(held) == 3
    text = json.dumps(post.payload)
    assert all(case.case_id in text and case.user in text for case in held)
    assert post.headline == "Circuit breaker open: 3 cases held, nothing changed"
