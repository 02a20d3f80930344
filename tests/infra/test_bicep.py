"""The Bicep templates parse, and what they deploy is what the code reads.

No Azure and no Bicep CLI here: the templates are parsed with pycep-parser and evaluated as
far as they are known before deployment (``tests/infra/bicep.py``). ``make test`` also runs
checkov over ``infra/`` (``infra/scan.sh``).
"""

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from lark.exceptions import UnexpectedInput

from remediation.adapters.queue_limits import DUPLICATE_DETECTION_WINDOW
from remediation.config import Settings
from remediation.domain.durations import parse_duration
from remediation.entrypoints import functions
from remediation.service.settings import MODES
from tests.infra.bicep import (
    INFRA,
    MAIN,
    ROOT,
    Deployed,
    Template,
    bicep_files,
    main,
    parse,
    parser,
)

# Azure built-in roles by role definition id, as listed on Microsoft's "Azure built-in roles"
# page, https://learn.microsoft.com/azure/role-based-access-control/built-in-roles (source:
# MicrosoftDocs/azure-docs, articles/role-based-access-control/built-in-roles.md).
BUILT_IN_ROLES = {
    "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": "Azure Service Bus Data Sender",
    "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": "Azure Service Bus Data Receiver",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    # "Read secret contents ... Only works for key vaults that use the 'Azure role-based access
    # control' permission model" (MicrosoftDocs/azure-docs, articles/key-vault/general/
    # rbac-guide.md, "Azure built-in roles for Key Vault data plane operations").
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
}

# What the README's Deployment section promises the app's identity, and on which resource.
EXPECTED_ROLES = {
    ("Azure Service Bus Data Sender", "Microsoft.ServiceBus/namespaces"),  # enqueue, retries
    ("Azure Service Bus Data Receiver", "Microsoft.ServiceBus/namespaces"),  # the triggers
    ("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts"),  # host, package
    ("Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts"),  # host
    ("Storage Table Data Contributor", "Microsoft.Storage/storageAccounts"),  # the journal
    ("Monitoring Metrics Publisher", "Microsoft.Insights/components"),  # Entra-only ingestion
    ("Key Vault Secrets User", "Microsoft.KeyVault/vaults"),  # the webhook URL's reference
}

# Service Bus limits, from Microsoft Learn. Duplicate detection window: "Max value is 7 days
# and minimum is 20 seconds" (.NET QueueProperties.DuplicateDetectionHistoryTimeWindow,
# https://learn.microsoft.com/dotnet/api/azure.messaging.servicebus.administration.
# queueproperties.duplicatedetectionhistorytimewindow; also "Duplicate detection",
# https://learn.microsoft.com/azure/service-bus-messaging/duplicate-detection).
# Lock duration: "The maximum value for LockDuration is 5 minutes" (ServiceBusQueueData.
# LockDuration, https://learn.microsoft.com/dotnet/api/azure.resourcemanager.servicebus.
# servicebusqueuedata.lockduration).
DUPLICATE_WINDOW_MIN, DUPLICATE_WINDOW_MAX = timedelta(seconds=20), timedelta(days=7)
LOCK_DURATION_MAX = timedelta(minutes=5)

# Settings.from_env reads these, but the template leaves them to the code's default in Azure.
AZURE_DEFAULTS = {
    "GRAPH_ENDPOINT", "EXCHANGE_ENDPOINT", "HTTP_TIMEOUT", "HTTP_MAX_RETRIES",
    "JOURNAL_TABLE_ENDPOINT",  # derived from AzureWebJobsStorage__accountName
}
# Settings.from_env reads these for the local runtime only; the template must not set them.
LOCAL_ONLY = {
    "SANDBOX_TOKEN", "REMEDIATION_DB", "WORKER_CONCURRENCY", "WORKER_PROCESSES", "LOCK_DURATION",
    "ALERT_POLL_INTERVAL",
    "JOURNAL_TABLE_CONNECTION_STRING",  # a key: Azure uses the identity
}

