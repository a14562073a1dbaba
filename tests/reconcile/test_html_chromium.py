"""The HTML report loads in headless Chromium (Debian's ``chromium``) without errors.

The page marks itself ``<body data-rendered="ok">`` at the end of its script and a
``window`` error handler writes ``data-error`` on ``<html>``; the DOM Chromium dumps
must carry the first and not the second, and Chromium's console log (stderr) must
show no page message at all (no uncaught error, no resource blocked by the page's
Content-Security-Policy, which would mean the page is not self-contained).

Without Chromium the tests skip, or fail when ``BFA_REQUIRE_CHROMIUM=1`` (CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reconcile.reports._render import render_html
from tests.reconcile._reports import HOSTILE, clean_report, sample_report

INSTALL = "install it with: apt-get update && apt-get install -y chromium"


def _chromium() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if found:
        return found
    if os.environ.get("BFA_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"Chromium is required (BFA_REQUIRE_CHROMIUM=1) but missing; {INSTALL}")
    pytest.skip(f"Chromium not found; {INSTALL}")


def load(page: str, tmp_path: Path) -> tuple[str, list[str]]:
    """Open the page in headless Chromium: (dumped DOM, console lines of the page)."""
    exe = _chromium()
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    res = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    console = [ln for ln in res.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]
    return res.stdout, console


def assert_loads_clean(dom: str, console: list[str]) -> None:
    assert 'data-rendered="ok"' in dom, dom[-2000:]
    assert ' data-error="' not in dom, dom[:2000]
    assert not console, console


def test_report_page_loads_without_errors(tmp_path: Path) -> None:
    dom, console = load(render_html(sample_report(status=True)), tmp_path)
    assert_loads_clean(dom, console)
    # the charts and table are there, hostile text stayed text, Chinese survived
    assert dom.count("<svg") == 3 and dom.count('<tr data-code="') == 5
    assert "<img" not in dom and "pwned" not in dom.split("</title>")[0]
    assert HOSTILE.replace("<", "&lt;").replace(">", "&gt;").split('"')[0] in dom
    assert "待遇退票, 张三" in dom


def test_clean_report_page_loads_without_errors(tmp_path: Path) -> None:
    dom, console = load(render_html(clean_report()), tmp_path)
    assert_loads_clean(dom, console)
    assert "No breaks" in dom


def test_harness_sees_script_errors_and_external_resources(tmp_path: Path) -> None:
    """The checks above would catch a broken page: an uncaught error, a blocked fetch."""
    page = render_html(sample_report()).replace(
        "</body>", '<img src="http://example.invalid/x.png"><script>nope();</script></body>')
    dom, console = load(page, tmp_path)
    assert 'data-error="Uncaught ReferenceError: nope is not defined"' in dom
    assert any("Uncaught" in ln for ln in console)
    assert any("Content Security Policy" in ln for ln in console)


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_bank_statement_page_loads_and_fits_1280_px(tmp_path: Path, lang: str) -> None:
    """FORMAT §9.7: the 银行存款余额调节表 page (bfa balance --html, and the nightly's
    bank section) opens clean and lays out within a 1280 px window: no sideways scroll,
    in either language."""
    import schemas
    from reconcile.bank._adjust import AccountReconciliation, BankReconciliation, Item, Opening
    from reconcile.bank._checks import StoredStatement

    st = StoredStatement("ST-11", "6222000011112222", "income", "11", 1_000_000, "2026-11-01",
                         1_300_734, "2026-11-30", 300_734, (), "440100")
    acct = AccountReconciliation(("6222000011112222",), "income", "440100", (st,),
                                 (Opening("OPEN-1", "6222000011112222", "2026-11-01",
                                          1_000_000, "zhang.min", 3),), 1_300_734, 1_480_000)
    acct.items["bank_credit"].append(Item("bank_credit", "ST-11#3", "INT1", "credit", 1234,
                                          "2026-11-21"))
    acct.items["book_credit"].append(Item("book_credit", "COL-C-" + "长" * 60, "RC", "credit",
                                          300_000, "2026-11-29"))
    acct.unexplained.append(Item("unexplained", "ST-11#2", "RB", "debit", 200_027,
                                 "2026-11-10", 200_000, "PAY-B"))
    from reconcile import render_bank_html
    from reconcile.bank._adjust import ITEM_NAMES, LABELS

    with schemas.language(lang):
        page = render_bank_html(BankReconciliation("2026-11-30", [acct]))
        report_page = render_html(sample_report(), bank=BankReconciliation(
            "2026-11-30", [acct]))
        names = (schemas.gettext(ITEM_NAMES["bank_credit"]),
                 schemas.gettext(LABELS["unexplained"]),
                 schemas.gettext("Bank reconciliation statement as of {as_of}").format(
                     as_of="2026-11-30"))
    tag = '<html lang="zh-CN">' if lang == "zh_CN" else '<html lang="en">'
    assert tag in page and tag in report_page
    dom, console = load_at(page, tmp_path, 1280)
    assert_loads_clean(dom, console)
    assert names[0] in dom and names[1] in dom and "1,300,734" not in dom
    assert "13,007.34" in dom
    if lang == "en":
        assert "bank credits not yet booked" in dom and ">unexplained<" in dom
    scroll, client = (int(x) for x in dom.split('data-scroll="')[1].split('"')[0].split())
    assert client > 0 and scroll <= client, (scroll, client)
    dom, console = load(report_page, tmp_path)
    assert_loads_clean(dom, console)
    assert names[2] in dom


def load_at(page: str, tmp_path: Path, width: int) -> tuple[str, list[str]]:
    """:func:`load` in a window ``width`` px wide."""
    exe = _chromium()
    path = tmp_path / "page.html"
    path.write_text(page, encoding="utf-8")
    res = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile-w'}",
         f"--window-size={width},900", "--enable-logging=stderr", "--v=0", "--dump-dom",
         path.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    console = [ln for ln in res.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]
    return res.stdout, console


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_report_page_fits_1280_px_with_long_codes(tmp_path: Path, lang: str) -> None:
    """Issue 19: the page scrolled sideways at 1400 px and clipped chart labels (the
    page's script counts chart labels that start left of their chart). In Chinese a
    chart label is the code beside its name (wider): still no clipping, no scroll."""
    import schemas
    from reconcile.reports._report import SEVERITY, Break, Report

    base = sample_report(status=True)
    every = [Break.make(code, (f"R-{code}",), {"event": 100_000 + i}, "amount",
                        f"{code}: a message long enough to wrap in its cell " * 3, 100 + i)
             for i, code in enumerate(sorted(SEVERITY))]
    with schemas.language(lang):
        page = render_html(Report.build(base.run, [*base.breaks, *every],
                                        list(base.expected)))
    dom, console = load_at(page, tmp_path, 1280)
    assert_loads_clean(dom, console)
    scroll, client = (int(x) for x in dom.split('data-scroll="')[1].split('"')[0].split())
    assert client > 0 and scroll <= client, (scroll, client)
    assert 'data-clipped="0"' in dom, dom.split("<body")[1][:300]


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_report_page_with_a_chart_per_fund(tmp_path: Path, lang: str) -> None:
    """Issue 20 item 4 (--by insurance,region): a table of the funds and a chart per fund
    load clean at 1280 px: no script error, no sideways scroll, no clipped chart label —
    also for a fund with every code (the widest labels) and the group without an
    insurance."""
    import schemas
    from reconcile.reports._funds import group_breaks
    from reconcile.reports._report import SEVERITY, Break, Report

    base = sample_report(status=True)
    every = [Break.make(code, (f"R-{code}",), {"event": 100_000 + i}, "amount", code, 100 + i)
             for i, code in enumerate(sorted(SEVERITY))]
    report = Report.build(base.run, [*base.breaks, *every], list(base.expected))
    funds = {f"R-{code}": ("work_injury", "440100") for code in SEVERITY}
    funds |= {"COL-9": (None, "440100"), "BP-2": ("pension", "440300")}
    with schemas.language(lang):
        page = render_html(report, by=group_breaks(report, funds, ("insurance", "region")))
    dom, console = load_at(page, tmp_path, 1280)
    assert_loads_clean(dom, console)
    assert dom.count('id="fund-') == 4 and '<table id="funds">' in dom
    assert ("未分险种 · 440100" if lang == "zh_CN" else "no insurance · 440100") in dom
    scroll, client = (int(x) for x in dom.split('data-scroll="')[1].split('"')[0].split())
    assert client > 0 and scroll <= client, (scroll, client)
    assert 'data-clipped="0"' in dom, dom.split("<body")[1][:300]
