"""``remediation doctor``: the preflight, with the deployment's own settings and identity.

Wires the preflight's reads to the same adapters the worker uses (one credential for all of
them), runs ``service.doctor.examine`` and prints a table of check / result / fix (``--json``: the
same findings as one JSON document, ``document``, which the Function App's preflight function
answers too: entrypoints/preflight.py), headed by a PAUSED line while the kill switch is on
(``service.doctor_pause``: paused, the deployment is not ready to change anything, and the
doctor fails). Exit
status 0 only when everything needed is in place, 1 otherwise: a line that says ``FAIL`` or
``UNVERIFIED`` (needed, and not seen) (a bad setting never gets here: the command line stops
with status 2 first). A ``WARN`` line (a setting worth a decision, e.g. no protected group)
never changes the status; the closing line counts it. No token or secret is ever printed: tokens
become claims inside the adapter, and every cell is passed through the log redaction too.
"""

import json
import re
import textwrap
from typing import Any, TextIO

from remediation.config import Settings
from remediation.logsafety import redact
from remediation.service.doctor import Report, Status, Target, examine
from remediation.service.doctor_pause import pause_headline

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
WIDTH = 80  # a terminal's default, and what fits a ticket or a chat message unwrapped
_STATUS = max(len(status.value) for status in Status) + 2  # the status column, with its gap
_FIX = _STATUS + 2  # a fix is indented under its finding


async def run_doctor(settings: Settings, out: TextIO, *, as_json: bool = False) -> int:
    """The table (or, ``as_json``, the document the preflight function answers) on ``out``;
    0 when everything needed is in place, else 1."""
    report = await diagnose(settings)
    out.write(report_json(report, settings) + "\n" if as_json else render(report, settings))
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
    from remediation.service.doctor_integrity import with_integrity_findings
    from remediation.service.doctor_pause import with_pause_finding
    from remediation.service.doctor_settings import with_settings_findings
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
        report = await with_settings_findings(report, settings.protected_group_ids,
                                              settings.mode,
                                              app.journal if journal_there else None)
        report = await with_integrity_findings(report, app.journal if journal_there else None)
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
                           or settings.journal_table_connection_string),
        administrative_unit_id=settings.scope_administrative_unit_id,
        mailbox_access=settings.mailbox_access)


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
    lines.append("")
    lines += _wrapped(summary(report), width)
    return "\n".join(lines) + "\n"


def summary(report: Report) -> str:
    """The table's last line: in place or not, with the failures and warnings counted. A
    warning never makes it "not in place", and "in place" is never said unqualified while a
    warning stands."""
    failed, unverified = report.count(Status.FAIL), report.count(Status.UNVERIFIED)
    count = report.count(Status.WARN)
    warnings = f"{count} warning{'s' if count != 1 else ''}"
    if not report.ready:
        return (f"not everything needed is in place: {failed} check(s) failed, {unverified} "
                f"could not be verified{f', {warnings}' if count else ''}; apply each fix, "
                "then run doctor again")
    if count:
        return (f"everything needed is in place, with {warnings}: read each WARN line "
                "before you switch it on")
    return "everything needed is in place"


def document(report: Report, settings: Settings) -> dict[str, Any]:
    """The table as one JSON object, for tools (``doctor --json``, the preflight function)::

        {"schema": 1, "ready": bool, "summary": str, "tenant_id": str,
         "graph_endpoint": str, "exchange_endpoint": str,
         "counts": {status: int, ...},
         "findings": [{"check": str, "status": str, "result": str, "fix": str}, ...]}

    ``ready`` is the exit status's verdict (no blocking finding); ``counts`` has every status
    the table knows (``Status``, whatever values it holds), zero included; the findings come
    in the table's order, each ``status`` the table's word, ``fix`` "" when there is none.
    Each text is the table's cell, on one line, whole, secrets masked."""
    return {
        "schema": 1,
        "ready": report.ready,
        "summary": summary(report),
        "tenant_id": settings.tenant_id,
        "graph_endpoint": _cell(settings.graph_endpoint),
        "exchange_endpoint": _cell(settings.exchange_endpoint),
        "counts": {status.value: report.count(status) for status in Status},
        "findings": [{"check": _cell(finding.check), "status": finding.status.value,
                      "result": _cell(finding.result), "fix": _cell(finding.fix)}
                     for finding in report.findings],
    }


def report_json(report: Report, settings: Settings) -> str:
    """``document`` as JSON text (ASCII, indented for a person reading it too)."""
    return json.dumps(document(report, settings), indent=2)


def _wrapped(text: str, width: int, *, indent: int = 0) -> list[str]:
    """``text`` in lines of at most ``width`` columns, the second and later ones indented
    by ``indent``. Words break at spaces only (a hyphenated permission name, an id, a URL stay
    whole) unless one alone is wider than a line."""
    return textwrap.wrap(text, width, subsequent_indent=" " * indent,
                         break_on_hyphens=False) or [""]


def _cell(text: str) -> str:
    """Text from outside (error codes, messages) on one line, with any secret masked."""
    return " ".join(redact(_CONTROL.sub(" ", text)).split())
