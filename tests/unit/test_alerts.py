"""Defender alerts (alerts_v2 JSON): whose account it is, and whether it means outbound spam."""

from __future__ import annotations

from typing import Any

import pytest

from remediation.domain.alerts import (
    DEFAULT_ALERT_TITLES,
    Alert,
    SenderEvidence,
    alert_request_id,
    find_sender,
    is_outbound_spam,
    parse_alert,
    request_for_alert,
    sender_evidence,
)
from remediation.domain.errors import InvalidRequest
from tests.fakes import START, alert_json, mailbox_evidence, user_evidence

ROB = "rob@contoso.com"
ROB_UPN = "rob.smith@contoso.onmicrosoft.com"
ROB_ID = "3f2a1b4c-0000-4000-8000-00000000abcd"

DEVICE = {"@odata.type": "#microsoft.graph.security.deviceEvidence",
          "deviceDnsName": "laptop-17.contoso.com", "osPlatform": "Windows11"}
FILE = {"@odata.type": "#microsoft.graph.security.fileEvidence",
        "fileDetails": {"fileName": "invoice.exe", "filePublisher": "evil@example.com"}}
PROCESS = {"@odata.type": "#microsoft.graph.security.processEvidence",
           "processCommandLine": "curl mallory@example.com", "userAccount": {
               "userPrincipalName": "mallory@example.com", "azureAdUserId": ROB_ID}}
MESSAGE = {"@odata.type": "#microsoft.graph.security.analyzedMessageEvidence",
           "p1Sender": {"emailAddress": "spoofed@example.com"},
           "recipientEmailAddress": "victim@example.com"}


def alert(title: str = DEFAULT_ALERT_TITLES[0], source: str = "microsoftDefenderForOffice365",
          sender: str | None = ROB, alert_id: str = "fa-1") -> Alert:
    return Alert(id=alert_id, title=title, status="new", service_source=source, sender=sender)


# -- find_sender ----------------------------------------------------------------------------


@pytest.mark.parametrize(("evidence", "expected"), [
    # Every field of one account filled (the object id ties the two items together): the
    # mailbox's primary address wins, wherever the mailbox is listed.
    ([user_evidence("user-upn@contoso.com", ROB_ID),
      mailbox_evidence(ROB, upn="mailbox-upn@contoso.com", object_id=ROB_ID)], ROB),
    # Without a primary address: the mailbox UPN, before the user evidence.
    ([user_evidence("user-upn@contoso.com", ROB_ID),
      mailbox_evidence(None, upn="mailbox-upn@contoso.com", object_id=ROB_ID)],
     "mailbox-upn@contoso.com"),
    # One item's fields are one account, however different they look.
    ([mailbox_evidence(ROB, upn=ROB_UPN, account_upn="a.third@contoso.com",
                       object_id=ROB_ID)], ROB),
    # Without a mailbox: the user evidence's UPN, before any object id.
    ([user_evidence(ROB_UPN, ROB_ID)], ROB_UPN),
    # Only an object id left.
    ([user_evidence(None, ROB_ID)], ROB_ID),
    ([mailbox_evidence(None, object_id=ROB_ID)], ROB_ID),
])
def test_the_sender_comes_from_the_most_reliable_filled_field(
        evidence: list[dict[str, Any]], expected: str) -> None:
    assert find_sender(evidence) == expected


@pytest.mark.parametrize("empty", ["", "   ", None])
def test_empty_and_null_fields_are_skipped_like_real_alerts_have_them(empty: str | None) -> None:
    # The shape seen in the wild: user fields empty or null, the address only on the mailbox.
    evidence = [user_evidence(empty, empty), mailbox_evidence(ROB, upn=empty)]
    assert find_sender(evidence) == ROB

    # And the other way round: an empty mailbox, the address on the user evidence.
    evidence = [mailbox_evidence(empty, upn=empty), user_evidence(ROB, empty)]
    assert find_sender(evidence) == ROB


