"""The sandbox refuses what Microsoft refuses, for the calls the cleanup added: a query option
"List oAuth2PermissionGrants" does not support, a directoryAudits filter property Graph does
not list, a Get-RecipientPermission parameter its reference does not list."""

import httpx

from remediation.sandbox import SandboxServer, demo_tenant
from remediation.sandbox.audit_log import parse_filter
from remediation.sandbox.cmdlets import BY_NAME

AUTH = {"Authorization": "Bearer sandbox-token"}


def test_grants_take_only_a_filter() -> None:
    server = SandboxServer(demo_tenant(with_alerts=False))
    base = server.start_in_thread()
    try:
        with httpx.Client(base_url=base, headers=AUTH, timeout=5) as http:
            refused = http.get("/v1.0/oauth2PermissionGrants", params={"$select": "id"})
            assert refused.status_code == 400
            assert refused.json()["error"]["code"] == "Request_UnsupportedQuery"
            taken = http.get("/v1.0/oauth2PermissionGrants",
                             params={"$filter": "principalId eq 'x'"})
            assert taken.status_code == 200
    finally:
        server.stop_thread()


def test_directory_audits_filter_on_the_apps_display_name_by_its_documented_name() -> None:
    assert parse_filter("initiatedBy/app/appDisplayName eq 'Graph Explorer'") is not None
    assert parse_filter("initiatedBy/app/displayName eq 'Graph Explorer'") is None


def test_get_recipient_permission_binds_only_its_documented_parameters() -> None:
    assert "includetrusteewithprimarysmtpaddress" not in {
        name.lower() for name in BY_NAME["get-recipientpermission"].parameters}
