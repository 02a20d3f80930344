"""Microsoft Graph directory routes: users and their passwords, sessions, groups, roles,
rules, mail folders and domains."""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp import web

from remediation.sandbox.app_rights import BEARER, ENABLE_DISABLE_ACCOUNT
from remediation.sandbox.context import CALL, TENANT, user_key
from remediation.sandbox.errors import graph_error
from remediation.sandbox.state import ROLE_NAMES, SandboxUser, TenantError

_ROLE_NAMESPACE = uuid.UUID("5d1c52a4-54a4-4d5c-9a53-1f7a4a3c9b10")
# The $filter shapes the sandbox understands on /users: one property, eq, a literal; or an
# SMTP proxy address, as `proxyAddresses/any(p:p eq 'smtp:x@y')` (quotes doubled inside).
_EQ_FILTER = re.compile(r"^\s*(mail|userPrincipalName)\s+eq\s+'((?:[^']|'')*)'\s*$",
                        re.IGNORECASE)
_PROXY_FILTER = re.compile(
    r"^\s*proxyAddresses/any\(\s*(\w+)\s*:\s*\1\s+eq\s+'((?:[^']|'')*)'\s*\)\s*$",
    re.IGNORECASE)
# What Graph v1.0 answers for a user when nothing is selected ("Working with users in
# Microsoft Graph", Common properties: https://learn.microsoft.com/graph/api/resources/users).
# Every other property "Requires $select to retrieve" (msgraph-sdk models/user.py: userType,
# accountEnabled, proxyAddresses, creationType, externalUserState, ...); with $select Graph
# answers exactly the selected properties, plus id.
_DEFAULT_USER_PROPERTIES = ("id", "businessPhones", "displayName", "givenName", "jobTitle",
                            "mail", "mobilePhone", "officeLocation", "preferredLanguage",
                            "surname", "userPrincipalName")
_USER_PROPERTIES = {name.lower(): name for name in (
    *_DEFAULT_USER_PROPERTIES, "accountEnabled", "onPremisesSyncEnabled", "userType",
    "proxyAddresses", "creationType", "externalUserState")}

routes = web.RouteTableDef()


def graph_root(request: web.Request) -> str:
    return f"{request.url.origin()}/v1.0"


def refusal(error: TenantError) -> web.Response:
    return graph_error(error.status, error.code, error.message)


def _not_found(segment: str) -> web.Response:
    return graph_error(
        404, "Request_ResourceNotFound",
        f"Resource '{segment}' does not exist or one of its queried reference-property "
        "objects are not present.")


def page(request: web.Request, items: list[dict[str, Any]], cap: int,
         context: str) -> web.Response:
    """One page of a collection: ``$top`` (at most ``cap``), then ``@odata.nextLink``."""
    try:
        size = min(int(request.query.get("$top", cap)), cap)
        start = int(request.query.get("$skiptoken", "0"))
    except ValueError:
        return graph_error(400, "BadRequest", "Invalid $top or $skiptoken.")
    size = max(size, 1)
    body: dict[str, Any] = {"@odata.context": f"{graph_root(request)}/$metadata#{context}",
                            "value": items[start:start + size]}
    if start + size < len(items):
        body["@odata.nextLink"] = str(request.url.update_query(
            {"$skiptoken": str(start + size)}))
    forced = request.app[TENANT].graph_next_link
    if forced is not None:
        body["@odata.nextLink"] = forced
    return web.json_response(body)


def _user_json(user: SandboxUser, selected: list[str] | None) -> dict[str, Any]:
    """The user as Graph answers it: the default properties, or the selected ones plus id."""
    every = {
        "id": user.id,
        "businessPhones": [],
        "displayName": user.display_name,
        "givenName": None,
        "jobTitle": None,
        "mail": user.graph_mail,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
        "surname": None,
        "userPrincipalName": user.user_principal_name,
        "accountEnabled": user.account_enabled,
        "onPremisesSyncEnabled": user.on_premises_sync_enabled,
        "userType": user.user_type,
        "proxyAddresses": list(user.proxy_addresses),
        "creationType": user.creation_type,
        "externalUserState": user.external_user_state,
    }
    names = _DEFAULT_USER_PROPERTIES if selected is None else ("id", *selected)
    return {name: every[name] for name in dict.fromkeys(names)}


