"""What the workflow needs to know about an account from the directory."""

from dataclasses import dataclass

# creationType values of accounts whose credentials live outside the tenant (msgraph-sdk,
# models/user.py, ``creation_type``: Invitation = an external account; EmailVerified and
# SelfServiceSignUp = self-service sign-up). Compared in lower case.
EXTERNAL_CREATION_TYPES = frozenset({"invitation", "emailverified", "selfservicesignup"})


@dataclass(frozen=True)
class DirectoryUser:
    id: str
    user_principal_name: str
    mail: str | None
    display_name: str | None = None
    account_enabled: bool | None = True
    on_premises_sync_enabled: bool | None = None
    user_type: str | None = "Member"
    # Every SMTP address of the account, lower case, without the "smtp:" prefix, the primary
    # (Graph's "SMTP:") first.
    proxy_addresses: tuple[str, ...] = ()
    creation_type: str | None = None
    external_user_state: str | None = None

    @property
    def sender_address(self) -> str:
        """The address Exchange lists in the Restricted users list."""
        return (self.mail or self.user_principal_name).lower()

    @property
    def aliases(self) -> tuple[str, ...]:
        """Its UPN, mail and SMTP addresses, lower case, each once."""
        names = (self.user_principal_name, self.mail or "", *self.proxy_addresses)
        return tuple(sorted({name.lower() for name in names if name}))

    def owns(self, key: str) -> bool:
        """Is ``key`` this account's object id, UPN, mail or one of its SMTP addresses?
        Case-insensitive; an ``smtp:`` prefix is ignored."""
        wanted = bare_address(key)
        return wanted in {self.id.lower(), self.user_principal_name.lower(),
                          (self.mail or "").lower(), *self.proxy_addresses}

    @property
    def external_reason(self) -> str | None:
        """Why this is an external account (its password is not ours to reset), or None.

        ``#EXT#`` in the UPN marks an account invited from elsewhere, whatever its
        ``userType``; so does an external ``creationType``; so does any
        ``externalUserState``: msgraph-sdk (models/user.py, ``external_user_state``): "For a
        guest invited to the tenant using the invitation API, this property represents the
        invited user's invitation status. For invited users, the state can be
        PendingAcceptance or Accepted, or null for all other users". An internal account
        converted to B2B keeps its UPN and has no creationType, but now signs in with its
        home organisation's credentials.
        """
        if "#ext#" in self.user_principal_name.lower():
            return "#EXT# in its user principal name"
        if (self.creation_type or "").lower() in EXTERNAL_CREATION_TYPES:
            return f"creationType {self.creation_type}"
        if self.external_user_state:
            return f"externalUserState {self.external_user_state}"
        return None


def bare_address(address: str) -> str:
    """An address as compared: trimmed, lower case, without an ``smtp:`` prefix."""
    text = address.strip()
    if text.lower().startswith("smtp:"):
        text = text[5:].strip()
    return text.lower()
