"""Issue 14, points 5 and 6, end to end over HTTP against the sandbox tenant.

Protected means protected: an owner of a protected group, a member eligible (or an owner,
eligible or active) through PIM for Groups, and a member of a group nested in a protected one
are escalated untouched. Folders by identity: a German mailbox's attacker rules are found by
the folders' well-known names, not their display names.
"""

import uuid
from pathlib import Path
from typing import Any

import pytest

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import SandboxTenant, SandboxUser
from remediation.sandbox.faults import Fault
from remediation.sandbox.seed import BREAK_GLASS_GROUP_ID
from tests.conftest import sandbox_settings

OWEN = "owen.keller@contoso.com"
NESTED_GROUP_ID = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
FOLDER_GETS = r"/mailFolders/[^/]+$"


def app_for(url: str, tenant: SandboxTenant, db: Path, **changes: Any) -> Application:
    settings = sandbox_settings(url, tenant, db, sweep_restricted_users=False,
                                protected_group_ids=frozenset({BREAK_GLASS_GROUP_ID}),
                                **changes)
    return bootstrap(settings)


async def remediate(app: Application, user: str) -> Case:
    await app.requests.send(RemediationRequest(user=user, source="manual",
                                               request_id=uuid.uuid4().hex))
    await app.worker(poll_interval=0.05, retry_backoff=0.05).run(until_idle=True)
    [case] = [c for c in await app.journal.list_cases() if c.user == user]
    return case


def blocked_user(tenant: SandboxTenant, **fields: Any) -> SandboxUser:
    user = tenant.add_user(SandboxUser(OWEN, "Owen Keller", **fields))
    tenant.block(OWEN)
    return user


def untouched(tenant: SandboxTenant, user: SandboxUser) -> bool:
    return (not user.password_changes and user.sessions_revoked == 0
            and tenant.removals == [])


@pytest.mark.parametrize("grant", [
    "owner", "eligible member", "eligible owner", "active owner (PIM)",
    "eligible member of a nested group", "member of a nested group"])
async def test_every_way_into_the_protected_group_is_escalated_untouched(
        grant: str, sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    owen = blocked_user(tenant)
    tenant.add_group(NESTED_GROUP_ID, "Tier-0 helpers")
    tenant.nest_group(NESTED_GROUP_ID, BREAK_GLASS_GROUP_ID)
    if grant == "owner":
        tenant.add_owner(BREAK_GLASS_GROUP_ID, owen.id)
    elif grant == "eligible member":
        tenant.make_group_eligible(owen.id, BREAK_GLASS_GROUP_ID)
    elif grant == "eligible owner":
        tenant.make_group_eligible(owen.id, BREAK_GLASS_GROUP_ID, access="owner")
    elif grant == "active owner (PIM)":
        tenant.assign_group_access(owen.id, BREAK_GLASS_GROUP_ID, access="owner")
    elif grant == "eligible member of a nested group":
        tenant.make_group_eligible(owen.id, NESTED_GROUP_ID)
    else:
        owen.group_ids.append(NESTED_GROUP_ID)
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, OWEN)
    await app.aclose()

    assert case.state is CaseState.ESCALATED, case.reason
    assert "protected group" in (case.reason or "")
    assert BREAK_GLASS_GROUP_ID in (case.reason or "")
    assert untouched(tenant, owen)


async def test_an_ordinary_owner_of_another_group_is_remediated(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    owen = blocked_user(tenant)
    tenant.add_group(NESTED_GROUP_ID, "Marketing")  # not nested in the protected group
    tenant.add_owner(NESTED_GROUP_ID, owen.id)
    tenant.make_group_eligible(owen.id, NESTED_GROUP_ID)
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, OWEN)
    await app.aclose()

    assert case.state is CaseState.VERIFIED, case.reason
    assert owen.password_changes


async def test_an_unreadable_owner_list_escalates(sandbox_url: str, tenant: SandboxTenant,
                                                  tmp_path: Path) -> None:
    owen = blocked_user(tenant)
    tenant.add_fault(Fault(status=403, path=r"/groups/[^/]+/owners$",
                           code="Authorization_RequestDenied",
                           message="Insufficient privileges to complete the operation.",
                           times=None))
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, OWEN)
    await app.aclose()

    assert case.state is CaseState.ESCALATED
    assert untouched(tenant, owen)


