"""The sandbox tenant's state: users, groups, blocks, alerts, faults and the request log.

Every method takes the tenant's lock: the server runs in its own thread while tests read and
change the tenant from theirs.
"""

from __future__ import annotations

import copy
import json
import random
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from remediation.domain.roles import EXCHANGE_ADMINISTRATOR, USER_ADMINISTRATOR
from remediation.permissions import PERMISSIONS, permissions_on
from remediation.sandbox import app_rights, pim_shapes
from remediation.sandbox.admin_units import DIRECTORY_READERS, AdministrativeUnits, scope_unit
from remediation.sandbox.audit_log import AuditLog
from remediation.sandbox.clock import graph_timestamp, parse_timestamp, utc_now
from remediation.sandbox.consents import ConsentStore
from remediation.sandbox.delegation import MailboxGrants
from remediation.sandbox.exchange_quirks import ExchangeQuirks, TimeFormat, exchange_time
from remediation.sandbox.faults import Fault
from remediation.sandbox.signin_methods import SignInMethods
from remediation.sandbox.webhook_inbox import WebhookInbox

DEFAULT_TENANT_ID = "8f6d1c2e-5b4a-4e3f-9a1b-7c2d3e4f5a6b"
DEFAULT_BLOCK_REASON = (
    "ExceedingLimitType=External;InternalRecipientCountToday=0;ExternalRecipientCountToday=612"
)
COMPLEXITY_REFUSAL = (
    "The specified password does not comply with password complexity requirements. "
    "Please provide a different password."
)
# Not a secret: the one bearer token every sandbox request must carry (or a token the tenant
# issued with it: SandboxTenant.access_token).
SANDBOX_BEARER = "sandbox-token"
# The object id of the app's service principal in the sandbox tenant (the tokens' ``oid``).
SANDBOX_APP_ID = "5a1f0b7e-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
# Directory role template ids are the same in every tenant.
ROLE_NAMES = {
    GLOBAL_ADMINISTRATOR: "Global Administrator",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
    "29232cdf-9323-42fd-ade2-1d097af3e4de": "Exchange Administrator",
    "194ae4cb-b126-40b2-bd5b-6091b380977d": "Security Administrator",
    "729827e3-9c14-49f7-bb1b-9608f156bbb8": "Helpdesk Administrator",
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13": "Privileged Authentication Administrator",
}
# The roles whose holders a User Administrator may reset, tenant-wide: "Who can reset
# passwords", Working with users in Microsoft Graph
# (https://learn.microsoft.com/graph/api/resources/users#who-can-reset-passwords). Holders of
# any other role (custom roles included), and members or owners of role-assignable groups,
# need a Privileged Authentication or Global Administrator: Graph answers 403.
USER_ADMINISTRATOR_RESETS = frozenset({
    "88d8e3e3-8f55-4a1e-953a-9b9898b8876b",  # Directory Readers
    "fdd7a751-b60b-444a-984c-02652fe8fa1c",  # Groups Administrator
    "95e79109-95c0-4d8e-aee3-d01accf2d47b",  # Guest Inviter
    "729827e3-9c14-49f7-bb1b-9608f156bbb8",  # Helpdesk Administrator
    "790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b",  # Message Center Reader
    "966707d0-3269-4727-9be2-8c3a10f19b9d",  # Password Administrator
    "4a5d8f65-41da-4de4-8968-e035b65339cf",  # Reports Reader
    "fe930be7-5e62-47db-91af-98c3a49a38b1",  # User Administrator
    "75934031-6c7e-415a-99d7-48dbd49e875e",  # Usage Summary Reports Reader
})
NOT_FOUND_EXCEPTION = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
# The top-level folders every mailbox has (Graph lists them under /mailFolders), by their
# English display name (which also seeds their ids), with Graph's well-known name where it has
# one (mailFolder resource type, "Well-known folder names",
# https://learn.microsoft.com/graph/api/resources/mailfolder: RSS Feeds has none) and their
# display name in a German mailbox: Exchange names them in the mailbox's language.
WELL_KNOWN_FOLDERS = ("Inbox", "Archive", "RSS Feeds", "Conversation History", "Deleted Items",
                      "Junk Email", "Sent Items")
FOLDER_WELL_KNOWN_NAMES = {"Inbox": "inbox", "Archive": "archive",
                           "Conversation History": "conversationhistory",
                           "Deleted Items": "deleteditems", "Junk Email": "junkemail",
                           "Sent Items": "sentitems"}
LOCALISED_FOLDERS = {"de": {"Inbox": "Posteingang", "Archive": "Archiv",
                            "RSS Feeds": "RSS-Feeds",
                            "Conversation History": "Unterhaltungsverlauf",
                            "Deleted Items": "Gelöschte Elemente", "Junk Email": "Junk-E-Mail",
                            "Sent Items": "Gesendete Elemente"}}
_T = TypeVar("_T")
_FOLDER_NAMESPACE = uuid.UUID("0b7f1e62-3c1a-4f4e-9d0c-5a8e2b6d7c41")


