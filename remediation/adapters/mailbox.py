"""The Mailbox port: inbox rules and mail folders on Graph, mailbox forwarding on Exchange.

Permissions (application, admin-consented):
- ``MailboxSettings.ReadWrite`` to read inbox rules and disable one (``MailboxSettings.Read``
  is enough to read);
- ``Mail.ReadBasic.All`` to list mail folders (their names say where a rule moves mail;
  ``MailboxSettings.*`` does not cover folders);
- ``Exchange.ManageAsApp`` plus the Exchange Administrator role for ``Get-Mailbox`` /
  ``Set-Mailbox``: forwarding is not in Graph.
Every permission and role the app needs, and why: remediation/permissions.py.

Rules are read as raw JSON (the shape ``domain.hygiene`` reads). Errors arrive translated
(TransientError / PermanentError) from GraphCaller and ExchangeAdminClient.
"""

import json
from typing import TYPE_CHECKING, Any

from remediation.adapters.exchange_client import ExchangeAdminClient
from remediation.adapters.graph_caller import GraphCaller
from remediation.domain.errors import PermanentError
from remediation.domain.hygiene import MailboxForwarding

if TYPE_CHECKING:
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.graph_service_client import GraphServiceClient

FOLDER_PAGE_SIZE = 100


class GraphExchangeMailbox:
    def __init__(self, graph: GraphCaller, exchange: ExchangeAdminClient) -> None:
        self._graph = graph
        self._exchange = exchange

    async def inbox_rules(self, user_id: str) -> list[dict[str, Any]]:
        return await self._graph.get_all(
            "read inbox rules", lambda c: _inbox(c, user_id).message_rules
            .to_get_request_information())

    async def folder_names(self, user_id: str) -> dict[str, str]:
        """Top-level mail folders (where the rarely read ones live), id -> display name."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.users.item.mail_folders.mail_folders_request_builder import (
            MailFoldersRequestBuilder,
        )

        query = MailFoldersRequestBuilder.MailFoldersRequestBuilderGetQueryParameters(
            select=["id", "displayName"], top=FOLDER_PAGE_SIZE)
        config = RequestConfiguration(query_parameters=query)
        folders = await self._graph.get_all(
            "list mail folders", lambda c: c.users.by_user_id(user_id).mail_folders
            .to_get_request_information(config))
        return {str(f["id"]): str(f.get("displayName") or "") for f in folders if f.get("id")}

    async def disable_rule(self, user_id: str, rule_id: str) -> None:
        def request(client: "GraphServiceClient") -> "RequestInformation":
            from kiota_abstractions.method import Method
            from kiota_abstractions.request_information import RequestInformation

            builder = _inbox(client, user_id).message_rules.by_message_rule_id(rule_id)
            info = RequestInformation(Method.PATCH, builder.url_template,
                                      builder.path_parameters)
            info.headers.try_add("Accept", "application/json")
            info.set_stream_content(json.dumps({"isEnabled": False}).encode(),
                                    "application/json")
            return info

        await self._graph.send_json("disable inbox rule", request)

    async def forwarding(self, address: str) -> MailboxForwarding:
        items = await self._exchange.invoke("Get-Mailbox", {"Identity": address})
        if not items:
            raise PermanentError(f"Exchange: no mailbox {address}")
        item = items[0]
        return MailboxForwarding(
            forwarding_smtp_address=_text(item.get("ForwardingSmtpAddress")),
            forwarding_address=_text(item.get("ForwardingAddress")),
            deliver_to_mailbox_and_forward=item.get("DeliverToMailboxAndForward") is True)

    async def clear_forwarding(self, address: str) -> None:
        await self._exchange.invoke("Set-Mailbox", {
            "Identity": address, "ForwardingSmtpAddress": None, "ForwardingAddress": None,
            "DeliverToMailboxAndForward": False})


def _inbox(client: "GraphServiceClient", user_id: str) -> Any:
    return client.users.by_user_id(user_id).mail_folders.by_mail_folder_id("inbox")


def _text(value: object) -> str | None:
    """Exchange leaves unset values null or empty; keep the ``smtp:`` prefix (hygiene strips
    it) so the journal records what Exchange said."""
    return str(value) if value not in (None, "") else None