def _selection(request: web.Request) -> list[str] | web.Response | None:
    """``$select`` on a user: the properties named (Graph's spelling), None when absent, or
    Graph's 400 for a property the user type does not have (names are case-insensitive)."""
    raw = request.query.get("$select")
    if raw is None:
        return None
    names: list[str] = []
    for name in (part.strip() for part in raw.split(",")):
        known = _USER_PROPERTIES.get(name.lower())
        if known is None:
            return graph_error(400, "BadRequest", f"Could not find a property named '{name}' "
                                                  "on type 'microsoft.graph.user'.")
        names.append(known)
    return names


def _selected_context(base: str, selected: list[str] | None) -> str:
    return base if selected is None else f"{base}({','.join(selected)})"


@routes.get("/v1.0/users")
async def list_users(request: web.Request) -> web.Response:
    tenant = request.app[TENANT]
    users = tenant.users()
    selected = _selection(request)
    if isinstance(selected, web.Response):
        return selected
    clause = request.query.get("$filter")
    if clause is not None:
        matching = _filtered(users, clause)
        if matching is None:
            return graph_error(400, "Request_UnsupportedQuery",
                               "Unsupported or invalid query filter clause specified.")
        if not tenant.users_filter_ignored:
            users = matching
    return page(request, [_user_json(u, selected) for u in users], tenant.graph_page_size,
                _selected_context("users", selected))


def _filtered(users: list[SandboxUser], clause: str) -> list[SandboxUser] | None:
    """The users a supported ``$filter`` selects (case-insensitive), None if unsupported."""
    match = _EQ_FILTER.match(clause)
    if match is not None:
        field, value = match.group(1).lower(), match.group(2).replace("''", "'").lower()
        # mail is mail only: an account without a mailbox has none, whatever its UPN.
        return [u for u in users
                if (u.graph_mail if field == "mail" else u.user_principal_name) == value]
    match = _PROXY_FILTER.match(clause)
    if match is None:
        return None
    value = match.group(2).replace("''", "'").lower()
    return [u for u in users if value in (p.lower() for p in u.proxy_addresses)]


# Graph may refuse a key segment it cannot parse instead of looking it up: a UPN with three
# apostrophes and an encoded `#` was answered 400 Request_BadRequest "Bad request. Please fix
# the request before retrying." (microsoftgraph/msgraph-sdk-dotnet#1101), a key with `('`
# 400 BadRequest "Bad Request - Error in query syntax." (jenkinsci/azure-ad-plugin#170), and
# one with `+` an UnknownError (microsoftgraph/microsoft-graph-explorer-v4#1847). Which
# characters exactly is not documented: the sandbox refuses those in
# SandboxTenant.refused_key_characters (the apostrophe unless a test says otherwise) on every
# /users/{key} path, with the first shape.
_KEY_REFUSED = "Bad request. Please fix the request before retrying."


def _key(request: web.Request) -> str:
    """The ``{user}`` segment as a lookup key; Graph's 400 for a key it refuses."""
    key = user_key(request.match_info["user"])
    if any(character in key for character in request.app[TENANT].refused_key_characters):
        refused = graph_error(400, "Request_BadRequest", _KEY_REFUSED)
        raise web.HTTPBadRequest(text=refused.text, content_type="application/json")
    return key


# Graph reads a segment starting with `$` as a system query option: a UPN that starts with `$`
# must be sent as /users('$x@contoso.com'); the plain form is a 400 ("Get user", Microsoft
# Graph v1.0 reference: https://learn.microsoft.com/graph/api/user-get). The sandbox refuses
# every /users/$... path the same way (the message text is ours).
@routes.route("*", r"/v1.0/users/{user:\$[^/]*}{tail:(/.*)?}")
async def dollar_segment(request: web.Request) -> web.Response:
    key = user_key(request.match_info["user"])
    return graph_error(400, "Request_BadRequest", f"Invalid object identifier '{key}'.")


