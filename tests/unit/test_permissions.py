"""remediation/permissions.py is the one list of what the app needs: the grant script grants
exactly that, and the README's permissions section names every entry."""

import re
from pathlib import Path

from remediation.permissions import (
    ADMINISTRATIVE_UNIT,
    ADMINISTRATIVE_UNIT_ROLES,
    DIRECTORY_ROLES,
    EXCHANGE_APPLICATION_ROLES,
    EXCHANGE_ONLINE,
    MICROSOFT_GRAPH,
    PERMISSIONS,
    RESOURCE_APP_IDS,
    TENANT_WIDE,
    directory_roles,
    graph_permissions,
    permissions_on,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (ROOT / "infra" / "grant-permissions.sh").read_text(encoding="utf-8")
EXCHANGE_SCOPE = (ROOT / "infra" / "grant-exchange-scope.ps1").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def script_code() -> str:
    """The script without its comments (a permission named only in a comment is not granted)."""
    return "\n".join(line.split("#", 1)[0] for line in SCRIPT.splitlines())


def granted_graph_permissions() -> list[str]:
    """The words of the script's `for role in ...; do grant "$graph" ...` loop, then those of
    its mailbox loop (granted, or left out with --mailbox-scope)."""
    return always_granted() + mailbox_permissions()


def always_granted() -> list[str]:
    code = script_code()
    loop = re.search(r"for role in (.*?); do\s+grant \"\$graph\" \"\$role\"", code, re.DOTALL)
    assert loop is not None, "the script no longer grants Graph permissions in one loop"
    assert f"graph={RESOURCE_APP_IDS[MICROSOFT_GRAPH]}" in code
    return loop.group(1).replace("\\", " ").split()


def mailbox_permissions() -> list[str]:
    loop = re.search(r"for role in ([^;]*); do\s+if \[\[ -n \"\$mailbox_scope\" \]\]; then "
                     r"left_out \"\$graph\" \"\$role\"; else grant \"\$graph\" \"\$role\"",
                     script_code())
    assert loop is not None, "the script no longer has its mailbox loop"
    return loop.group(1).split()


def assignments() -> list[tuple[str, str, str]]:
    """(template id, name, scope) of each `assign_role` line; no scope is tenant-wide."""
    return [(template, name, scope or TENANT_WIDE) for template, name, scope in re.findall(
        rf"^\s*assign_role ({GUID}) \"([^\"]+)\"(?: \"([^\"]+)\")?", script_code(), re.MULTILINE)]


def readme_permissions_section() -> str:
    start = README.index("## Permissions (least privilege)")
    end = README.index("\n## ", start + 1)
    return README[start:end]


def test_every_entry_says_why_and_where() -> None:
    for reason, used_by in [(p.reason, p.used_by) for p in PERMISSIONS] + [
            (r.reason, r.used_by) for r in DIRECTORY_ROLES + ADMINISTRATIVE_UNIT_ROLES] + [
            (e.reason, e.used_by) for e in EXCHANGE_APPLICATION_ROLES]:
        assert reason and used_by.startswith("remediation/adapters/"), reason
    assert len({p.name for p in PERMISSIONS}) == len(PERMISSIONS)
    assert {p.resource for p in PERMISSIONS} == {MICROSOFT_GRAPH, EXCHANGE_ONLINE}


def test_the_script_grants_exactly_the_graph_permissions() -> None:
    granted = granted_graph_permissions()

    assert sorted(granted) == sorted(permissions_on(MICROSOFT_GRAPH))
    assert len(granted) == len(set(granted))


def test_the_script_grants_exactly_the_exchange_permissions() -> None:
    exchange = RESOURCE_APP_IDS[EXCHANGE_ONLINE]
    granted = re.findall(rf"^grant {exchange} (\S+)", script_code(), re.MULTILINE)

    assert sorted(granted) == sorted(permissions_on(EXCHANGE_ONLINE)) == ["Exchange.ManageAsApp"]


def test_the_script_assigns_exactly_the_directory_roles_by_template_id() -> None:
    assigned = set(assignments())
    unit = ADMINISTRATIVE_UNIT.format(unit="$unit")

    # Tenant-wide (no --scope-au) and at the unit's scope (--scope-au): each option's roles.
    tenant_wide = {(r.template_id, r.name, r.scope) for r in directory_roles()}
    scoped = {(r.template_id, r.name, r.scope) for r in directory_roles("$unit")}
    assert assigned == tenant_wide | scoped
    assert {name for _, name, _ in tenant_wide} == {"User Administrator",
                                                    "Exchange Administrator"}
    assert ("fe930be7-5e62-47db-91af-98c3a49a38b1", "User Administrator", unit) in scoped
    # Why the app needs User Administrator is written next to the assignment.
    assert re.search(r"#[^\n]*User Administrator[^\n]*password reset", SCRIPT)


def test_the_mailbox_scope_replaces_exactly_the_graph_mailbox_permissions() -> None:
    replaced = {role.replaces for role in EXCHANGE_APPLICATION_ROLES}

    assert sorted(mailbox_permissions()) == sorted(replaced)
    assert replaced <= set(permissions_on(MICROSOFT_GRAPH))
    everything = set(permissions_on(MICROSOFT_GRAPH))
    assert set(graph_permissions("exchange-rbac")) == everything - replaced
    assert set(always_granted()) == set(graph_permissions("exchange-rbac"))


def test_the_exchange_script_assigns_each_application_role_at_the_units_scope() -> None:
    code = "\n".join(line.split("#", 1)[0] for line in EXCHANGE_SCOPE.splitlines())
    roles = re.search(r"\$roles = @\(([^)]*)\)", code)
    assert roles is not None, "grant-exchange-scope.ps1 no longer lists its roles in $roles"

    assert sorted(re.findall(r"'([^']+)'", roles.group(1))) == sorted(
        role.name for role in EXCHANGE_APPLICATION_ROLES)
    assert re.search(r"New-ManagementRoleAssignment\b[^\n]*-App\b[^\n]*-Role \$role\b"
                     r"[^\n]*-RecipientAdministrativeUnitScope \$AdministrativeUnitId", code)
    assert "New-ServicePrincipal" in code and "Test-ServicePrincipalAuthorization" in code


def test_the_readme_names_every_permission_and_role() -> None:
    section = readme_permissions_section()

    for permission in PERMISSIONS:
        assert f"`{permission.name}`" in section, permission.name
    for role in DIRECTORY_ROLES + ADMINISTRATIVE_UNIT_ROLES:
        assert role.name in section and role.template_id in section, role.name
    for application_role in EXCHANGE_APPLICATION_ROLES:
        assert f"`{application_role.name}`" in section, application_role.name
    for option in ("--scope-au", "--mailbox-scope", "SCOPE_ADMINISTRATIVE_UNIT_ID",
                   "MAILBOX_ACCESS", "infra/grant-exchange-scope.ps1"):
        assert option in section, option
    assert "User-PasswordProfile.ReadWrite.All` alone is not enough" in section
    assert "remediation/permissions.py" in section
