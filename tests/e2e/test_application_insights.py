"""With APPLICATIONINSIGHTS_CONNECTION_STRING set, a case's traces, metrics and logs reach
Application Insights through azure-monitor-opentelemetry (issue 17): the local runtime and the
Functions app as separate processes, exporting to a stand-in for the ingestion endpoint
(tests/ingestion_fake.py), before they exit."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from remediation.sandbox import SandboxTenant
from tests.conftest import sandbox_env
from tests.ingestion_fake import environment, fake_ingestion

ADELE = "adele.vance@contoso.com"
ROOT = Path(__file__).resolve().parents[2]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "remediation", *args],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120, check=False)


def properties(envelope: dict[str, object]) -> dict[str, str]:
    return dict(envelope["data"]["baseData"].get("properties") or {})  # type: ignore[index]


def test_run_exports_the_case_to_application_insights_before_it_exits(
        threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    with fake_ingestion() as ingestion:
        env = {**sandbox_env(threaded_sandbox_url, tenant, tmp_path / "state.db"),
               **environment(ingestion)}
        assert cli(env, "enqueue", "--user", ADELE).returncode == 0
        run = cli(env, "run", "--until-idle")
        assert run.returncode == 0, run.stderr

        # requests: one per delivery, the verification in the request's operation.
        [request] = ingestion.named("Request", "remediation request")
        [verification] = ingestion.named("Request", "remediation verification")
        case_id = properties(request)["remediation.case_id"]
        assert properties(request)["remediation.state"] == "awaiting_verification"
        assert properties(verification) == {
            "remediation.case_id": case_id, "remediation.state": "verified",
            "remediation.outcome": "verified", "remediation.source": "manual",
            "remediation.mode": "enforce"}
        operation = request["tags"]["ai.operation.id"]  # type: ignore[index]
        assert verification["tags"]["ai.operation.id"] == operation  # type: ignore[index]

        # dependencies: the steps (InProc), and the HTTP calls under them.
        [reset] = ingestion.named("RemoteDependency", "step reset_password")
        assert properties(reset)["remediation.outcome"] == "done"
        assert reset["tags"]["ai.operation.id"] == operation  # type: ignore[index]
        calls = [d["data"]["baseData"] for d in ingestion.of_type("RemoteDependency")
                 if d["data"]["baseData"].get("type") == "HTTP"]
        urls = " ".join(str(call.get("data")) for call in calls)
        assert "/v1.0/users/" in urls and "/InvokeCommand" in urls

        # customMetrics and traces (the journal's copy).
        finals = [m for envelope in ingestion.of_type("Metric")
                  for m in envelope["data"]["baseData"]["metrics"]
                  if m["name"] == "remediation.cases.final"]
        assert finals and sum(m["value"] for m in finals) == 1
        messages = [e["data"]["baseData"] for e in ingestion.of_type("Message")
                    if e["data"]["baseData"]["properties"].get("logger_name")
                    == "remediation.journal"]
        assert f"case {case_id} reset_password done" in [m["message"] for m in messages]

        haystack = b"".join(ingestion.bodies)
        [change] = tenant.user(ADELE).password_changes
        assert change["password"].encode() not in haystack
        assert json.dumps(change["password"]).encode() not in haystack


@pytest.mark.parametrize("worker_configures", [False, True],
                         ids=["configured-by-the-app", "configured-by-the-worker"])
def test_the_functions_app_exports_from_its_first_invocation_in_the_callers_trace(
        threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
        worker_configures: bool) -> None:
    """Without PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY the app configures Azure Monitor on
    its first invocation; with it (as the Bicep sets it) the worker has, before it imported the
    app (azure-functions-python-worker ``initialize_azure_monitor``), and the app uses that
    one: everything is exported once."""
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    worker = textwrap.dedent("""
        import os
        from azure.monitor.opentelemetry import configure_azure_monitor
        os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_functions")
        configure_azure_monitor(
            connection_string=os.environ["APPLICATIONINSIGHTS_CONNECTION_STRING"],
            logger_name="")
        """) if worker_configures else ""
    script = worker + textwrap.dedent(f"""
        import asyncio, json, sys
        import function_app
        loaded = [m for m in sys.modules if m.startswith(("azure.monitor", "opentelemetry"))]
        assert {worker_configures} or loaded == [], loaded  # none of it at import
        from azure.functions.servicebus import ServiceBusMessage
        from remediation.entrypoints import functions

        message = ServiceBusMessage(
            body=json.dumps({{"user": "{ADELE}"}}).encode(), message_id="m-1",
            session_id="{ADELE}", delivery_count=1, user_properties={{}},
            application_properties={{"traceparent": "00-{trace_id}-{parent}-01"}})
        asyncio.run(functions.remediate(message))
        assert "azure.monitor.opentelemetry" in sys.modules
        from opentelemetry import _logs, metrics, trace
        for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(),
                         _logs.get_logger_provider()):
            provider.force_flush()
        """)
    with fake_ingestion() as ingestion:
        env = {**sandbox_env(threaded_sandbox_url, tenant, tmp_path / "state.db"),
               **environment(ingestion)}
        if worker_configures:  # as the Bicep sets it
            env.update({"OTEL_TRACES_SAMPLER": "microsoft.fixed_percentage",
                        "OTEL_TRACES_SAMPLER_ARG": "1.0"})
        done = subprocess.run([sys.executable, "-c", script], env={**os.environ, **env},
                              cwd=ROOT, capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 0, done.stderr

        [request] = ingestion.named("Request", "remediation request")  # once
        assert request["tags"]["ai.operation.id"] == trace_id  # type: ignore[index]
        assert request["tags"]["ai.operation.parentId"] == parent  # type: ignore[index]
        assert properties(request)["remediation.state"] == "awaiting_verification"
        assert len(ingestion.named("RemoteDependency", "step unblock")) == 1
        case_id = properties(request)["remediation.case_id"]
        journal = [e["data"]["baseData"]["message"] for e in ingestion.of_type("Message")]
        assert journal.count(f"case {case_id} unblock done") == 1
