"""The report renderers (text, JSON, CSV, HTML) on a hand-built report: content, escaping,
stable order, aging buckets and fields a later step adds to breaks (status, dates)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

from reconcile.reports._render import (
    AGING_BUCKETS,
    CSV_COLUMNS,
    aging,
    aging_bucket,
    render_csv,
    render_html,
    render_json,
    render_text,
    risk_fen,
)
from reconcile.reports._report import Break, Report
from tests.reconcile._reports import FORMULA_ID, HOSTILE, clean_report, sample_report

# --- text ---

def test_text_table_by_code_with_totals() -> None:
    text = render_text(sample_report())
    lines = text.splitlines()
    assert lines[0].split() == ["code", "severity", "breaks", "amount_at_risk"]
    # high severity first, amounts right-aligned in one column
    assert lines[2].split() == ["ORPHAN_MOVEMENT", "high", "1", "777.00"]
    assert lines[3].split() == ["AMOUNT_MISMATCH", "medium", "1", "0.10"]
    assert any(ln.split() == ["UNSETTLED_EVENT", "medium", "1", "1,234,567.80"] for ln in lines)
    total = next(ln for ln in lines if ln.startswith("total"))
    assert total.split() == ["total", "5", "1,235,344.90"]
    assert len({ln.rindex("0") for ln in lines[2:8]}) == 1
    assert "by severity: high 1, medium 2, low 2" in text
    assert ("as of 2027-03-01: 5 breaks, amount at risk 1,235,344.90\n  (each record counted "
            "once); 1 expected (inside their window)\n") in text
    assert "by status" not in text
    # then the breaks to work on, high severity and large amounts first, messages escaped
    top = text.split("top 5 of 5 not resolved (bfa breaks show ID):\n", 1)[1].splitlines()
    assert top[0].split()[0] == "high" and top[0].split()[2:] == ["ORPHAN_MOVEMENT", "777.00"]
    assert top[2].split()[0] == "medium" and "1,234,567.80" in top[2]
    assert all(ch.isprintable() for ln in top for ch in ln)


def test_text_clean_and_statuses() -> None:
    text = render_text(clean_report())
    assert text == ("No breaks.\nas of 2027-03-01: 0 breaks, amount at risk 0.00\n  (each "
                    "record counted once); 0 expected (inside their window)\n")
    assert "by status: assigned 1, open 3, resolved 1" in render_text(sample_report(status=True))


# --- JSON ---

def test_json_is_the_full_report_in_stable_order() -> None:
    report = sample_report()
    text = render_json(report)
    assert text == render_json(report) and text.endswith("}\n")
    data = json.loads(text)
    assert list(data) == ["run", "summary", "breaks", "expected"]
    assert data["summary"] == {"breaks": 5, "by_code": {
        "AMOUNT_MISMATCH": 1, "LATE_SETTLEMENT": 1, "MISSING_VOUCHER": 1, "ORPHAN_MOVEMENT": 1,
        "UNSETTLED_EVENT": 1}, "amount_at_risk": "1235344.90", "expected": 1,
        "amount_at_risk_resolved": "0.00"}
    assert data["run"]["as_of"] == "2027-03-01"
    first = data["breaks"][0]
    assert list(first)[:4] == ["id", "code", "severity", "records"]
    by_code = {b["code"]: b for b in data["breaks"]}
    assert by_code["AMOUNT_MISMATCH"]["records"] == ["BP-2", "PAY-2"]
    assert by_code["AMOUNT_MISMATCH"]["amounts"] == {"event": "3456.78", "allocated": "3456.68"}
    assert by_code["AMOUNT_MISMATCH"]["amount_at_risk"] == "0.10"
    assert sum(Decimal(b["amount_at_risk"]) for b in data["breaks"]) == Decimal("1235344.90")
    assert "待遇退票" in text  # UTF-8, not \u escapes
    assert data["expected"][0]["until"] == "2027-03-20"


# --- CSV ---

def test_csv_rfc4180_one_row_per_break() -> None:
    report = sample_report()
    text = render_csv(report)
    assert text.startswith("\ufeff")  # Excel on Chinese Windows reads UTF-8 by it
    assert not render_csv(report, bom=False).startswith("\ufeff")
    assert text.count("\r\n") == 1 + 5  # header and rows end in CRLF (a quoted \n stays)
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["id"] for r in rows] == [b.id for b in report.breaks]
    by_code = {r["code"]: r for r in rows}
    mm = by_code["AMOUNT_MISMATCH"]
    assert mm["records"] == "BP-2;PAY-2" and mm["amounts"] == "event=3456.78;allocated=3456.68"
    assert mm["amount_at_risk"] == "0.10" and mm["status"] == ""
    assert by_code["UNSETTLED_EVENT"]["message"] == 'unsettled, "quoted", comma, and\nnewline'
    mv = by_code["MISSING_VOUCHER"]
    assert mv["records"] == "'" + FORMULA_ID  # a spreadsheet must not run it as a formula
    assert mv["message"] == HOSTILE
    assert sum(Decimal(r["amount_at_risk"]) for r in rows) == Decimal("1235344.90")


def test_csv_status_and_clean() -> None:
    rows = list(csv.DictReader(io.StringIO(
        render_csv(sample_report(status=True)).removeprefix("\ufeff"), newline="")))
    assert sorted(r["status"] for r in rows) == ["assigned", "open", "open", "open", "resolved"]
    assert render_csv(clean_report()) == "\ufeff" + ",".join(CSV_COLUMNS) + "\r\n"


# --- aging and amounts at risk ---

def test_aging_buckets() -> None:
    as_of = date(2027, 3, 1)
    b = sample_report().breaks[0]

    def bucket(on: object) -> str:
        return aging_bucket(b.model_copy(update={"occurred_on": on}), as_of)

    assert bucket("2027-03-01") == "0-30" and bucket("2027-03-05") == "0-30"
    assert bucket("2027-01-30") == "0-30" and bucket("2027-01-29") == "31-60"
    assert bucket("2026-12-31") == "31-60" and bucket("2026-12-30") == "61-90"
    assert bucket(date(2026, 12, 1)) == "61-90" and bucket("2026-11-30") == ">90"
    assert bucket("2026-11-30T10:00:00+08:00") == ">90"
    assert bucket(None) == "unknown" and bucket("not a date") == "unknown"
    plain = Break.make("ORPHAN_MOVEMENT", ("COL-1",), {"movement": 1}, "amount", "m", 1)
    assert aging_bucket(plain, as_of) == "unknown"  # a break without a date
    rows = {r["bucket"]: (r["breaks"], r["risk_fen"]) for r in aging(sample_report())}
    assert list(rows) == list(AGING_BUCKETS)
    assert rows == {"0-30": (1, 10), "31-60": (0, 0), "61-90": (2, 123456780),
                    ">90": (1, 77700), "unknown": (1, 0)}


def test_a_report_read_back_from_json_renders_the_same() -> None:
    report = sample_report()
    again = Report.model_validate_json(render_json(report))
    # amounts at risk survive (at_risk_fen is not in the JSON; amount_at_risk is)
    assert [risk_fen(b) for b in again.breaks] == [risk_fen(b) for b in report.breaks]
    assert sum(risk_fen(b) for b in again.breaks) == 123534490
    for render in (render_text, render_csv, render_json):
        assert render(again) == render(report)


# --- HTML ---

class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)


def _parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    p.close()
    return p


def test_html_self_contained_and_escaped() -> None:
    page = render_html(sample_report())
    assert page.startswith("<!DOCTYPE html>\n") and page.endswith("</html>\n")
    p = _parse(page)
    names = [t for t, _ in p.tags]
    assert ("meta", {"charset": "utf-8"}) in p.tags
    # nothing to fetch: no src/href attributes, no CSS url()/@import, a CSP forbids the rest
    assert not [a for _, attrs in p.tags for a in attrs if a in ("src", "href", "srcset")]
    assert "url(" not in page and "@import" not in page
    csp = next(a["content"] for t, a in p.tags if a.get("http-equiv") == "Content-Security-Policy")
    assert csp is not None and csp.startswith("default-src 'none'")
    # hostile text stays text: two scripts of ours, no injected elements
    assert names.count("script") == 2 and "img" not in names
    assert HOSTILE in "".join(p.text) and FORMULA_ID in "".join(p.text)
    assert "待遇退票, 张三" in "".join(p.text)
    assert 'document.body.dataset.rendered = "ok"' in p.scripts[-1]


def test_html_charts_and_table() -> None:
    report = sample_report(status=True)
    page = render_html(report)
    p = _parse(page)
    figures = [a.get("id") for t, a in p.tags if t == "figure"]
    assert figures == ["by-code", "at-risk", "aging"]
    assert [t for t, _ in p.tags].count("svg") == 3
    bars = [a["data-label"] for t, a in p.tags if t == "g" and "data-label" in a]
    codes = ["ORPHAN_MOVEMENT", "AMOUNT_MISMATCH", "UNSETTLED_EVENT", "LATE_SETTLEMENT",
             "MISSING_VOUCHER"]
    aging_labels = ["0-30 days", "31-60 days", "61-90 days", ">90 days", "unknown"]
    assert bars == codes + codes + aging_labels
    text = "".join(p.text)
    assert "1,234,567.80" in text and "1,235,344.90" in text  # grouped for people
    assert "2 · 1,234,567.80" in text  # aging 61-90: two breaks
    rows = [a["data-code"] for t, a in p.tags if t == "tr" and "data-code" in a]
    assert rows == ["ORPHAN_MOVEMENT", "AMOUNT_MISMATCH", "UNSETTLED_EVENT", "LATE_SETTLEMENT",
                    "MISSING_VOUCHER"]  # high severity first
    assert "<th>status</th>" in page and "<td>resolved</td>" in page
    assert "BP-5 not yet paid" in text  # expected items listed
    widths = [int(w) for w in re.findall(r'<rect x="\d+" y="\d+" width="(\d+)"', page)]
    assert max(widths) == 250 and 0 in widths  # the largest bar is full width, zeros empty


def test_html_clean_report_and_row_cap() -> None:
    clean = render_html(clean_report())
    p = _parse(clean)
    assert "No breaks" in "".join(p.text) and "<th>status</th>" not in clean
    assert [t for t, _ in p.tags].count("svg") == 3
    capped = render_html(sample_report(), max_rows=2)
    rows: list[Any] = re.findall(r'<tr data-code="', capped)
    assert len(rows) == 2 and "Showing the first 2 of 5 breaks" in capped


def test_resolved_breaks_put_nothing_at_risk_in_tables_and_charts() -> None:
    """The review's finding: the summary said one amount, the table and charts another."""
    from reconcile.reports._render import aging, by_code

    report = sample_report(status=True)
    resolved = [b for b in report.breaks if b.status == "resolved"]
    assert resolved and any(risk_fen(b) for b in resolved)
    still = sum(risk_fen(b) for b in report.breaks if b.status != "resolved")
    assert sum(r["risk_fen"] for r in by_code(report)) == still
    assert sum(r["risk_fen"] for r in aging(report)) == still
    total = next(ln for ln in render_text(report).splitlines() if ln.startswith("total"))
    whole, part = divmod(still, 100)
    assert total.split()[-1] == f"{whole:,}.{part:02d}"