@routes.get("/v1.0/users('{user}')")
async def get_user_by_literal(request: web.Request) -> web.Response:
    """``/users('key')``: an OData string literal, single quotes doubled inside."""
    literal = user_key(request.match_info["user"])
    if "'" in literal.replace("''", ""):
        return graph_error(400, "BadRequest", f"Bad Request - Error in query syntax: {literal}")
    return _user_response(request, literal.replace("''", "'"))


@routes.get("/v1.0/users/{user}")
async def get_user(request: web.Request) -> web.Response:
    return _user_response(request, _key(request))


def _user_response(request: web.Request, key: str) -> web.Response:
    selected = _selection(request)
    if isinstance(selected, web.Response):
        return selected
    try:
        user = request.app[TENANT].directory_user(key)
    except KeyError:
        return _not_found(key)
    context = _selected_context("users", selected)
    return web.json_response({"@odata.context": f"{graph_root(request)}/$metadata#{context}"
                                                "/$entity", **_user_json(user, selected)})


@routes.patch("/v1.0/users/{user}")
async def patch_user(request: web.Request) -> web.Response:
    key = _key(request)
    body = request[CALL].body
    profile = body.get("passwordProfile") if isinstance(body, dict) else None
    # Graph takes instance annotations in a body (msgraph-sdk sends "@odata.type" with every
    # model it serialises): they change nothing.
    changed = {name for name in body if not name.startswith("@odata.")} if isinstance(
        body, dict) else set()
    if changed == {"accountEnabled"}:
        if not request.app[TENANT].allows(ENABLE_DISABLE_ACCOUNT, request[BEARER]):
            return graph_error(403, "Authorization_RequestDenied",
                               "Insufficient privileges to complete the operation.")
        try:
            request.app[TENANT].set_account_enabled(key, body["accountEnabled"])
        except TenantError as error:
            return refusal(error)
        return web.Response(status=204)
    if not isinstance(profile, dict):
        return graph_error(400, "Request_BadRequest",
                           "The sandbox only supports updating passwordProfile or accountEnabled.")
    try:
        request.app[TENANT].reset_password(
            key, profile.get("password"), bool(profile.get("forceChangePasswordNextSignIn", False)))
    except TenantError as error:
        return refusal(error)
    return web.Response(status=204)


@routes.post("/v1.0/users/{user}/revokeSignInSessions")
async def revoke_sessions(request: web.Request) -> web.Response:
    try:
        request.app[TENANT].revoke_sessions(_key(request))
    except TenantError as error:
        return refusal(error)
    return web.json_response({
        "@odata.context": f"{graph_root(request)}/$metadata#Edm.Boolean",
        "value": True,
    })


@routes.get("/v1.0/users/{user}/transitiveMemberOf")
async def transitive_member_of(request: web.Request) -> web.Response:
    tenant = request.app[TENANT]
    key = _key(request)
    try:
        user = tenant.directory_user(key)
    except KeyError:
        return _not_found(key)
    groups: list[dict[str, Any]] = [
        {"@odata.type": "#microsoft.graph.group", "id": group_id,
         "displayName": tenant.groups.get(group_id, group_id),
         "isAssignableToRole": group_id in tenant.role_assignable_groups}
        for group_id in tenant.transitive_groups(user.group_ids)
    ]
    roles: list[dict[str, Any]] = [
        {"@odata.type": "#microsoft.graph.directoryRole",
         "id": str(uuid.uuid5(_ROLE_NAMESPACE, template_id)),
         "displayName": ROLE_NAMES.get(template_id, "Directory role"),
         "roleTemplateId": template_id}
        for template_id in user.role_template_ids
    ]
    return page(request, groups + roles, tenant.graph_page_size, "directoryObjects")


@routes.get("/v1.0/groups/{group}/owners")
async def group_owners(request: web.Request) -> web.Response:
    """Graph v1.0 "List group owners" (GroupMember.Read.All): users, as directoryObjects."""
    tenant = request.app[TENANT]
    group_id = request.match_info["group"]
    try:
        owners = tenant.owners_of(group_id)
    except TenantError as error:
        return refusal(error)
    return page(request, [{"@odata.type": "#microsoft.graph.user", "id": owner.id,
                           "displayName": owner.display_name,
                           "userPrincipalName": owner.user_principal_name}
                          for owner in owners], tenant.graph_page_size, "directoryObjects")


