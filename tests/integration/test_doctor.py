"""`remediation doctor` against the sandbox tenant: it passes when everything is in place,
and when a sandbox switch takes a capability away it names what is missing and the fix."""

import re
from pathlib import Path

import pytest

from remediation.permissions import (
    DIRECTORY_ROLES,
    EXCHANGE_ONLINE,
    MICROSOFT_GRAPH,
    PERMISSIONS,
)
from remediation.sandbox import Fault, SandboxTenant, pim_shapes
from tests.cli_helpers import clean_environment, run_cli  # noqa: F401 (a fixture)
from tests.conftest import sandbox_env

GRANT = "bash infra/grant-permissions.sh"
NOBODY = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def env(clean_environment: None,  # noqa: F811 (the fixture imported above)
        threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> dict[str, str]:
    """The sandbox's settings; each test mints the token once the tenant is as it wants."""
    return {**sandbox_env(threaded_sandbox_url, tenant, tmp_path / "state.db"),
            "HTTP_MAX_RETRIES": "0"}


MANAGED_IDENTITY = None  # the app's own tokens, from the sandbox's managed identity endpoint


def doctor(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           env: dict[str, str], token: str | None) -> tuple[int, str]:
    """``remediation doctor`` with the app's managed identity (``token`` None, as in Azure),
    or with ``SANDBOX_TOKEN`` set to ``token``."""
    settings = env if token is None else {**env, "SANDBOX_TOKEN": token}
    status, out, err = run_cli(monkeypatch, capsys, settings, "doctor")
    assert "Traceback" not in out + err
    assert token is None or token not in out + err, "doctor printed the token"
    assert not re.search(r"eyJ[\w-]+\.", out + err), "doctor printed a JWT"
    return status, out


def row(out: str, check: str) -> str:
    """The table's row for ``check`` on one line: its status, check, result and fix (a row
    wraps over the indented lines under it)."""
    lines = out.splitlines()
    [start] = [n for n, line in enumerate(lines)
               if re.search(rf"^\S+\s+{re.escape(check)}(:|$)", line)]
    end = start + 1
    while end < len(lines) and lines[end].startswith(" "):
        end += 1
    return " ".join(" ".join(lines[start:end]).split())


def test_doctor_passes_against_the_sandbox(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str],
                                           env: dict[str, str], tenant: SandboxTenant) -> None:
    status, out = doctor(monkeypatch, capsys, env, MANAGED_IDENTITY)

    assert status == 0, out
    assert re.search(r"^status\s+check: result\n\s+fix: what to do$", out, re.MULTILINE), out
    checks = ["configuration", "token for Microsoft Graph", "token for Office 365 Exchange Online",
              *(f"permission {p.name}" for p in PERMISSIONS),
              *(f"role {r.name}" for r in DIRECTORY_ROLES),
              "read Defender alerts", "read a user", "read role assignments",
              "read the Restricted users list", "read a mailbox", "queues", "schedule a message",
              "journal"]
    for check in checks:
        assert row(out, check).startswith("ok "), row(out, check)
    assert "FAIL" not in out
    assert "everything needed is in place" in out


