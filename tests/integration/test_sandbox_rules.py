"""The sandbox's inbox rules as Exchange shows them, and its unified audit log, over HTTP:
what the hidden-rule cleanup relies on, each cmdlet with its documented parameters only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from remediation.sandbox import SandboxServer, SandboxTenant, demo_tenant
from remediation.sandbox.inbox_rules import rule_identity
from remediation.sandbox.seed import HIDDEN_RULE_ID
from tests.integration.test_sandbox import AUTH, cause, invoke

LYNNE = "lynne.robbins@contoso.com"


@pytest.fixture
def tenant() -> SandboxTenant:
    return demo_tenant(with_alerts=False)


@pytest.fixture
def client(tenant: SandboxTenant) -> Iterator[httpx.Client]:
    server = SandboxServer(tenant)
    base = server.start_in_thread()
    try:
        with httpx.Client(base_url=base, headers=AUTH, timeout=5) as http:
            yield http
    finally:
        server.stop_thread()


def rules(client: httpx.Client, tenant: SandboxTenant, **parameters: object) -> list[dict]:
    response = invoke(client, tenant, "Get-InboxRule", Mailbox=LYNNE, **parameters)
    assert response.status_code == 200, response.text
    return list(response.json()["value"])


def test_hidden_rules_show_only_with_include_hidden_and_never_in_graph(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    visible = {rule["Name"] for rule in rules(client, tenant)}
    every = rules(client, tenant, IncludeHidden=True)
    graph = client.get(f"/v1.0/users/{LYNNE}/mailFolders/inbox/messageRules").json()["value"]

    assert visible == {rule["displayName"] for rule in graph} == {"..", "Invoices",
                                                                 "Newsletters"}
    assert {rule["Name"] for rule in every} - visible == {
        ".", "Junk E-Mail Rule", "Microsoft.Exchange.OOF.KnownSenders.Rule",
        "Microsoft.Exchange.OOF.AllExternalSenders.Rule", "Delegate Rule -1"}
    hidden = next(rule for rule in every if rule["Name"] == ".")
    # RuleIdentity is larger than int64 and arrives as a JSON number, whole.
    assert hidden["RuleIdentity"] == HIDDEN_RULE_ID > 2**63
    assert f'"RuleIdentity": {HIDDEN_RULE_ID}' in invoke(
        client, tenant, "Get-InboxRule", Mailbox=LYNNE, IncludeHidden=True).text
    assert hidden["ForwardTo"] == ['"sync" [SMTP:sync@evil-mail.example]']
    assert "DeleteMessage" not in hidden  # a key left out: false
    # A rule Graph lists carries, in Exchange, the RuleIdentity its Graph id encodes.
    for rule in graph:
        row = next(r for r in every if r["Name"] == rule["displayName"])
        assert row["RuleIdentity"] == rule_identity(rule["id"])
        assert row["Identity"].endswith(f"\\{row['RuleIdentity']}")


def test_disable_and_enable_by_rule_identity_show_on_both_sides(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    first = tenant.user(LYNNE).inbox_rules[0]
    number = str(rule_identity(first["id"]))
    assert invoke(client, tenant, "Disable-InboxRule", Identity=number, Mailbox=LYNNE,
                  Confirm=False).status_code == 200
    assert first["isEnabled"] is False
    assert invoke(client, tenant, "Disable-InboxRule", Identity=str(HIDDEN_RULE_ID),
                  Mailbox=LYNNE, Confirm=False).status_code == 200
    hidden = next(r for r in rules(client, tenant, IncludeHidden=True) if r["Name"] == ".")
    assert hidden["Enabled"] is False
    assert invoke(client, tenant, "Enable-InboxRule", Identity=f"{tenant.user(LYNNE).id}\\"
                  f"{HIDDEN_RULE_ID}", Confirm=False).status_code == 200
    hidden = next(r for r in rules(client, tenant, IncludeHidden=True) if r["Name"] == ".")
    assert hidden["Enabled"] is True


def test_rule_cmdlets_refuse_what_exchange_refuses(client: httpx.Client,
                                                   tenant: SandboxTenant) -> None:
    delegate = invoke(client, tenant, "Disable-InboxRule", Identity="Delegate Rule -1",
                      Mailbox=LYNNE, Confirm=False)
    unknown = invoke(client, tenant, "Disable-InboxRule", Identity="123", Mailbox=LYNNE)
    bad_parameter = invoke(client, tenant, "Disable-InboxRule", Identity="1", Mailbox=LYNNE,
                           Recurse=True)
    no_mailbox = invoke(client, tenant, "Get-InboxRule", IncludeHidden=True)

    assert delegate.status_code == 400 and "delegate rule" in cause(delegate)
    assert unknown.status_code == 400 and "ManagementObjectNotFoundException" in cause(unknown)
    assert bad_parameter.status_code == 400
    assert "cannot be found that matches parameter name 'Recurse'" in cause(bad_parameter)
    assert no_mailbox.status_code == 400


def test_folder_statistics_name_each_well_known_folder_in_the_mailbox_language(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    from remediation.sandbox import SandboxUser

    tenant.add_user(SandboxUser("jonas@contoso.com", "Jonas", language="de"))
    deleted = invoke(client, tenant, "Get-MailboxFolderStatistics",
                     Identity="jonas@contoso.com", FolderScope="DeletedItems")
    wrong = invoke(client, tenant, "Get-MailboxFolderStatistics",
                   Identity="jonas@contoso.com", FolderScope="Bin")

    assert [(r["FolderPath"], r["FolderType"]) for r in deleted.json()["value"]] == [
        ("/Gelöschte Elemente", "DeletedItems")]
    assert wrong.status_code == 400


def search(client: httpx.Client, tenant: SandboxTenant, **parameters: object) -> httpx.Response:
    now = datetime.now(UTC)
    return invoke(client, tenant, "Search-UnifiedAuditLog",
                  StartDate=(now - timedelta(days=7)).strftime("%Y-%m-%d %H:%M:%Sz"),
                  EndDate=(now + timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%Sz"),
                  **parameters)


def test_the_audit_log_holds_the_created_and_deleted_rule_as_auditdata_strings(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    response = search(client, tenant, Operations=["New-InboxRule", "Remove-InboxRule"],
                      UserIds=[LYNNE], SessionCommand="ReturnLargeSet", ResultSize=5000)
    [created, removed] = response.json()["value"]
    data = json.loads(created["AuditData"])  # a JSON string, as Exchange returns it

    assert (created["Operations"], removed["Operations"]) == ("New-InboxRule",
                                                              "Remove-InboxRule")
    assert data["ObjectId"].endswith("\\Payroll")
    assert {"Name": "ForwardTo", "Value": "payroll-copy@evil-mail.example"} in data["Parameters"]
    assert json.loads(removed["AuditData"])["ObjectId"].rpartition("\\")[2].isdigit()
    assert created["ResultCount"] == 2


def test_the_audit_log_pages_by_session_and_refuses_undocumented_input(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    session = {"SessionId": "s1", "SessionCommand": "ReturnLargeSet", "ResultSize": 1,
               "UserIds": [LYNNE]}
    pages = [search(client, tenant, **session).json()["value"] for _ in range(3)]
    bare = search(client, tenant, UserIds=LYNNE)
    too_many = search(client, tenant, ResultSize=5001)
    no_dates = invoke(client, tenant, "Search-UnifiedAuditLog", UserIds=[LYNNE])
    config = invoke(client, tenant, "Get-AdminAuditLogConfig").json()["value"]

    assert [len(page) for page in pages] == [1, 1, 0]
    assert bare.status_code == 400 and "System.String[]" in cause(bare)
    assert too_many.status_code == 400 and no_dates.status_code == 400
    assert config[0]["UnifiedAuditLogIngestionEnabled"] is True


def test_with_ingestion_off_the_config_says_so_and_searches_fail(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    tenant.unified_audit_log.ingestion_enabled = False
    config = invoke(client, tenant, "Get-AdminAuditLogConfig").json()["value"]
    refused = search(client, tenant, UserIds=[LYNNE])

    assert config[0]["UnifiedAuditLogIngestionEnabled"] is False
    assert refused.status_code == 400


def test_a_permission_grant_is_found_by_the_mailbox_it_acted_on_not_by_who_acted(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    """Add-MailboxPermission's record names the mailbox by its Name in ObjectId (Get-Mailbox
    gives the Name), the accounts as the administrator typed them; UserIds is who acted."""
    from remediation.sandbox.seed import LYNNE_INTRUDER, STOLEN_ADMIN

    [mailbox] = invoke(client, tenant, "Get-Mailbox", Identity=LYNNE).json()["value"]
    operations = ["Add-MailboxPermission", "Add-RecipientPermission", "Set-Mailbox"]
    by_object = search(client, tenant, Operations=operations, ObjectIds=[mailbox["Name"]])
    by_user = search(client, tenant, Operations=operations, UserIds=[LYNNE])
    by_wildcard = search(client, tenant, Operations=operations,
                         ObjectIds=[mailbox["Name"][:8] + "*"])
    bare = search(client, tenant, ObjectIds=mailbox["Name"])

    [row] = by_object.json()["value"]
    data = json.loads(row["AuditData"])
    assert mailbox["Name"] == mailbox["ExternalDirectoryObjectId"] == tenant.user(LYNNE).id
    assert row["UserIds"] == data["UserId"] == STOLEN_ADMIN
    assert data["ObjectId"] == mailbox["Name"]
    assert {p["Name"]: p["Value"] for p in data["Parameters"]} == {
        "Identity": tenant.user(LYNNE).id, "AccessRights": "FullAccess",
        "User": tenant.user(LYNNE_INTRUDER).id, "InheritanceType": "All"}
    assert by_user.json()["value"] == []  # she did not run it
    assert len(by_wildcard.json()["value"]) == 1
    assert bare.status_code == 400 and "System.String[]" in cause(bare)


def test_graph_and_exchange_name_a_german_rss_feeds_folder_alike(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    """The folder Graph lists (no well-known name for it), the one FolderScope
    RssSubscriptions finds, and the one a rule moving mail there names are one folder."""
    from remediation.sandbox import SandboxUser

    jonas = tenant.add_user(SandboxUser("jonas@contoso.com", "Jonas", language="de"))
    rss = jonas.folder_id("RSS-Feeds")
    jonas.inbox_rules = [{"id": "AQAAAJ5dZqK=", "displayName": "Feeds", "sequence": 1,
                          "isEnabled": True, "conditions": {},
                          "actions": {"moveToFolder": rss}}]
    graph = client.get("/v1.0/users/jonas@contoso.com/mailFolders").json()["value"]
    scoped = invoke(client, tenant, "Get-MailboxFolderStatistics", Identity="jonas@contoso.com",
                    FolderScope="RssSubscriptions").json()["value"]
    [rule] = invoke(client, tenant, "Get-InboxRule", Mailbox="jonas@contoso.com").json()["value"]
    unknown = client.get("/v1.0/users/jonas@contoso.com/mailFolders/rssfeeds")

    assert {folder["id"]: folder["displayName"] for folder in graph}[rss] == "RSS-Feeds"
    assert [(row["FolderPath"], row["FolderType"]) for row in scoped] == [
        ("/RSS-Feeds", "RssSubscription")]
    assert rule["MoveToFolder"] == "jonas:\\RSS-Feeds"
    assert unknown.status_code in (400, 404)  # Graph v1.0 has no well-known name for it
