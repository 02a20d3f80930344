"""Sign-in methods as a leftover kind, on Microsoft Graph v1.0 through msgraph-sdk.

- Read: ``GET /users/{id}/authentication/methods`` (Graph v1.0 "List methods"; no query
  options). Then, only when a method has no ``createdDateTime`` (phone, email, software OATH),
  the directory audit log: ``GET /auditLogs/directoryAudits?$filter=activityDisplayName eq
  'User registered security info' and targetResources/any(t: t/id eq '{id}')``, and the same
  for 'Admin registered security info' (Graph v1.0 "List directoryAudits": ``$filter`` with
  ``eq``/``startswith`` on ``activityDisplayName``, ``eq`` on ``targetResources`` ``id``;
  ``or`` is not among the documented operators, hence two reads).
- Remove: ``DELETE /users/{id}/authentication/{kind}Methods/{id}`` with the request builder of
  the method's type (``remediation/domain/signin_methods.py``, ``KINDS``: the v1.0 builders
  msgraph-sdk has: phone, email, software OATH, Microsoft Authenticator, FIDO2, Windows Hello,
  Temporary Access Pass, platform credential, external). The password has none and is never
  removed; a type v1.0 cannot delete (passwordless Authenticator, hardware OATH: beta only)
  is refused with a reason that says so, and the case escalates.
- The default method: Graph refuses it while others exist, ``400 badRequest`` "Cannot delete
  default method with other methods configured. Please change default method before
  deletion." (microsoft-graph-docs #14470; #18091: "... matches the user's current default
  authentication method, and cannot be deleted until the default authentication method is
  changed"). Graph v1.0 cannot change the default: ``PATCH
  /users/{id}/authentication/signInPreferences`` (``userPreferredMethodForSecondaryAuthentication``)
  exists in beta only (https://learn.microsoft.com/graph/api/authentication-update?view=graph-rest-beta;
  the v1.0 ``authentication`` resource has no ``signInPreferences``, msgraph-sdk v1.0 no
  builder for it). So the refusal is raised as PermanentError naming it and why: the case
  escalates, the sender stays blocked.

Permissions (remediation/permissions.py): ``UserAuthenticationMethod.ReadWrite.All``, the least
privileged application permission that lists and deletes every type; ``AuditLog.Read.All`` and
``Directory.Read.All`` for the audit log.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from remediation.adapters.graph_audit_log import directory_audits
from remediation.adapters.graph_caller import GraphCaller, GraphRequestError
from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import PermanentError
from remediation.domain.leftovers import CompromiseWindow, Leftover
from remediation.domain.signin_methods import (
    KINDS,
    PASSWORD,
    REGISTERED,
    Registration,
    judge,
    method_from_json,
    registration_from_json,
)

if TYPE_CHECKING:
    from msgraph.generated.users.item.authentication.authentication_request_builder import (
        AuthenticationRequestBuilder,
    )

STEP = "signin_methods"
DEFAULT_STAYED = (
    "it is the user's default sign-in method, which Graph will not delete while others exist "
    "({graph}). Microsoft Graph v1.0 has no way to change a user's default method "
    "(signInPreferences is beta only), so the robot cannot: have the user change the default "
    "in My Sign-Ins (Security info), or an authentication administrator in the Entra admin "
    "center, then remove this method; the sender stays blocked until a person has")
# The item request builder of each type: (authentication builder, method id) -> builder.
_ITEMS: dict[str, Callable[["AuthenticationRequestBuilder", str], Any]] = {
    "phoneAuthenticationMethod":
        lambda a, m: a.phone_methods.by_phone_authentication_method_id(m),
    "emailAuthenticationMethod":
        lambda a, m: a.email_methods.by_email_authentication_method_id(m),
    "softwareOathAuthenticationMethod":
        lambda a, m: a.software_oath_methods.by_software_oath_authentication_method_id(m),
    "microsoftAuthenticatorAuthenticationMethod":
        lambda a, m: a.microsoft_authenticator_methods
        .by_microsoft_authenticator_authentication_method_id(m),
    "fido2AuthenticationMethod":
        lambda a, m: a.fido2_methods.by_fido2_authentication_method_id(m),
    "windowsHelloForBusinessAuthenticationMethod":
        lambda a, m: a.windows_hello_for_business_methods
        .by_windows_hello_for_business_authentication_method_id(m),
    "temporaryAccessPassAuthenticationMethod":
        lambda a, m: a.temporary_access_pass_methods
        .by_temporary_access_pass_authentication_method_id(m),
    "platformCredentialAuthenticationMethod":
        lambda a, m: a.platform_credential_methods
        .by_platform_credential_authentication_method_id(m),
    "externalAuthenticationMethod":
        lambda a, m: a.external_authentication_methods
        .by_external_authentication_method_id(m),
}


class GraphSignInMethods:
    """The ``signin_methods`` leftover kind (remediation/service/leftovers.py).
    ``cleanup``: ``remove`` (SIGNIN_CLEANUP's default) or ``report``."""

    step = STEP
    label = "sign-in methods"

    def __init__(self, caller: GraphCaller, cleanup: str = "remove") -> None:
        self._graph = caller
        self._remove = cleanup == "remove"

    async def survey(self, user: DirectoryUser, window: CompromiseWindow) -> list[Leftover]:
        """Every method of the account with its disposition (``judge``). Reads only;
        PermanentError when Graph refuses a read (a missing permission), TransientError
        when a later attempt may succeed."""
        items = await self._graph.get_all(
            "list sign-in methods",
            lambda c: c.users.by_user_id(user.id).authentication.methods
            .to_get_request_information())
        methods = [method for item in items if (method := method_from_json(item)) is not None]
        undated = [m for m in methods if m.created is None and m.odata_type != PASSWORD]
        registrations = await self._registrations(user.id) if undated else []
        return judge(methods, registrations, window, remove=self._remove)

    async def _registrations(self, user_id: str) -> list[Registration]:
        found: list[Registration] = []
        literal = user_id.replace("'", "''")
        for activity in REGISTERED:
            clause = (f"activityDisplayName eq '{activity}' and "
                      f"targetResources/any(t: t/id eq '{literal}')")
            items = await directory_audits(self._graph, "read the directory audit log",
                                           clause)
            found += [record for item in items
                      if (record := registration_from_json(item)) is not None]
        return found

    async def remove(self, user: DirectoryUser, leftover: Leftover) -> None:
        """``DELETE`` the method; one already gone counts as removed. PermanentError with
        the reason when Graph refuses (the default method) or v1.0 cannot delete its type."""
        odata_type = str(leftover.snapshot.get("type") or "")
        method_id = str(leftover.snapshot.get("id") or "")
        item = _ITEMS.get(odata_type)
        if item is None or not method_id:
            label = KINDS[odata_type].label if odata_type in KINDS else odata_type
            raise PermanentError(
                f"the robot does not delete a {label or 'method of this type'} (Microsoft "
                "Graph v1.0 has no delete for it, or this build does not know the type): "
                "remove it by hand in the Entra admin center (the user's Authentication "
                "methods)")
        try:
            await self._graph.call(
                "delete sign-in method",
                lambda c: item(c.users.by_user_id(user.id).authentication, method_id).delete())
        except GraphRequestError as error:
            if error.not_found:
                return
            if _default_refused(error):
                raise PermanentError(DEFAULT_STAYED.format(graph=error.reason)) from None
            raise


def _default_refused(error: GraphRequestError) -> bool:
    text = error.reason.lower()
    return error.status == 400 and "default" in text and "cannot" in text
