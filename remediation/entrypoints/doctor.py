"""``remediation doctor``: the preflight, with the deployment's own settings and identity.

Wires the preflight's reads to the same adapters the worker uses (one credential for all of
them), runs ``service.doctor.examine`` and prints a table of check / result / fix. Exit
status 0 only when everything needed is in place, 1 otherwise: a line that says ``FAIL`` or
``UNVERIFIED`` (needed, and not seen) (a bad setting never gets here: the command line stops
with status 2 first). No token or secret is ever printed: tokens
become claims inside the adapter, and every cell is passed through the log redaction too.
"""

import re
from typing import TextIO

from remediation.config import Settings
from remediation.logsafety import redact
from remediation.service.doctor import Report, Status, Target, examine

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_WIDEST = 64  # columns wider than this push the next one rather than pad every row


async def run_doctor(settings: Settings, out: TextIO) -> int:
    report = await diagnose(settings)
    out.write(render(report, settings))
    return 0 if report.ready else 1


async def diagnose(settings: Settings) -> Report:
    from remediation.adapters.credentials import build_credential
    from remediation.adapters.exchange_client import ExchangeAdminClient
    from remediation.adapters.graph_caller import GraphCaller
    from remediation.adapters.preflight import (
        QueueProbe,
        TenantPreflight,
        local_queue_probe,
        local_schedule_probe,
        scopes,
        service_bus_probe,
        service_bus_schedule_probe,
    )
    from remediation.bootstrap import bootstrap
    from remediation.domain.sources import polled
    from remediation.service.doctor_sources import with_source_findings

    credential = build_credential(settings)
    timeout = settings.http_timeout.total_seconds()
    graph = GraphCaller(settings.graph_endpoint, credential, timeout=timeout,
                        max_retries=settings.http_max_retries)
    exchange = ExchangeAdminClient(settings.exchange_endpoint, settings.tenant_id, credential,
                                   timeout=timeout, max_retries=settings.http_max_retries)
    app = bootstrap(settings, credential=credential)  # the journal and queues, as configured
    names = (settings.remediation_queue, settings.verification_queue)
    queues: QueueProbe
    schedule: QueueProbe
    if settings.service_bus_namespace:
        queues = service_bus_probe(settings.service_bus_namespace, credential, names,
                                   timeout=timeout)
        schedule = service_bus_schedule_probe(settings.service_bus_namespace, credential,
                                              names, timeout=timeout)
    else:
        assert app.queue is not None
        queues = local_queue_probe(app.queue, names, str(settings.remediation_db))
        schedule = local_schedule_probe(app.queue, names)
    preflight = TenantPreflight(
        credential=credential, scopes=scopes(settings.graph_endpoint, settings.exchange_endpoint),
        graph=graph, exchange=exchange, queues=queues, journal=app.journal, schedule=schedule)
    try:
        return await with_source_findings(await examine(preflight, target(settings)),
                                          app.journal,
                                          polled(sweep=settings.sweep_restricted_users))
    finally:
        await app.aclose()
        await graph.close()
        await exchange.close()
        await credential.close()


def target(settings: Settings) -> Target:
    return Target(
        tenant_id=settings.tenant_id, graph_endpoint=settings.graph_endpoint,
        exchange_endpoint=settings.exchange_endpoint, mode=settings.mode,
        service_bus_namespace=settings.service_bus_namespace,
        remediation_db=str(settings.remediation_db),
        table_journal=bool(settings.journal_table_endpoint
                           or settings.journal_table_connection_string))


def render(report: Report, settings: Settings) -> str:
    """The table, one finding a line: status, check, result, fix."""
    rows = [(finding.status.value, finding.check, _cell(finding.result), _cell(finding.fix))
            for finding in report.findings]
    header = ("", "check", "result", "fix")
    widths = [min(_WIDEST, max(len(row[column]) for row in [header, *rows]))
              for column in range(3)]
    lines = [f"remediation doctor: tenant {settings.tenant_id}, Graph "
             f"{settings.graph_endpoint}, Exchange {settings.exchange_endpoint}", ""]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        lines.append("  ".join([*cells, row[3]]).rstrip())
    failed, unverified = report.count(Status.FAIL), report.count(Status.UNVERIFIED)
    lines.append("")
    lines.append("everything needed is in place" if report.ready else
                 f"not everything needed is in place: {failed} check(s) failed, "
                 f"{unverified} could not be verified; apply each fix, then run doctor again")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text from outside (error codes, messages) on one line, with any secret masked."""
    return redact(_CONTROL.sub(" ", text)).strip()
