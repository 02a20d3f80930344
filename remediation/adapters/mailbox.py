"""The Mailbox port: inbox rules and mail folders on Graph, mailbox forwarding on Exchange.

Permissions (application, admin-consented):
- ``MailboxSettings.ReadWrite`` to read inbox rules and disable one (``MailboxSettings.Read``
  is enough to read);
- ``Mail.ReadBasic.All`` to list mail folders and read the well-known ones (which folder a
  rule moves mail to; ``MailboxSettings.*`` does not cover folders);
- ``Exchange.ManageAsApp`` plus the Exchange Administrator role for ``Get-Mailbox`` /
  ``Set-Mailbox``: forwarding is not in Graph.
Every permission and role the app needs, and why: remediation/permissions.py.

Rules are read as raw JSON (the shape ``domain.hygiene`` reads). Errors arrive translated
(TransientError / PermanentError) from GraphCaller and ExchangeAdminClient.
"""

import json
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from remediation.adapters.exchange_client import ExchangeAdminClient
from remediation.adapters.graph_caller import GraphCaller, GraphRequestError
from remediation.domain.errors import PermanentError
from remediation.domain.hygiene import INBOX, RARELY_READ_FOLDERS, MailboxForwarding

if TYPE_CHECKING:
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.graph_service_client import GraphServiceClient

    from remediation.adapters.graph_caller import BuildRequest

FOLDER_PAGE_SIZE = 100
# A case reads folders when it plans and again when it acts, seconds apart: the well-known
# folders' ids (fixed for the mailbox's life) are read once for both.
WELL_KNOWN_TTL = 600.0
_WELL_KNOWN_CACHED = 256


class GraphExchangeMailbox:
    def __init__(self, graph: GraphCaller, exchange: ExchangeAdminClient) -> None:
        self._graph = graph
        self._exchange = exchange
        self._well_known: OrderedDict[str, tuple[float, dict[str, str]]] = OrderedDict()

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

    async def well_known_folders(self, user_id: str) -> dict[str, str]:
        """Folder id -> well-known name for the inbox and each rarely read folder the mailbox
        has: ``GET /users/{id}/mailFolders/{wellKnownName}``, one GET each, whatever the
        mailbox's language (Graph v1.0 mailFolder resource type, "Well-known folder names",
        https://learn.microsoft.com/graph/api/resources/mailfolder; "Get mailFolder",
        https://learn.microsoft.com/graph/api/mailfolder-get, ``Mail.ReadBasic.All``). A 404
        is a folder the mailbox lacks (an archive never used), not a failure. Kept for
        WELL_KNOWN_TTL per mailbox, so one case reads them once."""
        cached = self._well_known.get(user_id)
        if cached is not None and time.monotonic() - cached[0] < WELL_KNOWN_TTL:
            return dict(cached[1])
        found: dict[str, str] = {}
        for name in (INBOX, *RARELY_READ_FOLDERS):
            try:
                folder = await self._graph.send_json(
                    f"read the {name} folder", _well_known_request(user_id, name))
            except GraphRequestError as error:
                if error.not_found:
                    continue
                raise
            if folder.get("id"):
                found[str(folder["id"])] = name
        self._well_known[user_id] = (time.monotonic(), found)
        self._well_known.move_to_end(user_id)
        while len(self._well_known) > _WELL_KNOWN_CACHED:
            self._well_known.popitem(last=False)
        return dict(found)

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


def _well_known_request(user_id: str, name: str) -> "BuildRequest":
    def build(client: "GraphServiceClient") -> "RequestInformation":
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.users.item.mail_folders.item.mail_folder_item_request_builder import (  # noqa: E501
            MailFolderItemRequestBuilder,
        )

        query = MailFolderItemRequestBuilder.MailFolderItemRequestBuilderGetQueryParameters(
            select=["id", "displayName"])
        folder = client.users.by_user_id(user_id).mail_folders.by_mail_folder_id(name)
        return folder.to_get_request_information(RequestConfiguration(query_parameters=query))

    return build


def _inbox(client: "GraphServiceClient", user_id: str) -> Any:
    return client.users.by_user_id(user_id).mail_folders.by_mail_folder_id("inbox")


def _text(value: object) -> str | None:
    """Exchange leaves unset values null or empty; keep the ``smtp:`` prefix (hygiene strips
    it) so the journal records what Exchange said."""
    return str(value) if value not in (None, "") else None
