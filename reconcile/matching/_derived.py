"""The check of the reconciler's derived tables against the ledger's entries.

This module owns one question: do the ``rc_*`` record tables (``rc_records``,
``rc_events``, ``rc_movements``, ``rc_allocations``, ``rc_vouchers``,
``rc_voucher_refs``, ``rc_person_events``) and ``rc_dirty`` hold exactly what the
entries give? The application role may write them (FORMAT.md §8.3), and what they hold
decides what a reconciliation finds and what ``bfa balance`` states; so ``bfa verify``
checks every row (:func:`check_all`), the nightly a rotating share plus what its run
is about to use, a run what it is about to use (:func:`check_spans`), ``bfa balance``
the rows it states (:func:`check_seqs`). ADR 0032 gives the design; FORMAT.md §6.7 and
§8.3 what is checked.

A check works on the entries of one chunk of ``seq`` at a time, in ``seq`` order, so its
memory does not grow with the ledger:

- each entry's *own* rows come from its leaf through the refresh's own decoder
  (:class:`reconcile.matching._refresh._Batch`, the code that wrote them), every column
  that the record alone gives;
- the columns that follow from the set of entries — ``superseded`` (a record of its
  domain ``corrects`` it, or it is a withdrawal), ``current_id`` / ``current_seq`` (the
  latest version: from a record, step to the record with the highest ``seq`` that
  corrects its current version, until none does), ``rc_allocations.event_seq`` (the
  current version of the business record ``event_id`` names, when that version is a
  money event), ``rc_voucher_refs.business_seq`` / ``finance_seq`` (the current version
  of the record ``ref_id`` names in each domain) and the copies of ``superseded`` — are
  computed from the ``corrects`` and ``record_id`` columns of the stored ``rc_records``
  rows, read by their indexes. Those columns are the rows' own, which the check of
  their own entries compares with the leaves: a full check sees every one, and a
  rotation sees every one within its period;
- the stored rows of the chunk are read by primary key and compared with the expected
  ones, column by column: a row missing, a row no entry gives (planted) and a column
  that differs are each a :class:`Mismatch`.

Only entries below the watermark (``meta.reconcile_seq``) are derived; a row keyed at or
above it, or below 0, is planted. :func:`rebuild` empties the tables and derives them again
from the entries (what a run does when a check found a difference).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_, delete, or_, select

from ledger import FormatError, Store, entries, leaf_record
from reconcile.matching import _tables as t
from reconcile.matching._gc import collect_young
from reconcile.matching._refresh import DOMAINS, MAX_CORRECTION_CHAIN, _Batch

CHUNK = 1000
"""Entries per chunk: the rows of one chunk are held in memory at a time (a chunk of
5,000 held 25 MB of tuples; 1,000 costs no measurable time more)."""

MAX_LISTED = 100
"""Differences kept one by one; more are only counted."""

DERIVED: tuple[Table, ...] = (t.records, t.events, t.movements, t.allocations, t.vouchers,
                              t.voucher_refs, t.person_events)
"""The tables whose rows each entry gives, in the order they are checked."""

_KEY_OF: dict[str, tuple[str, ...]] = {table.name: tuple(c.name for c in table.primary_key)
                                       for table in DERIVED}
_ID_OF: dict[str, str] = {"rc_records": "record_id", "rc_events": "record_id",
                          "rc_movements": "record_id", "rc_allocations": "movement_id",
                          "rc_vouchers": "record_id", "rc_voucher_refs": "voucher_id",
                          "rc_person_events": "record_id"}

Pair = tuple[str, str]
"""``(domain, record id)``."""


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One row of a derived table that differs from what the entries give."""

    table: str
    seq: int
    """The entry the row belongs to (``movement_seq``, ``voucher_seq`` for the link tables)."""
    record: str
    """The record id, with the link's position or ref for ``rc_allocations`` and
    ``rc_voucher_refs`` (``COL-1 [0]``, ``AV-1 [CA-1]``)."""
    what: str
    """``differs``, ``missing`` (the entry gives the row, the table lacks it),
    ``planted`` (a row no entry gives) or ``undecodable`` (the entry gives no rows)."""
    column: str | None = None
    stored: Any = None
    expected: Any = None

    def message(self) -> str:
        """One sentence naming the table, the entry, the record and the column."""
        where = f"derived table {self.table}: the row of entry {self.seq} (record {self.record})"
        if self.what == "differs":
            return (f"{where} has {self.column} = {_shown(self.stored)}, but the entries give "
                    f"{_shown(self.expected)}")
        if self.what == "missing":
            return f"{where} is missing"
        if self.what == "planted":
            return (f"derived table {self.table}: the row for entry {self.seq} (record "
                    f"{self.record}) is given by no entry")
        return (f"entry {self.seq} (record {self.record}) does not decode into the reconciler's "
                f"rows: {_shown(self.expected)}")


