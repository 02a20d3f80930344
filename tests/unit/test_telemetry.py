"""What the core reports (service/telemetry.py) through a recording fake of the Telemetry port,
and the OpenTelemetry adapter on the SDK's in-memory exporters (not the process's providers)."""

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from remediation.adapters.telemetry import OpenTelemetry, parent_context
from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.errors import PermanentError, TransientError
from remediation.domain.escalation_kinds import EscalationKind
from remediation.entrypoints.telemetry import _mute_kiota, configured, wanted
from remediation.service import telemetry
from remediation.service.ports import TraceSpan
from tests.fakes import START, FakeTenant
from tests.unit.test_workflow import ROB, delivery, make_harness

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class RecordedSpan:
    name: str
    kind: str
    attributes: dict[str, str]
    carrier: Mapping[str, Any] | None
    status: str | None = None

    def set_attributes(self, attributes: Mapping[str, str]) -> None:
        self.attributes.update(attributes)

    def failed(self, description: str) -> None:
        self.status = description


@dataclass
class RecordingTelemetry:
    """The Telemetry port, recording what the core reports."""

    enabled: bool = True
    spans: list[RecordedSpan] = field(default_factory=list)
    counted: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    measured: dict[str, list[tuple[float, dict[str, str]]]] = field(default_factory=dict)

    @contextmanager
    def span(self, name: str, kind: Literal["consumer", "internal"],
             attributes: Mapping[str, str], carrier: Mapping[str, Any] | None = None,
             ) -> Iterator[TraceSpan]:
        span = RecordedSpan(name, kind, dict(attributes), carrier)
        self.spans.append(span)
        yield span

    def add(self, counter: str, attributes: Mapping[str, str]) -> None:
        self.counted.append((counter, dict(attributes)))

    def record(self, histogram: str, value: float, attributes: Mapping[str, str]) -> None:
        self.measured.setdefault(histogram, []).append((value, dict(attributes)))

    def carrier(self) -> dict[str, str]:
        return {}

    def named(self, name: str) -> list[RecordedSpan]:
        return [span for span in self.spans if span.name == name]


@pytest.fixture
def recording() -> Iterator[RecordingTelemetry]:
    recorder = RecordingTelemetry()
    previous = telemetry.install(recorder)
    yield recorder
    telemetry.install(previous)


def case(**fields: Any) -> Case:
    return Case(**{"case_id": "20260105-0000abcd", "user": ROB, "state": CaseState.RECEIVED,
                   "created_at": START, "updated_at": START, **fields})


# -- whole cases against the fakes -------------------------------------------------------------


async def test_a_case_reports_its_times_from_the_block_to_reset_unblock_and_verified(
        recording: RecordingTelemetry) -> None:
    h = make_harness(FakeTenant())  # blocked 30 minutes before the request arrives
    done = await h.remediate(source="manual")
    [verified] = await h.checks_at(timedelta(hours=1))
    assert verified.state is CaseState.VERIFIED

    assert recording.measured == {
        telemetry.TIME_TO_RESET: [(1800.0, {telemetry.SOURCE: "manual"})],
        telemetry.TIME_TO_UNBLOCK: [(1800.0, {telemetry.SOURCE: "manual"})],
        telemetry.TIME_TO_VERIFIED: [(1800.0 + 3600.0, {telemetry.SOURCE: "manual"})]}
    assert recording.counted == [(telemetry.CASES_FINAL, {telemetry.STATE: "verified"})]
    steps = [span for span in recording.spans if span.name.startswith("step ")]
    assert [span.name for span in steps][:3] == ["step lookup_user", "step guardrails",
                                                  "step plan"]
    assert {span.attributes[telemetry.OUTCOME] for span in steps} == {"done"}
    assert {span.attributes[telemetry.CASE_ID] for span in steps} == {done.case_id}
    assert recording.named("step verify_0")  # the check's look, though not run as a step


