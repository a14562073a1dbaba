"""Renderers of a reconciliation :class:`~reconcile.reports._report.Report`: text, JSON, CSV, HTML.

This module owns how a report looks to people and programs; it decides nothing
about breaks. Each renderer is a plain function returning the whole document as a
``str`` ending in a newline (no click here; the CLI and the nightly run write it).

- :func:`render_text`: the terminal summary, a table by code (severity, breaks,
  amount at risk) with totals and the number of expected items.
- :func:`render_json`: the full report ``{"run", "summary", "breaks", "expected"}``,
  keys in that (declared, stable) order.
- :func:`render_csv`: one row per break for spreadsheets (RFC 4180), with the break
  workflow's columns when given the states; a UTF-8 byte-order mark first (Excel on
  Chinese Windows needs it), which ``bfa reconcile --csv --encoding gb18030`` drops.
- :func:`render_html`: one self-contained page (inline CSS, server-side SVG charts,
  a little inline JS; no external resource, opens offline) with charts of breaks by
  code, amount at risk by code and aging, and the table of breaks.
- :func:`render_fund_csv`: one row per group of a per-fund view (``--by``,
  :mod:`reconcile.reports._funds`); given the view, :func:`render_text`,
  :func:`render_json` and :func:`render_html` add the groups (a table, ``by``, a table
  and a chart per fund).

Amounts at risk are read from ``Break.amount_at_risk`` (the money string that the
JSON keeps, so a report read back from JSON renders the same). Fields a later step
may add to :class:`~reconcile.reports._report.Break` are used when there: ``status`` (break
workflow) and ``occurred_on`` (the earliest date of its records, which ``run_reconcile``
sets, for aging; a report read back from JSON has none and ages as "unknown"). The
summary's ``amount_at_risk`` leaves out resolved breaks once the workflow ran
(``amount_at_risk_resolved`` holds theirs).

Example::

    from pathlib import Path
    from ledger import Ledger
    from reconcile import run_reconcile
    from reconcile.reports._render import render_html, render_text

    report = run_reconcile(Ledger.open(home=".bfa"))
    print(render_text(report), end="")
    Path("report.html").write_text(render_html(report), encoding="utf-8")
"""

from __future__ import annotations

import csv
import html
import io
import json
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from ledger import local_time, printable
from reconcile.bank._adjust import (
    ITEM_NAMES,
    LABELS,
    AccountReconciliation,
    BankReconciliation,
)
from reconcile.matching._gc import paused_gc
from reconcile.matching._units import fen, money
from reconcile.reports._funds import FundGroup, FundView
from reconcile.reports._labels import code_label, label
from reconcile.reports._report import SEVERITY, Break, Expected, Report
from schemas import N_, current_language
from schemas import gettext as _

AGING_BUCKETS: tuple[str, ...] = ("0-30", "31-60", "61-90", ">90", "unknown")
"""Aging of a break: days from its ``occurred_on`` to the run's as-of date."""

CSV_COLUMNS: tuple[str, ...] = (N_("id"), N_("code"), N_("severity"), N_("status"),
                                N_("records"), N_("amounts"), N_("field"), N_("message"),
                                N_("amount_at_risk"), N_("assignee"), N_("reason"), N_("note"),
                                N_("resolved_by"), N_("approved_by"), N_("first_seen"),
                                N_("updated_at"))
"""The CSV's columns; its header row shows each translated (gettext message ids)."""
WORKFLOW_COLUMNS: tuple[str, ...] = ("assignee", "reason", "note", "resolved_by",
                                     "approved_by", "first_seen", "updated_at")
"""The break workflow's columns of the CSV, empty when the report has no workflow."""

_SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


# --- what a break carries (tolerant of fields a later step adds) -------------------------

def risk_fen(b: Break) -> int:
    """A break's amount at risk in fen."""
    return fen(b.amount_at_risk)


def open_risk_fen(b: Break) -> int:
    """What a break still puts at risk: nothing once it is resolved (the summary shows
    the resolved breaks' amount apart)."""
    return 0 if status_of(b) == "resolved" else risk_fen(b)


def status_of(b: Break) -> str:
    """The workflow status of a break, ``""`` when the report carries none."""
    value = getattr(b, "status", None)
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def aging_bucket(b: Break, as_of: date) -> str:
    """``0-30``, ``31-60``, ``61-90``, ``>90`` days old as of the run, or ``unknown``."""
    raw = getattr(b, "occurred_on", None)
    if raw is None or raw == "":
        return "unknown"
    try:
        when = raw if isinstance(raw, date) else date.fromisoformat(str(raw)[:10])
    except ValueError:
        return "unknown"
    days = (as_of - when).days
    if days <= 30:
        return "0-30"
    if days <= 60:
        return "31-60"
    if days <= 90:
        return "61-90"
    return ">90"


