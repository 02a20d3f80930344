"""host.json and the settings template agree with the code and with each other."""

import json
import re
from datetime import timedelta
from pathlib import Path

from remediation.config import Settings

ROOT = Path(__file__).resolve().parents[2]


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
