"""Who else holds a right on a mailbox, dated by the unified audit log (pure functions, on
records shaped like the public exports ``domain/mailbox_permissions.py`` cites), and the kind
that reports them and never removes one."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from remediation.domain.delegates import Delegate, MailboxAccess
from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import PermanentError
from remediation.domain.leftovers import CompromiseWindow, Disposition, Leftover
from remediation.domain.mailbox_permissions import (
    added_delegates,
    holder_leftovers,
    read_grant,
)
from remediation.domain.rule_history import AuditLogOff
from remediation.service.mailbox_permissions import MailboxPermissions

MAILBOX_ID = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
BEN_ID = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
WINDOW = CompromiseWindow(NOW, NOW - timedelta(days=7))


def record(operation: str, parameters: list[tuple[str, str]], *, object_id: str = MAILBOX_ID,
           at: str = "2025-03-09T22:15:04", status: str = "True",
           actor: str = "admin@contoso.com") -> dict[str, Any]:
    audit = {"CreationTime": at, "Id": f"id-{operation}-{at}", "Operation": operation,
             "RecordType": 1, "ResultStatus": status, "UserId": actor, "ObjectId": object_id,
             "Workload": "Exchange",
             "Parameters": [{"Name": name, "Value": value} for name, value in parameters]}
    return {"RecordType": "ExchangeAdmin", "Operations": operation, "UserIds": actor,
            "AuditData": json.dumps(audit), "Identity": audit["Id"]}


def test_each_cmdlet_s_record_names_the_right_the_holder_and_the_mailbox() -> None:
    full = read_grant(record("Add-MailboxPermission", [
        ("Identity", "ann@contoso.com"), ("AccessRights", "FullAccess"),
        ("User", "ben@contoso.com"), ("InheritanceType", "All")]))
    send_as = read_grant(record("Add-RecipientPermission", [
        ("Identity", MAILBOX_ID), ("Trustee", BEN_ID), ("AccessRights", "SendAs")]))
    behalf = read_grant(record("Set-Mailbox", [
        ("Identity", "EURPR01A002.PROD.OUTLOOK.COM/Microsoft Exchange Hosted Organizations/"
                     f"contoso.onmicrosoft.com/{MAILBOX_ID}"),
        ("GrantSendOnBehalfTo", "ben@contoso.com")]))

    assert full is not None and send_as is not None and behalf is not None
    assert (full.rights, full.holders, full.actor) == (("FullAccess",), ("ben@contoso.com",),
                                                       "admin@contoso.com")
    assert full.at == datetime(2025, 3, 9, 22, 15, 4, tzinfo=UTC)  # UTC, no offset given
    assert full.about([MAILBOX_ID.upper()]) and full.about(["Ann@Contoso.com"])
    assert (send_as.rights, send_as.holders) == (("SendAs",), (BEN_ID,))
    assert behalf.rights == ("SendOnBehalf",) and behalf.about([MAILBOX_ID])


def test_records_that_grant_nothing_here_are_left_out() -> None:
    forwarding = [("Identity", "ann"), ("ForwardingSmtpAddress", "smtp:x@y.example")]
    assert read_grant(record("Set-Mailbox", forwarding)) is None
    assert read_grant(record("Add-MailboxPermission", [
        ("Identity", "ann"), ("AccessRights", "ReadPermission"), ("User", "ben")])) is None
    assert read_grant(record("Add-MailboxPermission", [
        ("Identity", "ann"), ("AccessRights", "FullAccess"), ("User", "ben")],
        status="False")) is None
    assert read_grant(record("New-InboxRule", [("Name", "x")])) is None
    assert read_grant({"AuditData": "not json"}) is None


def test_send_on_behalf_values_in_every_form_name_the_delegates_added() -> None:
    assert added_delegates("ben@contoso.com") == ["ben@contoso.com"]
    assert added_delegates("ben@contoso.com,cy@contoso.com") == ["ben@contoso.com",
                                                                 "cy@contoso.com"]
    assert added_delegates('@{Add="ben@contoso.com","cy"; Remove="dee"}') == [
        "ben@contoso.com", "cy"]
    assert added_delegates(["ben", "cy"]) == ["ben", "cy"]
    assert added_delegates('@{Remove="dee"}') == []


def test_a_holder_added_in_the_window_is_reported_an_other_kept_and_no_key_repeats() -> None:
    ben = Delegate("ben@contoso.com", ("FullAccess", "SendAs"))
    cy = Delegate("cy@contoso.com", ("SendOnBehalf",))
    grant = read_grant(record("Add-RecipientPermission", [
        ("Identity", MAILBOX_ID), ("Trustee", BEN_ID), ("AccessRights", "SendAs")]))
    assert grant is not None
    found = holder_leftovers("ann@contoso.com", [ben, cy], [grant],
                             {BEN_ID: {BEN_ID, "ben@contoso.com"}}, WINDOW)

    by_key = {leftover.key: leftover for leftover in found}
    assert list(by_key) == ["FullAccess:ben@contoso.com", "SendAs:ben@contoso.com",
                            "SendOnBehalf:cy@contoso.com"]
    send_as = by_key["SendAs:ben@contoso.com"]
    assert send_as.disposition is Disposition.REPORT
    assert send_as.name == "ben@contoso.com (SendAs)"
    assert "by admin@contoso.com (Add-RecipientPermission)" in send_as.why
    assert "Remove-RecipientPermission -Identity ann@contoso.com -Trustee ben@contoso.com" in (
        send_as.why)
    assert send_as.added_from == "audit log" and send_as.added == grant.at
    assert by_key["FullAccess:ben@contoso.com"].disposition is Disposition.KEEP  # not that right
    assert "no record of it being added" in by_key["SendOnBehalf:cy@contoso.com"].why


def test_a_record_before_the_window_dates_nothing_and_an_unreadable_log_keeps_all() -> None:
    ben = Delegate("ben@contoso.com", ("FullAccess",))
    old = read_grant(record("Add-MailboxPermission", [
        ("Identity", "ann"), ("AccessRights", "FullAccess"), ("User", "ben@contoso.com")],
        at="2025-02-01T08:00:00"))
    assert old is not None
    [kept] = holder_leftovers("ann@contoso.com", [ben], [old], {}, WINDOW)
    [unknown] = holder_leftovers("ann@contoso.com", [ben], [], {}, WINDOW, "no right to read")

    assert kept.disposition is Disposition.KEEP
    assert unknown.disposition is Disposition.KEEP
    assert "the unified audit log could not be read (no right to read)" in unknown.why


class Mailboxes:
    def __init__(self, access: MailboxAccess) -> None:
        self.access = access

    async def mailbox_access(self, address: str) -> MailboxAccess:
        return self.access


class Audit:
    def __init__(self, rows: list[dict[str, Any]] | Exception) -> None:
        self.rows = rows
        self.searches: list[dict[str, Any]] = []

    async def search(self, operations: Any, since: datetime, *, user_ids: Any = (),
                     object_ids: Any = ()) -> list[dict[str, Any]]:
        self.searches.append({"operations": list(operations), "object_ids": list(object_ids),
                              "user_ids": list(user_ids)})
        if isinstance(self.rows, Exception):
            raise self.rows
        return self.rows


class Directory:
    def __init__(self) -> None:
        self.looked_up: list[str] = []

    async def find_user(self, user: str) -> DirectoryUser:
        self.looked_up.append(user)
        if user == BEN_ID:
            return DirectoryUser(BEN_ID, "ben@contoso.com", "ben@contoso.com")
        raise PermanentError(f"user {user} not found in the directory")


ANN = DirectoryUser(MAILBOX_ID, "ann@contoso.com", "ann@contoso.com")


async def test_the_kind_searches_by_the_mailbox_acted_on_and_only_when_someone_holds_a_right(
        ) -> None:
    nobody = MailboxAccess((MAILBOX_ID, "ann@contoso.com"), ())
    audit = Audit([])
    assert await MailboxPermissions(Mailboxes(nobody), audit, Directory()).survey(  # type: ignore[arg-type]
        ANN, WINDOW) == []
    assert audit.searches == []  # nobody to date: no search

    ben = MailboxAccess((MAILBOX_ID, "ann@contoso.com"), (Delegate("ben@contoso.com",
                                                                   ("SendAs",)),))
    audit = Audit([record("Add-RecipientPermission", [("Identity", MAILBOX_ID),
                                                      ("Trustee", BEN_ID),
                                                      ("AccessRights", "SendAs")]),
                   record("Add-RecipientPermission", [("Identity", "other"),
                                                      ("Trustee", BEN_ID)], object_id="other")])
    directory = Directory()
    [found] = await MailboxPermissions(Mailboxes(ben), audit, directory).survey(  # type: ignore[arg-type]
        ANN, WINDOW)

    assert audit.searches == [{"operations": ["Add-MailboxPermission", "Add-RecipientPermission",
                                              "Set-Mailbox"],
                               "object_ids": [MAILBOX_ID, "ann@contoso.com"], "user_ids": []}]
    assert found.disposition is Disposition.REPORT
    assert directory.looked_up == [BEN_ID]  # the object id the record names, once


async def test_an_audit_log_off_keeps_every_holder_and_removal_is_always_refused() -> None:
    ben = MailboxAccess((MAILBOX_ID,), (Delegate("ben@contoso.com", ("FullAccess",)),))
    kind = MailboxPermissions(Mailboxes(ben), Audit(AuditLogOff("ingestion is off")),  # type: ignore[arg-type]
                              Directory())
    [found] = await kind.survey(ANN, WINDOW)

    assert found.disposition is Disposition.KEEP and "ingestion is off" in found.why
    with pytest.raises(PermanentError, match="a person's decision"):
        await kind.remove(ANN, Leftover("mailbox permission", found.key, found.name,
                                        Disposition.REPORT, "given inside the window"))
