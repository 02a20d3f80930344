"""Exchange's inbox rules judged by mailbox hygiene's criteria, and deleted rules read back
from the unified audit log (pure functions; the shapes the module docstrings cite)."""

import json
from datetime import UTC, datetime
from typing import Any

from remediation.domain.exchange_rules import (
    folder_path,
    graph_judgement,
    graph_rule_identity,
    graph_shape,
    judge,
    read_rule,
    recipient,
    rule_identity,
    system_rule,
)
from remediation.domain.hygiene import RSS_FEEDS
from remediation.domain.rule_history import created_at, creation_times, deleted_rules, read_event

DOMAINS = frozenset({"contoso.com"})
# A pair seen in public: Graph's id and the RuleIdentity it encodes (eight little-endian bytes).
GRAPH_ID, RULE_ID = "AQAAAJ5dZqA=", "11558028426879172609"


def row(name: str, **fields: Any) -> dict[str, Any]:
    return {"Name": name, "RuleIdentity": 16752869479666417665, "Enabled": True,
            "Identity": "311b45d6-1a3e-46ac-8434-721367961e19\\16752869479666417665", **fields}


def test_rule_identities_stay_whole_and_graph_ids_pair_only_when_exact() -> None:
    assert rule_identity(16752869479666417665) == "16752869479666417665"  # > int64
    assert rule_identity("16752869479666417665") == "16752869479666417665"
    assert rule_identity(1.6752869479666418e19) is None  # a float lost digits already
    assert rule_identity(True) is None
    assert graph_rule_identity(GRAPH_ID) == RULE_ID
    assert graph_rule_identity("AQAAAJ5dZqB=") is None  # not canonical base64: no pairing
    assert graph_rule_identity("r1") is None
    rule = read_rule({"Name": "x", "Identity": "owner\\42"})
    assert rule is not None and rule.identity == "42" and rule.enabled is False  # key missing


def test_exchange_own_rules_are_recognised_whatever_the_letter_case() -> None:
    assert system_rule("Junk E-mail Rule") and system_rule("JUNK E-MAIL RULE")
    assert system_rule("Microsoft.Exchange.OOF.KnownSenders.Rule")
    assert system_rule("Delegate Rule -1") and system_rule("Delegate Rule 5f0c…")
    assert system_rule("Junk") is None and system_rule(".") is None


def test_recipients_and_folders_in_exchange_s_words() -> None:
    assert recipient('"Eve" [SMTP:Eve@Evil.example]') == {
        "emailAddress": {"name": "Eve", "address": "eve@evil.example"}}
    assert recipient('"Ann" [EX:/o=ExchangeLabs/cn=ann]') == {"emailAddress": {"name": "Ann"}}
    assert recipient("x@y.example")["emailAddress"]["address"] == "x@y.example"
    assert folder_path("lynne:\\Gelöschte Elemente") == folder_path("/Gelöschte Elemente") == (
        "gelöschte elemente")
    assert folder_path("Inbox\\Reports") == "inbox/reports"
    assert folder_path("") is None and folder_path(None) is None


def test_rules_are_judged_by_hygiene_s_criteria_with_folders_known_by_type() -> None:
    forwards = read_rule(row("f", ForwardTo=['"Eve" [SMTP:eve@evil.example]']))
    internal = read_rule({**row("i", ForwardTo=['"Ann" [EX:/o=ExchangeLabs/cn=ann]']),
                          "RuleIdentity": 2})
    archive = read_rule({**row("a", MoveToFolder="lynne:\\Archiv"), "RuleIdentity": 3})
    custom = read_rule({**row("c", MoveToFolder="lynne:\\Archive"), "RuleIdentity": 4})
    disabled = read_rule({**row("d", DeleteMessage=True), "RuleIdentity": 5, "Enabled": False})
    rules = [forwards, internal, archive, custom, disabled]
    assert all(rules)
    # German mailbox: its archive is "Archiv"; a folder the owner named "Archive" is not it.
    findings = judge([graph_shape(r) for r in rules if r], {"archiv": "archive"}, DOMAINS)

    assert set(findings) == {"16752869479666417665", "3"}
    assert "eve@evil.example" in findings["16752869479666417665"].why
    assert "the archive folder" in findings["3"].why


