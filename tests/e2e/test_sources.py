"""A source that fails is seen (issue 13, point 3), against the sandbox tenant over HTTP.

The poll reads two sources: Defender alerts (Graph ``alerts_v2``) and the Restricted users
list (Exchange ``Get-BlockedSenderAddress``, the sweep). When one of them is refused, the
poll logs a WARNING naming it, ``run --until-idle`` exits 1 with a line on stderr naming it,
and ``status`` and ``doctor`` show it, from the journal every worker shares, until a later
poll reads it again.
"""

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from remediation.sandbox import Fault, SandboxTenant
from tests.cli_helpers import clean_environment, run_cli
from tests.conftest import sandbox_env

__all__ = ["clean_environment"]  # a fixture, used by name

SWEEP = "Restricted users sweep"
ALERTS = "Defender alerts"
BLOCKED_CMDLET = "Get-BlockedSenderAddress"
PARAMETER_BINDING = "System.Management.Automation.ParameterBindingException"
UNKNOWN_PARAMETER = "A parameter cannot be found that matches parameter name 'ResultSize'."
STAMP = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC"

def doctor_row(out: str, check: str) -> str:
    """Doctor's row for ``check`` on one line (a row wraps over the indented lines under
    it)."""
    lines = out.splitlines()
    [start] = [n for n, line in enumerate(lines) if re.search(rf"^\S+\s+{re.escape(check)}:",
                                                              line)]
    end = start + 1
    while end < len(lines) and lines[end].startswith(" "):
        end += 1
    return " ".join(" ".join(lines[start:end]).split())


# Each refusal as the service gives it (Exchange's error shape: remediation/sandbox/errors.py),
# with a piece of its reason that the operator must be shown.
REFUSALS: dict[str, tuple[str, Callable[[], Fault], str]] = {
    "sweep: parameter binding (400)": (SWEEP, lambda: Fault(
        status=400, code="BadRequest", cmdlet=BLOCKED_CMDLET, times=None,
        exception_type=PARAMETER_BINDING, message=UNKNOWN_PARAMETER), UNKNOWN_PARAMETER),
    "sweep: missing rights (403)": (SWEEP, lambda: Fault(
        status=403, code="Forbidden", cmdlet=BLOCKED_CMDLET, times=None, raw_body=""),
        "Exchange answered 403 to Get-BlockedSenderAddress"),
    "alerts: missing permission (403)": (ALERTS, lambda: Fault(
        status=403, method="GET", path=r"/security/alerts_v2$", times=None,
        code="Forbidden", message="Missing application permission SecurityAlert.Read.All"),
        "403"),
    "alerts: Graph outage (500)": (ALERTS, lambda: Fault(
        status=500, method="GET", path=r"/security/alerts_v2$", times=None,
        code="InternalServerError", message="Internal Server Error"), "500"),
}


@pytest.fixture
def tenant() -> SandboxTenant:
    """A tenant with nobody blocked and no alert: each poll reads both sources, opens no
    case, and ``run --until-idle`` is down to what the sources did."""
    return SandboxTenant(domains=["contoso.com"])


@pytest.fixture
def env(clean_environment: None, threaded_sandbox_url: str, tenant: SandboxTenant,
        tmp_path: Path) -> dict[str, str]:
    return {**sandbox_env(threaded_sandbox_url, tenant, tmp_path / "state.db"),
            "SWEEP_RESTRICTED_USERS": "true", "HTTP_MAX_RETRIES": "0"}


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], *args: str) -> tuple[int, str, str]:
    return run_cli(monkeypatch, capsys, env, *args)