@routes.get("/v1.0/groups/{group}/transitiveMembers/microsoft.graph.group")
@routes.get("/v1.0/groups/{group}/transitiveMembers/graph.group")  # msgraph-sdk's spelling
async def group_nested_groups(request: web.Request) -> web.Response:
    """Graph v1.0 "List group transitive members", cast to groups (application permission
    GroupMember.Read.All among those listed): the groups nested in the group, at any depth.
    "List group transitive memberOf" is not served: its permission table lists no permission
    the app holds for it (GroupMember.ReadBasic.All, Group.ReadBasic.All, Directory.Read.All)."""
    tenant = request.app[TENANT]
    group_id = request.match_info["group"]
    try:
        tenant.group(group_id)
    except TenantError as error:
        return refusal(error)
    return page(request, [{"@odata.type": "#microsoft.graph.group", "id": nested,
                           "displayName": tenant.groups.get(nested, nested),
                           "isAssignableToRole": nested in tenant.role_assignable_groups}
                          for nested in tenant.nested_groups(group_id)],
                tenant.graph_page_size, "directoryObjects")


@routes.get("/v1.0/users/{user}/mailFolders/{folder}")
async def get_folder(request: web.Request) -> web.Response:
    """Graph v1.0 "Get mailFolder": by id or by well-known name, whatever the mailbox's
    language ("Well-known names work regardless of the locale of the user's mailbox")."""
    key = _key(request)
    try:
        folder = request.app[TENANT].mail_folder(key, request.match_info["folder"])
    except TenantError as error:
        return refusal(error)
    return web.json_response({
        "@odata.context": f"{graph_root(request)}/$metadata#users('{key}')/mailFolders/$entity",
        **folder})


@routes.get("/v1.0/users/{user}/mailFolders")
async def list_folders(request: web.Request) -> web.Response:
    key = _key(request)
    tenant = request.app[TENANT]
    try:
        folders = tenant.mail_folders(key)
    except TenantError as error:
        return refusal(error)
    return page(request, folders, tenant.folder_page_size, f"users('{key}')/mailFolders")


@routes.get("/v1.0/users/{user}/mailFolders/{folder}/messageRules")
async def list_rules(request: web.Request) -> web.Response:
    key = _key(request)
    if request.match_info["folder"].lower() != "inbox":
        return _folder_not_found()
    try:
        rules = request.app[TENANT].inbox_rules(key)
    except TenantError as error:
        return refusal(error)
    return web.json_response({
        "@odata.context": f"{graph_root(request)}/$metadata#users('{key}')/mailFolders('inbox')"
                          "/messageRules",
        "value": rules,
    })


@routes.patch("/v1.0/users/{user}/mailFolders/{folder}/messageRules/{rule}")
async def update_rule(request: web.Request) -> web.Response:
    if request.match_info["folder"].lower() != "inbox":
        return _folder_not_found()
    body = request[CALL].body
    if not isinstance(body, dict):
        return graph_error(400, "RequestBodyRead", "A JSON object is expected.")
    changes = {name: value for name, value in body.items() if not name.startswith("@odata.")}
    try:
        rule = request.app[TENANT].update_rule(
            _key(request), request.match_info["rule"], changes)
    except TenantError as error:
        return refusal(error)
    return web.json_response(rule)


@routes.get("/v1.0/domains")
async def list_domains(request: web.Request) -> web.Response:
    tenant = request.app[TENANT]
    return web.json_response({
        "@odata.context": f"{graph_root(request)}/$metadata#domains",
        "value": [{"id": domain, "isVerified": True, "isDefault": index == 0,
                   "authenticationType": "Federated" if tenant.federated(domain) else "Managed"}
                  for index, domain in enumerate(tenant.domains)]
                 + [{"id": domain, "isVerified": False, "isDefault": False,
                     "authenticationType": "Managed"} for domain in tenant.unverified_domains],
    })


def _folder_not_found() -> web.Response:
    return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
