"""remediation/permissions.py is the one list of what the app needs: the grant script grants
exactly that, and the README's permissions section names every entry."""

import re
from pathlib import Path

from remediation.permissions import (
    DIRECTORY_ROLES,
    EXCHANGE_ONLINE,
    MICROSOFT_GRAPH,
    PERMISSIONS,
    RESOURCE_APP_IDS,
    permissions_on,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (ROOT / "infra" / "grant-permissions.sh").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def script_code() -> str:
    """The script without its comments (a permission named only in a comment is not granted)."""
    return "\n".join(line.split("#", 1)[0] for line in SCRIPT.splitlines())


def granted_graph_permissions() -> list[str]:
    """The words of the script's `for role in ...; do grant "$graph" ...` loop."""
    code = script_code()
    loop = re.search(r"for role in (.*?); do\s+grant \"\$graph\" \"\$role\"", code, re.DOTALL)
    assert loop is not None, "the script no longer grants Graph permissions in one loop"
    assert f"graph={RESOURCE_APP_IDS[MICROSOFT_GRAPH]}" in code
    return loop.group(1).replace("\\", " ").split()


def readme_permissions_section() -> str:
    start = README.index("## Permissions (least privilege)")
    end = README.index("\n## ", start + 1)
    return README[start:end]


def test_every_entry_says_why_and_where() -> None:
    for reason, used_by in [(p.reason, p.used_by) for p in PERMISSIONS] + [
            (r.reason, r.used_by) for r in DIRECTORY_ROLES]:
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
    assigned = re.findall(rf"^assign_role ({GUID}) \"([^\"]+)\"", script_code(), re.MULTILINE)

    assert sorted(assigned) == sorted((r.template_id, r.name) for r in DIRECTORY_ROLES)
    assert {name for _, name in assigned} == {"User Administrator", "Exchange Administrator"}
    # Why the app needs User Administrator is written next to the assignment.
    assert re.search(r"#[^\n]*User Administrator[^\n]*password reset", SCRIPT)


def test_the_readme_names_every_permission_and_role() -> None:
    section = readme_permissions_section()

    for permission in PERMISSIONS:
        assert f"`{permission.name}`" in section, permission.name
    for role in DIRECTORY_ROLES:
        assert role.name in section and role.template_id in section, role.name
    assert "User-PasswordProfile.ReadWrite.All` alone is not enough" in section
    assert "remediation/permissions.py" in section
