"""Per-fund views (issue 20 item 4): ``bfa reconcile --by``, ``bfa nightly --by`` and the
groups of breaks by insurance and region (each break under its first record's), in every
output form; they change no break."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

import schemas
from ledger import InputError, Ledger
from reconcile import fund_view, parse_by, run_reconcile
from reconcile.reports._funds import group_breaks
from reconcile.reports._render import (
    display_width,
    render_fund_csv,
    render_html,
    render_json,
    render_text,
)
from tests._cli import h, invoke, one_error_line
from tests.reconcile import _scenarios as sc
from tests.reconcile._reports import sample_report

AS_OF = sc.AS_OF.isoformat()
OTHER = "440300"


# --- the groups, without a database ---------------------------------------------------

FUNDS = {"COL-9": (None, "440100"), "BP-2": ("pension", "440100"),
         "CA-3": ("medical", OTHER), "CA-4": ("pension", "440100")}
"""(insurance, region) of the first records of :func:`sample_report`'s breaks; the
MISSING_VOUCHER's record is unknown (neither)."""


def test_parse_by() -> None:
    assert parse_by("insurance,region") == ("insurance", "region")
    assert parse_by("region") == ("region",)
    assert parse_by("region, insurance") == ("region", "insurance")
    for bad, why in (("fund", "'fund' is not a way"), ("", "'' is not a way"),
                     ("region,region", "named twice")):
        with pytest.raises(InputError, match=why):
            parse_by(bad)


def test_groups_count_severities_and_add_up_to_the_summary() -> None:
    report = sample_report()
    view = group_breaks(report, FUNDS, ("insurance", "region"))
    assert [g.key for g in view.groups] == [
        ("pension", "440100"), ("medical", OTHER), (None, "440100"), (None, None)]
    pension = view.groups[0]
    assert pension.breaks == 2 and pension.by_severity == {"high": 0, "medium": 1, "low": 1}
    assert pension.by_code == {"AMOUNT_MISMATCH": 1, "LATE_SETTLEMENT": 1}
    assert sum(g.breaks for g in view.groups) == report.summary.breaks
    total = sum(g.at_risk_fen for g in view.groups)
    assert f"{total // 100}.{total % 100:02d}" == report.summary.amount_at_risk
    by_region = group_breaks(report, FUNDS, ("region",))
    assert [(g.key, g.breaks) for g in by_region.groups] == [
        (("440100",), 3), ((OTHER,), 1), ((None,), 1)]


def test_a_record_counts_once_in_its_group() -> None:
    """Two findings about one record (the MISSING_VOUCHER and the UNSETTLED_EVENT of an
    event): its largest amount at risk, once, as in the summary."""
    from reconcile.reports._report import Break, Report
    from tests.reconcile._reports import run_info

    b1 = Break.make("UNSETTLED_EVENT", ("CA-1",), {"event": 1000}, "allocations", "x", 1000)
    b2 = Break.make("CONTRIBUTION_WITHOUT_ENROLMENT", ("CA-1",), {"event": 1000},
                    "person_id", "y", 1000)
    report = Report.build(run_info(), [b1, b2], [])
    (g,) = group_breaks(report, {"CA-1": ("pension", "440100")}, ("insurance",)).groups
    assert (g.breaks, g.at_risk_fen) == (2, 1000)
    assert report.summary.amount_at_risk == "10.00"