def by_code(report: Report) -> list[dict[str, Any]]:
    """One row per code and severity (a code's breaks may differ: ``TRANSFER_UNMATCHED``):
    ``code``, ``severity``, ``breaks``, ``risk_fen``; by severity, code."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for b in report.breaks:
        row = rows.setdefault((b.code, b.severity), {
            "code": b.code, "severity": b.severity, "breaks": 0, "risk_fen": 0})
        row["breaks"] += 1
        row["risk_fen"] += open_risk_fen(b)
    return sorted(rows.values(), key=lambda r: (_SEVERITY_ORDER.get(r["severity"], 9), r["code"]))


def aging(report: Report) -> list[dict[str, Any]]:
    """One row per :data:`AGING_BUCKETS` entry: ``bucket``, ``breaks``, ``risk_fen``."""
    as_of = date.fromisoformat(report.run.as_of[:10])
    rows: dict[str, dict[str, Any]] = {
        k: {"bucket": k, "breaks": 0, "risk_fen": 0} for k in AGING_BUCKETS}
    for b in report.breaks:
        row = rows[aging_bucket(b, as_of)]
        row["breaks"] += 1
        row["risk_fen"] += open_risk_fen(b)
    return list(rows.values())


def _total_fen(report: Report) -> int:
    return sum(open_risk_fen(b) for b in report.breaks)


# --- text ------------------------------------------------------------------------------

def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal or in a monospace layout: a wide or full-width
    (CJK) character counts two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, right: bool = False) -> str:
    """``text`` padded with spaces to ``width`` display columns (:func:`display_width`)."""
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


def _clip(text: str, width: int) -> str:
    """``text`` if it fits ``width`` display columns, else cut to ``width - 1`` and ``…``."""
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        used += display_width(ch)
        if used > width - 1:
            break
        out.append(ch)
    return "".join(out) + "…"


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(display_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, r in enumerate(rows):
        cells = [_pad(c, widths[i], i in right) for i, c in enumerate(r)]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def render_text(report: Report, by: FundView | None = None) -> str:
    """The terminal summary: breaks and amount at risk by code, totals, expected items;
    with ``by`` (``--by``), a table of the breaks per insurance and/or region after the
    totals."""
    s = report.summary
    codes = by_code(report)
    lines: list[str] = []
    if codes:
        rows = [[_("code"), _("severity"), _("breaks"), _("amount_at_risk")]]
        rows += [[code_label(r["code"]), label("severity", r["severity"]), str(r["breaks"]),
                  _grouped(money(r["risk_fen"]))] for r in codes]
        rows.append([_("total"), "", str(len(report.breaks)),
                     _grouped(money(_total_fen(report)))])
        lines += _table(rows, right={2, 3})
    else:
        lines.append(_("No breaks."))
    severities = {k: 0 for k in _SEVERITY_ORDER}
    for b in report.breaks:
        severities[b.severity] = severities.get(b.severity, 0) + 1
    if report.breaks:
        lines.append(_("by severity: {counts}").format(counts=_(", ").join(
            f"{label('severity', k)} {n}" for k, n in severities.items())))
    statuses: dict[str, int] = {}
    for b in report.breaks:
        if st := status_of(b):
            statuses[st] = statuses.get(st, 0) + 1
    if statuses:
        lines.append(_("by status: {counts}").format(counts=_(", ").join(
            f"{label('status', k)} {n}" for k, n in sorted(statuses.items()))))
    if s.amount_at_risk_resolved != "0.00":
        totals = _("as of {as_of}: {breaks} breaks, amount at risk {amount}\n(each record "
                   "counted once; resolved: {resolved});\n{expected} expected (inside their "
                   "window)")
    else:
        totals = _("as of {as_of}: {breaks} breaks, amount at risk {amount}\n(each record "
                   "counted once); {expected} expected (inside their window)")
    lines += _indented(totals.format(
        as_of=report.run.as_of, breaks=s.breaks, amount=_grouped(s.amount_at_risk),
        resolved=_grouped(s.amount_at_risk_resolved), expected=s.expected))
    if report.run.look_back:
        lines += _indented(_("a look back: {as_of} is before the day of the last "
                             "reconciliation,\nso no break's state was changed (bfa breaks "
                             "list shows them)").format(as_of=report.run.as_of))
    if report.run.not_judged:
        lines += _indented(_("{count} records occurred after {as_of}: they were not judged "
                             "(the as-of day is a cut-off)").format(
            count=report.run.not_judged, as_of=report.run.as_of))
    if by is not None:
        lines += fund_table(by)
    todo = [b for b in report.breaks if status_of(b) != "resolved"]
    if todo:
        top = sorted(todo, key=lambda b: (_SEVERITY_ORDER.get(b.severity, 9), -risk_fen(b),
                                          b.code, b.id))[:TOP_BREAKS]
        lines.append(_("top {shown} of {total} not resolved (bfa breaks show ID):").format(
            shown=len(top), total=len(todo)))
        for b in top:
            amount = _grouped(money(risk_fen(b)))
            head = f"  {_pad(label('severity', b.severity), 6)} {b.id}  "
            # the code beside its name, the name cut to the line; never the code itself
            named, room = code_label(b.code), 76 - display_width(head) - len(amount)
            if display_width(named) > room:
                named = b.code if room < display_width(b.code) + 3 else _clip(named, room)
            head += named
            lines.append(head + " " * max(2, 78 - display_width(head) - len(amount)) + amount)
            lines.append(f"         {_clip(printable(b.text()), 69)}")
    return "\n".join(lines) + "\n"


def _indented(text: str) -> list[str]:
    """The lines of a sentence that a message breaks over lines: the first as it is, the
    others indented by two spaces (they continue it)."""
    first, *rest = text.split("\n")
    return [first, *(f"  {line}" for line in rest)]


TOP_BREAKS = 10
"""How many breaks the terminal summary lists after its table."""


_GROUP_TITLES = {("insurance",): N_("by insurance:"), ("region",): N_("by region:"),
                 ("insurance", "region"): N_("by insurance and region:"),
                 ("region", "insurance"): N_("by region and insurance:")}
_KEY_NAMES = {"insurance": N_("insurance"), "region": N_("region")}
_NONE = {"insurance": N_("no insurance"), "region": N_("no region")}
"""How a group without an insurance (a movement's, a voucher's) or region is shown."""


def group_value(name: str, value: str | None) -> str:
    """A group's insurance or region as people read it (``养老保险``, ``440100``, ``未分险种``)."""
    if value is None:
        return _(_NONE[name])
    return label("insurance", value) if name == "insurance" else value


