"""Interchange records for reconciliation tests: a clean base and one injection per code."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import Any

from archive import MINIMUM_RETENTION, FileStore, sample_pdf
from ledger import Ledger
from tests._records import REGION, T, write_jsonl
from tests._records import payment_event as _payment_event

AS_OF = date(2027, 3, 1)  # every default window of the records below has closed
EMPLOYER = "91440100MA12345678"
OTHER_EMPLOYER = "91440100MA87654321"
ACCOUNT = "6222020200112233445"


def person(i: int) -> str:
    """A distinct person per benefit payment number (same person: a duplicate payment)."""
    return f"1101011990010{i:05d}"


def payment_event(i: int, amount: str = "3456.78", *, who: int | None = None,
                  period: str = "2026-11") -> dict[str, Any]:
    rec = _payment_event(i, amount, person(i if who is None else who))
    rec["period"] = period
    return rec


def assessment(aid: str, amount: str = "1000.00", *, employer: str = EMPLOYER,
               due: str = "2026-11-15") -> dict[str, Any]:
    return {
        "type": "business.contribution_assessment", "id": aid, "region": REGION,
        "occurred_at": "2026-11-05T10:00:00+08:00", "employer_id": employer,
        "insurance": "pension", "period": "2026-11", "amount": amount, "due_date": due,
    }


def collection(cid: str, amount: str = "1000.00", *, allocations: list[tuple[str, str]] | None,
               payer: str = EMPLOYER, value_date: str = "2026-11-12",
               fund_account: str | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "type": "finance.collection", "id": cid, "region": REGION, "occurred_at": T,
        "amount": amount, "value_date": value_date, "bank_ref": f"REF-{cid}", "payer_id": payer,
    }
    if fund_account is not None:
        rec["fund_account"] = fund_account
    if allocations is not None:
        rec["allocations"] = [{"event": e, "amount": a} for e, a in allocations]
    return rec


def payment(pid: str, amount: str = "3456.78", *,
            allocations: list[tuple[str, str]] | None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "type": "finance.payment", "id": pid, "region": REGION, "occurred_at": T,
        "amount": amount, "value_date": "2026-11-20", "bank_ref": f"REF-{pid}",
        "payee_account": ACCOUNT, "fund_account": "expenditure",
    }
    if allocations is not None:
        rec["allocations"] = [{"event": e, "amount": a} for e, a in allocations]
    return rec


def sweep(sid: str, amount: str = "1000.00", *, from_account: str = "income",
          to_account: str = "fiscal_special", value_date: str = "2026-11-30") -> dict[str, Any]:
    return {
        "type": "finance.sweep", "id": sid, "region": REGION, "occurred_at": T,
        "amount": amount, "value_date": value_date, "bank_ref": f"REF-{sid}",
        "from_account": from_account, "to_account": to_account,
    }


def voucher(dir: Path, kind: str, vid: str, refs: list[str],
            amount: str | None = None) -> dict[str, Any]:
    body = sample_pdf(f"{kind} {vid}")
    (dir / f"{vid}.pdf").write_bytes(body)
    rec = {
        "type": f"archive.{kind}", "id": vid, "region": REGION, "occurred_at": T,
        "sha256": hashlib.sha256(body).hexdigest(), "media_type": "application/pdf",
        "size": len(body), "file": f"{vid}.pdf", "refs": refs,
        "retention": MINIMUM_RETENTION[kind],
    }
    if amount is not None:
        rec["amount"] = amount
    return rec


def vouchers_for(dir: Path, records: list[dict[str, Any]], tag: str = "all",
                 skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The vouchers a set of records needs: one voucher of each kind naming all of them."""
    by_type: dict[str, list[str]] = {}
    for r in records:
        by_type.setdefault(r["type"], []).append(r["id"])
    wanted = {
        "fiscal_receipt": by_type.get("business.contribution_assessment", []),
        "bank_slip": by_type.get("finance.payment", []),
        "accounting_voucher": [r["id"] for r in records if r["type"].startswith("finance.")],
    }
    return [voucher(dir, kind, f"{kind[:2].upper()}-{tag}", refs)
            for kind, refs in wanted.items() if refs and kind not in skip]


def base(dir: Path) -> list[dict[str, Any]]:
    """A clean ledger: an assessment collected on the income account and swept to the
    fiscal special account, a benefit payment paid, vouchers for all."""
    recs = [
        assessment("CA-1"),
        collection("COL-1", allocations=[("CA-1", "1000.00")], fund_account="income"),
        sweep("SW-1"),
        payment_event(1),
        payment("PAY-1", allocations=[("BP-1", "3456.78")]),
    ]
    return recs + vouchers_for(dir, recs, "base")


