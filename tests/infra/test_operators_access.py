"""The operators' group reads the journal table: with ``operatorsGroupId`` (azd:
``AZURE_OPERATORS_GROUP_ID``) the template assigns that group Storage Table Data Reader on the
journal's table alone; empty, it assigns nothing. Like every parameter azd passes, it comes from
the azd environment with the template's default and has its row in the README's table."""

from typing import Any

import pytest

from tests.infra.bicep import MAIN, Template, main
from tests.infra.test_deployment_parameters import (
    AZD_VARIABLE,
    bicep_default,
    deployment_steps,
    mapped,
    operator_settings,
)

GROUP = "5b3c1a2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
# "Storage Table Data Reader": actions Microsoft.Storage/storageAccounts/tableServices/
# tables/read, dataActions .../tables/entities/read, nothing else; id 76199698-9eea-4c19-
# bc75-cec21354c6b6 (MicrosoftDocs/azure-docs, articles/role-based-access-control/
# built-in-roles/storage.md, the role's JSON).
TABLE_DATA_READER = "76199698-9eea-4c19-bc75-cec21354c6b6"
TABLE = "Microsoft.Storage/storageAccounts/tableServices/tables"


def group_assignments(template: Template) -> list[tuple[Template, dict[str, Any]]]:
    """Every role assignment of every module given to a group."""
    found = []
    for module in template.section("modules"):
        owner = template.module(module)
        for symbol in owner.resources("Microsoft.Authorization/roleAssignments"):
            found += [(owner, assignment) for assignment in owner.instances(symbol)
                      if assignment["properties"]["principalType"] == "Group"]
    return found


def test_without_a_group_nobody_but_the_app_is_given_a_role() -> None:
    assert bicep_default("operatorsGroupId") == ""
    assert group_assignments(main()) == []


def test_the_group_reads_the_journal_table_and_nothing_else() -> None:
    [(owner, assignment)] = group_assignments(Template(MAIN, {"operatorsGroupId": GROUP}))

    properties = assignment["properties"]
    assert properties["principalId"] == GROUP
    assert properties["roleDefinitionId"] == (
        f"Microsoft.Authorization/roleDefinitions/{TABLE_DATA_READER}")
    scope = owner.section("resources")[assignment["scope"]]
    assert scope["type"] == TABLE
    [table] = owner.instances(assignment["scope"])
    assert table["name"] == "remediationjournal"


def test_parameters_azd_passes_that_are_no_app_setting_come_from_their_azure_name() -> None:
    """``operatorsGroupId`` -> ``${AZURE_OPERATORS_GROUP_ID}``: the parameter's name in upper
    snake case with ``AZURE_`` in front, the template's default after ``=`` (none: empty)."""
    others = set(mapped()) - set(operator_settings().values()) - {"environmentName"}
    assert others == {"operatorsGroupId"}
    for parameter in others:
        match = AZD_VARIABLE.match(mapped()[parameter])
        assert match, parameter
        snake = "".join(f"_{c}" if c.isupper() else c.upper() for c in parameter)
        assert match[1] == f"AZURE_{snake}", parameter
        assert (match[2] or "") == bicep_default(parameter)


@pytest.mark.parametrize("name", ["AZURE_OPERATORS_GROUP_ID"])
def test_the_readme_lists_it_with_its_default_and_the_role(name: str) -> None:
    rows = [line for line in deployment_steps().splitlines()
            if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"README, Deployment: one table row for {name}"
    assert rows[0].split("|")[2].strip() == "empty"
    assert "Storage Table Data Reader" in rows[0] and TABLE_DATA_READER in rows[0]
