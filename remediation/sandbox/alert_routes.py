"""Microsoft Graph security routes: list, read, update and comment on `alerts_v2`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from remediation.sandbox.alert_filter import QueryError, parse_filter
from remediation.sandbox.context import CALL, TENANT
from remediation.sandbox.errors import graph_error
from remediation.sandbox.graph_routes import graph_root

STATUSES = frozenset({"new", "inProgress", "resolved"})
CLASSIFICATIONS = frozenset({
    "unknown", "falsePositive", "truePositive", "informationalExpectedActivity",
})
DETERMINATIONS = frozenset({
    "unknown", "apt", "malware", "securityPersonnel", "securityTesting", "unwantedSoftware",
    "other", "multiStagedAttack", "compromisedAccount", "phishing", "maliciousUserActivity",
    "notMalicious", "notEnoughDataToValidate", "confirmedUserActivity",
    "lineOfBusinessApplication",
})
# Updatable properties, with their allowed values (None: any string or null).
UPDATABLE: dict[str, frozenset[str] | None] = {
    "status": STATUSES,
    "classification": CLASSIFICATIONS,
    "determination": DETERMINATIONS,
    "assignedTo": None,
}
EMPTY_PAYLOAD = "Empty Payload. JSON content expected."

routes = web.RouteTableDef()


@routes.get("/v1.0/security/alerts_v2")
async def list_alerts(request: web.Request) -> web.Response:
    tenant = request.app[TENANT]
    try:
        # Like Graph, the server's page size caps what $top asks for.
        top = min(_non_negative(request.query.get("$top"), tenant.alert_page_size, "$top"),
                  tenant.alert_page_size)
        skip = _non_negative(request.query.get("$skip"), 0, "$skip")
        text = request.query.get("$filter")
        matches = parse_filter(text) if text else None
    except QueryError as error:
        return graph_error(400, "BadRequest", str(error))
    page, total = tenant.alert_page(text, matches, skip, top)
    body: dict[str, Any] = {
        "@odata.context": f"{graph_root(request)}/$metadata#security/alerts_v2",
        "value": page,
    }
    if request.query.get("$count", "").lower() == "true":
        body["@odata.count"] = total
    if top and skip + top < total:
        body["@odata.nextLink"] = str(request.url.update_query({"$skip": str(skip + top)}))
    if tenant.graph_next_link is not None:  # the fault: a next link elsewhere, or repeated
        body["@odata.nextLink"] = tenant.graph_next_link
    return web.json_response(body)


@routes.get("/v1.0/security/alerts_v2/{alert}")
async def get_alert(request: web.Request) -> web.Response:
    alert_id = request.match_info["alert"]
    try:
        alert = request.app[TENANT].alert(alert_id)
    except KeyError:
        return _alert_not_found(alert_id)
    return web.json_response(
        {"@odata.context": f"{graph_root(request)}/$metadata#security/alerts_v2/$entity", **alert})


@routes.patch("/v1.0/security/alerts_v2/{alert}")
async def update_alert(request: web.Request) -> web.Response:
    alert_id = request.match_info["alert"]
    body = request[CALL].body
    if not isinstance(body, dict) or not body:
        return graph_error(400, "BadRequest", EMPTY_PAYLOAD)
    changes = {name: value for name, value in body.items() if not name.startswith("@odata.")}
    for name, value in changes.items():
        problem = _update_problem(name, value)
        if problem:
            return graph_error(400, "BadRequest", problem)
    try:
        alert = request.app[TENANT].update_alert(alert_id, changes)
    except KeyError:
        return _alert_not_found(alert_id)
    return web.json_response(alert)


@routes.post("/v1.0/security/alerts_v2/{alert}/comments")
async def add_comment(request: web.Request) -> web.Response:
    alert_id = request.match_info["alert"]
    body = request[CALL].body
    # msgraph-sdk's comments.post sends a JSON array; Graph refuses it like an empty body.
    if not isinstance(body, dict) or not body:
        return graph_error(400, "BadRequest", EMPTY_PAYLOAD)
    unknown = set(body) - {"comment", "@odata.type"}
    if unknown or not isinstance(body.get("comment"), str):
        return graph_error(400, "BadRequest",
                           "An alert comment needs 'comment' (a string) and nothing else.")
    try:
        comments = request.app[TENANT].add_comment(alert_id, body["comment"])
    except KeyError:
        return _alert_not_found(alert_id)
    return web.json_response({
        "@odata.context": f"{graph_root(request)}/$metadata#Collection("
                          "microsoft.graph.security.alertComment)",
        "value": comments,
    })


def _update_problem(name: str, value: Any) -> str | None:
    if name not in UPDATABLE:
        return f"Property '{name}' is not supported for update."
    allowed = UPDATABLE[name]
    if allowed is None:
        return None if value is None or isinstance(value, str) else f"'{name}' must be a string."
    if isinstance(value, str) and value in allowed:
        return None
    return f"Invalid value '{value}' for property '{name}'."


def _non_negative(raw: str | None, default: int, name: str) -> int:
    if raw is None:
        return default
    try:
        number = int(raw)
    except ValueError:
        raise QueryError(f"Invalid value '{raw}' for {name}.") from None
    if number < 0:
        raise QueryError(f"Invalid value '{raw}' for {name}.")
    return number


def _alert_not_found(alert_id: str) -> web.Response:
    return graph_error(404, "NotFound", f"Alert '{alert_id}' was not found.")
