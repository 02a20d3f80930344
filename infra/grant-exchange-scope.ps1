<#
.SYNOPSIS
  MAILBOX_ACCESS=exchange-rbac: the app reaches inbox rules and mail folders of the
  administrative unit's mailboxes only, through Exchange Online RBAC for Applications.

.DESCRIPTION
  Run by an Exchange administrator (a member of Organization Management), in Exchange Online
  PowerShell (ExchangeOnlineManagement, connected with Connect-ExchangeOnline), after
  `bash infra/grant-permissions.sh --scope-au AU_ID --mailbox-scope PRINCIPAL_ID`, which leaves
  the tenant-wide Graph permissions MailboxSettings.ReadWrite and Mail.ReadBasic.All out.
  The list of roles is remediation/permissions.py (EXCHANGE_APPLICATION_ROLES);
  tests/unit/test_permissions.py checks that this script assigns exactly those.

  1. New-ServicePrincipal: Exchange's pointer to the managed identity's service principal.
  2. New-ManagementRoleAssignment -App ... -Role "Application ..." -RecipientAdministrativeUnitScope:
     each application role, scoped to the same administrative unit as the User Administrator
     role (the cmdlet's App parameter set; -App takes the service principal's ObjectId, and
     only application roles: office-docs-powershell New-ManagementRoleAssignment.md).
  3. Test-ServicePrincipalAuthorization: what the app may now do, and where.

  Safe to run again: what exists already is looked up first and left as it is. It removes
  nothing. Exchange may take up to two hours to apply a new assignment (RBAC for Applications
  caches them); `remediation doctor` proves the access with a read of one member's mailbox.

  What this does not narrow: the Exchange cmdlets the app runs (the Restricted users list,
  Get-/Set-Mailbox, Get-InboxRule, the audit log search) still need the Exchange Administrator
  directory role tenant-wide. README, "Permissions (least privilege)", says why.

.EXAMPLE
  Connect-ExchangeOnline   # then, in the same session:
  ./infra/grant-exchange-scope.ps1 -AppId <client id> -ObjectId <principal id> -AdministrativeUnitId <unit id>
#>
param(
    [Parameter(Mandatory = $true)] [string] $AppId,  # the managed identity's client id
    [Parameter(Mandatory = $true)] [string] $ObjectId,  # its service principal's object id
    [Parameter(Mandatory = $true)] [string] $AdministrativeUnitId,
    [string] $DisplayName = 'Spam-block remediation'
)
$ErrorActionPreference = 'Stop'

$roles = @('Application MailboxSettings.ReadWrite', 'Application Mail.ReadBasic')

$principal = Get-ServicePrincipal -Identity $ObjectId -ErrorAction SilentlyContinue
if ($null -eq $principal) {
    New-ServicePrincipal -AppId $AppId -ObjectId $ObjectId -DisplayName $DisplayName | Out-Null
    Write-Output "created the Exchange service principal for $ObjectId"
} else {
    Write-Output "already there: the Exchange service principal for $ObjectId"
}

# What the service principal holds already, by role name (the cmdlet's documented output:
# RoleName, GrantedPermissions, AllowedResourceScope, ScopeType, InScope).
$assigned = @(Test-ServicePrincipalAuthorization -Identity $ObjectId | ForEach-Object { $_.RoleName })
foreach ($role in $roles) {
    if ($assigned -contains $role) {
        Write-Output "already assigned $role"
        continue
    }
    New-ManagementRoleAssignment -Name "$DisplayName - $role" -App $ObjectId -Role $role -RecipientAdministrativeUnitScope $AdministrativeUnitId | Out-Null
    Write-Output "assigned $role, scoped to administrative unit $AdministrativeUnitId"
}

Test-ServicePrincipalAuthorization -Identity $ObjectId |
    Format-Table RoleName, GrantedPermissions, AllowedResourceScope, ScopeType
