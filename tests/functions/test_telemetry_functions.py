"""Telemetry through the Functions triggers (issue 17): the trace context rides on Service Bus
messages as application properties, so a verification check scheduled hours ahead, a retry
copy and an upstream caller's message all join the case's trace; host.json and the app
settings turn OpenTelemetry on as Microsoft Learn says for the Python worker."""

import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.servicebus import ServiceBusMessage
from opentelemetry.trace import SpanKind

from remediation.bootstrap import Application, bootstrap
from remediation.entrypoints import functions
from remediation.sandbox import Fault, SandboxTenant
from tests.conftest import sandbox_settings
from tests.service_bus_fake import RecordingServiceBusClient, properties_of
from tests.telemetry_capture import captured_telemetry

ADELE = "adele.vance@contoso.com"
REQUESTS, VERIFICATIONS = "remediation-requests", "remediation-verifications"
ROOT = Path(__file__).resolve().parents[2]
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


@pytest.fixture
def bus() -> RecordingServiceBusClient:
    return RecordingServiceBusClient()


@pytest.fixture
async def app(sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
              bus: RecordingServiceBusClient,
              azurite_table_connection_string: str) -> AsyncIterator[Application]:
    settings = sandbox_settings(
        sandbox_url, tenant, tmp_path / "db",
        service_bus_namespace="example.servicebus.windows.net",
        journal_table_connection_string=azurite_table_connection_string,
        journal_table_name=f"journal{uuid.uuid4().hex[:12]}", max_delivery_count=3,
        http_max_retries=0, sweep_restricted_users=False)
    application = bootstrap(settings, service_bus_client=bus)
    functions.use_application(application)
    yield application
    functions.use_application(None)
    await application.aclose()


def sb_message(body: bytes, *, message_id: str = "m-1",
               properties: dict[str, Any] | None = None) -> func.ServiceBusMessage:
    return ServiceBusMessage(body=body, message_id=message_id, session_id=ADELE,
                             delivery_count=1, application_properties=properties or {},
                             user_properties={})


def redeliver(recorded: Any) -> func.ServiceBusMessage:
    return sb_message(b"".join(recorded.body), message_id=recorded.message_id,
                      properties=properties_of(recorded))


def trace_of(properties: dict[str, Any]) -> str:
    found = TRACEPARENT.fullmatch(str(properties.get("traceparent", "")))
    assert found is not None, repr(properties)
    return found.group(1)


async def test_a_scheduled_check_carries_the_trace_and_its_delivery_joins_it(
        app: Application, bus: RecordingServiceBusClient) -> None:
    with captured_telemetry() as captured:
        await functions.remediate(sb_message(json.dumps({"user": ADELE}).encode()))
        [request] = captured.named("remediation request")
        checks = bus.senders[VERIFICATIONS].scheduled
        assert len(checks) == 3
        trace_id = format(request.context.trace_id, "032x")
        assert {trace_of(properties_of(check.message)) for check in checks} == {trace_id}

        await functions.verify(redeliver(checks[0].message))  # hours later, in Azure

        [verification] = captured.named("remediation verification")
        assert verification.kind is SpanKind.CONSUMER
        assert verification.context.trace_id == request.context.trace_id
        # The journal's Table Storage calls: azure-core client spans in the same trace.
        tables = [span for span in captured.finished() if span.kind is SpanKind.CLIENT
                  and "/journal" in str((span.attributes or {}).get("url.full", ""))]
        assert {span.context.trace_id for span in tables} == {request.context.trace_id}


async def test_a_message_from_an_upstream_trace_and_its_retry_copy_stay_in_it(
        app: Application, tenant: SandboxTenant, bus: RecordingServiceBusClient) -> None:
    upstream, caller = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    tenant.add_fault(Fault(status=503, path=r"/revokeSignInSessions$", times=None))
    with captured_telemetry() as captured:
        await functions.remediate(sb_message(
            json.dumps({"user": ADELE}).encode(),
            properties={"traceparent": f"00-{upstream}-{caller}-01"}))
        [request] = captured.named("remediation request")
        assert format(request.context.trace_id, "032x") == upstream
        assert request.parent is not None and format(request.parent.span_id, "016x") == caller

        [copy] = bus.senders[REQUESTS].scheduled  # the retry, in the delivery's trace
        copied = properties_of(copy.message)
        assert trace_of(copied) == upstream
        assert copied["traceparent"] != f"00-{upstream}-{caller}-01"  # its sender: this delivery
        assert {key: value for key, value in copied.items() if key != "traceparent"} == {
            "delivery_attempts": 1, "retry_of": "m-1"}


async def test_no_trace_context_is_sent_while_telemetry_is_off(
        app: Application, bus: RecordingServiceBusClient) -> None:
    await functions.remediate(sb_message(json.dumps({"user": ADELE}).encode()))
    checks = bus.senders[VERIFICATIONS].scheduled
    assert checks and all("traceparent" not in properties_of(c.message) for c in checks)


def test_host_json_turns_on_opentelemetry_for_the_host() -> None:
    """Microsoft Learn, "Use OpenTelemetry with Azure Functions": ``"telemetryMode":
    "OpenTelemetry"`` at the root of host.json."""
    host = json.loads((ROOT / "host.json").read_text())
    assert host["telemetryMode"] == "OpenTelemetry"
