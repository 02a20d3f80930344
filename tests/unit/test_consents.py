"""App consents judged without I/O: which grant the attacker gave, what is only reported, what
is the owner's; how a "Consent to application" record reads; what the sandbox's audit log
refuses."""

from datetime import UTC, datetime, timedelta

import pytest

from remediation.adapters.graph_consents import app_from_json, consents_clause, consents_in
from remediation.domain.consents import (
    App,
    Consent,
    Grant,
    judge,
    mail_scopes,
    regrant_body,
)
from remediation.domain.leftovers import Disposition, compromise_window
from remediation.sandbox.audit_log import AuditLog, consent_record

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
WINDOW = compromise_window([("block", NOW - timedelta(hours=1))], timedelta(days=7), NOW)
USER, CLIENT, GRAPH = "u-1", "c-1", "r-1"
UNVERIFIED = App(CLIENT, "Mail Reader Pro", "app-1", "MRP")
VERIFIED = App(CLIENT, "Contoso Mail", "app-2", "Contoso", verified_publisher="Contoso Ltd")
RESOURCE = App(GRAPH, "Microsoft Graph", "00000003-0000-0000-c000-000000000000")


def grant(scope: str, consent_type: str = "Principal") -> Grant:
    principal = USER if consent_type == "Principal" else None
    return Grant("g-1", CLIENT, consent_type, principal, GRAPH, scope)


def consent_at(at: datetime, tenant_wide: bool | None = False) -> Consent:
    return Consent(at, CLIENT, tenant_wide)


def test_mail_permissions_are_found_in_any_case_and_with_a_leading_space() -> None:
    scopes = grant(" mail.read  User.Read offline_access IMAP.AccessAsUser.All").scopes
    assert scopes == ("mail.read", "User.Read", "offline_access", "IMAP.AccessAsUser.All")
    assert mail_scopes(scopes) == ("mail.read", "IMAP.AccessAsUser.All")
    assert mail_scopes(("Mail.ReadBasic", "MailboxSettings.Read", "offline_access")) == ()


@pytest.mark.parametrize(("mode", "disposition"), [("remove", Disposition.REMOVE),
                                                   ("report", Disposition.REPORT)])
def test_a_consent_inside_the_window_is_removed_whoever_published_the_app(
        mode: str, disposition: Disposition) -> None:
    given = consent_at(NOW - timedelta(hours=5))
    found = judge(grant(" User.Read"), VERIFIED, RESOURCE, [given], WINDOW, mode)

    assert found is not None and found.disposition is disposition
    assert found.added == given.at and found.added_from == "audit log"
    assert "inside the compromise window" in found.why
    assert (found.undo != "") is (disposition is Disposition.REMOVE)


def test_an_older_mail_grant_is_reported_only_when_its_publisher_is_not_verified() -> None:
    older = [consent_at(NOW - timedelta(days=8))]  # before the window opened
    mail = grant(" Mail.Read offline_access")

    reported = judge(mail, UNVERIFIED, RESOURCE, older, WINDOW, "remove")
    kept = judge(mail, VERIFIED, RESOURCE, older, WINDOW, "remove")
    plain = judge(grant(" User.Read"), UNVERIFIED, RESOURCE, [], WINDOW, "remove")

    assert reported is not None and reported.disposition is Disposition.REPORT
    assert "Mail.Read" in reported.why and "offline_access" in reported.why
    assert kept is not None and kept.disposition is Disposition.KEEP
    assert plain is not None and plain.disposition is Disposition.KEEP
    assert plain.added_from == "unknown"


def test_an_admin_consent_for_everyone_is_reported_or_left_out_never_removed() -> None:
    everyone = grant(" Mail.Read", "AllPrincipals")
    mine = consent_at(NOW - timedelta(hours=2), tenant_wide=True)

    by_this_account = judge(grant(" User.Read", "AllPrincipals"), VERIFIED, RESOURCE, [mine],
                            WINDOW, "remove")
    unverified_mail = judge(everyone, UNVERIFIED, RESOURCE, [], WINDOW, "remove")

    for found in (by_this_account, unverified_mail):
        assert found is not None and found.disposition is Disposition.REPORT
        assert "an administrator must decide" in found.why
    assert judge(everyone, VERIFIED, RESOURCE, [], WINDOW, "remove") is None
    # The account's own consent to the app does not make the admin's grant its own.
    assert judge(everyone, VERIFIED, RESOURCE, [consent_at(NOW - timedelta(hours=2))],
                 WINDOW, "remove") is None