def test_renderings_of_the_groups() -> None:
    report = sample_report(status=True)
    view = group_breaks(report, FUNDS, ("insurance", "region"))
    text = render_text(report, view)
    assert text.startswith(render_text(report).split("top ")[0])  # the rest as before
    table = text.split("by insurance and region:\n", 1)[1].splitlines()
    assert table[0].split() == ["insurance", "region", "breaks", "high", "medium", "low",
                                "amount_at_risk"]
    assert table[2].split() == ["pension", "440100", "2", "0", "1", "1", "0.00"]
    assert table[4].split() == ["no", "insurance", "440100", "1", "1", "0", "0", "777.00"]
    assert table[5].split() == ["no", "insurance", "no", "region", "1", "0", "0", "1", "0.00"]
    assert table[6].split() == ["total", "5", "1", "2", "2", "1,235,344.80"]
    assert max(display_width(line) for line in table[:9]) <= 80
    data = json.loads(render_json(report, view))
    assert list(data) == ["run", "summary", "by", "breaks", "expected"]
    assert data["by"]["keys"] == ["insurance", "region"]
    assert data["by"]["groups"][0] == {
        "insurance": "pension", "region": "440100", "breaks": 2,
        "by_severity": {"high": 0, "medium": 1, "low": 1},
        "by_code": {"AMOUNT_MISMATCH": 1, "LATE_SETTLEMENT": 1},
        "amount_at_risk": "0.00", "amount_at_risk_resolved": "0.10"}
    assert data["by"]["groups"][3]["insurance"] is None
    assert {k: v for k, v in data.items() if k != "by"} == json.loads(render_json(report))
    rows = list(csv.reader(io.StringIO(render_fund_csv(view).removeprefix("\ufeff"))))
    assert rows[0] == ["insurance", "region", "breaks", "high", "medium", "low",
                       "amount_at_risk", "amount_at_risk_resolved"]
    assert rows[1:] == [["pension", "440100", "2", "0", "1", "1", "0.00", "0.10"],
                        ["medical", OTHER, "1", "0", "1", "0", "1234567.80", "0.00"],
                        ["", "440100", "1", "1", "0", "0", "777.00", "0.00"],
                        ["", "", "1", "0", "0", "1", "0.00", "0.00"]]
    assert not render_fund_csv(view, bom=False).startswith("\ufeff")
    page = render_html(report, by=view)
    assert page.count('<figure class="chart" id="fund-') == 4
    assert "medical · 440300: 1 breaks, at risk 1,234,567.80" in page
    assert '<table id="funds">' in page and "no insurance · no region" in page
    assert 'id="by-fund"' not in render_html(report)


def test_groups_in_chinese() -> None:
    schemas.set_language("zh_CN")
    report = sample_report()
    view = group_breaks(report, FUNDS, ("insurance", "region"))
    text = render_text(report, view)
    assert "按险种和统筹区：" in text and "养老保险" in text and "未分险种" in text
    assert "未分统筹区" in text
    table = text.split("按险种和统筹区：\n", 1)[1].splitlines()[:9]
    assert max(display_width(line) for line in table) <= 80
    header = render_fund_csv(view).removeprefix("\ufeff").splitlines()[0]
    assert header.startswith("险种,统筹区,差异数,高,中,低,风险金额")
    assert "医疗保险 · 440300" in render_html(report, by=view)


# --- on a ledger, both backends -------------------------------------------------------

def _records(tmp: Path) -> list[dict[str, Any]]:
    """The clean base (pension, 440100) and: an unsettled medical assessment of another
    region (and its missing receipt: one record, two findings), an unsettled pension
    payment, an orphan collection (a movement: no insurance)."""
    medical = {**sc.assessment("CA-M", "500.00"), "region": OTHER, "insurance": "medical"}
    return [*sc.base(tmp), medical, sc.payment_event(2),
            sc.collection("COL-O", "777.00", allocations=None, payer=sc.OTHER_EMPLOYER)]


