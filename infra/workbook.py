"""Build the operators' workbook (infra/workbook.json) from docs/queries.kql.

The queries have one source, docs/queries.kql; this script writes them into the workbook's
JSON, which infra/modules/workbook.bicep deploys (``loadTextContent``). Run it after editing
the queries::

    python3 infra/workbook.py          # rewrite infra/workbook.json
    python3 infra/workbook.py --check  # exit 1 if infra/workbook.json is out of date

The JSON is the ``serializedData`` of a ``Microsoft.Insights/workbooks`` resource: version
``Notebook/1.0`` and a list of items, of which this workbook uses type 1 (Markdown text),
9 (parameters: the time range), 3 (a Logs query, ``KqlItem/1.0``, ``queryType`` 0 against
``microsoft.insights/components``) and 10 (an Azure Monitor metrics chart, ``MetricsItem/2.0``).
Sources: the workbook schema, microsoft/Application-Insights-Workbooks ``schema/workbook.json``,
and Microsoft's own templates there (``Workbooks/Azure Monitor - Applications/Failure
Analysis``: KqlItem fields and ``timeContextFromParameter``; ``Workbooks/ServiceBus/AtResource/
ResourceInsights.workbook``: the DeadletteredMessages chart, aggregation 4 = average, split by
EntityName); Microsoft Learn, "Programmatically manage workbooks" (serializedData).

Two values are known only when Azure deploys the template; the JSON holds placeholders the
Bicep module replaces (``replace()``): ``APPLICATION_INSIGHTS_ID`` (the workbook's fallback
resource, so a shared link opens on the right data) and ``SERVICE_BUS_NAMESPACE_ID`` (the
namespace whose dead-letter metric is charted).
"""

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ROOT / "docs" / "queries.kql"
WORKBOOK = ROOT / "infra" / "workbook.json"

APPLICATION_INSIGHTS_ID = "__APPLICATION_INSIGHTS_ID__"
SERVICE_BUS_NAMESPACE_ID = "__SERVICE_BUS_NAMESPACE_ID__"
PLACEHOLDERS = (APPLICATION_INSIGHTS_ID, SERVICE_BUS_NAMESPACE_ID)

TIME_RANGE = "TimeRange"
DAY_MS = 24 * 60 * 60 * 1000
TIME_RANGES_MS = [60 * 60 * 1000, DAY_MS, 7 * DAY_MS, 14 * DAY_MS, 30 * DAY_MS, 90 * DAY_MS]
DEFAULT_TIME_RANGE_MS = 7 * DAY_MS

HEADER = re.compile(r"//\s*(name|title|chart|width):\s*(.*?)\s*$")


@dataclass(frozen=True)
class Query:
    """One named query of docs/queries.kql: its text (comment lines left out) and what the
    workbook shows it with (title, visualization, width in percent)."""

    name: str
    title: str
    chart: str
    width: str
    text: str


