"""Tracing one record across the three domains (``bfa trace``): the "traceable" promise.

:func:`trace` gathers, with a handful of set-based queries over the derived ``rc_*``
tables and the workflow tables:

- the record itself and every version of it (the ``corrects`` chain, both ways);
- for a business event, the movements allocated to it; for a movement, the events its
  allocations name and the returns linked to it (``returns``, both ways); for a voucher,
  the records its ``refs`` name — each with its own versions;
- the vouchers whose ``refs`` name any of those records;
- the breaks naming any of them (from the workflow, so as of the latest reconciliation)
  with their ``control.break`` transitions.

Every item carries its ledger position (``seq``, entry hash) and whether the latest
signed checkpoint covers it (``seq < checkpoint size``), i.e. whether ``bfa prove`` can
prove it now.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, select

from ledger import IntegrityError, Ledger, Store, checkpoints, entries
from reconcile.matching import _tables as t
from reconcile.matching._refresh import DOMAINS, refresh
from reconcile.matching._units import day_date, money
from reconcile.workflow._workflow import (
    Transition,
    break_records,
    break_state,
    present_mismatch,
    read_rows,
    require_honest,
    row_to_state,
    transitions_for,
)
from schemas import gettext as _

ROLE = {"business": "event", "finance": "movement", "archive": "voucher"}


@dataclass(frozen=True, slots=True)
class TraceItem:
    """One record on the trail."""

    role: str
    """``event``, ``movement``, ``voucher`` (or ``control`` for a control entry)."""
    domain: str
    kind: str
    record_id: str
    seq: int
    entry_hash: str
    covered: bool
    subject: bool
    """The record asked for or one of its versions (its ``corrects`` chain)."""
    relation: str
    """How it is linked: ``subject``, ``version of X``, ``settles X``, ``evidences X, Y`` ..."""
    corrects: str | None = None
    superseded: bool = False
    current_id: str | None = None
    amount: str | None = None
    date: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class TraceBreak:
    break_id: str
    code: str
    severity: str
    status: str
    present: bool
    records: tuple[str, ...]
    message: str
    transitions: tuple[Transition, ...]
    text: str = ""
    """The message in the reader's language when the trace was made."""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.break_id, "code": self.code, "severity": self.severity,
                "status": self.status, "present": self.present, "records": list(self.records),
                "message": self.message, "transitions": [x.to_json() for x in self.transitions]}


@dataclass(frozen=True, slots=True)
class Trace:
    """The trail of one record; :meth:`to_json` is ``bfa trace --json``."""

    record_id: str
    domain: str
    ledger_size: int
    checkpoint_size: int
    items: tuple[TraceItem, ...]
    allocations: tuple[dict[str, str], ...]
    breaks: tuple[TraceBreak, ...]
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "record": {"id": self.record_id, "domain": self.domain},
            "ledger_size": self.ledger_size, "checkpoint_size": self.checkpoint_size,
            "items": [i.to_json() for i in self.items], "allocations": list(self.allocations),
            "breaks": [b.to_json() for b in self.breaks], "notes": list(self.notes),
        }


def _in(conn: Connection, col: Any, ids: Iterable[str]) -> Iterator[ColumnElement[bool]]:
    """Conditions that together select ``col`` in ``ids`` (``Store.id_conditions``)."""
    return Store.id_conditions(conn, col, sorted(set(ids)))


