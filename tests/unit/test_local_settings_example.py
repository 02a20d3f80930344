"""``local.settings.json.example`` holds every setting the product reads, each with a value
that is safe to start from, and nothing it does not read: a test, so it cannot drift."""

import json
import re
from pathlib import Path
from typing import Any

from remediation.config import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "local.settings.json.example"
FUNCTIONS = ROOT / "remediation" / "entrypoints" / "functions.py"
# Read by the Functions host and azure-identity, not by our code.
HOST_SETTINGS = {"FUNCTIONS_WORKER_RUNTIME", "AZURE_CLIENT_ID"}
PLACEHOLDER = re.compile(r"<[^<>]+>")


class RecordingEnvironment(dict[str, str]):
    """An empty environment that remembers every name asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return super().__contains__(key)


def read_by_the_configuration() -> set[str]:
    env = RecordingEnvironment()
    Settings.from_env(env)
    return env.asked


def read_by_the_bindings() -> set[str]:
    """``%NAME%`` in a binding, and the settings of each identity-based connection."""
    source = FUNCTIONS.read_text()
    names = set(re.findall(r"%(\w+)%", source))
    for connection in re.findall(r'connection="(\w+)"', source):
        names |= {f"{connection}__fullyQualifiedNamespace", f"{connection}__credential",
                  f"{connection}__clientId"}
    functions = re.findall(r'function_name\("(\w+)"\)', source)
    return names | {f"AzureWebJobs.{name}.Disabled" for name in functions
                    if f"AzureWebJobs.{name}.Disabled" in example()}


def example() -> dict[str, str]:
    values: dict[str, str] = json.loads(EXAMPLE.read_text())["Values"]
    return values


def test_every_setting_the_product_reads_is_in_the_example() -> None:
    missing = (read_by_the_configuration() | read_by_the_bindings()) - set(example())
    assert not missing, f"add to local.settings.json.example: {sorted(missing)}"


def test_the_example_names_nothing_the_product_does_not_read() -> None:
    unknown = set(example()) - read_by_the_configuration() - read_by_the_bindings() \
        - HOST_SETTINGS
    assert not unknown, f"local.settings.json.example names what nothing reads: {sorted(unknown)}"


def test_every_value_is_a_placeholder_to_fill_in_or_passes_the_configuration_check(
        tmp_path: Path) -> None:
    """Copied as it is, the example never passes a made-up id or address for a real one: what
    must be filled in is a ``<placeholder>``, which the check refuses at start."""
    filled = {name: value for name, value in example().items()
              if not PLACEHOLDER.search(value)}
    settings = Settings.from_env({**filled, "REMEDIATION_DB": str(tmp_path / "state.db")})
    assert settings.mode == "dry-run", "start in dry-run, as the deployment does"
    assert settings.sandbox_token is None
    assert all(not value.strip() for name, value in example().items()
               if name in ("SANDBOX_TOKEN", "JOURNAL_TABLE_CONNECTION_STRING",
                           "ESCALATION_WEBHOOK_URL")), "no secret in the example"


def test_the_readme_describes_every_setting_the_configuration_reads() -> None:
    readme = (ROOT / "README.md").read_text()
    undescribed = {name for name in read_by_the_configuration() if f"`{name}`" not in readme}
    assert not undescribed, f"README, Configuration: describe {sorted(undescribed)}"
