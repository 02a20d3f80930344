"""An operator in the operators' group reads the Azure journal with Storage Table Data Reader:
``tables/read`` and ``tables/entities/read``, no ``tables/write`` (Microsoft Learn, "Azure
built-in roles for Storage", MicrosoftDocs/azure-docs articles/role-based-access-control/
built-in-roles/storage.md). Table Storage refuses such a caller's writes, creating the table
included, with 403 ``AuthorizationPermissionMismatch`` ("This request is not authorized to
perform this operation using this permission.", the storage services' error code for a
permission the caller lacks; azure-data-tables ``TableErrorCode``). Here a proxy in front of
Azurite answers every write so; `remediation status` still shows the cases, and the chain
check reads them whole."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from azure.core.exceptions import HttpResponseError

from remediation.adapters.table_journal import build_table_journal
from remediation.domain.cases import Step, StepStatus
from remediation.domain.journal_chain import chain_problems
from tests.cli_helpers import clean_environment, run_cli  # noqa: F401 (a fixture)
from tests.journal_cases import T0, make_case, stored

REFUSAL = {"odata.error": {"code": "AuthorizationPermissionMismatch", "message": {
    "lang": "en-US", "value": "This request is not authorized to perform this operation "
                              "using this permission.\nRequestId:0\nTime:2024-05-01T09:00:00Z"}}}
_HOP = {"host", "content-length", "transfer-encoding", "connection"}


@pytest.fixture
async def reader_endpoint(azurite_table_connection_string: str) -> AsyncIterator[str]:
    """A Table endpoint that reads like Azurite and refuses every write as Azure refuses a
    Storage Table Data Reader's."""
    upstream = azurite_table_connection_string.split("TableEndpoint=")[1].split(";")[0]
    upstream = upstream.rstrip("/").rsplit("/", 1)[0]  # http://127.0.0.1:port
    session = aiohttp.ClientSession()

    async def relay(request: web.Request) -> web.Response:
        if request.method != "GET":
            return web.json_response(REFUSAL, status=403,
                                     headers={"x-ms-error-code": "AuthorizationPermissionMismatch"})
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with session.get(f"{upstream}{request.rel_url}", headers=headers) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
            return web.Response(status=answer.status, body=body, headers=kept)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", relay)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield azurite_table_connection_string.replace(
        f"TableEndpoint={upstream}/", f"TableEndpoint=http://127.0.0.1:{port}/")
    await runner.cleanup()
    await session.close()


async def test_a_reader_runs_status_and_reads_the_chain(
        azurite_table_connection_string: str, reader_endpoint: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        clean_environment: None) -> None:  # noqa: F811
    table_name = "journalreader"
    writer = build_table_journal(endpoint=None, connection_string=azurite_table_connection_string,
                                 table_name=table_name)
    try:
        await writer.add_case(make_case("20240501-0badcafe"))
        await writer.add_step("20240501-0badcafe", Step("lookup_user", StepStatus.DONE,
                                                        T0 + timedelta(seconds=1), "found"))
    finally:
        await writer.close()
    reader = build_table_journal(endpoint=None, connection_string=reader_endpoint,
                                 table_name=table_name)
    try:
        with pytest.raises(HttpResponseError, match="AuthorizationPermissionMismatch"):
            await reader.add_step("20240501-0badcafe", Step("x", StepStatus.INFO, T0))
        assert chain_problems(await stored(reader, "20240501-0badcafe")) == []
    finally:
        await reader.close()

    env = {"JOURNAL_TABLE_CONNECTION_STRING": reader_endpoint, "JOURNAL_TABLE_NAME": table_name,
           "REMEDIATION_DB": str(tmp_path / "no.db")}
    status, out, err = await asyncio.to_thread(run_cli, monkeypatch, capsys, env,
                                               "status", "--json")

    assert status == 0, err
    assert [case["case_id"] for case in json.loads(out)] == ["20240501-0badcafe"]
    assert not (tmp_path / "no.db").exists()