def group_title(view: FundView, g: FundGroup) -> str:
    """``养老保险 · 440100``: a group's values joined."""
    return " · ".join(group_value(k, v) for k, v in zip(view.keys, g.key, strict=True))


def fund_table(view: FundView) -> list[str]:
    """The terminal's table of groups: breaks by severity and the amount at risk of each
    insurance and/or region, and their total (the summary's)."""
    lines = [_(_GROUP_TITLES[view.keys])]
    if not view.groups:
        return [*lines, "  " + _("No breaks.")]
    head = [_(_KEY_NAMES[k]) for k in view.keys]
    rows = [[*head, _("breaks"), *(label("severity", s) for s in _SEVERITY_ORDER),
             _("amount_at_risk")]]
    for g in view.groups:
        rows.append([*(_clip(group_value(k, v), 16) for k, v in zip(view.keys, g.key,
                                                                    strict=True)),
                     str(g.breaks), *(str(g.by_severity.get(s, 0)) for s in _SEVERITY_ORDER),
                     _grouped(money(g.at_risk_fen))])
    rows.append([_("total"), *([""] * (len(view.keys) - 1)),
                 str(sum(g.breaks for g in view.groups)),
                 *(str(sum(g.by_severity.get(s, 0) for g in view.groups))
                   for s in _SEVERITY_ORDER),
                 _grouped(money(sum(g.at_risk_fen for g in view.groups)))])
    n = len(view.keys)
    lines += ["  " + line for line in _table(rows, right=set(range(n, n + 5)))]
    lines += _indented(_("(each break counts under the insurance and region of its first "
                         "record;\nfund movements, vouchers and statements have no "
                         "insurance)"))
    return lines


# --- JSON ------------------------------------------------------------------------------

@paused_gc
def render_json(report: Report, by: FundView | None = None) -> str:
    """The full report as JSON: ``run``, ``summary``, ``breaks``, ``expected``; with
    ``by`` (``--by``), ``by`` after ``summary`` (:meth:`FundView.to_json`).

    Keys keep the report's declared order (stable from run to run); text is UTF-8, not
    ``\\u`` escaped. ``run`` and ``summary`` are indented; each break and expected item
    is one compact line (pydantic's serializer, in Rust: a nightly report may hold a
    hundred thousand items), so two nightly reports diff item by item.
    """
    head = {"run": report.run.model_dump(mode="json"),
            "summary": report.summary.model_dump(mode="json")}
    if by is not None:
        head["by"] = by.to_json()
    parts = [f"  {json.dumps(key)}: "
             + json.dumps(value, ensure_ascii=False, indent=2).replace("\n", "\n  ")
             for key, value in head.items()]
    for key, items, ser in (("breaks", report.breaks, Break.__pydantic_serializer__),
                            ("expected", report.expected, Expected.__pydantic_serializer__)):
        lines = [ser.to_json(item).decode() for item in items]
        parts.append(f"  {json.dumps(key)}: "
                     + ("[\n    " + ",\n    ".join(lines) + "\n  ]" if lines else "[]"))
    return "{\n" + ",\n".join(parts) + "\n}\n"


# --- CSV -------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    """Text a spreadsheet would run as a formula is prefixed with ``'`` (CSV injection)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


_TIMES = frozenset({"first_seen", "updated_at"})


def _when(value: object) -> str:
    """A workflow time as a spreadsheet user reads it: Asia/Shanghai, to the second."""
    return local_time(value) if value else ""