async def test_no_pim_licence_still_reads_owners_and_remediates_others(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    tenant.pim_licensed = False
    owen = blocked_user(tenant)
    tenant.add_owner(BREAK_GLASS_GROUP_ID, owen.id)
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, OWEN)
    await app.aclose()

    assert case.state is CaseState.ESCALATED
    assert "owner" in (case.reason or "")
    assert untouched(tenant, owen)


def german_mailbox(tenant: SandboxTenant) -> SandboxUser:
    owen = blocked_user(tenant, language="de")
    archive, rss = owen.well_known["archive"], owen.folder_id("RSS-Feeds")
    projects = owen.add_folder("Projekte")
    owen.inbox_rules = [
        _rule("AQAAAJ5dZqD=", "Rechnungen", 1, {"moveToFolder": archive}),
        _rule("AQAAAJ5dZqE=", "..", 2, {"moveToFolder": rss, "markAsRead": True}),
        _rule("AQAAAJ5dZqF=", "Projekte", 3, {"moveToFolder": projects}),
    ]
    return owen


async def test_a_german_mailbox_loses_its_attacker_rules(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    owen = german_mailbox(tenant)
    assert "Archiv" in owen.folders.values() and "Archive" not in owen.folders.values()
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, OWEN)
    await app.aclose()

    enabled = {rule["displayName"]: rule["isEnabled"] for rule in owen.inbox_rules}
    assert enabled == {"Rechnungen": False, "..": False, "Projekte": True}
    assert case.state is CaseState.VERIFIED
    hygiene = case.done("mailbox_hygiene")
    assert hygiene is not None and "Archiv" in hygiene.detail


async def test_well_known_folders_cost_a_few_reads_and_a_missing_one_is_absent(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    owen = german_mailbox(tenant)
    del owen.well_known["conversationhistory"]  # a mailbox without it: 404
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, OWEN)
    await app.aclose()

    assert case.state is CaseState.VERIFIED, case.reason
    folder_reads = [r.path for r in tenant.requests()
                    if r.method == "GET" and "/mailFolders/" in r.path
                    and not r.path.endswith("/messageRules")]
    assert 0 < len(folder_reads) <= 6
    assert len(set(folder_reads)) == len(folder_reads)  # each one once per case


async def test_a_rule_that_moves_and_marks_read_into_any_folder_is_found(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    owen = blocked_user(tenant)
    hideout = owen.add_folder("Zz")
    owen.inbox_rules = [_rule("AQAAAJ5dZqG=", "tidy", 1,
                              {"moveToFolder": hideout, "markAsRead": True})]
    app = app_for(sandbox_url, tenant, tmp_path / "db", mailbox_hygiene="report")
    case = await remediate(app, OWEN)
    await app.aclose()

    hygiene = case.done("mailbox_hygiene")
    assert hygiene is not None
    assert [f["name"] for f in hygiene.data["findings"]] == ["tidy"]
    assert "marks it read" in hygiene.detail
    assert owen.inbox_rules[0]["isEnabled"] is True  # report mode changes nothing


def _rule(rule_id: str, name: str, sequence: int, actions: dict[str, Any]) -> dict[str, Any]:
    return {"id": rule_id, "displayName": name, "sequence": sequence, "isEnabled": True,
            "hasError": False, "isReadOnly": False, "conditions": {},
            "actions": {**actions, "stopProcessingRules": False}, "exceptions": None}


async def test_an_owner_of_a_group_nested_in_a_protected_group_is_protected(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Found by a hostile test: an owner of a group nested in the protected group can add
    itself to it, and so to the protected group; it was reset."""
    owen = blocked_user(tenant)
    tenant.add_group(NESTED_GROUP_ID, "Tier-0 helpers")
    tenant.nest_group(NESTED_GROUP_ID, BREAK_GLASS_GROUP_ID)
    tenant.add_owner(NESTED_GROUP_ID, owen.id)
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, OWEN)
    await app.aclose()
    assert case.state is CaseState.ESCALATED, case.reason
    assert not owen.password_changes
