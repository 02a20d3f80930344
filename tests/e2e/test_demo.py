"""`remediation demo` shows every seeded scenario ending where it should."""

import io
import re

from remediation.entrypoints.demo import DEMO_BREAKER, run_demo
from remediation.sandbox.seed import STORM_SIZE


async def test_demo_shows_each_case_and_its_outcome() -> None:
    out = io.StringIO()
    assert await run_demo(out) == 0
    text = out.getvalue()
    rows = re.findall(r"^\d{8}-[0-9a-f]{8}\s+(.+?)\s+(verified|escalated|rejected|skipped)\s+"
                      r"(\S+)\s", text, flags=re.MULTILINE)
    outcome = {user: (source, state) for user, state, source in rows}
    assert {user: outcome[user] for user in outcome if not user.startswith("storm")} == {
        "patti.fernandez@contoso.com": ("manual", "escalated"),
        "nobody@contoso.com": ("manual", "escalated"),
        "diego.siciliani@contoso.com": ("manual", "verified"),
        "not-an-address": ("unknown", "rejected"),
        "(no sender)": ("alert", "rejected"),
        "adele.vance@contoso.com": ("alert", "verified"),
        "lee.gu@contoso.com": ("alert", "verified"),
        "megan.bowen@contoso.com": ("alert", "escalated"),
        "johanna.lorenz@contoso.com": ("restricted-list", "verified"),
        "grace.taylor@contoso.com": ("restricted-list", "escalated"),
        "isaiah.langer@contoso.com": ("restricted-list", "escalated"),
        "pradeep.gupta@fabrikam.com": ("restricted-list", "escalated"),
        "miriam.graham@contoso.com": ("restricted-list", "skipped"),
        "lynne.robbins@contoso.com": ("restricted-list", "verified"),
        "$scanner@contoso.com": ("alert", "verified"),
        "lidia.holloway@contoso.com": ("alert", "verified"),
    }
    storm = [state for user, (_, state) in outcome.items() if user.startswith("storm")]
    resets_before_storm = 8  # diego, adele, lee, megan, johanna, lynne, $scanner, lidia
    allowed = DEMO_BREAKER - resets_before_storm
    assert sorted(storm) == ["escalated"] * (STORM_SIZE - allowed) + ["verified"] * allowed
    flat = " ".join(text.split())  # the table wraps long lines
    assert flat.count("circuit breaker open") == STORM_SIZE - allowed
    assert "1 duplicate request(s) merged" in flat
    assert "mailbox: 3 planted rule(s)/forwarding disabled/cleared" in flat
    # What Graph never showed: the hidden rule disabled through Exchange (with its undo), the
    # rule created and deleted again named with the address that received copies.
    assert ("disabled inbox rule '.' (not shown by Graph)" in flat
            and "undo: Enable-InboxRule -Identity" in flat)
    assert ("reported deleted inbox rule 'Payroll'" in flat
            and "payroll-copy@evil-mail.example: they may have received copies" in flat)
    assert f"limit of {DEMO_BREAKER} password resets" in flat
    assert text.count("resolved/truePositive/compromisedAccount") == 5
    assert "listed as sales@contoso.com" in flat
    # The credential path that runs in Azure: DefaultAzureCredential and a managed identity,
    # one token per documented resource.
    assert ("resources asked for: https://graph.microsoft.com, https://outlook.office365.com"
            in flat)