def test_an_invalid_address_is_skipped_for_the_next_field() -> None:
    evidence = [mailbox_evidence("Rob Smith <rob@contoso.com>", upn="not an address"),
                user_evidence("rob@", "not-a-guid"), user_evidence(None, ROB_ID)]
    assert find_sender(evidence) == ROB_ID


def test_the_sender_is_normalised() -> None:
    assert find_sender([mailbox_evidence("  Rob@Contoso.COM ")]) == ROB
    assert find_sender([user_evidence(None, ROB_ID.upper())]) == ROB_ID


@pytest.mark.parametrize("unrelated", [DEVICE, FILE, PROCESS, MESSAGE])
def test_unrelated_evidence_is_ignored(unrelated: dict[str, Any]) -> None:
    assert find_sender([unrelated]) is None
    assert find_sender([unrelated, mailbox_evidence(ROB), unrelated]) == ROB


@pytest.mark.parametrize("evidence", [
    None, {}, "rob@contoso.com", {"primaryAddress": ROB}, 42,
    [None, "rob@contoso.com", 7, ["rob@contoso.com"]],
    [{"primaryAddress": ROB}],  # no @odata.type: nothing says it is a mailbox
    [{"@odata.type": "#microsoft.graph.security.userEvidence", "userAccount": ROB}],
])
def test_evidence_of_the_wrong_shape_names_nobody(evidence: object) -> None:
    assert find_sender(evidence) is None


def test_an_address_outside_the_evidence_list_is_not_picked_up() -> None:
    evidence = [DEVICE, mailbox_evidence(None), user_evidence(None)]
    assert find_sender(evidence) is None


# -- evidence naming several accounts -------------------------------------------------------

EVE = "eve@contoso.com"
EVE_ID = "7c1d2e3f-0000-4000-8000-00000000e7e0"


def unmarked(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "roles": []}


def marked(item: dict[str, Any], role: str = "compromised") -> dict[str, Any]:
    return {**item, "roles": ["contextual", role]}


@pytest.mark.parametrize(("evidence", "candidates"), [
    ([mailbox_evidence(ROB), mailbox_evidence(EVE)], (ROB, EVE)),
    ([mailbox_evidence(EVE), DEVICE, mailbox_evidence("  Rob@Contoso.com ")], (EVE, ROB)),
    ([unmarked(user_evidence(ROB_UPN)), mailbox_evidence(EVE)], (ROB_UPN, EVE)),
    # Both marked: the marks decide nothing.
    ([marked(mailbox_evidence(ROB)), marked(user_evidence(EVE))], (ROB, EVE)),
    # An address and an object id in different items: one person or two, only the directory
    # could tell. Nobody is guessed.
    ([mailbox_evidence(ROB), unmarked(user_evidence(None, EVE_ID))], (ROB, EVE_ID)),
    ([mailbox_evidence(ROB), mailbox_evidence(None, upn=EVE),
      unmarked(user_evidence("", ROB_ID))], (ROB, EVE, ROB_ID)),
])
def test_evidence_naming_several_accounts_names_no_sender_but_the_candidates(
        evidence: list[dict[str, Any]], candidates: tuple[str, ...]) -> None:
    assert sender_evidence(evidence) == SenderEvidence(None, candidates)
    assert find_sender(evidence) is None

    alert_ = parse_alert(alert_json("fa-two", evidence))

    assert (alert_.sender, alert_.candidates, alert_.ambiguous) == (None, candidates, True)
    with pytest.raises(InvalidRequest, match=f"names {len(candidates)} accounts and marks "
                                             "none of them alone as compromised"):
        request_for_alert(alert_)


