"""What `azd up` passes the template: every parameter main.bicep requires comes from the azd
environment (infra/main.parameters.json), and the README's deployment steps say what to set
and why the tenant is the subscription's own."""

import json
import re

from tests.infra.bicep import INFRA, ROOT
from tests.infra.test_bicep import main

PARAMETERS = INFRA / "main.parameters.json"
AZD_VARIABLE = re.compile(r"^\$\{(\w+)(=[^}]*)?\}$")


def mapped() -> dict[str, str]:
    document = json.loads(PARAMETERS.read_text())
    return {name: entry["value"] for name, entry in document["parameters"].items()}


def test_azd_passes_every_parameter_the_template_requires() -> None:
    declared = main().section("parameters")
    required = {name for name, parameter in declared.items() if parameter["default"] is None}
    assert required == {"environmentName"}
    assert set(mapped()) <= set(declared), "a parameter main.bicep does not declare"
    assert required <= set(mapped()), "azd would deploy without a required parameter"
    assert mapped()["environmentName"] == "${AZURE_ENV_NAME}"
    for name, value in mapped().items():
        assert AZD_VARIABLE.match(str(value)), f"{name}: not taken from the azd environment"


def test_the_tenant_is_left_to_the_subscriptions_own() -> None:
    """The managed identity lives in the subscription's tenant and gets tokens from no other:
    azd never passes another tenant id (its default is subscription().tenantId)."""
    assert "tenantId" not in mapped()
    default = main().section("parameters")["tenantId"]["default"]
    assert default["operator"]["operands"]["operand_1"]["function"]["type"] == "subscription"


def test_the_readme_deployment_steps_explain_what_to_set() -> None:
    readme = (ROOT / "README.md").read_text()
    steps = readme.split("### Deployment", 1)[1].split("\n## ", 1)[0]
    for words in ("environmentName", "AZURE_ENV_NAME", "azd env set", "tenantId",
                  "subscription's tenant", "3 to 12"):
        assert words in steps, f"README, Deployment: say {words!r}"
