"""`remediation demo` shows every seeded scenario ending where it should."""

import io
import re

from remediation.entrypoints.demo import run_demo


async def test_demo_shows_each_case_and_its_outcome() -> None:
    out = io.StringIO()
    assert await run_demo(out) == 0
    text = out.getvalue()
    rows = {match[0]: match[1] for match in re.findall(
        r"^\d{8}-[0-9a-f]{8}\s+(\S+)\s+(\w+)\s", text, flags=re.MULTILINE)}
    assert rows == {
        "adele.vance@contoso.com": "verified",
        "lee.gu@contoso.com": "verified",
        "megan.bowen@contoso.com": "escalated",
        "patti.fernandez@contoso.com": "escalated",
        "nobody@contoso.com": "escalated",
        "diego.siciliani@contoso.com": "verified",
        "not-an-address": "rejected",
    }
    assert "1 duplicate request(s) merged" in text
    assert "4 password resets" in text
    assert "4 unblocks" in text
