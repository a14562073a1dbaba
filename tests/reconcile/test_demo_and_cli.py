"""The demo month reconciles (only what its data really lacks is reported), and the
``bfa reconcile`` command renders the report (text, ``--json``, ``--csv``, ``--html FILE``,
``--rules FILE``) with the right exit code."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from archive import FileStore
from cli._app import bfa
from cli._demo import generate_month
from cli._reconcile_cmds import reconcile as _registered  # noqa: F401  (registers the command)
from ledger import Ledger
from reconcile import run_reconcile
from tests.reconcile import _scenarios as sc


def test_demo_month_reconciles(led: Ledger, tmp_path: Path) -> None:
    month = generate_month(tmp_path / "data", persons=300)
    led.ingest([str(month)], FileStore(led.home.archive_dir))
    # inside November's windows nothing is a break yet
    assert run_reconcile(led, date(2026, 11, 23)).clean
    report = run_reconcile(led, date(2027, 1, 31))
    # every event is settled and evidenced: the demo month is clean once its windows close
    assert report.clean, [b.message for b in report.breaks][:5]
    assert report.summary.amount_at_risk == "0.00"


def _run(ledger_home: dict[str, Any], *args: str) -> Any:
    return CliRunner().invoke(
        bfa, ["reconcile", "--home", ledger_home["home"], "--db", ledger_home["db"], *args])


def test_cli_clean_exits_0(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    sc.ingest(led, tmp_path, sc.base(tmp_path))
    led.close()
    res = _run(ledger_home, "--as-of", "2027-03-01")
    assert res.exit_code == 0, res.output
    assert "as of 2027-03-01: 0 breaks, amount at risk 0.00" in res.output


def test_cli_breaks_exit_1_with_table_and_json(ledger_home: dict[str, Any],
                                              tmp_path: Path) -> None:
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.orphan(tmp_path, False))
    led.close()
    res = _run(ledger_home, "--as-of", "2027-03-01")
    assert res.exit_code == 1, res.output
    assert "ORPHAN_MOVEMENT" in res.output and "777.00" in res.output
    res = _run(ledger_home, "--as-of", "2027-03-01", "--json")
    assert res.exit_code == 1
    data = json.loads(res.output)
    assert data["summary"]["by_code"] == {"ORPHAN_MOVEMENT": 1}
    assert data["breaks"][0]["records"] == ["COL-9"]
    assert data["run"]["mode"] == "incremental"  # the first run above was full
    res = _run(ledger_home, "--as-of", "2027-03-01", "--json", "--full")
    again = json.loads(res.output)
    assert res.exit_code == 1 and again["run"]["mode"] == "full"
    assert again["breaks"] == data["breaks"]


def _orphan_ledger(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.orphan(tmp_path, False))
    led.close()


def test_cli_csv_and_html(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    _orphan_ledger(ledger_home, tmp_path)
    page = tmp_path / "out" / "report.html"
    page.parent.mkdir()
    res = _run(ledger_home, "--as-of", "2027-03-01", "--csv", "--html", str(page))
    assert res.exit_code == 1, res.output
    rows = list(csv.DictReader(io.StringIO(res.output.removeprefix("\ufeff"), newline="")))
    assert [(r["code"], r["records"], r["amount_at_risk"]) for r in rows] == [
        ("ORPHAN_MOVEMENT", "COL-9", "777.00")]
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in html
    assert "ORPHAN_MOVEMENT" in html and "COL-9" in html and "777.00" in html
    assert [p.name for p in page.parent.iterdir()] == ["report.html"]  # no temporary left
    # text summary with --html says where the page went; --json stays pure JSON
    res = _run(ledger_home, "--as-of", "2027-03-01", "--html", str(page))
    assert res.exit_code == 1 and f"wrote {page}" in res.output
    res = _run(ledger_home, "--as-of", "2027-03-01", "--json", "--html", str(page))
    assert json.loads(res.output)["breaks"][0]["amount_at_risk"] == "777.00"


def test_cli_clean_csv_and_html(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    sc.ingest(led, tmp_path, sc.base(tmp_path))
    led.close()
    res = _run(ledger_home, "--as-of", "2027-03-01", "--csv", "--html", str(tmp_path / "r.html"))
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == [
        "\ufeffid,code,severity,status,records,amounts,field,message,amount_at_risk,"
        "assignee,reason,note,resolved_by,approved_by,first_seen,updated_at"]
    assert "No breaks" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_cli_usage_errors_exit_2(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    res = _run(ledger_home, "--json", "--csv")
    assert res.exit_code == 2 and "--json and --csv" in res.output
    for given in (["--encoding", "gb18030"], ["--json", "--encoding", "utf-8"]):
        res = _run(ledger_home, *given)  # the CSV's encoding, with no CSV: not ignored
        assert res.exit_code == 2 and "--encoding" in res.output and "--csv" in res.output
    res = _run(ledger_home, "--rules", str(tmp_path / "missing.toml"))
    assert res.exit_code == 2 and "missing.toml" in res.output
    res = _run(ledger_home, "--html", str(tmp_path / "no-such-dir" / "r.html"))
    assert res.exit_code == 2 and "cannot write" in res.output


def test_cli_rules_file(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    _orphan_ledger(ledger_home, tmp_path)
    rules = tmp_path / "rules.toml"
    # COL-9 (value date 2026-11-12) stays expected for 200 days instead of 30
    rules.write_text("[windows]\norphan_days = 200\n", encoding="utf-8")
    res = _run(ledger_home, "--as-of", "2027-03-01", "--rules", str(rules))
    assert res.exit_code == 0, res.output
    assert "0 breaks, amount at risk 0.00\n" in res.output and "1 expected" in res.output
    rules.write_text("[windows]\norphan_dayz = 200\n", encoding="utf-8")
    res = _run(ledger_home, "--as-of", "2027-03-01", "--rules", str(rules))
    assert res.exit_code == 2 and "rules.toml" in res.output and "orphan_dayz" in res.output


def test_cli_help_has_example() -> None:
    res = CliRunner().invoke(bfa, ["reconcile", "--help"])
    assert res.exit_code == 0 and "Example:" in res.output
    for option in ("--as-of DATE", "--rules FILE", "--json", "--csv", "--html FILE"):
        assert option in res.output