def read_queries(path: Path = QUERIES) -> list[Query]:
    """The named queries, in file order. A query starts at its ``// name:`` line and ends
    before the next one; ``// title:``, ``// chart:``, ``// width:`` lines describe it; its
    text is its lines that are not comments, without the blank lines around them.
    Raises ValueError for a query without text or with a header line missing."""
    blocks: list[list[str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("// name:"):
            blocks.append([])
        if blocks:
            blocks[-1].append(line.rstrip())
    queries = []
    for block in blocks:
        header = {match[1]: match[2] for line in block if (match := HEADER.fullmatch(line))}
        body = [line for line in block if not line.lstrip().startswith("//")]
        text = "\n".join(body).strip("\n")
        missing = {"name", "title", "chart", "width"} - set(header)
        if missing or not text:
            raise ValueError(f"{block[0]}: missing {sorted(missing) or 'query text'}")
        queries.append(Query(header["name"], header["title"], header["chart"],
                             header["width"], text))
    return queries


def _text(markdown: str, name: str) -> dict[str, Any]:
    return {"type": 1, "content": {"json": markdown}, "name": name}


def _time_range() -> dict[str, Any]:
    return {
        "type": 9,
        "content": {
            "version": "KqlParameterItem/1.0",
            "parameters": [{
                "id": "6e0f2a4c-3b1d-4e58-9a7f-2c8d1b5e9f03",
                "version": "KqlParameterItem/1.0",
                "name": TIME_RANGE,
                "label": "Time range",
                "type": 4,
                "isRequired": True,
                "value": {"durationMs": DEFAULT_TIME_RANGE_MS},
                "typeSettings": {
                    "selectableValues": [{"durationMs": ms} for ms in TIME_RANGES_MS],
                    "allowCustom": True,
                },
            }],
            "style": "pills",
            "queryType": 0,
            "resourceType": "microsoft.insights/components",
        },
        "name": "parameters",
    }


def _query(query: Query) -> dict[str, Any]:
    return {
        "type": 3,
        "content": {
            "version": "KqlItem/1.0",
            "query": query.text,
            "size": 0,
            "title": query.title,
            "timeContextFromParameter": TIME_RANGE,
            "timeContext": {"durationMs": DEFAULT_TIME_RANGE_MS},
            "queryType": 0,
            "resourceType": "microsoft.insights/components",
            "visualization": query.chart,
        },
        "customWidth": query.width,
        "name": query.name,
    }


def _dead_letter_metric() -> dict[str, Any]:
    """Service Bus's own DeadletteredMessages, per queue (Microsoft Learn, "Supported metrics
    - Microsoft.ServiceBus/Namespaces": DeadletteredMessages, Count, Average/Minimum/Maximum,
    dimension EntityName)."""
    return {
        "type": 10,
        "content": {
            "chartId": "workbook-remediation-deadlettered",
            "version": "MetricsItem/2.0",
            "size": 0,
            "chartType": 2,
            "resourceType": "microsoft.servicebus/namespaces",
            "metricScope": 0,
            "resourceIds": [SERVICE_BUS_NAMESPACE_ID],
            "timeContextFromParameter": TIME_RANGE,
            "timeContext": {"durationMs": DEFAULT_TIME_RANGE_MS},
            "metrics": [{
                "namespace": "microsoft.servicebus/namespaces",
                "metric": "microsoft.servicebus/namespaces--DeadletteredMessages",
                "aggregation": 4,
                "splitBy": "EntityName",
            }],
            "title": "Messages in the dead-letter queues (Service Bus, average per queue)",
        },
        "customWidth": "50",
        "name": "service_bus_dead_letters",
    }


INTRODUCTION = """\
# Spam-block remediation

What the remediation worker did in the chosen time range, from its OpenTelemetry export: \
cases by state, how long from the block (or first alert) to the password reset, the unblock \
and verification, escalations by reason, failed steps by step and by Microsoft error code, the \
circuit breaker and the dead-letter queues. The same queries are in `docs/queries.kql` for \
Log Analytics. What to do about an escalation: the README's "When a case escalates"; one \
case's steps: `remediation status --user ADDRESS`."""


def build(queries: list[Query]) -> dict[str, Any]:
    """The workbook: the introduction, the time range, a query item per query (file order),
    and the Service Bus dead-letter chart after them."""
    items = [_text(INTRODUCTION, "introduction"), _time_range()]
    items += [_query(query) for query in queries]
    items.append(_dead_letter_metric())
    return {
        "version": "Notebook/1.0",
        "items": items,
        "fallbackResourceIds": [APPLICATION_INSIGHTS_ID],
        "$schema": "https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/"
                   "schema/workbook.json",
    }


def render(queries: list[Query]) -> str:
    return json.dumps(build(queries), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    wanted = render(read_queries())
    if argv[1:] == ["--check"]:
        if WORKBOOK.read_text(encoding="utf-8") != wanted:
            print(f"{WORKBOOK.relative_to(ROOT)} is out of date: run python3 infra/workbook.py")
            return 1
        return 0
    WORKBOOK.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
