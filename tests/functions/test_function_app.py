"""The Functions app as the Python worker sees it: indexing, bindings, and each trigger
called with hand-built inputs, the composition root wired to the sandbox tenant and a
recording Service Bus client."""

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, cast

import azure.functions as func
import pytest
from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest

import function_app
from remediation.adapters.service_bus import ServiceBusMessageRetries, ServiceBusQueues
from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import CaseState
from remediation.domain.errors import TransientError
from remediation.domain.requests import RemediationRequest
from remediation.entrypoints import functions
from remediation.sandbox import Fault, SandboxTenant, SandboxUser
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence
from tests.conftest import sandbox_settings
from tests.service_bus_fake import RecordingServiceBusClient, body_of, properties_of

ADELE, PATTI = "adele.vance@contoso.com", "patti.fernandez@contoso.com"
REQUESTS, VERIFICATIONS = "remediation-requests", "remediation-verifications"
MAX_DELIVERIES = 3


@cache
def bindings() -> dict[str, dict[str, Any]]:
    """Index the app once, as the worker does (get_functions may run once per app)."""
    return {f.get_function_name(): json.loads(f.get_function_json())
            for f in function_app.app.get_functions()}


def trigger(name: str) -> dict[str, Any]:
    [found] = [b for b in bindings()[name]["bindings"] if b["type"].endswith("Trigger")]
    return found


def test_the_module_holds_exactly_one_function_app() -> None:
    apps = [v for v in vars(function_app).values() if isinstance(v, func.FunctionApp)]
    assert apps == [function_app.app]
    assert set(bindings()) == {"poll_alerts", "receive_alert", "receive_defender_stream",
                               "remediate", "verify", "preflight", "preflight_at_start"}


def test_service_bus_triggers_use_sessions_settings_and_the_identity_connection() -> None:
    for name, queue in (("remediate", "%REMEDIATION_QUEUE%"),
                        ("verify", "%VERIFICATION_QUEUE%")):
        binding = trigger(name)
        assert binding["type"] == "serviceBusTrigger"
        assert binding["queueName"] == queue
        assert binding["connection"] == "ServiceBusConnection"
        assert binding["isSessionsEnabled"] is True


def test_http_trigger_is_post_only_with_function_keys() -> None:
    binding = trigger("receive_alert")
    assert binding["type"] == "httpTrigger"
    assert binding["methods"] == ["POST"]
    assert binding["authLevel"] == "FUNCTION"
    assert binding["route"] == "alerts"


def test_timer_polls_every_two_minutes_by_default() -> None:
    binding = trigger("poll_alerts")
    assert binding["type"] == "timerTrigger"
    assert binding["schedule"] == "0 */2 * * * *"


@pytest.mark.parametrize(("setting", "schedule"), [
    ("0 */5 * * * *", "0 */5 * * * *"), (" 0 */5 * * * * ", "0 */5 * * * *"),
    ("", "0 */2 * * * *"), ("  ", "0 */2 * * * *")])
def test_the_poll_schedule_comes_from_an_app_setting(setting: str, schedule: str) -> None:
    """Read as the settings check reads it: a blank value is the default it checked, never
    an empty schedule the timer cannot run (a hostile test)."""
    script = ("import json, function_app; print(json.dumps({f.get_function_name(): "
              "json.loads(f.get_function_json()) for f in function_app.app.get_functions()}))")
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "ALERT_POLL_SCHEDULE": setting},
                            check=True).stdout
    [timer] = json.loads(output)["poll_alerts"]["bindings"]
    assert timer["schedule"] == schedule


def test_event_hub_trigger_reads_its_hub_and_connection_from_settings() -> None:
    binding = trigger("receive_defender_stream")
    assert binding["type"] == "eventHubTrigger"
    assert binding["eventHubName"] == "%DEFENDER_STREAM_HUB%"
    assert binding["connection"] == "DefenderStreamConnection"
    assert binding["cardinality"].lower() == "many"