def test_a_key_names_a_consent_given_after_the_trouble_started_only() -> None:
    before = judge(grant(" User.Read"), VERIFIED, RESOURCE,
                   [consent_at(NOW - timedelta(hours=5))], WINDOW, "remove")
    after = judge(grant(" User.Read"), VERIFIED, RESOURCE,
                  [consent_at(NOW - timedelta(minutes=10))], WINDOW, "remove")

    assert before is not None and before.key == "g-1"
    assert after is not None and after.key.startswith("g-1 consented 2024-05-01T11:50")


def test_the_snapshot_gives_the_grant_back_and_holds_no_token() -> None:
    found = judge(grant(" Mail.Read  offline_access"), UNVERIFIED, RESOURCE,
                  [consent_at(NOW - timedelta(hours=5))], WINDOW, "remove")

    assert found is not None
    assert regrant_body(found.snapshot) == {
        "clientId": CLIENT, "consentType": "Principal", "principalId": USER,
        "resourceId": GRAPH, "scope": "Mail.Read offline_access"}
    assert "about an hour" in found.snapshot["tokens"]
    assert "Mail Reader Pro (appId app-1) on Microsoft Graph" in found.name


def test_a_consent_record_reads_as_graph_writes_it() -> None:
    record = consent_record(user_id=USER, upn="kim@contoso.com", sp_id=CLIENT,
                            sp_name="Mail Reader Pro", app_id="app-1", at=NOW,
                            grant={"id": "g-new", "clientId": CLIENT, "principalId": USER,
                                   "resourceId": GRAPH, "consentType": "Principal",
                                   "scope": "Mail.Read"},
                            old_scope="User.Read")
    record["targetResources"][0]["modifiedProperties"][4]["newValue"] = (
        record["targetResources"][0]["modifiedProperties"][4]["newValue"].replace(
            "[[Id: g-new", "[[Id: g-old", 1))  # the grant before the change: not named

    [consent] = consents_in(record)

    assert (consent.at, consent.client_id, consent.tenant_wide) == (NOW, CLIENT, False)
    assert consent.grant_ids == frozenset({"g-new"})
    assert consents_in({**record, "result": "failure"}) == []
    assert consents_in({**record, "activityDateTime": "yesterday"}) == []


def test_an_unverified_publisher_has_null_fields() -> None:
    unverified = app_from_json("x", {"id": "x", "displayName": "A", "verifiedPublisher": {
        "displayName": None, "verifiedPublisherId": None, "addedDateTime": None}})
    verified = app_from_json("x", {"id": "x", "verifiedPublisher": {
        "displayName": "Contoso Ltd", "verifiedPublisherId": "1234567"}})
    assert unverified.verified_publisher is None
    assert verified.verified_publisher == "Contoso Ltd"


def test_the_sandbox_audit_log_takes_our_clause_and_refuses_what_graph_refuses() -> None:
    log = AuditLog()
    log.add(consent_record(user_id=USER, upn="kim@contoso.com", sp_id=CLIENT, sp_name="A",
                           app_id="app-1", at=NOW - timedelta(hours=2),
                           grant={"id": "g", "clientId": CLIENT, "principalId": USER,
                                  "resourceId": GRAPH, "consentType": "Principal",
                                  "scope": "Mail.Read"}))

    clause = consents_clause(USER, NOW - timedelta(days=7))
    assert clause.endswith("activityDateTime ge 2024-04-24T12:00:00Z")
    assert len(log.query(clause, NOW) or []) == 1
    assert log.query(clause.replace(USER, "someone-else"), NOW) == []
    assert log.query(clause, NOW + timedelta(days=31)) == []  # past the retention
    for refused in ("activityDateTime ge '2024-04-24T12:00:00Z'",  # a quoted time
                    "category eq 'ApplicationManagement'",
                    "activityDisplayName ne 'Consent to application'",
                    f"initiatedBy/user/id eq '{USER}' or activityDateTime ge 2024-01-01T00:00:00Z"):
        assert log.query(refused, NOW) is None, refused
