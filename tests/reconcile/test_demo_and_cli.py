"""The demo month reconciles (only what its data really lacks is reported), and the
``bfa reconcile`` command renders the report with the right exit code."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from archive import FileStore, generate_month
from cli._app import bfa
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


def test_cli_help_has_example() -> None:
    res = CliRunner().invoke(bfa, ["reconcile", "--help"])
    assert res.exit_code == 0 and "Example:" in res.output and "--as-of DATE" in res.output
