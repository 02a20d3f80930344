"""The administrative unit the operator chose (``SCOPE_ADMINISTRATIVE_UNIT_ID``): an account
outside it is escalated before any change, never touched.

Why the product checks it itself rather than trusting Graph's 403: the app's Graph
application permissions (``User-PasswordProfile.ReadWrite.All``, ``User.RevokeSessions.All``,
``UserAuthenticationMethod.ReadWrite.All``, ...) are tenant-wide, and Microsoft's pages do
not agree on whether an app-only password reset needs a role at all (Graph's
``users-passwordprofile-permissions`` include names only the permission for app-only;
msgraph-sdk ``models/user.py``, ``password_profile``, asks for "at least the User
Administrator Microsoft Entra role"; microsoft-graph-docs-contrib PR #9577 says it works
without). Only a check before the first write keeps every step (sessions, sign-in methods,
consents, inbox rules, forwarding, the unblock) inside the unit, whatever Graph would allow.
"""

from typing import Protocol

from remediation.domain.directory import DirectoryUser

OUT_OF_SCOPE = "out_of_scope"  # the guardrails step's data key: the unit the account is not in


class AdministrativeScope(Protocol):
    async def holds(self, unit_id: str, user_id: str) -> bool:
        """Whether ``user_id`` is a direct member of administrative unit ``unit_id`` (a group
        in a unit does not bring its members). Raises PermanentError / TransientError when
        the membership cannot be read: never answers False for "could not tell"."""
        ...


def outside_unit(user: DirectoryUser, unit_id: str) -> str:
    """That the account is outside the unit, without advice (an undo refused says it)."""
    return (f"{user.sender_address} is not a member of administrative unit {unit_id} "
            "(SCOPE_ADMINISTRATIVE_UNIT_ID), the part of the directory the robot may change")


def out_of_scope_reason(user: DirectoryUser, unit_id: str) -> str:
    """Why an account outside the unit is escalated, and what to do, in one line."""
    return (f"{outside_unit(user, unit_id)}: nothing was changed. Secure it by hand, or add "
            f"it to the unit and run `remediation enqueue --user {user.sender_address} "
            "--force`")
