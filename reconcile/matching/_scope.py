"""Look-ups over the derived record tables for a proof bundle's scope (FORMAT.md §12.2).

Which entries hold given record ids, the records of a month, of a person's pseudonym, and
the records naming given ids (allocating movements, referring vouchers, corrections).
They read the reconciler's derived tables (``bfa reconcile`` and ingest keep them), so
they select; every entry they select is then read from the ledger and proven.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import Connection, select

from reconcile.matching import _tables as t
from reconcile.matching._refresh import MONEY_EVENTS, PERSON_KINDS

_CHUNK = 500


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def seqs_of_ids(conn: Connection, ids: Iterable[str]) -> tuple[set[int], set[str]]:
    """The entries of records with these ids (every domain, superseded versions too) and
    the ids no record has."""
    r = t.records.c
    seqs: set[int] = set()
    found: set[str] = set()
    wanted = sorted(set(ids))
    for chunk in _chunks(wanted):
        for seq, rid in conn.execute(select(r.seq, r.record_id).where(r.record_id.in_(chunk))):
            seqs.add(int(seq))
            found.add(str(rid))
    return seqs, set(wanted) - found


def seqs_of_month(conn: Connection, month: str) -> Iterator[int]:
    """Records that occurred in ``month`` (``YYYY-MM`` of ``occurred_at`` as sent) and
    business events for that ``period``, as read (one may come twice; none is held)."""
    r, e = t.records.c, t.events.c
    for q in conn.execute(select(r.seq).where(r.occurred_at.like(f"{month}-%"))).scalars():
        yield int(q)
    for q in conn.execute(select(e.seq).where(e.period == month)).scalars():
        yield int(q)


def seqs_of_party(conn: Connection, pseudonym: str) -> set[int]:
    """The records the derived tables index by a person's pseudonym: money events,
    approvals and terminations (``person_id``), and the movements they paid
    (``payer_id``). Business records of the other kinds (:func:`unindexed_business`)
    must be read to be found."""
    e, p, m = t.events.c, t.person_events.c, t.movements.c
    seqs = {int(q) for q in conn.execute(select(e.seq).where(e.person == pseudonym)).scalars()}
    seqs |= {int(q) for q in conn.execute(select(p.seq).where(p.person == pseudonym))
             .scalars()}
    return seqs | {int(q) for q in conn.execute(select(m.seq).where(m.payer == pseudonym))
                   .scalars()}


def unindexed_business(conn: Connection) -> Iterator[list[int]]:
    """Chunks of the ``seq`` of business records whose person no derived table indexes
    (enrolments, transfers in, other kinds without an amount)."""
    r = t.records.c
    indexed = sorted(MONEY_EVENTS | PERSON_KINDS)
    chunk: list[int] = []
    for q in conn.execute(select(r.seq).where(r.domain == "business", r.kind.not_in(indexed))
                          .order_by(r.seq)).scalars():
        chunk.append(int(q))
        if len(chunk) >= _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def matched_with(conn: Connection, seqs: Iterable[int]) -> set[int]:
    """The partners of these entries in the heuristic matches the last run stored (an
    unallocated movement and the one open event it settles)."""
    m = t.matched.c
    wanted = sorted(set(seqs))
    out: set[int] = set()
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i:i + _CHUNK]
        out |= {int(q) for q in conn.execute(select(m.e_seq).where(m.m_seq.in_(chunk)))
                .scalars()}
        out |= {int(q) for q in conn.execute(select(m.m_seq).where(m.e_seq.in_(chunk)))
                .scalars()}
    return out


def vouchers_naming(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Ids of the voucher records that refer to one of ``ids``."""
    v = t.voucher_refs.c
    out: set[str] = set()
    for chunk in _chunks(list(ids)):
        out |= {str(x) for x in conn.execute(
            select(v.voucher_id).where(v.ref_id.in_(chunk))).scalars()}
    return out


def ids_naming(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Ids of the records that name one of ``ids``: movements allocating to it, vouchers
    referring to it, its corrections."""
    out: set[str] = set()
    a, v, r = t.allocations.c, t.voucher_refs.c, t.records.c
    for chunk in _chunks(list(ids)):
        out |= {str(x) for x in conn.execute(
            select(a.movement_id).where(a.event_id.in_(chunk))).scalars()}
        out |= {str(x) for x in conn.execute(
            select(v.voucher_id).where(v.ref_id.in_(chunk))).scalars()}
        out |= {str(x) for x in conn.execute(
            select(r.record_id).where(r.corrects.in_(chunk))).scalars()}
    return out
