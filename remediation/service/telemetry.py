"""What the product tells Application Insights about its work (issue 17), under the names of
the telemetry contract the workbook's queries read: a span per queue delivery (``remediation
<kind>``, CONSUMER) and per journaled work step (``step <name>``, INTERNAL), counters and
histograms of cases (meter ``remediation``), and one log record per journaled step (logger
``remediation.journal``): a copy of the journal that Log Analytics keeps out of the app
identity's reach.

The core knows no OpenTelemetry: it reports to the ``Telemetry`` port installed for the
process (``install``: entrypoints/telemetry.py does it once, like logging), NoTelemetry until
then, for which nothing is computed. Attributes and log messages hold ids, the case's address
and our own vocabulary (states, kinds, step names, error codes), never a reason, a detail or
free text from outside: no password, token, phone number or webhook URL can reach them.

The exporter maps them (azure-monitor-opentelemetry-exporter): CONSUMER spans to
``requests``, INTERNAL and HTTP client spans to ``dependencies``, attributes to
``customDimensions``, metrics to ``customMetrics``, log records to ``traces``.
"""

import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.errors import InvalidRequest, PermanentError
from remediation.domain.escalation_kinds import EscalationKind
from remediation.domain.requests import decode_json, normalise_user
from remediation.service.ports import Telemetry, TraceSpan

NAME = "remediation"  # the tracer's and the meter's
JOURNAL_LOGGER = "remediation.journal"
POLL = "remediation poll"
# Work on a case that no queue message brought: the sweeper resuming or escalating it.
SWEEP = "sweep"
# Where the trace context a case opened in is kept: its ``received`` step's data.
TRACE = "trace"

CASE_ID, STEP, OUTCOME = "remediation.case_id", "remediation.step", "remediation.outcome"
STATE, ESCALATION_KIND = "remediation.state", "remediation.escalation_kind"
MODE, SOURCE, ERROR_CODE = "remediation.mode", "remediation.source", "remediation.error_code"
KIND, ACCOUNT, REASON_KIND = "remediation.kind", "remediation.account", "remediation.reason_kind"

CASES_FINAL, ESCALATIONS = "remediation.cases.final", "remediation.escalations"
BREAKER_HELD, DEAD_LETTERED = "remediation.breaker.held", "remediation.dead_lettered"
TIME_TO_RESET, TIME_TO_UNBLOCK = "remediation.time_to_reset", "remediation.time_to_unblock"
TIME_TO_VERIFIED = "remediation.time_to_verified"

#: Counters: name -> (unit, description).
COUNTERS: dict[str, tuple[str, str]] = {
    CASES_FINAL: ("{case}", "cases that reached a final state (remediation.state)"),
    ESCALATIONS: ("{case}", "cases escalated to a person (remediation.escalation_kind)"),
    BREAKER_HELD: ("{case}", "cases held by the circuit breaker: nothing was changed"),
    DEAD_LETTERED: ("{message}", "messages given up for the dead-letter queue "
                                 "(remediation.kind)"),
}
#: Histograms (seconds from the case's first signal, ``first_signal``): name -> (unit, what).
HISTOGRAMS: dict[str, tuple[str, str]] = {
    TIME_TO_RESET: ("s", "from the first signal to the password reset"),
    TIME_TO_UNBLOCK: ("s", "from the first signal to the unblock"),
    TIME_TO_VERIFIED: ("s", "from the first signal to the case verified"),
}

# The contract's message kinds, by the ``kind`` a message body names (a request names none).
_KINDS = {"remediate": "request", "approve": "approval", "resume": "resume", "undo": "undo",
          "verify": "verification", "alerts": "alert_update"}
# What an attribute or a log message may hold of a name: our step names, case ids, the
# vocabulary of states and kinds, addresses and object ids. Anything else is replaced.
_NOT_OURS = re.compile(r"[^A-Za-z0-9_.:@+\-]")
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_TRACESTATE_LIMIT = 512  # W3C Trace Context: a vendor may cut a longer one


