"""The preflight inside the deployment: `remediation doctor`'s checks run by the Function App
under its own identity (the sandbox's managed identity endpoint, as in Azure), answered as
JSON over HTTP (`GET /api/preflight`, a function key) and logged once at start-up.

The deployment here is the sandbox tenant, the Table journal on Azurite and the local queue
(no Service Bus emulator can run here); the settings come from the environment, as the host
gives them."""

import asyncio
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

from remediation.entrypoints import doctor, functions
from remediation.sandbox import SandboxTenant
from remediation.service.doctor import Status
from tests.cli_helpers import clean_environment, run_cli  # noqa: F401 (a fixture)
from tests.conftest import sandbox_env
from tests.functions.test_function_app import bindings, trigger

GRANT = "bash infra/grant-permissions.sh"
JWT = re.compile(r"eyJ[\w-]+\.")
WEBHOOK_KEY = "Zq9sEcReTwEbHoOkKeY0123456789"
PREFLIGHT_LOGGER = "remediation.entrypoints.preflight"


@pytest.fixture
async def deployment(clean_environment: None,  # noqa: F811 (the fixture imported above)
                     monkeypatch: pytest.MonkeyPatch, threaded_sandbox_url: str,
                     tenant: SandboxTenant, tmp_path: Path,
                     azurite_table_connection_string: str) -> AsyncIterator[dict[str, str]]:
    """The app settings and identity the host gives the Function App, pointing at the
    sandbox; the process's application is built from them on first use."""
    env = {**sandbox_env(threaded_sandbox_url, tenant, tmp_path / "state.db"),
           "HTTP_MAX_RETRIES": "0",
           "JOURNAL_TABLE_CONNECTION_STRING": azurite_table_connection_string,
           "JOURNAL_TABLE_NAME": f"journal{uuid.uuid4().hex[:12]}",
           "ESCALATION_WEBHOOK_URL": f"https://hooks.example.com/workflows/run?sig={WEBHOOK_KEY}"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    functions.use_application(None)
    yield env
    await restart_host()


async def restart_host() -> None:
    """The process ends: its application closes; the next one builds its own."""
    if functions._application is not None:
        await functions._application.aclose()
    functions.use_application(None)


async def call_preflight() -> tuple[int, dict[str, Any], str]:
    request = func.HttpRequest(method="GET", url="/api/preflight", body=b"")
    response = await functions.preflight(request)
    text = response.get_body().decode()
    assert response.mimetype == "application/json"
    return response.status_code, json.loads(text), text


def finding(document: dict[str, Any], check: str) -> dict[str, str]:
    found: list[dict[str, str]] = [f for f in document["findings"] if f["check"] == check]
    [one] = found
    return one


def assert_no_secret(text: str, tenant: SandboxTenant) -> None:
    assert tenant.identity_header not in text
    assert tenant.token not in text
    assert WEBHOOK_KEY not in text
    assert not JWT.search(text), "a JWT in the output"
    assert "Traceback" not in text


def test_the_preflight_is_an_http_get_behind_a_function_key_and_a_timer_at_start() -> None:
    http = trigger("preflight")
    assert http["type"] == "httpTrigger"
    assert http["methods"] == ["GET"]
    assert http["authLevel"] == "FUNCTION"
    assert http["route"] == "preflight"
    timer = trigger("preflight_at_start")
    assert timer["type"] == "timerTrigger"
    assert timer["runOnStartup"] is True
    assert timer["useMonitor"] is False  # a missed daily run is not made up: start-up runs it
    assert timer["schedule"] == functions.PREFLIGHT_SCHEDULE
    assert {"preflight", "preflight_at_start"} <= set(bindings())


async def test_ready_when_everything_is_in_place(deployment: dict[str, str],
                                                 tenant: SandboxTenant) -> None:
    status, document, text = await call_preflight()

    assert status == 200, text
    assert document["ready"] is True, text
    assert document["summary"].startswith("everything needed is in place")
    assert document["tenant_id"] == tenant.tenant_id
    # Every status the table knows has a count, whatever the report holds.
    assert set(document["counts"]) == {s.value for s in Status}
    assert sum(document["counts"].values()) == len(document["findings"])
    assert document["counts"]["FAIL"] == document["counts"]["UNVERIFIED"] == 0
    for item in document["findings"]:
        assert set(item) == {"check", "status", "result", "fix"}
        assert item["status"] in {s.value for s in Status}
    # Under the app's own identity: its token's roles are seen, not guessed from reads.
    assert finding(document, "token for Microsoft Graph")["status"] == "ok"
    assert finding(document, "permission RoleManagement.Read.Directory") == {
        "check": "permission RoleManagement.Read.Directory", "status": "ok",
        "result": "in the token's roles", "fix": ""}
    assert finding(document, "role User Administrator")["status"] == "ok"
    assert finding(document, "journal")["status"] == "ok"
    assert_no_secret(text, tenant)


async def test_a_missing_permission_shows_fail_with_its_fix(deployment: dict[str, str],
                                                            tenant: SandboxTenant) -> None:
    tenant.denied_permissions.add("RoleManagement.Read.Directory")

    status, document, text = await call_preflight()

    assert status == 200, text  # the preflight ran: its verdict is in the body
    assert document["ready"] is False
    assert document["summary"].startswith("not everything needed is in place")
    fix = (f"grant RoleManagement.Read.Directory (Microsoft Graph): {GRANT} "
           f"{tenant.app_object_id}")
    permission = finding(document, "permission RoleManagement.Read.Directory")
    assert permission == {"check": "permission RoleManagement.Read.Directory",
                          "status": "FAIL", "result": "not in the token's roles", "fix": fix}
    read = finding(document, "read role assignments")
    assert read["status"] == "FAIL" and read["fix"] == fix
    assert read["result"].startswith("refused: every case will escalate because Graph")
    assert document["counts"]["FAIL"] == sum(
        1 for item in document["findings"] if item["status"] == "FAIL") >= 2
    assert_no_secret(text, tenant)


async def test_doctor_json_prints_the_same_document_as_the_function(
        deployment: dict[str, str], tenant: SandboxTenant, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    tenant.denied_permissions.add("AuditLog.Read.All")
    _, from_function, _ = await call_preflight()

    # The command line runs its own event loop: in a thread of its own, as in a shell.
    exit_status, out, err = await asyncio.to_thread(run_cli, monkeypatch, capsys, {}, "doctor",
                                                    "--json")

    assert exit_status == 1  # as the table: 0 only when everything needed is in place
    assert json.loads(out) == from_function
    assert_no_secret(out + err, tenant)


async def test_the_start_up_run_logs_each_finding_once_for_every_start_within_the_hour(
        deployment: dict[str, str], tenant: SandboxTenant,
        caplog: pytest.LogCaptureFixture) -> None:
    tenant.denied_permissions.add("RoleManagement.Read.Directory")
    with caplog.at_level(logging.INFO, logger="remediation"):
        await functions.preflight_at_start(TimerRequest(past_due=False))
    records = [r for r in caplog.records if r.name == PREFLIGHT_LOGGER]
    logged = "\n".join(r.getMessage() for r in records)
    _, document, _ = await call_preflight()

    for item in document["findings"]:
        head = f"preflight: {item['status']} {item['check']}"
        [record] = [r for r in records
                    if r.getMessage() == head or r.getMessage().startswith(f"{head}: ")]
        quiet = item["status"] in ("ok", "info")
        assert record.levelno == (logging.INFO if quiet else logging.WARNING), item
        assert item["result"] in record.getMessage()
        assert item["fix"] in record.getMessage()
    assert records[-1].levelno == logging.WARNING
    assert records[-1].getMessage().endswith(document["summary"])
    assert_no_secret(logged, tenant)

    # Another start of the app (a restart, a scale-out) within the hour: skipped, no call.
    await restart_host()
    calls = len(tenant.requests())
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="remediation"):
        await functions.preflight_at_start(TimerRequest(past_due=False))
    [skipped] = [r for r in caplog.records if r.name == PREFLIGHT_LOGGER]
    assert skipped.levelno == logging.INFO
    assert "GET /api/preflight" in skipped.getMessage()
    assert len(tenant.requests()) == calls


async def test_a_preflight_that_crashes_answers_500_in_one_line(
        deployment: dict[str, str], tenant: SandboxTenant, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    async def crash(settings: object) -> None:
        raise RuntimeError(f"client broke\nTraceback (most recent call last):\n"
                           f"  Authorization: Bearer {tenant.token}")

    monkeypatch.setattr(doctor, "diagnose", crash)
    with caplog.at_level(logging.INFO, logger="remediation"):
        status, document, text = await call_preflight()

    assert status == 500
    assert list(document) == ["error"]
    assert document["error"] == "the preflight could not run: RuntimeError: client broke"
    assert "\n" not in text
    assert_no_secret(text + "\n".join(r.getMessage() for r in caplog.records), tenant)


async def test_a_missing_setting_answers_500_naming_it(deployment: dict[str, str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_TENANT_ID")

    status, document, _ = await call_preflight()

    assert status == 500
    assert document == {"error": "the preflight could not run: configuration error: "
                                 "AZURE_TENANT_ID: not set (the tenant id, a GUID)"}


def test_the_readme_lists_every_function_and_asks_the_preflight_first() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    azure = readme.split("## Running in Azure", 1)[1].split("\n## ", 1)[0]
    for name in bindings():
        assert f"| `{name}` |" in azure, f"README, Running in Azure: no row for {name}"
    before = readme.split("## Before you switch it on", 1)[1].split("\n## ", 1)[0]
    assert before.index("/api/preflight?code=") < before.index("remediation doctor` where")
    assert "az functionapp function keys list" in before
    assert "--function-name preflight" in before
