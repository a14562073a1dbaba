"""One valid example of every interchange kind, every optional field present (tests only)."""

from __future__ import annotations

import copy
from typing import Any

from schemas import RECORD_TYPES

_COMMON: dict[str, Any] = {
    "region": "440100",
    "occurred_at": "2026-03-05T10:00:00+08:00",
    "corrects": "X-0000",
    "source": "社保核心系统 v3",
}
_VOUCHER: dict[str, Any] = {
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "media_type": "application/pdf",
    "size": 48213,
    "file": "vouchers/2026/03/slip-0001.pdf",
    "refs": ["BP-2026-03-0001", "PAY-2026-03-0001"],
    "amount": "3456.78",
    "retention": "30y",
}

# Every kind with every optional field present, so each rule in the tests meets each field.
FULL: dict[str, dict[str, Any]] = {
    "business.enrollment": {
        "id": "EN-0001",
        "person_id": "440102195001011234",
        "employer_id": "91440101MA5CXXXX1X",
        "insurance": "pension",
        "effective_date": "2026-03-01",
        "name": "张三",
    },
    "business.contribution_assessment": {
        "id": "CA-2026-03-0001",
        "employer_id": "91440101MA5CXXXX1X",
        "person_id": "440102195001011234",
        "insurance": "medical",
        "period": "2026-03",
        "amount": "1234.56",
        "due_date": "2026-03-15",
    },
    "business.benefit_approval": {
        "id": "BA-0001",
        "person_id": "440102195001011234",
        "insurance": "pension",
        "benefit": "basic_pension",
        "monthly_amount": "3456.78",
        "start_period": "2026-03",
        "account": "6222020200001234",
        "name": "张三",
    },
    "business.benefit_payment": {
        "id": "BP-2026-03-0001",
        "person_id": "440102195001011234",
        "insurance": "pension",
        "period": "2026-03",
        "amount": "3456.78",
        "account": "6222020200001234",
        "name": "张三",
        "benefit": "basic_pension",
    },
    "business.refund": {
        "id": "RF-0001",
        "payer_id": "91440101MA5CXXXX1X",
        "insurance": "unemployment",
        "amount": "88.00",
        "reason": "重复缴费",
    },
    "business.transfer_out": {
        "id": "TO-0001",
        "person_id": "440102195001011234",
        "insurance": "pension",
        "to_region": "310100",
        "amount": "45678.90",
    },
    "business.transfer_in": {
        "id": "TI-0001",
        "person_id": "440102195001011234",
        "insurance": "pension",
        "from_region": "310100",
        "amount": "45678.90",
    },
    "business.termination": {
        "id": "TM-0001",
        "person_id": "440102195001011234",
        "insurance": "all",
        "effective_date": "2026-04-01",
        "reason": "death",
    },
    "business.certification": {
        "id": "CERT-0001",
        "person_id": "440102195001011234",
        "insurance": "pension",
        "method": "face",
        "certified_on": "2026-03-15",
    },
    "finance.collection": {
        "id": "COL-0001",
        "amount": "1234.56",
        "value_date": "2026-03-10",
        "bank_ref": "ICBC20260310000123",
        "payer_id": "91440101MA5CXXXX1X",
        "allocations": [{"event": "CA-2026-03-0001", "amount": "1234.56"}],
        "fund_account": "income",
    },
    "finance.payment": {
        "id": "PAY-2026-03-0001",
        "amount": "6913.56",
        "value_date": "2026-03-06",
        "bank_ref": "BOC-BATCH-0306-01",
        "payee_account": "6222020200001234",
        "allocations": [
            {"event": "BP-2026-03-0001", "amount": "3456.78"},
            {"event": "BP-2026-03-0002", "amount": "3456.78"},
        ],
        "fund_account": "expenditure",
    },
    "finance.refund": {
        "id": "FRF-0001",
        "amount": "88.00",
        "value_date": "2026-03-12",
        "bank_ref": "CCB-0312-77",
        "payee_account": "6217000000000001",
        "allocations": [{"event": "RF-0001", "amount": "88.00"}],
        "fund_account": "income",
    },
    "finance.transfer": {
        "id": "FTR-0001",
        "amount": "45678.90",
        "value_date": "2026-03-20",
        "bank_ref": "ABC-0320-01",
        "payee_account": "310100-FUND-001",
        "allocations": [{"event": "TO-0001", "amount": "45678.90"}],
        "fund_account": "expenditure",
        "to_region": "310100",
    },
    "finance.return": {
        "id": "RET-0001",
        "amount": "3456.78",
        "value_date": "2026-03-09",
        "bank_ref": "BOC-RET-0309-01",
        "returns": "PAY-2026-03-0001",
        "allocations": [{"event": "BP-2026-03-0002", "amount": "3456.78"}],
        "reason": "账户已销户",
        "fund_account": "expenditure",
    },
    "finance.statement": {
        "id": "253CNY6222000011112222",
        "bank_account": "6222000011112222",
        "currency": "CNY",
        "format": "camt053",
        "fund_account": "income",
        "sequence": "12312",
        "opening_balance": "-18.15",
        "opening_date": "2026-03-30",
        "closing_balance": "1216.41",
        "closing_date": "2026-03-31",
        "entry_count": 1,
        "entries_net": "1234.56",
        "entries": [{"bank_ref": "ICBC20260310000123", "direction": "credit",
                     "amount": "1234.56", "value_date": "2026-03-31"}],
    },
    "finance.sweep": {
        "id": "SW-2026-03",
        "amount": "1234.56",
        "value_date": "2026-03-31",
        "bank_ref": "ICBC-SWEEP-0331",
        "from_account": "income",
        "to_account": "fiscal_special",
    },
    **{
        f"archive.{kind}": {"id": f"V-{kind}-0001", **_VOUCHER}
        for kind in (
            "fiscal_receipt",
            "bank_slip",
            "accounting_voucher",
            "application_form",
            "approval_document",
            "bank_statement",
            "reconciliation_statement",
        )
    },
}
for _type, _fields in FULL.items():
    _fields.update({"type": _type, **_COMMON, **{"id": _fields["id"]}})

KINDS = sorted(FULL)


def example(type_: str, **changes: Any) -> dict[str, Any]:
    """A deep copy of the full example of ``type_`` with ``changes`` (``DELETE`` removes)."""
    record = copy.deepcopy(FULL[type_])
    for key, value in changes.items():
        if value is DELETE:
            record.pop(key, None)
        else:
            record[key] = value
    return record


DELETE = object()


def minimal(type_: str) -> dict[str, Any]:
    """The example of ``type_`` with every optional field left out."""
    fields = RECORD_TYPES[type_].model_fields
    return {k: v for k, v in FULL[type_].items() if fields[k].is_required()}
