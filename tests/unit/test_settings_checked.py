"""Settings checked like every other, one line naming them and exit status 2 (issue 13, point
7): the Functions timer's ALERT_POLL_SCHEDULE against ALERT_LOOKBACK (a look-back no longer
than the longest wait between polls misses the alerts raised in the gap), and TENANT_DOMAINS
(each a DNS domain name)."""

from datetime import timedelta
from pathlib import Path

import pytest

from remediation.config import Settings
from remediation.domain import ncrontab
from tests import cli_helpers
from tests.cli_helpers import clean_environment  # noqa: F401 (a fixture)

SIX_FIELDS = ("an Azure Functions NCRONTAB expression is second minute hour day month "
              "day-of-week, e.g. '0 */2 * * * *'")
DOMAIN_FORM = ("labels of letters, digits and hyphens separated by dots, at least two, "
               "e.g. contoso.com")
BAD_SETTINGS = [
    ({"ALERT_POLL_SCHEDULE": "0 0 * * * *"},
     "ALERT_LOOKBACK: 1h must be longer than the longest interval between runs of "
     "ALERT_POLL_SCHEDULE ('0 0 * * * *': 1h), or polls miss alerts"),
    ({"ALERT_POLL_SCHEDULE": "0 0 */2 * * *", "ALERT_LOOKBACK": "90m"},
     "ALERT_LOOKBACK: 90m must be longer than the longest interval between runs of "
     "ALERT_POLL_SCHEDULE ('0 0 */2 * * *': 2h), or polls miss alerts"),
    ({"ALERT_POLL_SCHEDULE": "0 0 8-18 * * 1-5", "ALERT_LOOKBACK": "1d"},
     "ALERT_LOOKBACK: 1d must be longer than the longest interval between runs of "
     "ALERT_POLL_SCHEDULE ('0 0 8-18 * * 1-5': 62h), or polls miss alerts"),
    ({"ALERT_POLL_SCHEDULE": "*/5 * * * *"},
     f"ALERT_POLL_SCHEDULE: '*/5 * * * *': 5 field(s), not six: {SIX_FIELDS}"),
    ({"ALERT_POLL_SCHEDULE": "00:05:00"},
     "ALERT_POLL_SCHEDULE: '00:05:00': a TimeSpan, which only an App Service plan runs (not "
     "Flex Consumption): write it in NCRONTAB, e.g. '0 */2 * * * *'"),
    ({"ALERT_POLL_SCHEDULE": "0 0/5 * ? * *"},
     "ALERT_POLL_SCHEDULE: '0 0/5 * ? * *': the day field: '?' cannot be analysed; write it "
     "with numbers, *, */n, ranges a-b and lists a,b"),
    ({"ALERT_POLL_SCHEDULE": "0 0 0 L * *"},
     "ALERT_POLL_SCHEDULE: '0 0 0 L * *': the day field: 'L' cannot be analysed; write it "
     "with numbers, *, */n, ranges a-b and lists a,b"),
    ({"ALERT_POLL_SCHEDULE": "0 */0 * * * *"},
     "ALERT_POLL_SCHEDULE: '0 */0 * * * *': the minute field '*/0': the step in '*/0' must "
     "be a whole number from 1"),
    ({"ALERT_POLL_SCHEDULE": "0 61 * * * *"},
     "ALERT_POLL_SCHEDULE: '0 61 * * * *': the minute field: '61' is outside 0-59"),
    ({"ALERT_POLL_SCHEDULE": "0 0 0 * * Fri-Mon"},
     "ALERT_POLL_SCHEDULE: '0 0 0 * * Fri-Mon': the day of the week field 'Fri-Mon': the "
     "range 'Fri-Mon' runs backwards"),
    ({"ALERT_POLL_SCHEDULE": "0 0 0 31 Feb *"},
     "ALERT_POLL_SCHEDULE: '0 0 0 31 Feb *': never runs (no date has that day, month and "
     "day of the week)"),
    ({"TENANT_DOMAINS": "contoso.com,rob@contoso.com"},
     "TENANT_DOMAINS: 'rob@contoso.com' is an address, not a domain name: write what follows "
     "the @"),
    ({"TENANT_DOMAINS": "https://contoso.com"},
     "TENANT_DOMAINS: 'https://contoso.com' is a URL, not a domain name: write its host "
     "alone, e.g. contoso.com"),
    ({"TENANT_DOMAINS": "contoso.com,,fabrikam.com"},
     "TENANT_DOMAINS: an empty item in 'contoso.com,,fabrikam.com' (domain names are "
     "separated by single commas)"),
    ({"TENANT_DOMAINS": "contoso.com,"},
     "TENANT_DOMAINS: an empty item in 'contoso.com,' (domain names are separated by single "
     "commas)"),
    ({"TENANT_DOMAINS": "contoso.com;fabrikam.com"},
     f"TENANT_DOMAINS: 'contoso.com;fabrikam.com' is not a domain name ({DOMAIN_FORM}; "
     "several are separated by commas)"),
    ({"TENANT_DOMAINS": "contoso"},
     f"TENANT_DOMAINS: 'contoso' is not a domain name ({DOMAIN_FORM}; several are separated "
     "by commas)"),
    ({"TENANT_DOMAINS": "-contoso.com"},
     f"TENANT_DOMAINS: '-contoso.com' is not a domain name ({DOMAIN_FORM}; several are "
     "separated by commas)"),
    ({"TENANT_DOMAINS": "contoso..com"},
     f"TENANT_DOMAINS: 'contoso..com' is not a domain name ({DOMAIN_FORM}; several are "
     "separated by commas)"),
    ({"TENANT_DOMAINS": "mail_contoso.com"},
     f"TENANT_DOMAINS: 'mail_contoso.com' is not a domain name ({DOMAIN_FORM}; several are "
     "separated by commas)"),
    ({"TENANT_DOMAINS": f"{'a' * 64}.com"},
     f"TENANT_DOMAINS: '{'a' * 64}.com' is not a domain name ({DOMAIN_FORM}; several are "
     "separated by commas)"),
    ({"TENANT_DOMAINS": "müller.de"},
     "TENANT_DOMAINS: 'müller.de' is not a domain name in ASCII: write it in its xn-- form, "
     "as the tenant's domain list (Graph /domains) shows it"),
    # IDNA 2003 would suggest strasse.de, someone else's domain: no suggestion at all.
    ({"TENANT_DOMAINS": "straße.de"},
     "TENANT_DOMAINS: 'straße.de' is not a domain name in ASCII: write it in its xn-- form, "
     "as the tenant's domain list (Graph /domains) shows it"),
    ({"TENANT_DOMAINS": "10.0.0.1"},
     "TENANT_DOMAINS: '10.0.0.1' is an IP address or ends in a number: a domain name ends "
     "in a top-level domain, e.g. contoso.com"),
]


