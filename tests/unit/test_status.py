"""What ``status`` selects and how it shows it: newest first, open and escalated cases on top
with their count, ``--state`` / ``--since`` / ``--limit``, text from outside escaped."""

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.sources import Source, SourceHealth
from remediation.entrypoints.report import (
    case_details,
    cases_as_table,
    source_line,
    status_as_json,
    status_details,
    status_table,
)
from remediation.service.status import (
    TABLE_LIMIT,
    StatusQuery,
    StatusView,
    cases_for_people,
    newest_cases,
)
from tests.cli_helpers import clean_environment, run_cli
from tests.fakes import START, FakeJournal
from tests.journal_cases import seed

__all__ = ["clean_environment"]  # a fixture, used by name

ROB = "rob@contoso.com"


def case(n: int, state: CaseState, minutes: int, user: str = ROB, **fields: object) -> Case:
    at = START + timedelta(minutes=minutes)
    return Case(case_id=f"20240501-{n:08x}", user=user, state=state, created_at=at,
                updated_at=at, **fields)  # type: ignore[arg-type]


async def journal_of(*cases: Case) -> FakeJournal:
    journal = FakeJournal()
    for each in cases:
        await seed(journal, each)
    return journal


def ids(cases: list[Case]) -> list[int]:
    return [int(c.case_id.split("-")[1], 16) for c in cases]


async def test_people_see_open_and_escalated_cases_first_then_the_newest_others() -> None:
    journal = await journal_of(
        case(1, CaseState.AWAITING_VERIFICATION, 0), case(2, CaseState.VERIFIED, 1),
        case(3, CaseState.ESCALATED, 2), case(4, CaseState.SKIPPED, 3),
        case(5, CaseState.REJECTED, 4), case(6, CaseState.IN_PROGRESS, 5))

    view = await cases_for_people(journal, StatusQuery())

    assert ids(view.cases) == [6, 3, 1, 5, 4, 2]
    assert (view.open, view.escalated, view.total, view.not_shown) == (2, 1, 6, 0)
    limited = await cases_for_people(journal, StatusQuery(limit=4))
    assert ids(limited.cases) == [6, 3, 1, 5]
    assert limited.not_shown == 2
    narrowed = await cases_for_people(journal, StatusQuery(
        states=frozenset({CaseState.SKIPPED, CaseState.ESCALATED})))
    assert ids(narrowed.cases) == [3, 4]
    assert narrowed.total == 2 and (narrowed.open, narrowed.escalated) == (2, 1)
    since = await cases_for_people(journal, StatusQuery(since=START + timedelta(minutes=3)))
    assert ids(since.cases) == [6, 5, 4]


async def test_a_flood_of_other_cases_never_pushes_an_escalation_off_the_table() -> None:
    flood = [case(100 + n, CaseState.SKIPPED, 10 + n) for n in range(3 * TABLE_LIMIT)]
    journal = await journal_of(case(1, CaseState.ESCALATED, 0), *flood)

    view = await cases_for_people(journal, StatusQuery())

    assert len(view.cases) == TABLE_LIMIT
    assert ids(view.cases)[:2] == [1, 100 + 3 * TABLE_LIMIT - 1]
    assert view.not_shown == 3 * TABLE_LIMIT + 1 - TABLE_LIMIT
    table = status_table(view, width=120)
    assert table.splitlines()[0] == ("0 open, 1 escalated; 151 cases, 50 shown: open and "
                                     "escalated first, then the newest")
    assert table.splitlines()[-1].startswith("101 more not shown")


async def test_tools_get_every_case_newest_first_and_the_total_on_request() -> None:
    journal = await journal_of(*(case(n, CaseState.VERIFIED, n) for n in range(600)),
                               case(9999, CaseState.ESCALATED, -5))

    view = await newest_cases(journal, StatusQuery())

    assert len(view.cases) == 601  # no cap: the old journals stopped at 500
    assert ids(view.cases)[:2] == [599, 598] and ids(view.cases)[-1] == 9999
    limited = await newest_cases(journal, StatusQuery(limit=2))
    body = json.loads(status_as_json(limited))
    assert (body["total"], body["shown"]) == (601, 2)
    assert body["counts"] == {"escalated": 1, "verified": 600}
    assert [c["case_id"] for c in body["cases"]] == [c.case_id for c in limited.cases]


HOSTILE = "x\n20240501-00000099  eve@contoso.com  verified\x1b]0;title\x07\r\x1b[2Jy\u2028z"


def test_every_piece_of_outside_text_is_shown_on_one_clean_line() -> None:
    shown = case(1, CaseState.ESCALATED, 0, user=f"rob{HOSTILE}@contoso.com", source=HOSTILE,
                 reason=HOSTILE, alert_ids=(HOSTILE,), listed_addresses=(HOSTILE,),
                 steps=(Step(f"approved{HOSTILE}", StepStatus.INFO, START, HOSTILE,
                             {"approved_by": HOSTILE}),))
    view = StatusView([shown], {CaseState.ESCALATED: 1}, {CaseState.ESCALATED: 1})

    for text in (cases_as_table([shown], width=100), case_details(shown),
                 status_table(view, width=100), status_details(view, ROB)):
        assert not any(c in text for c in "\x1b\x07\r\u2028"), repr(text)
        assert not any(line.startswith("20240501-00000099") for line in text.splitlines())
        assert "title" not in text  # a terminal escape goes whole, OSC text and all
        assert "eve@contoso.com verified" in " ".join(text.split())  # the rest is kept


