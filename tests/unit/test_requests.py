"""Request parsing, durations and temporary passwords: the strict edges of the domain."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime, timedelta

import pytest

from remediation.domain.durations import parse_delays, parse_duration
from remediation.domain.errors import InvalidRequest
from remediation.domain.passwords import MIN_LENGTH, generate_password
from remediation.domain.requests import (
    MAX_ALERT_IDS,
    MAX_BODY_BYTES,
    RemediationRequest,
    parse_request,
)

OBJECT_ID = "3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b"


def refused(body: bytes | str | dict[str, object]) -> str:
    """The reason parse_request gives for refusing ``body``."""
    with pytest.raises(InvalidRequest) as caught:
        parse_request(body)
    assert str(caught.value) == caught.value.reason
    return caught.value.reason


# -- accepted -------------------------------------------------------------------------------


def test_a_minimal_hand_written_request_is_accepted() -> None:
    request = parse_request(b'{"user": "rob@contoso.com"}')

    assert request == RemediationRequest(user="rob@contoso.com")
    assert request.source == "manual"
    assert request.force is False
    assert request.alert_ids == ()
    assert request.request_id is None


@pytest.mark.parametrize("raw", ["  Rob.Smith@Contoso.COM ", "ROB.SMITH@contoso.com\n",
                                 "\trob.smith@CONTOSO.com"])
def test_the_user_is_normalised(raw: str) -> None:
    assert parse_request(json.dumps({"user": raw})).user == "rob.smith@contoso.com"


def test_an_object_id_is_accepted_and_lower_cased() -> None:
    assert parse_request({"user": OBJECT_ID.upper()}).user == OBJECT_ID


def test_every_field_is_read() -> None:
    request = parse_request(json.dumps({
        "schema": 1, "user": "rob@contoso.com", "reason": "  phished on Monday ",
        "requested_by": "soc@contoso.com", "alert_ids": ["da1", "da2", "da1"], "force": True,
        "source": "manual", "request_id": "ticket:4711"}))

    assert request == RemediationRequest(
        user="rob@contoso.com", reason="phished on Monday", requested_by="soc@contoso.com",
        alert_ids=("da1", "da2"), force=True, source="manual", request_id="ticket:4711")


def test_a_single_alert_id_may_be_a_string() -> None:
    assert parse_request({"user": "rob@contoso.com", "alert_ids": "da1"}).alert_ids == ("da1",)


def test_a_body_of_exactly_the_limit_is_accepted() -> None:
    body = b'{"user": "rob@contoso.com"}'
    body += b" " * (MAX_BODY_BYTES - len(body))

    assert len(body) == MAX_BODY_BYTES
    assert parse_request(body).user == "rob@contoso.com"


@pytest.mark.parametrize("request_", [
    RemediationRequest(user="rob@contoso.com"),
    RemediationRequest(user=OBJECT_ID, reason="SOC ticket 4711: phished",
                       requested_by="alice@contoso.com", alert_ids=("da1", "da2"), force=True,
                       source="manual", request_id="ticket:4711"),
    RemediationRequest(user="rob@contoso.com", alert_ids=("da1",), source="alert",
                       request_id="alert:da1"),
    RemediationRequest(user="adele@contoso.com", source="restricted-list",
                       request_id="sweep:2024-05-01T09:00"),
])
def test_to_json_round_trips(request_: RemediationRequest) -> None:
    body = request_.to_json()

    assert parse_request(body) == request_
    assert parse_request(body.encode()) == request_
    assert json.loads(body)["schema"] == 1


# -- refused --------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "problem"), [
    ({"user": "rob"}, "'user' must be an email address or an object id, got 'rob'"),
    ({"user": "rob@contoso"}, "'user' must be an email address or an object id"),
    ({"user": "rob smith@contoso.com"}, "'user' must be an email address or an object id"),
    ({"user": "3f2a1b4c-5d6e-4f70-8a9b"}, "'user' must be an email address or an object id"),
    ({"user": "   "}, "'user' is empty"),
    ({"user": 42}, "'user' must be a string"),
    ({"user": ["rob@contoso.com"]}, "'user' must be a string"),
    ({"user": None}, "'user' must be a string"),
    ({}, "'user' is required"),
    ({"reason": "spam"}, "'user' is required"),
    ({"user": "rob@contoso.com", "password": "hunter2"}, "unknown field(s): 'password'"),
    ({"user": "rob@contoso.com", "User": "x", "zz": 1}, "unknown field(s): 'User', 'zz'"),
    ({"user": "rob@contoso.com", "force": "true"}, "'force' must be true or false"),
    ({"user": "rob@contoso.com", "force": 1}, "'force' must be true or false"),
    ({"user": "rob@contoso.com", "force": True, "source": "alert"},
     "'force' is accepted only on manual requests (source 'manual'), not on a request with "
     "source 'alert'"),
    ({"user": "rob@contoso.com", "force": True, "source": "restricted-list"},
     "'force' is accepted only on manual requests"),
    ({"user": "rob@contoso.com", "alert_ids": 7}, "'alert_ids' must be a list of strings"),
    ({"user": "rob@contoso.com", "alert_ids": {"id": "da1"}},
     "'alert_ids' must be a list of strings"),
    ({"user": "rob@contoso.com", "alert_ids": ["da1", 2]},
     "'alert_ids' entry 2 is not a valid alert id"),
    ({"user": "rob@contoso.com", "alert_ids": ["da 1"]},
     "'alert_ids' entry 'da 1' is not a valid alert id"),
    ({"user": "rob@contoso.com", "alert_ids": [f"da{i}" for i in range(MAX_ALERT_IDS + 1)]},
     f"'alert_ids' has more than {MAX_ALERT_IDS} entries"),
    ({"user": "rob@contoso.com", "reason": 5}, "'reason' must be a string"),
    ({"user": "rob@contoso.com", "reason": ["spam"]}, "'reason' must be a string"),
    ({"user": "rob@contoso.com", "reason": "x" * 1001}, "'reason' is longer than 1000"),
    ({"user": "rob@contoso.com", "requested_by": "a" * 257},
     "'requested_by' is longer than 256"),
    ({"user": "rob@contoso.com", "source": "email"},
     "'source' must be one of manual, alert, restricted-list, shared-mailbox, got 'email'"),
    ({"user": "rob@contoso.com", "source": None}, "'source' must be one of"),
    ({"user": "rob@contoso.com", "schema": 2}, "unsupported schema 2"),
    ({"user": "rob@contoso.com", "schema": True}, "unsupported schema True"),
    ({"user": "rob@contoso.com", "request_id": "has space"}, "'request_id' must be"),
    ({"user": "rob@contoso.com", "request_id": 12}, "'request_id' must be"),
])
def test_invalid_fields_are_refused_with_the_problem_named(
        body: dict[str, object], problem: str) -> None:
    assert problem in refused(json.dumps(body))


@pytest.mark.parametrize(("field", "value"), [
    ("reason", "line one\nforged log line"),
    ("reason", "bell\x07"),
    ("reason", "esc\x1b[31mred"),
    ("requested_by", "nul\x00byte"),
    ("requested_by", "del\x7f"),
])
def test_control_characters_are_refused(field: str, value: str) -> None:
    assert refused({"user": "rob@contoso.com", field: value}) == (
        f"'{field}' contains control characters")


@pytest.mark.parametrize("value", ["ok\x85forged line", "ok\x9b31mred"])
def test_c1_control_characters_are_refused(value: str) -> None:
    assert refused({"user": "rob@contoso.com", "reason": value}) == (
        "'reason' contains control characters")


def test_an_oversized_body_is_refused_before_parsing() -> None:
    body = b'{"user": "rob@contoso.com"}'
    body += b" " * (MAX_BODY_BYTES + 1 - len(body))

    assert refused(body) == f"body is {MAX_BODY_BYTES + 1} bytes; the limit is {MAX_BODY_BYTES}"


def test_an_oversized_text_body_is_measured_in_bytes() -> None:
    body = json.dumps({"user": "rob@contoso.com", "reason": "é" * 600}, ensure_ascii=False)
    body += " " * (MAX_BODY_BYTES - 10 - len(body))

    assert len(body) < MAX_BODY_BYTES < len(body.encode())  # fewer characters, more bytes
    assert refused(body) == (f"body is {len(body.encode())} bytes; "
                             f"the limit is {MAX_BODY_BYTES}")


@pytest.mark.parametrize("body", [b"", b"rob@contoso.com", b'{"user": "rob@contoso.com"',
                                  b"\xff\xfe\x00garbage", b"[" * 5000 + b"]" * 5000])
def test_a_body_that_is_not_json_is_refused(body: bytes) -> None:
    assert refused(body).startswith("body is not valid JSON")


@pytest.mark.parametrize(("body", "kind"), [(b'["rob@contoso.com"]', "list"),
                                            (b'"rob@contoso.com"', "str"), (b"42", "int"),
                                            (b"null", "NoneType")])
def test_a_body_that_is_not_an_object_is_refused(body: bytes, kind: str) -> None:
    assert refused(body) == f"body must be a JSON object, got {kind}"


def test_untrusted_input_is_shortened_in_messages() -> None:
    reason = refused({"user": "x" * 500})

    assert len(reason) < 150
    assert reason.endswith("...")


# -- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)), ("1h", timedelta(hours=1)),
    ("24h", timedelta(hours=24)), ("1d", timedelta(days=1)), (" 2H ", timedelta(hours=2)),
    ("1.5h", timedelta(minutes=90)), ("0.5s", timedelta(milliseconds=500)),
    ("5 m", timedelta(minutes=5)),
])
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "h", "1", "60", "1w", "-1h", "1 hour", "1h30m", "h1",
                                  "1,5h", "1e3s"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration") as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)


def test_parse_delays() -> None:
    assert parse_delays("1h,4h,24h") == (timedelta(hours=1), timedelta(hours=4),
                                         timedelta(hours=24))
    assert parse_delays(" 5s , 30s,2m ") == (timedelta(seconds=5), timedelta(seconds=30),
                                            timedelta(minutes=2))
    assert parse_delays("1h,") == (timedelta(hours=1),)


@pytest.mark.parametrize(("text", "problem"), [
    ("", "at least one delay"), (" , ", "at least one delay"),
    ("0s", "delays must be positive"), ("1h,0m", "delays must be positive"),
    ("4h,1h", "delays must increase"), ("1h,1h", "delays must increase"),
    ("1h,60m", "delays must increase"), ("1h,soon", "not a duration"),
])
def test_parse_delays_refuses(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_delays(text)


# -- passwords ------------------------------------------------------------------------------

SYMBOLS = set(string.punctuation) - set("\"'\\`")


def test_generated_passwords_are_long_and_use_all_four_classes() -> None:
    samples = [generate_password() for _ in range(500)]
    samples += [generate_password(MIN_LENGTH) for _ in range(500)]

    for password in samples:
        assert len(password) >= 16
        assert any(c in string.ascii_lowercase for c in password), password
        assert any(c in string.ascii_uppercase for c in password), password
        assert any(c in string.digits for c in password), password
        assert any(c in SYMBOLS for c in password), password
        assert not set(password) & set("\"'\\ \t\n"), password
    assert {len(p) for p in samples} == {24, MIN_LENGTH}


@pytest.mark.parametrize(("written", "meant"), [
    ("2024-05-01T09:00:00Z", datetime(2024, 5, 1, 9, 0, tzinfo=UTC)),
    ("2024-05-01T09:00:00.1234567Z", datetime(2024, 5, 1, 9, 0, 0, 123456, tzinfo=UTC)),
    ("2024-05-01T11:00:00+02:00", datetime(2024, 5, 1, 9, 0, tzinfo=UTC)),
])
def test_the_evidence_time_is_read_as_graph_writes_it(written: str, meant: datetime) -> None:
    request = parse_request({"user": "rob@contoso.com", "evidence_at": written})

    assert request.evidence_at == meant
    assert parse_request(request.to_json()) == request


@pytest.mark.parametrize("written", [
    "", "yesterday", "2024-05-01", "2024-05-01T09:00:00", "2024-05-01T09:00:00Z ",
    "0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "2024-02-30T09:00:00Z", 1714554000, True])
def test_an_evidence_time_that_is_not_one_is_refused(written: object) -> None:
    with pytest.raises(InvalidRequest, match="'evidence_at' must be an ISO 8601 time"):
        parse_request({"user": "rob@contoso.com", "evidence_at": written})


def test_generate_password_honours_the_requested_length() -> None:
    assert len(generate_password(64)) == 64


@pytest.mark.parametrize("length", [0, 8, MIN_LENGTH - 1])
def test_generate_password_refuses_short_lengths(length: int) -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        generate_password(length)


def test_generated_passwords_do_not_repeat() -> None:
    assert len({generate_password() for _ in range(1000)}) == 1000
