"""Small valid interchange records for tests (INTERCHANGE v1), and a superuser's way around
the append-only triggers for tamper tests."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from archive import sample_pdf

if TYPE_CHECKING:
    from ledger import Ledger

REGION = "440100"
T = "2026-11-20T09:00:00+08:00"


def payment_event(
    i: int, amount: str = "3456.78", person: str = "110101199001011234"
) -> dict[str, Any]:
    return {
        "type": "business.benefit_payment", "id": f"BP-{i}", "region": REGION, "occurred_at": T,
        "person_id": person, "insurance": "pension", "period": "2026-11", "amount": amount,
        "account": "6222020200112233445",
    }


def collection(i: int, amount: str = "100.00") -> dict[str, Any]:
    return {
        "type": "finance.collection", "id": f"COL-{i}", "region": REGION, "occurred_at": T,
        "amount": amount, "value_date": "2026-11-20", "bank_ref": f"REF{i}",
        "payer_id": "91440100MA12345678",
    }


SLIP = sample_pdf("slip")
"""The body of every sample voucher (the same bytes: the store keeps it once)."""


def voucher(dir: Path, i: int, refs: list[str], body: bytes = SLIP) -> dict[str, Any]:
    (dir / f"v{i}.pdf").write_bytes(body)
    return {
        "type": "archive.bank_slip", "id": f"BS-{i}", "region": REGION, "occurred_at": T,
        "sha256": hashlib.sha256(body).hexdigest(), "media_type": "application/pdf",
        "size": len(body), "file": f"v{i}.pdf", "refs": refs, "retention": "30y",
    }


def write_jsonl(path: Path, records: list[Any]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")
    return path


@contextmanager
def superuser(led: Ledger) -> Iterator[Connection]:
    """A transaction in which the append-only triggers do not fire (superuser's view)."""
    with led.store.engine.connect() as conn, conn.begin():
        if led.store.dialect == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            for t in ("entries", "tree_nodes", "checkpoints"):
                conn.execute(text(f"DROP TRIGGER IF EXISTS {t}_no_update"))
                conn.execute(text(f"DROP TRIGGER IF EXISTS {t}_no_delete"))
        yield conn