def status(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db: Path,
           *args: str) -> tuple[int, str, str]:
    return run_cli(monkeypatch, capsys, {"REMEDIATION_DB": str(db)}, "status", *args)


@pytest.mark.parametrize(("args", "message"), [
    (("--state", "done"), "--state: no state 'done'"),
    (("--state", "escalated,nonsense"), "--state: no state 'nonsense'"),
    (("--since", "yesterday"), "--since: 'yesterday' is neither a duration"),
    (("--with-total",), "--with-total goes with --json"),
])
def test_bad_status_options_are_one_line_and_exit_2(
        args: tuple[str, ...], message: str, tmp_path: Path, clean_environment: None,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = status(monkeypatch, capsys, tmp_path / "state.db", *args)
    assert code == 2 and out == ""
    assert err.startswith(f"remediation: {message}") and err.count("\n") == 1


@pytest.mark.parametrize("limit", ["0", "-1", "many"])
def test_a_limit_must_be_a_positive_number(limit: str, tmp_path: Path,
                                           clean_environment: None,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_status:
        status(monkeypatch, capsys, tmp_path / "state.db", "--limit", limit)
    assert exit_status.value.code == 2
    assert "not a positive whole number" in capsys.readouterr().err


def test_state_accepts_repeats_comma_lists_and_open(
        tmp_path: Path, clean_environment: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    journal = SqliteDatabase(tmp_path / "state.db")  # an empty one: status creates none
    asyncio.run(journal.read(lambda connection: None))
    journal.close()
    code, out, _ = status(monkeypatch, capsys, tmp_path / "state.db", "--state", "open",
                          "--state", "Escalated, skipped", "--since", "2h", "--json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = status(monkeypatch, capsys, tmp_path / "state.db")
    assert (code, out.splitlines()[-1]) == (0, "no cases")


# -- the poll's sources, on the first lines ------------------------------------------------

MINUTE = timedelta(minutes=1)
SWEEP = "Restricted users sweep (Get-BlockedSenderAddress)"


def test_each_source_shows_its_last_success_or_is_flagged() -> None:
    lines = [source_line(health) for health in (
        SourceHealth("alerts", last_success=START),
        SourceHealth("restricted_users", last_success=START, last_failure=START + MINUTE,
                     last_failure_reason=f"Exchange refused it{HOSTILE}"),
        SourceHealth("restricted_users", last_failure=START, last_failure_reason="refused"),
        SourceHealth("restricted_users"),
        SourceHealth("alerts", last_success=START + MINUTE, last_failure=START,
                     last_failure_reason="an older refusal"),
    )]

    assert lines == [
        "Defender alerts (Graph alerts_v2): last succeeded 2024-05-01 09:00:00 UTC",
        f"{SWEEP}: FAILED at 2024-05-01 09:01:00 UTC: Exchange refused itx 20240501-00000099 "
        "eve@contoso.com verified y z; last succeeded 2024-05-01 09:00:00 UTC",
        f"{SWEEP}: FAILED at 2024-05-01 09:00:00 UTC: refused; never succeeded",
        f"{SWEEP}: NEVER SUCCEEDED (no poll has read it yet)",
        "Defender alerts (Graph alerts_v2): last succeeded 2024-05-01 09:01:00 UTC",
    ]


async def test_sources_come_first_for_people_and_in_the_envelope_for_tools() -> None:
    journal = await journal_of(case(1, CaseState.ESCALATED, 0))
    await journal.record_source("restricted_users", START, "refused")
    query = StatusQuery(sources=(Source.ALERTS, Source.RESTRICTED_USERS))

    people = await cases_for_people(journal, query)
    tools = await newest_cases(journal, query)

    table = status_table(people, width=100).splitlines()
    assert table[0] == "Defender alerts (Graph alerts_v2): NEVER SUCCEEDED (no poll has read " \
                       "it yet)"
    assert table[1].startswith(f"{SWEEP}: FAILED at ") and table[2] == ""
    assert table[3].startswith("0 open, 1 escalated")
    details = status_details(people, ROB).splitlines()
    assert details[:2] == table[:2] and details[3].startswith("0 open, 1 escalated")
    assert json.loads(status_as_json(tools))["sources"] == [
        {"source": "alerts", "ok": False, "last_success": None, "last_failure": None,
         "last_failure_reason": None},
        {"source": "restricted_users", "ok": False, "last_success": None,
         "last_failure": START.isoformat(), "last_failure_reason": "refused"}]


def test_a_journal_from_before_sources_were_kept_still_shows(
        tmp_path: Path, clean_environment: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    database = SqliteDatabase(tmp_path / "state.db")
    asyncio.run(database.write(lambda connection: connection.execute("DROP TABLE sources")))
    database.close()

    code, out, _ = status(monkeypatch, capsys, tmp_path / "state.db")  # opened read-only

    assert code == 0
    assert out.splitlines()[:2] == [
        "Defender alerts (Graph alerts_v2): NEVER SUCCEEDED (no poll has read it yet)",
        f"{SWEEP}: NEVER SUCCEEDED (no poll has read it yet)"]
