"""Every Exchange cmdlet the sandbox knows, declared: its name and the parameters Exchange
Online binds for it, each set copied from the cmdlet's reference.

Source of every set: MicrosoftDocs/office-docs-powershell, commit 93336da (2026-08-21),
``exchange/exchange-ps/ExchangePowerShell/<Cmdlet>.md``: the parameters of its SYNTAX whose
``Applicable`` line names Exchange Online (``DomainController``, ``SweepRules`` and the like are
on-premises only, and Exchange Online refuses them like any unknown name), plus PowerShell's
common parameters. ``Set-Mailbox`` has some 200 parameters; the sandbox declares the ones it
models, so an unmodelled one is refused (stricter than Exchange, never more lenient).

Anything else is Exchange's parameter-binding error (400, ``ParameterBindingException``, "A
parameter cannot be found that matches parameter name 'X'."): the way a real tenant refused
``Get-BlockedSenderAddress -ResultSize``. Names bind case-insensitively, as in PowerShell;
abbreviations are not modelled (refused: stricter).

The table doubles as the list of every cmdlet the product calls or is about to call; a cmdlet
declared without a handler binds its parameters, then answers that the sandbox does not model
it yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REFERENCE = ("MicrosoftDocs/office-docs-powershell@93336da "
             "exchange/exchange-ps/ExchangePowerShell/{cmdlet}.md")

COMMON_PARAMETERS = frozenset({
    "Debug", "ErrorAction", "ErrorVariable", "InformationAction", "InformationVariable",
    "OutBuffer", "OutVariable", "PipelineVariable", "Verbose", "WarningAction",
    "WarningVariable"})

BINDING_EXCEPTION = "System.Management.Automation.ParameterBindingException"


@dataclass(frozen=True)
class CmdletSpec:
    name: str
    parameters: frozenset[str]
    required: frozenset[str] = frozenset()

    @property
    def reference(self) -> str:
        return REFERENCE.format(cmdlet=self.name)

    def accepts(self, parameter: str) -> bool:
        wanted = parameter.lower()
        return any(wanted == known.lower() for known in self.parameters | COMMON_PARAMETERS)

    def canonical(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters under the reference's own spelling (PowerShell binds names in any
        letter case), so a handler reads ``identity`` as it reads ``Identity``."""
        spelling = {known.lower(): known for known in self.parameters | COMMON_PARAMETERS}
        return {spelling.get(str(name).lower(), str(name)): value
                for name, value in parameters.items()}

    def unknown(self, parameters: Mapping[str, Any]) -> list[str]:
        """The names Exchange would not bind, in the order they were sent."""
        return [name for name in parameters if not self.accepts(str(name))]


def _spec(name: str, parameters: str, required: str = "") -> CmdletSpec:
    return CmdletSpec(name, frozenset(parameters.split()), frozenset(required.split()))


SPECS: tuple[CmdletSpec, ...] = (
    _spec("Get-BlockedSenderAddress", "SenderAddress"),
    _spec("Remove-BlockedSenderAddress", "SenderAddress Reason", required="SenderAddress"),
    _spec("Get-Mailbox",
          "Identity Anr Archive Filter GroupMailbox InactiveMailboxOnly "
          "IncludeAcceptMessagesOnlyFromDLMembersWithDisplayNames "
          "IncludeAcceptMessagesOnlyFromSendersOrMembersWithDisplayNames "
          "IncludeAcceptMessagesOnlyFromWithDisplayNames IncludeEmailAddressDisplayNames "
          "IncludeForwardingAddressWithDisplayNames IncludeGrantSendOnBehalfToWithDisplayNames "
          "IncludeInactiveMailbox MailboxPlan Migration OrganizationalUnit PublicFolder "
          "RecipientTypeDetails ResultSize SoftDeletedMailbox SortBy"),
    # The modelled part of Set-Mailbox (every one of these is in its reference).
    _spec("Set-Mailbox",
          "Identity ForwardingSmtpAddress ForwardingAddress DeliverToMailboxAndForward "
          "GrantSendOnBehalfTo AccountDisabled Confirm Force WhatIf", required="Identity"),
    _spec("Get-InboxRule",
          "Identity BypassScopeCheck DescriptionTimeFormat DescriptionTimeZone IncludeHidden "
          "Mailbox ResultSize SkipCount UseCustomRouting"),
    _spec("Disable-InboxRule",
          "Identity AlwaysDeleteOutlookRulesBlob Confirm Force Mailbox WhatIf",
          required="Identity"),
    _spec("Enable-InboxRule",
          "Identity AlwaysDeleteOutlookRulesBlob Confirm Force Mailbox WhatIf",
          required="Identity"),
    _spec("Get-MailboxPermission",
          "Identity Credential GroupMailbox IncludeSoftDeletedUserPermissions "
          "IncludeUnresolvedPermissions IncludeUserWithDisplayName Owner "
          "ReadFromDomainController ResultSize SoftDeletedMailbox UseCustomRouting User"),
    _spec("Get-RecipientPermission",
          "Identity AccessRights ReadFromDomainController ResultSize Trustee"),
    # Read at office-docs-powershell 43bd072 (Search-UnifiedAuditLog: StartDate and EndDate
    # required; LegacyFlow is listed for Exchange Online too), 09d3fb8 (Get-AdminAuditLogConfig:
    # DomainController is on-premises only) and 0eb18da (Get-MailboxFolderStatistics).
    _spec("Search-UnifiedAuditLog",
          "EndDate StartDate Formatted FreeText HighCompleteness IPAddresses LegacyFlow "
          "LongerRetentionEnabled ObjectIds Operations RecordType ResultSize SessionCommand "
          "SessionId SiteIds UserIds", required="StartDate EndDate"),
    _spec("Get-AdminAuditLogConfig", ""),
    _spec("Get-MailboxFolderStatistics",
          "Identity Archive Database DiagnosticInfo FolderScope IncludeAnalysis "
          "IncludeOldestAndNewestItems IncludeSoftDeletedRecipients ResultSize SkipCount "
          "StoreMailboxIdentity UseCustomRouting"),
    _spec("Get-CASMailbox",
          "Identity ActiveSyncDebugLogging ActiveSyncSuppressReadReceipt Anr Credential Filter "
          "IgnoreDefaultScope OrganizationalUnit ProtocolSettings "
          "ReadIsOptimizedForAccessibility RecalculateHasActiveSyncDevicePartnership "
          "RecipientTypeDetails ResultSize SortBy"),
)

BY_NAME: dict[str, CmdletSpec] = {spec.name.lower(): spec for spec in SPECS}


def spec_of(name: str) -> CmdletSpec | None:
    return BY_NAME.get(name.lower())


def binding_message(parameter: str) -> str:
    """Exchange's text for a parameter the cmdlet does not have."""
    return f"A parameter cannot be found that matches parameter name '{parameter}'."