def sources_of(envelope: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {source["source"]: source for source in envelope["sources"]}


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_a_refused_source_fails_the_run_and_shows_until_it_is_read_again(
        refusal: str, env: dict[str, str], tenant: SandboxTenant,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    failed, fault, because = REFUSALS[refusal]
    other = ALERTS if failed == SWEEP else SWEEP
    tenant.add_fault(fault())

    code, _, err = cli(monkeypatch, capsys, env, "run", "--until-idle")

    assert code == 1, err
    # The poll's WARNING, and the run's own line naming the source and the reason.
    assert re.search(rf"WARNING .*{failed}.*failed.*{re.escape(because)}", err), err
    [named] = [line for line in err.splitlines() if line.startswith("remediation: ")]
    assert failed in named and because in named and other not in named, named

    code, table, _ = cli(monkeypatch, capsys, env, "status")
    assert code == 0
    first = table.splitlines()[:2]
    [bad] = [line for line in first if line.startswith(failed)]
    [good] = [line for line in first if line.startswith(other)]
    assert re.search(rf"FAILED at {STAMP}: .*{re.escape(because)}", bad), bad
    assert "never succeeded" in bad
    assert re.search(rf"last succeeded {STAMP}$", good), good
    assert table.splitlines()[-1] == "no cases"

    code, out, _ = cli(monkeypatch, capsys, env, "status", "--json", "--with-total")
    sources = sources_of(json.loads(out))
    key = "restricted_users" if failed == SWEEP else "alerts"
    assert sources[key]["ok"] is False and sources[key]["last_success"] is None
    assert because in sources[key]["last_failure_reason"]
    assert sources[key]["last_failure"] is not None
    assert [s["ok"] for k, s in sources.items() if k != key] == [True]
    assert json.loads(cli(monkeypatch, capsys, env, "status", "--json")[1]) == []  # a list

    out = cli(monkeypatch, capsys, env, "doctor")[1]
    line = doctor_row(out, f"last poll: {failed}")
    assert line.startswith("FAIL "), line
    # Cut (status has it whole), and wrapped to 80 columns: compared word for word.
    assert " ".join(sources[key]["last_failure_reason"][:40].split()[:-1]) in line, line

    tenant.clear_faults()
    code, _, err = cli(monkeypatch, capsys, env, "run", "--until-idle")

    assert code == 0, err
    assert "WARNING" not in err
    code, table, _ = cli(monkeypatch, capsys, env, "status")
    [line] = [line for line in table.splitlines()[:2] if line.startswith(failed)]
    assert re.search(rf"last succeeded {STAMP}$", line), line
    assert "FAILED" not in table
    sources = sources_of(json.loads(cli(monkeypatch, capsys, env, "status", "--json",
                                        "--with-total")[1]))
    assert sources[key]["ok"] is True and sources[key]["last_success"] is not None
    # The earlier failure stays on record, older than the success.
    assert sources[key]["last_failure"] < sources[key]["last_success"]
    out = cli(monkeypatch, capsys, env, "doctor")[1]
    [line] = [line for line in out.splitlines() if re.match(rf"ok\s+last poll: {failed}",
                                                            line)]
    assert re.search(rf"succeeded {STAMP}", line), line


def test_a_source_turned_off_is_neither_read_nor_flagged(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    off = {**env, "SWEEP_RESTRICTED_USERS": "false"}
    assert cli(monkeypatch, capsys, off, "run", "--until-idle")[0] == 0

    table = cli(monkeypatch, capsys, off, "status")[1]
    assert table.splitlines()[0].startswith(ALERTS)
    assert SWEEP not in table


def test_a_secret_quoted_in_a_refusal_is_never_shown_or_journaled(
        env: dict[str, str], tenant: SandboxTenant, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJzZWNyZXQtYXVkaWVuY2UifQ.c2lnbmF0dXJlLXNlY3JldA"
    tenant.add_fault(Fault(status=400, code="BadRequest", cmdlet=BLOCKED_CMDLET, times=None,
                           exception_type=PARAMETER_BINDING,
                           message=f"Cannot bind parameter 'Authorization: Bearer {token}'."))

    code, _, err = cli(monkeypatch, capsys, env, "run", "--until-idle")
    table = cli(monkeypatch, capsys, env, "status")[1]
    envelope = cli(monkeypatch, capsys, env, "status", "--json", "--with-total")[1]

    assert code == 1
    assert "Bearer <redacted>" in err and "Bearer <redacted>" in table
    stored = (tmp_path / "state.db").read_bytes()
    for where in (err, table, envelope, stored.decode("utf-8", errors="replace")):
        assert token not in where and token[:40] not in where
