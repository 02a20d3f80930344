"""The operators' workbook: its queries read only what the exporter writes, it is built from
docs/queries.kql, its JSON is a workbook, and the Bicep deploys it on the app's Application
Insights resource.

No KQL engine and no Azure here: the queries are read by ``tests/infra/kql.py`` against an
allow-list taken from the telemetry contract of issue 17 (span, metric and attribute names)
and from Microsoft's schema of the classic Application Insights tables.
"""

import importlib.util
import json
import re
from types import ModuleType
from typing import Any

import pytest

from remediation.domain.cases import CaseState, StepStatus
from remediation.domain.escalation_kinds import EscalationKind
from tests.infra import kql
from tests.infra.bicep import INFRA, ROOT, Deployed, main


def _workbook_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("infra_workbook", INFRA / "workbook.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILDER = _workbook_script()
QUERIES = BUILDER.read_queries()
WORKBOOK = INFRA / "workbook.json"

# --- what the exporter writes ----------------------------------------------------------------

# Columns of the classic tables the workbook queries (Microsoft Learn, "Migrate to
# workspace-based Application Insights resources", "Table schemas"; MicrosoftDocs/
# azure-monitor-docs, articles/azure-monitor/app/convert-classic-resource.md), limited to
# those azure-monitor-opentelemetry fills: spans -> requests (SERVER/CONSUMER) and
# dependencies (INTERNAL/CLIENT/PRODUCER), log records -> traces, exceptions -> exceptions,
# metrics -> customMetrics with a point's sum, count, min and max and no standard deviation
# (Azure/azure-sdk-for-python, azure-monitor-opentelemetry-exporter,
# export/metrics/_exporter.py, _convert_point_to_envelope).
COMMON = {"timestamp", "customDimensions", "operation_Id", "operation_ParentId",
          "operation_Name", "cloud_RoleName", "cloud_RoleInstance"}
COLUMNS = {
    "requests": COMMON | {"id", "name", "duration", "resultCode", "success", "itemCount"},
    "dependencies": COMMON | {"id", "name", "duration", "resultCode", "success", "target",
                              "type", "data", "itemCount"},
    "customMetrics": COMMON | {"name", "valueSum", "valueCount", "valueMin", "valueMax"},
    "traces": COMMON | {"message", "severityLevel", "itemCount"},
    "exceptions": COMMON | {"type", "outerMessage", "problemId", "severityLevel", "itemCount"},
}

# The telemetry contract (issue 17): attribute names -> customDimensions keys.
SPAN_COMMON = {"remediation.case_id", "remediation.escalation_kind", "remediation.mode",
               "remediation.source"}
DELIVERY_SPAN = SPAN_COMMON | {"remediation.outcome", "remediation.state"}
STEP_SPAN = SPAN_COMMON | {"remediation.step", "remediation.outcome", "remediation.error_code"}
JOURNAL_RECORD = {"remediation.case_id", "remediation.step", "remediation.outcome",
                  "remediation.account", "remediation.reason_kind", "remediation.state"}
METRICS = {
    "remediation.cases.final": {"remediation.state"},
    "remediation.escalations": {"remediation.escalation_kind"},
    "remediation.time_to_reset": {"remediation.source"},
    "remediation.time_to_unblock": {"remediation.source"},
    "remediation.time_to_verified": {"remediation.source"},
    "remediation.breaker.held": set(),
    "remediation.dead_lettered": {"remediation.kind"},
}
MESSAGE_KINDS = ("request", "approval", "resume", "undo", "verification", "alert_update")
DELIVERY_NAMES = rf"remediation ({'|'.join(MESSAGE_KINDS)}|poll|sweep)"
OUTCOMES = {"done", "failed", "skipped", "info", "started"}

SCHEMA = kql.Schema(
    columns=COLUMNS,
    dimensions={
        "requests": DELIVERY_SPAN,
        "dependencies": STEP_SPAN,
        "customMetrics": set().union(*METRICS.values()),
        "traces": JOURNAL_RECORD,
        "exceptions": set(),
    },
    metrics=METRICS,
    span_names={"requests": re.compile(DELIVERY_NAMES),
                "dependencies": re.compile(rf"step [a-z_]+|{DELIVERY_NAMES}")},
    span_prefixes={"requests": {"remediation "}, "dependencies": {"step ", "remediation "}},
    values={
        "remediation.outcome": OUTCOMES | {state.value for state in CaseState},
        "remediation.state": {state.value for state in CaseState},
        "remediation.escalation_kind": {kind.value for kind in EscalationKind},
        "remediation.reason_kind": {kind.value for kind in EscalationKind},
    },
)


def test_the_contracts_outcomes_are_the_journals_step_statuses() -> None:
    assert {status.value for status in StepStatus} <= OUTCOMES


# --- the queries -----------------------------------------------------------------------------


@pytest.mark.parametrize("query", QUERIES, ids=lambda query: query.name)
def test_every_query_reads_only_what_the_exporter_writes(query: Any) -> None:
    reading = kql.read(query.text, SCHEMA)
    assert reading.problems == []
    assert reading.table in COLUMNS


def test_the_queries_cover_what_the_workbook_promises() -> None:
    """Cases per state and per day, the three times, escalations by reason, failures by step
    and error code, the breaker, the dead letters."""
    readings = [kql.read(query.text, SCHEMA) for query in QUERIES]
    named = set().union(*(reading.metrics for reading in readings))
    assert named == set(METRICS)  # every metric of the contract is charted
    read = set().union(*(reading.dimensions for reading in readings))
    assert {"remediation.state", "remediation.escalation_kind", "remediation.step",
            "remediation.error_code", "remediation.kind", "remediation.reason_kind"} <= read
    texts = "\n".join(query.text for query in QUERIES)
    assert "bin(timestamp, 1d)" in texts
    assert "percentilew(mean_seconds, valueCount, 50)" in texts
    assert "percentilew(mean_seconds, valueCount, 95)" in texts


BAD_QUERIES = [
    ("customEvents | take 1", "not a table"),
    ('traces | where name == "remediation request"', "name: not a column of traces"),
    ("requests | summarize cases = count() by remediation_state", "remediation_state: not a"),
    ('customMetrics | where name == "remediation.cases.total"', "metric 'remediation.cases."),
    ('customMetrics | where name == "remediation.escalations" | summarize n = sum(valueSum) '
     'by state = tostring(customDimensions["remediation.state"])', "remediation.state: none"),
    ('dependencies | where tostring(customDimensions["remediation.password"]) != ""',
     "customDimensions['remediation.password']: not written to dependencies"),
    ('requests | where customDimensions.remediation_state == "x"', ".remediation_state: read"),
    ('dependencies | where name startswith "remediate "', "span name 'remediate '"),
    ('dependencies | where tostring(customDimensions["remediation.outcome"]) == "failure"',
     "remediation.outcome is never 'failure'"),
    ("customMetrics | summarize sum(valueSum)", "summarize: name the column"),
    ("customMetrics | summarize total = sum(valueSum)", "the query names no metric"),
    ("requests | join (traces) on operation_Id", "operator 'join'"),
    ('customMetrics | where name == "remediation.breaker.held" | summarize held = '
     "sum(valueSum) by hour = bin(timestamp, 1h) | order by timestamp asc",
     "order by timestamp: no such column"),
    ("customMetrics | where valuesum > 0", "valuesum: not a column"),
    ("requests | where parse_json(message) != 0", "parse_json(): not a function"),
]


@pytest.mark.parametrize(("query", "problem"), BAD_QUERIES)
def test_the_reader_reports_what_the_exporter_does_not_write(query: str, problem: str) -> None:
    problems = kql.read(query, SCHEMA).problems
    assert any(problem in found for found in problems), problems


def test_every_query_is_named_once_and_titled() -> None:
    names = [query.name for query in QUERIES]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in names)
    assert all(query.title and query.width in ("50", "100") for query in QUERIES)


