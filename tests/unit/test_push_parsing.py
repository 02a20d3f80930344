"""Pushed bodies (HTTP) and Defender XDR streaming events (Event Hub) reduced to alert ids."""

from __future__ import annotations

import json
from typing import Any

import pytest

from remediation.domain.alert_ids import ACCEPTED_FORMS
from remediation.domain.alerts import DEFAULT_ALERT_TITLES
from remediation.domain.errors import InvalidRequest
from remediation.domain.push import MAX_PUSHED_ALERTS, MAX_PUSHED_ENTRIES, pushed_alert_ids
from remediation.domain.requests import describe
from remediation.domain.streaming import (
    MAX_BATCH_ALERTS,
    MAX_BATCH_HINTS,
    MAX_EVENT_BYTES,
    alert_hints,
)
from tests.fakes import alert_json, mailbox_evidence

GRAPH_ID = "da637551227677560813_-961444813"
OFFICE_ID = "fa6e3d6c4e-1b2c-4d5e-8f90-a1b2c3d4e5f6"

# -- pushed_alert_ids -----------------------------------------------------------------------


@pytest.mark.parametrize(("body", "expected"), [
    (OFFICE_ID, [OFFICE_ID]),
    ([OFFICE_ID, GRAPH_ID], [OFFICE_ID, GRAPH_ID]),
    ({"alertId": OFFICE_ID}, [OFFICE_ID]),
    ({"alertIds": [OFFICE_ID, GRAPH_ID]}, [OFFICE_ID, GRAPH_ID]),
    (alert_json(OFFICE_ID, [mailbox_evidence("rob@contoso.com")]), [OFFICE_ID]),
    ([alert_json(OFFICE_ID), alert_json(GRAPH_ID)], [OFFICE_ID, GRAPH_ID]),
    ({"value": [alert_json(OFFICE_ID), alert_json(GRAPH_ID)]}, [OFFICE_ID, GRAPH_ID]),
    ({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2",
      "value": [alert_json(GRAPH_ID)]}, [GRAPH_ID]),
    ([{"alertId": OFFICE_ID}, GRAPH_ID, {"id": "ed-3"}], [OFFICE_ID, GRAPH_ID, "ed-3"]),
    ({"alertIds": [{"alertId": OFFICE_ID}, {"id": GRAPH_ID}]}, [OFFICE_ID, GRAPH_ID]),
])
def test_every_accepted_shape_yields_its_alert_ids_in_order(
        body: Any, expected: list[str]) -> None:
    assert pushed_alert_ids(body) == expected
    # The same body through JSON, as the HTTP door decodes it.
    assert pushed_alert_ids(json.loads(json.dumps(body))) == expected


def test_alert_id_wins_over_id_in_one_object() -> None:
    assert pushed_alert_ids({"alertId": "fa-1", "id": "sentinel-incident-7"}) == ["fa-1"]


def test_repeated_ids_are_sent_on_once() -> None:
    body = [OFFICE_ID, {"alertId": GRAPH_ID}, alert_json(OFFICE_ID), GRAPH_ID, OFFICE_ID]
    assert pushed_alert_ids(body) == [OFFICE_ID, GRAPH_ID]


def test_a_hundred_distinct_ids_are_accepted_and_duplicates_do_not_count() -> None:
    ids = [f"fa-{n}" for n in range(MAX_PUSHED_ALERTS)]
    assert pushed_alert_ids({"alertIds": ids}) == ids
    assert pushed_alert_ids(ids + ids) == ids


