"""Exchange admin REST: `InvokeCommand` for the restricted-sender and mailbox cmdlets."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from remediation.sandbox import delegation, inbox_rules
from remediation.sandbox.cmdlets import BINDING_EXCEPTION, binding_message, spec_of
from remediation.sandbox.context import CALL, TENANT, cmdlet_input
from remediation.sandbox.errors import exchange_error, raw_response
from remediation.sandbox.exchange_quirks import DEFAULT_RESULT_SIZE
from remediation.sandbox.state import (
    NOT_FOUND_EXCEPTION,
    SandboxTenant,
    SandboxUser,
    TenantError,
)

ANCHOR_MAILBOX = "APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tenant_id}"
_MAX_PAGE_SIZE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.IGNORECASE)

Cmdlet = Callable[[web.Request, SandboxTenant, dict[str, Any]], web.Response]

routes = web.RouteTableDef()


@routes.post("/adminapi/beta/{tenant_id}/InvokeCommand")
async def invoke_command(request: web.Request) -> web.Response:
    tenant = request.app[TENANT]
    name, parameters = cmdlet_input(request[CALL].body)
    refusal = _access_refusal(tenant, name or "")
    if refusal is not None:
        return refusal
    tenant_id = request.match_info["tenant_id"]
    if tenant_id.lower() != tenant.tenant_id.lower():
        return exchange_error(404, "NotFound", f"Tenant '{tenant_id}' was not found.")
    expected_anchor = ANCHOR_MAILBOX.format(tenant_id=tenant.tenant_id)
    if request.headers.get("X-AnchorMailbox", "").lower() != expected_anchor.lower():
        return exchange_error(400, "BadRequest", f"X-AnchorMailbox must be '{expected_anchor}'.")
    if name is None:
        return exchange_error(400, "BadRequest", "The body needs CmdletInput.CmdletName.")
    spec = spec_of(name)
    if spec is None:
        return exchange_error(
            400, "BadRequest",
            f"The term '{name}' is not recognized as a cmdlet, function, script file, or "
            "executable program.", "System.Management.Automation.CommandNotFoundException")
    unknown = spec.unknown(parameters)
    if unknown:
        return exchange_error(400, "BadRequest", binding_message(unknown[0]), BINDING_EXCEPTION,
                              inner_key=tenant.exchange.inner_key)
    cmdlet = CMDLETS.get(spec.name.lower())
    if cmdlet is None:
        return exchange_error(501, "NotImplemented",
                              f"The sandbox does not model {spec.name} yet.")
    try:
        return cmdlet(request, tenant, spec.canonical(parameters))
    except TenantError as error:
        return exchange_error(error.status, error.code, error.message, error.exception_type,
                              inner_key=tenant.exchange.inner_key)


def _access_refusal(tenant: SandboxTenant, cmdlet: str) -> web.Response | None:
    """How Exchange turns away an app that lacks its rights (exchange_quirks.ExchangeQuirks)."""
    quirks = tenant.exchange
    if quirks.app_access == "no_app_role":
        return unauthorized(tenant)
    if quirks.app_access == "no_directory_role":
        return raw_response(403, "<html><body><h2>403 - Forbidden: Access is denied."
                                 "</h2></body></html>")
    if quirks.app_access == "not_allowed_to_call":
        text = f"User is not allowed to call {cmdlet}"
        return web.json_response({"error": {"code": "Unauthorized", "message": text,
                                            "innererror": {"message": text, "type": (
                                                "Microsoft.Exchange.Admin.OData.Core."
                                                "ODataServiceException")}}}, status=401)
    if quirks.app_access == "role_not_supported":
        text = (f"The role assigned to application {tenant.app_object_id} isn't supported in "
                "this scenario. Please check online documentation for assigning correct "
                "Directory Roles to Azure AD Application for EXO App-Only Authentication.")
        if quirks.app_access_cause_in == "message":
            return web.json_response({"error": {"code": "BadRequest", "message": text}},
                                     status=quirks.app_access_status)
        return exchange_error(quirks.app_access_status, "BadRequest", text,
                              inner_key=quirks.inner_key, cause_in=quirks.app_access_cause_in)
    return None


def unauthorized(tenant: SandboxTenant) -> web.Response:
    """No Exchange.ManageAsApp (nor a directory role): 401 with only WWW-Authenticate."""
    return raw_response(401, None, {"WWW-Authenticate": (
        'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", '
        f'trusted_issuers="00000001-0000-0000-c000-000000000000@{tenant.tenant_id}", '
        'token_types="app_asserted_user_v1 service_asserted_app_v1", '
        'error="invalid_token"')})


def get_blocked_sender_address(request: web.Request, tenant: SandboxTenant,
                               parameters: dict[str, Any]) -> web.Response:
    sender = parameters.get("SenderAddress")
    if sender:
        entries = tenant.read_block(str(sender))
        if not entries and tenant.exchange.unlisted_sender == "not_found":
            raise TenantError(
                400, "BadRequest",
                f"The operation couldn't be performed because object '{sender}' couldn't be "
                "found.", NOT_FOUND_EXCEPTION)
        return _reply(request, tenant, entries)
    # The whole list: the cmdlet has no ResultSize (its reference lists -SenderAddress only)
    # and pages with next links.
    entries = tenant.blocked_entries()
    size = _page_size(request.headers.get("Prefer", ""), tenant.exchange_page_size)
    if "$skiptoken" in request.query and tenant.exchange.expire_next_links > 0:
        tenant.exchange.expire_next_links -= 1
        raise TenantError(400, "BadRequest", "Expired or Invalid pagination request.")
    try:
        start = int(request.query.get("$skiptoken", "0"))
    except ValueError:
        raise TenantError(400, "BadRequest", "Invalid $skiptoken.") from None
    end = size if tenant.exchange.repeat_next_link else start + size
    next_link = None
    if end < len(entries):
        origin = tenant.exchange.next_link_origin or str(request.url.origin())
        next_link = f"{origin}{request.path}?$skiptoken={end}"
    return _reply(request, tenant, entries[start:end], next_link)


def remove_blocked_sender_address(request: web.Request, tenant: SandboxTenant,
                                  parameters: dict[str, Any]) -> web.Response:
    sender = _required(parameters, "SenderAddress")
    reason = parameters.get("Reason")
    tenant.remove_block(sender, str(reason) if reason is not None else None)
    return _no_output(request, tenant)


def get_mailbox(request: web.Request, tenant: SandboxTenant,
                parameters: dict[str, Any]) -> web.Response:
    """One mailbox by ``Identity``; without the parameter, every mailbox up to
    ``ResultSize``. An ``Identity`` that is empty or null is refused: Exchange would read it
    as "all objects" (the cmdlet's reference: ``Identity`` is optional and selects one)."""
    names = parameters.get("IncludeGrantSendOnBehalfToWithDisplayNames") is True
    if "Identity" not in parameters:
        users = [user for user in tenant.users() if user.user_type != "Guest"]
        limit = _result_size(parameters.get("ResultSize"))
        warnings = [] if limit is None or len(users) <= limit else _truncation_warning(
            parameters, limit)
        return _reply(request, tenant, [_mailbox_row(tenant, user, names)
                                        for user in users[:limit]], warnings=warnings)
    user = tenant.mailbox(_required(parameters, "Identity"))
    return _reply(request, tenant, [_mailbox_row(tenant, user, names)])


def _mailbox_row(tenant: SandboxTenant, user: SandboxUser, names: bool) -> dict[str, Any]:
    smtp = user.forwarding_smtp_address
    return {
        "Name": delegation.mailbox_name(user), "Alias": user.address.split("@")[0],
        "ExternalDirectoryObjectId": user.id, "ExchangeGuid": user.exchange_guid,
        "PrimarySmtpAddress": user.address,
        "UserPrincipalName": user.user_principal_name,
        "RecipientTypeDetails": user.recipient_type_details,
        "ForwardingSmtpAddress": f"smtp:{smtp}" if smtp else None,
        "ForwardingAddress": user.forwarding_address,
        "DeliverToMailboxAndForward": user.deliver_to_mailbox_and_forward,
        **delegation.send_on_behalf(tenant, user, names),
    }


def get_mailbox_permission(request: web.Request, tenant: SandboxTenant,
                           parameters: dict[str, Any]) -> web.Response:
    """One mailbox's permission rows (``Identity`` is required by the reference), those of
    ``User`` only when it is given, at most ``ResultSize``."""
    mailbox = tenant.mailbox(_required(parameters, "Identity"))
    rows = delegation.permission_rows(tenant, mailbox)
    if parameters.get("User"):
        wanted = str(parameters["User"]).lower()
        rows = [row for row in rows if str(row["User"]).lower() == wanted]
    return _reply(request, tenant, rows[:_result_size(parameters.get("ResultSize"))])


def get_recipient_permission(request: web.Request, tenant: SandboxTenant,
                             parameters: dict[str, Any]) -> web.Response:
    """SendAs rows of one recipient; without ``Identity``, of every recipient (the
    reference's warning: a null Identity returns all objects). ``Trustee`` and
    ``AccessRights`` (only ``SendAs`` is valid) filter, ``ResultSize`` caps."""
    if "Identity" in parameters:
        mailboxes = [tenant.mailbox(_required(parameters, "Identity"))]
    else:
        mailboxes = [user for user in tenant.users() if user.user_type != "Guest"]
    rights = parameters.get("AccessRights")
    if rights is not None and [str(r) for r in (rights if isinstance(rights, list)
                                                 else [rights])] != ["SendAs"]:
        raise TenantError(400, "BadRequest", "Cannot bind parameter 'AccessRights': the only "
                          "valid value is SendAs.", "System.Management.Automation."
                          "ParameterBindingException")
    rows = [row for mailbox in mailboxes for row in delegation.recipient_rows(tenant, mailbox)]
    if parameters.get("Trustee"):
        wanted = str(parameters["Trustee"]).lower()
        rows = [row for row in rows if str(row["Trustee"]).lower() == wanted]
    return _reply(request, tenant, rows[:_result_size(parameters.get("ResultSize"))])


def set_mailbox(request: web.Request, tenant: SandboxTenant,
                parameters: dict[str, Any]) -> web.Response:
    tenant.set_mailbox(_required(parameters, "Identity"), parameters)
    return _no_output(request, tenant)


def _rows(read: Callable[[SandboxTenant, dict[str, Any]], list[dict[str, Any]]]) -> Cmdlet:
    return lambda request, tenant, parameters: _reply(request, tenant, read(tenant, parameters))


def _enabled(enabled: bool) -> Cmdlet:
    def handler(request: web.Request, tenant: SandboxTenant,
                parameters: dict[str, Any]) -> web.Response:
        inbox_rules.set_rule_enabled(tenant, parameters, enabled)
        return _no_output(request, tenant)

    return handler


CMDLETS: dict[str, Cmdlet] = {
    "get-blockedsenderaddress": get_blocked_sender_address,
    "remove-blockedsenderaddress": remove_blocked_sender_address,
    "get-mailbox": get_mailbox,
    "set-mailbox": set_mailbox,
    "get-mailboxpermission": get_mailbox_permission,
    "get-recipientpermission": get_recipient_permission,
    # Inbox rules as Exchange shows them, and the unified audit log (their own modules).
    "get-inboxrule": _rows(inbox_rules.get_inbox_rule),
    "disable-inboxrule": _enabled(False),
    "enable-inboxrule": _enabled(True),
    "get-mailboxfolderstatistics": _rows(inbox_rules.get_mailbox_folder_statistics),
    "get-adminauditlogconfig": _rows(lambda tenant, _: tenant.unified_audit_log.config()),
    "search-unifiedauditlog": _rows(lambda tenant, parameters: tenant.unified_audit_log.search(
        parameters)),
}


def _reply(request: web.Request, tenant: SandboxTenant, value: list[dict[str, Any]],
           next_link: str | None = None, warnings: list[str] | None = None) -> web.Response:
    body: dict[str, Any] = {
        "@odata.context": f"{request.url.origin()}/adminapi/beta/{tenant.tenant_id}"
                          "/$metadata#Collection(Exchange.GenericHashTable)",
        "@adminapi.warnings": warnings or [],
        "value": value,
    }
    if next_link is not None:
        body[tenant.exchange.next_link_key] = next_link
    return web.json_response(body)


def _no_output(request: web.Request, tenant: SandboxTenant) -> web.Response:
    """A cmdlet that returns nothing: an empty 200, a 204, or JSON with no items."""
    if tenant.exchange.empty_success == "empty":
        return web.Response(status=200)
    if tenant.exchange.empty_success == "no_content":
        return web.Response(status=204)
    return _reply(request, tenant, [])


def _truncation_warning(parameters: dict[str, Any], limit: int) -> list[str]:
    """Exchange warns only when its default ResultSize cut the answer short."""
    if "ResultSize" in parameters:
        return []
    return [f"By default, only the first {limit} items are returned. Use the ResultSize "
            "parameter to specify the number of items returned. To return all items, specify "
            "\"-ResultSize Unlimited\"."]


def _result_size(value: object) -> int | None:
    """None for ``Unlimited``; the default cap when absent (Get-* cmdlets' ResultSize)."""
    if value is None:
        return DEFAULT_RESULT_SIZE
    if isinstance(value, str) and value.lower() == "unlimited":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise TenantError(
        400, "BadRequest", f"Cannot bind parameter 'ResultSize'. Cannot convert value "
        f"\"{value}\" to type \"Microsoft.Exchange.Data.Unlimited`1[System.UInt32]\".",
        "System.Management.Automation.ParameterBindingException")


def _required(parameters: dict[str, Any], name: str) -> str:
    value = parameters.get(name)
    if not value:
        raise TenantError(
            400, "BadRequest",
            f"Cannot bind argument to parameter '{name}' because it is an empty string or null.",
            "System.Management.Automation.ParameterBindingValidationException")
    return str(value)


def _page_size(prefer: str, server_max: int) -> int:
    """What ``Prefer: odata.maxpagesize`` asks for, never more than the server's own page."""
    match = _MAX_PAGE_SIZE.search(prefer)
    size = min(int(match.group(1)), server_max) if match else server_max
    return max(size, 1)
