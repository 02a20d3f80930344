"""`remediation sandbox` says how to point a worker at it: every variable, the token
included, as `export` lines a person can paste into a shell; and, for `remediation doctor`,
the app's token. Pasted as printed, both work against the sandbox over HTTP."""

import shlex
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest

from remediation.sandbox import SandboxTenant
from tests.cli_helpers import clean_environment, run_cli  # noqa: F401 (a fixture)

WORKER_NEEDS = {"AZURE_TENANT_ID", "GRAPH_ENDPOINT", "EXCHANGE_ENDPOINT", "SANDBOX_TOKEN",
                "REMEDIATION_DB"}


def banner(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           port: int, settings: dict[str, str] | None = None) -> list[str]:
    import remediation.sandbox.server as server

    async def no_serving(*args: object) -> None:
        return None

    monkeypatch.setattr(server, "serve_forever", no_serving)
    status, out, err = run_cli(monkeypatch, capsys, settings or {}, "sandbox", "--port",
                               str(port))
    assert status == 0
    return (out + err).splitlines()


def exported(lines: list[str]) -> dict[str, str]:
    """What the ``export`` lines set, run by a real shell as a person would paste them."""
    script = "\n".join(line for line in lines if line.strip().startswith("export "))
    names = sorted({word.split("=", 1)[0] for line in lines
                    if line.strip().startswith("export ")
                    for word in shlex.split(line)[1:]})
    shown = subprocess.run(["sh", "-ec", script + "\n" + "\n".join(
        f'printf "%s=%s\\0" {name} "${name}"' for name in names)],
        capture_output=True, check=True, timeout=30, env={"PATH": "/usr/bin:/bin"}).stdout
    return dict(item.split("=", 1) for item in shown.decode().split("\0") if item)


def parts(lines: list[str]) -> tuple[list[str], list[str]]:
    """The worker's lines, then the doctor's (after the line that introduces them)."""
    [start] = [n for n, line in enumerate(lines) if "remediation doctor" in line]
    return lines[:start], lines[start:]


def test_the_banner_exports_every_variable_a_worker_needs_the_token_included(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        clean_environment: None,  # noqa: F811 (the fixture imported above)
        tenant: SandboxTenant) -> None:
    lines = banner(monkeypatch, capsys, 8080)

    worker, doctor = parts(lines)
    env = exported(worker)
    assert set(env) >= WORKER_NEEDS, lines
    assert env["AZURE_TENANT_ID"] == tenant.tenant_id
    assert env["GRAPH_ENDPOINT"] == env["EXCHANGE_ENDPOINT"] == "http://127.0.0.1:8080"
    assert env["SANDBOX_TOKEN"] == tenant.token  # the worker's: it never expires
    # The sandbox's cases stay out of the default journal (.remediation/state.db).
    assert Path(env["REMEDIATION_DB"]).is_absolute()
    assert Path(env["REMEDIATION_DB"]).name != "state.db"
    # doctor's, pasted after: the app's managed identity, as in Azure (no static token).
    env = exported(lines)
    assert env["SANDBOX_TOKEN"] == ""
    assert env["IDENTITY_ENDPOINT"] == "http://127.0.0.1:8080/_sandbox/msi/token"
    assert env["IDENTITY_HEADER"] and env["AZURE_CLIENT_ID"]
    assert any("roles and wids" in line for line in doctor)
    for line in lines:
        if "export " in line:
            assert line.startswith("  export "), f"not a line to paste as it is: {line!r}"


def test_pasted_as_printed_the_banner_points_a_worker_and_doctor_at_the_sandbox(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        clean_environment: None,  # noqa: F811 (the fixture imported above)
        threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    port = urlparse(threaded_sandbox_url).port
    assert port is not None
    # The shell keeps the identity secret of the sandbox it started (here, the test's).
    lines = banner(monkeypatch, capsys, port, {"IDENTITY_HEADER": tenant.identity_header})
    worker, _ = parts(lines)
    database = {"REMEDIATION_DB": str(tmp_path / "sandbox.db")}

    status, out, _ = run_cli(monkeypatch, capsys, {**exported(worker), **database}, "doctor")
    reads = [line for line in out.splitlines()
             if not line.startswith(" ") and line.split()[1:2] == ["read"]]
    assert reads and all(line.startswith("ok ") for line in reads), out

    status, out, _ = run_cli(monkeypatch, capsys, {**exported(lines), **database}, "doctor")
    assert status == 0, out


def test_each_start_of_the_sandbox_names_a_journal_of_its_own(tenant: SandboxTenant) -> None:
    """The tenant is seeded afresh at every start: a journal kept from an earlier start
    would count that start's resets against the breaker and hold its blocks as known, and
    the quick start would end differently the second time."""
    from datetime import UTC, datetime

    from remediation.entrypoints.sandbox_banner import worker_environment

    url = "http://127.0.0.1:8080"
    first = worker_environment(tenant, url, 8080, datetime(2026, 12, 6, 10, 0, tzinfo=UTC))
    again = worker_environment(tenant, url, 8080, datetime(2026, 12, 6, 10, 5, tzinfo=UTC))
    assert first["REMEDIATION_DB"] != again["REMEDIATION_DB"]
    assert Path(first["REMEDIATION_DB"]).name == "sandbox-8080-20261206T100000.db"