def test_importing_the_app_loads_no_sdk() -> None:
    script = ("import sys, function_app; print([m for m in sys.modules if m.startswith("
              "('msgraph', 'kiota', 'azure.servicebus', 'azure.data', 'azure.identity', "
              "'aiohttp', 'httpx', 'azure.monitor', 'opentelemetry'))])")
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True).stdout
    assert output.strip() == "[]"


@pytest.fixture
def bus() -> RecordingServiceBusClient:
    return RecordingServiceBusClient()


@pytest.fixture
def azure_settings(sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
                   azurite_table_connection_string: str) -> dict[str, Any]:
    """Service Bus (a recording client) and the Table Storage journal (on Azurite)."""
    return {"service_bus_namespace": "example.servicebus.windows.net",
            "journal_table_connection_string": azurite_table_connection_string,
            "journal_table_name": f"journal{uuid.uuid4().hex[:12]}"}


@pytest.fixture
async def app(sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
              bus: RecordingServiceBusClient,
              azure_settings: dict[str, Any]) -> AsyncIterator[Application]:
    settings = sandbox_settings(sandbox_url, tenant, tmp_path / "db", **azure_settings,
                                max_delivery_count=MAX_DELIVERIES, http_max_retries=0,
                                sweep_restricted_users=False)
    application = bootstrap(settings, service_bus_client=bus)
    functions.use_application(application)
    yield application
    functions.use_application(None)
    await application.aclose()


def sb_message(body: bytes | str, *, message_id: str = "m-1", delivery_count: int = 1,
               session_id: str | None = ADELE,
               properties: dict[str, Any] | None = None) -> func.ServiceBusMessage:
    raw = body.encode() if isinstance(body, str) else body
    return ServiceBusMessage(body=raw, message_id=message_id, session_id=session_id,
                             delivery_count=delivery_count,
                             application_properties=properties or {}, user_properties={})


def redeliver(recorded: Any) -> func.ServiceBusMessage:
    """What the host hands the trigger for a message our adapter sent."""
    return sb_message(b"".join(recorded.body), message_id=recorded.message_id,
                      session_id=recorded.session_id, properties=properties_of(recorded))


async def test_remediate_schedules_each_verification_on_the_session(
        app: Application, bus: RecordingServiceBusClient, tmp_path: Path) -> None:
    assert type(app.journal).__name__ == "TableJournal"
    assert app.queue is None
    await functions.remediate(sb_message(json.dumps({"user": ADELE})))

    [case] = await app.journal.list_cases()
    assert case.state is CaseState.AWAITING_VERIFICATION
    assert case.request_ids == ("m-1",)  # a hand-written message's id becomes its request id
    checks = bus.senders[VERIFICATIONS].scheduled
    assert [c.message.message_id for c in checks] == [
        f"{case.case_id}:verify:{n}" for n in range(3)]
    assert {c.message.session_id for c in checks} == {ADELE}
    assert case.unblocked_at is not None
    assert [c.at - case.unblocked_at for c in checks] == list(app.settings.verify_delays)
    assert body_of(checks[0].message) == {"schema": 1, "kind": "verify",
                                          "case_id": case.case_id, "user": ADELE, "attempt": 0}
    assert properties_of(checks[0].message) == {"schema": 1, "kind": "verify",
                                                "case_id": case.case_id, "attempt": 0}

    await functions.verify(redeliver(checks[0].message))
    verified_by = datetime.now(UTC)

    [verified] = await app.journal.list_cases()
    assert verified.state is CaseState.VERIFIED
    assert not os.listdir(tmp_path)  # nothing local: queue and journal are in Azure
    # The later checks are cancelled, but for one already due (a slow machine): that one
    # finds a final case.
    cancelled = bus.senders[VERIFICATIONS].cancelled
    assert set(cancelled) <= {c.sequence_number for c in checks[1:]}
    assert all(c.sequence_number in cancelled or c.at <= verified_by for c in checks[1:])