class _NoSpan:
    def set_attributes(self, attributes: Mapping[str, str]) -> None:
        return None

    def failed(self, description: str) -> None:
        return None


class NoTelemetry:
    """Reports nothing: the process default until an entry point installs another."""

    enabled = False

    def span(self, name: str, kind: Literal["consumer", "internal"],
             attributes: Mapping[str, str], carrier: Mapping[str, Any] | None = None,
             ) -> AbstractContextManager[TraceSpan]:
        return nullcontext(_NoSpan())

    def add(self, counter: str, attributes: Mapping[str, str]) -> None:
        return None

    def record(self, histogram: str, value: float, attributes: Mapping[str, str]) -> None:
        return None

    def carrier(self) -> dict[str, str]:
        return {}


_current: Telemetry = NoTelemetry()


def current() -> Telemetry:
    """The process's telemetry (NoTelemetry unless one was installed)."""
    return _current


def install(telemetry: Telemetry) -> Telemetry:
    """Make ``telemetry`` the process's; returns the one it replaces (tests put it back)."""
    global _current
    previous, _current = _current, telemetry
    return previous


def ours(text: str, limit: int = 128) -> str:
    """``text`` fit for an attribute or a log message: characters of names and addresses
    only (others become ``?``), at most ``limit``."""
    return _NOT_OURS.sub("?", text[:limit])


def message_kind(body: bytes, default: str) -> str:
    """The contract's kind of a message (``request``, ``approval``, ``resume``, ``undo``,
    ``verification``, ``alert_update``) from the ``kind`` its body names; ``default`` for a
    body that names none (a request) or cannot be read."""
    try:
        fields = decode_json(body)
    except InvalidRequest:
        return default
    kind = fields.get("kind") if isinstance(fields, dict) else None
    return _KINDS.get(kind, default) if isinstance(kind, str) else default


def case_attributes(case: Case) -> dict[str, str]:
    """A case's attributes on the span of the delivery that moved it: its state as the
    outcome, its escalation kind when escalated, its source."""
    attributes = {CASE_ID: ours(case.case_id), STATE: case.state.value,
                  OUTCOME: case.state.value, SOURCE: ours(case.source)}
    if case.state is CaseState.ESCALATED and case.escalation_kind:
        attributes[ESCALATION_KIND] = ours(case.escalation_kind)
    return attributes


def error_code(error: BaseException) -> str | None:
    """A Microsoft error code (Graph's ``code``, e.g. ``Authorization_RequestDenied``:
    ``GraphRequestError.code``; Exchange's: ``ExchangeCmdletError.error.code``), else the
    HTTP status as text, from the error or what caused it; None when none is known."""
    seen: BaseException | None = error
    for _ in range(4):
        if seen is None:
            break
        for holder in (seen, getattr(seen, "error", None)):
            code, status = getattr(holder, "code", None), getattr(holder, "status", None)
            if isinstance(code, str) and _CODE.fullmatch(code) and code != "unparsed":
                return code
            if isinstance(status, int) and not isinstance(status, bool) and status > 0:
                return str(status)
        seen = seen.__cause__
    return None


@contextmanager
def delivery_span(body: bytes, properties: Mapping[str, Any],
                  default_kind: str) -> Iterator["DeliveryTrace"]:
    """The span of one queue delivery, ``remediation <kind>`` (CONSUMER), a child of the
    trace context the message carries (``traceparent``, ``tracestate``)."""
    telemetry = current()
    kind = message_kind(body, default_kind) if telemetry.enabled else default_kind
    with telemetry.span(f"{NAME} {kind}", "consumer", {}, carrier=properties) as span:
        yield DeliveryTrace(telemetry, span, kind)