class _Gather:
    """The id sets of one trace and the queries that grow them."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.ids: dict[str, set[str]] = {d: set() for d in DOMAINS}
        self.relation: dict[tuple[str, str], list[str]] = {}

    def link(self, domain: str, ids: Iterable[str], relation: str) -> None:
        for i in ids:
            self.ids[domain].add(i)
            rels = self.relation.setdefault((domain, i), [])
            if relation not in rels:
                rels.append(relation)

    def versions(self, domain: str) -> None:
        """Add every version of the domain's records (same ``current_id``)."""
        r, r2 = t.records.c, t.records.alias("r2").c
        found: list[tuple[str, str]] = []
        for cond in _in(self.conn, r2.record_id, self.ids[domain]):
            cur = select(r2.current_id).where(r2.domain == domain, cond)
            found += [(str(a), str(b)) for a, b in self.conn.execute(
                select(r.record_id, r.current_id).where(r.domain == domain,
                                                        r.current_id.in_(cur)))]
        for rid, current in found:
            if rid not in self.ids[domain]:
                self.link(domain, [rid], f"version of {current}")

    def movements_of(self, events: Sequence[str]) -> None:
        a = t.allocations.c
        for cond in _in(self.conn, a.event_id, events):
            for mid, eid in self.conn.execute(select(a.movement_id, a.event_id).where(cond)):
                self.link("finance", [str(mid)], f"settles {eid}")

    def events_of(self, movements: Sequence[str]) -> None:
        a = t.allocations.c
        for cond in _in(self.conn, a.movement_id, movements):
            for mid, eid in self.conn.execute(select(a.movement_id, a.event_id).where(cond)):
                self.link("business", [str(eid)], f"settled by {mid}")

    def returns_of(self, movements: Sequence[str]) -> None:
        m = t.movements.c
        conds = [*_in(self.conn, m.returns, movements),
                 *(and_(c, m.returns.isnot(None)) for c in _in(self.conn, m.record_id, movements))]
        for cond in conds:
            for rid, ret in self.conn.execute(select(m.record_id, m.returns).where(cond)):
                self.link("finance", [str(rid)], f"returns {ret}")
                self.link("finance", [str(ret)], f"returned by {rid}")

    def refs_of(self, vouchers: Sequence[str]) -> None:
        v, r = t.voucher_refs.c, t.records.c
        for cond in _in(self.conn, v.voucher_id, vouchers):
            refs = select(v.ref_id).where(cond)
            for dom, rid in self.conn.execute(select(r.domain, r.record_id).where(
                    r.domain.in_(("business", "finance")), r.record_id.in_(refs))):
                self.link(str(dom), [str(rid)], "evidenced by a voucher on the trail")

    def vouchers_of(self, ids: Sequence[str]) -> None:
        v = t.voucher_refs.c
        for cond in _in(self.conn, v.ref_id, ids):
            for vid, ref in self.conn.execute(select(v.voucher_id, v.ref_id).where(cond)):
                self.link("archive", [str(vid)], f"evidences {ref}")


def trace(ledger: Ledger, record_id: str, domain: str | None = None) -> Trace:
    """The whole trail of a record across the three domains.

    Args:
        ledger: an open ledger.
        record_id: an interchange id (or a ``control`` entry id such as ``BRK-.../1``).
        domain: which domain, when the id exists in several.

    Raises:
        NotFoundError: no such record; InputError: the id is in several domains.
    """
    refresh(ledger.store)
    with ledger.store.reader() as conn:
        subject = ledger.find_entry(conn, record_id, domain)
        size = ledger.store.head(conn)[0]
        cp = int(conn.execute(select(checkpoints.c.tree_size).order_by(
            checkpoints.c.tree_size.desc()).limit(1)).scalar() or 0)
        dom = subject.domain
        if dom not in DOMAINS:
            item = TraceItem(dom, dom, subject.kind, subject.record_id, subject.seq,
                             subject.entry_hash.hex(), subject.seq < cp, True, "subject")
            return Trace(subject.record_id, dom, size, cp, (item,), (), (),
                         (f"{dom} entries are not reconciled; only the entry itself is shown",))
        g = _Gather(conn)
        g.link(dom, [subject.record_id], "subject")
        g.versions(dom)
        chain = set(g.ids[dom])
        if dom == "archive":
            g.refs_of(sorted(g.ids["archive"]))
            g.versions("business")
            g.versions("finance")
        if dom == "business":
            g.movements_of(sorted(g.ids["business"]))
        elif dom == "finance":
            g.returns_of(sorted(g.ids["finance"]))
            g.events_of(sorted(g.ids["finance"]))
        else:
            g.movements_of(sorted(g.ids["business"]))
            g.events_of(sorted(g.ids["finance"]))
        g.versions("business")
        g.versions("finance")
        g.vouchers_of(sorted(g.ids["business"] | g.ids["finance"]))
        g.versions("archive")
        items = _items(conn, g, chain, dom, cp)
        allocs = _allocations(conn, g)
        breaks = _breaks(ledger.store, conn, {i.record_id for i in items})
    return Trace(subject.record_id, dom, size, cp, tuple(items), tuple(allocs), tuple(breaks))


