"""Hostile round on issue 17 (telemetry, journal chain, reports, workbook): each test names a
promise of the README's Telemetry, Reports or Journal integrity sections that was broken."""

from pathlib import Path

from remediation.bootstrap import bootstrap
from remediation.domain.cases import CaseState
from remediation.sandbox import SandboxTenant
from remediation.sandbox.alert_seed import RESTRICTED
from tests.conftest import sandbox_settings
from tests.e2e.test_forged_messages import delivery
from tests.fuzz.test_hostile_text import LYNNE, _tenant, play
from tests.telemetry_capture import captured_telemetry

RULE = "Invoices RULE-MARKER-7Q"
EXCHANGE = "Blocked sender not found EXCHANGE-MARKER-3Z call +1 425 555 0100"


async def test_no_reason_or_detail_text_from_outside_reaches_an_exported_log_record(
        tmp_path: Path) -> None:
    # README, Telemetry: "Never sent: a password, a token, a phone number, a reason or detail
    # text". A rule name and an Exchange message (text from outside) end up in the case's
    # escalation reason; the exporter must not carry them.
    tenant = _tenant(RULE, EXCHANGE)
    with captured_telemetry() as captured:
        outcome = await play(tenant, tmp_path / "db", user=LYNNE, title=RESTRICTED)
        [case] = outcome.cases
        assert case.state.value == "escalated"
        assert "EXCHANGE-MARKER-3Z" in (case.reason or "")
        text = captured.text()
    leaked = [marker for marker in ("EXCHANGE-MARKER-3Z", "RULE-MARKER-7Q", "555 0100")
              if marker in text]
    assert leaked == [], [line for line in text.splitlines() if "MARKER" in line][:5]


async def test_a_request_refused_at_the_door_sends_no_outside_text_as_its_account(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    # Contract: remediation.account is "the case's user address". A hand-sent message whose
    # "user" is no address (here a phone number and a pasted password) is rejected; its
    # journal record keeps what the message claimed, and the exported record must not.
    claimed = "call +1 425 555 0100 pw Summer2024 now"
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db",
                                     sweep_restricted_users=False))
    with captured_telemetry() as captured:
        case = await app.handler.on_request(delivery({"user": claimed}))
        await app.aclose()
        assert case is not None and case.state is CaseState.REJECTED
        accounts = [str((r.log_record.attributes or {}).get("remediation.account"))
                    for r in captured.records()
                    if (r.log_record.attributes or {}).get("remediation.case_id") == case.case_id]
    assert accounts, "the rejected case's step has a log record"
    assert not [a for a in accounts if "555" in a or "summer2024" in a.lower()], accounts