def ingest(led: Ledger, dir: Path, records: list[dict[str, Any]], name: str = "batch") -> None:
    """One batch; its voucher files are stored when they are there to store (the
    generated months of some tests name files they never write)."""
    path = write_jsonl(dir / f"{name}.jsonl", records)
    files = all((dir / str(r["file"])).is_file() for r in records if "file" in r)
    led.ingest([str(path)], FileStore(led.home.archive_dir) if files else None)


def with_vouchers(dir: Path, records: list[dict[str, Any]], tag: str,
                  skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return records + vouchers_for(dir, records, tag, skip)


# One injection and one near-miss clean variant per code: (inject, clean).
def unsettled(dir: Path, clean: bool) -> list[dict[str, Any]]:
    recs = [payment_event(2)]
    if clean:
        recs.append(payment("PAY-2", allocations=[("BP-2", "3456.78")]))
    return with_vouchers(dir, recs, "x") + ([] if clean else [voucher(dir, "bank_slip", "BS-2",
                                                                         ["BP-2"])])


def mismatch(dir: Path, clean: bool) -> list[dict[str, Any]]:
    alloc = "3456.78" if clean else "3456.68"
    return with_vouchers(dir, [payment_event(2), payment("PAY-2", allocations=[("BP-2", alloc)])],
                         "x")


def late(dir: Path, clean: bool) -> list[dict[str, Any]]:
    value = "2026-10-31" if clean else "2026-11-01"  # due 2026-10-01: 30 days is on time
    return with_vouchers(dir, [
        assessment("CA-2", due="2026-10-01"),
        collection("COL-2", allocations=[("CA-2", "1000.00")], value_date=value),
    ], "x")


def missing_voucher(dir: Path, clean: bool) -> list[dict[str, Any]]:
    recs = [assessment("CA-2", "2000.00"),
            collection("COL-2", "2000.00", allocations=[("CA-2", "2000.00")])]
    return with_vouchers(dir, recs, "x", skip=() if clean else ("fiscal_receipt",))


def orphan(dir: Path, clean: bool) -> list[dict[str, Any]]:
    # unallocated collection; clean: an assessment of the same party, amount and date exists
    recs = [collection("COL-9", "777.00", allocations=None, payer=OTHER_EMPLOYER)]
    if clean:
        recs.append(assessment("CA-9", "777.00", employer=OTHER_EMPLOYER))
    return with_vouchers(dir, recs, "x")


def ambiguous(dir: Path, clean: bool) -> list[dict[str, Any]]:
    recs = [assessment("CA-7a", "500.00", employer=OTHER_EMPLOYER),
            collection("COL-7", "500.00", allocations=None, payer=OTHER_EMPLOYER)]
    if not clean:
        recs.append(assessment("CA-7b", "500.00", employer=OTHER_EMPLOYER, due="2026-11-20"))
    return with_vouchers(dir, recs, "x")


def termination(tid: str, effective: str, insurance: str = "pension",
                who: int = 1) -> dict[str, Any]:
    return {"type": "business.termination", "id": tid, "region": REGION, "occurred_at": T,
            "person_id": person(who), "insurance": insurance, "effective_date": effective,
            "reason": "death"}


def enrollment(eid: str, effective: str, insurance: str = "pension",
               who: int = 1) -> dict[str, Any]:
    return {"type": "business.enrollment", "id": eid, "region": REGION, "occurred_at": T,
            "person_id": person(who), "insurance": insurance, "effective_date": effective}


def transfer(tid: str, direction: str, region: str, other: str, occurred: str,
             who: int = 1, amount: str = "5000.00") -> dict[str, Any]:
    """A ``transfer_out`` (``direction`` "out": from ``region`` to ``other``) or a
    ``transfer_in`` (into ``region`` from ``other``) of the person's pension."""
    field = "to_region" if direction == "out" else "from_region"
    return {"type": f"business.transfer_{direction}", "id": tid, "region": region,
            "occurred_at": f"{occurred}T10:00:00+08:00", "person_id": person(who),
            "insurance": "pension", field: other, "amount": amount}


def approval(aid: str, account: str, start: str = "2026-01", who: int = 1) -> dict[str, Any]:
    return {"type": "business.benefit_approval", "id": aid, "region": REGION, "occurred_at": T,
            "person_id": person(who), "insurance": "pension", "benefit": "basic_pension",
            "monthly_amount": "3456.78", "start_period": start, "account": account}


def ret(rid: str, returns: str, allocations: list[tuple[str, str]],
        amount: str = "3456.78") -> dict[str, Any]:
    return {"type": "finance.return", "id": rid, "region": REGION, "occurred_at": T,
            "amount": amount, "value_date": "2026-11-25", "bank_ref": f"REF-{rid}",
            "returns": returns, "reason": "account closed", "fund_account": "expenditure",
            "allocations": [{"event": e, "amount": a} for e, a in allocations]}