@pytest.mark.parametrize(("evidence", "sender"), [
    # Exactly one account marked as the compromised (or, as the stream says, impacted) one.
    ([mailbox_evidence(ROB), user_evidence(EVE)], EVE),                  # user evidence marked
    ([marked(mailbox_evidence(EVE)), mailbox_evidence(ROB)], EVE),
    ([mailbox_evidence(ROB), marked(mailbox_evidence(EVE), "Impacted")], EVE),
    ([mailbox_evidence(ROB), marked(mailbox_evidence(EVE), " COMPROMISED ")], EVE),
    ([mailbox_evidence(EVE), user_evidence(None, ROB_ID)], ROB_ID),
    # One account named several ways is one account, whatever the marks say.
    ([mailbox_evidence(ROB), mailbox_evidence("ROB@contoso.com ")], ROB),
    ([mailbox_evidence(ROB), unmarked(user_evidence("Rob@Contoso.com", ROB_ID))], ROB),
    ([mailbox_evidence(ROB, object_id=ROB_ID), unmarked(user_evidence(ROB_UPN, ROB_ID))], ROB),
    # Joined through a third item: the mailbox's UPN is the user evidence's.
    ([unmarked(user_evidence(None, ROB_ID)), mailbox_evidence(ROB, upn=ROB_UPN),
      unmarked(user_evidence(ROB_UPN, ROB_ID))], ROB),
    # Roles on evidence that names nobody, or on evidence of other kinds, mark nobody.
    ([mailbox_evidence(ROB), user_evidence("", None), marked(DEVICE)], ROB),
    # Other people in unrelated evidence are no candidates.
    ([mailbox_evidence(ROB), PROCESS, MESSAGE, FILE], ROB),
])
def test_one_account_or_exactly_one_marked_account_is_the_sender(
        evidence: list[dict[str, Any]], sender: str) -> None:
    assert sender_evidence(evidence) == SenderEvidence(sender)
    assert parse_alert(alert_json("fa-one", evidence)).candidates == ()


@pytest.mark.parametrize("roles", [None, "compromised", {"compromised": True}, [None, 7],
                                   ["compromisedAccount"], ["attacker"], ["suspicious"]])
def test_roles_that_do_not_say_compromised_or_impacted_mark_nobody(roles: object) -> None:
    evidence = [mailbox_evidence(ROB), {**mailbox_evidence(EVE), "roles": roles}]
    assert find_sender(evidence) is None


# -- is_outbound_spam -----------------------------------------------------------------------


@pytest.mark.parametrize("title", DEFAULT_ALERT_TITLES)
@pytest.mark.parametrize("spelling", [str, str.upper, str.lower, str.title,
                                      lambda t: f"  {t}  ", lambda t: f"\t{t.upper()} "])
def test_each_default_title_matches_in_any_case_and_with_surrounding_spaces(
        title: str, spelling: Any) -> None:
    assert is_outbound_spam(alert(spelling(title)), DEFAULT_ALERT_TITLES)


def test_the_configured_titles_are_matched_loosely_too() -> None:
    configured = ("  USER RESTRICTED FROM SENDING EMAIL ",)
    assert is_outbound_spam(alert("User restricted from sending email"), configured)
    assert not is_outbound_spam(alert("Email sending limit exceeded"), configured)


@pytest.mark.parametrize("source", ["microsoftDefenderForEndpoint", "microsoftDefenderForCloud",
                                    "microsoftDefenderForIdentity", "Microsoft Defender for "
                                    "Office 365", "", "microsoftDefenderForOffice365Plus"])
def test_other_service_sources_are_refused(source: str) -> None:
    assert not is_outbound_spam(alert(source=source), DEFAULT_ALERT_TITLES)


def test_the_service_source_is_matched_in_any_letter_case() -> None:
    assert is_outbound_spam(alert(source="MicrosoftDefenderForOffice365"), DEFAULT_ALERT_TITLES)


@pytest.mark.parametrize("title", [
    "Email messages containing malicious URL removed after delivery",
    "User restricted from sending email (custom)",
    "User restricted from sending",
    "Suspicious email sending patterns",
    "",
])
def test_other_titles_are_refused(title: str) -> None:
    assert not is_outbound_spam(alert(title), DEFAULT_ALERT_TITLES)


def test_no_configured_titles_match_nothing() -> None:
    assert not is_outbound_spam(alert(), ())


# -- ids and requests -----------------------------------------------------------------------