def test_each_read_is_harmless_and_asks_for_one_item(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    doctor(monkeypatch, capsys, env, MANAGED_IDENTITY)

    reads = {(r.method, r.path, r.cmdlet): r for r in tenant.requests()}
    assert reads[("GET", "/v1.0/security/alerts_v2", None)].query["$top"] == "1"
    assert reads[("GET", "/v1.0/users", None)].query["$top"] == "1"
    assert reads[("GET", "/v1.0/roleManagement/directory/roleAssignments", None)
                 ].query["$top"] == "1"
    invoke = f"/adminapi/beta/{tenant.tenant_id}/InvokeCommand"
    blocked = reads[("POST", invoke, "Get-BlockedSenderAddress")].body["CmdletInput"]
    # The cmdlet has -SenderAddress and nothing else: one address no tenant holds.
    assert blocked["Parameters"] == {"SenderAddress": "remediation-doctor@probe.invalid"}
    mailbox = reads[("POST", invoke, "Get-Mailbox")].body["CmdletInput"]
    assert mailbox["Parameters"] == {"ResultSize": 1}  # never an empty Identity: "all"
    assert {r.cmdlet for r in tenant.requests() if r.method == "POST"} <= {
        "Get-BlockedSenderAddress", "Get-Mailbox"}
    assert all(r.method in ("GET", "POST") for r in tenant.requests())


def test_a_missing_graph_permission_is_named_with_its_fix(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    tenant.denied_permissions.add("RoleManagement.Read.Directory")

    status, out = doctor(monkeypatch, capsys, env, MANAGED_IDENTITY)

    assert status == 1
    fix = f"grant RoleManagement.Read.Directory (Microsoft Graph): {GRANT} {tenant.app_object_id}"
    permission = row(out, "permission RoleManagement.Read.Directory")
    assert permission.startswith("FAIL ")
    assert "not in the token's roles" in permission and fix in permission
    read = row(out, "read role assignments")
    assert read.startswith("FAIL ")
    assert "refused: every case will escalate because Graph answered 403" in read
    assert fix in read
    assert row(out, "read Defender alerts").startswith("ok ")
    assert "not everything needed is in place" in out


def test_without_a_jwt_the_reads_decide(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str],
                                        env: dict[str, str], tenant: SandboxTenant) -> None:
    tenant.denied_permissions.add("SecurityAlert.ReadWrite.All")

    status, out = doctor(monkeypatch, capsys, env, tenant.token)

    assert status == 1
    assert "not a JWT" in row(out, "token for Microsoft Graph")
    assert row(out, "token for Microsoft Graph").startswith("info ")
    read = row(out, "read Defender alerts")
    assert read.startswith("FAIL ")
    assert "grant SecurityAlert.ReadWrite.All (Microsoft Graph)" in read


APP_IDENTITY = "run doctor with the app's own identity: its token carries its roles"


@pytest.mark.parametrize("taken", ["nothing", "User Administrator", "write permissions"])
def test_an_opaque_token_never_passes_what_it_cannot_show(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant, taken: str) -> None:
    """The static token says nothing of the app's rights, and the harmless reads exercise
    neither the writes (reset, revoke, inbox rules) nor the directory roles: whether they are
    in place or not, doctor cannot say they are, so it cannot pass."""
    if taken == "User Administrator":
        tenant.app_has_user_administrator = False
    elif taken == "write permissions":
        tenant.denied_permissions.update({"User.RevokeSessions.All", "MailboxSettings.ReadWrite",
                                          "User-PasswordProfile.ReadWrite.All"})

    status, out = doctor(monkeypatch, capsys, env, tenant.token)

    assert status == 1, out
    for name in ("User.RevokeSessions.All", "User-PasswordProfile.ReadWrite.All",
                 "MailboxSettings.ReadWrite"):
        line = row(out, f"permission {name}")
        assert line.startswith("UNVERIFIED ") and line.endswith(APP_IDENTITY), line
    assert row(out, "permission User.Read.All").startswith("ok ")  # a read used it
    for role in DIRECTORY_ROLES:
        assert row(out, f"role {role.name}").startswith("UNVERIFIED ")
        assert APP_IDENTITY in row(out, f"role {role.name}")
    assert "could not be verified" in out


def app_token_without_wids(tenant: SandboxTenant) -> None:
    """The managed identity's tokens will carry no ``wids`` claim."""
    tenant.token_carries_wids = False


def test_without_wids_the_roles_are_read_from_the_apps_role_assignments(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    status, out = doctor(monkeypatch, capsys, env, app_token_without_wids(tenant))

    assert status == 0, out
    for role in DIRECTORY_ROLES:
        assert row(out, f"role {role.name}").startswith("ok ")
    [read] = [r for r in tenant.requests() if r.query.get("$filter")
              and r.path == "/v1.0/roleManagement/directory/roleAssignments"]
    assert read.query["$filter"] == f"principalId eq '{tenant.app_object_id}'"


def test_without_wids_a_missing_user_administrator_role_is_named(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    tenant.app_has_user_administrator = False

    status, out = doctor(monkeypatch, capsys, env, app_token_without_wids(tenant))

    assert status == 1
    line = row(out, "role User Administrator")
    assert line.startswith("FAIL ")
    assert "assign the User Administrator role (fe930be7-5e62-47db-91af-98c3a49a38b1)" in line
    assert row(out, "role Exchange Administrator").startswith("ok ")


def test_the_sandbox_points_doctor_at_the_apps_managed_identity(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        clean_environment: None) -> None:  # noqa: F811 (the fixture imported above)
    import remediation.sandbox.server as server
    from remediation.domain.tokens import read_claims
    from remediation.sandbox import demo_tenant

    async def no_serving(*args: object) -> None:
        return None

    monkeypatch.setattr(server, "serve_forever", no_serving)

    status, _, err = run_cli(monkeypatch, capsys, {"IDENTITY_HEADER": "kept"}, "sandbox",
                             "--port", "8080")

    assert status == 0
    assert "export IDENTITY_ENDPOINT=http://127.0.0.1:8080/_sandbox/msi/token" in err
    assert "export IDENTITY_HEADER=kept" in err  # the secret the shell already holds
    # What that endpoint issues: a token per resource with the app's roles on that resource
    # only (as Entra does) and its directory roles.
    tenant = demo_tenant()
    for audience, resource in (("https://graph.microsoft.com", MICROSOFT_GRAPH),
                               ("https://outlook.office365.com", EXCHANGE_ONLINE)):
        claims = read_claims(tenant.access_token(audience))
        assert claims is not None
        assert claims.roles == {p.name for p in PERMISSIONS if p.resource == resource}
        assert claims.wids == {role.template_id for role in DIRECTORY_ROLES}


def test_exchange_without_its_app_role_names_the_permission_and_the_role(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    tenant.exchange.app_access = "no_app_role"

    status, out = doctor(monkeypatch, capsys, env, MANAGED_IDENTITY)

    assert status == 1
    fix = ("Exchange answered 401: grant `Exchange.ManageAsApp` and assign the Exchange "
           "Administrator role")
    for check in ("read the Restricted users list", "read a mailbox"):
        assert row(out, check).startswith("FAIL ") and fix in row(out, check)
    assert row(out, "permission Exchange.ManageAsApp").startswith("FAIL ")
    assert row(out, "role Exchange Administrator").startswith("FAIL ")


def test_exchange_without_its_directory_role_names_the_role(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    tenant.exchange.app_access = "no_directory_role"

    status, out = doctor(monkeypatch, capsys, env, MANAGED_IDENTITY)

    assert status == 1
    assert row(out, "permission Exchange.ManageAsApp").startswith("ok ")
    read = row(out, "read the Restricted users list")
    assert "Exchange answered 403: assign the Exchange Administrator role" in read
    assert f"{GRANT} {tenant.app_object_id}" in read


def test_a_missing_user_administrator_role_is_named(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    tenant.app_has_user_administrator = False

    status, out = doctor(monkeypatch, capsys, env, MANAGED_IDENTITY)

    assert status == 1
    line = row(out, "role User Administrator")
    assert line.startswith("FAIL ")
    assert "assign the User Administrator role (fe930be7-5e62-47db-91af-98c3a49a38b1)" in line


def test_a_bad_setting_stops_doctor_before_any_call(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    status, out, err = run_cli(monkeypatch, capsys,
                               {**env, "PROTECTED_GROUP_IDS": "exec-team"}, "doctor")

    assert (status, out) == (2, "")
    assert err == ("remediation: configuration error: PROTECTED_GROUP_IDS: 'exec-team' is not "
                   "a group object id (a GUID)\n")
    assert tenant.requests() == []


def test_an_unreachable_tenant_is_a_failure_with_the_setting_to_check(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens
    status, out = doctor(monkeypatch, capsys, {**env, "GRAPH_ENDPOINT": closed,
                                               "EXCHANGE_ENDPOINT": closed},
                         MANAGED_IDENTITY)

    assert status == 1
    assert "check GRAPH_ENDPOINT" in row(out, "read a user")
    assert "check EXCHANGE_ENDPOINT" in row(out, "read a mailbox")
    assert row(out, "journal").startswith("ok ")


def test_a_cmdlet_exchange_refuses_is_named_with_its_cause_not_the_tenant_id(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    tenant.add_fault(Fault(status=400, cmdlet="Get-BlockedSenderAddress", code="BadRequest",
                           message="A parameter cannot be found that matches parameter name "
                                   "'ResultSize'.",
                           exception_type="System.Management.Automation."
                                          "ParameterBindingException", times=None))

    status, out = doctor(monkeypatch, capsys, env, MANAGED_IDENTITY)

    assert status == 1
    line = row(out, "read the Restricted users list")
    assert line.startswith("FAIL ")
    assert "Get-BlockedSenderAddress" in line and "'ResultSize'" in line
    assert "AZURE_TENANT_ID" not in line
    assert "parameter" in line.split("'ResultSize'")[-1]  # the fix says what is wrong


@pytest.mark.parametrize("access", ["role_not_supported", "not_allowed_to_call"])
def test_exchanges_own_words_for_missing_rights_name_the_role(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant, access: str) -> None:
    tenant.exchange.app_access = access  # type: ignore[assignment]
    tenant.exchange.app_access_status = 500

    status, out = doctor(monkeypatch, capsys, env, MANAGED_IDENTITY)

    assert status == 1
    line = row(out, "read the Restricted users list")
    assert line.startswith("FAIL ") and "Exchange Administrator" in line, line
    assert "AZURE_TENANT_ID" not in line


def test_a_token_of_another_tenant_and_a_wrong_tenant_id_are_named(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    wrong = "11111111-2222-3333-4444-555555555555"

    status, out = doctor(monkeypatch, capsys, {**env, "AZURE_TENANT_ID": wrong},
                         MANAGED_IDENTITY)

    assert status == 1
    token = row(out, "token for Microsoft Graph")
    assert token.startswith("FAIL ") and f"issued by tenant {tenant.tenant_id}" in token
    assert f"check AZURE_TENANT_ID ({wrong})" in row(out, "read a mailbox")


# -- the guardrails' reads: what every case will meet -----------------------------------------


GUARDRAIL_READS = {"role_assignments": "read role assignments",
                   "role_eligibility": "read PIM role eligibility",
                   "group_eligibility": "read PIM for Groups eligibility",
                   "group_assignments": "read PIM for Groups assignments"}
PIM_PATHS = {
    "role_eligibility": "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances",
    "group_eligibility":
        "/v1.0/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances",
    "group_assignments":
        "/v1.0/identityGovernance/privilegedAccess/group/assignmentScheduleInstances"}
REFUSED = "refused: every case will escalate because"


def test_each_read_the_guardrails_need_is_probed_as_they_ask_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    status, out = doctor(monkeypatch, capsys, env, MANAGED_IDENTITY)

    assert status == 0, out
    for check in GUARDRAIL_READS.values():
        assert re.search(r"^ok\s+" + re.escape(check) + r":?\s+readable(\s|$)", row(out, check))
    # The guardrails' own shape of request, on a principal that holds nothing.
    for path in PIM_PATHS.values():
        [read] = [r for r in tenant.requests() if r.path == path]
        assert read.query == {"$filter": f"principalId eq '{NOBODY}'"}, read.query
        assert read.status == 200


def test_without_p2_the_pim_reads_say_no_pim_data_and_doctor_passes(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant) -> None:
    tenant.pim_licensed = False

    status, out = doctor(monkeypatch, capsys, env, MANAGED_IDENTITY)

    assert status == 0, out
    for key in PIM_PATHS:
        line = row(out, GUARDRAIL_READS[key])
        assert line.startswith("ok ") and "no PIM data in this tenant" in line, line
    assert "readable" in row(out, "read role assignments")


@pytest.mark.parametrize("key", sorted(PIM_PATHS))
@pytest.mark.parametrize(("shape", "because"), [
    (pim_shapes.NOT_ONBOARDED, "PIM is not onboarded"),
    (pim_shapes.UNSUPPORTED, "ResourceTypeNotSupported"),
])
def test_a_pim_answer_that_proves_nothing_fails_doctor(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant, key: str, shape: str,
        because: str) -> None:
    tenant.pim_refusals = {key: shape}

    status, out = doctor(monkeypatch, capsys, env, MANAGED_IDENTITY)

    assert status == 1
    line = row(out, GUARDRAIL_READS[key])
    assert line.startswith("FAIL ") and f"{REFUSED} {because}" in line, line
    assert "grant " not in line
    others = set(PIM_PATHS) - {key}
    assert all("readable" in row(out, GUARDRAIL_READS[other]) for other in others)


@pytest.mark.parametrize(("key", "permission"), [
    ("role_eligibility", "RoleManagement.Read.Directory"),
    ("group_eligibility", "PrivilegedEligibilitySchedule.Read.AzureADGroup"),
    ("group_assignments", "PrivilegedAssignmentSchedule.Read.AzureADGroup"),
])
def test_a_guardrail_read_without_its_permission_fails_naming_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], tenant: SandboxTenant, key: str, permission: str) -> None:
    # An upgrade that did not re-run the grant script: every case would escalate.
    tenant.denied_permissions.add(permission)

    status, out = doctor(monkeypatch, capsys, env, tenant.token)  # the reads must say it

    assert status == 1
    line = row(out, GUARDRAIL_READS[key])
    assert line.startswith("FAIL ") and f"{REFUSED} Graph answered 403" in line, line
    assert f"grant {permission} (Microsoft Graph): {GRANT}" in line


# -- the sandbox's tokens ---------------------------------------------------------------------


async def test_the_sandbox_issues_tokens_it_accepts_and_refuses_edited_ones(
        sandbox_url: str, tenant: SandboxTenant) -> None:
    import base64
    import json

    import httpx

    async with httpx.AsyncClient(base_url=sandbox_url) as client:
        issued = (await client.get("/_sandbox/token")).text
        header, payload, signature = issued.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["roles"].append("Directory.ReadWrite.All")
        edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

        accepted = await client.get("/v1.0/users", headers={"Authorization": f"Bearer {issued}"})
        refused = await client.get("/v1.0/users", headers={
            "Authorization": f"Bearer {header}.{edited}.{signature}"})

    assert accepted.status_code == 200
    assert refused.status_code == 401


async def test_a_right_taken_away_after_the_token_was_issued_is_refused(
        sandbox_url: str, tenant: SandboxTenant) -> None:
    import httpx

    token = tenant.access_token()
    tenant.denied_permissions.add("User.Read.All")
    async with httpx.AsyncClient(base_url=sandbox_url) as client:
        answer = await client.get("/v1.0/users", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "Authorization_RequestDenied"
