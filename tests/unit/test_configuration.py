"""Every command checks the configuration first: a bad setting is one line naming it, exit
status 2, no traceback (README, "Configuration", "Checked first"). Each bad setting below is
read back from the command line's own output."""

from pathlib import Path

import pytest

from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.config import ConfigError, Settings
from tests import cli_helpers
from tests.cli_helpers import clean_environment  # noqa: F401 (a fixture)

TENANT = "8f6d1c2e-5b4a-4e3f-9a1b-7c2d3e4f5a6b"
GROUP = "3c9f2a61-8d4b-4c1e-9f0a-6b7d2e5c8a14"
WEBHOOK_KEY = "sig=Zm9vYmFyYmF6cXV4"  # the secret part of a webhook URL
# (settings, the one line the command prints)
BAD_SETTINGS = [
    ({"AZURE_TENANT_ID": "contoso.onmicrosoft.com"},
     "AZURE_TENANT_ID: 'contoso.onmicrosoft.com' is not a tenant id (a GUID)"),
    ({"AZURE_TENANT_ID": f"{{{TENANT}}}"},
     f"AZURE_TENANT_ID: '{{{TENANT}}}' is not a tenant id (a GUID)"),
    ({"PROTECTED_GROUP_IDS": "exec-team"},
     "PROTECTED_GROUP_IDS: 'exec-team' is not a group object id (a GUID)"),
    ({"PROTECTED_GROUP_IDS": f"{GROUP};{TENANT}"},
     f"PROTECTED_GROUP_IDS: '{GROUP};{TENANT}' is not a group object id (a GUID)"),
    ({"PROTECTED_GROUP_IDS": f"{GROUP},Executives"},
     "PROTECTED_GROUP_IDS: 'executives' is not a group object id (a GUID)"),
    ({"PROTECTED_GROUP_IDS": " , ,"},
     "PROTECTED_GROUP_IDS: ' , ,' names no group (leave it empty to protect no group)"),
    ({"CASE_LINK_TEMPLATE": "https://soc.example/cases/{case}"},
     "CASE_LINK_TEMPLATE: unknown field {case}: only {case_id} and {user}"),
    ({"CASE_LINK_TEMPLATE": "https://soc.example/{user.__class__}"},
     "CASE_LINK_TEMPLATE: unknown field {user.__class__}: only {case_id} and {user}"),
    ({"CASE_LINK_TEMPLATE": "https://soc.example/{0}"},
     "CASE_LINK_TEMPLATE: unknown field {0}: only {case_id} and {user}"),
    ({"CASE_LINK_TEMPLATE": "https://soc.example/{}"},
     "CASE_LINK_TEMPLATE: unknown field {}: only {case_id} and {user}"),
    ({"CASE_LINK_TEMPLATE": "https://soc.example/{user!r}"},
     "CASE_LINK_TEMPLATE: {user!r}: write the field plainly, as {user}"),
    ({"CASE_LINK_TEMPLATE": "https://soc.example/{case_id:>{user}}"},
     "CASE_LINK_TEMPLATE: {case_id:>{user}}: write the field plainly, as {case_id}"),
    ({"CASE_LINK_TEMPLATE": "https://soc.example/{user"},
     "CASE_LINK_TEMPLATE: not a format string (expected '}' before end of string)"),
    ({"CASE_LINK_TEMPLATE": "https://soc.example/}{user}"},
     "CASE_LINK_TEMPLATE: not a format string (Single '}' encountered in format string)"),
    ({"RATE_LIMIT_BLOCKS": "ignore"},
     "RATE_LIMIT_BLOCKS: 'ignore' must be one of escalate, approve, remediate"),
    ({"VERIFY_DELAYS": "0s,1h"}, "VERIFY_DELAYS: '0s' must be more than 0s and at most 7d"),
    ({"VERIFY_DELAYS": "1h,30d"}, "VERIFY_DELAYS: '30d' must be more than 0s and at most 7d"),
    # Beyond what a timedelta holds: a configuration error, never an OverflowError.
    ({"VERIFY_DELAYS": "99999999999d"},
     "VERIFY_DELAYS: '99999999999d' must be more than 0s and at most 7d"),
    ({"VERIFY_DELAYS": "1h," + "9" * 400 + "s"},
     f"VERIFY_DELAYS: '{'9' * 400}s' must be more than 0s and at most 7d"),
    ({"ALERT_LOOKBACK": "99999999999d"},
     "ALERT_LOOKBACK: '99999999999d' must be more than 0s and at most 7d"),
    ({"RETRY_BACKOFF": "9999999999999999h"},
     "RETRY_BACKOFF: '9999999999999999h' must be more than 0s and at most 15m"),
    ({"VERIFY_DELAYS": "4h,1h"}, "VERIFY_DELAYS: delays must increase: '4h,1h'"),
    ({"VERIFY_DELAYS": " , "},
     "VERIFY_DELAYS: at least one delay is needed, e.g. 1h,4h,24h"),
    ({"VERIFY_DELAYS": "soon"},
     "VERIFY_DELAYS: 'soon' is not a duration (a number with s, m, h or d, e.g. 1h)"),
    ({"ALERT_LOOKBACK": "0m"}, "ALERT_LOOKBACK: '0m' must be more than 0s and at most 7d"),
    ({"ALERT_LOOKBACK": "-1h"},
     "ALERT_LOOKBACK: '-1h' is not a duration (a number with s, m, h or d, e.g. 1h)"),
    ({"ALERT_LOOKBACK": "8d"}, "ALERT_LOOKBACK: '8d' must be more than 0s and at most 7d"),
    ({"ALERT_POLL_INTERVAL": "0s"},
     "ALERT_POLL_INTERVAL: '0s' must be more than 0s and at most 1d"),
    ({"ALERT_LOOKBACK": "2m", "ALERT_POLL_INTERVAL": "5m"},
     "ALERT_LOOKBACK: 2m must be longer than ALERT_POLL_INTERVAL (5m), or polls miss alerts"),
    ({"LOCK_DURATION": "0s"}, "LOCK_DURATION: '0s' must be more than 0s and at most 5m"),
    ({"LOCK_DURATION": "1h"}, "LOCK_DURATION: '1h' must be more than 0s and at most 5m"),
    ({"HTTP_TIMEOUT": "0s"}, "HTTP_TIMEOUT: '0s' must be more than 0s and at most 5m"),
    ({"HTTP_TIMEOUT": "1h"}, "HTTP_TIMEOUT: '1h' must be more than 0s and at most 5m"),
    ({"HTTP_TIMEOUT": "fast"},
     "HTTP_TIMEOUT: 'fast' is not a duration (a number with s, m, h or d, e.g. 1h)"),
    ({"ESCALATION_WEBHOOK_URL": f"http://localhost.evil.com/hook?{WEBHOOK_KEY}"},
     "ESCALATION_WEBHOOK_URL: must be an https URL (plain http only to a loopback address); "
     "got http to host 'localhost.evil.com'"),
    ({"ESCALATION_WEBHOOK_URL": f"http://127.0.0.1@evil.com/hook?{WEBHOOK_KEY}"},
     "ESCALATION_WEBHOOK_URL: must be an https URL (plain http only to a loopback address); "
     "got http to host 'evil.com'"),
    ({"ESCALATION_WEBHOOK_URL": f"http://hooks.example.com/x?{WEBHOOK_KEY}"},
     "ESCALATION_WEBHOOK_URL: must be an https URL (plain http only to a loopback address); "
     "got http to host 'hooks.example.com'"),
    ({"ESCALATION_WEBHOOK_URL": f"ftp://hooks.example.com/x?{WEBHOOK_KEY}"},
     "ESCALATION_WEBHOOK_URL: must be an https URL (plain http only to a loopback address); "
     "got ftp to host 'hooks.example.com'"),
    ({"ESCALATION_WEBHOOK_URL": f"https:///x?{WEBHOOK_KEY}"},
     "ESCALATION_WEBHOOK_URL: must be an https URL (plain http only to a loopback address); "
     "got https to host ''"),
    ({"ESCALATION_WEBHOOK_URL": f"https://hooks.example.com:port/x?{WEBHOOK_KEY}"},
     "ESCALATION_WEBHOOK_URL: not a URL (Port could not be cast to integer value as 'port')"),
    ({"REMEDIATION_DB": ":memory:"},
     "REMEDIATION_DB: ':memory:' is not a file: the queue and journal must outlive the process"),
]