def test_the_request_id_of_an_alert_is_deterministic_and_distinct() -> None:
    ids = ["fa-1", "fa-2", "FA-1", "da637551227677560813_-961444813", "x" * 200]
    request_ids = [alert_request_id(alert_id) for alert_id in ids]

    assert request_ids == [alert_request_id(alert_id) for alert_id in ids]
    assert len(set(request_ids)) == len(ids)
    for request_id in request_ids:
        assert request_id.startswith("alert-")
        assert len(request_id) <= 200
        assert "fa-1" not in request_id  # a fixed-length digest, not the raw id
    assert alert("x", alert_id="fa-1").request_id == alert_request_id("fa-1")


def test_parse_alert_reads_the_fields_the_intake_needs() -> None:
    raw = alert_json("fa-7", [user_evidence("", None), mailbox_evidence("Rob@Contoso.com")],
                     title="Suspicious email sending patterns detected", status="inProgress")

    parsed = parse_alert(raw)

    assert parsed == Alert(id="fa-7", title="Suspicious email sending patterns detected",
                           status="inProgress", service_source="microsoftDefenderForOffice365",
                           sender=ROB, created=START)


def test_parse_alert_tolerates_missing_and_null_fields() -> None:
    parsed = parse_alert({"id": "fa-8", "title": None, "status": None, "serviceSource": 3,
                          "evidence": None})

    assert parsed == Alert(id="fa-8", title="", status="", service_source="", sender=None)
    assert not is_outbound_spam(parsed, DEFAULT_ALERT_TITLES)


@pytest.mark.parametrize("alert_id", [None, "", 42, ["fa-1"], "x" * 201])
def test_parse_alert_refuses_an_alert_without_a_usable_id(alert_id: object) -> None:
    raw = alert_json("placeholder", [mailbox_evidence(ROB)])
    raw["id"] = alert_id

    with pytest.raises(InvalidRequest, match="alert has no usable id"):
        parse_alert(raw)


def test_parse_alert_refuses_an_alert_with_no_id_field() -> None:
    raw = alert_json("placeholder", [mailbox_evidence(ROB)])
    del raw["id"]

    with pytest.raises(InvalidRequest, match="alert has no usable id: None"):
        parse_alert(raw)


def test_an_id_of_exactly_200_characters_is_accepted() -> None:
    assert parse_alert(alert_json("a" * 200)).id == "a" * 200


def test_the_request_for_an_alert_names_the_sender_the_alert_and_its_request_id() -> None:
    parsed = parse_alert(alert_json("fa-9", [mailbox_evidence(ROB)],
                                    title="Email sending limit exceeded"))

    request = request_for_alert(parsed)

    assert request.user == ROB
    assert request.source == "alert"
    assert request.alert_ids == ("fa-9",)
    assert request.request_id == alert_request_id("fa-9")
    assert request.reason == "Defender alert: Email sending limit exceeded"
    assert request.force is False
    assert request.requested_by is None
    assert request.evidence_at == START  # the alert's createdDateTime


@pytest.mark.parametrize("created", [None, "", "yesterday", "0001-01-01T00:00:00Z", 17,
                                     "2024-05-01T09:00:00"])
def test_an_alert_creation_time_that_cannot_be_read_is_unknown(created: object) -> None:
    raw = {**alert_json("fa-11", [mailbox_evidence(ROB)]), "createdDateTime": created}

    assert parse_alert(raw).created is None
    assert request_for_alert(parse_alert(raw)).evidence_at is None


def test_the_request_reason_is_capped_at_the_queue_limit() -> None:
    request = request_for_alert(alert("T" * 5000))

    assert request.reason is not None
    assert len(request.reason) == 1000
    assert request.reason.startswith("Defender alert: TTT")


def test_an_alert_without_a_sender_makes_no_request() -> None:
    parsed = parse_alert(alert_json("fa-10", [DEVICE, user_evidence("", None)]))

    with pytest.raises(InvalidRequest, match="alert fa-10 names no usable sender address"):
        request_for_alert(parsed)
