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
from reconcile._rules import MONEY_KINDS, MOVEMENT_KINDS
from reconcile._units import epoch_day, fen

CHUNK = 5000
MAX_CORRECTION_CHAIN = 64

SETTLES: dict[str, str] = {
    "collection": "contribution_assessment",
    "payment": "benefit_payment",
    "refund": "refund",
    "transfer": "transfer_out",
}
"""Which business event kind each finance movement kind settles by default (the
``settles`` column; matching follows the run's rules, :meth:`Rules.settles`)."""

MONEY_EVENTS = MONEY_KINDS
PERSON_KINDS = frozenset({"benefit_approval", "termination"})
DOMAINS = ("business", "finance", "archive")


def _first_uncovered(effective_date: str) -> str:
    """The first period (``YYYY-MM``) a termination effective on this date no longer
    covers: its own month when it takes effect on the 1st, else the next month."""
    year, month, day = (int(x) for x in effective_date[:10].split("-"))
    if day != 1:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return f"{year:04d}-{month:02d}"


class _Batch:
    """Rows decoded from one chunk of entries, per derived table."""

    def __init__(self) -> None:
        self.records: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.movements: list[tuple[Any, ...]] = []
        self.allocations: list[tuple[Any, ...]] = []
        self.vouchers: list[tuple[Any, ...]] = []
        self.refs: list[tuple[Any, ...]] = []
        self.persons: list[tuple[Any, ...]] = []

    def add(self, seq: int, rec: dict[str, Any], entry_hash: str) -> None:
        domain, kind = str(rec["type"]).split(".", 1)
        rid = str(rec["id"])
        occurred = str(rec["occurred_at"])
        occurred_day = epoch_day(occurred)
        self.records.append((seq, domain, kind, rid, str(rec["region"]), occurred, occurred_day,
                             rec.get("corrects"), False, rid, entry_hash))
        if domain == "business" and kind in PERSON_KINDS:
            eff = rec.get("effective_date")
            period = (rec.get("start_period") if kind == "benefit_approval"
                      else None if eff is None else _first_uncovered(str(eff)))
            self.persons.append((seq, rid, kind, str(rec["person_id"]), str(rec["insurance"]),
                                 rec.get("account"), period,
                                 None if eff is None else epoch_day(str(eff))))
        elif domain == "business" and kind in MONEY_EVENTS and "amount" in rec:
            due = epoch_day(rec["due_date"]) if "due_date" in rec else None
            party = rec.get("employer_party") or rec.get("payer_id")
            self.events.append((seq, rid, kind, fen(rec["amount"]), due,
                                occurred_day if due is None else due, party,
                                rec.get("person_id"), rec.get("account"), rec.get("insurance"),
                                rec.get("period")))
        elif domain == "finance" and kind in MOVEMENT_KINDS:
            allocs = rec.get("allocations") or []
            value_date = str(rec["value_date"])
            self.movements.append((seq, rid, kind, SETTLES.get(kind), fen(rec["amount"]),
                                   epoch_day(value_date), value_date[:7], str(rec["bank_ref"]),
                                   rec.get("payer_id"), rec.get("payee_account"),
                                   rec.get("fund_account"), rec.get("from_account"),
                                   rec.get("to_account"), rec.get("returns"), bool(allocs)))
            for pos, a in enumerate(allocs):
                self.allocations.append((seq, pos, rid, str(a["event"]), fen(a["amount"])))
        elif domain == "archive":
            amount = rec.get("amount")
            self.vouchers.append((seq, rid, kind, None if amount is None else fen(amount)))
            for ref in dict.fromkeys(rec.get("refs") or []):
                self.refs.append((seq, str(ref), rid))

    def write(self, store: Store, conn: Connection) -> None:
        for table, rows in (
            (t.records, self.records), (t.events, self.events), (t.movements, self.movements),
            (t.allocations, self.allocations), (t.vouchers, self.vouchers),
            (t.voucher_refs, self.refs), (t.person_events, self.persons),
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
                select(e.seq, e.leaf, e.entry_hash)
                .where(e.seq > last, e.seq < size, e.domain.in_(DOMAINS))
                .order_by(e.seq).limit(CHUNK)
            ).all()
            if not rows:
                break
            batch = _Batch()
            for seq, leaf, entry_hash in rows:
                batch.add(int(seq), decode_leaf(bytes(leaf)).record, bytes(entry_hash).hex())
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
