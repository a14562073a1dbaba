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
