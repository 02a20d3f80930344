"""How the sandbox's Exchange admin REST answers where the real service answers in more than one
way (as CIPP, M365Permissions and graph2otel see the real endpoint answer). Every switch starts
at the strictest form seen in the wild; tests flip
them to prove the product copes with each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

# Cmdlets that take -ResultSize (Get-Mailbox, ...) return at most this many objects unless
# asked for ``ResultSize: Unlimited``; Get-BlockedSenderAddress has no such parameter.
DEFAULT_RESULT_SIZE = 1000

UnlistedSender = Literal["not_found", "empty"]
EmptySuccess = Literal["empty", "no_content", "json"]
NextLinkKey = Literal["@odata.nextLink", "odata.nextLink"]
TimeFormat = Literal["iso7", "ms", "ms_offset", "unreadable"]
InnerKey = Literal["internalException", "internalexception"]
AppAccess = Literal["granted", "no_app_role", "no_directory_role", "role_not_supported",
                    "not_allowed_to_call"]
CauseIn = Literal["both", "details", "innererror", "message"]


@dataclass
class ExchangeQuirks:
    # Get-BlockedSenderAddress naming a sender that is not listed: a not-found error
    # (ManagementObjectNotFoundException), or an empty list.
    unlisted_sender: UnlistedSender = "not_found"
    # A cmdlet with no output (Remove-BlockedSenderAddress, Set-Mailbox): 200 with an empty
    # body, 204, or a JSON body with an empty ``value``.
    empty_success: EmptySuccess = "empty"
    # The spelling of the next link of a paged reply.
    next_link_key: NextLinkKey = "@odata.nextLink"
    # Where next links point; None for the sandbox's own origin. Anything else plays a reply
    # that sends the client (and its bearer token) to another host.
    next_link_origin: str | None = None
    # How CreatedDatetime / ChangedDatetime are written.
    time_format: TimeFormat = "iso7"
    # The casing of ``innererror.internalException`` in error bodies.
    inner_key: InnerKey = "internalException"
    # The app's rights: ``no_app_role`` (no Exchange.ManageAsApp) answers 401 with only a
    # WWW-Authenticate header; ``no_directory_role`` answers 403 with a body that is not JSON.
    # Exchange's own words for a role it does not take, "The role assigned to application {id}
    # isn't supported in this scenario..." (Microsoft365DSC#4530, maester#718), answer
    # ``app_access_status`` with the text where ``app_access_cause_in`` says; "User is not
    # allowed to call {Cmdlet}" answers 401 with a JSON body (office-docs-powershell#7970).
    app_access: AppAccess = "granted"
    app_access_status: int = 400
    app_access_cause_in: CauseIn = "both"
    # How many next-link requests to answer "400 Expired or Invalid pagination request"
    # (reported by a public tool replaying links).
    expire_next_links: int = 0
    # Every next link points at the second page again: a server paging in a circle.
    repeat_next_link: bool = False


def exchange_time(moment: datetime, style: TimeFormat) -> str:
    """A timestamp the way Exchange writes it: ISO 8601 with seven fractional digits, or the
    .NET JSON form ``/Date(ms)/`` (optionally with an offset); ``unreadable`` is a value no
    parser understands, for tests of an unknown time."""
    moment = moment.astimezone(UTC)
    millis = int(moment.timestamp() * 1000)
    if style == "ms":
        return f"/Date({millis})/"
    if style == "ms_offset":
        return f"/Date({millis}+0000)/"
    if style == "unreadable":
        return "Tuesday, sometime"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
