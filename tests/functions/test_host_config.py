"""host.json and the settings template agree with the code and with each other."""

import json
import re
from datetime import timedelta
from pathlib import Path

from remediation.adapters.retrying import DEFAULT_MAX_WAIT
from remediation.bootstrap import bootstrap
from remediation.config import Settings
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import SandboxTenant
from remediation.service.handler import DELIVERY_TIME_BUDGET, SETTLEMENT_TIME_BUDGET
from tests.conftest import sandbox_settings

ROOT = Path(__file__).resolve().parents[2]
LYNNE = "lynne.robbins@contoso.com"  # the demo's mailbox with planted rules and forwarding


def duration(text: str) -> timedelta:
    hours, minutes, seconds = (int(part) for part in text.split(":"))
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def test_host_json_pins_the_bundle_and_outlives_the_function_timeout_with_the_lock() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensionBundle"]["version"] == "[4.*, 5.0.0)"
    service_bus = host["extensions"]["serviceBus"]
    assert duration(service_bus["maxAutoLockRenewalDuration"]) > duration(host["functionTimeout"])
    assert service_bus["maxConcurrentSessions"] >= 1
    assert service_bus["prefetchCount"] == 0


def test_the_settings_template_names_every_setting_the_bindings_use() -> None:
    values = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
    source = (ROOT / "remediation" / "entrypoints" / "functions.py").read_text()
    for setting in re.findall(r'"%([A-Z_]+)%"', source):
        assert setting in values, setting
    for connection in re.findall(r'connection="(\w+)"', source):
        assert f"{connection}__fullyQualifiedNamespace" in values, connection
    assert values["AzureWebJobs.receive_defender_stream.Disabled"] == "true"
    assert "local.settings.json" in (ROOT / ".gitignore").read_text()


def test_the_settings_template_is_a_valid_configuration() -> None:
    values = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
    settings = Settings.from_env({k: v for k, v in values.items() if "<" not in v})
    assert settings.max_delivery_count == 10
    assert settings.remediation_queue == values["REMEDIATION_QUEUE"]


async def test_no_delivery_outlives_the_function_timeout_or_the_lock(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """The time-budget arithmetic, from host.json and the settings' defaults."""
    host = json.loads((ROOT / "host.json").read_text())
    function_timeout = duration(host["functionTimeout"])
    lock_renewal = duration(host["extensions"]["serviceBus"]["maxAutoLockRenewalDuration"])
    defaults = Settings()
    # One Graph or Exchange call: every attempt may take the whole HTTP_TIMEOUT, and the
    # waits between attempts are bounded by the retry budget (retrying.DEFAULT_MAX_WAIT).
    per_call = defaults.http_timeout * (defaults.http_max_retries + 1) + timedelta(
        seconds=DEFAULT_MAX_WAIT)
    assert per_call == timedelta(seconds=150)
    # The calls of one remediation (securing.py): count them on a mailbox with planted
    # rules and forwarding, the longest ordinary case.
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db"))
    try:
        await app.workflow.remediate(RemediationRequest(user=LYNNE, request_id="budget"))
    finally:
        await app.aclose()
    calls = len(tenant.requests())
    assert calls >= 15
    # Bounded calls alone do not bound a delivery: hence the deadline the handler enforces.
    assert per_call * calls > function_timeout
    assert per_call < DELIVERY_TIME_BUDGET  # a call that succeeds at all fits in a delivery
    bound = DELIVERY_TIME_BUDGET + SETTLEMENT_TIME_BUDGET  # work, then retry or give up
    assert bound < function_timeout
    assert bound < lock_renewal
    # The SQLite twin renews its lock all the while; the broker's own lock is renewed too.
    assert defaults.lock_duration <= lock_renewal
