"""The least-privilege settings are checked first, like every other (README, Configuration)."""

import pytest

from remediation.config import ConfigError, Settings

TENANT = "8f6d1c2e-5b4a-4e3f-9a1b-7c2d3e4f5a6b"
UNIT = "4D819CE9-9257-44A5-8D6E-2F1B3C5A7E90"


def test_the_unit_is_read_as_an_object_id() -> None:
    settings = Settings.from_env({"AZURE_TENANT_ID": TENANT,
                                  "SCOPE_ADMINISTRATIVE_UNIT_ID": UNIT})

    assert settings.scope_administrative_unit_id == UNIT.lower()
    assert settings.mailbox_access == "tenant-wide"


@pytest.mark.parametrize(("env", "message"), [
    ({"SCOPE_ADMINISTRATIVE_UNIT_ID": "Remediation scope"},
     "SCOPE_ADMINISTRATIVE_UNIT_ID: 'remediation scope' is not an administrative unit's object id"),
    ({"MAILBOX_ACCESS": "scoped"}, "MAILBOX_ACCESS: 'scoped' is not one of"),
    ({"MAILBOX_ACCESS": "exchange-rbac"},
     "MAILBOX_ACCESS: exchange-rbac scopes mailboxes to the administrative unit"),
])
def test_a_bad_choice_is_one_line_naming_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(")):
        Settings.from_env({"AZURE_TENANT_ID": TENANT, **env})