async def test_a_transient_failure_schedules_a_copy_with_a_new_message_id(
        app: Application, tenant: SandboxTenant, bus: RecordingServiceBusClient) -> None:
    tenant.add_fault(Fault(status=503, path=r"/revokeSignInSessions$", times=None))
    body = json.dumps({"user": ADELE})
    before = datetime.now(UTC)

    await functions.remediate(sb_message(body))  # completes: no exception for the host

    [copy] = bus.senders[REQUESTS].scheduled
    assert copy.message.message_id not in ("m-1", None)
    assert copy.message.session_id == ADELE
    assert b"".join(copy.message.body) == body.encode()
    assert properties_of(copy.message) == {"delivery_attempts": 1, "retry_of": "m-1"}
    assert before + app.settings.retry_backoff <= copy.at <= (
        datetime.now(UTC) + app.settings.retry_backoff)
    [case] = await app.journal.list_cases()
    assert case.state is CaseState.IN_PROGRESS
    [note] = [s for s in case.steps if s.name == "retry"]
    assert note.detail.startswith(f"retry 1 at {copy.at:%Y-%m-%d %H:%M:%S} UTC: Graph")

    await functions.remediate(redeliver(copy.message))  # attempt 2: another copy, new id

    second = bus.senders[REQUESTS].scheduled[1]
    assert len({"m-1", copy.message.message_id, second.message.message_id}) == 3
    assert properties_of(second.message) == {"delivery_attempts": 2, "retry_of": "m-1"}
    assert second.at - copy.at >= app.settings.retry_backoff  # doubled

    with pytest.raises(TransientError):  # the last attempt: the broker dead-letters it
        await functions.remediate(redeliver(second.message))
    [case] = await app.journal.list_cases()
    assert case.state is CaseState.ESCALATED
    assert case.reason is not None
    assert case.reason.startswith(f"remediation gave up after {MAX_DELIVERIES} deliveries")
    assert case.request_ids == ("m-1",)
    assert len(tenant.user(ADELE).password_changes) == 1
    assert len(bus.senders[REQUESTS].scheduled) == 2


async def test_bodies_with_a_byte_order_mark_are_read_by_both_functions(
        app: Application, tenant: SandboxTenant, bus: RecordingServiceBusClient) -> None:
    bom = b"\xef\xbb\xbf"
    await functions.remediate(sb_message(bom + json.dumps({"user": ADELE}).encode()))

    [case] = await app.journal.list_cases()
    assert case.user == ADELE
    assert case.state is CaseState.AWAITING_VERIFICATION
    check = bus.senders[VERIFICATIONS].scheduled[0].message
    await functions.verify(sb_message(bom + b"".join(check.body),
                                      message_id=check.message_id))
    [case] = await app.journal.list_cases()
    assert case.state is CaseState.VERIFIED


async def test_session_and_message_ids_fit_service_bus(
        app: Application, tenant: SandboxTenant, bus: RecordingServiceBusClient) -> None:
    long_user = "a" * 64 + "@" + "b" * 60 + "." + "c" * 50 + ".contoso.com"
    assert 128 < len(long_user) <= 254
    tenant.add_user(SandboxUser(long_user, "Long Address"))
    tenant.block(long_user)
    long_id = "r" * 200  # a request id a person may choose (up to 200 characters)

    await app.requests.send(RemediationRequest(user=long_user, request_id=long_id))
    await app.requests.send(RemediationRequest(user=long_user, request_id=long_id))
    await app.requests.send(RemediationRequest(user=ADELE, request_id="short"))
    first, again, short = bus.senders[REQUESTS].sent
    await functions.remediate(redeliver(first))

    assert len(first.session_id) <= 128 and len(first.message_id) <= 128
    assert first.session_id.startswith("sha256:")
    assert body_of(first)["request_id"] == long_id  # the body keeps the real request id
    # One user, one session on both queues; one request id, one message id.
    assert first.session_id == again.session_id
    assert first.message_id == again.message_id
    checks = bus.senders[VERIFICATIONS].scheduled
    assert len(checks) == 3
    assert {c.message.session_id for c in checks} == {first.session_id}
    assert (short.session_id, short.message_id) == (ADELE, "short")
    [case] = await app.journal.list_cases()
    assert (case.user, case.state) == (long_user, CaseState.AWAITING_VERIFICATION)