@pytest.fixture
def filled(led: Ledger, ledger_home: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    sc.ingest(led, tmp_path, _records(tmp_path))
    return ledger_home


def test_groups_of_a_run(led: Ledger, filled: dict[str, Any]) -> None:
    report = run_reconcile(led, sc.AS_OF)
    firsts = {b.code + ":" + b.records[0] for b in report.breaks}
    assert {"UNSETTLED_EVENT:CA-M", "MISSING_VOUCHER:CA-M", "UNSETTLED_EVENT:BP-2",
            "ORPHAN_MOVEMENT:COL-O"} <= firsts
    view = fund_view(led, report, ("insurance", "region"))
    got = {g.key: g for g in view.groups}
    assert list(got) == [("pension", "440100"), ("medical", OTHER), (None, "440100")]
    assert got[("medical", OTHER)].at_risk_fen == 50000  # two findings, counted once
    assert got[("medical", OTHER)].breaks == 2
    assert got[(None, "440100")].by_code["ORPHAN_MOVEMENT"] == 1
    assert got[("pension", "440100")].by_code["UNSETTLED_EVENT"] == 1
    total = sum(g.at_risk_fen for g in view.groups)
    assert f"{total // 100}.{total % 100:02d}" == report.summary.amount_at_risk


def test_reconcile_by_in_every_form(filled: dict[str, Any], tmp_path: Path) -> None:
    home = h(Path(filled["home"]), filled["db"])
    plain = invoke("reconcile", *home, "--as-of", AS_OF, "--json")
    assert plain.exit_code == 1, plain.output
    res = invoke("reconcile", *home, "--as-of", AS_OF, "--json", "--by", "insurance,region")
    assert res.exit_code == 1, res.output
    before, after = json.loads(plain.stdout), json.loads(res.stdout)
    # --by adds its member and changes no break: ids, evidence, amounts, states
    assert after["breaks"] == before["breaks"] and after["summary"] == before["summary"]
    assert after["expected"] == before["expected"]
    assert [(g["insurance"], g["region"]) for g in after["by"]["groups"]] == [
        ("pension", "440100"), ("medical", OTHER), (None, "440100")]
    assert sum(g["breaks"] for g in after["by"]["groups"]) == after["summary"]["breaks"]
    res = invoke("reconcile", *home, "--as-of", AS_OF, "--by", "region", "--csv",
                 "--encoding", "gb18030")
    assert res.exit_code == 1
    rows = list(csv.reader(io.StringIO(res.stdout_bytes.decode("gb18030"))))
    assert rows[0][:3] == ["region", "breaks", "high"]
    assert [r[0] for r in rows[1:]] == ["440100", OTHER]
    page = tmp_path / "funds.html"
    res = invoke("reconcile", *home, "--as-of", AS_OF, "--by", "insurance", "--html",
                 str(page))
    assert res.exit_code == 1, res.output
    assert "by insurance:" in res.stdout and f"wrote {page}" in res.stdout
    assert max(display_width(line) for line in res.stdout.splitlines()  # not the path
               if not line.startswith("wrote ")) <= 80
    html = page.read_text("utf-8")
    assert len(re.findall(r'id="fund-[0-9]+"', html)) == 3
    assert "medical: 2 breaks, at risk 500.00" in html
    res = invoke("--lang", "zh_CN", "reconcile", *home, "--as-of", AS_OF, "--by",
                 "insurance,region")
    assert "按险种和统筹区：" in res.stdout and "医疗保险" in res.stdout


def test_reconcile_by_refuses_other_keys(filled: dict[str, Any]) -> None:
    home = h(Path(filled["home"]), filled["db"])
    line = one_error_line(invoke("reconcile", *home, "--by", "insurance,fund"), 2)
    assert "'fund' is not a way to group breaks" in line


def test_nightly_by(filled: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "reports"
    env = {"BFA_HOME": filled["home"], "BFA_DATABASE_URL": filled["db"], "BFA_USER": "cron"}
    res = invoke("nightly", "--report-dir", str(out), "--as-of", AS_OF, "--fixity-days", "0",
                 "--by", "insurance,region", env=env)
    assert res.exit_code == 1, res.output
    day = (out / "latest").resolve()
    nightly = json.loads((day / "nightly.json").read_text("utf-8"))
    assert nightly["files"]["funds_csv"] == f"{day.name}/funds.csv"
    report = json.loads((day / "report.json").read_text("utf-8"))
    assert report["by"] == nightly["by"]
    assert [(g["insurance"], g["region"]) for g in report["by"]["groups"]][1] == (
        "medical", OTHER)
    rows = (day / "funds.csv").read_text("utf-8").splitlines()
    assert rows[0].startswith("\ufeffinsurance,region,breaks") and len(rows) == 4
    assert 'id="by-fund"' in (day / "report.html").read_text("utf-8")
    # without --by, the reports are as they were
    res = invoke("nightly", "--report-dir", str(out), "--as-of", AS_OF, "--fixity-days", "0",
                 env=env)
    day = (out / "latest").resolve()
    assert not (day / "funds.csv").exists()
    assert "by" not in json.loads((day / "report.json").read_text("utf-8"))


# --- bfa balance --region --------------------------------------------------------------

def test_balance_of_one_region(led: Ledger, ledger_home: dict[str, Any],
                               tmp_path: Path) -> None:
    """Two bank accounts of the income fund account, in two regions: --region states one;
    a region no statement names but the home maps has nothing to compare (exit 1); a
    region neither knows is refused, named (exit 2)."""
    from reconcile.bank import parse_yuan, record_opening, statement_records
    from tests._records import REGION
    from tests.reconcile.test_bank_statement import ACCOUNT, BOOKS, NOVEMBER, camt, movement

    other = "6222000099998888"
    record_opening(led, ACCOUNT, sc.AS_OF.replace(year=2026, month=11, day=1),
                   parse_yuan("10000.00"))
    led.ingest_records(BOOKS, "books")
    nov = camt(tmp_path / "nov.xml", "ST-11", ("10000.00", "2026-11-01"),
               ("13007.34", "2026-11-30"), NOVEMBER)
    led.ingest_records(statement_records(led, nov, "camt053", REGION, "income"), str(nov))
    far = camt(tmp_path / "far.xml", "SF-11", ("500.00", "2026-11-01"),
               ("800.00", "2026-11-30"), [("RZ", "CRDT", "300.00", "2026-11-12")])
    far.write_text(far.read_text("utf-8").replace(ACCOUNT, other), "utf-8")
    led.ingest_records(statement_records(led, far, "camt053", OTHER, "income"), str(far))
    led.ingest_records([{**movement("collection", "COL-Z", "300.00", "RZ", "2026-11-12"),
                         "region": OTHER}], "far books")
    home = h(Path(ledger_home["home"]), ledger_home["db"])
    res = invoke("balance", *home, "--period", "2026-11", "--json")
    assert [a["region"] for a in json.loads(res.stdout)["accounts"]] == [REGION, OTHER]
    res = invoke("balance", *home, "--period", "2026-11", "--region", REGION, "--json")
    assert res.exit_code == 0, res.output  # the other region's missing opening is not ours
    (a,) = json.loads(res.stdout)["accounts"]
    assert (a["bank_account"], a["region"], a["balanced"]) == (ACCOUNT, REGION, True)
    res = invoke("balance", *home, "--period", "2026-11", "--region", OTHER)
    assert res.exit_code == 1 and other in res.stdout and ACCOUNT not in res.stdout
    assert res.stdout.startswith(f"Bank reconciliation statement of region {OTHER} as of "
                                 "2026-11-30\n")
    res = invoke("balance", *home, "--period", "2026-11", "--region", OTHER, "--csv")
    assert res.exit_code == 1 and ACCOUNT not in res.stdout and other in res.stdout
    assert invoke("bank-account", "set", "6222000055556666", "--fund-account", "income",
                  "--region", "440500", *home).exit_code == 0
    res = invoke("balance", *home, "--period", "2026-11", "--region", "440500")
    assert res.exit_code == 1
    assert "no bank statement of region 440500 matches" in res.stdout
    line = one_error_line(invoke("balance", *home, "--period", "2026-11", "--region",
                                 "999999"), 2)
    assert "--region 999999: no bank account of that region" in line
    assert f"regions with bank accounts: {REGION}, {OTHER}, 440500" in line
    for bad in ("44010", "４４０１００", "440100 "):  # short, full-width digits, a space
        line = one_error_line(invoke("balance", *home, "--period", "2026-11", "--region",
                                     bad), 2)
        assert f"--region {bad!r} is not a pooling-region code (6 digits" in line
