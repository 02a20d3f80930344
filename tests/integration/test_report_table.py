"""`remediation report` reads the deployment's journal as `status` does: Table Storage when
it is configured (on Azurite here), never a local SQLite file that does not hold the cases."""

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from remediation.adapters.table_journal import build_table_journal
from remediation.domain.cases import CaseState, Step, StepStatus
from tests.journal_cases import T0, make_case, seed


async def test_report_reads_the_table_journal_when_one_is_configured(
        azurite_table_connection_string: str, tmp_path: Path) -> None:
    table_name = f"journal{uuid.uuid4().hex}"
    journal = build_table_journal(endpoint=None, connection_string=azurite_table_connection_string,
                                  table_name=table_name)
    steps = (Step("reset_password", StepStatus.DONE, T0, "new random password set"),
             Step("unblock", StepStatus.DONE, T0, "removed", {"listed": True}))
    try:
        await seed(journal, make_case("20261130-0badcafe", state=CaseState.VERIFIED,
                                      block_created=T0, steps=steps))
    finally:
        await journal.close()
    env = {**os.environ, "JOURNAL_TABLE_CONNECTION_STRING": azurite_table_connection_string,
           "JOURNAL_TABLE_NAME": table_name, "REMEDIATION_DB": str(tmp_path / "no.db")}

    async def report(*args: str) -> dict[str, object]:
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "remediation", "report", *args, "--json"],
            env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        body: dict[str, object] = json.loads(done.stdout)
        return body

    one = await report("20261130-0badcafe")
    period = await report()

    assert one["case_id"] == "20261130-0badcafe"
    assert [item["text"] for item in one["sections"]["changes"]] == [  # type: ignore[index]
        "password reset", "block removed from the Restricted users list"]
    assert period["total"] == 1 and period["counts"] == {"verified": 1}
    assert not (tmp_path / "no.db").exists()