async def test_permanent_failures_and_invalid_messages_complete(
        app: Application, tenant: SandboxTenant) -> None:
    await functions.remediate(sb_message(json.dumps({"user": PATTI}), session_id=PATTI))
    await functions.remediate(sb_message(b'{"user": "x", "admin": true}', message_id="m-2"))

    cases = {c.user: c for c in await app.journal.list_cases()}
    assert cases[PATTI].state is CaseState.ESCALATED
    assert "directory role" in (cases[PATTI].reason or "")
    assert cases["x"].state is CaseState.REJECTED
    assert cases["x"].reason == "unknown field(s): 'admin'"


async def test_receive_alert_queues_the_confirmed_alert_on_its_user_session(
        app: Application, tenant: SandboxTenant, bus: RecordingServiceBusClient) -> None:
    raw = alert(RESTRICTED, [mailbox_evidence(ADELE)])
    tenant.add_alert(raw)
    request = func.HttpRequest(method="POST", url="/api/alerts",
                               headers={"Content-Type": "application/json"},
                               body=json.dumps({"alertId": raw["id"]}).encode())

    response = await functions.receive_alert(request)

    assert response.status_code == 202
    assert json.loads(response.get_body())["queued"] == 1
    [sent] = bus.senders[REQUESTS].sent
    assert sent.session_id == ADELE
    assert sent.message_id.startswith("alert-")
    assert properties_of(sent) == {"schema": 1, "kind": "remediate", "source": "alert"}
    assert body_of(sent)["alert_ids"] == [raw["id"]]


async def test_receive_alert_refuses_bad_bodies(app: Application,
                                                bus: RecordingServiceBusClient) -> None:
    request = func.HttpRequest(method="POST", url="/api/alerts",
                               headers={"Content-Type": "text/plain"}, body=b"hello")

    response = await functions.receive_alert(request)

    assert response.status_code == 415
    assert "application/json" in json.loads(response.get_body())["error"]
    assert bus.senders == {}


async def test_poll_alerts_sends_one_message_per_alert_and_sweeps(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
        bus: RecordingServiceBusClient, azure_settings: dict[str, Any]) -> None:
    tenant.add_alert(alert(RESTRICTED, [mailbox_evidence(ADELE)]))
    settings = sandbox_settings(sandbox_url, tenant, tmp_path / "db", **azure_settings)
    application = bootstrap(settings, service_bus_client=bus)
    functions.use_application(application)
    try:
        await functions.poll_alerts(TimerRequest(past_due=True))
    finally:
        functions.use_application(None)
        await application.aclose()

    sent = bus.senders[REQUESTS].sent
    sources = {m.session_id: properties_of(m)["source"] for m in sent}
    assert sources[ADELE] == "alert"
    assert sources["johanna.lorenz@contoso.com"] == "restricted-list"
    assert len({m.message_id for m in sent}) == len(sent)


REFUSED_SOURCES = {
    "restricted_users": ("Restricted users sweep", lambda: Fault(
        status=400, code="BadRequest", cmdlet="Get-BlockedSenderAddress",
        exception_type="System.Management.Automation.ParameterBindingException",
        message="A parameter cannot be found that matches parameter name 'ResultSize'."),
        "A parameter cannot be found"),
    "alerts": ("Defender alerts", lambda: Fault(
        status=403, method="GET", path=r"/security/alerts_v2$", code="Forbidden",
        message="Missing application permission SecurityAlert.Read.All"), "403 Forbidden"),
}