@paused_gc
def render_csv(report: Report, workflow: Mapping[str, Any] | None = None, *,
               bom: bool = True) -> str:
    """One row per break, columns :data:`CSV_COLUMNS` (the header row and the message in
    the reader's language, the other cells as the JSON has them: codes, amounts), RFC 4180
    (CRLF, minimal quoting).

    ``records`` are joined by ``;``, ``amounts`` written ``role=amount;...``; ``status``
    is empty when the report carries no workflow status; the :data:`WORKFLOW_COLUMNS`
    come from ``workflow`` (break id → its state, ``reconcile.list_breaks``), empty
    without it. With ``bom`` (the default) the text starts with a UTF-8 byte-order mark,
    which Excel on Chinese Windows needs to read UTF-8 (without it, it assumes GB18030
    and garbles the text). Text cells that start like a formula get a leading ``'``.
    """
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([_(c) for c in CSV_COLUMNS])  # the header in the reader's language
    states = workflow or {}
    for b in report.breaks:
        st = states.get(b.id)
        w.writerow([
            _cell(b.id), _cell(b.code), b.severity, _cell(status_of(b)),
            _cell(";".join(b.records)),
            _cell(";".join(f"{k}={v}" for k, v in b.amounts.items())),
            _cell(b.field), _cell(b.text()), money(risk_fen(b)),
            *(_cell(_when(getattr(st, c, None)) if c in _TIMES else
                    str(getattr(st, c, None) or "")) for c in WORKFLOW_COLUMNS),
        ])
    return ("\ufeff" if bom else "") + buf.getvalue()


def render_fund_csv(view: FundView, *, bom: bool = True) -> str:
    """One row per group of :class:`FundView` (``--by`` with ``--csv``; the nightly's
    ``funds.csv``): the view's keys (codes; empty for a break with no insurance or
    region), ``breaks``, ``high``, ``medium``, ``low``, ``amount_at_risk``,
    ``amount_at_risk_resolved``; the header in the reader's language, RFC 4180 and the
    byte-order mark as :func:`render_csv`."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([*(_(_KEY_NAMES[k]) for k in view.keys), _("breaks"),
                *(_(FUND_SEVERITY_COLUMNS[s]) for s in _SEVERITY_ORDER),
                _("amount_at_risk"), _("amount_at_risk_resolved")])
    for g in view.groups:
        w.writerow([*(_cell(v or "") for v in g.key), g.breaks,
                    *(g.by_severity.get(s, 0) for s in _SEVERITY_ORDER),
                    money(g.at_risk_fen), money(g.at_risk_resolved_fen)])
    return ("\ufeff" if bom else "") + buf.getvalue()


FUND_SEVERITY_COLUMNS = {"high": N_("high"), "medium": N_("medium"), "low": N_("low")}
"""The severity columns of :func:`render_fund_csv` (header names, translated)."""


# --- HTML ------------------------------------------------------------------------------

def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _t(text: str) -> str:
    """Text for an element's content: ``&``, ``<`` and ``>`` escaped (quotes are text)."""
    return html.escape(text, quote=False)


def _grouped(amount: str) -> str:
    """``1234567.80`` -> ``1,234,567.80`` (display only)."""
    sign, digits = ("-", amount[1:]) if amount.startswith("-") else ("", amount)
    whole, _dot, part = digits.partition(".")
    return f"{sign}{int(whole):,}.{part}" if whole.isdigit() else amount


_COLORS = {"high": "#c62828", "medium": "#ef6c00", "low": "#2e7d32", "none": "#546e7a"}