class TenantError(Exception):
    """A refusal the real service answers with an error; the route gives it the body's shape."""

    def __init__(self, status: int, code: str, message: str, exception_type: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        # Exchange prefixes its detail messages with the .NET exception type.
        self.exception_type = exception_type


@dataclass
class SandboxUser:
    user_principal_name: str
    display_name: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    account_enabled: bool = True
    on_premises_sync_enabled: bool | None = None
    user_type: str = "Member"
    mail: str | None = None  # when it differs from the UPN (guests, aliases)
    # False: an account without a mailbox (no Exchange licence). Graph answers ``mail`` null
    # and ``$filter=mail eq ...`` never finds it (the UPN is not its mail).
    has_mail: bool = True
    group_ids: list[str] = field(default_factory=list)
    # Active, tenant-wide, built-in roles: listed by transitiveMemberOf and roleAssignments.
    role_template_ids: list[str] = field(default_factory=list)
    # As Graph shows them ("SMTP:" marks the primary); default: SMTP:<primary address>.
    proxy_addresses: list[str] = field(default_factory=list)
    creation_type: str | None = None  # "Invitation", "EmailVerified", ... (external accounts)
    # Exchange's RecipientTypeDetails of its mailbox (Get-Mailbox): UserMailbox, or
    # SharedMailbox / RoomMailbox / EquipmentMailbox (whose Entra account is disabled).
    recipient_type_details: str = "UserMailbox"
    # Exchange's Name of the mailbox (the unified audit log's ObjectId names it so); None:
    # its Entra object id, the Name the real records show (sandbox/delegation.mailbox_name).
    mailbox_name: str | None = None
    external_user_state: str | None = None
    reset_forbidden: bool = False
    unblock_limit_reached: bool = False
    forwarding_smtp_address: str | None = None
    forwarding_address: str | None = None
    deliver_to_mailbox_and_forward: bool = False
    inbox_rules: list[dict[str, Any]] = field(default_factory=list)
    # Rules Graph never shows, in Get-InboxRule's shape (sandbox/inbox_rules.py): hidden rules,
    # the junk e-mail, out-of-office and delegate rules. Get-InboxRule lists them with
    # -IncludeHidden only.
    exchange_rules: list[dict[str, Any]] = field(default_factory=list)
    # Mail folder id -> display name; the well-known folders are added on creation, named in
    # the mailbox's ``language`` ("en", or a key of LOCALISED_FOLDERS).
    folders: dict[str, str] = field(default_factory=dict)
    language: str = "en"
    # Well-known name (``inbox``, ``archive``, ...) -> folder id; a name left out is a folder
    # the mailbox lacks.
    well_known: dict[str, str] = field(default_factory=dict)
    # Holds the passwords themselves, so keep it out of repr (and so out of test failure output).
    password_changes: list[dict[str, Any]] = field(default_factory=list, repr=False)
    sessions_revoked: int = 0

    def __post_init__(self) -> None:
        self.user_principal_name = self.user_principal_name.lower()
        self.mail = self.mail.lower() if self.mail else None
        if not self.proxy_addresses and self.has_mail:
            self.proxy_addresses = [f"SMTP:{self.address}"]
        names = LOCALISED_FOLDERS.get(self.language, {})
        for name in WELL_KNOWN_FOLDERS:
            shown = names.get(name, name)
            if shown not in self.folders.values():
                self.folders[self._new_folder_id(name)] = shown
            if name in FOLDER_WELL_KNOWN_NAMES:
                self.well_known.setdefault(FOLDER_WELL_KNOWN_NAMES[name],
                                           self.folder_id(shown))

    @property
    def address(self) -> str:
        """The primary SMTP address: what Exchange lists and alerts name."""
        return self.mail or self.user_principal_name

    @property
    def graph_mail(self) -> str | None:
        """Graph's ``mail``: the primary SMTP address, null without a mailbox."""
        return self.address if self.has_mail else None

    def smtp_addresses(self) -> list[str]:
        """Every SMTP address of the account, lower case, without the ``smtp:`` prefix."""
        return [_strip_smtp(proxy).strip().lower() for proxy in self.proxy_addresses
                if proxy.lower().startswith("smtp:")]

    @property
    def exchange_guid(self) -> str:
        """The mailbox's Exchange GUID: not the Entra object id (GrantSendOnBehalfTo lists
        these unless asked for display names)."""
        return str(uuid.uuid5(_FOLDER_NAMESPACE, f"exchange/{self.id}"))

    def add_folder(self, name: str) -> str:
        """A custom top-level mail folder; returns its id."""
        folder_id = self._new_folder_id(name)
        self.folders[folder_id] = name
        return folder_id

    def folder_id(self, name: str) -> str:
        return next(key for key, value in self.folders.items() if value == name)

    def _new_folder_id(self, name: str) -> str:
        # Stable per user and name, and shaped like Exchange's base64 ids.
        raw = uuid.uuid5(_FOLDER_NAMESPACE, f"{self.id}/{name}").hex
        return f"AAMkA{raw}AAA="


@dataclass(frozen=True)
class RoleGrant:
    """A directory role assignment (or PIM eligibility) as Graph's unifiedRoleAssignment has
    it: the principal is a user or a role-assignable group; built-in roles are named by their
    template id, custom roles by a tenant-specific id; the scope is ``/`` or
    ``/administrativeUnits/{id}``."""

    principal_id: str
    role_definition_id: str
    directory_scope_id: str = "/"
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def json(self, odata_type: str) -> dict[str, Any]:
        return {"@odata.type": odata_type, "id": self.id, "principalId": self.principal_id,
                "roleDefinitionId": self.role_definition_id,
                "directoryScopeId": self.directory_scope_id}


@dataclass(frozen=True)
class GroupGrant:
    """PIM for Groups: a principal's membership or ownership (``access``: ``member`` or
    ``owner``) of a group governed by PIM, eligible or active, as Graph's
    privilegedAccessGroupEligibilityScheduleInstance / ...AssignmentScheduleInstance has it
    (Graph v1.0, "List eligibilityScheduleInstances" of privilegedAccessGroup). A member or
    owner of a role-assignable group may hold, or give itself, the group's roles."""

    principal_id: str
    group_id: str
    access: str = "member"
    schedule_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    start: str = field(default_factory=lambda: graph_timestamp(utc_now()))

    def json(self, *, eligible: bool) -> dict[str, Any]:
        kind = "Eligibility" if eligible else "Assignment"
        item: dict[str, Any] = {
            "@odata.type": f"#microsoft.graph.privilegedAccessGroup{kind}ScheduleInstance",
            "id": f"{self.group_id}_{self.access}_{self.schedule_id}",
            "startDateTime": self.start, "endDateTime": None, "accessId": self.access,
            "principalId": self.principal_id, "groupId": self.group_id, "memberType": "Direct",
            f"{kind[0].lower()}{kind[1:]}ScheduleId": f"{self.group_id}_{self.access}_"
                                                      f"{self.schedule_id}"}
        if not eligible:
            item["assignmentType"] = "Assigned"
        return item


@dataclass
class BlockBehaviour:
    linger_reads: int = 0
    reblock_after_reads: int | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """One request the tenant received. ``at``: when it arrived, ``answered``: when its answer
    left (``time.monotonic()`` seconds, the latency and any fault's delay in between): a
    client that honours ``Retry-After`` sends nothing sooner than a 429's ``answered`` plus
    its ``Retry-After``."""

    at: float
    method: str
    path: str
    query: dict[str, str]
    body: Any = field(repr=False)
    status: int
    cmdlet: str | None
    target: str | None
    headers: dict[str, str]
    answered: float = 0.0
    # The client's end of the TCP connection the request came on ("host:port"): as many
    # distinct values as connections the client opened (connection reuse, issue 18).
    connection: str = ""


@dataclass
class _Block:
    reason: str
    created: datetime
    behaviour: BlockBehaviour
    temporary: bool = False  # Get-BlockedSenderAddress's TemporaryBlock
    listed: bool = True
    linger_left: int = 0
    reblock_left: int | None = None  # reads of this sender still to pass before a new block

    def visible(self) -> bool:
        return self.listed or self.linger_left > 0

    def entry(self, sender: str, style: TimeFormat) -> dict[str, Any]:
        stamp = exchange_time(self.created, style)
        return {
            "SenderAddress": sender,
            "Reason": self.reason,
            "CreatedDatetime": stamp,
            "ChangedDatetime": stamp,
            "TemporaryBlock": self.temporary,
        }


class SandboxTenant:
    """One fake Microsoft 365 tenant: what the Graph and Exchange routes read and change."""

    def __init__(
        self,
        tenant_id: str = DEFAULT_TENANT_ID,
        domains: list[str] | None = None,
        token: str = SANDBOX_BEARER,
        federated_domains: list[str] | None = None,
        unverified_domains: list[str] | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.domains = list(domains) if domains is not None else ["contoso.com"]
        self.federated_domains = [domain.lower() for domain in federated_domains or []]
        self.domains += [d for d in self.federated_domains if d not in self.domains]
        # Added to the tenant but never proved by DNS: Graph /domains lists them with
        # isVerified false, and anybody may own them.
        self.unverified_domains = [domain.lower() for domain in unverified_domains or []]
        self.token = token
        self.latency = 0.0
        self.alert_page_size = 50
        self.exchange_page_size = 1000
        self.exchange = ExchangeQuirks()
        # Graph caps pages at these sizes whatever $top asks (its defaults: 100, 10).
        self.graph_page_size = 100
        self.folder_page_size = 10
        self.groups: dict[str, str] = {}
        self.role_assignable_groups: set[str] = set()
        # Group id -> its owners' object ids (GET /groups/{id}/owners; not in
        # transitiveMemberOf), and group id -> the groups it is a direct member of.
        self.group_owners: dict[str, list[str]] = {}
        self.group_parents: dict[str, set[str]] = {}
        # Role assignments other than SandboxUser.role_template_ids (scoped, custom, held by
        # groups): Graph lists them under roleAssignments only, never in transitiveMemberOf.
        self.role_assignments: list[RoleGrant] = []
        self.role_eligibilities: list[RoleGrant] = []  # PIM: eligible, not active
        # PIM for Groups: eligible and active memberships / ownerships of groups.
        self.group_eligibilities: list[GroupGrant] = []
        self.group_assignments: list[GroupGrant] = []
        # Without Entra ID P2, PIM's endpoints answer 400 AadPremiumLicenseRequired.
        self.pim_licensed = True
        # Other answers a tenant without PIM may give, per read (pim_shapes.py): e.g.
        # {"group_eligibility": "not_onboarded"}. They win over pim_licensed.
        self.pim_refusals: dict[str, str] = {}
        # App-only password resets need the User Administrator role on the app (Graph's
        # "Update user", https://learn.microsoft.com/graph/api/user-update);
        # False: every reset answers 403 Authorization_RequestDenied.
        self.app_has_user_administrator = True
        # Where the app's User Administrator assignment applies (unifiedRoleAssignment
        # directoryScopeId): "/" tenant-wide, "/administrativeUnits/{id}" one unit's members
        # (sandbox/admin_units.py); both may be listed. An AU-scoped role is usable only with
        # a directory read role at tenant scope: ``app_directory_readers``.
        self.app_user_administrator_scopes: tuple[str, ...] = ("/",)
        self.app_directory_readers = False
        self.admin_units = AdministrativeUnits()
        # Exchange RBAC for Applications roles scoped to a unit: Graph permission -> unit id
        # (sandbox/mailbox_rbac.py). Tenant-wide Entra grants are taken away with
        # ``denied_permissions``.
        self.mailbox_rbac: dict[str, str] = {}
        # Application permissions taken away from the app (names from remediation/
        # permissions.py): the endpoints needing one answer 403 Authorization_RequestDenied
        # (Exchange: 401), and tokens issued from then on leave it out of ``roles``.
        self.denied_permissions: set[str] = set()
        self.app_object_id = SANDBOX_APP_ID
        # The managed identity endpoint (identity_routes): the secret App Service hands the app
        # in IDENTITY_HEADER, the identity's client id, and every resource asked for.
        self.identity_header = f"sandbox-identity-{uuid.uuid4().hex}"
        self.managed_identity_client_id = SANDBOX_APP_ID
        self.token_requests: list[str] = []
        # Continuous Access Evaluation (sandbox/cae.py): the app tokens issued, and those
        # Entra revoked (Graph refuses them with a claims challenge).
        self.issued_tokens: set[str] = set()
        self.revoked_tokens: set[str] = set()
        # What the escalation webhook's far end received (webhook_routes).
        self.webhook = WebhookInbox()
        # Entra puts ``wids`` in an app token only sometimes: False plays a token without it.
        self.token_carries_wids = True
        # Characters Graph may refuse in a /users/{key} segment: such a key is answered 400
        # Request_BadRequest (graph_routes.py says why). "" plays a Graph that takes them all.
        self.refused_key_characters = "'"
        # A fault: an endpoint (or a proxy in front of it) that ignores $filter on /users and
        # answers the whole collection.
        self.users_filter_ignored = False
        # A fault: every Graph collection page carries this ``@odata.nextLink`` (another host,
        # a malformed URL, or one link over and over).
        self.graph_next_link: str | None = None
        self.removals: list[tuple[str, str | None]] = []
        # App consents (grants, service principals) and the directory audit log.
        self.consents = ConsentStore()
        self.audit_log = AuditLog()
        # Sign-in methods per user and the directory audit log (signin_methods.py).
        self.signin = SignInMethods(self.audit_log)
        # FullAccess, SendAs and SendOnBehalf on mailboxes (sandbox/delegation.py).
        self.mailbox_grants = MailboxGrants()
        from remediation.sandbox.unified_audit_log import SandboxAuditLog

        # The unified audit log (Search-UnifiedAuditLog, Get-AdminAuditLogConfig).
        self.unified_audit_log = SandboxAuditLog()
        self._lock = threading.RLock()
        self._users: dict[str, SandboxUser] = {}
        self._blocks: dict[str, _Block] = {}
        self._alerts: dict[str, dict[str, Any]] = {}
        # The last alert listing (filter, version of the alerts, matching alerts in order):
        # the pages of one listing reuse it.
        self._alert_version = 0
        self._alert_listing: tuple[str | None, int, list[dict[str, Any]]] | None = None
        self._faults: list[Fault] = []
        self._fault_random = random.Random(0)  # noqa: S311 (a simulation, not a secret)
        self._requests: list[RecordedRequest] = []

    # --- directory -------------------------------------------------------------------------

    def add_user(self, user: SandboxUser) -> SandboxUser:
        with self._lock:
            self._users[user.id] = user
            return user

    def add_group(self, group_id: str, name: str, *, role_assignable: bool = False) -> None:
        """A group; a role-assignable one (``isAssignableToRole``) can hold directory roles,
        which its members then hold too. Members list the group in their ``group_ids``."""
        with self._lock:
            self.groups[group_id] = name
            if role_assignable:
                self.role_assignable_groups.add(group_id)

    def add_owner(self, group_id: str, principal_id: str) -> None:
        """An owner of the group: may add anyone, itself included, as a member."""
        with self._lock:
            self.group_owners.setdefault(group_id, []).append(principal_id)

    def nest_group(self, child_id: str, parent_id: str) -> None:
        """Make group ``child_id`` a member of group ``parent_id``: the child's members are
        then transitive members of the parent."""
        with self._lock:
            self.group_parents.setdefault(child_id, set()).add(parent_id)

    def transitive_groups(self, group_ids: list[str]) -> list[str]:
        """``group_ids`` and every group they are nested in, at any depth, each once."""
        with self._lock:
            found = list(dict.fromkeys(group_ids))
            for group_id in found:  # grows while it is walked: breadth first
                found += [p for p in sorted(self.group_parents.get(group_id, ()))
                          if p not in found]
            return found

    def nested_groups(self, group_id: str) -> list[str]:
        """The groups nested in ``group_id`` at any depth (not itself)."""
        with self._lock:
            known = sorted(set(self.groups) | set(self.group_parents))
        return [other for other in known
                if other != group_id and group_id in self.transitive_groups([other])[1:]]

    def group(self, group_id: str) -> str:
        """The group's name; 404 Request_ResourceNotFound for a group the tenant lacks."""
        with self._lock:
            if group_id not in self.groups:
                raise TenantError(404, "Request_ResourceNotFound",
                                  f"Resource '{group_id}' does not exist or one of its queried "
                                  "reference-property objects are not present.")
            return self.groups[group_id]

    def owners_of(self, group_id: str) -> list[SandboxUser]:
        with self._lock:
            self.group(group_id)
            return [user for owner in self.group_owners.get(group_id, [])
                    if (user := self._users.get(owner)) is not None]

    def assign_role(self, principal_id: str, role_id: str, scope: str = "/") -> RoleGrant:
        """An active assignment, listed by roleAssignments only (see role_template_ids)."""
        with self._lock:
            grant = RoleGrant(principal_id, role_id, scope)
            self.role_assignments.append(grant)
            return grant

    def make_eligible(self, principal_id: str, role_id: str, scope: str = "/") -> RoleGrant:
        """A PIM eligibility: the principal may activate the role whenever it likes."""
        with self._lock:
            grant = RoleGrant(principal_id, role_id, scope)
            self.role_eligibilities.append(grant)
            return grant

    def assignments_of(self, principal_id: str | None) -> list[RoleGrant]:
        """Active assignments (of one principal, or all): explicit ones, the users'
        tenant-wide built-in roles, and the app's own directory roles (its service principal
        holds them: what doctor reads when a token has no ``wids``)."""
        with self._lock:
            implied = [RoleGrant(user.id, template_id, "/", f"{template_id}-{user.id}")
                       for user in self._users.values() for template_id in user.role_template_ids]
            implied += [RoleGrant(self.app_object_id, template_id, "/",
                                  f"{template_id}-{self.app_object_id}")
                        for template_id in self.app_directory_roles()]
            implied += [RoleGrant(self.app_object_id, USER_ADMINISTRATOR, scope,
                                  f"{USER_ADMINISTRATOR}-{self.app_object_id}-{scope_unit(scope)}")
                        for scope in self.app_user_administrator_scopes
                        if self.app_has_user_administrator and scope != "/"]
            grants = implied + list(self.role_assignments)
        return [g for g in grants if principal_id is None or g.principal_id == principal_id]

    def make_group_eligible(self, principal_id: str, group_id: str,
                            access: str = "member") -> GroupGrant:
        """PIM for Groups: the principal may activate membership (or ownership) at will."""
        with self._lock:
            grant = GroupGrant(principal_id, group_id, access)
            self.group_eligibilities.append(grant)
            return grant

    def assign_group_access(self, principal_id: str, group_id: str,
                            access: str = "member") -> GroupGrant:
        """PIM for Groups: an active membership (the user is then a member, listed by
        transitiveMemberOf) or ownership (not listed there)."""
        with self._lock:
            grant = GroupGrant(principal_id, group_id, access)
            self.group_assignments.append(grant)
            user = self._users.get(principal_id)
            if access == "member" and user is not None and group_id not in user.group_ids:
                user.group_ids.append(group_id)
            return grant

    def group_access_of(self, *, eligible: bool, principal_id: str | None = None,
                        group_id: str | None = None) -> list[GroupGrant]:
        """PIM for Groups instances of one principal or one group (Graph requires one)."""
        with self._lock:
            self._refuse_pim("group_eligibility" if eligible else "group_assignments")
            grants = self.group_eligibilities if eligible else self.group_assignments
            return [g for g in grants if (principal_id is None or g.principal_id == principal_id)
                    and (group_id is None or g.group_id == group_id)]

    def eligibilities_of(self, principal_id: str | None) -> list[RoleGrant]:
        with self._lock:
            self._refuse_pim("role_eligibility")
            return [g for g in self.role_eligibilities
                    if principal_id is None or g.principal_id == principal_id]

    def _refuse_pim(self, read: str) -> None:
        """Raise what a tenant without PIM answers ``read`` (pim_shapes.py), if it is one."""
        pim_shapes.check(self.pim_refusals)
        shape = self.pim_refusals.get(read) or (None if self.pim_licensed else pim_shapes.LICENCE)
        if shape is not None:
            raise TenantError(*pim_shapes.SHAPES[shape])

    def user(self, address_or_id: str) -> SandboxUser:
        """By id, UPN, mail or any SMTP proxy address (as Exchange's -Identity accepts)."""
        key = _strip_smtp(address_or_id).lower()
        with self._lock:
            try:
                return self.directory_user(address_or_id)
            except KeyError:
                pass
            for user in self._users.values():
                if user.mail == key or key in user.smtp_addresses():
                    return user
        raise KeyError(address_or_id)

    def directory_user(self, id_or_upn: str) -> SandboxUser:
        """By id or UPN only, as Graph's ``/users/{id | userPrincipalName}`` does."""
        key = id_or_upn.lower()
        with self._lock:
            if id_or_upn in self._users:
                return self._users[id_or_upn]
            for user in self._users.values():
                if user.user_principal_name == key or user.id.lower() == key:
                    return user
        raise KeyError(id_or_upn)

    def users(self) -> list[SandboxUser]:
        with self._lock:
            return list(self._users.values())

    def address_of(self, address_or_id: str) -> str:
        """The address of the user with this id or address; anything else as given."""
        user = self._user_or_none(address_or_id)
        return user.address if user is not None else address_or_id

    def federated(self, domain: str) -> bool:
        return domain.lower() in self.federated_domains

    def mail_folders(self, address_or_id: str) -> list[dict[str, Any]]:
        with self._lock:
            user = self._graph_user(address_or_id)
            return [_folder_json(folder_id, name) for folder_id, name in user.folders.items()]

    def mail_folder(self, address_or_id: str, folder: str) -> dict[str, Any]:
        """One folder by id or by well-known name (any letter case, as Graph takes it). A
        well-known name the mailbox lacks: 404 ErrorItemNotFound; a segment that is neither
        a well-known name nor an id: 400 ErrorInvalidIdMalformed."""
        with self._lock:
            user = self._graph_user(address_or_id)
            folder_id = user.well_known.get(folder.lower(), folder)
            if folder_id in user.folders:
                return _folder_json(folder_id, user.folders[folder_id])
            if folder.lower() in GRAPH_WELL_KNOWN_FOLDERS or folder.startswith("AAMkA"):
                raise TenantError(404, "ErrorItemNotFound",
                                  "The specified object was not found in the store.")
            raise TenantError(400, "ErrorInvalidIdMalformed", "Id is malformed.")

    def reset_password(self, address_or_id: str, password: Any, force_change: bool) -> None:
        with self._lock:
            user = self._graph_user(address_or_id)
            if user.reset_forbidden or not self._app_may_manage(user):
                raise TenantError(403, "Authorization_RequestDenied",
                                  "Insufficient privileges to complete the operation.")
            if user.on_premises_sync_enabled:
                raise TenantError(
                    400, "Request_BadRequest",
                    "Unable to update the specified properties for on-premises mastered "
                    "Directory Sync objects or objects currently undergoing migration.")
            if not isinstance(password, str) or not _complex_enough(password):
                raise TenantError(400, "Request_BadRequest", COMPLEXITY_REFUSAL)
            user.password_changes.append(
                {"password": password, "forceChangePasswordNextSignIn": force_change})
            self.signin.password_changed(user.id, utc_now())

    def _app_may_manage(self, user: SandboxUser) -> bool:
        """The app's User Administrator role reaches this account: tenant-wide, any account
        but those beyond the role; at an administrative unit's scope, only the unit's members
        holding no directory role at all, and only with Directory Readers at tenant scope
        (sandbox/admin_units.py). Otherwise Graph answers 403 Authorization_RequestDenied."""
        if not self.app_has_user_administrator:
            return False
        if "/" in self.app_user_administrator_scopes:
            return not self._beyond_user_administrator(user)
        units = [unit for scope in self.app_user_administrator_scopes
                 if (unit := scope_unit(scope)) is not None]
        holds_role = bool(user.role_template_ids) or any(
            grant.principal_id == user.id for grant in self.role_assignments)
        return (self.app_directory_readers and not holds_role
                and not self._beyond_user_administrator(user)
                and any(self.admin_units.holds(unit, user.id) for unit in units))

    def _beyond_user_administrator(self, user: SandboxUser) -> bool:
        """Graph refuses the app (a User Administrator) this account's reset: it holds a role
        the User Administrator may not reset, or is a member or owner of a role-assignable
        group (USER_ADMINISTRATOR_RESETS)."""
        roles = set(user.role_template_ids) | {
            grant.role_definition_id for grant in self.role_assignments
            if grant.principal_id == user.id}
        groups = set(user.group_ids) | {grant.group_id for grant in self.group_assignments
                                        if grant.principal_id == user.id}
        return bool(roles - USER_ADMINISTRATOR_RESETS or groups & self.role_assignable_groups)

    def revoke_sessions(self, address_or_id: str) -> None:
        with self._lock:
            self._graph_user(address_or_id).sessions_revoked += 1

    def set_account_enabled(self, address_or_id: str, enabled: Any) -> None:
        """Graph's update of ``accountEnabled``: a boolean, by a User Administrator app for
        an account that role may manage (as the reset)."""
        with self._lock:
            user = self._graph_user(address_or_id)
            if not isinstance(enabled, bool):
                raise TenantError(400, "Request_BadRequest",
                                  "Invalid value specified for property 'accountEnabled'.")
            if not self._app_may_manage(user):
                raise TenantError(403, "Authorization_RequestDenied",
                                  "Insufficient privileges to complete the operation.")
            user.account_enabled = enabled

    def inbox_rules(self, address_or_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._graph_user(address_or_id).inbox_rules)

    def update_rule(self, address_or_id: str, rule_id: str,
                    changes: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            user = self._graph_user(address_or_id)
            for rule in user.inbox_rules:
                if rule.get("id") == rule_id:
                    rule.update(changes)
                    return copy.deepcopy(rule)
        raise TenantError(404, "ErrorItemNotFound",
                          "The specified object was not found in the store.")

    def _graph_user(self, address_or_id: str) -> SandboxUser:
        try:
            return self.directory_user(address_or_id)
        except KeyError:
            raise TenantError(
                404, "Request_ResourceNotFound",
                f"Resource '{address_or_id}' does not exist or one of its queried "
                "reference-property objects are not present.") from None

    # --- Exchange: restricted senders and mailboxes ----------------------------------------

    def block(
        self,
        address: str,
        *,
        reason: str = DEFAULT_BLOCK_REASON,
        created: datetime | None = None,
        behaviour: BlockBehaviour | None = None,
        temporary: bool = False,
    ) -> None:
        """List ``address`` on the Restricted users list with ``reason`` (domain/rate_limits.py: the
        outbound spam policy's ``ExceedingLimitType=...`` or the recipient rate limit's
        ``EmailSendingLimitExceeded;...``) and ``temporary`` as its TemporaryBlock."""
        with self._lock:
            self._blocks[address.lower()] = _Block(
                reason=reason, created=created or utc_now(),
                behaviour=behaviour or BlockBehaviour(), temporary=temporary)

    def blocked_addresses(self) -> list[str]:
        with self._lock:
            return [sender for sender, block in self._sorted_blocks() if block.visible()]

    def blocked_entries(self) -> list[dict[str, Any]]:
        """Every listed entry, as Get-BlockedSenderAddress without a sender; consumes no read."""
        with self._lock:
            return [block.entry(sender, self.exchange.time_format)
                    for sender, block in self._sorted_blocks() if block.visible()]

    def read_block(self, address: str) -> list[dict[str, Any]]:
        """Get-BlockedSenderAddress naming one sender: consumes one linger or re-block read."""
        sender = address.lower()
        with self._lock:
            block = self._blocks.get(sender)
            if block is None:
                return []
            style = self.exchange.time_format
            if block.listed:
                return [block.entry(sender, style)]
            if block.linger_left > 0:
                block.linger_left -= 1
                return [block.entry(sender, style)]
            if block.reblock_left is None:
                return []
            if block.reblock_left > 0:
                block.reblock_left -= 1
                return []
            created = max(utc_now(), block.created + timedelta(seconds=1))
            renewed = _Block(reason=block.reason, created=created, behaviour=BlockBehaviour(),
                             temporary=block.temporary)
            self._blocks[sender] = renewed
            return [renewed.entry(sender, style)]

    def remove_block(self, address: str, reason: str | None) -> None:
        """Remove-BlockedSenderAddress. ``-Reason`` is not free text: it selects the entry by
        its own Reason value (cmdlet reference), so any other text finds nothing."""
        sender = address.lower()
        with self._lock:
            block = self._blocks.get(sender)
            if block is None or not block.visible() or (
                    reason is not None and reason != block.reason):
                raise TenantError(
                    400, "ManagementObjectNotFound",
                    f"The operation couldn't be performed because object '{address}' "
                    "couldn't be found.", NOT_FOUND_EXCEPTION)
            user = self._user_or_none(sender)
            if user is not None and user.unblock_limit_reached:
                raise TenantError(
                    400, "BadRequest",
                    f"The user {address} has reached the limit of unblocks for this period. "
                    "Please contact Microsoft support.",
                    "Microsoft.Exchange.Management.Tasks.UnblockLimitExceededException")
            self.removals.append((sender, reason))
            # Removing an entry that only lingers changes nothing: the service already let go.
            if block.listed:
                block.listed = False
                block.linger_left = block.behaviour.linger_reads
                block.reblock_left = block.behaviour.reblock_after_reads

    def mailbox(self, identity: str) -> SandboxUser:
        with self._lock:
            user = self._user_or_none(identity)
        if user is None:
            raise TenantError(
                400, "ManagementObjectNotFound",
                f"The operation couldn't be performed because object '{identity}' "
                "couldn't be found.", NOT_FOUND_EXCEPTION)
        return user

    def set_mailbox(self, identity: str, parameters: dict[str, Any]) -> None:
        with self._lock:
            user = self.mailbox(identity)
            if "ForwardingSmtpAddress" in parameters:
                value = parameters["ForwardingSmtpAddress"]
                user.forwarding_smtp_address = _strip_smtp(value) if value else None
            if "ForwardingAddress" in parameters:
                user.forwarding_address = parameters["ForwardingAddress"] or None
            if "DeliverToMailboxAndForward" in parameters:
                user.deliver_to_mailbox_and_forward = bool(
                    parameters["DeliverToMailboxAndForward"])

    def with_mailbox(self, user: SandboxUser, change: Callable[[], _T]) -> _T:
        """Run ``change`` (which reads or changes ``user``'s rules) under the tenant's lock."""
        with self._lock:
            return change()

    def _user_or_none(self, address_or_id: str) -> SandboxUser | None:
        try:
            return self.user(address_or_id)
        except KeyError:
            return None

    def _sorted_blocks(self) -> list[tuple[str, _Block]]:
        return sorted(self._blocks.items(), key=lambda item: (item[1].created, item[0]))

    # --- Defender alerts -------------------------------------------------------------------

    def add_alert(self, alert: dict[str, Any]) -> None:
        if "id" not in alert:
            raise ValueError("an alert needs an id")
        with self._lock:
            self._alerts[str(alert["id"])] = copy.deepcopy(alert)
            self._alert_version += 1

    def alert(self, alert_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._alerts[alert_id])

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert, oldest createdDateTime first."""
        with self._lock:
            alerts = copy.deepcopy(list(self._alerts.values()))
        return sorted(alerts, key=_created_key)

    def alert_page(self, query: str | None, matches: Callable[[dict[str, Any]], bool] | None,
                   skip: int, top: int) -> tuple[list[dict[str, Any]], int]:
        """One page of the alerts ``matches`` (the predicate of the filter ``query``) accepts,
        oldest createdDateTime first, and how many it accepts. The matching list is kept
        until an alert changes and only the page is copied, so paging through tens of
        thousands of alerts costs each page its own size. ``matches`` only reads."""
        with self._lock:
            cached = self._alert_listing
            if cached is None or cached[:2] != (query, self._alert_version):
                found = [alert for alert in self._alerts.values()
                         if matches is None or matches(alert)]
                found.sort(key=_created_key)
                cached = self._alert_listing = (query, self._alert_version, found)
            found = cached[2]
            return json.loads(json.dumps(found[skip:skip + top])), len(found)

    def update_alert(self, alert_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            alert = self._alerts[alert_id]
            self._alert_version += 1
            alert.update(changes)
            now = graph_timestamp(utc_now())
            alert["lastUpdateDateTime"] = now
            if changes.get("status") == "resolved":
                alert["resolvedDateTime"] = now
            return copy.deepcopy(alert)

    def add_comment(self, alert_id: str, comment: str) -> list[dict[str, Any]]:
        with self._lock:
            alert = self._alerts[alert_id]
            self._alert_version += 1
            comments = alert.setdefault("comments", [])
            comments.append({
                "comment": comment,
                "createdByDisplayName": "Automation",
                "createdDateTime": graph_timestamp(utc_now()),
            })
            return copy.deepcopy(comments)

    # --- the app's own rights -------------------------------------------------------------

    def app_permissions(self) -> list[str]:
        """The application permissions the app holds now: all it needs, less the denied ones
        (and Exchange.ManageAsApp when Exchange plays an app without it)."""
        with self._lock:
            denied = set(self.denied_permissions)
            if self.exchange.app_access == "no_app_role":
                denied.add(app_rights.EXCHANGE_PERMISSION)
            return [p.name for p in PERMISSIONS if p.name not in denied]

    def app_directory_roles(self) -> list[str]:
        """The template ids of the app's directory roles (User Administrator for resets,
        Exchange Administrator for the Exchange cmdlets)."""
        with self._lock:
            # ``wids`` lists tenant-wide roles only: an AU-scoped one is not in it.
            roles = [USER_ADMINISTRATOR] if (self.app_has_user_administrator and "/" in
                                            self.app_user_administrator_scopes) else []
            if self.app_directory_readers:
                roles.append(DIRECTORY_READERS)
            if self.exchange.app_access == "granted":
                roles.append(EXCHANGE_ADMINISTRATOR)
            return roles

    def access_token(self, audience: str = "https://graph.microsoft.com") -> str:
        """An app-only access token as Microsoft issues one (a JWT for ``audience`` listing
        the app's permissions in ``roles`` and its directory roles in ``wids``), signed with
        the tenant's token so the sandbox accepts it. Not a secret: a sandbox token."""
        resource = app_rights.resource_of(audience)
        roles = [name for name in self.app_permissions()
                 if resource is not None and name in permissions_on(resource)]
        claims = app_rights.app_claims(
            tenant_id=self.tenant_id, object_id=self.app_object_id,
            roles=roles, wids=self.app_directory_roles(), audience=audience)
        if not self.token_carries_wids:
            del claims["wids"]  # "not said", not "none"
        token = app_rights.issue(self.token, claims)
        with self._lock:
            self.issued_tokens.add(token)
        return token

    def revoke_tokens(self) -> None:
        """A revocation event (the app's service principal disabled and enabled again):
        every token issued so far is refused by Graph with a claims challenge (sandbox/cae.py)."""
        with self._lock:
            self.revoked_tokens |= self.issued_tokens

    def record_token_request(self, resource: str) -> None:
        with self._lock:
            self.token_requests.append(resource)

    def allows(self, permission: str, bearer: app_rights.Bearer) -> bool:
        """The app holds ``permission`` now, and the token presented carries it."""
        return permission in self.app_permissions() and (
            bearer.roles is None or permission in bearer.roles)

    # --- faults and the request log --------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def seed_faults(self, seed: int) -> None:
        """Where the draws of faults with a ``chance`` below 1 start: one seed, one series."""
        with self._lock:
            self._fault_random.seed(seed)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, method: str, path: str, cmdlet: str | None,
                   target: str | None) -> Fault | None:
        """The first live fault matching the request, with one of its uses spent. A fault
        with a ``chance`` below 1 that the draw spares lets the request on to the next. A
        fault that ``holds`` answers every matching request within its window, use-free."""
        now = time.monotonic()
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, path, cmdlet, target):
                    continue
                if fault.holding(now):
                    return fault
                if fault.exhausted():
                    continue
                if fault.chance < 1.0 and self._fault_random.random() >= fault.chance:
                    continue
                if not fault.consume():
                    return None
                fault.hold_from(now)
                return fault
        return None

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def requests(self) -> list[RecordedRequest]:
        # Requests are recorded when answered; sort to give arrival order.
        with self._lock:
            return sorted(self._requests, key=lambda request: request.at)


# Graph v1.0's well-known folder names (mailFolder resource type, "Well-known folder names").
GRAPH_WELL_KNOWN_FOLDERS = frozenset({
    "archive", "clutter", "conflicts", "conversationhistory", "deleteditems", "drafts",
    "inbox", "junkemail", "localfailures", "msgfolderroot", "outbox",
    "recoverableitemsdeletions", "scheduled", "searchfolders", "sentitems", "serverfailures",
    "syncissues"})


def _folder_json(folder_id: str, name: str) -> dict[str, Any]:
    return {"id": folder_id, "displayName": name, "parentFolderId": "AAMkAroot",
            "childFolderCount": 0, "unreadItemCount": 0, "totalItemCount": 0,
            "isHidden": False}


def _complex_enough(password: str) -> bool:
    classes = [
        any(c in string.ascii_lowercase for c in password),
        any(c in string.ascii_uppercase for c in password),
        any(c in string.digits for c in password),
        any(not c.isalnum() for c in password),
    ]
    return len(password) >= 8 and sum(classes) >= 3


def _strip_smtp(address: Any) -> str:
    text = str(address)
    return text[5:] if text.lower().startswith("smtp:") else text


def _created_key(alert: dict[str, Any]) -> tuple[int, datetime | str]:
    try:
        return (1, parse_timestamp(str(alert["createdDateTime"])))
    except (KeyError, ValueError):
        return (0, "")
