"""What Application Insights would see of whole cases (issue 17): spans, metrics and log
records, captured in memory from the product's own telemetry through the local worker
against the sandbox tenant, under the names of the telemetry contract."""

import uuid
from pathlib import Path
from typing import Any

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import Fault, SandboxTenant, SandboxUser
from tests.conftest import sandbox_settings
from tests.telemetry_capture import Captured, captured_telemetry

ADELE, PATTI, DIEGO = ("adele.vance@contoso.com", "patti.fernandez@contoso.com",
                       "diego.siciliani@contoso.com")
LYNNE = "lynne.robbins@contoso.com"
WORK_STEPS = ("lookup_user", "guardrails", "plan", "circuit_breaker", "reset_password",
              "revoke_sessions", "unblock", "schedule_verification")


async def run_requests(url: str, tenant: SandboxTenant, db: Path, *users: str,
                       **settings: object) -> tuple[Application, dict[str, Case]]:
    app = bootstrap(sandbox_settings(url, tenant, db, sweep_restricted_users=False, **settings))
    for user in users:
        await app.requests.send(RemediationRequest(user=user, request_id=uuid.uuid4().hex))
        await app.worker(poll_interval=0.05).run(until_idle=True)
    cases = {case.user: case for case in await app.journal.list_cases()}
    return app, cases


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def of_case(spans: list[ReadableSpan], case: Case) -> list[ReadableSpan]:
    return [span for span in spans if attributes(span).get("remediation.case_id") == case.case_id]


def total(captured: Captured, name: str, **wanted: str) -> float:
    """The sum of a counter's points whose attributes include ``wanted`` (dots for _)."""
    keys = {f"remediation.{key}": value for key, value in wanted.items()}
    return sum(point.value for found, point in captured.points(name)
               if keys.items() <= found.items())


