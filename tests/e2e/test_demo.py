"""`remediation demo` shows every seeded scenario ending where it should."""

import io
import re

from remediation.entrypoints.demo import run_demo


async def test_demo_shows_each_case_and_its_outcome() -> None:
    out = io.StringIO()
    assert await run_demo(out) == 0
    text = out.getvalue()
    rows = {(match[0], match[2], match[1]) for match in re.findall(
        r"^\d{8}-[0-9a-f]{8}\s+(.+?)\s+(verified|escalated|rejected|\w+)\s+(\S+)\s",
        text, flags=re.MULTILINE)}
    assert rows == {
        ("patti.fernandez@contoso.com", "manual", "escalated"),
        ("nobody@contoso.com", "manual", "escalated"),
        ("diego.siciliani@contoso.com", "manual", "verified"),
        ("not-an-address", "unknown", "rejected"),
        ("(no sender)", "alert", "rejected"),
        ("adele.vance@contoso.com", "alert", "verified"),
        ("lee.gu@contoso.com", "alert", "verified"),
        ("megan.bowen@contoso.com", "alert", "escalated"),
        ("johanna.lorenz@contoso.com", "restricted-list", "verified"),
    }
    assert "1 duplicate request(s) merged" in text
    assert "5 password resets" in text
    assert "5 unblocks" in text
    assert text.count("resolved/truePositive/compromisedAccount") == 3
