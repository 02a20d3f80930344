"""Exchange admin REST: `InvokeCommand` for the restricted-sender and mailbox cmdlets."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from remediation.sandbox.context import CALL, TENANT, cmdlet_input
from remediation.sandbox.errors import exchange_error
from remediation.sandbox.state import SandboxTenant, TenantError

ANCHOR_MAILBOX = "APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tenant_id}"
_MAX_PAGE_SIZE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.IGNORECASE)

Cmdlet = Callable[[web.Request, SandboxTenant, dict[str, Any]], web.Response]

routes = web.RouteTableDef()


@routes.post("/adminapi/beta/{tenant_id}/InvokeCommand")
async def invoke_command(request: web.Request) -> web.Response:
    tenant = request.app[TENANT]
    tenant_id = request.match_info["tenant_id"]
    if tenant_id.lower() != tenant.tenant_id.lower():
        return exchange_error(404, "NotFound", f"Tenant '{tenant_id}' was not found.")
    expected_anchor = ANCHOR_MAILBOX.format(tenant_id=tenant.tenant_id)
    if request.headers.get("X-AnchorMailbox", "").lower() != expected_anchor.lower():
        return exchange_error(400, "BadRequest", f"X-AnchorMailbox must be '{expected_anchor}'.")
    name, parameters = cmdlet_input(request[CALL].body)
    if name is None:
        return exchange_error(400, "BadRequest", "The body needs CmdletInput.CmdletName.")
    cmdlet = CMDLETS.get(name.lower())
    if cmdlet is None:
        return exchange_error(
            400, "BadRequest",
            f"The term '{name}' is not recognized as a cmdlet, function, script file, or "
            "executable program.", "System.Management.Automation.CommandNotFoundException")
    try:
        return cmdlet(request, tenant, parameters)
    except TenantError as error:
        return exchange_error(error.status, error.code, error.message, error.exception_type)


def get_blocked_sender_address(request: web.Request, tenant: SandboxTenant,
                               parameters: dict[str, Any]) -> web.Response:
    sender = parameters.get("SenderAddress")
    if sender:
        return _reply(request, tenant, tenant.read_block(str(sender)))
    entries = tenant.blocked_entries()
    size = _page_size(request.headers.get("Prefer", ""), tenant.exchange_page_size)
    try:
        start = int(request.query.get("$skiptoken", "0"))
    except ValueError:
        raise TenantError(400, "BadRequest", "Invalid $skiptoken.") from None
    end = start + size
    next_link = (str(request.url.with_query({"$skiptoken": str(end)}))
                 if end < len(entries) else None)
    return _reply(request, tenant, entries[start:end], next_link)


def remove_blocked_sender_address(request: web.Request, tenant: SandboxTenant,
                                  parameters: dict[str, Any]) -> web.Response:
    sender = _required(parameters, "SenderAddress")
    reason = parameters.get("Reason")
    tenant.remove_block(sender, str(reason) if reason is not None else None)
    return _reply(request, tenant, [])


def get_mailbox(request: web.Request, tenant: SandboxTenant,
                parameters: dict[str, Any]) -> web.Response:
    user = tenant.mailbox(_required(parameters, "Identity"))
    smtp = user.forwarding_smtp_address
    return _reply(request, tenant, [{
        "PrimarySmtpAddress": user.address,
        "UserPrincipalName": user.user_principal_name,
        "ForwardingSmtpAddress": f"smtp:{smtp}" if smtp else None,
        "ForwardingAddress": user.forwarding_address,
        "DeliverToMailboxAndForward": user.deliver_to_mailbox_and_forward,
    }])


def set_mailbox(request: web.Request, tenant: SandboxTenant,
                parameters: dict[str, Any]) -> web.Response:
    tenant.set_mailbox(_required(parameters, "Identity"), parameters)
    return _reply(request, tenant, [])


CMDLETS: dict[str, Cmdlet] = {
    "get-blockedsenderaddress": get_blocked_sender_address,
    "remove-blockedsenderaddress": remove_blocked_sender_address,
    "get-mailbox": get_mailbox,
    "set-mailbox": set_mailbox,
}


def _reply(request: web.Request, tenant: SandboxTenant, value: list[dict[str, Any]],
           next_link: str | None = None) -> web.Response:
    body: dict[str, Any] = {
        "@odata.context": f"{request.url.origin()}/adminapi/beta/{tenant.tenant_id}"
                          "/$metadata#Collection(Exchange.GenericHashTable)",
        "adminapi.warnings": [],
        "value": value,
    }
    if next_link is not None:
        body["@odata.nextLink"] = next_link
    return web.json_response(body)


def _required(parameters: dict[str, Any], name: str) -> str:
    value = parameters.get(name)
    if not value:
        raise TenantError(
            400, "BadRequest",
            f"Cannot bind argument to parameter '{name}' because it is an empty string or null.",
            "System.Management.Automation.ParameterBindingValidationException")
    return str(value)


def _page_size(prefer: str, default: int) -> int:
    match = _MAX_PAGE_SIZE.search(prefer)
    size = int(match.group(1)) if match else default
    return max(size, 1)