async def test_a_verified_case_is_a_trace_of_its_steps_joined_by_its_verification(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    with captured_telemetry(mode="enforce") as captured:
        app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", ADELE)
        await app.aclose()
        case = cases[ADELE]
        assert case.state is CaseState.VERIFIED
        spans = captured.finished()
        by_id = {span.context.span_id: span for span in spans}

        # One span per delivery: the request's, then the verification hours (here: a second)
        # later, in the same trace through the message's traceparent.
        [request] = captured.named("remediation request")
        assert request.kind is SpanKind.CONSUMER
        assert attributes(request) == {
            "remediation.case_id": case.case_id, "remediation.state": "awaiting_verification",
            "remediation.outcome": "awaiting_verification", "remediation.source": "manual",
            "remediation.mode": "enforce"}
        # A check that came while the case still journaled its schedule waited for it (a
        # loaded machine): its first delivery is a span of its own, in the same trace. So is
        # a later check due before the first had verified the case, which then finds it
        # verified and does nothing: the verification is the delivery that ran the look.
        verifications = captured.named("remediation verification")
        assert {span.context.trace_id for span in verifications} == {request.context.trace_id}
        looks = [span for span in of_case(spans, case) if span.name.startswith("step verify_")]
        [verification] = [span for span in verifications
                          if attributes(span).get("remediation.state") == "verified"
                          and any(look.parent is not None
                                  and look.parent.span_id == span.context.span_id
                                  for look in looks)]
        assert verification.parent is not None
        scheduled = by_id[verification.parent.span_id]
        assert scheduled.name == "step schedule_verification"
        assert attributes(verification)["remediation.state"] == "verified"

        # One span per work step, under its delivery, with its outcome.
        steps = {span.name: span for span in of_case(spans, case)
                 if span.name.startswith("step ")}
        for name in WORK_STEPS:
            step = steps[f"step {name}"]
            assert step.kind is SpanKind.INTERNAL
            assert step.parent is not None and step.parent.span_id == request.context.span_id
            assert attributes(step) == {
                "remediation.case_id": case.case_id, "remediation.step": name,
                "remediation.outcome": "done", "remediation.source": "manual",
                "remediation.mode": "enforce"}
        assert len([look for look in looks if look.parent is not None
                    and look.parent.span_id == verification.context.span_id]) == 1

        # The HTTP calls underneath, by the SDKs' own instrumentation: Graph (httpx) under the
        # reset, Exchange (azure-core) under the unblock; kiota's own spans muted.
        def calls_under(step: str) -> list[ReadableSpan]:
            parent = steps[f"step {step}"].context.span_id
            return [span for span in spans if span.kind is SpanKind.CLIENT
                    and span.parent is not None and span.parent.span_id == parent]

        [reset_call] = [s for s in calls_under("reset_password")
                        if attributes(s).get("http.method") == "PATCH"]
        assert f"/v1.0/users/{case.user_id}" in str(attributes(reset_call)["http.url"])
        assert any(str(attributes(s).get("url.full", "")).endswith("/InvokeCommand")
                   for s in calls_under("unblock"))
        assert not [span for span in spans if span.name.endswith("_send")]

        # Metrics: the case counted once in its final state; its times from the first signal.
        assert total(captured, "remediation.cases.final", state="verified") == 1
        assert total(captured, "remediation.escalations") == 0
        for histogram in ("remediation.time_to_reset", "remediation.time_to_unblock",
                          "remediation.time_to_verified"):
            [(found, point)] = captured.points(histogram)
            assert found == {"remediation.source": "manual"}
            assert point.count == 1 and 0 <= point.sum < 60
        [(_, reset)], [(_, verified)] = (captured.points("remediation.time_to_reset"),
                                         captured.points("remediation.time_to_verified"))
        assert reset.sum <= verified.sum

        # A log record per journaled step, in the journal's order, with its dimensions.
        [stored] = await bootstrap(sandbox_settings(
            sandbox_url, tenant, tmp_path / "db")).journal.list_cases(ADELE)
        records = [r.log_record for r in captured.records()
                   if (r.log_record.attributes or {}).get("remediation.case_id") == case.case_id]
        assert [r.body for r in records] == [
            f"case {case.case_id} {step.name} {step.status.value}" for step in stored.steps]
        assert {r.severity_number for r in records} == {SeverityNumber.INFO}
        assert dict(records[-1].attributes or {}) == {
            "remediation.case_id": case.case_id, "remediation.step": stored.steps[-1].name,
            "remediation.outcome": stored.steps[-1].status.value,
            "remediation.account": ADELE, "remediation.state": "awaiting_verification"}
        assert {r.trace_id for r in records} == {request.context.trace_id}


async def test_refusals_and_guardrails_show_their_codes_and_escalation_kinds(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    refused = "refused@contoso.com"
    tenant.add_user(SandboxUser(refused, "Refused", reset_forbidden=True))
    tenant.block(refused)
    with captured_telemetry(mode="enforce") as captured:
        app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", refused, PATTI)
        await app.aclose()
        assert cases[refused].state is CaseState.ESCALATED
        assert cases[PATTI].state is CaseState.ESCALATED

        # Graph's 403 on the reset: the step failed with Graph's code and the kind it leads
        # to; the delivery ends with the case escalated, its kind named.
        [reset] = [s for s in of_case(captured.named("step reset_password"), cases[refused])]
        assert attributes(reset)["remediation.outcome"] == "failed"
        assert attributes(reset)["remediation.error_code"] == "Authorization_RequestDenied"
        assert attributes(reset)["remediation.escalation_kind"] == "refused"
        assert reset.status.status_code is StatusCode.ERROR
        assert reset.status.description == "Authorization_RequestDenied"
        [delivery] = of_case(captured.named("remediation request"), cases[refused])
        assert attributes(delivery)["remediation.escalation_kind"] == "refused"
        assert attributes(delivery)["remediation.outcome"] == "escalated"
        [patti] = of_case(captured.named("remediation request"), cases[PATTI])
        assert attributes(patti)["remediation.escalation_kind"] == "guardrail"

        assert total(captured, "remediation.cases.final", state="escalated") == 2
        assert total(captured, "remediation.escalations", escalation_kind="refused") == 1
        assert total(captured, "remediation.escalations", escalation_kind="guardrail") == 1
        assert captured.points("remediation.time_to_unblock") == []

        # The failed step and the escalation are WARNINGs naming the kind.
        records = {(r.log_record.attributes or {}).get("remediation.step"): r.log_record
                   for r in captured.records() if (r.log_record.attributes or {}).get(
                       "remediation.account") == refused
                   and r.log_record.severity_number is SeverityNumber.WARN}
        assert set(records) == {"reset_password", "escalated"}
        assert records["reset_password"].body == (
            f"case {cases[refused].case_id} reset_password failed")
        assert dict(records["escalated"].attributes or {})["remediation.reason_kind"] == (
            "refused")


async def test_the_breaker_and_the_dead_letter_queue_are_counted(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    tenant.add_fault(Fault(status=503, path=r"/revokeSignInSessions$", times=None,
                           target=DIEGO))
    with captured_telemetry() as captured:
        app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", ADELE, LYNNE,
                                        max_remediations_per_hour=1)
        second = await run_requests(sandbox_url, tenant, tmp_path / "db2", DIEGO,
                                    max_delivery_count=2, http_max_retries=0)
        await app.aclose()
        await second[0].aclose()
        assert second[1][DIEGO].state is CaseState.ESCALATED
        assert second[0].queue is not None
        assert len(await second[0].queue.dead_letters()) == 1

        assert cases[LYNNE].escalation_kind == "circuit_breaker"
        assert total(captured, "remediation.breaker.held") == 1
        assert total(captured, "remediation.dead_lettered", kind="request") == 1
        assert total(captured, "remediation.escalations", escalation_kind="gave_up") == 1
