"""Azure Functions triggers (Python v2 programming model): parse the input, call one use
case, map the outcome to the trigger's result. Nothing else happens here.

Settlement of Service Bus messages follows the handler's contract: a normal return
completes the message (a transient failure has scheduled a delayed copy by then), an
exception abandons it, which Service Bus redelivers at once (dead-lettered by the broker after
the queue's max delivery count, with the case escalated on the last attempt first).

Importing this module must stay cheap (cold start): the composition root, and with it the
Graph, Exchange, Service Bus and Table SDKs, load on the first invocation, and so does
telemetry (``entrypoints/telemetry.py``: Azure Monitor's exporter when
APPLICATIONINSIGHTS_CONNECTION_STRING is set).

The settings are checked twice. When function_app.py is imported (the host indexing the
app), ``check_settings_at_start``: a bad setting fails indexing, so no trigger listens and
messages wait in their queues until the setting is fixed, rather than each being received,
abandoned and redelivered until Service Bus dead-letters it. Then on the first invocation,
``checked_settings``, as a second line of defence.
"""

import asyncio
import json
import logging
import os
from typing import TYPE_CHECKING

import azure.functions as func

from remediation.config import ConfigError, Settings
from remediation.service.handler import Delivery
from remediation.service.push import handle_alert_push, handle_stream_events

if TYPE_CHECKING:
    from remediation.bootstrap import Application

log = logging.getLogger(__name__)

DEFAULT_POLL_SCHEDULE = "0 */2 * * * *"
# The preflight's timer: at every start of the host (runOnStartup; at most once an hour, see
# entrypoints/preflight.py) and every day at 06:00 UTC.
PREFLIGHT_SCHEDULE = "0 0 6 * * *"

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]

_application: "Application | None" = None
_startup = asyncio.Lock()


async def application() -> "Application":
    """The process's one application, built from app settings on first use."""
    global _application
    async with _startup:
        if _application is None:
            from remediation.bootstrap import bootstrap
            from remediation.entrypoints.telemetry import configure
            from remediation.logsafety import RedactingFilter

            settings = checked_settings()
            configure(settings.mode, functions=True)  # APPLICATIONINSIGHTS_CONNECTION_STRING
            for handler in logging.getLogger().handlers:
                handler.addFilter(RedactingFilter())
            _application = bootstrap(settings)
        return _application


def check_settings_at_start() -> Settings:
    """The app settings' format, checked when function_app.py is imported: a bad one is
    logged in one line naming it, then raised, so the host fails to index the app and
    starts no listener. Cheap and offline (no SDK, no network). AZURE_TENANT_ID is required
    only once the app listens on Service Bus (the namespace is set): tools and tests import
    the app with no Azure settings at all. The worker's exporter, configured before the
    import, exports only what ``entrypoints.telemetry.guard_exporters`` lets through from
    here on."""
    from remediation.entrypoints.telemetry import guard_exporters

    guard_exporters()
    try:
        settings = Settings.from_env()
        return settings.require_tenant() if settings.service_bus_namespace else settings
    except ConfigError as error:
        log.error("configuration error: %s", error)
        raise


def checked_settings() -> Settings:
    """The app settings, checked: a bad or missing one fails the invocation with one log line
    naming it (the host's traceback follows it, never stands alone). Until the settings are
    good, every invocation reads them again, so fixing the app setting is enough."""
    try:
        return Settings.from_env().require_tenant()
    except ConfigError as error:
        log.error("configuration error: %s", error)
        raise


def use_application(app: "Application | None") -> None:
    """Replace the composition root (tests wire it to the sandbox and fakes)."""
    global _application
    _application = app


def delivery(message: func.ServiceBusMessage, settings: Settings) -> Delivery:
    """The handler's view of a trigger's message. The body goes as it came: the parsers
    read UTF-8 with or without a byte-order mark (extension 5.x passes one through)."""
    return Delivery(body=message.get_body(), message_id=message.message_id or "",
                    delivery_count=message.delivery_count or 1,
                    max_delivery_count=settings.max_delivery_count, session_id=message.session_id,
                    properties=dict(message.application_properties or {}),
                    broker_max_delivery_count=settings.broker_max_delivery_count)


@blueprint.function_name("poll_alerts")
@blueprint.timer_trigger(arg_name="timer",
                         schedule=(os.environ.get("ALERT_POLL_SCHEDULE") or "").strip()
                         or DEFAULT_POLL_SCHEDULE,
                         run_on_startup=False, use_monitor=True)
async def poll_alerts(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.info("alert poll is late; the look-back window covers the gap")
    # The poll logs a WARNING for a source it could not read, and journals it.
    await (await application()).intake.poll()


@blueprint.function_name("receive_alert")
@blueprint.route(route="alerts", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def receive_alert(req: func.HttpRequest) -> func.HttpResponse:
    app = await application()
    response = await handle_alert_push(req.get_body(), req.headers.get("Content-Type"),
                                       app.intake)
    headers = {"Retry-After": str(response.retry_after)} if response.retry_after else None
    return func.HttpResponse(json.dumps(response.body), status_code=response.status,
                             mimetype="application/json", headers=headers)


@blueprint.function_name("receive_defender_stream")
@blueprint.event_hub_message_trigger(arg_name="events", connection="DefenderStreamConnection",
                                     event_hub_name="%DEFENDER_STREAM_HUB%",
                                     cardinality=func.Cardinality.MANY)
async def receive_defender_stream(events: list[func.EventHubEvent]) -> None:
    app = await application()
    report = await handle_stream_events([event.get_body() for event in events], app.intake,
                                        app.settings.alert_titles)
    log.info("Defender stream: %d event(s), %d request(s) queued", len(events),
             len(report.enqueued))


@blueprint.function_name("remediate")
@blueprint.service_bus_queue_trigger(arg_name="message", connection="ServiceBusConnection",
                                     queue_name="%REMEDIATION_QUEUE%", is_sessions_enabled=True)
async def remediate(message: func.ServiceBusMessage) -> None:
    app = await application()
    await app.handler.on_request(delivery(message, app.settings))


@blueprint.function_name("verify")
@blueprint.service_bus_queue_trigger(arg_name="message", connection="ServiceBusConnection",
                                     queue_name="%VERIFICATION_QUEUE%", is_sessions_enabled=True)
async def verify(message: func.ServiceBusMessage) -> None:
    app = await application()
    await app.handler.on_verification(delivery(message, app.settings))


@blueprint.function_name("preflight")
@blueprint.route(route="preflight", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def preflight(req: func.HttpRequest) -> func.HttpResponse:
    from remediation.entrypoints.preflight import answer

    status, body = await answer(application)
    return func.HttpResponse(body, status_code=status, mimetype="application/json")


@blueprint.function_name("preflight_at_start")
@blueprint.timer_trigger(arg_name="timer", schedule=PREFLIGHT_SCHEDULE, run_on_startup=True,
                         use_monitor=False)
async def preflight_at_start(timer: func.TimerRequest) -> None:
    from remediation.entrypoints.preflight import log_at_start

    await log_at_start(application)
