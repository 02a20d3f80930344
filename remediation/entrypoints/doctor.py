"""``remediation doctor``: the preflight, with the deployment's own settings and identity.

Wires the preflight's reads to the same adapters the worker uses (one credential for all of
them), runs ``service.doctor.examine`` and prints a table of check / result / fix, headed by
a PAUSED line while the kill switch is on (``service.doctor_pause``: paused, the deployment
is not ready to change anything, and the doctor fails). Exit
status 0 only when everything needed is in place, 1 otherwise: a line that says ``FAIL`` or
``UNVERIFIED`` (needed, and not seen) (a bad setting never gets here: the command line stops
with status 2 first). No token or secret is ever printed: tokens
become claims inside the adapter, and every cell is passed through the log redaction too.
"""

import re
import textwrap
from typing import TextIO

from remediation.config import Settings
from remediation.logsafety import redact
from remediation.service.doctor import Report, Status, Target, examine
from remediation.service.doctor_pause import pause_headline

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
WIDTH = 80  # a terminal's default, and what fits a ticket or a chat message unwrapped
_STATUS = max(len(status.value) for status in Status) + 2  # the status column, with its gap
_FIX = _STATUS + 2  # a fix is indented under its finding


async def run_doctor(settings: Settings, out: TextIO) -> int:
    report = await diagnose(settings)
    out.write(render(report, settings))
    return 0 if report.ready else 1


async def diagnose(settings: Settings) -> Report:
    from remediation.adapters.credentials import build_credential
    from remediation.adapters.exchange_client import ExchangeAdminClient
    from remediation.adapters.graph_caller import GraphCaller
    from remediation.adapters.preflight import (
        Probe,
        TenantPreflight,
        journal_probe,
        local_queue_probe,
        local_schedule_probe,
        not_created_probe,
        scopes,
        service_bus_probe,
        service_bus_schedule_probe,
    )
    from remediation.bootstrap import bootstrap
    from remediation.domain.sources import polled
    from remediation.service.doctor_pause import with_pause_finding
    from remediation.service.doctor_sources import with_source_findings

    credential = build_credential(settings)
    timeout = settings.http_timeout.total_seconds()
    graph = GraphCaller(settings.graph_endpoint, credential, timeout=timeout,
                        max_retries=settings.http_max_retries)
    exchange = ExchangeAdminClient(settings.exchange_endpoint, settings.tenant_id, credential,
                                   timeout=timeout, max_retries=settings.http_max_retries)
    app = bootstrap(settings, credential=credential)  # the journal and queues, as configured
    names = (settings.remediation_queue, settings.verification_queue)
    # Doctor creates no local database (run and enqueue do): probes that would open a file
    # that is not there say so instead.
    missing = settings.uses_local_database and not settings.remediation_db.exists()
    queues: Probe
    schedule: Probe
    journal = journal_probe(app.journal)
    journal_there = not (missing and not (settings.journal_table_endpoint
                                          or settings.journal_table_connection_string))
    if not journal_there:
        journal = not_created_probe(str(settings.remediation_db))
    if settings.service_bus_namespace:
        queues = service_bus_probe(settings.service_bus_namespace, credential, names,
                                   timeout=timeout)
        schedule = service_bus_schedule_probe(settings.service_bus_namespace, credential,
                                              names, timeout=timeout)
    elif missing:
        queues = schedule = not_created_probe(str(settings.remediation_db))
    else:
        assert app.queue is not None
        queues = local_queue_probe(app.queue, names, str(settings.remediation_db))
        schedule = local_schedule_probe(app.queue, names)
    preflight = TenantPreflight(
        credential=credential, scopes=scopes(settings.graph_endpoint, settings.exchange_endpoint),
        graph=graph, exchange=exchange, queues=queues, journal=journal, schedule=schedule)
    try:
        report = await with_source_findings(await examine(preflight, target(settings)),
                                            app.journal if journal_there else None,
                                            polled(sweep=settings.sweep_restricted_users))
        return await with_pause_finding(report, app.journal if journal_there else None)
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


def render(report: Report, settings: Settings, width: int = WIDTH) -> str:
    """The table, a finding a row: its status, then ``check: result`` and, under it, the fix.
    Every cell wraps to ``width`` columns, whatever a finding says and however many rows
    there are; the status column stays clear for the eye to run down."""
    headline = pause_headline(report)
    lines = [*_wrapped(headline, width), ""] if headline else []
    lines += _wrapped(f"remediation doctor: tenant {settings.tenant_id}, Graph "
                     f"{settings.graph_endpoint}, Exchange {settings.exchange_endpoint}", width,
                     indent=2)
    lines += ["", "status".ljust(_STATUS) + "check: result", " " * _FIX + "fix: what to do", ""]
    for finding in report.findings:
        cell = finding.check + (f": {_cell(finding.result)}" if finding.result else "")
        first, *rest = _wrapped(cell, width - _STATUS)
        lines.append(finding.status.value.ljust(_STATUS) + first)
        lines += [" " * _STATUS + line for line in rest]
        if finding.fix:
            lines += [" " * _FIX + line
                      for line in _wrapped(f"fix: {_cell(finding.fix)}", width - _FIX)]
    failed, unverified = report.count(Status.FAIL), report.count(Status.UNVERIFIED)
    lines.append("")
    lines += _wrapped("everything needed is in place" if report.ready else
                      f"not everything needed is in place: {failed} check(s) failed, "
                      f"{unverified} could not be verified; apply each fix, then run doctor "
                      "again", width)
    return "\n".join(lines) + "\n"


def _wrapped(text: str, width: int, *, indent: int = 0) -> list[str]:
    """``text`` in lines of at most ``width`` columns, the second and later ones indented
    by ``indent``. Words break at spaces only (a hyphenated permission name, an id, a URL stay
    whole) unless one alone is wider than a line."""
    return textwrap.wrap(text, width, subsequent_indent=" " * indent,
                         break_on_hyphens=False) or [""]


def _cell(text: str) -> str:
    """Text from outside (error codes, messages) on one line, with any secret masked."""
    return " ".join(redact(_CONTROL.sub(" ", text)).split())