COMMANDS = [["run"], ["run", "--until-idle"], ["enqueue", "--user", "rob@contoso.com"],
            ["approve", "20250101-abcdef12"], ["status"], ["status", "--json"], ["doctor"]]


@pytest.fixture(autouse=True)
def environment(clean_environment: None,  # noqa: F811 (the fixture imported above)
                monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REMEDIATION_DB", str(tmp_path / "state.db"))


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            settings: dict[str, str], *args: str) -> tuple[int, str]:
    status, out, err = cli_helpers.run_cli(monkeypatch, capsys, settings, *args)
    assert out == ""
    return status, err


@pytest.mark.parametrize(("settings", "line"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_naming_it_and_exit_status_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        settings: dict[str, str], line: str) -> None:
    status, err = run_cli(monkeypatch, capsys, settings, "status")

    assert status == 2
    assert err == f"remediation: configuration error: {line}\n"
    assert WEBHOOK_KEY not in err


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_checks_the_configuration_first(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        command: list[str]) -> None:
    status, err = run_cli(monkeypatch, capsys, {"PROTECTED_GROUP_IDS": "exec-team"}, *command)

    assert status == 2
    assert err == ("remediation: configuration error: PROTECTED_GROUP_IDS: 'exec-team' is not "
                   "a group object id (a GUID)\n")
    assert not (tmp_path / "state.db").exists(), "nothing may happen before the check"


def test_a_directory_is_not_a_database_file(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    status, err = run_cli(monkeypatch, capsys, {"REMEDIATION_DB": str(tmp_path)}, "status")

    assert status == 2
    assert err == (f"remediation: configuration error: REMEDIATION_DB: '{tmp_path}' is a "
                   "directory, not a database file\n")


@pytest.mark.parametrize("command", [["run", "--until-idle"], ["doctor"]], ids=" ".join)
def test_commands_that_talk_to_the_tenant_need_its_id(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        command: list[str]) -> None:
    status, err = run_cli(monkeypatch, capsys, {}, *command)

    assert status == 2
    assert err == ("remediation: configuration error: AZURE_TENANT_ID: not set (the tenant "
                   "id, a GUID)\n")


def test_the_sandbox_token_never_appears_in_an_error(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run_cli(monkeypatch, capsys, {
        "SANDBOX_TOKEN": "a-very-secret-token", "GRAPH_ENDPOINT": "https://graph.microsoft.com"},
        "status")

    assert status == 2
    assert err.startswith("remediation: configuration error: SANDBOX_TOKEN")
    assert "a-very-secret-token" not in err


def test_the_demo_uses_its_own_settings(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import remediation.entrypoints.demo as demo

    monkeypatch.setattr(demo, "main", lambda out: 0)

    status, err = run_cli(monkeypatch, capsys, {"PROTECTED_GROUP_IDS": "exec-team"}, "demo")

    assert (status, err) == (0, "")


def test_good_settings_pass_as_written() -> None:
    settings = Settings.from_env({
        "AZURE_TENANT_ID": TENANT.upper(),
        "PROTECTED_GROUP_IDS": f" {GROUP.upper()} , {TENANT},",
        "CASE_LINK_TEMPLATE": "https://soc.example/cases/{case_id}?user={user}&x={{literal}}",
        "VERIFY_DELAYS": "30s,1h,7d", "ALERT_LOOKBACK": "7d", "ALERT_POLL_INTERVAL": "1d",
        "LOCK_DURATION": "5m", "HTTP_TIMEOUT": "5m", "REMEDIATION_DB": "state/queue.db",
    })

    assert settings.tenant_id == TENANT
    assert settings.protected_group_ids == frozenset({GROUP, TENANT})


@pytest.mark.parametrize("value", ["escalate", "approve", "remediate"])
def test_each_rate_limit_setting_reaches_the_workflow(value: str) -> None:
    from remediation.bootstrap import workflow_settings

    settings = Settings.from_env({"RATE_LIMIT_BLOCKS": value})
    assert workflow_settings(settings).rate_limit_blocks == value
    assert Settings.from_env({}).rate_limit_blocks == "escalate"


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/workflows/x?sig=1", "http://127.0.0.1:8080/hook",
    "http://localhost/hook", "http://[::1]:9000/hook", "http://127.8.9.10/hook",
    "HTTPS://Hooks.Example.com/x"])
def test_webhook_urls_that_pass(url: str) -> None:
    assert Settings.from_env({"ESCALATION_WEBHOOK_URL": url}).escalation_webhook_url == url


def test_an_empty_protected_group_setting_protects_no_group() -> None:
    assert Settings.from_env({"PROTECTED_GROUP_IDS": ""}).protected_group_ids == frozenset()
    assert Settings.from_env({"PROTECTED_GROUP_IDS": "  "}).protected_group_ids == frozenset()



# -- whole numbers: ASCII digits only ---------------------------------------------------------


@pytest.mark.parametrize("name", ["MAX_DELIVERY_COUNT", "WORKER_CONCURRENCY", "HTTP_MAX_RETRIES",
                                  "MAX_REMEDIATIONS_PER_HOUR", "QUEUE_MAX_DELIVERY_COUNT"])
@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "\u2460", "\uff13"])
def test_a_number_in_other_digits_is_refused_naming_the_setting(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str,
        value: str) -> None:
    # "²".isdigit() is True and int("²") raises; int("٣") is 3: neither may pass as a number.
    status, err = run_cli(monkeypatch, capsys, {name: value}, "status")

    assert status == 2
    assert err.startswith(f"remediation: configuration error: {name}: must be a whole number")
    assert err.count("\n") == 1


