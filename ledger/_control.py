"""Control records: the ledger's own entries, appended and read back without trusting rows.

The application role may write every working table and ``meta`` (FORMAT.md §8.3), so
anything the product must believe about its own past — a break's workflow state, the
findings a reconciliation stored, its watermark — is kept as a ``control.*`` entry, and
read back here from the entries themselves:

- :func:`read_entries` looks records up by id through the unique index
  ``(record_id, domain)`` and checks each row against its leaf (sequence number, entry
  hash, domain and id), so a swapped or rewritten row is an :class:`IntegrityError`,
  never a wrong answer;
- :func:`latest_numbered` finds the last of a series of records numbered ``<prefix>1``,
  ``<prefix>2``, … in O(log n) index probes, without trusting a stored pointer (a hint
  is only where the search starts);
- :func:`append_control` appends records that hold no personal data, without the
  ledger secret (FORMAT.md §2.5);
- :func:`ingested_by` finds who ingested records, from the ``control.ingest`` entry that
  closes each batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, select

from ledger import _schema as s
from ledger._append import Appender
from ledger._entry import Entry, decode_leaf, entry_hash
from ledger._errors import FormatError, IntegrityError
from ledger._store import Store
from schemas import gettext as _


def checked_entry(seq: int, leaf: bytes, stored_hash: bytes, domain: str | None,
                  record_id: str | None) -> Entry:
    """The entry of a row, after checking the row against its leaf: the leaf decodes, says
    it is entry ``seq``, hashes to the stored hash and holds the record the row's index
    columns name. Anything else is an :class:`IntegrityError` (run ``bfa verify``)."""
    try:
        entry = decode_leaf(leaf)
    except FormatError as e:  # written by us, so not bad input: the row was changed
        raise IntegrityError(_("entry {seq}: stored leaf is not well formed ({reason}); run "
                               "'bfa verify'").format(seq=seq, reason=e)) from e
    if entry.seq != seq or entry_hash(leaf) != stored_hash:
        raise IntegrityError(_("entry {seq}: stored leaf does not match its row (payload "
                               "changed); run 'bfa verify'").format(seq=seq))
    if (domain is not None and entry.domain != domain) or (
            record_id is not None and entry.record_id != record_id):
        raise IntegrityError(
            _("entry {seq}: the row is indexed as {domain}.{record} but its leaf holds "
              "{leaf_domain}.{leaf_record} (index columns changed); run 'bfa verify'").format(
                seq=seq, domain=domain, record=repr(record_id), leaf_domain=entry.domain,
                leaf_record=repr(entry.record_id)))
    return entry


def read_entries(store: Store, conn: Connection, domain: str,
                 ids: Sequence[str]) -> dict[str, Entry]:
    """The entries of ``domain`` whose record id is one of ``ids``, checked against their
    leaves (:func:`checked_entry`); ids the ledger does not hold are absent."""
    return {rid: checked_entry(seq, leaf, h, domain, rid)
            for rid, (seq, leaf, h) in store.entries_by_ids(conn, domain, ids).items()}


def latest_numbered(store: Store, conn: Connection, domain: str, prefix: str,
                    hint: int = 0) -> Entry | None:
    """The last record of the series ``<prefix>1``, ``<prefix>2``, … (each appended only
    after the one before it, so the series has no gap), or None when there is none.

    ``hint`` (any number, e.g. from ``meta``) is where the search starts: a wrong hint
    costs a few more probes, never a wrong answer. Probes go 32 ids at a time."""

    seen: dict[int, Entry | None] = {}

    def probe(numbers: Iterable[int]) -> None:
        wanted = {f"{prefix}{n}": n for n in numbers if n >= 1 and n not in seen}
        found = read_entries(store, conn, domain, list(wanted))
        for rid, n in wanted.items():
            seen[n] = found.get(rid)

    def exists(n: int) -> bool:
        probe([n])
        return n < 1 or seen[n] is not None

    start = max(hint, 1)
    probe(range(start, start + 32))  # usually the hint is right: one query
    if seen[start] is None:
        lo, hi = 0, start  # the hint is too high, or there is nothing
    else:
        lo = start
        while lo + 1 < start + 32 and seen[lo + 1] is not None:
            lo += 1
        hi = lo + 1
        if lo == start + 31:  # the hint is too low: gallop upwards
            step = 32
            while exists(lo + step):
                lo += step
                step *= 2
            hi = lo + step
    while hi - lo > 1:  # the series has no gap: lo exists (or is 0), hi does not
        mid = (lo + hi) // 2
        if exists(mid):
            lo = mid
        else:
            hi = mid
    return seen.get(lo) if lo >= 1 else None


class Ingested(NamedTuple):
    """Who appended a record: the identity of its batch's ``control.ingest`` entry."""

    record_id: str
    domain: str
    seq: int
    """The record's entry."""
    user: str | None
    """None: no ``control.ingest`` entry covers a record appended after batches were first
    recorded — it was written outside ``bfa ingest``, and who did it is unknown."""
    batch_seq: int | None
    """The ``control.ingest`` entry that names ``user``."""