def _bar_chart(chart_id: str, title: str, rows: list[tuple[str, int, str, str, str]],
               empty: str) -> str:
    """A horizontal bar chart as inline SVG: rows of (label, value, shown text, color key,
    key); the key (a break code, say) is the bar's ``data-label``, which the page's
    script filters by, the label what a person reads."""
    # room for the longest label at the charts' 12 px font (up to 8.5 px a character in
    # capitals, a Chinese one twice that): a code like CONTRIBUTION_WITHOUT_ENROLMENT, or
    # one beside its Chinese name, is never clipped
    longest = max((display_width(row[0]) for row in rows), default=0)
    label_w = max(120, 16 + (longest * 17 + 1) // 2)
    bar_w, value_w, row_h, top = 250, 130, 28, 8
    width = label_w + bar_w + value_w
    height = top * 2 + row_h * max(len(rows), 1)
    parts = [f'<figure class="chart" id="{_e(chart_id)}"><figcaption>{_e(title)}</figcaption>',
             f'<svg role="img" aria-label="{_e(title)}" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}"><title>{_e(title)}</title>']
    biggest = max((row[1] for row in rows), default=0)
    if not rows:
        parts.append(f'<text x="8" y="{top + 18}" class="empty">{_e(empty)}</text>')
    for n, (name, value, shown, color, key) in enumerate(rows):
        y = top + n * row_h
        w = 0 if biggest <= 0 else max(value * bar_w // biggest, 2 if value > 0 else 0)
        parts.append(
            f'<g class="bar" data-label="{_e(key)}">'
            f'<text x="{label_w - 8}" y="{y + 18}" text-anchor="end">{_e(name)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w}" height="{row_h - 8}" rx="2" '
            f'fill="{_COLORS.get(color, _COLORS["none"])}"><title>{_e(name)}: {_e(shown)}'
            f'</title></rect>'
            f'<text x="{label_w + w + 6}" y="{y + 18}">{_e(shown)}</text></g>')
    parts.append("</svg></figure>")
    return "".join(parts)


_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px; color: #1f2933; background: #f7f8fa;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans CJK SC",
  "Microsoft YaHei", "PingFang SC", "WenQuanYi Micro Hei", sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 10px; }
.meta { color: #52606d; margin: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 18px 0; }
.card { background: #fff; border: 1px solid #dde2e8; border-radius: 6px; padding: 10px 16px;
  min-width: 160px; }
.card b { display: block; font-size: 22px; } .card span { color: #52606d; }
.card.alert b { color: #c62828; } .card.ok b { color: #2e7d32; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
.chart { background: #fff; border: 1px solid #dde2e8; border-radius: 6px; margin: 0;
  padding: 10px 12px; }
.chart figcaption { font-weight: 600; margin-bottom: 4px; }
.chart svg { display: block; max-width: 100%; height: auto; font-size: 12px; }
.chart text { fill: #1f2933; } .chart text.empty { fill: #52606d; }
#by-code .bar { cursor: pointer; } #by-code .bar:hover rect { opacity: .75; }
.tools { display: flex; gap: 8px; align-items: center; margin-bottom: 8px; }
.tools input, .tools select { font: inherit; padding: 4px 6px; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { border: 1px solid #dde2e8; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f5; position: sticky; top: 0; }
table.bank tr.total td { font-weight: 600; border-top: 1px solid #90a4ae; }
table.bank tr.item td { color: #546e7a; font-size: 0.9em; }
tr.alert td, p.alert { color: #c62828; } p.ok { color: #2e7d32; }
code.root { overflow-wrap: anywhere; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td code { font-size: 12px; }
.scroll { overflow-x: auto; }
td.id, td.amt { white-space: nowrap; }
td.rec { min-width: 120px; max-width: 240px; overflow-wrap: anywhere; } td.msg { min-width: 260px; }
.sev { color: #fff; border-radius: 3px; padding: 0 6px; font-size: 12px; }
.sev-high { background: #c62828; } .sev-medium { background: #ef6c00; }
.sev-low { background: #2e7d32; }
.note { color: #52606d; } pre { background: #fff; border: 1px solid #dde2e8; padding: 8px; }
footer { margin-top: 28px; color: #7b8794; font-size: 12px; }
@media print { .tools { display: none; } th { position: static; } }
"""

# Set first: any script error or rejected promise is written where a test can see it.
_JS_GUARD = """
window.addEventListener("error", function (e) {
  document.documentElement.setAttribute("data-error", String(e.message || "error"));
});
window.addEventListener("unhandledrejection", function (e) {
  document.documentElement.setAttribute("data-error", "unhandled rejection: " + e.reason);
});
"""

# Filter the breaks table by text and by code (a click on a bar picks its code).
_JS_MAIN = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("#breaks tbody tr"));
  var text = document.getElementById("filter-text");
  var code = document.getElementById("filter-code");
  var shown = document.getElementById("shown");
  var root = document.documentElement;
  // how wide the page lays out against the window: tests assert no sideways scroll
  document.body.dataset.scroll = root.scrollWidth + " " + root.clientWidth;
  var clipped = 0;
  document.querySelectorAll(".chart svg").forEach(function (svg) {
    var box = svg.getBoundingClientRect();
    svg.querySelectorAll("text").forEach(function (t) {
      var r = t.getBoundingClientRect();
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5) { clipped += 1; }
    });
  });
  document.body.dataset.clipped = String(clipped);
  if (!text || !code) { document.body.dataset.rendered = "ok"; return; }
  function apply() {
    var q = text.value.trim().toLowerCase(), c = code.value, n = 0;
    rows.forEach(function (r) {
      var ok = (!c || r.getAttribute("data-code") === c) &&
               (!q || r.textContent.toLowerCase().indexOf(q) >= 0);
      r.hidden = !ok; if (ok) { n += 1; }
    });
    shown.textContent = String(n);
  }
  text.addEventListener("input", apply);
  code.addEventListener("change", apply);
  document.querySelectorAll("#by-code .bar").forEach(function (g) {
    g.addEventListener("click", function () {
      code.value = code.value === g.getAttribute("data-label") ? "" : g.getAttribute("data-label");
      apply();
    });
  });
  apply();
  document.body.dataset.rendered = "ok";
})();
"""

_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "img-src data:")


def _card(name: str, value: str, cls: str = "") -> str:
    return f'<div class="card {cls}"><b>{_e(value)}</b><span>{_e(name)}</span></div>'


def _lang() -> str:
    """The ``lang`` of a page: the current language as a BCP 47 tag."""
    return "zh-CN" if current_language() == "zh_CN" else "en"


def _charts(report: Report) -> str:
    codes = by_code(report)
    count_rows = [(code_label(r["code"]), r["breaks"], str(r["breaks"]), r["severity"],
                   r["code"]) for r in codes]
    risk_rows = [(code_label(r["code"]), r["risk_fen"], _grouped(money(r["risk_fen"])),
                  r["severity"], r["code"]) for r in codes]
    aging_rows = [(_("{bucket} days").format(bucket=r["bucket"]) if r["bucket"] != "unknown"
                   else _("unknown"), r["breaks"],
                   f"{r['breaks']} · {_grouped(money(r['risk_fen']))}", "none",
                   f"{r['bucket']} days" if r["bucket"] != "unknown" else "unknown")
                  for r in aging(report)]
    if not report.breaks:
        aging_rows = []
    none = _("No breaks")
    return ('<section class="charts">'
            + _bar_chart("by-code", _("Breaks by code"), count_rows, none)
            + _bar_chart("at-risk", _("Amount at risk by code (CNY)"), risk_rows, none)
            + _bar_chart("aging", _("Aging: breaks (amount at risk) by days since the event "
                                    "as of {as_of}").format(as_of=report.run.as_of),
                         aging_rows, none)
            + "</section>")


FUND_CHARTS = 60
"""How many groups of a ``--by`` report get a chart of their own (those with the most
breaks; the table lists every group)."""


def fund_section(view: FundView) -> str:
    """``--by`` in the page: a table of the groups, then a chart per fund — its breaks by
    code, coloured by severity, with the amount at risk of each code."""
    title = _(_GROUP_TITLES[view.keys]).rstrip(":：")
    out = [f'<section id="by-fund"><h2>{_e(title)}</h2>']
    if not view.groups:
        return "".join([*out, f'<p class="note">{_e(_("No breaks."))}</p></section>'])
    heads = [*(_(_KEY_NAMES[k]) for k in view.keys), _("breaks"),
             *(label("severity", s) for s in _SEVERITY_ORDER), _("amount at risk (CNY)")]
    out.append('<div class="scroll"><table id="funds"><thead><tr>'
               + "".join(f"<th>{_e(h)}</th>" for h in heads) + "</tr></thead><tbody>")
    for g in view.groups:
        cells = [f"<td>{_e(group_value(k, v))}</td>"
                 for k, v in zip(view.keys, g.key, strict=True)]
        cells += [f'<td class="num">{g.breaks}</td>',
                  *(f'<td class="num">{g.by_severity.get(s, 0)}</td>' for s in _SEVERITY_ORDER),
                  f'<td class="num">{_e(_grouped(money(g.at_risk_fen)))}</td>']
        out.append(f"<tr>{''.join(cells)}</tr>")
    out.append("</tbody></table></div>")
    note = _("Each break counts under the insurance and region of its first record; fund "
             "movements, vouchers and statements have no insurance.")
    out.append(f'<p class="note">{_e(note)}</p>')
    charted = sorted(range(len(view.groups)), key=lambda i: -view.groups[i].breaks)[:FUND_CHARTS]
    out.append('<div class="charts">')
    for i in sorted(charted):
        g = view.groups[i]
        caption = _("{fund}: {breaks} breaks, at risk {amount}").format(
            fund=group_title(view, g), breaks=g.breaks, amount=_grouped(money(g.at_risk_fen)))
        rows = sorted(((code_label(c), n, f"{n} · {_grouped(money(g.risk_by_code.get(c, 0)))}",
                        str(SEVERITY.get(c, "low")), c) for c, n in g.by_code.items()),
                      key=lambda r: (_SEVERITY_ORDER.get(r[3], 9), r[4]))
        out.append(_bar_chart(f"fund-{i}", caption, rows, _("No breaks")))
    out.append("</div>")
    if len(view.groups) > FUND_CHARTS:
        more = _("Charts of the {shown} groups with the most breaks; the table lists all "
                 "{total}.").format(shown=FUND_CHARTS, total=len(view.groups))
        out.append(f'<p class="note">{_e(more)}</p>')
    return "".join([*out, "</section>"])


def _records(records: Iterable[str]) -> str:
    return ", ".join(f"<code>{_e(r)}</code>" for r in records)


def _amounts(amounts: dict[str, str]) -> str:
    return "<br>".join(f"{_e(label('role', k))}: {_e(_grouped(v))}" for k, v in amounts.items())


_BREAK_HEAD = (N_("id"), N_("code"), N_("severity"), N_("status"), N_("records"),
               N_("field"), N_("amounts"), N_("at risk"), N_("message"))
"""The columns of the HTML table of breaks (``status`` when the report has a workflow)."""
_EXPECTED_HEAD = (N_("becomes"), N_("records"), N_("until"), N_("amounts"), N_("message"))


def _ths(head: Iterable[str]) -> str:
    return "".join(f"<th>{_e(_(h))}</th>" for h in head)


def _breaks_table(report: Report, max_rows: int) -> str:
    """Breaks by severity (high first), then in the report's order."""
    has_status = any(status_of(b) for b in report.breaks)
    ths = _ths(h for h in _BREAK_HEAD if has_status or h != "status")
    out = [f'<div class="scroll"><table id="breaks"><thead><tr>{ths}</tr></thead><tbody>']
    ordered = sorted(report.breaks, key=lambda b: _SEVERITY_ORDER.get(b.severity, 9))
    for b in ordered[:max_rows]:
        cells = [f'<td class="id"><code>{_e(b.id)}</code></td>',
                 f"<td>{_e(code_label(b.code))}</td>",
                 f'<td><span class="sev sev-{_e(b.severity)}">'
                 f'{_e(label("severity", b.severity))}</span></td>']
        if has_status:
            cells.append(f"<td>{_e(label('status', status_of(b)))}</td>")
        cells += [f'<td class="rec">{_records(b.records)}</td>', f"<td>{_e(b.field)}</td>",
                  f'<td class="amt">{_amounts(b.amounts)}</td>',
                  f'<td class="num">{_e(_grouped(money(risk_fen(b))))}</td>',
                  f'<td class="msg">{_e(b.text())}</td>']
        out.append(f'<tr data-code="{_e(b.code)}">{"".join(cells)}</tr>')
    out.append("</tbody></table></div>")
    if len(report.breaks) > max_rows:
        note = _("Showing the first {shown} of {total} breaks; the JSON and CSV reports list "
                 "them all.").format(shown=max_rows, total=len(report.breaks))
        out.append(f'<p class="note">{_e(note)}</p>')
    return "".join(out)


def _expected_table(report: Report, max_rows: int) -> str:
    if not report.expected:
        return f'<p class="note">{_e(_("Nothing is inside its settlement window."))}</p>'
    out = ['<div class="scroll"><table id="expected"><thead><tr>'
           f"{_ths(_EXPECTED_HEAD)}</tr></thead><tbody>"]
    for x in report.expected[:max_rows]:
        out.append(f'<tr><td>{_e(code_label(x.code))}</td>'
                   f'<td class="rec">{_records(x.records)}</td>'
                   f'<td class="num">{_e(x.until)}</td><td class="amt">{_amounts(x.amounts)}</td>'
                   f'<td class="msg">{_e(x.text())}</td></tr>')
    out.append("</tbody></table></div>")
    if len(report.expected) > max_rows:
        note = _("Showing the first {shown} of {total} expected items.").format(
            shown=max_rows, total=len(report.expected))
        out.append(f'<p class="note">{_e(note)}</p>')
    return "".join(out)


def _bank_rows(a: AccountReconciliation) -> list[str]:
    """The statement of one account as table rows: balance, items, adjusted balance, for
    the bank side then the book side, then the difference."""
    def row(name: str, fen: int | None, cls: str = "") -> str:
        shown = "" if fen is None else _grouped(money(fen))
        return (f'<tr class="{cls}"><td>{_e(name)}</td><td></td><td></td>'
                f'<td class="num">{_e(shown)}</td></tr>')

    def items(kind: str, sign: str) -> list[str]:
        out = [row(f"{sign} {_(ITEM_NAMES[kind])}", sum(i.amount for i in a.items[kind]))]
        out += [f'<tr class="item"><td></td><td class="rec">{_e(i.record)}</td>'
                f"<td>{_e(i.day)} · {_e(i.bank_ref)}</td>"
                f'<td class="num">{_e(_grouped(money(i.amount)))}</td></tr>'
                for i in a.items[kind]]
        return out

    return [row(_(LABELS["bank_balance"]), a.bank),
            *items("book_credit", "+"), *items("book_debit", "−"),
            row(_(LABELS["adjusted_bank"]), a.adjusted_bank, "total"),
            row(_(LABELS["book_balance"]), a.book),
            *items("bank_credit", "+"), *items("bank_debit", "−"),
            row(_(LABELS["adjusted_book"]), a.adjusted_book, "total"),
            row(_(LABELS["difference"]), a.difference,
                "total" if a.balanced else "total alert")]


def bank_section(bank: BankReconciliation) -> str:
    """The 银行存款余额调节表 of each account as an HTML section (FORMAT.md §9.7)."""
    heading = _("Bank reconciliation statement as of {as_of}").format(as_of=bank.as_of)
    out = [f"<h2>{_e(heading)}</h2>"]
    if not bank.accounts:
        return out[0] + f'<p class="note">{_e(_("No bank statement imported."))}</p>'
    for a in bank.accounts:
        fund = label("fund_account", a.fund_account or "")
        verdict = (_("balanced") if a.balanced else
                   _("NOT balanced: {problem}").format(problem=a.problem_text()) if a.problem else
                   _("NOT balanced: difference {difference}").format(
                       difference=_grouped(money(a.difference or 0))))
        sts = "".join(" · " + _e(_("statement {id}, closing {date}").format(
            id=st.id, date=st.closing_date)) for st in a.statements)
        ops = "".join(" · " + _e(_("opening {amount} at the start of {day}").format(
            amount=_grouped(money(o.amount)), day=o.day)) for o in a.openings)
        out.append(f"<h3>{_e(a.bank_account)} · {_e(fund or '-')} · {_e(a.region or '-')}"
                   f'</h3><p class="{"ok" if a.balanced else "alert"}">{_e(verdict)}{sts}'
                   f"{ops}</p>")
        if a.problem is not None:
            continue
        out += ['<div class="scroll"><table class="bank"><tbody>', *_bank_rows(a)]
        out += [f'<tr class="alert"><td>{_e(_(LABELS["unexplained"]))}</td>'
                f'<td class="rec">{_e(u.record)} / {_e(u.movement)}</td><td>'
                + _e(_("{day} · {bank_ref}: books {amount}").format(
                    day=u.day, bank_ref=u.bank_ref, amount=_grouped(money(u.book_amount or 0))))
                + f'</td><td class="num">{_e(_grouped(money(u.amount)))}</td></tr>'
                for u in a.unexplained]
        out.append("</tbody></table></div>")
    return "".join(out)


def render_bank_html(bank: BankReconciliation) -> str:
    """``bfa balance --html``: the statements as a self-contained page."""
    title = _("Bank reconciliation statement {as_of}").format(as_of=bank.as_of)
    return "".join([
        "<!DOCTYPE html>\n",
        f'<html lang="{_lang()}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">',
        f"<title>{_e(title)}</title><style>{_CSS}</style>",
        f"<script>{_JS_GUARD}</script></head>\n<body>",
        "<main>", bank_section(bank), "</main>",
        f"<footer>{_e(_('Written by bfa balance. Self-contained: opens offline.'))}</footer>",
        f"<script>{_JS_MAIN}</script></body></html>\n",
    ])


@paused_gc
def render_html(report: Report, *, max_rows: int = 5000,
                bank: BankReconciliation | None = None,
                checkpoint: tuple[int, str] | None = None,
                by: FundView | None = None) -> str:
    """A self-contained HTML page: summary, charts, breaks and expected items.

    No external resource (a Content-Security-Policy forbids any): CSS and the SVG
    charts are inline, generated here; a small inline script filters the table and
    finally sets ``<body data-rendered="ok">``; a script error sets ``data-error`` on
    ``<html>``. All text is HTML-escaped. Tables stop at ``max_rows`` rows (the
    charts always count every break). With ``by`` (``--by``), a section of the breaks per
    insurance and/or region follows the charts, with a chart per fund.
    """
    run, s = report.run, report.summary
    high = sum(1 for b in report.breaks if b.severity == "high")
    codes = sorted({b.code for b in report.breaks}, key=lambda c: (
        _SEVERITY_ORDER.get(SEVERITY.get(c, "low"), 9), c))
    options = "".join(f'<option value="{_e(c)}">{_e(code_label(c))}</option>' for c in codes)
    rules = json.dumps(report.to_json()["run"].get("rules", {}), ensure_ascii=False, indent=2)
    title = _("BFA reconciliation as of {as_of}").format(as_of=run.as_of)
    meta = _("{backend} ledger of {size} entries · run {started} to {finished} · {decoded} "
             "entries decoded by this run").format(
        backend=run.backend, size=run.ledger_size, started=run.started_at,
        finished=run.finished_at, decoded=run.decoded)
    if run.rules_digest:
        meta += _(" · rules {digest}… (the ledger's control.rules record)").format(
            digest=run.rules_digest[:16])
    filter_text = _e(_("filter text"))
    # the number shown is an element the page's script updates: placed into the sentence
    shown = _t(_("{count} shown")).format(
        count=f'<span id="shown">{min(len(report.breaks), max_rows)}</span>')
    body = [
        "<header>", f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{_e(meta)}</p>',
        "" if not run.look_back else
        '<p class="meta alert">' + _t(_(
            "A look back: this day is before the day of the last reconciliation, so no "
            "break's workflow state was changed by this run.")) + "</p>",
        "" if not run.not_judged else
        '<p class="meta">' + _t(_(
            "{count} records occurred after {as_of}: they were not judged (the as-of day is "
            "a cut-off).")).format(count=run.not_judged, as_of=_e(run.as_of)) + "</p>",
        "" if checkpoint is None else
        '<p class="meta">' + _t(_(
            "signed checkpoint: size {size}, root {root} (bfa verify checks it)")).format(
            size=checkpoint[0], root=f'<code class="root">{_e(checkpoint[1])}</code>') + "</p>",
        "</header>",
        '<section class="cards">',
        _card(_("breaks"), str(s.breaks), "alert" if s.breaks else "ok"),
        _card(_("amount at risk (CNY)"), _grouped(s.amount_at_risk),
              "alert" if s.breaks else "ok"),
        _card(_("high severity"), str(high), "alert" if high else ""),
        _card(_("expected (inside their window)"), str(s.expected)),
        "</section>",
        _charts(report),
        "" if by is None else fund_section(by),
        f"<h2>{_e(_('Breaks'))}</h2>",
        f'<div class="tools"><input id="filter-text" type="search" placeholder="{filter_text}" '
        f'aria-label="{filter_text}"><select id="filter-code" aria-label="{_e(_("code"))}">'
        f'<option value="">{_e(_("all codes"))}</option>{options}</select>'
        f'<span class="note">{shown}</span></div>',
        _breaks_table(report, max_rows) if report.breaks else
        f'<p class="note">{_e(_("No breaks."))}</p>',
        f"<h2>{_e(_('Expected'))}</h2>", _expected_table(report, max_rows),
        bank_section(bank) if bank is not None and bank.accounts else "",
        f"<details><summary>{_e(_('Rules of this run'))}</summary>",
        f"<pre>{_e(rules)}</pre></details>",
        "<footer>" + _e(_("Written by bfa (reconcile or nightly). Self-contained: opens "
                          "offline.")) + "</footer>",
    ]
    return "".join([
        "<!DOCTYPE html>\n",
        f'<html lang="{_lang()}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">',
        f"<title>{_e(title)}</title><style>{_CSS}</style>",
        f"<script>{_JS_GUARD}</script></head>\n<body>",
        *body,
        f"<script>{_JS_MAIN}</script></body></html>\n",
    ])