async def delivery_carrier(body: bytes, properties: Mapping[str, Any],
                           find: Callable[[str], Awaitable[Case]]) -> Mapping[str, Any]:
    """The trace context a delivery's span joins: the one its message carries; for one that
    carries none and names a case (an approval, an undo or a decision's notice sent by a
    command with no trace of its own, a hand-sent message), the trace its case opened in
    (``case_trace``, read with ``find``). Never raises: a case that cannot be read leaves
    the delivery a trace of its own."""
    if not current().enabled or properties.get("traceparent"):
        return properties
    try:
        fields = decode_json(body)
    except InvalidRequest:
        return properties
    case_id = fields.get("case_id") if isinstance(fields, dict) else None
    if not isinstance(case_id, str) or not case_id:
        return properties
    try:
        case = await find(case_id)
    except Exception:  # no such case, or the journal cannot answer now: the handling says so
        return properties
    return {**properties, **case_trace(case)}


def trace_data() -> dict[str, Any]:
    """The current trace context, for the data of the step that opens a case (``TRACE``);
    empty while no trace is current."""
    telemetry = current()
    carrier = telemetry.carrier() if telemetry.enabled else {}
    return {TRACE: carrier} if carrier.get("traceparent") else {}


def case_trace(case: Case) -> dict[str, str]:
    """The trace context ``case`` opened in (its ``received`` step, ``trace_data``): what
    work on the case that no message brought, or whose message carries none, joins. Empty
    when none was kept (a case opened while telemetry was off)."""
    received = next((step for step in case.steps if step.name == "received"), None)
    kept = received.data.get(TRACE) if received is not None else None
    if not isinstance(kept, dict):
        return {}
    parent, state = kept.get("traceparent"), kept.get("tracestate")
    if not isinstance(parent, str) or not _TRACEPARENT.fullmatch(parent):
        return {}
    if isinstance(state, str) and state and len(state) <= _TRACESTATE_LIMIT:
        return {"traceparent": parent, "tracestate": state}
    return {"traceparent": parent}


@contextmanager
def case_span(case: Case, kind: str) -> Iterator["DeliveryTrace"]:
    """The span (CONSUMER: a ``requests`` row, as a delivery's) of work on ``case`` that no
    queue message brought, ``remediation <kind>`` (``SWEEP``), in the trace the case opened
    in; ``settled`` with the case as the work left it, so the case's latest state is read
    from it as from a delivery (docs/queries.kql, ``cases_by_state``)."""
    telemetry = current()
    with telemetry.span(f"{NAME} {kind}", "consumer", {CASE_ID: ours(case.case_id)},
                        carrier=case_trace(case)) as span:
        try:
            yield DeliveryTrace(telemetry, span, kind)
        except Exception as error:
            span.failed(type(error).__name__)
            raise


class DeliveryTrace:
    def __init__(self, telemetry: Telemetry, span: TraceSpan, kind: str) -> None:
        self._telemetry, self._span, self.kind = telemetry, span, kind

    def settled(self, case: Case | None) -> None:
        """The delivery returned (the message completes) with ``case`` as it left it."""
        if case is not None:
            self._span.set_attributes(case_attributes(case))

    def abandoned(self, error: Exception, *, dead_lettered: bool) -> None:
        """The delivery raised: the message is abandoned, and dead-lettered when this was
        the broker's last delivery of it."""
        self._span.failed(type(error).__name__)
        if dead_lettered:
            self._telemetry.add(DEAD_LETTERED, {KIND: self.kind})


class StepTrace:
    """The span of one journaled work step, ``step <name>`` (INTERNAL); the HTTP calls the
    step makes are its children."""

    def __init__(self, case: Case, name: str) -> None:
        self._telemetry = current()
        self._span_context = self._telemetry.span(
            f"step {ours(name)}", "internal",
            {CASE_ID: ours(case.case_id), STEP: ours(name), SOURCE: ours(case.source)})
        self._span: TraceSpan = _NoSpan()
        self._ended = False

    def __enter__(self) -> "StepTrace":
        self._span = self._span_context.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> bool | None:
        if isinstance(error, Exception) and not self._ended:
            self.failed(error)
        elif error is not None and not self._ended:  # cancelled: the time budget, a shutdown
            self._span.failed(type(error).__name__)
        return self._span_context.__exit__(kind, error, traceback)

    def done(self) -> None:
        self._ended = True
        self._span.set_attributes({OUTCOME: StepStatus.DONE.value})

    def failed(self, error: BaseException) -> None:
        """The step failed with ``error``: its code when known, its escalation kind when
        it is permanent."""
        self._ended = True
        attributes = {OUTCOME: StepStatus.FAILED.value}
        code = error_code(error)
        if code is not None:
            attributes[ERROR_CODE] = code
        if isinstance(error, PermanentError):
            attributes[ESCALATION_KIND] = error.kind.value
        self._span.set_attributes(attributes)
        self._span.failed(code or type(error).__name__)


