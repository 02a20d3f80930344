r"""A case report (``service.report_model.CaseReport``) as Markdown, as a self-contained HTML
page, or as JSON.

Outside text (rule names, addresses, reasons, service messages) is passed through
``domain.display.shown`` first (no control character, one line, length-capped), then:

- in Markdown, a backslash goes before every character that means something there
  (CommonMark lets any ASCII punctuation be escaped): ``\ ` * _ [ ] < > & ! ~ | # $ @``,
  a ``.`` before a letter or digit, ``:`` and ``/`` before ``/``, and any punctuation (or a
  number's ``.``/``)``) that starts the text. So no name opens a link, an image, emphasis, a
  code span, a heading, a list, a table cell, math or raw HTML, nor an autolink: GitHub's
  (``www.``, ``http://``, ``a@b.c``) and linkify's (``example.com``) need the ``.``, ``:``
  or ``@`` unescaped;
- in HTML, ``html.escape`` (quotes included); the page loads nothing (inline CSS, a Content
  Security Policy of ``default-src 'none'``) and has print styles (``@media print``);
- in JSON it stays exact (``json.dumps`` escapes what must be).

Our own advice (the README's "what to do", ``Note.ours``) keeps its `code` spans and
*emphasis*.
"""

import html
import json
import re
from datetime import datetime
from typing import Any

from remediation.domain.display import shown
from remediation.service.report_model import CaseReport, Item, Note, Section, stamp

TEXT_LIMIT = 4000
_META = re.compile(r"[\\`*_\[\]<>&!~|#$@]|:(?=/)|/(?=/)|\.(?=\w)")
_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_NUMBERED = re.compile(r"^(\d+)([.)])")
_AT_WORD = re.compile(r"[^\s@]*@\S*")
_OPENING, _CLOSING = "(\"'<[{", ",:;.!?)\"'>]}"
_OURS = re.compile(r"(`[^`]+`|\*[^*\s][^*]*\*)")


def md(text: str) -> str:
    """Outside ``text`` as inert Markdown (one line). A word holding ``@`` becomes a code
    span: GitHub links an address however it is escaped."""
    text = shown(text, TEXT_LIMIT)
    pieces, last = [], 0
    for word in _AT_WORD.finditer(text):
        start, end = _trimmed(word.group(0), word.start(), word.end())
        pieces += [_escaped(text[last:start]), code_span(text[start:end])]
        last = end
    pieces.append(_escaped(text[last:]))
    return _no_block("".join(pieces))


def _trimmed(word: str, start: int, end: int) -> tuple[int, int]:
    """Where the address in ``word`` (at ``start``..``end``) begins and ends: without the
    punctuation of the sentence around it ("(a@b.c)," is "a@b.c")."""
    core = word.lstrip(_OPENING).rstrip(_CLOSING)
    if "@" not in core:
        return start, end
    lead = len(word) - len(word.lstrip(_OPENING))
    return start + lead, start + lead + len(core)


def _no_block(text: str) -> str:
    """Escaped ``text`` that starts no block where it starts a line: "- # x" would be a
    heading, "- > x" a quote, "- + x" a list, "- 1. x" a numbered one."""
    if text[:1] in _PUNCTUATION and text[:1] not in "\\`":  # not an escape, a code span
        return "\\" + text
    return _NUMBERED.sub(r"\1\\\2", text)


def _escaped(text: str) -> str:
    return _META.sub(lambda found: "\\" + found.group(0), text)


def code_span(text: str) -> str:
    """``text`` (one line) as a Markdown code span: literal, never a link or HTML. The fence
    is one backtick longer than the longest run of them inside."""
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_ours(text: str) -> str:
    """Our own Markdown (`code`, *emphasis*) kept, everything else escaped."""
    out = []
    for piece in _OURS.split(text):
        if not _OURS.fullmatch(piece):  # our own text: no control character to drop
            out.append(_META.sub(lambda found: "\\" + found.group(0), piece))
        elif piece.startswith("`"):
            out.append(piece)
        else:
            out.append(f"*{md(piece[1:-1])}*")
    return "".join(out)


def h(text: str) -> str:
    """Outside ``text`` as inert HTML."""
    return html.escape(shown(text, TEXT_LIMIT), quote=True)


def h_ours(text: str) -> str:
    """Our own Markdown as HTML: `code` as <code>, *emphasis* as <em>."""
    out = []
    for piece in _OURS.split(text):
        if not _OURS.fullmatch(piece):
            out.append(html.escape(piece, quote=True))  # our own text, spaces kept
        elif piece.startswith("`"):
            out.append(f"<code>{h(piece[1:-1])}</code>")
        else:
            out.append(f"<em>{h(piece[1:-1])}</em>")
    return "".join(out)


def label(note: Note) -> str:
    return note.label.replace("_", " ")


# Markdown ------------------------------------------------------------------------------

def markdown(report: CaseReport) -> str:
    lines = [f"# Case report {md(report.case_id)}", ""]
    lines += [f"- **{md(fact.label)}:** {md(fact.value)}" for fact in report.facts]
    for section in report.sections:
        lines += ["", *_md_section(section, 2)]
    return "\n".join(lines) + "\n"