async def test_a_final_state_is_counted_once_with_its_escalation_kind(
        recording: RecordingTelemetry) -> None:
    h = make_harness(FakeTenant())
    h.tenant.directory.fail(ROB, PermanentError("no", EscalationKind.REFUSED),
                            on="reset_password")
    escalated = await h.remediate()
    assert escalated.state is CaseState.ESCALATED
    # A second signal for the same block: its own case is merged (skipped), the escalated
    # one is not counted again.
    assert (await h.remediate(request_id="req-2")).case_id == escalated.case_id
    assert recording.counted == [
        (telemetry.CASES_FINAL, {telemetry.STATE: "escalated"}),
        (telemetry.ESCALATIONS, {telemetry.ESCALATION_KIND: "refused"}),
        (telemetry.CASES_FINAL, {telemetry.STATE: "skipped"})]
    [reset] = recording.named("step reset_password")
    assert reset.attributes[telemetry.OUTCOME] == "failed"
    assert reset.attributes[telemetry.ESCALATION_KIND] == "refused"
    assert telemetry.TIME_TO_RESET not in recording.measured


def test_a_case_held_by_the_breaker_is_counted_as_such(recording: RecordingTelemetry) -> None:
    held = case(state=CaseState.ESCALATED, escalation_kind="circuit_breaker")
    telemetry.saved(CaseState.IN_PROGRESS, held)
    assert (telemetry.BREAKER_HELD, {}) in recording.counted
    telemetry.saved(CaseState.ESCALATED, held)  # a later save of a final case
    assert len(recording.counted) == 3


async def test_a_delivery_span_is_named_by_its_kind_and_carries_the_case(
        recording: RecordingTelemetry) -> None:
    h = make_harness(FakeTenant())
    await h.handler.on_request(delivery(f'{{"user": "{ROB}"}}'))
    await h.handler.on_request(delivery(b"\xff not json", message_id="m-2"))
    [request, rejected] = [s for s in recording.spans if s.kind == "consumer"]
    assert request.name == rejected.name == "remediation request"
    assert request.attributes[telemetry.STATE] == "awaiting_verification"
    assert rejected.attributes[telemetry.STATE] == "rejected"
    assert rejected.attributes[telemetry.CASE_ID] != request.attributes[telemetry.CASE_ID]


def test_message_kinds_come_from_the_body() -> None:
    assert telemetry.message_kind(b'{"user": "rob@contoso.com"}', "request") == "request"
    for body_kind, kind in (("approve", "approval"), ("resume", "resume"), ("undo", "undo"),
                            ("verify", "verification"), ("alerts", "alert_update")):
        assert telemetry.message_kind(f'{{"kind": "{body_kind}"}}'.encode(), "x") == kind
    for body in (b"not json", b'{"kind": "\\u001b[2J"}', b"[]", b'{"kind": 3}'):
        assert telemetry.message_kind(body, "verification") == "verification"


# -- what attributes may hold -------------------------------------------------------------------


class _GraphError(PermanentError):
    def __init__(self, code: str, status: int) -> None:
        super().__init__(f"Graph: failed with {status} {code}: Bearer abc")
        self.code, self.status = code, status


class _ExchangeError(PermanentError):
    def __init__(self, code: str, status: int) -> None:
        super().__init__("Exchange: refused")
        self.error = _GraphError(code, status)


def test_an_error_code_is_graphs_or_exchanges_identifier_else_the_status() -> None:
    assert telemetry.error_code(_GraphError("Authorization_RequestDenied", 403)) == (
        "Authorization_RequestDenied")
    assert telemetry.error_code(_ExchangeError("ManagementObjectNotFound", 400)) == (
        "ManagementObjectNotFound")
    assert telemetry.error_code(_GraphError("a code with spaces: Bearer x", 400)) == "400"
    assert telemetry.error_code(_ExchangeError("unparsed", 502)) == "502"
    wrapped = PermanentError("unblock failed")
    wrapped.__cause__ = _GraphError("Request_BadRequest", 400)
    assert telemetry.error_code(wrapped) == "Request_BadRequest"
    assert telemetry.error_code(TransientError("timed out")) is None


def test_the_step_record_holds_no_text_from_outside(recording: RecordingTelemetry,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    hostile = case(user="eve@contoso.com\n20260101-deadbeef verified\x1b[2J",
                   state=CaseState.ESCALATED, escalation_kind="refused")
    step = Step("alert_comment:start:fa1\x1b]0;owned\x07", StepStatus.FAILED, START,
                "Bearer eyJ0eXAi... password=hunter2", {"secret": "x"})
    with caplog.at_level(logging.INFO, logger=telemetry.JOURNAL_LOGGER):
        telemetry.journaled(hostile, step)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "case 20260105-0000abcd alert_comment:start:fa1??0?owned? failed")
    dimensions = {key: value for key, value in vars(record).items()
                  if key.startswith("remediation.")}
    # A user that is no address (nor object id) is no account: left out, not mangled.
    assert dimensions == {
        "remediation.case_id": "20260105-0000abcd",
        "remediation.step": "alert_comment:start:fa1??0?owned?",
        "remediation.outcome": "failed",
        "remediation.state": "escalated", "remediation.reason_kind": "refused"}