@pytest.fixture(autouse=True)
def environment(clean_environment: None,  # noqa: F811 (the fixture imported above)
                monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REMEDIATION_DB", str(tmp_path / "state.db"))


@pytest.mark.parametrize(("settings", "line"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_naming_it_and_exit_status_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        settings: dict[str, str], line: str) -> None:
    status, out, err = cli_helpers.run_cli(monkeypatch, capsys, settings, "status")

    assert (status, out) == (2, "")
    assert err == f"remediation: configuration error: {line}\n"


@pytest.mark.parametrize(("schedule", "lookback"), [
    ("0 */2 * * * *", "1h"), ("0 */2 * * * *", "3m"), ("0 0 * * * *", "61m"),
    ("*/30 * * * * *", "3m"), ("0 5,35 * * * *", "31m"), ("0 0 9-17 * * Mon-Fri", "7d"),
    ("0 30 9 * * 1-5", "4d"), ("0 */2 * * * *", "")])
def test_schedules_a_look_back_covers_pass(schedule: str, lookback: str) -> None:
    env = {"ALERT_POLL_SCHEDULE": schedule, "ALERT_LOOKBACK": lookback}
    assert Settings.from_env(env).alert_poll_schedule == schedule


@pytest.mark.parametrize(("schedule", "longest"), [
    ("0 */2 * * * *", timedelta(minutes=2)),
    ("0 */7 * * * *", timedelta(minutes=7)),  # 56 to the next hour's 0 is only 4
    ("0 5,50 * * * *", timedelta(minutes=45)),
    ("15 10-20/5 * * * *", timedelta(minutes=50)),  # 20 past to 10 past the next hour
    ("0 0 8-18 * * 1-5", timedelta(hours=62)),  # Friday 18:00 to Monday 8:00
    ("0 30 9 * Jan Mon", timedelta(days=343)),  # the last Monday of January to the first
    ("0 0 0 1 * *", timedelta(days=31)),
    ("0 0 12 * * 0/3", timedelta(days=3)),  # Sunday, Wednesday, Saturday
    ("0 0 0 13 * Fri", timedelta(days=427)),  # Friday the 13th: at most 14 months apart
])
def test_the_longest_interval_between_runs(schedule: str, longest: timedelta) -> None:
    assert ncrontab.parse(schedule).longest_interval() == longest


def test_tenant_domains_are_read_as_written_in_any_letter_case() -> None:
    settings = Settings.from_env({"TENANT_DOMAINS": " Contoso.com , contoso.onmicrosoft.com,"
                                  "xn--mller-kva.de"})
    assert settings.tenant_domains == frozenset({"contoso.com", "contoso.onmicrosoft.com",
                                                 "xn--mller-kva.de"})
    assert Settings.from_env({"TENANT_DOMAINS": "  "}).tenant_domains == frozenset()
