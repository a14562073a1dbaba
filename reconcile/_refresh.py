"""Refresh: decode new ledger entries into the derived ``rc_*`` tables.

This is the only place the reconciler touches records one by one. It reads entries
with ``seq`` at or above the watermark (``meta`` key ``reconcile_seq``) in chunks,
decodes each leaf (:func:`ledger.decode_leaf`), bulk-inserts the rows with
``Store.copy_rows``, then resolves corrections with set-based ``UPDATE`` statements:
a record is *superseded* when a record of its domain ``corrects`` it, and every
record's ``current_id`` follows the chain of corrections to its latest version.

It runs in one writer transaction (the ledger's append lock), so the watermark and
the derived rows always move together.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, exists, select, update

from ledger import decode_leaf
from ledger._schema import entries
from ledger._store import Store
from reconcile import _tables as t
from reconcile._units import epoch_day, fen

CHUNK = 5000
MAX_CORRECTION_CHAIN = 64

SETTLES: dict[str, str] = {
    "collection": "contribution_assessment",
    "payment": "benefit_payment",
    "refund": "refund",
    "transfer": "transfer_out",
}
"""Which business event kind each finance movement kind settles (INTERCHANGE table)."""

MONEY_EVENTS = frozenset(SETTLES.values())
DOMAINS = ("business", "finance", "archive")


class _Batch:
    """Rows decoded from one chunk of entries, per derived table."""

    def __init__(self) -> None:
        self.records: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.movements: list[tuple[Any, ...]] = []
        self.allocations: list[tuple[Any, ...]] = []
        self.vouchers: list[tuple[Any, ...]] = []
        self.refs: list[tuple[Any, ...]] = []

    def add(self, seq: int, rec: dict[str, Any]) -> None:
        domain, kind = str(rec["type"]).split(".", 1)
        rid = str(rec["id"])
        occurred = str(rec["occurred_at"])
        occurred_day = epoch_day(occurred)
        self.records.append((seq, domain, kind, rid, str(rec["region"]), occurred, occurred_day,
                             rec.get("corrects"), False, rid))
        if domain == "business" and kind in MONEY_EVENTS:
            due = epoch_day(rec["due_date"]) if "due_date" in rec else None
            party = rec.get("employer_party") or rec.get("payer_id")
            self.events.append((seq, rid, kind, fen(rec["amount"]), due,
                                occurred_day if due is None else due, party,
                                rec.get("person_id"), rec.get("account"), rec.get("insurance"),
                                rec.get("period")))
        elif domain == "finance":
            allocs = rec.get("allocations") or []
            self.movements.append((seq, rid, kind, SETTLES.get(kind), fen(rec["amount"]),
                                   epoch_day(rec["value_date"]), str(rec["bank_ref"]),
                                   rec.get("payer_id"), rec.get("payee_account"),
                                   rec.get("fund_account"), rec.get("returns"), bool(allocs)))
            for pos, a in enumerate(allocs):
                self.allocations.append((seq, pos, rid, str(a["event"]), fen(a["amount"])))
        elif domain == "archive":
            amount = rec.get("amount")
            self.vouchers.append((seq, rid, kind, None if amount is None else fen(amount)))
            for ref in rec.get("refs") or []:
                self.refs.append((seq, str(ref), rid))

    def write(self, store: Store, conn: Connection) -> None:
        for table, rows in (
            (t.records, self.records), (t.events, self.events), (t.movements, self.movements),
            (t.allocations, self.allocations), (t.vouchers, self.vouchers),
            (t.voucher_refs, self.refs),
        ):
            store.copy_rows(conn, table.name, [c.name for c in table.columns], rows)


def refresh(store: Store) -> tuple[int, int]:
    """Decode entries above the watermark into the derived tables.

    Args:
        store: the ledger's store (migrated to revision 0002 or later).

    Returns:
        ``(decoded, size)``: how many entries were decoded now, and the ledger size
        (the new watermark).
    """
    e = entries.c
    decoded = 0
    with store.writer() as conn:
        start = int(store.get_meta(conn, t.WATERMARK_KEY) or 0)
        size = store.head(conn)[0]
        last = start - 1
        while last + 1 < size:
            rows = conn.execute(
                select(e.seq, e.leaf).where(e.seq > last, e.seq < size, e.domain.in_(DOMAINS))
                .order_by(e.seq).limit(CHUNK)
            ).all()
            if not rows:
                break
            batch = _Batch()
            for seq, leaf in rows:
                batch.add(int(seq), decode_leaf(bytes(leaf)).record)
            batch.write(store, conn)
            decoded += len(rows)
            last = int(rows[-1][0])
        if decoded:
            _resolve_corrections(conn)
        if size != start:
            store.set_meta(conn, t.WATERMARK_KEY, str(size))
    return decoded, size


def _resolve_corrections(conn: Connection) -> None:
    """Mark superseded records and point every record at its latest version (set-based)."""
    r, r2 = t.records, t.records.alias("r2")
    corrected_by = exists().where(r2.c.domain == r.c.domain, r2.c.corrects == r.c.record_id)
    conn.execute(update(r).where(r.c.superseded.is_(False), corrected_by).values(superseded=True))
    successor = (
        select(r2.c.record_id).where(r2.c.domain == r.c.domain, r2.c.corrects == r.c.current_id)
        .order_by(r2.c.seq.desc()).limit(1).scalar_subquery()
    )
    has_successor = exists().where(r2.c.domain == r.c.domain, r2.c.corrects == r.c.current_id)
    for _ in range(MAX_CORRECTION_CHAIN):  # one step along every chain per statement
        if conn.execute(update(r).where(has_successor).values(current_id=successor)).rowcount == 0:
            break
