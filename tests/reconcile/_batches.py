"""Batches that exercise incremental reconciliation, and the part of a report two runs must
agree on (shared by the incremental and the ingest-time derivation tests)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from cli._demo import generate_faults, generate_month
from ledger import Ledger
from reconcile import Report, compare_list
from tests.reconcile import _scenarios as sc

EARLY = date(2026, 11, 20)  # many windows still open: expected items, not breaks
H1, H2, H3 = "91440100MA11110001", "91440100MA11110002", "91440100MA11110003"  # pairs


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


OTHER_REGION = "440300"


def _named(assessment: dict[str, Any], who: int) -> dict[str, Any]:
    """An assessment for one person (``person_id``)."""
    return {**assessment, "id": assessment["id"], "person_id": sc.person(who)}


def batches(tmp: Path) -> list[list[dict[str, Any]]]:
    month = _lines(generate_month(tmp / "data", persons=40))
    faults = _lines(generate_faults(tmp / "data")[0])
    half = len(month) // 2
    fix_open = sc.assessment("CA-OPEN-C", "900.00", employer=sc.OTHER_EMPLOYER)
    fix_open["corrects"] = "CA-OPEN"
    fix_fwd = sc.collection("COL-FWD-C", "500.00", allocations=[("CA-FWD", "400.00")])
    fix_fwd["corrects"] = "COL-FWD"
    receipt_fix = sc.voucher(tmp, "fiscal_receipt", "FR-FWD-C", ["CA-FWD"], amount="500.00")
    receipt_fix["corrects"] = "FR-FWD"
    fix_p2 = sc.assessment("CA-P2-C", "250.00")
    fix_p2["corrects"] = "CA-P2"
    # entitlement: a payment 9,000.00 against 1,000.00 approved, corrected later; a
    # one-off grant; assessments naming persons, enrolled later or never; a region whose
    # first approval arrives after its payment
    over = sc.payment_event(76, "9000.00", who=76)
    over_fix = sc.payment_event(76, "1000.00", who=76)
    over_fix["id"], over_fix["corrects"] = "BP-76-C", "BP-76"
    grant = sc.payment_event(79, "5000.00", who=71)
    grant["benefit"] = "funeral_grant"
    elsewhere = {**sc.payment_event(80, who=80), "region": OTHER_REGION}
    first_there = {**sc.approval("BA-81", sc.ACCOUNT, who=81), "region": OTHER_REGION}
    # deaths (DEATHS below), certifications and transfers: payments for months after a
    # death a list gives, an approval no termination ends; a pension certified too long
    # ago, certified again later; a transfer out met by its transfer in two batches later;
    # a transfer in from a region the ledger holds only from batch 5 on; a transfer
    # movement to another region than its record's, corrected later
    certified = {"type": "business.certification", "id": "CE-86", "region": sc.REGION,
                 "occurred_at": "2025-09-01T09:00:00+08:00", "person_id": sc.person(86),
                 "insurance": "pension", "method": "face", "certified_on": "2025-09-01"}
    again = {**certified, "id": "CE-86b", "occurred_at": "2026-10-01T09:00:00+08:00",
             "certified_on": "2026-10-01"}
    moved = {"type": "finance.transfer", "id": "MV-88", "region": sc.REGION,
             "occurred_at": sc.T, "amount": "5000.00", "value_date": "2026-10-05",
             "bank_ref": "REF-MV-88", "payee_account": sc.ACCOUNT,
             "fund_account": "expenditure", "to_region": THIRD_REGION,
             "allocations": [{"event": "TO-88", "amount": "5000.00"}]}
    moved_fix = {**moved, "id": "MV-88-C", "to_region": OTHER_REGION, "corrects": "MV-88"}
    return [
        month[:half],
        month[half:] + faults,
        [  # a collection naming an assessment not yet in the ledger; an open assessment
            sc.collection("COL-FWD", "500.00", allocations=[("CA-FWD", "500.00")]),
            sc.assessment("CA-OPEN", "1000.00", employer=sc.OTHER_EMPLOYER),
            sc.payment_event(71, who=71),
            sc.payment("PAY-71", allocations=[("BP-71", "3456.78")]),
            sc.approval("BA-71", sc.ACCOUNT, who=71),
            # a paid benefit whose bank slip names only the payment movement
            sc.payment_event(72, who=72),
            sc.payment("PAY-72", allocations=[("BP-72", "3456.78")]),
            sc.voucher(tmp, "bank_slip", "BS-72", ["PAY-72"], amount="3456.78"),
            # a paid benefit whose bank slip comes in a later batch
            sc.payment_event(73, who=73),
            sc.payment("PAY-73", allocations=[("BP-73", "3456.78")]),
            # a benefit settled by the heuristic match, its bank slip naming the payment
            sc.payment_event(74, "1234.56", who=74),
            sc.payment("PAY-74", "1234.56", allocations=None),
            sc.voucher(tmp, "bank_slip", "BS-74", ["PAY-74"], amount="1234.56"),
            # a voucher over two assessments, one corrected later
            sc.assessment("CA-P1", "300.00"),
            sc.assessment("CA-P2", "200.00"),
            sc.collection("COL-P1", "300.00", allocations=[("CA-P1", "300.00")]),
            sc.voucher(tmp, "accounting_voucher", "AV-PAIR", ["CA-P1", "CA-P2"], amount="500.00"),
            # a receipt naming an assessment that arrives later, for another amount
            sc.voucher(tmp, "fiscal_receipt", "FR-LATER", ["CA-LATER"], amount="700.00"),
            sc.voucher(tmp, "accounting_voucher", "AV-LATER", ["COL-LATER"], amount="100.00"),
            # two heuristic matches kept from run to run, each undone by a later arrival
            # that nothing else in its batch names (see the last batch)
            sc.assessment("CA-H1", "777.00", employer=H1),
            sc.collection("COL-H1", "777.00", allocations=None, payer=H1),
            sc.assessment("CA-H2", "666.00", employer=H2),
            sc.collection("COL-H2", "666.00", allocations=None, payer=H2),
            sc.assessment("CA-H3", "555.00", employer=H3),
            sc.collection("COL-H3", "555.00", allocations=None, payer=H3),
            over, {**sc.approval("BA-76", sc.ACCOUNT, who=76), "monthly_amount": "1000.00"},
            _named(sc.assessment("CA-77", "400.00"), 77),
            _named(sc.assessment("CA-78", "400.00"), 78),
            sc.enrollment("EN-78", "2026-01-01", who=78),
            elsewhere,
            sc.approval("BA-82", sc.ACCOUNT, who=82),
            sc.payment_event(82, who=82, period="2026-10"),
            sc.payment_event(83, who=82, period="2026-11"),
            sc.transfer("TO-84", "out", sc.REGION, OTHER_REGION, "2026-09-01", who=84),
            sc.transfer("TI-85", "in", OTHER_REGION, THIRD_REGION, "2026-09-01", who=85),
            sc.approval("BA-86", sc.ACCOUNT, start="2024-01", who=86), certified,
            sc.payment_event(86, who=86, period="2026-10"),
            sc.transfer("TO-88", "out", sc.REGION, OTHER_REGION, "2026-10-01", who=88),
            sc.transfer("TI-88", "in", OTHER_REGION, sc.REGION, "2026-10-03", who=88),
            moved,
        ],
        [  # the assessment arrives; the open one is corrected and then matched heuristically
            sc.assessment("CA-FWD", "500.00"),
            sc.voucher(tmp, "fiscal_receipt", "FR-FWD", ["CA-FWD"], amount="600.00"),
            fix_open,
            sc.collection("COL-OPEN", "900.00", allocations=None, payer=sc.OTHER_EMPLOYER),
            sc.termination("TE-71", "2026-10-15", who=71),
            sc.assessment("CA-LATER", "800.00"),
            sc.collection("COL-LATER", "120.00", allocations=[("CA-LATER", "120.00")]),
            sc.voucher(tmp, "accounting_voucher", "AV-72", ["BP-72"]),
            sc.voucher(tmp, "bank_slip", "BS-73", ["PAY-73"], amount="3456.78"),
            sc.enrollment("EN-77", "2026-11-15", who=77), grant, first_there,
            sc.termination("TE-78", "2026-11-01", who=78),
            # enrolled in another region too, while still enrolled here
            {**sc.enrollment("EN-78b", "2026-06-01", who=78), "region": OTHER_REGION},
        ],
        [],  # nothing new (batch 4; a second death list is compared)
        [fix_p2, again,
         sc.transfer("TI-84", "in", OTHER_REGION, sc.REGION, "2026-10-01", who=84),
         {**sc.approval("BA-87", sc.ACCOUNT, who=87), "region": THIRD_REGION}],
        [  # corrections of a movement and a voucher; the heuristic match turns ambiguous;
           # a return; a new approval to another account; a late voucher
            fix_fwd,
            receipt_fix,
            sc.assessment("CA-OPEN-2", "900.00", employer=sc.OTHER_EMPLOYER, due="2026-11-16"),
            sc.ret("RET-71", "PAY-71", [("BP-71", "3456.78")]),
            sc.approval("BA-71b", "6222020200199999999", start="2026-06", who=71),
            sc.voucher(tmp, "accounting_voucher", "AV-LATE", ["COL-OPEN", "COL-FWD-C"]),
            # a second candidate event of a stored match's movement, and a second
            # candidate movement of another stored match's event: both turn ambiguous
            sc.assessment("CA-H1b", "777.00", employer=H1),
            sc.collection("COL-H2b", "666.00", allocations=None, payer=H2, value_date="2026-11-13"),
            # an allocation settles a stored match's event: its movement is an orphan now
            sc.collection("COL-H3b", "555.00", allocations=[("CA-H3", "555.00")], payer=H3),
            over_fix,
            # the other region records the transfer in: the two enrolments are explained
            sc.transfer("TI-78", "in", OTHER_REGION, sc.REGION, "2026-06-10", who=78),
            sc.termination("TE-82", "2026-10-01", who=82), moved_fix,
        ],
    ]


THIRD_REGION = "320100"

DEATHS: dict[int, list[tuple[int, str]]] = {
    3: [(82, "2026-10-10"), (71, "2026-10-15")],
    4: [(82, "2026-09-20")],  # an earlier date: the October payment is after it too
}
"""Death lists compared after the batch of that index (``bfa compare``)."""


def add(led: Ledger, tmp: Path, i: int, batch: list[dict[str, Any]]) -> None:
    """Ingest batch ``i`` and compare its death list, if any."""
    if batch:
        sc.ingest(led, tmp, batch, f"batch-{i}")
    if i in DEATHS:
        path = tmp / f"deaths-{i}.csv"
        path.write_text("".join(f"{sc.person(who)},{day}\n" for who, day in DEATHS[i]),
                        encoding="utf-8")
        compare_list(led, path, today=date(2027, 3, 1))


def view(report: Report) -> dict[str, Any]:
    doc = report.to_json()
    for b in doc["breaks"]:
        b.pop("evidence")
    return {"breaks": doc["breaks"], "expected": doc["expected"], "summary": doc["summary"]}
