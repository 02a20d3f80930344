"""`remediation status` reads the deployment's journal: Table Storage when it is configured
(on Azurite here), not a local SQLite file that does not hold the cases."""

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from remediation.adapters.table_journal import build_table_journal
from tests.journal_cases import make_case, seed


async def test_status_reads_the_table_journal_when_one_is_configured(
        azurite_table_connection_string: str, tmp_path: Path) -> None:
    table_name = f"journal{uuid.uuid4().hex}"
    journal = build_table_journal(endpoint=None, connection_string=azurite_table_connection_string,
                                  table_name=table_name)
    try:
        await seed(journal, make_case("20261130-0badcafe"))
    finally:
        await journal.close()
    env = {**os.environ, "JOURNAL_TABLE_CONNECTION_STRING": azurite_table_connection_string,
           "JOURNAL_TABLE_NAME": table_name, "REMEDIATION_DB": str(tmp_path / "no.db")}
    shown = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "remediation", "status", "--json"], env=env,
        capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    assert [case["case_id"] for case in json.loads(shown.stdout)] == ["20261130-0badcafe"]
    assert not (tmp_path / "no.db").exists()
