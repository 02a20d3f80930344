"""The HTTP push and Event Hub stream handlers, confirming every hint against Graph (sandbox)."""

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from remediation.bootstrap import Application, bootstrap
from remediation.domain.alerts import DEFAULT_ALERT_TITLES
from remediation.domain.requests import parse_request
from remediation.sandbox import Fault, SandboxTenant
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence
from remediation.service.push import handle_alert_push, handle_stream_events
from tests.conftest import sandbox_settings

ADELE = "adele.vance@contoso.com"
JSON = "application/json"


@pytest.fixture
async def app(sandbox_url: str, tenant: SandboxTenant,
              tmp_path: Path) -> AsyncIterator[Application]:
    application = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db",
                                             sweep_restricted_users=False, http_max_retries=0))
    yield application
    await application.aclose()


@pytest.fixture
def adele_alert(tenant: SandboxTenant) -> dict[str, Any]:
    raw = alert(RESTRICTED, [mailbox_evidence(ADELE)])
    tenant.add_alert(raw)
    return raw


async def queued_users(app: Application) -> list[str]:
    counts = await app.queue.counts(app.settings.remediation_queue)
    message = await app.queue.receive((app.settings.remediation_queue,))
    users = [] if message is None else [json.loads(message.body)["user"]]
    assert counts.ready == len(users)
    return users


@pytest.mark.parametrize("shape", ["bare", "object", "list", "alerts_v2", "value"])
async def test_each_body_shape_queues_the_confirmed_alert(
        app: Application, adele_alert: dict[str, Any], shape: str) -> None:
    alert_id = adele_alert["id"]
    body = {"bare": alert_id, "object": {"alertId": alert_id}, "list": [alert_id, alert_id],
            "alerts_v2": {**adele_alert, "title": "anything: the push is only a hint"},
            "value": {"value": [{"id": alert_id}]}}[shape]

    response = await handle_alert_push(json.dumps(body).encode(), JSON, app.intake)

    assert response.status == 202
    assert response.body["queued"] == 1
    assert await queued_users(app) == [ADELE]


async def test_a_hint_graph_does_not_confirm_queues_nothing(
        app: Application, tenant: SandboxTenant) -> None:
    unrelated = alert("Email messages containing malicious URL removed after delivery",
                      [mailbox_evidence(ADELE)])
    tenant.add_alert(unrelated)
    body = {"alertIds": ["no-such-alert", unrelated["id"]]}

    response = await handle_alert_push(json.dumps(body).encode(), JSON, app.intake)

    assert response.status == 404  # never a 202 that queued nothing
    assert response.body["not_confirmed"] == ["no-such-alert", unrelated["id"]]
    assert response.body["not_found"] == ["no-such-alert"]
    assert "provider's GUID" in response.body["error"]
    assert await queued_users(app) == []
    assert tenant.alert(unrelated["id"])["status"] == "new"


async def test_a_push_naming_an_alert_by_its_provider_guid_queues_that_alert(
        app: Application, tenant: SandboxTenant, adele_alert: dict[str, Any]) -> None:
    guid = adele_alert["providerAlertId"]
    assert adele_alert["id"] == "fa" + guid

    response = await handle_alert_push(json.dumps({"alertId": guid.upper()}).encode(), JSON,
                                       app.intake)

    assert response.status == 202
    assert response.body["queued"] == 1
    assert await queued_users(app) == [ADELE]
    reads = [r.path for r in tenant.requests() if r.path.startswith("/v1.0/security/alerts_v2/")]
    assert reads == [f"/v1.0/security/alerts_v2/{adele_alert['id']}"]


async def test_a_push_naming_only_an_unknown_guid_is_refused_naming_the_accepted_forms(
        app: Application, tenant: SandboxTenant) -> None:
    guid = "4dde311e-5509-9c6a-ce00-08dee8f01678"

    response = await handle_alert_push(json.dumps(guid).encode(), JSON, app.intake)

    assert response.status == 404
    assert response.body["queued"] == 0
    assert response.body["not_found"] == ["fa" + guid]
    assert "alerts_v2 id" in response.body["error"]
    assert "provider's GUID" in response.body["error"]
    assert await queued_users(app) == []


async def test_a_push_whose_alert_needs_nothing_is_told_so_without_a_202(
        app: Application, tenant: SandboxTenant) -> None:
    unrelated = alert("Email messages containing malicious URL removed after delivery",
                      [mailbox_evidence(ADELE)])
    tenant.add_alert(unrelated)

    response = await handle_alert_push(json.dumps(unrelated["id"]).encode(), JSON, app.intake)

    assert response.status == 200
    assert response.body["queued"] == 0
    assert "nothing queued" in response.body["note"]


async def test_the_sandbox_answers_404_for_a_bare_provider_guid_as_graph_does(
        sandbox_url: str, tenant: SandboxTenant, adele_alert: dict[str, Any]) -> None:
    async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {tenant.token}"}) as session:
        async with session.get(f"{sandbox_url}/v1.0/security/alerts_v2/"
                               f"{adele_alert['providerAlertId']}") as bare:
            assert bare.status == 404
            assert (await bare.json())["error"]["code"] == "NotFound"
        async with session.get(f"{sandbox_url}/v1.0/security/alerts_v2/"
                               f"{adele_alert['id']}") as graph_id:
            assert graph_id.status == 200