def test_a_duration_in_other_digits_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^RETRY_BACKOFF: '\u0663s' is not a duration"):
        Settings.from_env({"RETRY_BACKOFF": "\u0663s"})


# -- MAX_DELIVERY_COUNT and the queues' own maxDeliveryCount -----------------------------------


def test_max_delivery_count_may_not_exceed_the_queues() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"MAX_DELIVERY_COUNT": "20", "QUEUE_MAX_DELIVERY_COUNT": "10"})

    assert str(refused.value) == (
        "MAX_DELIVERY_COUNT: 20 is more than the queues' maxDeliveryCount "
        "(QUEUE_MAX_DELIVERY_COUNT, 10): Service Bus would dead-letter a message before its "
        "case is escalated")
    fewer = Settings.from_env({"MAX_DELIVERY_COUNT": "5", "QUEUE_MAX_DELIVERY_COUNT": "10"})
    assert (fewer.max_delivery_count, fewer.broker_max_delivery_count) == (5, 10)
    same = Settings.from_env({"MAX_DELIVERY_COUNT": "7"})
    assert (same.max_delivery_count, same.broker_max_delivery_count) == (7, 7)


# -- REMEDIATION_DB: a place this user can create and write ------------------------------------


def unusable_databases(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """(REMEDIATION_DB, the start of the one line) by case."""
    a_file = tmp_path / "file"
    a_file.write_text("x")
    return {
        "under a file": (str(a_file / "state.db"),
                         f"remediation: configuration error: REMEDIATION_DB: "
                         f"'{a_file / 'state.db'}' cannot be created: '{a_file}' is not a "
                         "directory"),
        "under a file, deeper": (str(a_file / "x" / "state.db"),
                                 "remediation: configuration error: REMEDIATION_DB: "),
        "where nothing can be created": ("/proc/nope/state.db", "remediation: "),
    }


@pytest.mark.parametrize("case", ["under a file", "under a file, deeper",
                                  "where nothing can be created"])
@pytest.mark.parametrize("command", [["status"], ["enqueue", "--user", "rob@contoso.com"]],
                         ids=" ".join)
def test_an_unusable_database_path_is_one_line_and_exit_status_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        case: str, command: list[str]) -> None:
    db, start = unusable_databases(tmp_path)[case]

    status, out, err = cli_helpers.run_cli(
        monkeypatch, capsys, {"REMEDIATION_DB": db, "AZURE_TENANT_ID": TENANT}, *command)

    assert (status, out) == (2, "")
    assert err.startswith(start), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_the_database_directory_is_checked_only_when_the_file_is_used(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    azure = {"ServiceBusConnection__fullyQualifiedNamespace": "sb.servicebus.windows.net",
             "AzureWebJobsStorage__accountName": "st", "REMEDIATION_DB": str(a_file / "s.db")}

    assert not Settings.from_env(azure).uses_local_database  # Service Bus and Table Storage
    with pytest.raises(ConfigError, match=r"^REMEDIATION_DB: .* is not a directory"):
        Settings.from_env({**azure, "AzureWebJobsStorage__accountName": ""})
    # Missing directories are fine: the first command creates them.
    assert Settings.from_env({"REMEDIATION_DB": str(tmp_path / "a" / "b" / "s.db")})


def test_status_on_a_mistyped_path_says_no_such_journal_and_creates_nothing(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    db = tmp_path / "typo" / "state.db"

    status, err = run_cli(monkeypatch, capsys, {"REMEDIATION_DB": str(db)}, "status")

    assert status == 2
    assert err == (f"remediation: no such journal: {db} (REMEDIATION_DB): nothing has been "
                   "queued or run with it here; check the path\n")
    assert not db.parent.exists()


def test_status_opens_an_existing_journal_read_only(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    status, _, _ = cli_helpers.run_cli(monkeypatch, capsys, {"REMEDIATION_DB": str(db)},
                                       "enqueue", "--user", "rob@contoso.com")
    assert status == 0
    opened: list[bool] = []
    real = SqliteDatabase.__init__

    def spy(self: SqliteDatabase, path: Path | str, *, read_only: bool = False) -> None:
        opened.append(read_only)
        real(self, path, read_only=read_only)

    monkeypatch.setattr(SqliteDatabase, "__init__", spy)

    status, out, err = cli_helpers.run_cli(monkeypatch, capsys, {"REMEDIATION_DB": str(db)},
                                           "status")

    assert (status, out.splitlines()[-1], err) == (0, "no cases", "")
    assert opened == [True]


def test_a_since_too_long_to_subtract_is_refused_with_the_bound(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run_cli(monkeypatch, capsys, {}, "status", "--since", "99999999999d")

    assert status == 2
    assert err == "remediation: --since: '99999999999d' is longer than 3650d\n"
