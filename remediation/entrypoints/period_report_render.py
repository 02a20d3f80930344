"""A period report (``service.report_model.PeriodReport``) as Markdown, HTML or JSON, escaped
as a case report is (``case_report_render``)."""

import json
from typing import Any

from remediation.entrypoints.case_report_render import h, md, page
from remediation.service.report_model import PeriodReport, Timing, stamp

_TIMINGS = (("reset", "password reset"), ("unblock", "unblock"))


def duration(seconds: float | None) -> str:
    """``seconds`` for people: ``4.2 s``, ``3 min 5 s``, ``2 h 10 min``, ``1 d 4 h``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    for size, unit, small, small_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "min"),
                                          (60, "min", 1, "s")):
        if whole >= size:
            return f"{whole // size} {unit} {whole % size // small} {small_unit}"
    return f"{seconds:.1f} s"  # not reached: 60 s and more is a minute


def _title(report: PeriodReport) -> str:
    since = f"since {stamp(report.since)}" if report.since else "all time"
    return f"Cases {since}"


def _header(report: PeriodReport) -> list[tuple[str, str]]:
    states = ", ".join(report.states) if report.states is not None else "all"
    return [("Period", (f"created at or after {stamp(report.since)}" if report.since
                        else "every case in the journal") + f", to {stamp(report.generated_at)}"),
            ("States", states), ("Cases", str(report.total)),
            *((fact.label, fact.value) for fact in report.facts)]


def _timing(report: PeriodReport, name: str) -> Timing:
    return report.to_reset if name == "reset" else report.to_unblock


def period_markdown(report: PeriodReport) -> str:
    lines = [f"# {md(_title(report))}", ""]
    lines += [f"- **{md(name)}:** {md(value)}" for name, value in _header(report)]
    lines += ["", "## Cases by state", ""]
    lines += (["| state | cases |", "|---|---:|",
               *(f"| {md(state)} | {n} |" for state, n in report.counts.items())]
              if report.counts else ["- _no cases_"])
    lines += ["", "## Time from the first signal (the block or the first alert)", "",
              "| to | cases | p50 | p95 | longest |", "|---|---:|---:|---:|---:|"]
    for name, words in _TIMINGS:
        timing = _timing(report, name)
        lines.append(f"| {words} | {len(timing.seconds)} | {duration(timing.percentile(50))} "
                     f"| {duration(timing.percentile(95))} | {duration(timing.longest)} |")
    lines += ["", "## Escalations by kind", ""]
    lines += (["| kind | cases |", "|---|---:|",
               *(f"| {md(kind)} | {n} |" for kind, n in report.escalations.items())]
              if report.escalations else ["- _no escalation_"])
    return "\n".join(lines) + "\n"


def period_html(report: PeriodReport) -> str:
    body = [f"<h1>{h(_title(report))}</h1>", '<dl class="facts">',
            *(f"<dt>{h(name)}</dt><dd>{h(value)}</dd>" for name, value in _header(report)),
            "</dl>", "<h2>Cases by state</h2>"]
    body += _table(("state", "cases"), [(state, str(n)) for state, n in report.counts.items()],
                   "no cases")
    body.append("<h2>Time from the first signal (the block or the first alert)</h2>")
    body += _table(("to", "cases", "p50", "p95", "longest"), [
        (words, str(len(timing.seconds)), duration(timing.percentile(50)),
         duration(timing.percentile(95)), duration(timing.longest))
        for name, words in _TIMINGS for timing in (_timing(report, name),)], "")
    body.append("<h2>Escalations by kind</h2>")
    body += _table(("kind", "cases"), [(kind, str(n)) for kind, n in report.escalations.items()],
                   "no escalation")
    return page(_title(report), body)


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]], none: str) -> list[str]:
    if not rows:
        return [f'<p class="none">{h(none)}</p>']
    cells = ["<tr>" + "".join(f"<th>{h(name)}</th>" for name in head) + "</tr>"]
    number = ' class="n"'
    cells += ["<tr>" + "".join(f"<td{number if i else ''}>{h(cell)}</td>"
                               for i, cell in enumerate(row)) + "</tr>" for row in rows]
    return ["<table>", *cells, "</table>"]


def period_json(report: PeriodReport) -> str:
    """``{generated_at, since, states, total, counts: {state: n}, to_reset, to_unblock:
    {cases, p50_seconds, p95_seconds, max_seconds}, escalations: {kind: n}, facts}``."""
    def timing(value: Timing) -> dict[str, Any]:
        return {"cases": len(value.seconds), "p50_seconds": value.percentile(50),
                "p95_seconds": value.percentile(95), "max_seconds": value.longest}

    return json.dumps({
        "generated_at": report.generated_at.isoformat(),
        "since": report.since.isoformat() if report.since else None,
        "states": list(report.states) if report.states is not None else None,
        "total": report.total, "counts": report.counts,
        "to_reset": timing(report.to_reset), "to_unblock": timing(report.to_unblock),
        "escalations": report.escalations,
        "facts": [{"label": fact.label, "value": fact.value} for fact in report.facts],
    }, indent=2)
