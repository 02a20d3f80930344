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
        "miriam.graham@contoso.com": ("restricted-list", "escalated"),
        "info@contoso.com": ("alert", "escalated"),
        "nestor.wilke@contoso.com": ("shared-mailbox", "verified"),
        "newsletter@contoso.com": ("alert", "escalated"),
        "lynne.robbins@contoso.com": ("restricted-list", "verified"),
        "$scanner@contoso.com": ("alert", "verified"),
        "lidia.holloway@contoso.com": ("alert", "verified"),
    }
    storm = [state for user, (_, state) in outcome.items() if user.startswith("storm")]
    # diego, adele, lee, megan, johanna, lynne, $scanner, lidia, and nestor (the delegate the
    # shared mailbox's alert names)
    resets_before_storm = 9
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
    # Lynne's consent to a mail app given two hours before her block is revoked; her own
    # older consent is kept.
    assert ("app consents: removed Mail Organizer Pro" in flat
            and "1 older kept" in flat)
    assert "1 app consents revoked" in flat
    # What the attacker left behind on Lynne: their Authenticator removed, her phone kept.
    assert ("removed sign-in method Microsoft Authenticator on SM-G991B; undo: re-register "
            "the Authenticator app on SM-G991B" in flat)
    assert "kept sign-in method phone +• ••• ••• ••42 (mobile)" in flat
    assert "1 sign-in method removals" in flat
    # The judgement blocks: a shared mailbox names its delegates and opens the sender's case;
    # a bulk sender over its rate limit is explained, not reset.
    assert "nestor.wilke@contoso.com (SendAs)" in flat
    assert "Opened a case for nestor.wilke@contoso.com" in flat
    assert "releases itself within 24 hours" in flat
    # The credential path that runs in Azure: DefaultAzureCredential and a managed identity,
    # one token per documented resource.
    assert ("resources asked for: https://graph.microsoft.com, https://outlook.office365.com"
            in flat)