async def test_a_pushed_alert_already_handled_is_not_queued_twice(
        app: Application, adele_alert: dict[str, Any]) -> None:
    body = json.dumps({"alertId": adele_alert["id"]}).encode()
    await handle_alert_push(body, JSON, app.intake)
    await app.worker(poll_interval=0.05).run(until_idle=True)

    again = await handle_alert_push(body, JSON, app.intake)

    assert again.status == 200
    assert again.body == {"queued": 0, "already_known": 1, "rejected": [], "escalated": [],
                          "not_confirmed": [], "note": again.body["note"]}


@pytest.mark.parametrize(("body", "content_type", "status", "message"), [
    (b'{"alertId": "x"}', "text/plain", 415, "application/json"),
    (b'{"alertId": "x"}', None, 415, "application/json"),
    (b"x" * (64 * 1024 + 1), JSON, 413, "limit"),
    (b'{"alertId": ', JSON, 400, "not valid JSON"),
    (b"{}", JSON, 400, "not an alert id"),
    (b"[]", JSON, 400, "no alert id"),
    (b'{"alertIds": "abc"}', JSON, 400, "must be a list"),
    (b'{"alertId": "a b"}', JSON, 400, "not an alert id"),
])
async def test_bad_bodies_get_a_clear_4xx_and_touch_nothing(
        app: Application, tenant: SandboxTenant, body: bytes, content_type: str | None,
        status: int, message: str) -> None:
    response = await handle_alert_push(body, content_type, app.intake)

    assert response.status == status
    assert message in response.body["error"]
    assert tenant.requests() == []


async def test_graph_unavailable_asks_the_pusher_to_retry(
        app: Application, tenant: SandboxTenant, adele_alert: dict[str, Any]) -> None:
    tenant.add_fault(Fault(status=503, path=r"/security/alerts_v2/", times=None))

    response = await handle_alert_push(json.dumps(adele_alert["id"]).encode(), JSON, app.intake)

    assert (response.status, response.retry_after) == (503, 60)


def stream_event(*records: dict[str, Any]) -> bytes:
    return json.dumps({"records": list(records)}).encode()


def record(category: str, **properties: Any) -> dict[str, Any]:
    return {"time": "2026-11-26T10:00:00Z", "tenantId": "t", "operationName": "Publish",
            "category": category, "properties": properties}


async def test_stream_records_are_hints_confirmed_against_graph(
        app: Application, tenant: SandboxTenant, adele_alert: dict[str, Any]) -> None:
    office = "Microsoft Defender for Office 365"
    events = [
        stream_event(record("AdvancedHunting-AlertInfo", AlertId=adele_alert["id"],
                            Title=RESTRICTED, ServiceSource=office, Severity="High",
                            AttackTechniques="")),
        stream_event(record("AdvancedHunting-AlertEvidence", AlertId=adele_alert["id"],
                            EntityType="Mailbox", ServiceSource=office, AccountUpn=None),
                     record("AdvancedHunting-DeviceProcessEvents", FileName="cmd.exe")),
        stream_event(record("AdvancedHunting-AlertInfo", AlertId="forged-1", Title=RESTRICTED,
                            ServiceSource=office)),
        b"not json at all",
    ]

    report = await handle_stream_events(events, app.intake, DEFAULT_ALERT_TITLES)

    assert len(report.enqueued) == 1
    assert report.not_confirmed == ["forged-1"]
    assert report.errors == ["event 3: event is not valid JSON"]
    assert await queued_users(app) == [ADELE]
    reads = [r for r in tenant.requests() if r.path.startswith("/v1.0/security/alerts_v2/")]
    assert len(reads) == 2  # adele's alert once (deduplicated), the forged id once


async def test_stream_records_without_the_records_wrapper_are_read_like_wrapped_ones(
        app: Application, tenant: SandboxTenant, adele_alert: dict[str, Any]) -> None:
    office = "Microsoft Defender for Office 365"
    bare_info = record("AdvancedHunting-AlertInfo", AlertId=adele_alert["id"],
                       Title=RESTRICTED, ServiceSource=office, Severity="High")
    bare_evidence = record("AdvancedHunting-AlertEvidence",
                           AlertId=adele_alert["providerAlertId"], EntityType="Mailbox",
                           ServiceSource=office)

    report = await handle_stream_events(
        [json.dumps(bare_info).encode(), json.dumps(bare_evidence)], app.intake,
        DEFAULT_ALERT_TITLES)

    assert report.errors == []
    assert len(report.enqueued) == 1
    assert await queued_users(app) == [ADELE]


async def test_a_manual_request_naming_a_provider_guid_speaks_on_the_graph_alert(
        app: Application, tenant: SandboxTenant, adele_alert: dict[str, Any]) -> None:
    request = parse_request({"user": ADELE, "alert_ids": [adele_alert["providerAlertId"]],
                             "request_id": "manual-guid"})

    await app.requests.send(request)
    await app.worker(poll_interval=0.05).run(until_idle=True)

    [case] = await app.journal.list_cases()
    assert case.alert_ids == (adele_alert["id"],)
    assert "alert_confirmed" in [step.name for step in case.steps]
    assert tenant.alert(adele_alert["id"])["comments"]  # commented on, under Graph's id