def _shown(value: Any) -> str:
    return "NULL" if value is None else repr(value) if isinstance(value, str) else str(value)


@dataclass
class Checked:
    """What a check found: the first :data:`MAX_LISTED` differences, in ``seq`` order
    per chunk, and how many more there were."""

    mismatches: list[Mismatch] = field(default_factory=list)
    more: int = 0
    entries: int = 0
    """Entries whose rows were compared."""

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def add(self, m: Mismatch) -> None:
        if len(self.mismatches) < MAX_LISTED:
            self.mismatches.append(m)
        else:
            self.more += 1

    def messages(self) -> list[str]:
        """One message per difference kept, and one that counts the rest."""
        out = [m.message() for m in self.mismatches]
        if self.more:
            out.append(f"… and {self.more} more rows of the derived tables differ from the "
                      "entries")
        return out


# -- the entry points -----------------------------------------------------------------------
def watermark(store: Store, conn: Connection) -> int:
    """The derived tables' watermark: entries below it are derived (``meta.reconcile_seq``,
    at most the ledger's size)."""
    text = store.get_meta(conn, t.WATERMARK_KEY) or "0"
    mark = int(text) if text.isascii() and text.isdigit() and len(text) < 19 else 0
    return min(mark, store.head(conn)[0])


def check_all(store: Store, conn: Connection,
              progress: Callable[[int], None] | None = None) -> Checked:
    """Every row of every derived table against the entries (``bfa verify``), and
    ``rc_dirty`` (:func:`check_dirty`); ``progress`` is called with the entries done."""
    mark = watermark(store, conn)
    out = check_spans(store, conn, [(0, mark)], progress=progress)
    check_planted(conn, mark, out)
    check_dirty(store, conn, out)
    return out


def check_spans(store: Store, conn: Connection, spans: Sequence[tuple[int, int]],
                seqs: Iterable[int] = (), *, out: Checked | None = None,
                progress: Callable[[int], None] | None = None) -> Checked:
    """The rows of the entries in the half-open ``seq`` ranges ``spans`` (chunk by
    chunk) and of the entries ``seqs``, against the entries."""
    out = out if out is not None else Checked()
    mark = watermark(store, conn)
    done = 0
    for lo, hi in spans:
        for start in range(max(lo, 0), min(hi, mark), CHUNK):
            end = min(start + CHUNK, hi, mark)

            def within(col: ColumnElement[int], a: int = start, b: int = end
                       ) -> ColumnElement[bool]:
                return and_(col >= a, col < b)

            out.entries += _check_chunk(conn, within, mark, out)
            collect_young()
            done += end - start
            if progress is not None:
                progress(done)
    listed = sorted({s for s in seqs if s >= 0})
    for i in range(0, len(listed), 500):
        part = listed[i:i + 500]

        def among(col: ColumnElement[int], p: list[int] = part) -> ColumnElement[bool]:
            return col.in_(p)

        out.entries += _check_chunk(conn, among, mark, out)
    return out


def check_seqs(store: Store, conn: Connection, seqs: Iterable[int]) -> Checked:
    """The rows of the entries ``seqs`` (those a statement uses), against the entries."""
    return check_spans(store, conn, (), seqs)


def rotation(start: int, size: int, days: int) -> tuple[int, int]:
    """The slice of ``[0, size)`` one night checks: ``⌈size / days⌉`` entries from
    ``start`` (wrapping), so that ``days`` nights cover every entry; ``(start, length)``,
    ``start`` taken modulo ``size``."""
    if size <= 0 or days <= 0:
        return 0, 0
    return start % size, min(size, math.ceil(size / days))


def spans_of(start: int, length: int, size: int) -> list[tuple[int, int]]:
    """The ranges of a rotation slice (two when it wraps past the end)."""
    if length <= 0 or size <= 0:
        return []
    end = start + length
    return [(start, min(end, size))] + ([(0, end - size)] if end > size else [])


