"""What the workflow needs to know about an account from the directory."""

from dataclasses import dataclass


@dataclass(frozen=True)
class DirectoryUser:
    id: str
    user_principal_name: str
    mail: str | None
    display_name: str | None = None
    account_enabled: bool | None = True
    on_premises_sync_enabled: bool | None = None
    user_type: str | None = "Member"

    @property
    def sender_address(self) -> str:
        """The address Exchange lists in the Restricted users list."""
        return (self.mail or self.user_principal_name).lower()
