"""What an officer sees at a terminal (issue 19): colour by severity only on a terminal
and never with NO_COLOR, lines that fit 80 columns with Chinese text in them."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import bfa
from cli._options import progress
from cli._render import clip, table, width
from tests._cli import h, ok
from tests.reconcile.test_reconcile_blackbox import new_ledger, s_orphan


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = new_ledger(tmp_path, s_orphan(tmp_path))
    ok("reconcile", *h(home), "--as-of", "2026-12-31", code=1)
    return home


@pytest.mark.parametrize("cols", ["80", "160"])
def test_high_severity_is_red_on_a_terminal_only(home: Path, cols: str) -> None:
    env = {"COLUMNS": cols, "BFA_HOME": "", "NO_COLOR": ""}
    styled = CliRunner().invoke(bfa, ["breaks", "list", *h(home)], env=env, color=True)
    assert "\x1b[31m" in styled.output  # red: ORPHAN_MOVEMENT is high
    plain = CliRunner().invoke(bfa, ["breaks", "list", *h(home)], env=env)
    assert "\x1b[" not in plain.output  # not a terminal
    off = CliRunner().invoke(bfa, ["breaks", "list", *h(home)],
                             env={**env, "NO_COLOR": "1"}, color=True)
    assert "\x1b[" not in off.output
    assert all(width(line) <= int(cols) for line in plain.output.splitlines())


def test_tables_measure_chinese_in_display_columns() -> None:
    rows = [{"who": "张敏", "note": "已核对银行回单", "amount": "1,000.00"},
            {"who": "li.wei", "note": "ok", "amount": "20.00"}]
    lines = table(rows, ["who", "amount", "note"], right={"amount"}).splitlines()
    # the amount column ends in the same display column on every line
    assert len({width(ln[:ln.index(a) + len(a)]) for ln, a in
                zip(lines[2:], ("1,000.00", "20.00"), strict=True)}) == 1, lines
    assert width(clip("银行存款余额调节表", 9)) <= 9 and clip("abc", 9) == "abc"
    fitted = table([{"a": "x", "msg": "很长的说明" * 20}], ["a", "msg"], fit=40)
    assert all(width(line) <= 40 for line in fitted.splitlines())


@pytest.mark.parametrize("n", [0, 1, 3])
def test_a_streamed_json_list_prints_what_the_whole_document_would(n: int) -> None:
    from cli._render import json_chunks, to_json

    items = [{"id": f"B-{i}", "code": "AMOUNT_MISMATCH", "why": "多行\n文字"} for i in range(n)]
    doc = {"ok": True, "verdicts": [{"check": "bag", "ok": True, "file": None}],
           "bundle": {"id": "X", "counts": {"entries": 2}}}
    streamed = "".join(json_chunks(doc, "not_rederivable", iter(items)))
    assert streamed == to_json({**doc, "not_rederivable": items})


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("length", [None, 3])
def test_a_progress_bar_on_a_terminal_with_or_without_a_total(
        length: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """``bfa bundle verify`` draws a bar whose total is not known beforehand: on a terminal
    that crashed (click wants an iterable or a length); now it counts."""
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    with progress(length, "verifying") as tick:
        assert tick is not None
        for _ in range(3):
            tick(1)
    assert "verifying" in err.getvalue()