def rebuild(store: Store, conn: Connection) -> None:
    """Empty every ``rc_*`` table and set the watermark to 0 (FORMAT.md §8.3): the next
    refresh derives them again from the entries, and the next run re-checks everything
    (it keeps no stored finding)."""
    for name in t.RC_TABLES:
        conn.execute(delete(t.metadata.tables[name]))
    for key in (t.WATERMARK_KEY, t.RECORDS_KEY):
        store.set_meta(conn, key, "0")


# -- one chunk ------------------------------------------------------------------------------
def _check_chunk(conn: Connection, where: Callable[[ColumnElement[int]], ColumnElement[bool]],
                 mark: int, out: Checked) -> int:
    """Compare the rows of the entries ``where`` selects (below ``mark``) with the stored
    rows of those entries; returns how many entries were read."""
    e = entries.c
    batch = _Batch({}, set())
    n = 0
    for seq, leaf, entry_hash, rid in conn.execute(
            select(e.seq, e.leaf, e.entry_hash, e.record_id)
            .where(where(e.seq), e.seq < mark, e.domain.in_(DOMAINS)).order_by(e.seq)):
        n += 1
        try:
            batch.add(int(seq), leaf_record(bytes(leaf)), bytes(entry_hash).hex())
        except (FormatError, KeyError, TypeError, ValueError, AttributeError) as err:
            _drop(batch, int(seq))
            out.add(Mismatch("entries", int(seq), str(rid), "undecodable",
                             expected=str(err)))
    expected = _complete(conn, batch, mark)
    for table in DERIVED:
        key = _KEY_OF[table.name]
        first = table.c[key[0]]
        stored = {tuple(row[:len(key)]): tuple(row) for row in conn.execute(
            select(*(table.c[c] for c in key),
                   *(c for c in table.columns if c.name not in key))
            .where(where(first)))}
        _compare(table, expected[table.name], stored, out)
    return n


def _drop(batch: _Batch, seq: int) -> None:
    """Take out whatever rows an entry that failed to decode left in ``batch``."""
    for name in ("records", "events", "movements", "allocations", "vouchers", "refs",
                 "persons"):
        rows: list[tuple[Any, ...]] = getattr(batch, name)
        rows[:] = [r for r in rows if r[0] != seq]


def _compare(table: Table, expected: dict[tuple[Any, ...], tuple[Any, ...]],
             stored: dict[tuple[Any, ...], tuple[Any, ...]], out: Checked) -> None:
    key = _KEY_OF[table.name]
    names = [*key, *(c.name for c in table.columns if c.name not in key)]
    id_at = names.index(_ID_OF[table.name])
    for k in sorted(expected.keys() | stored.keys(),
                    key=lambda x: (int(x[0]), tuple(map(str, x[1:])))):
        want, got = expected.get(k), stored.get(k)
        row = want if want is not None else got
        assert row is not None
        record = str(row[id_at]) + (f" [{k[1]}]" if len(key) > 1 else "")
        if got is None:
            out.add(Mismatch(table.name, int(k[0]), record, "missing"))
        elif want is None:
            out.add(Mismatch(table.name, int(k[0]), record, "planted"))
        else:
            for name, a, b in zip(names, got, want, strict=True):
                if not _same(a, b):
                    out.add(Mismatch(table.name, int(k[0]), record, "differs", name, a, b))


def _same(a: Any, b: Any) -> bool:
    """Equal as stored values: the same number (a boolean is 0 or 1), the same text, or
    both NULL; text never equals a number."""
    if a is None or b is None:
        return a is b
    return bool(a == b) and (type(a) is type(b) or (isinstance(a, int) and isinstance(b, int)))


def check_planted(conn: Connection, mark: int, out: Checked) -> None:
    """Rows keyed below 0 or at or above the watermark: no refresh wrote them."""
    for table in DERIVED:
        first = table.c[_KEY_OF[table.name][0]]
        ident = table.c[_ID_OF[table.name]]
        extra = table.c[_KEY_OF[table.name][1]] if len(_KEY_OF[table.name]) > 1 else None
        cols = [first, ident] + ([extra] if extra is not None else [])
        for row in conn.execute(select(*cols).where(or_(first < 0, first >= mark))
                                .order_by(first).limit(MAX_LISTED + 1)):
            record = str(row[1]) + (f" [{row[2]}]" if extra is not None else "")
            # SQLite keeps whatever is written: a key that is no integer names no entry
            seq = row[0] if isinstance(row[0], int) else -1
            out.add(Mismatch(table.name, seq, record, "planted"))