# --- the workbook's JSON ---------------------------------------------------------------------

VISUALIZATIONS = {"table", "barchart", "piechart", "timechart", "linechart", "areachart",
                  "categoricalbar", "unstackedbar", "tiles"}
LOAD_TEXT_CONTENT_LIMIT = 131_072  # characters (Microsoft Learn, "Bicep file functions")


def workbook() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(WORKBOOK.read_text(encoding="utf-8"))
    return loaded


def test_the_checked_in_workbook_is_the_one_docs_queries_kql_builds() -> None:
    """One source: `python3 infra/workbook.py` rewrites infra/workbook.json from the .kql."""
    assert WORKBOOK.read_text(encoding="utf-8") == BUILDER.render(QUERIES), (
        "infra/workbook.json is out of date: run python3 infra/workbook.py")
    items = {item["name"]: item for item in workbook()["items"] if item["type"] == 3}
    assert list(items) == [query.name for query in QUERIES]
    for query in QUERIES:
        assert items[query.name]["content"]["query"] == query.text
        assert items[query.name]["content"]["title"] == query.title


def test_the_workbook_json_is_a_workbook() -> None:
    text = WORKBOOK.read_text(encoding="utf-8")
    assert len(text) <= LOAD_TEXT_CONTENT_LIMIT
    loaded = workbook()
    assert loaded["version"] == "Notebook/1.0"
    items = loaded["items"]
    assert {item["type"] for item in items} == {1, 3, 9, 10}
    names = [item["name"] for item in items]
    assert len(names) == len(set(names))
    parameters = {parameter["name"] for item in items if item["type"] == 9
                  for parameter in item["content"]["parameters"]}
    for item in items:
        content = item["content"]
        if item["type"] == 1:
            assert content["json"].strip()
        if item["type"] == 3:  # a Logs query over the Application Insights resource
            assert content["version"] == "KqlItem/1.0"
            assert content["queryType"] == 0
            assert content["resourceType"] == "microsoft.insights/components"
            assert content["visualization"] in VISUALIZATIONS
            assert content["timeContextFromParameter"] in parameters
        if item["type"] == 10:  # Service Bus's own dead-letter count, per queue
            assert content["version"] == "MetricsItem/2.0"
            assert content["resourceType"] == "microsoft.servicebus/namespaces"
            assert content["resourceIds"] == [BUILDER.SERVICE_BUS_NAMESPACE_ID]
            assert content["timeContextFromParameter"] in parameters
            [metric] = content["metrics"]
            assert metric["namespace"] == "microsoft.servicebus/namespaces"
            assert metric["metric"] == "microsoft.servicebus/namespaces--DeadletteredMessages"
            assert metric["splitBy"] == "EntityName"
    assert loaded["fallbackResourceIds"] == [BUILDER.APPLICATION_INSIGHTS_ID]
    assert set(re.findall(r"__[A-Z_]+__", text)) == set(BUILDER.PLACEHOLDERS)