def _md_section(section: Section, level: int) -> list[str]:
    lines = [f"{'#' * level} {md(section.title)}", ""]
    if section.parts:
        for part in section.parts:
            lines += [*_md_section(part, level + 1), ""]
        return lines[:-1]
    if not section.items:
        return [*lines, f"- _{md(section.none)}_"]
    for item in section.items:
        lines += _md_item(item)
    return lines


def _md_item(item: Item) -> list[str]:
    when = f"**{stamp(item.at)}**: " if item.at is not None else ""
    lines = [f"- {when}{md(item.text) or '-'}"]
    lines += [f"  - *{md(label(note))}:* "
              + (md_ours(note.value) if note.ours else md(note.value) or "-")
              for note in item.notes]
    return lines


# HTML ----------------------------------------------------------------------------------

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1b1b1b;
max-width:62rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .8rem}
h2{font-size:1.2rem;border-bottom:1px solid #bbb;padding-bottom:.2rem;margin:1.8rem 0 .5rem}
h3{font-size:1rem;margin:1rem 0 .3rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
dl.facts dt{font-weight:600}dl.facts dd{margin:0;overflow-wrap:anywhere}
ul{padding-left:1.2rem;margin:.3rem 0}li{margin:.2rem 0;overflow-wrap:anywhere}
time{color:#555;font-variant-numeric:tabular-nums;white-space:nowrap;margin-right:.4rem}
ul.notes{list-style:none;padding-left:1rem;font-size:.95em}.label{color:#555}
.none{color:#666;font-style:italic}
code{font-family:ui-monospace,Consolas,"Liberation Mono",monospace;background:#f2f2f2;
padding:0 .2em}
table{border-collapse:collapse;margin:.3rem 0}
th,td{border:1px solid #bbb;padding:.2rem .6rem;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
footer{margin-top:2rem;color:#666;font-size:.9em}
@media print{
body{margin:0;max-width:none;font-size:10pt;color:#000}
h2{break-after:avoid}h3{break-after:avoid}li,tr,dl.facts{break-inside:avoid}
code{background:none}#journal{font-size:8.5pt}
@page{margin:15mm}
}
""".strip()


def page(title: str, body: list[str]) -> str:
    """A self-contained HTML page: inline styles, nothing loaded from anywhere."""
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        'style-src \'unsafe-inline\'">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{h(title)}</title>", f"<style>\n{STYLE}\n</style>", "</head>", "<body>",
        *body, "</body>", "</html>", ""])


def html_page(report: CaseReport) -> str:
    body = [f"<h1>Case report {h(report.case_id)}</h1>", '<dl class="facts">']
    body += [f"<dt>{h(fact.label)}</dt><dd>{h(fact.value)}</dd>" for fact in report.facts]
    body.append("</dl>")
    for section in report.sections:
        body += _html_section(section, 2)
    body.append(f"<footer>Made by <code>remediation report</code> at "
                f"{h(stamp(report.generated_at))} from the case's journal.</footer>")
    return page(f"Case report {report.case_id}", body)


def _html_section(section: Section, level: int) -> list[str]:
    tag = "section" if level == 2 else "div"
    lines = [f'<{tag} id="{h(section.key)}">', f"<h{level}>{h(section.title)}</h{level}>"]
    if section.parts:
        for part in section.parts:
            lines += _html_section(part, level + 1)
    elif not section.items:
        lines.append(f'<p class="none">{h(section.none)}</p>')
    else:
        lines.append("<ul>")
        lines += [_html_item(item) for item in section.items]
        lines.append("</ul>")
    return [*lines, f"</{tag}>"]


def _html_item(item: Item) -> str:
    when = (f'<time datetime="{h(item.at.isoformat())}">{h(stamp(item.at))}</time>'
            if item.at is not None else "")
    notes = "".join(f'<li><span class="label">{h(label(note))}:</span> '
                    f"{h_ours(note.value) if note.ours else h(note.value)}</li>"
                    for note in item.notes)
    return (f"<li>{when}{h(item.text)}"
            + (f'<ul class="notes">{notes}</ul>' if notes else "") + "</li>")


# JSON ----------------------------------------------------------------------------------

def as_json(report: CaseReport) -> str:
    """``{case_id, generated_at, facts: [{label, value}], case: {the journal's fields},
    sections: {key: [item] or {part key: [item]}}}``; an item is ``{at, text, <note
    label>: <value>...}``. Times ISO 8601; text exact."""
    return json.dumps({
        "case_id": report.case_id, "generated_at": report.generated_at.isoformat(),
        "facts": [{"label": fact.label, "value": fact.value} for fact in report.facts],
        "case": report.case_fields,
        "sections": {section.key: _json_section(section) for section in report.sections},
    }, indent=2)


def _json_section(section: Section) -> Any:
    if section.parts:
        return {part.key: _json_section(part) for part in section.parts}
    return [_json_item(item) for item in section.items]


def _json_item(item: Item) -> dict[str, Any]:
    body: dict[str, Any] = {"at": _iso(item.at), "text": item.text}
    body.update((note.label, note.value) for note in item.notes)
    return body


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