# -- the columns that follow from the set of entries ----------------------------------------
class _Versions:
    """Look-ups of the correction chains in the stored ``rc_records`` (their own columns
    ``domain``, ``record_id``, ``corrects``, ``seq``), below the watermark."""

    def __init__(self, conn: Connection, mark: int) -> None:
        self.conn = conn
        self.mark = mark

    def latest_correctors(self, pairs: Iterable[Pair], below: int | None = None
                          ) -> dict[Pair, tuple[int, str]]:
        """For each ``(domain, id)``: ``(seq, record id)`` of the record with the highest
        ``seq`` (below ``below``, default the watermark) whose ``corrects`` is ``id`` in
        ``domain``."""
        r = t.records.c
        limit = self.mark if below is None else below
        out: dict[Pair, tuple[int, str]] = {}
        for domain, ids in _by_domain(pairs).items():
            for corrects, seq, rid in Store.select_by_ids(
                    self.conn, r.corrects, ids, (r.corrects, r.seq, r.record_id),
                    (r.domain == domain, r.corrects.is_not(None), r.seq < limit)):
                k = (domain, str(corrects))
                if k not in out or int(seq) > out[k][0]:
                    out[k] = (int(seq), str(rid))
        return out

    def lookup(self, pairs: Iterable[Pair]) -> dict[Pair, tuple[int, str | None]]:
        """``(seq, corrects)`` of the record of each ``(domain, id)`` that has one."""
        r = t.records.c
        out: dict[Pair, tuple[int, str | None]] = {}
        for domain, ids in _by_domain(pairs).items():
            for rid, seq, corrects in Store.select_by_ids(
                    self.conn, r.record_id, ids, (r.record_id, r.seq, r.corrects),
                    (r.domain == domain, r.seq < self.mark)):
                out[(domain, str(rid))] = (int(seq), None if corrects is None else str(corrects))
        return out

    def seqs(self, pairs: Iterable[Pair]) -> dict[Pair, int]:
        """The ``seq`` of the record of each ``(domain, id)`` that has one."""
        return {p: seq for p, (seq, _c) in self.lookup(pairs).items()}

    def current(self, start: dict[Pair, int]) -> dict[Pair, tuple[str, int]]:
        """``(current_id, current_seq)`` of each record ``(domain, id) -> seq``: step to the
        latest record correcting the current version until none does (at most
        :data:`MAX_CORRECTION_CHAIN` steps, as the refresh)."""
        cur = {p: (p[1], s) for p, s in start.items()}
        todo = set(cur)
        for _step in range(MAX_CORRECTION_CHAIN):
            if not todo:
                break
            nxt = self.latest_correctors({(p[0], cur[p][0]) for p in todo})
            moved = set()
            for p in todo:
                hit = nxt.get((p[0], cur[p][0]))
                if hit is not None:
                    cur[p] = (hit[1], hit[0])
                    moved.add(p)
            todo = moved
        return cur


