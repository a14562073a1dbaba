"""Refresh: decode new ledger entries into the derived ``rc_*`` tables.

This is the only place the reconciler touches records one by one. It reads entries
with ``seq`` at or above the watermark (``meta`` key ``reconcile_seq``) in chunks,
decodes each leaf's record (:func:`ledger.leaf_record`: no re-hashing, ``bfa verify``
vouches for the stored entries), bulk-inserts the rows with
``Store.copy_rows``, then resolves corrections with set-based ``UPDATE`` statements:
a record is *superseded* when a record of its domain ``corrects`` it, and every
record's ``current_id`` follows the chain of corrections to its latest version.

It runs in one writer transaction (the ledger's append lock), so the watermark and
the derived rows always move together. ``bfa ingest`` does the same work as it appends
(:class:`Deriver`, ADR 0018): the records are decoded from the payloads it has just
hashed, in the ingest's transaction, and the refresh of a later run finds nothing new.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, exists, func, select, tuple_, update

from ledger import DutyError, Store, entries, leaf_record
from reconcile.matching import _tables as t
from reconcile.matching._gc import collect_young
from reconcile.matching._rules import MONEY_KINDS, MOVEMENT_KINDS
from reconcile.matching._units import epoch_day, fen
from schemas import gettext

T = TypeVar("T")

CHUNK = 1000
MAX_CORRECTION_CHAIN = 64
MONEY_IDS = 20_000
"""Money events a refresh remembers by id to point allocations of later entries at them
without SQL (:meth:`_Batch.seal`); past this many it forgets them and starts again, so
memory stays flat however many entries one refresh decodes. An allocation whose event it
forgot is resolved by :func:`_resolve_references`, as one naming an older event is."""

SETTLES: dict[str, str] = {
    "collection": "contribution_assessment",
    "payment": "benefit_payment",
    "refund": "refund",
    "transfer": "transfer_out",
}
"""Which business event kind each finance movement kind settles by default (the
``settles`` column; matching follows the run's rules, :meth:`Rules.settles`)."""

MONEY_EVENTS = MONEY_KINDS
PERSON_KINDS = frozenset({"benefit_approval", "termination", "enrollment", "certification"})
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

    def __init__(self, money_ids: dict[str, int], fixes: set[tuple[str, str]]) -> None:
        self.money_ids = money_ids  # business id -> seq of the money events decoded so far
        self.fixes = fixes  # (domain, id) that records decoded so far correct
        self.records: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.movements: list[tuple[Any, ...]] = []
        self.allocations: list[tuple[Any, ...]] = []
        self.vouchers: list[tuple[Any, ...]] = []
        self.refs: list[tuple[Any, ...]] = []
        self.persons: list[tuple[Any, ...]] = []
        self.sealed = False

    def add(self, seq: int, rec: Mapping[str, Any], entry_hash: str) -> None:
        domain, kind = str(rec["type"]).split(".", 1)
        rid = str(rec["id"])
        occurred = str(rec["occurred_at"])
        occurred_day = epoch_day(occurred)
        void = "withdrawn" in rec  # a withdrawal (红冲) never counts: superseded from the start
        self.records.append((seq, domain, kind, rid, str(rec["region"]), occurred, occurred_day,
                             rec.get("corrects"), void, rid, entry_hash, seq))
        if "corrects" in rec:
            self.fixes.add((domain, str(rec["corrects"])))
        if domain == "business" and kind in PERSON_KINDS:
            eff = rec.get("effective_date") or rec.get("certified_on")
            if kind == "benefit_approval":
                period = rec.get("start_period")
            elif kind == "termination":
                period = None if eff is None else _first_uncovered(str(eff))
            else:  # enrolment, certification: the month it takes effect
                period = None if eff is None else str(eff)[:7]
            monthly = rec.get("monthly_amount")
            self.persons.append((seq, rid, kind, str(rec["person_id"]), str(rec["insurance"]),
                                 rec.get("account"), period,
                                 None if eff is None else epoch_day(str(eff)), void,
                                 None if monthly is None else fen(monthly),
                                 str(rec["region"]), occurred_day))
        elif domain == "business" and kind in MONEY_EVENTS and "amount" in rec:
            due = epoch_day(rec["due_date"]) if "due_date" in rec else None
            party = rec.get("employer_party") or rec.get("payer_id")
            if len(self.money_ids) >= MONEY_IDS:
                self.money_ids.clear()
            self.money_ids[rid] = seq
            self.events.append((seq, rid, kind, fen(rec["amount"]), due,
                                occurred_day if due is None else due, party,
                                rec.get("person_id"), rec.get("account"), rec.get("insurance"),
                                rec.get("period"), void, rec.get("benefit"),
                                rec.get("to_region") or rec.get("from_region"),
                                str(rec["region"])))
        elif domain == "finance" and kind in MOVEMENT_KINDS:
            allocs = rec.get("allocations") or []
            value_date = str(rec["value_date"])
            self.movements.append((seq, rid, kind, SETTLES.get(kind), fen(rec["amount"]),
                                   epoch_day(value_date), value_date[:7], str(rec["bank_ref"]),
                                   rec.get("payer_id"), rec.get("payee_account"),
                                   rec.get("fund_account"), rec.get("from_account"),
                                   rec.get("to_account"), rec.get("returns"), bool(allocs), void,
                                   sum(fen(a["amount"]) for a in allocs),
                                   rec.get("to_region")))
            for pos, a in enumerate(allocs):
                self.allocations.append((seq, pos, rid, str(a["event"]), fen(a["amount"]), None,
                                         kind, epoch_day(value_date), void))
        elif domain == "archive":
            amount = rec.get("amount")
            refs = dict.fromkeys(str(ref) for ref in rec.get("refs") or [])
            self.vouchers.append((seq, rid, kind, None if amount is None else fen(amount), void,
                                  len(refs)))
            for ref in refs:
                self.refs.append((seq, ref, rid, None, None))

    def seal(self) -> None:
        """Fix the rows: an allocation naming a money event decoded so far in this
        refresh points at it now; _resolve_references does the rest in SQL (events
        decoded before, and events that a record of this refresh corrects, whatever
        chunk it came in). This relies on a correction never preceding its target in
        the ledger: ingest holds a correction back until the record it names is known
        (ledger/_ingest.py). Later :meth:`add` calls on other batches do not change
        these rows."""
        if not self.sealed:
            ids = self.money_ids
            self.allocations = [(*a[:5], ids.get(a[3]), *a[6:]) for a in self.allocations]
            self.sealed = True

    def write(self, store: Store, conn: Connection) -> None:
        self.seal()
        for table, rows in (
            (t.records, self.records), (t.events, self.events), (t.movements, self.movements),
            (t.allocations, self.allocations), (t.vouchers, self.vouchers),
            (t.voucher_refs, self.refs), (t.person_events, self.persons),
        ):
            store.copy_rows(conn, table.name, [c.name for c in table.columns], rows)


class Deriver:
    """Decodes entries into the derived tables inside one writer transaction.

    Made on a writer connection, it first decodes what lies between the watermark and
    the ledger's head (entries appended without a deriver: the break workflow's, a
    reveal's, anything before an upgrade). Then :meth:`add` takes each entry an
    :class:`~ledger._append.Appender` appends in the same transaction, from the payload
    it has just hashed, so nothing is read back or parsed again (ADR 0018);
    :meth:`finish` resolves corrections and references and moves the watermark to the
    new size. It is the :class:`ledger._append.Deriver` that ``bfa ingest`` passes;
    :func:`refresh` is a deriver with nothing to add.
    """

    def __init__(self, store: Store, conn: Connection) -> None:
        self.store = store
        self.start = int(store.get_meta(conn, t.WATERMARK_KEY) or 0)
        self.money_ids: dict[str, int] = {}
        self.fixes: set[tuple[str, str]] = set()
        self.decoded = 0
        self._catch_up(conn, store.head(conn)[0])
        self.batch = _Batch(self.money_ids, self.fixes)

    def _catch_up(self, conn: Connection, size: int) -> None:
        e = entries.c
        last = self.start - 1
        while last + 1 < size:
            rows = conn.execute(
                select(e.seq, e.leaf, e.entry_hash)
                .where(e.seq > last, e.seq < size, e.domain.in_(DOMAINS))
                .order_by(e.seq).limit(CHUNK)
            ).all()
            if not rows:
                break
            batch = _Batch(self.money_ids, self.fixes)
            for seq, leaf, entry_hash in rows:
                batch.add(int(seq), leaf_record(bytes(leaf)), bytes(entry_hash).hex())
            batch.write(self.store, conn)
            collect_young()
            self.decoded += len(rows)
            last = int(rows[-1][0])

    def add(self, seq: int, payload: Mapping[str, Any], entry_hash: bytes) -> None:
        """One entry just appended in this transaction (entries come in ``seq`` order)."""
        if str(payload["type"]).split(".", 1)[0] in DOMAINS:
            self.batch.add(seq, payload, entry_hash.hex())
            self.decoded += 1

    def detach(self) -> Callable[[Connection], None]:
        """Hand over the rows decoded since the last call: their references to money
        events are fixed now; the returned function writes them, perhaps on the
        appender's worker thread while later entries are added."""
        batch, self.batch = self.batch, _Batch(self.money_ids, self.fixes)
        batch.seal()
        store = self.store
        return lambda conn: batch.write(store, conn)

    def flush(self, conn: Connection) -> None:
        """Write the rows decoded since the last flush."""
        self.detach()(conn)

    def finish(self, conn: Connection, size: int) -> None:
        """Write the rest, resolve corrections and references, move the watermark."""
        self.flush(conn)
        if self.decoded:
            changed = _resolve_corrections(conn, self.start, sorted(self.fixes))
            _resolve_references(conn, self.start, changed,
                                sorted(rid for domain, rid in self.fixes
                                       if domain == "business"))
        if size != self.start:
            self.store.set_meta(conn, t.WATERMARK_KEY, str(size))


def refresh(store: Store) -> tuple[int, int]:
    """Decode entries above the watermark into the derived tables.

    Args:
        store: the ledger's store (migrated to revision 0002 or later).

    Returns:
        ``(decoded, size)``: how many entries were decoded now, and the ledger size
        (the new watermark).
    """
    with store.writer() as conn:
        size = store.head(conn)[0]
        if not store.may(conn, "INSERT", t.records.name):
            _require_current(store, conn, size)
            return 0, size
        deriver = Deriver(store, conn)
        deriver.finish(conn, size)
    return deriver.decoded, size


def _require_current(store: Store, conn: Connection, size: int) -> None:
    """For a role that may only read (an auditor, FORMAT.md §8.3): the derived tables are
    used as the last writer left them, which is current unless records lie above their
    watermark (control entries are not decoded); then :class:`DutyError`."""
    mark = int(store.get_meta(conn, t.WATERMARK_KEY) or 0)
    e = entries.c
    behind = int(conn.execute(select(func.count()).select_from(entries).where(
        e.seq >= mark, e.seq < size, e.domain.in_(DOMAINS))).scalar_one())
    if behind:
        raise DutyError(gettext(
            "the reconciler's tables are {behind} records behind the ledger and this role "
            "may not bring them up to date: a role with the officer or service duty must run "
            "'bfa reconcile' (the nightly does) first").format(behind=behind))


def _resolve_corrections(conn: Connection, start: int,
                         fixes: list[tuple[str, str]]) -> list[int]:
    """Mark superseded records and point records at their latest version (set-based).

    Only what the entries from ``start`` on can change is touched: new records, and
    older records that a new record corrects or whose latest version a new record
    corrects. Older records whose status changed are noted in ``rc_dirty`` for the next
    incremental run (:mod:`reconcile.matching._incremental`). ``fixes``: the ``(domain,
    id)`` pairs the new records correct, collected while decoding them (as value lists: a sub-select
    here would make the database scan every older record on every refresh).
    """
    r, r2 = t.records, t.records.alias("r2")
    corrected_by = exists().where(r2.c.domain == r.c.domain, r2.c.corrects == r.c.record_id)
    changed: set[int] = set()
    conds = [tuple_(r.c.domain, r.c.record_id).in_(part) for part in _chunks(fixes, 500)]
    for cond in [*conds, and_(r.c.seq >= start, corrected_by)]:
        rows = conn.execute(update(r).where(r.c.superseded.is_(False), cond)
                            .values(superseded=True).returning(r.c.seq)).all()
        changed.update(int(row[0]) for row in rows)
    now_superseded = set(changed)
    for part in _chunks(sorted(changed)):
        for table in (t.events, t.movements, t.vouchers, t.person_events):
            conn.execute(update(table).where(table.c.seq.in_(part)).values(superseded=True))
        a = t.allocations
        conn.execute(update(a).where(a.c.movement_seq.in_(part)).values(superseded=True))
    latest = (select(r2.c.record_id, r2.c.seq)
              .where(r2.c.domain == r.c.domain, r2.c.corrects == r.c.current_id)
              .order_by(r2.c.seq.desc()).limit(1))
    values = {"current_id": latest.with_only_columns(r2.c.record_id).scalar_subquery(),
              "current_seq": latest.with_only_columns(r2.c.seq).scalar_subquery()}
    has_successor = exists().where(r2.c.domain == r.c.domain, r2.c.corrects == r.c.current_id)
    for _ in range(MAX_CORRECTION_CHAIN):  # one step along every chain per statement
        moved = [int(row[0]) for row in conn.execute(
            update(r).where(r.c.seq >= start, has_successor).values(values).returning(r.c.seq))]
        for fix in _chunks(fixes, 500):  # older records whose latest version was corrected
            moved += [int(row[0]) for row in conn.execute(
                update(r).where(r.c.seq < start, tuple_(r.c.domain, r.c.current_id).in_(fix))
                .where(has_successor).values(values).returning(r.c.seq))]
        if not moved:
            break
        changed.update(moved)
    old = sorted(s for s in changed if s < start)
    d = t.dirty.c
    for part in _chunks(old):
        known = {int(x) for x in conn.execute(select(d.seq).where(d.seq.in_(part))).scalars()}
        fresh = [{"seq": s, "was_current": s in now_superseded} for s in part if s not in known]
        if fresh:
            conn.execute(t.dirty.insert(), fresh)
        flip = [s for s in part if s in known and s in now_superseded]
        if flip:
            conn.execute(update(t.dirty).where(d.seq.in_(flip)).values(was_current=True))
    return old


def _resolve_references(conn: Connection, start: int, changed: list[int],
                        corrected: list[str]) -> None:
    """Point references at the current version of the record they name: allocations
    (``rc_allocations.event_seq``) and voucher refs (``rc_voucher_refs.business_seq``,
    ``finance_seq``). Touched: the new references, those naming a record that arrived
    now (a forward reference), those naming a record whose latest version changed.

    New allocations that :class:`_Batch` resolved already (the event came in this
    refresh and nothing here corrects it) are left alone; ``corrected``: the business
    ids that records of this refresh correct."""
    r, a, vr = t.records, t.allocations, t.voucher_refs
    for own, name, domain, target in (
        (a.c.movement_seq, a.c.event_id, "business", a.c.event_seq),
        (vr.c.voucher_seq, vr.c.ref_id, "business", vr.c.business_seq),
        (vr.c.voucher_seq, vr.c.ref_id, "finance", vr.c.finance_seq),
    ):
        table = own.table
        named = and_(r.c.domain == domain, r.c.record_id == name)
        if target is a.c.event_seq:  # allocations settle money events only
            named = and_(named, exists().where(t.events.c.seq == r.c.current_seq))
        value = {target.name: r.c.current_seq}
        if target is a.c.event_seq:
            conn.execute(update(table).where(own >= start, target.is_(None), named)
                         .values(value))
            for ids in _chunks(corrected, 500):
                conn.execute(update(table).where(own >= start, name.in_(ids))
                             .values(event_seq=None))
                conn.execute(update(table).where(own >= start, name.in_(ids), named)
                             .values(value))
        else:
            conn.execute(update(table).where(own >= start, named).values(value))
        # older references naming a record that arrived now; the new ones were resolved
        # above (written as "differs", not as "own < start", which SQLite would read as
        # a range over the whole table instead of starting from the new records)
        conn.execute(update(table).where(r.c.seq >= start, named,
                                         target.is_distinct_from(r.c.current_seq))
                     .values(value))
        for part in _chunks(changed):
            if target is a.c.event_seq:  # cleared first: the latest version may be no event
                names = select(r.c.record_id).where(r.c.seq.in_(part), r.c.domain == domain)
                conn.execute(update(table).where(name.in_(names)).values(event_seq=None))
            conn.execute(update(table).where(r.c.seq.in_(part), named).values(value))


def _chunks(items: list[T], size: int = 1000) -> list[list[T]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