def test_without_telemetry_nothing_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    assert not telemetry.current().enabled  # the process default
    with caplog.at_level(logging.DEBUG):
        telemetry.journaled(case(), Step("reset_password", StepStatus.DONE, START))
        telemetry.saved(CaseState.IN_PROGRESS, case(state=CaseState.VERIFIED, ended_at=START))
    assert caplog.records == []


def test_the_first_signal_is_the_block_or_the_first_confirmed_alert_else_the_arrival() -> None:
    confirmed = Step("alert_confirmed", StepStatus.INFO, START, "",
                     {"alert_id": "a1", "first_activity": (START - timedelta(hours=2))
                      .isoformat()})
    ignored = Step("alert_confirmed", StepStatus.INFO, START, "",
                   {"alert_id": "dropped", "first_activity": (START - timedelta(days=9))
                    .isoformat()})
    assert telemetry.first_signal(case()) == START
    assert telemetry.first_signal(case(block_created=START - timedelta(hours=1))) == (
        START - timedelta(hours=1))
    assert telemetry.first_signal(case(block_created=START - timedelta(hours=1),
                                       alert_ids=("a1",), steps=(confirmed, ignored))) == (
        START - timedelta(hours=2))


# -- the OpenTelemetry adapter --------------------------------------------------------------------


def test_the_adapter_joins_a_carried_trace_and_records_no_exception() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    adapter = OpenTelemetry(mode="dry-run", tracer_provider=provider)
    carried: dict[str, str] = {}

    def fail() -> None:
        with adapter.span("remediation request", "consumer", {"remediation.case_id": "c"},
                          carrier={"traceparent": TRACEPARENT, "kind": "verify"}) as span:
            carried.update(adapter.carrier())
            span.failed("RuntimeError")
            raise RuntimeError("Bearer secret-token in a message")

    with pytest.raises(RuntimeError):
        fail()
    [finished] = spans.get_finished_spans()
    assert format(finished.context.trace_id, "032x") == TRACEPARENT.split("-")[1]
    assert finished.parent is not None and format(finished.parent.span_id, "016x") == (
        TRACEPARENT.split("-")[2])
    assert dict(finished.attributes or {}) == {"remediation.case_id": "c",
                                               "remediation.mode": "dry-run"}
    assert finished.events == () and finished.status.status_code is StatusCode.ERROR
    assert finished.status.description == "RuntimeError"
    assert list(carried) == ["traceparent"]
    assert carried["traceparent"].split("-")[1] == TRACEPARENT.split("-")[1]
    assert adapter.carrier() == {}  # outside any span


@pytest.mark.parametrize("carrier", [None, {}, {"traceparent": "00-0000-bad"},
                                     {"traceparent": 7}, {"tracestate": "a=b"}])
def test_a_missing_or_broken_traceparent_leaves_the_current_context(
        carrier: dict[str, Any] | None) -> None:
    assert parent_context(carrier) is None


def test_kiota_tracers_are_muted_and_the_others_kept() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    _mute_kiota(provider)
    ours = provider.get_tracer("remediation")
    kiota = provider.get_tracer("com.microsoft.com:microsoft-kiota-http-httpx")
    httpx = provider.get_tracer("opentelemetry.instrumentation.httpx")
    with ours.start_as_current_span("step reset_password") as step, \
            kiota.start_as_current_span("RetryHandler_send"), \
            httpx.start_as_current_span("PATCH") as call:
        pass
    assert [span.name for span in spans.get_finished_spans()] == ["PATCH",
                                                                   "step reset_password"]
    assert call.parent is not None  # type: ignore[attr-defined]
    assert call.parent.span_id == step.get_span_context().span_id  # type: ignore[attr-defined]


def test_telemetry_is_off_unless_the_environment_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not wanted({})
    assert not wanted({"REMEDIATION_TELEMETRY": "file"})
    assert wanted({"REMEDIATION_TELEMETRY": "Console"})
    assert wanted({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"})
    assert wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318"})
    with configured("enforce"):
        assert not telemetry.current().enabled