def _by_domain(pairs: Iterable[Pair]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for domain, rid in pairs:
        out.setdefault(domain, set()).add(rid)
    return {d: sorted(ids) for d, ids in sorted(out.items())}


Rows = dict[tuple[Any, ...], tuple[Any, ...]]


def _complete(conn: Connection, batch: _Batch, mark: int) -> dict[str, Rows]:
    """The chunk's expected rows by table and primary key, with the columns that follow
    from the set of entries filled in (see the module docstring)."""
    v = _Versions(conn, mark)
    own = {(str(r[1]), str(r[3])): int(r[0]) for r in batch.records}
    corrected = v.latest_correctors(own)
    current = v.current(own)
    superseded: dict[int, bool] = {}
    records: Rows = {}
    for r in batch.records:
        pair = (str(r[1]), str(r[3]))
        gone = bool(r[8]) or pair in corrected
        superseded[int(r[0])] = gone
        cid, cseq = current[pair]
        records[(r[0],)] = (r[0], *r[1:8], gone, cid, r[10], cseq)
    named = ({("business", str(a[3])) for a in batch.allocations}
             | {(d, str(ref[1])) for ref in batch.refs for d in ("business", "finance")})
    targets = v.current(v.seqs(named))
    ev = t.events.c
    target_seqs = sorted({s for _i, s in targets.values()})
    events = {int(s) for i in range(0, len(target_seqs), 500) for s in conn.execute(
        select(ev.seq).where(ev.seq.in_(target_seqs[i:i + 500]), ev.seq < mark)).scalars()}

    def event_seq(rid: str) -> int | None:
        hit = targets.get(("business", rid))
        return hit[1] if hit is not None and hit[1] in events else None

    def cur_seq(domain: str, rid: str) -> int | None:
        hit = targets.get((domain, rid))
        return None if hit is None else hit[1]

    def sup(seq: Any) -> bool:
        return superseded.get(int(seq), False)

    return {
        "rc_records": records,
        "rc_events": {(e[0],): (*e[:11], sup(e[0]), *e[12:]) for e in batch.events},
        "rc_movements": {(m[0],): (*m[:15], sup(m[0]), *m[16:]) for m in batch.movements},
        "rc_allocations": {(a[0], a[1]): (*a[:5], event_seq(str(a[3])), a[6], a[7], sup(a[0]))
                           for a in batch.allocations},
        "rc_vouchers": {(x[0],): (*x[:4], sup(x[0]), x[5]) for x in batch.vouchers},
        "rc_voucher_refs": {(x[0], x[1]): (*x[:3], cur_seq("business", str(x[1])),
                                           cur_seq("finance", str(x[1])))
                            for x in batch.refs},
        "rc_person_events": {(p[0],): (*p[:8], sup(p[0]), *p[9:]) for p in batch.persons},
    }


# -- rc_dirty ---------------------------------------------------------------------------------
def check_dirty(store: Store, conn: Connection, out: Checked) -> None:
    """``rc_dirty`` against the entries, below the last run's ``checked`` (``C``).

    A row below ``C`` must be there exactly for each record below ``C`` whose current
    version lies at or above ``C`` (a correction since the last run reached it), with
    ``was_current`` true exactly when the record is superseded now but was not at ``C``
    (no record below ``C`` corrects it and it is no withdrawal). Rows at or above ``C``
    are not checked: no use of the table reads them (a run re-checks every record from
    ``C`` on anyway). Nothing is checked before the first run, nor when the next run
    will keep no stored state (:func:`reconcile.matching._state.state_base` is None)."""
    from reconcile.matching._state import state_base

    base = state_base(store, conn)
    if base is None:
        return
    c, mark = base.checked, watermark(store, conn)
    v = _Versions(conn, mark)
    r = t.records.c
    # the records below C that the corrections since C reach through ``corrects`` (a
    # correction at or above C that corrects another one is itself in the first step)
    reached: dict[Pair, int] = {}
    step: set[Pair] = {(str(d), str(x)) for d, x in conn.execute(
        select(r.domain, r.corrects).where(r.seq >= c, r.seq < mark, r.corrects.is_not(None)))}
    for _hop in range(MAX_CORRECTION_CHAIN):
        nxt: set[Pair] = set()
        for pair, (seq, corrects) in v.lookup(step).items():
            if seq < c and pair not in reached:
                reached[pair] = seq
                if corrects is not None:
                    nxt.add((pair[0], corrects))
        step = nxt - set(reached)
        if not step:
            break
    current = v.current(reached)
    required = {seq: pair for pair, seq in reached.items() if current[pair][1] >= c}
    before = v.latest_correctors({required[s] for s in required}, below=c)
    withdrawn = _withdrawn(conn, sorted(required))
    want = {s: not withdrawn.get(s, False) and required[s] not in before for s in required}
    d = t.dirty.c
    have = {int(s): bool(w) for s, w in conn.execute(
        select(d.seq, d.was_current).where(d.seq < c))}
    ids = {s: p[1] for s, p in required.items()}
    for s in sorted(want.keys() | have.keys()):
        record = ids.get(s, "?")
        if s not in have:
            out.add(Mismatch("rc_dirty", s, record, "missing"))
        elif s not in want:
            out.add(Mismatch("rc_dirty", s, record, "planted"))
        elif have[s] != want[s]:
            out.add(Mismatch("rc_dirty", s, record, "differs", "was_current", have[s], want[s]))


def _withdrawn(conn: Connection, seqs: list[int]) -> dict[int, bool]:
    """Whether the record of each entry is a withdrawal (红冲), from its leaf."""
    e = entries.c
    out: dict[int, bool] = {}
    for i in range(0, len(seqs), 500):
        for seq, leaf in conn.execute(select(e.seq, e.leaf).where(e.seq.in_(seqs[i:i + 500]))):
            try:
                out[int(seq)] = "withdrawn" in leaf_record(bytes(leaf))
            except FormatError:
                out[int(seq)] = False
    return out


__all__ = ["CHUNK", "DERIVED", "MAX_LISTED", "Checked", "Mismatch", "check_all",
           "check_dirty", "check_planted", "check_seqs", "check_spans", "rebuild", "rotation",
           "spans_of", "watermark"]