RECORD_DOMAINS = ("business", "finance", "archive")


def control_records(conn: Connection, kind: str, *, after: int = -1,
                    limit: int | None = None, newest_first: bool = False
                    ) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(seq, record)`` of the ``control.<kind>`` entries after ``after``, in ``seq``
    order (``newest_first``: the reverse; through ``ix_entries_control``), each checked
    against its leaf."""
    e = s.entries.c
    q = (select(e.seq, e.leaf, e.entry_hash, e.record_id)
         .where(e.domain == "control", e.kind == kind, e.seq > after)
         .order_by(e.seq.desc() if newest_first else e.seq))
    for seq, leaf, h, rid in conn.execute(q if limit is None else q.limit(limit)):
        yield int(seq), checked_entry(int(seq), bytes(leaf), bytes(h), "control",
                                      str(rid)).record


def ingested_by(store: Store, conn: Connection, record_ids: Sequence[str]) -> list[Ingested]:
    """Who ingested the records with ``record_ids`` (any of the three domains), per
    FORMAT.md §2.5: the first ``control.ingest`` entry after a record's, if its range
    ``first`` … ``first + count - 1`` holds the record. Each entry read is checked against
    its leaf. Records appended before batches were recorded have none; a record after the
    first recorded batch that no batch covers has ``user`` None."""
    out: list[Ingested] = []
    start = first_recorded_batch(conn)
    for domain in RECORD_DOMAINS:
        for rid, entry in read_entries(store, conn, domain, record_ids).items():
            batch = next(control_records(conn, "ingest", after=entry.seq, limit=1), None)
            rec = batch[1] if batch is not None else {}
            first, count = rec.get("first"), rec.get("count")
            if (batch is not None and isinstance(first, int) and isinstance(count, int)
                    and first <= entry.seq < first + count and "user" in rec):
                out.append(Ingested(rid, domain, entry.seq, str(rec["user"]), batch[0]))
            elif start is not None and entry.seq >= start:
                out.append(Ingested(rid, domain, entry.seq, None, None))
    return out


def first_recorded_batch(conn: Connection) -> int | None:
    """``first`` of the ledger's earliest ``control.ingest`` entry: from that entry on,
    every record is covered by one (FORMAT.md §2.5). None before any batch was recorded."""
    batch = next(control_records(conn, "ingest", limit=1), None)
    if batch is None:
        return None
    first = batch[1].get("first")
    return first if isinstance(first, int) else batch[0]


def append_control(store: Store, conn: Connection, records: Iterable[dict[str, Any]],
                   *, at_is_recorded: bool = True) -> list[int]:
    """Append control records (no personal data, so no pseudonyms and no secret) in the
    caller's writer transaction; returns their sequence numbers. With
    ``at_is_recorded`` a record's ``at`` is also its entry's ``recorded_at`` (§2.5)."""
    from ledger._append import now_rfc3339

    app = Appender(store, conn, None)
    seqs = [app.append(r, recorded_at=str(r["at"]) if at_is_recorded and "at" in r
                       else now_rfc3339(), protect=False) for r in records]
    app.flush()
    return seqs


__all__ = [
    "Ingested",
    "append_control",
    "checked_entry",
    "control_records",
    "ingested_by",
    "latest_numbered",
    "read_entries",
]