def _items(conn: Connection, g: _Gather, chain: set[str], dom: str, cp: int) -> list[TraceItem]:
    r, e = t.records.c, entries.c
    ev, mv, vo = t.events.c, t.movements.c, t.vouchers.c
    out: list[TraceItem] = []
    order = {"business": 0, "finance": 1, "archive": 2}
    for domain, ids in g.ids.items():
        for cond in _in(conn, r.record_id, ids):
            q = (select(r.seq, r.kind, r.record_id, r.corrects, r.superseded, r.current_id,
                        r.occurred_day, e.entry_hash, ev.amount_fen, mv.amount_fen,
                        mv.value_day, vo.amount_fen)
                 .join(entries, e.seq == r.seq)
                 .outerjoin(t.events, ev.seq == r.seq)
                 .outerjoin(t.movements, mv.seq == r.seq)
                 .outerjoin(t.vouchers, vo.seq == r.seq)
                 .where(r.domain == domain, cond))
            for (seq, kind, rid, corrects, sup, cur, occ, h, ev_amt, mv_amt, value_day,
                 vo_amt) in conn.execute(q):
                amt = next((a for a in (ev_amt, mv_amt, vo_amt) if a is not None), None)
                day = value_day if value_day is not None else occ
                rels = g.relation.get((domain, str(rid)), [])
                out.append(TraceItem(
                    ROLE[domain], domain, str(kind), str(rid), int(seq), bytes(h).hex(),
                    int(seq) < cp, domain == dom and str(rid) in chain,
                    "; ".join(rels), corrects, bool(sup), str(cur),
                    None if amt is None else money(int(amt)),
                    None if day is None else day_date(int(day)).isoformat()))
    out.sort(key=lambda i: (order[i.domain], i.seq))
    return out


def _allocations(conn: Connection, g: _Gather) -> list[dict[str, str]]:
    a = t.allocations.c
    out = []
    for cond in _in(conn, a.movement_id, g.ids["finance"]):
        for mid, eid, amt in conn.execute(select(a.movement_id, a.event_id, a.amount_fen).where(
                cond).order_by(a.movement_seq, a.pos)):
            if eid in g.ids["business"]:
                out.append({"movement": str(mid), "event": str(eid), "amount": money(int(amt))})
    return out


def _breaks(store: Store, conn: Connection, ids: set[str]) -> list[TraceBreak]:
    # a break deleted from the workflow's tables (its row and its links) names no record
    # any more: the breaks present are checked against the last run's entry first
    why = present_mismatch(store, conn)
    if why is not None:
        raise IntegrityError(_("{problem}; 'bfa reconcile' restores it and reports it")
                             .format(problem=why))
    br = break_records.c
    links: set[tuple[str, str]] = set()
    for cond in _in(conn, br.record_id, ids):
        links.update((str(b), str(r)) for b, r in conn.execute(
            select(br.break_id, br.record_id).where(cond)))
    bids = {b for b, _r in links}
    if not bids:
        return []
    rows = []
    for cond in _in(conn, break_state.c.break_id, bids):
        rows += read_rows(conn, select(break_state).where(cond))
    require_honest(store, conn, rows)  # each row's records are those its id covers
    states = [row_to_state(r) for r in rows]
    names = {st.break_id: set(st.records) for st in states}
    for bid, rid in sorted(links):  # a link the break's own records do not back
        if bid not in names:
            raise IntegrityError(_("wf_break_records names break {id}, which has no row in "
                                   "the workflow table: it was changed outside bfa; run "
                                   "'bfa verify'").format(id=bid))
        if rid not in names[bid]:
            raise IntegrityError(_("wf_break_records links break {id} to record {record}, "
                                   "which it does not name: the table was changed outside "
                                   "bfa; run 'bfa verify'").format(id=bid, record=rid))
    by_break: dict[str, list[Transition]] = {}
    for x in transitions_for(conn, bids):
        by_break.setdefault(str(x.record["break"]), []).append(x)
    states.sort(key=lambda s: (not s.present, s.code, s.break_id))
    return [TraceBreak(s.break_id, s.code, s.severity, s.status, s.present, s.records, s.message,
                       tuple(by_break.get(s.break_id, [])), s.text()) for s in states]


__all__ = ["Trace", "TraceBreak", "TraceItem", "trace"]