# --- the Bicep -------------------------------------------------------------------------------


def deployed_workbook() -> dict[str, Any]:
    module = main().module("workbook")
    [symbol] = module.resources("Microsoft.Insights/workbooks")
    [instance] = module.instances(symbol)
    return instance


def test_the_app_deploys_the_workbook_on_its_application_insights() -> None:
    template = main()
    module = template.module("workbook")
    [symbol] = module.resources("Microsoft.Insights/workbooks")
    declared = module.section("resources")[symbol]
    assert declared["api_version"] == "2023-06-01"
    # The name is the workbook's GUID, the same at every deployment of the environment.
    name = declared["config"]["name"]
    assert name["function"]["type"] == "guid"
    assert "new_guid" not in json.dumps(name)
    workbook_ = deployed_workbook()
    assert workbook_["kind"] == "shared"
    properties = workbook_["properties"]
    assert properties["category"] == "workbook"
    assert properties["version"] == workbook()["version"]
    insights = template.module("monitoring").reference("insights")
    assert properties["sourceId"] == Deployed(f"{insights}.id")


def functions(node: Any) -> list[dict[str, Any]]:
    """Every function call in a pycep parse, nested ones included."""
    found = []
    if isinstance(node, dict):
        if set(node) == {"function"}:
            found.append(node["function"])
        for value in node.values():
            found += functions(value)
    elif isinstance(node, list):
        for value in node:
            found += functions(value)
    return found


def test_the_deployed_workbook_is_the_checked_in_json_with_the_deployed_ids() -> None:
    template = main()
    module = template.module("workbook")
    loads = [(module.path.parent / function["parameters"]["file_path"]).resolve()
             for function in functions(module.doc) if function["type"] == "load_text_content"]
    assert loads == [WORKBOOK.resolve()]
    deployed = json.loads(deployed_workbook()["properties"]["serializedData"])
    insights = template.module("monitoring").reference("insights")
    namespace = template.module("serviceBus").reference("namespace")
    expected = WORKBOOK.read_text(encoding="utf-8")
    expected = expected.replace(BUILDER.APPLICATION_INSIGHTS_ID, f"<{insights}.id>")
    expected = expected.replace(BUILDER.SERVICE_BUS_NAMESPACE_ID, f"<{namespace}.id>")
    assert deployed == json.loads(expected)
    assert deployed["fallbackResourceIds"] == [f"<{insights}.id>"]
    [metric] = [item for item in deployed["items"] if item["type"] == 10]
    assert metric["content"]["resourceIds"] == [f"<{namespace}.id>"]
    assert "__" not in json.dumps(deployed)


def test_the_readme_says_where_the_workbook_and_the_queries_are() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/queries.kql" in readme
    assert "infra/workbook.py" in readme
    assert (ROOT / "docs" / "queries.kql").is_file()


def test_the_allowed_names_are_the_ones_the_code_exports() -> None:
    """The names this reader allows are the telemetry module's own (remediation/service/
    telemetry.py), so a name changed in the code fails here, not in an empty chart."""
    from remediation.service import telemetry

    exported_metrics = {telemetry.CASES_FINAL, telemetry.ESCALATIONS, telemetry.BREAKER_HELD,
                        telemetry.DEAD_LETTERED, telemetry.TIME_TO_RESET,
                        telemetry.TIME_TO_UNBLOCK, telemetry.TIME_TO_VERIFIED}
    assert set(METRICS) == exported_metrics
    attributes = {telemetry.CASE_ID, telemetry.STEP, telemetry.OUTCOME, telemetry.STATE,
                  telemetry.ESCALATION_KIND, telemetry.MODE, telemetry.SOURCE,
                  telemetry.ERROR_CODE, telemetry.KIND, telemetry.ACCOUNT,
                  telemetry.REASON_KIND}
    allowed = (DELIVERY_SPAN | STEP_SPAN | JOURNAL_RECORD
               | set().union(*METRICS.values()))
    assert allowed <= attributes, allowed - attributes
    assert telemetry.POLL == "remediation poll"
    assert f"{telemetry.NAME} {telemetry.SWEEP}" == "remediation sweep"
    assert set(MESSAGE_KINDS) == set(telemetry._KINDS.values())