@pytest.mark.parametrize(("body", "message"), [
    ([], "no alert id in the body"),
    ({"alertIds": []}, "no alert id in the body"),
    ({"value": []}, "no alert id in the body"),
    ([f"fa-{n}" for n in range(MAX_PUSHED_ALERTS + 1)],
     f"more than {MAX_PUSHED_ALERTS} alert ids in one body"),
    ({"alertIds": [f"fa-{n}" for n in range(500)]},
     f"more than {MAX_PUSHED_ALERTS} alert ids in one body"),
    ([OFFICE_ID, 42], "not an alert id: 42"),
    ({"alertIds": [OFFICE_ID, None]}, "not an alert id: None"),
    ({"alertId": 17}, "not an alert id: 17"),
    ({"alertId": True}, "not an alert id: True"),
    ("fa 1", "not an alert id: 'fa 1'"),
    ([" fa-1"], "not an alert id: ' fa-1'"),
    ("", "not an alert id: ''"),
    ("x" * 201, "not an alert id: 'xxxxx"),
    ("fa-1;drop", "not an alert id: 'fa-1;drop'"),
    ({"alertIds": "fa-1"}, "'alertIds' must be a list of alert ids"),
    ({"alertIds": {"id": "fa-1"}}, "'alertIds' must be a list of alert ids"),
    ({"value": "fa-1"}, "'value' must be a list of alerts"),
    ({"value": {"id": "fa-1"}}, "'value' must be a list of alerts"),
    ({}, "not an alert id: None"),
    ({"title": "User restricted from sending email"}, "not an alert id: None"),
    (None, "not an alert id: None"),
    (42, "not an alert id: 42"),
    ([["fa-1"]], "not an alert id: ['fa-1']"),
])
def test_refusals_say_what_is_wrong(body: Any, message: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        pushed_alert_ids(body)
    assert raised.value.reason.startswith(message)


REAL_IDS = [
    GRAPH_ID, OFFICE_ID,
    "dab674980f-e329-47da-a1d4-0bc24d08f522_1",   # Defender for Endpoint, as Graph lists it
    "da637578995287051192_756343937",
    "fa" + "0123456789abcdef" * 2,                 # the sandbox's Office 365 ids
    "ar1234567890abcdef_-123",
    "9a6e3c1f-5b7d-4e28-b0c4-3f8d2a1e6b97",      # GUID-like
    "ED-3", "x" * 200,
]


def test_real_alert_ids_are_accepted_and_a_provider_guid_names_its_office_365_alert() -> None:
    expected = ["fa" + alert_id if "-" in alert_id and len(alert_id) == 36 else alert_id
                for alert_id in REAL_IDS]
    assert expected[6] == "fa9a6e3c1f-5b7d-4e28-b0c4-3f8d2a1e6b97"
    assert pushed_alert_ids({"alertIds": REAL_IDS}) == expected
    assert pushed_alert_ids("9A6E3C1F-5B7D-4E28-B0C4-3F8D2A1E6B97") == [expected[6]]


@pytest.mark.parametrize("alert_id", [
    ".", "..", "../users", "fa/../x", "fa/1", "fa\\1", "%2e%2e", "fa%2F1", "fa?x=1", "fa#1",
    "fa.1", "fa:1", "fa@x", "fa+1", "fa=1", "-fa", "_fa", " fa", "fa ", "fa\t1", "\u00a0fa",
    "\uff46\uff41\uff11", "fa\u200b1", "x" * 201,
])
def test_an_id_that_is_not_a_plain_alert_id_is_refused(alert_id: str) -> None:
    for body in (alert_id, [OFFICE_ID, alert_id], {"alertIds": [alert_id]},
                 {"value": [{"id": alert_id}]}):
        with pytest.raises(InvalidRequest) as raised:
            pushed_alert_ids(body)
        assert raised.value.reason == (f"not an alert id: {describe(alert_id)}; name an "
                                       f"alert by {ACCEPTED_FORMS}")


def test_entries_are_counted_before_they_are_de_duplicated() -> None:
    assert pushed_alert_ids([OFFICE_ID] * MAX_PUSHED_ENTRIES) == [OFFICE_ID]

    with pytest.raises(InvalidRequest) as raised:
        pushed_alert_ids({"alertIds": [OFFICE_ID] * (MAX_PUSHED_ENTRIES + 1)})
    assert raised.value.reason == (f"more than {MAX_PUSHED_ENTRIES} entries in one body "
                                   "(repeated ids count)")


@pytest.mark.parametrize("body", ["fa-1\n", ["fa-1\n"], {"alertId": "fa-1\n"}])
def test_an_id_with_a_trailing_newline_is_refused(body: Any) -> None:
    with pytest.raises(InvalidRequest, match="not an alert id"):
        pushed_alert_ids(body)


def test_a_refusal_quotes_only_a_short_part_of_a_huge_value() -> None:
    with pytest.raises(InvalidRequest) as raised:
        pushed_alert_ids(["fa-1", "y" * 10_000])
    assert len(raised.value.reason.replace(ACCEPTED_FORMS, "")) < 100


# -- alert_hints (Event Hub) ----------------------------------------------------------------

O365 = "Microsoft Defender for Office 365"


def record(category: str, **properties: Any) -> dict[str, Any]:
    return {"time": "2024-05-01T09:00:00.0000000Z",
            "tenantId": "11111111-2222-3333-4444-555555555555", "category": category,
            "operationName": "Publish", "properties": properties}


def info(alert_id: str, title: str = DEFAULT_ALERT_TITLES[0],
         source: str = O365) -> dict[str, Any]:
    return record("AdvancedHunting-AlertInfo", AlertId=alert_id,
                  Timestamp="2024-05-01T08:59:00Z", Title=title, Category="ThreatManagement",
                  Severity="High", ServiceSource=source, DetectionSource=source,
                  AttackTechniques="", MachineGroup=None)


def evidence(alert_id: str, entity: str = "Mailbox", source: str = O365) -> dict[str, Any]:
    return record("AdvancedHunting-AlertEvidence", AlertId=alert_id,
                  Timestamp="2024-05-01T08:59:00Z", EntityType=entity,
                  EvidenceRole="Impacted", AccountUpn="rob@contoso.com",
                  AccountObjectId=None, AccountName="rob", AccountDomain="contoso.com",
                  NetworkMessageId=None, EmailSubject=None, AdditionalFields="{}",
                  ServiceSource=source)


def device_event() -> dict[str, Any]:
    return record("AdvancedHunting-DeviceProcessEvents", AlertId="fa-device",
                  Title=DEFAULT_ALERT_TITLES[0], ServiceSource=O365, EntityType="User",
                  DeviceName="laptop-17", ProcessCommandLine="cmd.exe")


def event(*records: dict[str, Any]) -> bytes:
    return json.dumps({"records": list(records)}).encode()


def hints(*events: bytes | str | dict[str, Any]) -> tuple[list[str], list[str]]:
    return alert_hints(list(events), DEFAULT_ALERT_TITLES)


@pytest.mark.parametrize("title", [*DEFAULT_ALERT_TITLES, DEFAULT_ALERT_TITLES[1].upper(),
                                   f"  {DEFAULT_ALERT_TITLES[2].lower()} "])
def test_an_office_alert_info_with_a_default_title_is_a_hint(title: str) -> None:
    assert hints(event(info("fa-1", title))) == (["fa-1"], [])


@pytest.mark.parametrize("record_", [
    info("fa-1", "Email messages containing malicious URL removed after delivery"),
    info("fa-1", source="Microsoft Defender for Endpoint"),
    info("fa-1", source="microsoftDefenderForOffice365"),  # Graph's enum is not the stream's
    info("fa-1", title=""),
    record("AdvancedHunting-AlertInfo", AlertId="fa-1", ServiceSource=O365),  # no Title
])
def test_other_alert_info_records_are_no_hint(record_: dict[str, Any]) -> None:
    assert hints(event(record_)) == ([], [])


@pytest.mark.parametrize("entity", ["User", "Mailbox", "user", "MAILBOX"])
def test_office_evidence_about_a_user_or_mailbox_is_a_hint(entity: str) -> None:
    assert hints(event(evidence("fa-2", entity))) == (["fa-2"], [])


@pytest.mark.parametrize("record_", [
    evidence("fa-2", "File"),
    evidence("fa-2", "MailMessage"),
    evidence("fa-2", "Ip"),
    evidence("fa-2", "User", source="Microsoft Defender for Endpoint"),
    record("AdvancedHunting-AlertEvidence", AlertId="fa-2", ServiceSource=O365,
           EntityType=None),
])
def test_other_evidence_records_are_no_hint(record_: dict[str, Any]) -> None:
    assert hints(event(record_)) == ([], [])


@pytest.mark.parametrize("alert_id", [None, "", 7, "x" * 201, ".", "..", "../users",
                                      "fa/../x", "fa%2F..", "fa 1", " fa-1", "fa-1\n",
                                      "fa-1.2", "-fa", "_fa", "fa:1", "fa\\1",
                                      "\uff46\uff41\uff11"])
def test_a_record_without_a_plain_alert_id_is_refused_with_a_reason(alert_id: object) -> None:
    broken = info("placeholder")
    broken["properties"]["AlertId"] = alert_id
    found, problems = hints(event(broken, info("fa-ok"), broken))
    assert found == ["fa-ok"]
    assert problems == [f"batch: 2 hinted record(s) refused: not an alert id: "
                        f"{describe(alert_id)} (an alert is named by {ACCEPTED_FORMS})"]


def test_a_record_that_is_no_hint_is_not_refused_for_its_id() -> None:
    other = info("..", "Email messages containing malicious URL removed after delivery")
    assert hints(event(other, evidence("../x", "File"))) == ([], [])


def test_records_of_other_hunting_tables_are_ignored() -> None:
    assert hints(event(device_event(), device_event())) == ([], [])


def test_malformed_records_are_skipped_without_losing_the_good_ones() -> None:
    bad_properties = record("AdvancedHunting-AlertInfo")
    bad_properties["properties"] = "AlertId=fa-1"
    body = {"records": [None, "text", 3, [info("fa-nested")], bad_properties, info("fa-1"),
                        {"category": "AdvancedHunting-AlertInfo"}]}

    assert hints(json.dumps(body)) == (["fa-1"], [])


def test_one_alert_seen_many_times_in_a_batch_is_one_hint() -> None:
    batch = [event(evidence("fa-1", "User"), info("fa-1")),
             event(info("fa-1"), device_event(), evidence("fa-2", "Mailbox")),
             event(evidence("fa-1", "Mailbox"), info("fa-2"), info("fa-1"))]

    assert hints(*batch) == (["fa-1", "fa-2"], [])


def test_an_event_may_be_bytes_str_or_an_already_decoded_object() -> None:
    as_bytes = event(info("fa-1"))
    as_str = json.dumps({"records": [info("fa-2")]})
    as_dict = {"records": [evidence("fa-3", "User")]}

    assert hints(as_bytes, as_str, as_dict) == (["fa-1", "fa-2", "fa-3"], [])


def test_records_carrying_the_extra_tenant_fields_are_read() -> None:
    extra = info("fa-1")
    extra.update({"Tenant": "DefaultTenant", "_TimeReceivedBySvc": "2024-05-01T09:00:01Z"})
    assert hints(event(extra)) == (["fa-1"], [])


def test_malformed_events_are_reported_and_the_rest_of_the_batch_still_counts() -> None:
    oversized = json.dumps({"records": [info("fa-big")],
                            "padding": "x" * MAX_EVENT_BYTES}).encode()
    batch: list[bytes | str | dict[str, Any]] = [
        b"not json at all",                       # 0
        event(info("fa-1")),                      # 1
        b'{"records": {"category": "x"}}',        # 2: records not a list
        b'{"value": []}',                         # 3: no records
        b"\xff\xfe\x00garbage",                   # 4: not UTF-8 / UTF-16 JSON
        oversized,                                # 5
        b"[1, 2, 3]",                             # 6: not an object
        {"records": None},                        # 7
        json.dumps({"records": [info("fa-2")]}),  # 8
        b"[" * 100_000,                           # 9: nested too deep for the parser
    ]

    found, problems = alert_hints(batch, DEFAULT_ALERT_TITLES)

    assert found == ["fa-1", "fa-2"]
    assert problems == [
        "event 0: event is not valid JSON",
        "event 2: event has no 'records' list",
        "event 3: event has no 'records' list",
        "event 4: event is not valid JSON",
        f"event 5: event is larger than {MAX_EVENT_BYTES} bytes",
        "event 6: event has no 'records' list",
        "event 7: event has no 'records' list",
        "event 9: event is not valid JSON",
    ]


def test_an_event_just_under_the_size_limit_is_read() -> None:
    body = json.dumps({"records": [info("fa-1")], "padding": ""})
    body = body.replace('"padding": ""', '"padding": "' + "x" * (
        MAX_EVENT_BYTES - len(body)) + '"')
    assert len(body.encode()) == MAX_EVENT_BYTES

    assert hints(body) == (["fa-1"], [])


def test_configured_titles_decide_what_an_alert_info_hints() -> None:
    batch = [event(info("fa-1", "Custom outbound spam policy"), info("fa-2"))]

    assert alert_hints(batch, (" custom OUTBOUND spam policy",)) == (["fa-1"], [])


# -- limits: counted before de-duplication, de-duplicated in linear time ----------------------


def test_a_batch_of_many_repeated_ids_keeps_each_once_in_order_up_to_the_limit() -> None:
    # 200,000 hinted records naming 100,000 ids twice each: as a list scan per record this
    # takes minutes; bench/alert_flood.py prints the time it takes.
    distinct = MAX_BATCH_HINTS // 2
    ids = [f"fa{n:030x}" for n in range(distinct)]
    batch = [event(*(info(alert_id) for alert_id in ids[start:start + 1_600]))
             for start in range(0, distinct, 1_600)] * 2
    assert max(map(len, batch)) < MAX_EVENT_BYTES

    found, problems = alert_hints(batch, DEFAULT_ALERT_TITLES)

    assert found == ids[:MAX_BATCH_ALERTS]
    assert problems == [f"batch: {distinct} alert ids hinted; only the first "
                        f"{MAX_BATCH_ALERTS} are read from Graph (the alert poll finds the "
                        "others)"]


def test_hinted_records_past_the_limit_are_not_read_and_that_is_reported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("remediation.domain.streaming.MAX_BATCH_HINTS", 5)
    batch = [event(info("fa-1"), info("fa-1"), evidence("fa-2")),
             event(info("fa-3"), device_event(), info("fa-1"), info("fa-4"), info("fa-5")),
             event(info("fa-6")), b"not json"]

    found, problems = hints(*batch)

    assert found == ["fa-1", "fa-2", "fa-3"]
    assert problems == ["batch: more than 5 hinted records; the rest of event 1 and the "
                        "events after it were not read (the alert poll finds their alerts)"]