def test_rss_feeds_is_known_by_its_folder_scope_and_hygiene_through_graph_cannot_see_it(
        ) -> None:
    """A German mailbox's "RSS-Feeds" (FolderScope RssSubscriptions): a rule moving mail there
    is suspicious; hygiene's own judgement through Graph finds it only when it also marks the
    mail read."""
    plain = read_rule(row("p", MoveToFolder="jonas:\\RSS-Feeds"))
    marks = read_rule({**row("m", MoveToFolder="jonas:\\RSS-Feeds", MarkAsRead=True),
                       "RuleIdentity": 2})
    assert plain is not None and marks is not None
    shapes = [graph_shape(plain), graph_shape(marks)]
    known = {"rss-feeds": RSS_FEEDS, "archiv": "archive"}

    found = judge(shapes, known, DOMAINS)
    assert set(found) == {plain.identity, "2"}
    assert "(the RSS Feeds folder)" in found[plain.identity].why
    assert set(graph_judgement(shapes, known, DOMAINS)) == {"2"}


def audit(operation: str, at: str, object_id: str, **parameters: str) -> dict[str, Any]:
    data = {"CreationTime": at, "Id": f"{operation}-{at}", "Operation": operation,
            "ResultStatus": "True", "UserId": "lynne@contoso.com", "ObjectId": object_id,
            "Parameters": [{"Name": k, "Value": v} for k, v in parameters.items()]}
    return {"RecordType": "ExchangeAdmin", "Operations": operation,
            "AuditData": json.dumps(data)}


ORG = "NAMPR01A001.PROD.OUTLOOK.COM/Microsoft Exchange Hosted Organizations/contoso.com/x"


def events(*records: dict[str, Any]) -> list[Any]:
    return [event for record in records if (event := read_event(record)) is not None]


def test_a_rule_created_then_removed_by_its_identity_is_one_deleted_rule() -> None:
    found = deleted_rules(events(
        audit("New-InboxRule", "2024-05-01T10:00:00", f"{ORG}\\Payroll", Name="Payroll",
              ForwardTo="a@evil.example;b@contoso.com", DeleteMessage="True"),
        audit("Set-InboxRule", "2024-05-01T11:00:00", "guid\\777", Identity="Payroll",
              RedirectTo="c@evil.example"),
        audit("Remove-InboxRule", "2024-05-01T12:00:00", "guid\\777", Identity="guid\\777"),
    ), present_names=["Newsletters"], present_identities=["1"])

    [rule] = found
    assert rule.name == "Payroll"
    assert rule.created == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert rule.removed == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert rule.targets == ("a@evil.example", "b@contoso.com", "c@evil.example")
    assert rule.shape["actions"]["delete"] is True
    assert rule.operations == ("New-InboxRule", "Set-InboxRule", "Remove-InboxRule")


def test_a_created_rule_counts_as_deleted_only_when_the_mailbox_no_longer_has_it() -> None:
    created = audit("New-InboxRule", "2024-05-01T10:00:00", f"{ORG}\\Tidy", Name="Tidy",
                    MoveToFolder="Deleted Items")
    assert deleted_rules(events(created), ["tidy"], []) == []
    # Still there: the record says when it was made (rules carry no timestamp).
    assert created_at(creation_times(events(created)), "TIDY", "9") == datetime(
        2024, 5, 1, 10, tzinfo=UTC)
    [gone] = deleted_rules(events(created), ["other"], [])
    assert gone.removed is None and gone.shape["actions"]["moveToFolder"].endswith(
        "deleted items")


def test_outlook_client_changes_and_failed_cmdlets() -> None:
    update = {"AuditData": {
        "CreationTime": "2024-05-02T09:00:00", "Id": "u1", "Operation": "UpdateInboxRules",
        "OperationProperties": [
            {"Name": "RuleOperation", "Value": "AddMailboxRule"},
            {"Name": "RuleName", "Value": "sync"},
            {"Name": "RuleActions", "Value": json.dumps(
                [{"ActionType": "Forward", "Recipients": ["SMTP:Z@Evil.example"]}])}]}}
    removal = {"AuditData": {
        "CreationTime": "2024-05-02T10:00:00", "Id": "u2", "Operation": "UpdateInboxRules",
        "OperationProperties": [{"Name": "RuleOperation", "Value": "RemoveMailboxRule"},
                                {"Name": "RuleName", "Value": "sync"}]}}
    failed = audit("New-InboxRule", "2024-05-02T11:00:00", f"{ORG}\\bad", Name="bad",
                   ForwardTo="q@evil.example")
    failed_data = json.loads(failed["AuditData"])
    failed["AuditData"] = json.dumps({**failed_data, "ResultStatus": "False"})

    [rule] = deleted_rules(events(update, removal, failed, {"AuditData": "not json"}), [], [])
    assert rule.name == "sync" and rule.targets == ("z@evil.example",)
