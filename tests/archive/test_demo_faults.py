"""The demo's planted faults: each break code is found, and the clean month raises none."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from archive import FileStore, Intake
from cli._demo import DEATHS_FILE, FAULT_AS_OF, PLANTED_CODES, generate_faults, generate_month
from ledger import Ledger
from reconcile import compare_list, ingest_statement, run_reconcile

PLANTED = {
    "UNSETTLED_EVENT": "FX-CA-UNPAID",
    "ORPHAN_MOVEMENT": "FX-COL-ORPHAN",
    "AMOUNT_MISMATCH": "FX-CA-SHORT",
    "LATE_SETTLEMENT": "FX-CA-LATE",
    "AMBIGUOUS_MATCH": "FX-COL-AMB",
    "MISSING_VOUCHER": "FX-EN-NOFORM",
    "DUPLICATE_PAYMENT": "FX-BP-DUP-2",
    "PAYMENT_AFTER_TERMINATION": "FX-BP-TERM",
    "PAYEE_MISMATCH": "FX-BP-PAYEE",
    "RETURNED_PAYMENT": "FX-BP-RET",
    "ACCOUNT_RULE_VIOLATION": "FX-PAY-INCOME",
    "STATEMENT_BALANCE_BREAK": "FX-STMT-2026-11-30",
    "VOUCHER_DEFECT": "FX-CA-LATE-FR2",
    "PAYMENT_WITHOUT_APPROVAL": "FX-BP-NOAPPROVAL",
    "OVERPAYMENT": "FX-BP-OVER",
    "CONTRIBUTION_WITHOUT_ENROLMENT": "FX-CA-NOTENROLLED",
    "DUPLICATE_ENROLMENT": "FX-EN-SZ",
    "PAYMENT_AFTER_DEATH": "FX-BP-DEAD",
    "DEATH_NOT_RECORDED": "FX-BA-DEAD",
    "CERTIFICATION_OVERDUE": "FX-BP-CERT",
    "TRANSFER_UNMATCHED": "FX-TI-SZ",
}


def test_every_planted_fault_is_found(led: Ledger, tmp_path: Path) -> None:
    store = Intake(FileStore(led.home.archive_dir))  # vouchers checked as bfa ingest does
    month = generate_month(tmp_path / "data", persons=200)
    faults, statement = generate_faults(tmp_path / "data")
    led.ingest([str(month), str(faults)], store)
    ingest_statement(led, statement, "camt053", "440100", "income")
    compare_list(led, faults.parent / DEATHS_FILE)
    report = run_reconcile(led, date.fromisoformat(FAULT_AS_OF))
    found: dict[str, set[str]] = {}
    for b in report.breaks:
        found.setdefault(b.code, set()).update(b.records)
    assert set(PLANTED) == PLANTED_CODES  # what the demo checks it found
    for code, record in PLANTED.items():
        assert record in found.get(code, set()), f"{code} not found for {record}: {found.get(code)}"
    # nothing but the planted records is at fault
    culprits = {r for b in report.breaks for r in b.records[:1]}
    assert all(r.startswith("FX-") for r in culprits), culprits