@pytest.mark.parametrize("source", list(REFUSED_SOURCES))
async def test_poll_alerts_warns_of_a_source_it_could_not_read_and_journals_it(
        source: str, sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
        bus: RecordingServiceBusClient, azure_settings: dict[str, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    name, fault, because = REFUSED_SOURCES[source]
    tenant.add_fault(fault())
    settings = sandbox_settings(sandbox_url, tenant, tmp_path / "db", **azure_settings,
                                http_max_retries=0)
    application = bootstrap(settings, service_bus_client=bus)
    functions.use_application(application)
    try:
        with caplog.at_level(logging.WARNING, logger="remediation"):
            await functions.poll_alerts(TimerRequest(past_due=False))
    finally:
        functions.use_application(None)
        await application.aclose()

    [warning] = [r.getMessage() for r in caplog.records
                 if r.levelno == logging.WARNING and "poll: source" in r.getMessage()]
    assert name in warning and because in warning, warning
    # On record in the Table journal, for any other worker, status and doctor to read.
    other = bootstrap(settings, service_bus_client=bus)
    try:
        health = {h.source: h for h in await other.journal.source_health()}
    finally:
        await other.aclose()
    assert not health[source].ok and because in health[source].last_failure_reason
    assert all(h.ok for key, h in health.items() if key != source)


async def test_receive_defender_stream_turns_records_into_requests(
        app: Application, tenant: SandboxTenant, bus: RecordingServiceBusClient) -> None:
    raw = alert(RESTRICTED, [mailbox_evidence(ADELE)])
    tenant.add_alert(raw)
    record = {"category": "AdvancedHunting-AlertInfo", "operationName": "Publish",
              "properties": {"AlertId": raw["id"], "Title": RESTRICTED,
                             "ServiceSource": "Microsoft Defender for Office 365"}}
    events = [func.EventHubEvent(body=json.dumps({"records": [record]}).encode()),
              func.EventHubEvent(body=b"garbage")]

    await functions.receive_defender_stream(events)

    [sent] = bus.senders[REQUESTS].sent
    assert sent.session_id == ADELE


async def test_alert_updates_travel_on_the_verifications_queue(
        app: Application, tenant: SandboxTenant, bus: RecordingServiceBusClient) -> None:
    raw = alert(RESTRICTED, [mailbox_evidence(ADELE)])
    tenant.add_alert(raw)
    await app.intake.accept_hints([raw["id"]])
    [request] = bus.senders[REQUESTS].sent

    await functions.remediate(redeliver(request))

    [update] = bus.senders[VERIFICATIONS].sent
    assert properties_of(update)["kind"] == "alerts"
    assert body_of(update)["phase"] == "start"
    await functions.verify(redeliver(update))
    assert tenant.alert(raw["id"])["status"] == "inProgress"
    assert timedelta(0) < bus.senders[VERIFICATIONS].scheduled[0].at - (
        await app.journal.list_cases())[0].created_at


async def test_a_copy_for_delivery_at_once_has_no_scheduled_time(
        bus: RecordingServiceBusClient) -> None:
    """The sweeper's resume: no scheduled enqueue time, so a sweeper whose clock is ahead
    cannot have Service Bus hold it (hostile14 finding 4); a retry copy is still scheduled."""
    retries = ServiceBusMessageRetries(
        ServiceBusQueues("example.servicebus.windows.net", cast(Any, None), client=bus),
        REQUESTS)
    await retries.schedule_copy(b"{}", session_id=ADELE, properties={"kind": "resume"},
                                at=None)
    at = datetime.now(UTC) + timedelta(minutes=1)
    await retries.schedule_copy(b"{}", session_id=ADELE, properties={}, at=at)

    [sent] = bus.senders[REQUESTS].sent
    assert sent.session_id == ADELE and sent.scheduled_enqueue_time_utc is None
    assert [copy.at for copy in bus.senders[REQUESTS].scheduled] == [at]
