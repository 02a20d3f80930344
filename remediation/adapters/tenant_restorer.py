"""The calls ``remediation undo`` makes to put a case's changes back (``service.undo.Restorer``).

Each is the counterpart of the call that made the change, with the permission that call
already needed (remediation/permissions.py): nothing new is granted for undo.

- An inbox rule mailbox hygiene disabled through Graph: ``PATCH
  /users/{id}/mailFolders/inbox/messageRules/{id}`` with ``{"isEnabled": true}`` (Graph v1.0
  "Update messageRule", ``MailboxSettings.ReadWrite``).
- A rule disabled through Exchange (``Disable-InboxRule``): ``Enable-InboxRule -Identity
  <RuleIdentity> -Mailbox <upn> -Confirm:$false`` (office-docs-powershell
  ``exchange/exchange-ps/exchange/Enable-InboxRule.md``; like every inbox rule cmdlet it
  removes the mailbox's Outlook client-side rules). ``Exchange.ManageAsApp`` with the
  Exchange Administrator role.
- Mailbox forwarding: read with ``Get-Mailbox``, set with ``Set-Mailbox -Identity x
  -ForwardingSmtpAddress -ForwardingAddress -DeliverToMailboxAndForward`` to the values
  ``Get-Mailbox`` showed before the case cleared them (the same three parameters
  ``clear_forwarding`` sets, adapters/mailbox.py). Same permission and role.
- A consent: ``GET /oauth2PermissionGrants/{id}`` first (Graph v1.0 "Get
  oAuth2PermissionGrant", ``Directory.Read.All``; 404: none), then ``POST
  /oauth2PermissionGrants`` with clientId, consentType, principalId, resourceId and scope
  (Graph v1.0 "Create oAuth2PermissionGrant", microsoft-graph-docs-contrib
  ``api-reference/v1.0/api/oauth2permissiongrant-post.md``: those are its properties,
  principalId required for consentType Principal; ``201 Created`` with the grant;
  ``DelegatedPermissionGrant.ReadWrite.All``, the least privileged, which revoking already
  needs). A grant for the same client, resource and principal that exists already is ``409
  Request_MultipleObjectsWithSameKeyValue`` "Permission entry already exists."
  (hashicorp/terraform-provider-azuread#690): taken as "already granted". The GET may lag
  behind a grant created moments before ("might have replication delays", the Get page):
  the 409 covers that. The POST is sent once per attempt (no in-process retry): a lost answer
  is read back by the next attempt's GET, or answered 409.
"""

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from remediation.adapters.exchange_client import ExchangeAdminClient
from remediation.adapters.graph_caller import GraphCaller, GraphRequestError
from remediation.adapters.mailbox import GraphExchangeMailbox
from remediation.domain.hygiene import MailboxForwarding

if TYPE_CHECKING:
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.graph_service_client import GraphServiceClient

CONFLICT = 409


class TenantRestorer:
    def __init__(self, graph: GraphCaller, exchange: ExchangeAdminClient,
                 mailbox: GraphExchangeMailbox) -> None:
        self._graph = graph
        self._exchange = exchange
        self._mailbox = mailbox

    async def enable_graph_rule(self, user_id: str, rule_id: str) -> None:
        def request(client: "GraphServiceClient") -> "RequestInformation":
            from kiota_abstractions.method import Method
            from kiota_abstractions.request_information import RequestInformation

            builder = (client.users.by_user_id(user_id).mail_folders
                       .by_mail_folder_id("inbox").message_rules.by_message_rule_id(rule_id))
            info = RequestInformation(Method.PATCH, builder.url_template,
                                      builder.path_parameters)
            info.headers.try_add("Accept", "application/json")
            info.set_stream_content(json.dumps({"isEnabled": True}).encode(),
                                    "application/json")
            return info

        await self._graph.send_json("enable inbox rule", request)

    async def enable_exchange_rule(self, mailbox: str, identity: str) -> None:
        await self._exchange.invoke("Enable-InboxRule", {
            "Identity": identity, "Mailbox": mailbox, "Confirm": False})

    async def forwarding(self, address: str) -> MailboxForwarding:
        return await self._mailbox.forwarding(address)

    async def set_forwarding(self, address: str, forwarding: MailboxForwarding) -> None:
        await self._exchange.invoke("Set-Mailbox", {
            "Identity": address,
            "ForwardingSmtpAddress": forwarding.forwarding_smtp_address,
            "ForwardingAddress": forwarding.forwarding_address,
            "DeliverToMailboxAndForward": forwarding.deliver_to_mailbox_and_forward})

    async def grant(self, grant_id: str) -> dict[str, Any] | None:
        try:
            return await self._graph.send_json(
                "read a consent grant",
                lambda c: c.oauth2_permission_grants.by_o_auth2_permission_grant_id(
                    grant_id).to_get_request_information())
        except GraphRequestError as error:
            if error.not_found:
                return None
            raise

    async def create_grant(self, body: Mapping[str, Any]) -> bool:
        def request(client: "GraphServiceClient") -> "RequestInformation":
            from kiota_abstractions.method import Method
            from kiota_abstractions.request_information import RequestInformation

            builder = client.oauth2_permission_grants
            info = RequestInformation(Method.POST, builder.url_template,
                                      builder.path_parameters)
            info.headers.try_add("Accept", "application/json")
            info.set_stream_content(json.dumps(dict(body)).encode(), "application/json")
            return info

        try:
            await self._graph.send_json("grant a consent again", request, retry=False)
        except GraphRequestError as error:
            if error.status == CONFLICT:
                return False
            raise
        return True
