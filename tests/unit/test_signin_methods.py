"""Judging sign-in methods: what counts as the attacker's, what is kept, what nobody can
date, what a snapshot keeps (never a secret), and keys that tell a phone registered again."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from remediation.domain.leftovers import CompromiseWindow, Disposition, Leftover
from remediation.domain.signin_methods import (
    Registration,
    judge,
    method_from_json,
    registration_from_json,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
WINDOW = CompromiseWindow(NOW, NOW - timedelta(days=7))
MOBILE, ALTERNATE = "3179e48a-750b-4051-897c-87b9720928f7", "b6332ec1-7057-4abe-9331-3d72feddfe41"


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def phone(number: str, kind: str = "mobile") -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.phoneAuthenticationMethod",
            "id": MOBILE if kind == "mobile" else ALTERNATE, "phoneNumber": number,
            "phoneType": kind, "smsSignInState": "notEnabled"}


def app(device: str, created: datetime | None) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
            "id": f"app-{device}", "displayName": device,
            "createdDateTime": stamp(created) if created else None}


def judged(items: list[dict[str, Any]], records: Sequence[Registration] = (),
           remove: bool = True) -> dict[str, Leftover]:
    methods = [m for item in items if (m := method_from_json(item)) is not None]
    return {leftover.name: leftover for leftover in judge(methods, records, WINDOW,
                                                          remove=remove)}


def test_created_inside_the_window_is_removed_older_kept_the_password_never() -> None:
    found = judged([
        {"@odata.type": "#microsoft.graph.passwordAuthenticationMethod",
         "id": "28c10230-6103-485e-b985-444c60001490", "password": None,
         "createdDateTime": stamp(NOW)},  # just reset: inside the window
        app("attacker", NOW - timedelta(hours=2)), app("own", NOW - timedelta(days=60))])

    assert found["password"].disposition is Disposition.KEEP
    assert found["Microsoft Authenticator on attacker"].disposition is Disposition.REMOVE
    assert found["Microsoft Authenticator on own"].disposition is Disposition.KEEP
    assert "re-register the Authenticator app on attacker" in (
        found["Microsoft Authenticator on attacker"].undo)


def test_report_mode_reports_what_it_would_remove() -> None:
    found = judged([app("attacker", NOW - timedelta(hours=2))], remove=False)

    leftover = found["Microsoft Authenticator on attacker"]
    assert leftover.disposition is Disposition.REPORT
    assert "SIGNIN_CLEANUP=report" in leftover.why


def test_a_phone_is_dated_by_the_latest_record_that_names_its_type() -> None:
    records = [Registration(NOW - timedelta(days=20), "User registered Mobile Phone SMS"),
               Registration(NOW - timedelta(hours=3), "User registered Alternate Mobile Phone")]
    found = judged([phone("+1 425 555 0100"), phone("+44 7700 900123", "alternateMobile")],
                   records)

    own, attacker = found["phone +• ••• ••• ••00 (mobile)"], found[
        "phone +•• •••• ••••23 (alternateMobile)"]
    assert (own.disposition, own.added_from) == (Disposition.KEEP, "audit log")
    assert (attacker.disposition, attacker.added_from) == (Disposition.REMOVE, "audit log")
    # Deletable in this order: the alternate number first, the mobile one last.
    methods = [m for i in (phone("+1 425 555 0100"), phone("+44 7700 900123", "alternateMobile"))
               if (m := method_from_json(i)) is not None]
    order = [leftover.snapshot["phone_type"] for leftover in judge(methods, records, WINDOW,
                                                                    remove=True)]
    assert order == ["alternateMobile", "mobile"]


def test_a_record_that_does_not_say_which_phone_is_reported_not_acted_on() -> None:
    records = [Registration(NOW - timedelta(hours=3), "Admin registered phone method for user")]
    found = judged([phone("+1 425 555 0100"), phone("+44 7700 900123", "alternateMobile")],
                   records)

    assert {leftover.disposition for leftover in found.values()} == {Disposition.REPORT}
    assert all("does not say which" in leftover.why for leftover in found.values())
    # One phone alone: the same record can only mean it.
    [alone] = judged([phone("+44 7700 900123")], records).values()
    assert alone.disposition is Disposition.REMOVE


def test_a_method_nobody_can_date_is_reported_with_the_audit_logs_retention() -> None:
    found = judged([phone("+1 425 555 0100"),
                    {"@odata.type": "#microsoft.graph.softwareOathAuthenticationMethod",
                     "id": "oath-1", "secretKey": None},
                    app("placeholder", datetime(1, 1, 1, tzinfo=UTC))])

    for leftover in found.values():
        assert leftover.disposition is Disposition.REPORT, leftover.name
        assert leftover.added_from == "unknown"
        assert "7 days on Entra ID Free, 30 on P1/P2" in leftover.why


def test_a_snapshot_keeps_what_a_person_needs_and_never_a_secret() -> None:
    secret_items = [
        {"@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
         "id": "tap-1", "createdDateTime": stamp(NOW), "temporaryAccessPass": "Tp7#kQ2xyz",
         "lifetimeInMinutes": 60, "isUsableOnce": True, "startDateTime": None},
        {"@odata.type": "#microsoft.graph.fido2AuthenticationMethod", "id": "key-1",
         "createdDateTime": stamp(NOW), "displayName": "YubiKey 5", "model": "NFC",
         "attestationCertificates": ["dbe793efdf1945e2df25d93653a1e8a3268a9075"],
         "publicKeyCredential": {"id": "cred", "response": {"attestationObject": "o3Nm"}}},
        {**phone("+1 425 555 0100"), "createdDateTime": stamp(NOW)}]
    found = judged(secret_items)

    text = repr([leftover.to_dict() for leftover in found.values()])
    for secret in ("Tp7#kQ2xyz", "dbe793ef", "o3Nm", "425 555 0100", "4255550100"):
        assert secret not in text
    key = found["security key YubiKey 5 (NFC)"].snapshot
    assert (key["name"], key["model"], key["type"]) == (
        "YubiKey 5", "NFC", "fido2AuthenticationMethod")
    assert found["phone +• ••• ••• ••00 (mobile)"].snapshot["phone_number"] == "+• ••• ••• ••00"
    assert "cannot be restored" in found["Temporary Access Pass"].undo


def test_a_phone_registered_again_under_its_fixed_id_gets_a_new_key() -> None:
    first = [Registration(NOW - timedelta(hours=3), "User registered Mobile Phone SMS")]
    again = [*first, Registration(NOW + timedelta(hours=1), "User registered Mobile Phone SMS")]

    [before] = judged([phone("+44 7700 900123")], first).values()
    [after] = judged([phone("+44 7700 900123")], again).values()

    assert before.snapshot["id"] == after.snapshot["id"] == MOBILE
    assert before.key != after.key
    # An older phone's key is its id alone: the audit record ageing out changes nothing.
    [kept] = judged([phone("+1 425 555 0100")],
                    [Registration(NOW - timedelta(days=20), "User registered Mobile Phone SMS")]
                    ).values()
    assert kept.key == MOBILE


def test_only_successful_registrations_count() -> None:
    base = {"activityDisplayName": "User registered security info", "result": "success",
            "resultReason": "User registered Mobile Phone SMS",
            "activityDateTime": "2024-05-01T09:00:00.1234567Z"}

    assert registration_from_json(base) == Registration(
        datetime(2024, 5, 1, 9, 0, 0, 123456, tzinfo=UTC), "User registered Mobile Phone SMS")
    assert registration_from_json({**base, "result": "failure"}) is None
    assert registration_from_json({**base, "activityDisplayName": "User deleted security info"}
                                  ) is None
