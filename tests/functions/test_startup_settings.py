"""The app settings are checked when function_app is imported (the host indexing the app):
a bad one is one log line naming it, and the import fails, so no trigger listens and no
message is burnt. The first invocation of any trigger checks them again: a bad or missing one
fails that invocation with one clear line in the log, naming the setting (not a traceback
alone)."""

import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import azure.functions as func
import pytest
from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest

from remediation.config import ConfigError
from remediation.entrypoints import functions

TENANT = "8f6d1c2e-5b4a-4e3f-9a1b-7c2d3e4f5a6b"


def sb_message() -> func.ServiceBusMessage:
    return ServiceBusMessage(body=b'{"user": "rob@contoso.com"}', message_id="m-1",
                             session_id="rob@contoso.com", delivery_count=1,
                             application_properties={}, user_properties={})


TRIGGERS: dict[str, Callable[[], Awaitable[object]]] = {
    "remediate": lambda: functions.remediate(sb_message()),
    "verify": lambda: functions.verify(sb_message()),
    "poll_alerts": lambda: functions.poll_alerts(TimerRequest(past_due=False)),
    "receive_alert": lambda: functions.receive_alert(func.HttpRequest(
        "POST", "/api/alerts", body=b'"alert-1"', headers={"Content-Type": "application/json"})),
}


@pytest.fixture(autouse=True)
def no_application(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("PROTECTED_GROUP_IDS", "AZURE_TENANT_ID", "SANDBOX_TOKEN", "HTTP_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    functions.use_application(None)
    yield
    functions.use_application(None)


def error_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.parametrize("trigger", sorted(TRIGGERS))
async def test_a_bad_setting_fails_the_first_invocation_with_one_line(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, trigger: str) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("PROTECTED_GROUP_IDS", "exec-team")

    with pytest.raises(ConfigError):
        await TRIGGERS[trigger]()

    [record] = error_lines(caplog)
    assert record.getMessage() == ("configuration error: PROTECTED_GROUP_IDS: 'exec-team' is "
                                   "not a group object id (a GUID)")
    assert record.exc_info is None  # the line itself says it all


async def test_the_tenant_id_is_required(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigError):
        await TRIGGERS["remediate"]()

    [record] = error_lines(caplog)
    assert record.getMessage() == ("configuration error: AZURE_TENANT_ID: not set (the tenant "
                                   "id, a GUID)")


async def test_each_invocation_reads_the_settings_until_they_are_good(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("HTTP_TIMEOUT", "0s")
    for _ in range(2):
        with pytest.raises(ConfigError):
            await TRIGGERS["verify"]()

    assert [r.getMessage() for r in error_lines(caplog)] == [
        "configuration error: HTTP_TIMEOUT: '0s' must be more than 0s and at most 5m"] * 2


# -- at import: the host indexes nothing while a setting is bad --------------------------------

ROOT = Path(__file__).resolve().parents[2]


def import_app(settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``import function_app`` in a fresh interpreter with only ``settings`` set."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONIOENCODING": "utf-8", **settings}
    return subprocess.run([sys.executable, "-c", "import function_app"], cwd=ROOT, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=120,
                          check=False)


def test_the_app_imports_with_no_settings_at_all() -> None:
    result = import_app({})  # tools, tests and bench/cold_start.py import it so

    assert (result.returncode, result.stderr) == (0, "")


def test_the_app_imports_with_azure_settings() -> None:
    namespace = "sb.servicebus.windows.net"
    result = import_app({"AZURE_TENANT_ID": TENANT,
                         "ServiceBusConnection__fullyQualifiedNamespace": namespace,
                         "AzureWebJobsStorage__accountName": "st", "MAX_DELIVERY_COUNT": "10",
                         "QUEUE_MAX_DELIVERY_COUNT": "10"})

    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize(("settings", "problem"), [
    ({"PROTECTED_GROUP_IDS": "exec-team"},
     "PROTECTED_GROUP_IDS: 'exec-team' is not a group object id (a GUID)"),
    ({"MAX_DELIVERY_COUNT": "\u00b2"},
     "MAX_DELIVERY_COUNT: must be a whole number from 1 to 2000, got '\u00b2'"),
    ({"MAX_DELIVERY_COUNT": "20", "QUEUE_MAX_DELIVERY_COUNT": "10"},
     "MAX_DELIVERY_COUNT: 20 is more than the queues' maxDeliveryCount "
     "(QUEUE_MAX_DELIVERY_COUNT, 10): Service Bus would dead-letter a message before its case "
     "is escalated"),
    ({"RETRY_BACKOFF": "16m"}, "RETRY_BACKOFF: '16m' must be more than 0s and at most 15m"),
    # A breaker always open is no pause: the one line says how to stop the robot.
    ({"MAX_REMEDIATIONS_PER_HOUR": "0"},
     "MAX_REMEDIATIONS_PER_HOUR: 0 would refuse every password reset and escalate every case "
     "as a mass compromise; it must be at least 1. To stop the robot, run `remediation pause "
     "--by NAME --reason TEXT` (and `remediation resume` to go on)"),
    # Listening on Service Bus without a tenant would fail every message.
    ({"ServiceBusConnection__fullyQualifiedNamespace": "sb.servicebus.windows.net"},
     "AZURE_TENANT_ID: not set (the tenant id, a GUID)"),
])
def test_a_bad_setting_fails_the_import_with_one_line_naming_it(
        settings: dict[str, str], problem: str) -> None:
    result = import_app(settings)

    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("configuration error:")] == [
        f"configuration error: {problem}"]
    assert lines[-1] == f"remediation.config.ConfigError: {problem}"  # indexing fails
