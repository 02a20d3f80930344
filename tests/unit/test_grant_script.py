"""infra/grant-permissions.sh run for real, against a fake ``az`` that keeps a tenant's grants:
a first run grants everything, a second run changes nothing, and an upgrade (an identity that
holds all but the new entries) adds only those, never stopping at an existing grant."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from remediation.permissions import (
    DIRECTORY_ROLES,
    EXCHANGE_APPLICATION_ROLES,
    PERMISSIONS,
    RESOURCE_APP_IDS,
    USER_ADMINISTRATOR_ID,
    directory_roles,
)

USER_ADMINISTRATOR = USER_ADMINISTRATOR_ID
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "grant-permissions.sh"
PRINCIPAL = "7d3b5c1a-0f2e-4a6b-9c8d-1e2f3a4b5c6d"

# A fake `az` for exactly the calls the script makes. Graph refuses a grant that exists
# (as it does: a 400 for an app role assignment, a conflict for a role assignment), which
# under `set -e` would end the script. It runs with -S (no site packages: it needs only the
# standard library), a third less CPU for each of the ~70 calls of a run.
FAKE_AZ = r'''#!{python} -S
import json, os, re, sys

path = os.environ["FAKE_AZ_STATE"]
with open(path) as f:
    state = json.load(f)
args = sys.argv[1:]


def opt(name):
    return args[args.index(name) + 1] if name in args else None


def done(lines=(), code=0, error=""):
    state["calls"].append(args)
    with open(path, "w") as f:
        json.dump(state, f)
    if lines:
        print("\n".join(lines))
    if error:
        print(error, file=sys.stderr)
    sys.exit(code)


principal = state["principal"]
query = opt("--query")
if args[:3] == ["ad", "sp", "show"]:
    if query == "id":
        done([f"sp-{opt('--id')}"])
    match = re.fullmatch(r"appRoles\[\?value=='([^']+)'\]\.id", query or "")
    if match:
        done([f"role-{match.group(1)}"])
elif args[:1] == ["rest"]:
    method, uri = opt("--method"), opt("--uri")
    app_roles = f"https://graph.microsoft.com/v1.0/servicePrincipals/{principal}/appRoleAssignments"
    assignments = "https://graph.microsoft.com/v1.0/roleManagement/directory/roleAssignments"
    if method == "GET" and uri == app_roles:
        match = re.fullmatch(r"value\[\?resourceId=='([^']+)'\]\.appRoleId", query or "")
        if match:
            done([role for resource, role in state["app_roles"] if resource == match.group(1)])
    if method == "GET" and uri == f"{assignments}?$filter=principalId%20eq%20'{principal}'":
        match = re.fullmatch(r"value\[\?directoryScopeId=='([^']+)'\]\.roleDefinitionId",
                             query or "")
        if match:
            done([role for role, scope in state["directory_roles"] if scope == match.group(1)])
    if method == "POST" and uri == app_roles:
        body = json.loads(opt("--body"))
        grant = [body["resourceId"], body["appRoleId"]]
        if grant in state["app_roles"]:
            done(code=1, error="ERROR: Bad Request({\"error\":{\"code\":\"Request_BadRequest\","
                               "\"message\":\"Permission being assigned already exists on "
                               "the object\"}})")
        state["app_roles"].append(grant)
        done()
    if method == "POST" and uri == assignments:
        body = json.loads(opt("--body"))
        role = [body["roleDefinitionId"], body["directoryScopeId"]]
        if role in state["directory_roles"]:
            done(code=1, error="ERROR: Bad Request({\"error\":{\"code\":\"Request_BadRequest\","
                               "\"message\":\"A conflicting object with one or more of the "
                               "specified property values is present in the directory.\"}})")
        state["directory_roles"].append(role)
        done()
done(code=2, error=f"fake az: unsupported call {args}")
'''


def every_grant() -> tuple[list[list[str]], list[list[str]]]:
    app_roles = [[f"sp-{RESOURCE_APP_IDS[p.resource]}", f"role-{p.name}"] for p in PERMISSIONS]
    return app_roles, [[role.template_id, "/"] for role in DIRECTORY_ROLES]


class Tenant:
    def __init__(self, tmp_path: Path, app_roles: list[list[str]],
                 directory_roles: list[list[str]]) -> None:
        self.state = tmp_path / "tenant.json"
        self.state.write_text(json.dumps({"principal": PRINCIPAL, "calls": [],
                                          "app_roles": app_roles,
                                          "directory_roles": directory_roles}))
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        az = self.bin / "az"
        az.write_text(FAKE_AZ.replace("{python}", sys.executable))
        az.chmod(0o755)

    def read(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.state.read_text())
        return state

    def run(self, *options: str) -> subprocess.CompletedProcess[str]:
        state = self.read()
        state["calls"] = []
        self.state.write_text(json.dumps(state))
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "FAKE_AZ_STATE": str(self.state)}
        return subprocess.run(["bash", str(SCRIPT), *options, PRINCIPAL], env=env,
                              capture_output=True, text=True, timeout=120, check=False)

    def posts(self) -> list[str]:
        return [json.loads(call[call.index("--body") + 1]).get("appRoleId")
                or json.loads(call[call.index("--body") + 1])["roleDefinitionId"]
                for call in self.read()["calls"] if call[:3] == ["rest", "--method", "POST"]]


pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def test_a_first_run_grants_everything_once(tmp_path: Path) -> None:
    tenant = Tenant(tmp_path, [], [])

    result = tenant.run()

    assert result.returncode == 0, result.stderr
    app_roles, directory_roles = every_grant()
    state = tenant.read()
    assert sorted(state["app_roles"]) == sorted(app_roles)
    assert sorted(state["directory_roles"]) == sorted(directory_roles)


def test_a_second_run_changes_nothing_and_succeeds(tmp_path: Path) -> None:
    tenant = Tenant(tmp_path, *every_grant())

    result = tenant.run()

    assert result.returncode == 0, result.stderr
    assert tenant.posts() == []
    assert result.stdout.count("already granted") == len(PERMISSIONS)
    assert result.stdout.count("already assigned") == len(DIRECTORY_ROLES)


def test_an_upgrade_adds_only_what_is_missing(tmp_path: Path) -> None:
    # An identity granted before User Administrator and PIM for Groups were needed.
    new = {"role-PrivilegedEligibilitySchedule.Read.AzureADGroup",
           "role-PrivilegedAssignmentSchedule.Read.AzureADGroup"}
    user_administrator = next(r.template_id for r in DIRECTORY_ROLES
                              if r.name == "User Administrator")
    app_roles, directory_roles = every_grant()
    tenant = Tenant(tmp_path, [grant for grant in app_roles if grant[1] not in new],
                    [role for role in directory_roles if role[0] != user_administrator])

    result = tenant.run()

    assert result.returncode == 0, result.stderr
    assert sorted(tenant.posts()) == sorted([*new, user_administrator])
    assert sorted(tenant.read()["app_roles"]) == sorted(app_roles)
    assert "assigned User Administrator" in result.stdout


UNIT = "4d819ce9-9257-44a5-8d6e-2f1b3c5a7e90"
MAILBOX = {f"role-{role.replaces}" for role in EXCHANGE_APPLICATION_ROLES}


def scoped_grants(*, mailbox_scope: bool = False) -> tuple[list[list[str]], list[list[str]]]:
    app_roles, _ = every_grant()
    if mailbox_scope:
        app_roles = [grant for grant in app_roles if grant[1] not in MAILBOX]
    return app_roles, [[role.template_id, role.scope] for role in directory_roles(UNIT)]


def test_scope_au_assigns_user_administrator_at_the_units_scope(tmp_path: Path) -> None:
    tenant = Tenant(tmp_path, [], [])

    result = tenant.run("--scope-au", UNIT)

    assert result.returncode == 0, result.stderr
    app_roles, directory_roles_ = scoped_grants()
    state = tenant.read()
    assert sorted(state["app_roles"]) == sorted(app_roles)
    assert sorted(state["directory_roles"]) == sorted(directory_roles_)
    assert [USER_ADMINISTRATOR, f"/administrativeUnits/{UNIT}"] in state["directory_roles"]
    assert [USER_ADMINISTRATOR, "/"] not in state["directory_roles"]
    assert f"assigned User Administrator at /administrativeUnits/{UNIT}" in result.stdout
    assert "broader than chosen" not in result.stdout
    again = tenant.run("--scope-au", UNIT)
    assert again.returncode == 0 and tenant.posts() == []


def test_scope_au_names_a_tenant_wide_assignment_and_removes_nothing(tmp_path: Path) -> None:
    tenant = Tenant(tmp_path, *every_grant())  # granted before the unit was chosen

    result = tenant.run("--scope-au", UNIT)

    assert result.returncode == 0, result.stderr
    assert [USER_ADMINISTRATOR, "/"] in tenant.read()["directory_roles"]
    assert "broader than chosen: User Administrator is also assigned tenant-wide" in (
        result.stdout)


def test_mailbox_scope_leaves_the_graph_mailbox_permissions_out(tmp_path: Path) -> None:
    tenant = Tenant(tmp_path, [], [])

    result = tenant.run("--scope-au", UNIT, "--mailbox-scope")

    assert result.returncode == 0, result.stderr
    app_roles, directory_roles_ = scoped_grants(mailbox_scope=True)
    assert sorted(tenant.read()["app_roles"]) == sorted(app_roles)
    assert sorted(tenant.read()["directory_roles"]) == sorted(directory_roles_)
    for role in EXCHANGE_APPLICATION_ROLES:
        assert f"not granted {role.replaces} (Exchange RBAC for Applications" in result.stdout


def test_mailbox_scope_names_a_tenant_wide_mailbox_permission_still_held(
        tmp_path: Path) -> None:
    tenant = Tenant(tmp_path, *every_grant())

    result = tenant.run("--scope-au", UNIT, "--mailbox-scope")

    assert result.returncode == 0, result.stderr
    for role in EXCHANGE_APPLICATION_ROLES:
        assert f"broader than chosen: {role.replaces} is granted tenant-wide" in result.stdout


@pytest.mark.parametrize("options", [("--scope-au", "Remediation scope"), ("--mailbox-scope",),
                                     ("--scope-au",), ("--everything",)])
def test_a_bad_option_changes_nothing(tmp_path: Path, options: tuple[str, ...]) -> None:
    tenant = Tenant(tmp_path, [], [])

    result = tenant.run(*options)

    assert result.returncode != 0
    assert tenant.read()["calls"] == []