ISO_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def iso_duration(text: str) -> timedelta:
    match = ISO_DURATION.fullmatch(text)
    assert match and text not in ("P", "PT") and not text.endswith("T"), text
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def app_settings(template: Template | None = None) -> dict[str, Any]:
    """The app settings ``template`` (main.bicep with its defaults) writes, by name."""
    [app] = (template or main()).module("functionApp").instances("app")
    settings = app["properties"]["siteConfig"]["appSettings"]
    named = {setting["name"]: setting["value"] for setting in settings}
    assert len(named) == len(settings), "an app setting is set twice"
    return named


def queues() -> dict[str, dict[str, Any]]:
    service_bus = main().module("serviceBus")
    found = {}
    for symbol in service_bus.resources("Microsoft.ServiceBus/namespaces/queues"):
        [queue] = service_bus.instances(symbol)
        found[queue["name"]] = queue["properties"]
    return found


class RecordingEnv(dict[str, str]):
    """An empty environment that notes every name asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def read_by_settings() -> set[str]:
    env = RecordingEnv()
    Settings.from_env(env)
    return env.read


def bindings() -> list[dict[str, Any]]:
    """Every binding of the blueprint, indexed by a fresh app (get_functions runs once per
    app, and tests/functions indexes the real one)."""
    app = func.FunctionApp()
    app.register_functions(functions.blueprint)
    return [{**binding, "function": function.get_function_name()}
            for function in app.get_functions()
            for binding in json.loads(function.get_function_json())["bindings"]]


# --- every file parses ---------------------------------------------------------------------


@pytest.mark.parametrize("path", bicep_files(), ids=lambda path: str(path.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path) -> None:
    parsed = parse(path)
    assert parsed["globals"]["scope"]["value"] == "resourceGroup"
    assert {"resources", "modules"} & set(parsed), "declares nothing"


def test_main_uses_every_module_and_nothing_else() -> None:
    used = {(MAIN.parent / module["detail"]["path"]).resolve()
            for module in main().section("modules").values()}
    assert used == {path.resolve() for path in bicep_files() if path != MAIN}


def test_the_parser_rejects_what_is_not_bicep() -> None:
    with pytest.raises(UnexpectedInput):
        parser().parse(text="resource q 'Microsoft.ServiceBus/namespaces/queues@2022-10-01' = {")
    with pytest.raises(UnexpectedInput):
        parser().parse(text="param count int = \n")


# --- Service Bus -----------------------------------------------------------------------------


def test_the_queues_are_the_ones_the_code_and_the_app_settings_name() -> None:
    defaults, settings = Settings(), app_settings()
    assert set(queues()) == {defaults.remediation_queue, defaults.verification_queue}
    assert settings["REMEDIATION_QUEUE"] == defaults.remediation_queue
    assert settings["VERIFICATION_QUEUE"] == defaults.verification_queue


@pytest.mark.parametrize("name", [Settings().remediation_queue, Settings().verification_queue])
def test_each_queue_has_sessions_duplicate_detection_and_the_apps_delivery_count(
        name: str) -> None:
    queue, settings = queues()[name], app_settings()
    assert queue["requiresSession"] is True  # one user is never worked on twice at once
    assert queue["requiresDuplicateDetection"] is True  # one message per alert id
    window = iso_duration(queue["duplicateDetectionHistoryTimeWindow"])
    assert DUPLICATE_WINDOW_MIN <= window <= DUPLICATE_WINDOW_MAX
    assert window > parse_duration(settings["ALERT_LOOKBACK"])  # overlapping polls dedupe
    # The code counts attempts against MAX_DELIVERY_COUNT; the broker's limit is the same, and
    # the app knows it (QUEUE_MAX_DELIVERY_COUNT): a message is never dead-lettered before its
    # case is escalated.
    assert queue["maxDeliveryCount"] == int(settings["MAX_DELIVERY_COUNT"])
    assert queue["maxDeliveryCount"] == int(settings["QUEUE_MAX_DELIVERY_COUNT"])
    parsed = Settings.from_env({name: value for name, value in settings.items()
                                if name in ("MAX_DELIVERY_COUNT", "QUEUE_MAX_DELIVERY_COUNT")})
    assert parsed.max_delivery_count == parsed.broker_max_delivery_count == queue[
        "maxDeliveryCount"]
    lock = iso_duration(queue["lockDuration"])
    assert timedelta(0) < lock <= LOCK_DURATION_MAX
    assert lock == Settings().lock_duration  # the local queue behaves the same
    host = json.loads((ROOT / "host.json").read_text())
    hours, minutes, seconds = map(int, host["extensions"]["serviceBus"][
        "maxAutoLockRenewalDuration"].split(":"))
    assert timedelta(hours=hours, minutes=minutes, seconds=seconds) > lock
    assert iso_duration(queue["defaultMessageTimeToLive"]) > window


@pytest.mark.parametrize("name", [Settings().remediation_queue, Settings().verification_queue])
def test_the_local_queue_detects_duplicates_over_the_same_window(name: str) -> None:
    window = iso_duration(queues()[name]["duplicateDetectionHistoryTimeWindow"])
    assert window == DUPLICATE_DETECTION_WINDOW  # the constant SqliteQueue uses


def test_the_namespace_has_sessions_and_duplicate_detection_and_no_keys() -> None:
    service_bus = main().module("serviceBus")
    [symbol] = service_bus.resources("Microsoft.ServiceBus/namespaces")
    [namespace] = service_bus.instances(symbol)
    assert namespace["sku"]["name"] in ("Standard", "Premium")  # Basic has neither
    assert namespace["properties"]["disableLocalAuth"] is True
    assert namespace["properties"]["minimumTlsVersion"] == "1.2"
    fqdn = f"{service_bus.value(namespace['name'])}.servicebus.windows.net"
    assert app_settings()["ServiceBusConnection__fullyQualifiedNamespace"] == fqdn


# --- app settings ----------------------------------------------------------------------------


def test_the_app_sets_every_setting_the_code_reads_in_azure() -> None:
    read = read_by_settings()
    assert read >= AZURE_DEFAULTS | LOCAL_ONLY, "this test names settings the code no longer reads"
    for binding in bindings():
        read |= set(re.findall(r"%(\w+)%", json.dumps(binding)))
    source = (ROOT / "remediation" / "entrypoints" / "functions.py").read_text()
    read |= set(re.findall(r'os\.environ\.get\("(\w+)"', source))  # read at import
    settings = app_settings()
    assert sorted(read - AZURE_DEFAULTS - LOCAL_ONLY - set(settings)) == []
    assert sorted((LOCAL_ONLY | AZURE_DEFAULTS) & set(settings)) == []


def test_every_connection_is_identity_based_or_its_function_disabled() -> None:
    settings = app_settings()
    client_id = main().module("identity").output("clientId")
    assert isinstance(client_id, Deployed)
    assert settings["AZURE_CLIENT_ID"] == client_id
    connections = {(binding["connection"], binding["function"])
                   for binding in bindings() if "connection" in binding}
    assert connections
    for connection, function in connections:
        if f"{connection}__fullyQualifiedNamespace" in settings:
            assert settings[f"{connection}__credential"] == "managedidentity"
            assert settings[f"{connection}__clientId"] == client_id
        else:  # the Defender stream needs a tenant's Event Hub: off until configured
            assert settings[f"AzureWebJobs.{function}.Disabled"] == "true", connection
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == client_id
    assert not any("AccountKey=" in str(value) or "SharedAccessKey" in str(value)
                   for value in settings.values())


def test_the_settings_template_and_the_bicep_template_name_the_same_settings() -> None:
    template = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
    settings = app_settings()
    for name in template:
        if name.startswith(("FUNCTIONS_", "DefenderStreamConnection")):
            continue  # set by the platform (Flex Consumption refuses it) or per tenant
        if name in AZURE_DEFAULTS | LOCAL_ONLY:
            continue  # the template lists every setting; Azure leaves these to the code
        assert name in settings, name
    assert "FUNCTIONS_WORKER_RUNTIME" not in settings  # functionAppConfig.runtime says it


def test_the_app_settings_are_a_valid_configuration_in_every_allowed_mode() -> None:
    template = main()
    assert set(template.allowed("remediationMode")) == set(MODES)
    assert template.section("parameters")["remediationMode"]["default"] == "dry-run"
    known = {name: value for name, value in app_settings().items() if isinstance(value, str)}
    assert known["REMEDIATION_MODE"] == "dry-run"
    for mode in MODES:
        settings = Settings.from_env({**known, "REMEDIATION_MODE": mode})
        assert settings.mode == mode
        assert settings.max_delivery_count == int(known["MAX_DELIVERY_COUNT"])


def test_the_journal_table_is_the_one_the_app_names() -> None:
    storage = main().module("storage")
    table_type = "Microsoft.Storage/storageAccounts/tableServices/tables"
    tables = [storage.instances(symbol)[0]["name"] for symbol in storage.resources(table_type)]
    assert tables == [app_settings()["JOURNAL_TABLE_NAME"]]
    account = storage.output("name")
    assert app_settings()["AzureWebJobsStorage__accountName"] == account


# --- role assignments ------------------------------------------------------------------------


def test_the_identity_gets_exactly_the_roles_the_readme_lists_on_the_right_resources() -> None:
    """Every role assignment of every module: to the app's identity, a built-in role known by
    its id, on a resource the templates create."""
    template = main()
    principal = template.module("identity").output("principalId")
    owners = {  # the resources the modules create, by type and name
        "Microsoft.ServiceBus/namespaces": template.module("serviceBus").reference("namespace"),
        "Microsoft.Storage/storageAccounts": template.module("storage").reference("storage"),
        "Microsoft.Insights/components": template.module("monitoring").reference("insights"),
        "Microsoft.KeyVault/vaults": template.module("keyVault").reference("vault"),
    }
    assigned = set()
    for module in template.section("modules"):
        owner = template.module(module)
        for symbol in owner.resources("Microsoft.Authorization/roleAssignments"):
            for assignment in owner.instances(symbol):
                properties = assignment["properties"]
                assert properties["principalId"] == principal
                assert properties["principalType"] == "ServicePrincipal"
                kind, _, guid = properties["roleDefinitionId"].rpartition("/")
                assert kind == "Microsoft.Authorization/roleDefinitions"
                assert guid in BUILT_IN_ROLES, f"unknown role definition {guid}"
                scope = owner.section("resources")[assignment["scope"]]
                assert owner.reference(assignment["scope"]) == owners[scope["type"]]
                assigned.add((BUILT_IN_ROLES[guid], scope["type"]))
    assert assigned == EXPECTED_ROLES


def test_the_function_app_runs_as_the_identity_the_roles_are_given_to() -> None:
    template = main()
    [app] = template.module("functionApp").instances("app")
    identity_id = template.module("identity").output("id")
    assert app["identity"]["type"] == "UserAssigned"
    assert list(app["identity"]["userAssignedIdentities"]) == [f"<{identity_id.expression}>"]
    deployment = app["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert deployment["authentication"] == {"type": "UserAssignedIdentity",
                                            "userAssignedIdentityResourceId": identity_id}


# --- the policy scan's exceptions ------------------------------------------------------------


def test_every_checkov_skip_is_one_check_with_its_reason_beside_its_resource() -> None:
    skips = [(path, line) for path in bicep_files()
             for line in path.read_text().splitlines() if "checkov:skip" in line]
    assert skips, "infra/scan.sh expects the exceptions to be written in the templates"
    for path, line in skips:
        match = re.fullmatch(r"\s+// checkov:skip=(CKV_AZURE_\d+):(.+)", line)
        assert match, f"{path.name}: {line.strip()}"
        assert len(match[2].split()) >= 8, f"{path.name}: say why {match[1]} does not apply"
    assert not list(ROOT.glob(".checkov.y*ml")) and not list(INFRA.glob(".checkov.y*ml"))


# --- the webhook URL, a Key Vault reference --------------------------------------------------

WEBHOOK = "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual?sig=c2ln"


def with_webhook() -> Template:
    """main.bicep as azd deploys it with ESCALATION_WEBHOOK_URL set."""
    return Template(MAIN, {"escalationWebhookUrl": WEBHOOK})


def test_the_vault_uses_azure_rbac_with_soft_delete_and_purge_protection() -> None:
    vaults = main().module("keyVault")
    [symbol] = vaults.resources("Microsoft.KeyVault/vaults")
    [vault] = vaults.instances(symbol)
    properties = vault["properties"]
    assert properties["enableRbacAuthorization"] is True  # roles, not access policies
    assert "accessPolicies" not in properties
    assert properties["enableSoftDelete"] is True
    assert properties["enablePurgeProtection"] is True
    assert 7 <= properties["softDeleteRetentionInDays"] <= 90  # Key Vault's bounds
    assert properties["sku"]["name"] == "standard"


def test_the_webhook_secret_is_created_only_when_a_url_is_given() -> None:
    vaults = main().module("keyVault")
    [symbol] = vaults.resources("Microsoft.KeyVault/vaults/secrets")
    assert vaults.instances(symbol) == []  # none given: no secret, and none overwritten
    [secret] = with_webhook().module("keyVault").instances(symbol)
    assert secret["properties"]["value"] == WEBHOOK
    assert secret["properties"]["contentType"] == "text/uri-list"  # checkov cannot see it


def test_the_app_reads_the_webhook_url_through_a_key_vault_reference() -> None:
    """``@Microsoft.KeyVault(SecretUri=...)``, resolved by App Service with the identity named
    by the site's ``keyVaultReferenceIdentity`` (Microsoft Learn, "Use Key Vault references as
    app settings in Azure App Service and Azure Functions": "Reference syntax", "Access vaults
    with a user-assigned identity"; MicrosoftDocs/azure-docs, articles/app-service/
    app-service-key-vault-references.md). The versioned URI: a new URL is a new version, so
    the app setting changes and the app reads it at once, not within App Service's 24-hour
    refresh of a versionless reference."""
    template = with_webhook()
    secret = template.module("keyVault").reference("webhook")
    settings = app_settings(template)
    assert settings["ESCALATION_WEBHOOK_URL"] == (
        f"@Microsoft.KeyVault(SecretUri=<{secret}.properties.secretUriWithVersion>)")
    assert WEBHOOK not in json.dumps(settings, default=str), "the URL itself is an app setting"
    assert app_settings()["ESCALATION_WEBHOOK_URL"] == ""  # none given: no webhook
    [app] = template.module("functionApp").instances("app")
    assert app["properties"]["keyVaultReferenceIdentity"] == template.module("identity").output(
        "id")


def test_the_app_is_deployed_after_its_identity_may_read_the_secret() -> None:
    """The reference is resolved when the app starts: the role must exist by then. The app
    setting names the vault module's output, so Bicep deploys that module, role assignment
    included, before the app."""
    written = main().section("modules")["functionApp"]["config"]["params"]["appSettings"]
    assert "keyVault.outputs.webhookSecretUri" in json.dumps(written["ESCALATION_WEBHOOK_URL"])
    vaults = main().module("keyVault")
    assert vaults.resources("Microsoft.Authorization/roleAssignments"), "the role is elsewhere"
