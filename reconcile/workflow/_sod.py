"""Separation of duties, checked after the fact: ``SOD_CONFLICT`` breaks (FORMAT.md §2.5.1).

The break workflow refuses an approval by the identity that resolved the break, or that
ingested one of its records. These checks run in ``bfa``; an approval written past them
— by the tables' owner, by a raw insert of a role holding the approver duty, or before
identities were recorded — is found here, from the ledger alone: every ``control.break``
entry is read in ``seq`` order (the resolver of each approval is the identity of the
break's last ``resolve`` before it), the records of each approved break come from its
workflow row (believed only when they give the break's id), and who ingested them from
the ``control.ingest`` entries (one per batch, all read once). Each approval with one
identity on both sides is one break, keyed by the approved break's id; so is an approval
over a record that no batch covers although batches were recorded before it (written
outside ``bfa ingest``: its ingester is unknown).

Cost per run: one pass over the ``control.break`` entries (a few per break ever worked)
and the ``control.ingest`` entries (one per batch), through the partial index
``ix_entries_control``; then one look-up of the approved breaks' records.
"""

from __future__ import annotations

import bisect
import json
from typing import Any

from sqlalchemy import Connection

from ledger import Store, control_records, entries
from reconcile.reports._report import Break, break_id, msg
from schemas import N_

CODE = "SOD_CONFLICT"


def _control(conn: Connection, kind: str) -> list[dict[str, Any]]:
    """The ``control.<kind>`` records in ``seq`` order, with their ``seq`` as ``_seq``."""
    return [{**rec, "_seq": seq} for seq, rec in control_records(conn, kind)]


def _same(a: object, b: object) -> bool:
    return isinstance(a, str) and isinstance(b, str) and a.casefold() == b.casefold()


def _batches(conn: Connection) -> tuple[list[int], list[tuple[int, int, str]]]:
    """The recorded batches as ``(first, end, user)`` sorted by ``first``, and their
    ``first`` values (for bisection)."""
    spans = []
    for rec in _control(conn, "ingest"):
        first, count = rec.get("first"), rec.get("count")
        if isinstance(first, int) and isinstance(count, int) and "user" in rec:
            spans.append((first, first + count, str(rec["user"])))
    spans.sort()
    return [s[0] for s in spans], spans


def _records_of(store: Store, conn: Connection, bids: list[str]) -> dict[str, list[str]]:
    """The records of each break, from its workflow row when they give its id."""
    from reconcile.workflow._workflow import break_state

    c = break_state.c
    out: dict[str, list[str]] = {}
    for bid, code, fld, raw in store.select_by_ids(conn, c.break_id, bids,
                                                   (c.break_id, c.code, c.field, c.records)):
        try:
            recs = json.loads(raw)
        except (TypeError, ValueError):
            continue
        if (isinstance(recs, list) and all(isinstance(r, str) for r in recs)
                and break_id(str(code), str(fld), tuple(recs)) == bid):
            out[str(bid)] = recs
    return out


def _ingest_seqs(store: Store, conn: Connection, ids: list[str]) -> dict[str, list[int]]:
    """The entries (``seq``) of the records with ``ids``, in any of the three domains."""
    e = entries.c
    out: dict[str, list[int]] = {}
    for rid, seq in store.select_by_ids(conn, e.record_id, ids, (e.record_id, e.seq),
                                        (e.domain != "control",)):
        out.setdefault(str(rid), []).append(int(seq))
    return out


def sod_breaks(store: Store, conn: Connection) -> list[Break]:
    """One ``SOD_CONFLICT`` break per approval whose approver also resolved the break or
    ingested one of its records."""
    resolver: dict[str, tuple[str, int]] = {}
    approvals: list[tuple[str, str, int, tuple[str, int] | None]] = []
    for rec in _control(conn, "break"):
        bid, who, action = rec.get("break"), rec.get("user"), rec.get("action")
        if not isinstance(bid, str) or not isinstance(who, str):
            continue
        if action == "resolve":
            resolver[bid] = (who, rec["_seq"])
        elif action == "approve":
            approvals.append((bid, who, rec["_seq"], resolver.get(bid)))
    if not approvals:
        return []
    records = _records_of(store, conn, sorted({a[0] for a in approvals}))
    seqs = _ingest_seqs(store, conn, sorted({r for rs in records.values() for r in rs}))
    starts, spans = _batches(conn)
    out: list[Break] = []
    for bid, who, seq, resolved in approvals:
        sides: list[str] = []
        unknown: list[str] = []
        if resolved is not None and _same(resolved[0], who):
            sides.append(f"resolved it (entry {resolved[1]})")
        for rid in records.get(bid, []):
            for rseq in seqs.get(rid, []):
                i = bisect.bisect_right(starts, rseq) - 1
                covered = i >= 0 and spans[i][0] <= rseq < spans[i][1]
                if covered and _same(spans[i][2], who):
                    sides.append(f"ingested {rid} (entry {rseq})")
                elif not covered and starts and rseq >= starts[0]:
                    # after batches were first recorded, a record no batch covers was
                    # written outside 'bfa ingest': its ingester may be the approver
                    unknown.append(f"{rid} (entry {rseq})")
        if sides or unknown:
            if sides and unknown:
                template = N_("{who} approved {break} (entry {seq}) and also {sides}: one "
                              "identity on both sides of a control; over {unknown}, which no "
                              "control.ingest covers: appended outside 'bfa ingest', by someone "
                              "unknown")
            elif sides:
                template = N_("{who} approved {break} (entry {seq}) and also {sides}: one "
                              "identity on both sides of a control")
            else:
                template = N_("{who} approved {break} (entry {seq}), over {unknown}, which no "
                              "control.ingest covers: appended outside 'bfa ingest', by someone "
                              "unknown")
            m = msg(template, who=who, seq=seq, sides=", ".join(sides),
                    unknown=", ".join(unknown), **{"break": bid})
            b = Break.make(CODE, (), {}, "approved_by", m, 0, key=("sod", bid))
            out.append(b.with_evidence([bid, str(seq)]))
    return out


__all__ = ["sod_breaks"]
