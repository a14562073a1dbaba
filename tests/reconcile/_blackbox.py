"""Record builders shared by the reconciler's black-box test modules (the review of the
commands, ``test_reconcile_blackbox.py``, and of concurrency and kills,
``test_concurrency_blackbox.py``): minimal interchange records of one pooling region."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from archive import MINIMUM_RETENTION, sample_pdf

Rec = dict[str, Any]
R = "440100"
T = "2026-10-10T09:00:00+08:00"
EMP = "91440100MA12345678"


def write_jsonl(path: Path, records: list[Rec]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


def assessment(i: str, amount: str = "1000.00", due: str = "2026-10-15") -> Rec:
    return {"type": "business.contribution_assessment", "id": i, "region": R, "occurred_at": T,
            "employer_id": EMP, "insurance": "pension", "period": "2026-10", "amount": amount,
            "due_date": due}


def collection(i: str, amount: str = "1000.00", value_date: str = "2026-10-12",
               allocs: list[tuple[str, str]] | None = None, payer: str = EMP, **kw: str) -> Rec:
    r: Rec = {"type": "finance.collection", "id": i, "region": R, "occurred_at": T,
              "amount": amount, "value_date": value_date, "bank_ref": "REF-" + i,
              "payer_id": payer, **kw}
    if allocs is not None:
        r["allocations"] = [{"event": e, "amount": a} for e, a in allocs]
    return r


def voucher(d: Path, kind: str, i: str, refs: list[str], amount: str | None = None) -> Rec:
    body = sample_pdf(f"{kind} {i}")
    (d / f"{i}.pdf").write_bytes(body)
    r: Rec = {"type": "archive." + kind, "id": i, "region": R, "occurred_at": T,
              "sha256": hashlib.sha256(body).hexdigest(), "media_type": "application/pdf",
              "size": len(body), "file": f"{i}.pdf", "refs": refs,
              "retention": MINIMUM_RETENTION[kind]}
    if amount is not None:
        r["amount"] = amount
    return r