def first_signal(case: Case) -> datetime:
    """When the case's trouble was first seen (``service.first_signal``: the block's listing
    time or the first activity of a confirmed alert, else the request's arrival)."""
    # Imported here: claims and leftovers report through the recorder, which imports this.
    from remediation.service.first_signal import first_signal as signal

    return signal(case)[0]


def journaled(case: Case, step: Step) -> None:
    """Report a journaled ``step`` of ``case`` (as the step left it): its log record."""
    if current().enabled:
        _log(case, step)


def opened(case: Case) -> None:
    """Report a case journaled for the first time (a rejected one is final at once)."""
    if case.state.is_final:
        _ended(current(), case)


def saved(before: CaseState, case: Case) -> None:
    """Report a case stored in ``case.state``, which was ``before``: a final state reached
    counts once (the journal lets one writer move a case, and none move it on from there),
    with the times the case took from its first signal to its reset, its unblock and its
    verification, each it reached (measured at its end, when every sign is known)."""
    if case.state.is_final and not before.is_final:
        _ended(current(), case)


def _ended(telemetry: Telemetry, case: Case) -> None:
    if not telemetry.enabled:
        return
    telemetry.add(CASES_FINAL, {STATE: case.state.value})
    if case.state is CaseState.ESCALATED:
        kind = ours(case.escalation_kind or "unknown")
        telemetry.add(ESCALATIONS, {ESCALATION_KIND: kind})
        if kind == EscalationKind.CIRCUIT_BREAKER.value:
            telemetry.add(BREAKER_HELD, {})
    from remediation.service.journaling import RESET  # the recorder imports this module

    reset = case.done(RESET)
    verified = case.ended_at if case.state is CaseState.VERIFIED else None
    started = first_signal(case)
    for histogram, at in ((TIME_TO_RESET, reset.at if reset else None),
                          (TIME_TO_UNBLOCK, case.unblocked_at), (TIME_TO_VERIFIED, verified)):
        seconds = None if at is None else (at - started).total_seconds()
        if seconds is not None and seconds >= 0:  # a clock that disagrees says nothing
            telemetry.record(histogram, seconds, {SOURCE: ours(case.source)})


def _account(user: str) -> str | None:
    """The case's account as an attribute: an address or an object id, as a request must
    name it (``normalise_user``); None for anything else (a rejected message's claim)."""
    try:
        return normalise_user(user)
    except InvalidRequest:
        return None


def _log(case: Case, step: Step) -> None:
    """The step's record: ``case <case_id> <step> <outcome>``, INFO, WARNING when the step
    failed or escalated the case, with the contract's attributes (customDimensions)."""
    name, outcome = ours(step.name), step.status.value
    escalated = case.state is CaseState.ESCALATED and case.escalation_kind
    level = logging.WARNING if step.status is StepStatus.FAILED or (
        escalated and step.name == "escalated") else logging.INFO
    extra = {CASE_ID: ours(case.case_id), STEP: name, OUTCOME: outcome,
             STATE: case.state.value}
    account = _account(case.user)
    if account is not None:
        extra[ACCOUNT] = account
    if escalated:
        extra[REASON_KIND] = ours(str(case.escalation_kind))
    logging.getLogger(JOURNAL_LOGGER).log(level, "case %s %s %s", extra[CASE_ID], name,
                                          outcome, extra=extra)
