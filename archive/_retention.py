"""Retention, legal hold, appraisal and disposal of voucher records (FORMAT.md §11.3).

This module owns the life's end of a voucher record under 会计档案管理办法 (2015):

- **retention**: a record is kept for its ``retention`` (``10y``, ``30y``,
  ``permanent``), never less than its kind's minimum (:data:`archive.MINIMUM_RETENTION`),
  counted from 1 January after the Asia/Shanghai year of its ``occurred_at``
  (:func:`due_on`);
- **holds**: ``control.hold`` entries put a record on hold by hand (``hold``) and take it
  off (``release``) — :func:`place_hold`, :func:`release_hold`; an unresolved break that
  names a voucher record, or a record the voucher refers to, holds it too (未了事项,
  第十五条);
- **due**: :func:`vouchers_due` lists the records whose retention ended by a date, with
  their state (held by hand, held by an open break, due);
- **appraisal** (鉴定意见书): :func:`appraise` appends a ``control.appraisal`` entry
  listing the due records considered, those proposed for disposal and the opinion;
- **disposal** (销毁清册): :func:`make_disposal_list` builds the list of an appraisal, writes
  it as CSV and appends ``control.disposal`` ``list``; :func:`sign_off` appends one
  ``signoff`` per post, each by a different identity; :func:`dispose` deletes the files no
  record still needs and appends the ``dispose`` tombstone, only when every post signed;
  :func:`disposed_files` tells the fixity audit which missing files were disposed of.

Every decision folds the control entries themselves (each checked against its leaf) and
reads voucher records from their entries, never from a working table; the open breaks
come from :func:`reconcile.list_breaks`, which checks its rows against their entries.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import stat
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from archive._inspect import MINIMUM_RETENTION, RETENTION_RANK
from archive._store import FileStore
from ledger import (
    Entry,
    InputError,
    Ledger,
    NotFoundError,
    append_control,
    check_note,
    checked_entry,
    control_records,
    entries,
    now_rfc3339,
    printable,
    read_entries,
)
from reconcile import list_breaks, today
from schemas import gettext as _
from schemas import to_datetime

TZ = ZoneInfo("Asia/Shanghai")

HOLD_PREFIX = "hold-"
APPRAISAL_PREFIX = "appraisal-"
LIST_PREFIX = "disposal-"
QUARANTINE_PREFIX = ".disposing-"
"""A file being disposed of is renamed to this prefix and its hash, in its own folder, until
the disposal's entry is committed; then it is deleted (renamed back if the entry fails)."""

POSTS: Mapping[str, str] = {
    "unit_head": "单位负责人",
    "archive_head": "档案管理机构负责人",
    "archive_handler": "档案管理机构经办人",
    "accounting_head": "会计管理机构负责人",
    "accounting_handler": "会计管理机构经办人",
    "supervise_archive": "监销：档案管理机构",
    "supervise_accounting": "监销：会计管理机构",
    "supervise_it": "监销：信息系统管理机构",
}
"""The posts that sign a disposal list (会计档案管理办法 第十六条), in order; the last three
supervise the destruction of electronic records (监销)."""

ELECTRONIC_POSTS = ("supervise_archive", "supervise_accounting", "supervise_it")
"""The 监销 posts an electronic record's disposal needs besides the five others. Every
voucher record of the ledger is an electronic file, so every list needs all eight."""

CSV_HEADER = ("record", "kind", "起止年度", "应保管期限", "已保管期限", "sha256", "size")
"""The columns of a disposal list's CSV (销毁清册)."""

NOTE_LIMIT = 2000
OPINION_LIMIT = 4000


# -- retention ------------------------------------------------------------------------------


def retention_of(kind: str, declared: str) -> str:
    """The retention a record is kept for: its own, never below its kind's minimum (an
    unknown period counts for nothing; a kind without a minimum and an unknown period:
    ``permanent``)."""
    least = MINIMUM_RETENTION.get(kind)
    if declared not in RETENTION_RANK:
        return least or "permanent"
    if least is None or RETENTION_RANK[declared] >= RETENTION_RANK[least]:
        return declared
    return least


def due_on(year: int, retention: str) -> date | None:
    """The day a retention ends: 1 January of ``year + 1 + N`` for ``Ny`` (the period starts
    on 1 January after the year of ``occurred_at``); None for ``permanent``."""
    if retention == "permanent":
        return None
    return date(year + 1 + int(retention.removesuffix("y")), 1, 1)


def years_kept(year: int, as_of: date) -> int:
    """Whole years kept by ``as_of`` (已保管期限), counted from 1 January after ``year``."""
    return max(0, as_of.year - (year + 1))


def record_year(occurred_at: str) -> int:
    """The Asia/Shanghai year of a record's ``occurred_at``."""
    return to_datetime(occurred_at).astimezone(TZ).year


@dataclass(frozen=True, slots=True)
class Voucher:
    """A voucher record as its entry says, with the retention it is kept for."""

    id: str
    seq: int
    kind: str
    year: int
    """起止年度: the Asia/Shanghai year of ``occurred_at``."""
    declared: str
    """The record's own ``retention``."""
    retention: str
    """应保管期限: ``declared``, never below the kind's minimum."""
    sha256: str
    size: int
    refs: tuple[str, ...]

    @property
    def due(self) -> date | None:
        return due_on(self.year, self.retention)

    def ended(self, as_of: date) -> bool:
        """Whether its retention ended by ``as_of``."""
        return self.due is not None and self.due <= as_of

    def ref(self) -> dict[str, Any]:
        return {"domain": "archive", "id": self.id, "seq": self.seq}


def _voucher(entry: Entry) -> Voucher:
    rec = entry.record
    kind = entry.kind
    declared = str(rec.get("retention", ""))
    return Voucher(entry.record_id, entry.seq, kind, record_year(str(rec["occurred_at"])),
                   declared, retention_of(kind, declared), str(rec["sha256"]),
                   int(rec["size"]), tuple(str(r) for r in rec.get("refs") or ()))


def _vouchers(conn: Connection) -> Iterator[Voucher]:
    """Every voucher record (superseded versions too: each is a record of its own), from
    the entries, each checked against its leaf, in ``seq`` order."""
    e = entries.c
    q = (select(e.seq, e.leaf, e.entry_hash, e.record_id).where(e.domain == "archive")
         .order_by(e.seq).execution_options(yield_per=1000))
    for seq, leaf, h, rid in conn.execute(q):
        yield _voucher(checked_entry(int(seq), bytes(leaf), bytes(h), "archive", str(rid)))


def _one_voucher(ledger: Ledger, conn: Connection, record_id: str) -> Voucher:
    found = read_entries(ledger.store, conn, "archive", [record_id]).get(record_id)
    if found is None:
        raise NotFoundError(_("no voucher record {id} in the ledger (archive domain)").format(
            id=repr(printable(record_id))))
    return _voucher(found)


# -- the state the control entries give ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hold:
    """A hold placed by hand and not released: its ``control.hold`` entry."""

    id: str
    seq: int
    record: str
    user: str
    reason: str
    at: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "seq": self.seq, "user": self.user, "reason": self.reason,
                "at": self.at}


@dataclass(frozen=True, slots=True)
class Signoff:
    """One post's sign-off of a disposal list."""

    post: str
    user: str
    id: str
    seq: int
    at: str

    def to_json(self) -> dict[str, Any]:
        return {"post": self.post, "title": POSTS.get(self.post, ""), "user": self.user,
                "id": self.id, "seq": self.seq, "at": self.at}


@dataclass
class DisposalList:
    """A disposal list (销毁清册) as its entries say: rows, sign-offs, execution."""

    id: str
    seq: int
    appraisal: str
    posts: tuple[str, ...]
    rows: list[dict[str, Any]]
    digest: str
    signoffs: list[Signoff] = field(default_factory=list)
    executed: tuple[str, int] | None = None
    """The ``dispose`` entry's id and seq, once executed."""

    def signed(self, post: str) -> Signoff | None:
        return next((s for s in self.signoffs if s.post == post), None)

    @property
    def missing(self) -> list[str]:
        """The posts no one signed yet, in the order of :data:`POSTS`."""
        return [p for p in self.posts if self.signed(p) is None]

    @property
    def record_ids(self) -> list[str]:
        return [str(r["record"]["id"]) for r in self.rows]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "seq": self.seq, "appraisal": self.appraisal,
                "posts": list(self.posts), "records": self.record_ids, "digest": self.digest,
                "signoffs": [s.to_json() for s in self.signoffs], "missing": self.missing,
                "executed": None if self.executed is None else self.executed[0]}


@dataclass
class _State:
    """What the entries say now: holds in force, disposal lists, disposed records."""

    holds: dict[str, Hold]
    lists: dict[str, DisposalList]
    disposed: dict[str, str]
    """Record id → the ``dispose`` entry's id that disposed of it."""
    breaks: dict[str, tuple[str, ...]]
    """Record id → the unresolved breaks naming it."""

    def open_breaks(self, v: Voucher) -> tuple[str, ...]:
        """The unresolved breaks that name ``v`` or a record it refers to."""
        found = {b for rid in (v.id, *v.refs) for b in self.breaks.get(rid, ())}
        return tuple(sorted(found))

    def pending_list(self, record_id: str) -> str | None:
        """The disposal list not executed yet that names the record, if any."""
        return next((lst.id for lst in self.lists.values()
                     if lst.executed is None and record_id in lst.record_ids), None)

    def why_held(self, v: Voucher) -> str | None:
        hold = self.holds.get(v.id)
        if hold is not None:
            return f"record {v.id} is on hold ({hold.id}, by {hold.user})"
        breaks = self.open_breaks(v)
        if breaks:
            return f"record {v.id} is held by open break {', '.join(breaks)}"
        return None

    def why_needed(self, v: Voucher, as_of: date) -> str | None:
        """Why ``v`` still needs its file on ``as_of``: held, or inside retention."""
        held = self.why_held(v)
        if held is not None:
            return held
        if v.due is None:
            return f"record {v.id} is kept permanently"
        if v.due > as_of:
            return f"record {v.id} is inside retention until {v.due.isoformat()}"
        return None


def _fold_holds(conn: Connection) -> dict[str, Hold]:
    holds: dict[str, Hold] = {}
    for seq, rec in control_records(conn, "hold"):
        target = rec.get("record")
        rid = str(target.get("id")) if isinstance(target, dict) else ""
        if rec.get("action") == "hold":
            holds[rid] = Hold(str(rec.get("id")), seq, rid, str(rec.get("user", "")),
                              str(rec.get("reason", "")), str(rec.get("at", "")))
        elif rec.get("action") == "release":
            holds.pop(rid, None)
    return holds


def _fold_disposals(conn: Connection) -> tuple[dict[str, DisposalList], dict[str, str]]:
    lists: dict[str, DisposalList] = {}
    disposed: dict[str, str] = {}
    for seq, rec in control_records(conn, "disposal"):
        action = rec.get("action")
        if action == "list":
            lst = DisposalList(str(rec.get("id")), seq, str(rec.get("appraisal", "")),
                               tuple(str(p) for p in rec.get("posts") or ()),
                               list(rec.get("rows") or ()), str(rec.get("digest", "")))
            lists[lst.id] = lst
            continue
        found = lists.get(str(rec.get("list")))
        if found is None:
            continue
        if action == "signoff":
            found.signoffs.append(Signoff(str(rec.get("post")), str(rec.get("user", "")),
                                          str(rec.get("id")), seq, str(rec.get("at", ""))))
        elif action == "dispose" and found.executed is None:
            found.executed = (str(rec.get("id")), seq)
            for r in rec.get("records") or ():
                disposed[str(r.get("id"))] = found.executed[0]
    return lists, disposed


def _open_breaks(ledger: Ledger) -> dict[str, tuple[str, ...]]:
    """Record id → the unresolved breaks of the latest reconciliation that name it."""
    out: dict[str, set[str]] = {}
    for b in list_breaks(ledger):
        if b.status != "resolved":
            for rid in b.records:
                out.setdefault(rid, set()).add(b.break_id)
    return {rid: tuple(sorted(ids)) for rid, ids in out.items()}


def _state(conn: Connection, breaks: dict[str, tuple[str, ...]]) -> _State:
    lists, disposed = _fold_disposals(conn)
    return _State(_fold_holds(conn), lists, disposed, breaks)


def disposed_files(conn: Connection) -> dict[str, int]:
    """The files disposal deleted (or found absent), by SHA-256, each with the ``seq`` of
    the latest ``control.disposal`` ``dispose`` entry that lists it: a missing file is
    *disposed*, not missing, unless a record appended after that entry names it."""
    out: dict[str, int] = {}
    for seq, rec in control_records(conn, "disposal"):
        if rec.get("action") == "dispose":
            for sha in (*(rec.get("deleted") or ()), *(rec.get("absent") or ())):
                out[str(sha)] = seq
    return out


# -- holds ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HoldResult:
    """A hold placed or released: its entry."""

    id: str
    action: str
    record: dict[str, Any]
    reason: str
    user: str
    at: str
    released: str | None = None
    """For a release: the id of the hold it ended."""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.action, "record": self.record,
                "reason": self.reason, "user": self.user, "at": self.at,
                "released": self.released}


def place_hold(ledger: Ledger, record_id: str, reason: str,
               label: str | None = None) -> HoldResult:
    """Put a voucher record on hold (``control.hold`` ``hold``): it is not disposed of,
    and its file is kept, until released. Refused for an unknown record, one on hold
    already, or one disposed of."""
    why = check_note(reason, "placing a hold (--reason)", NOTE_LIMIT)
    return _hold(ledger, record_id, why, label, "hold")


def release_hold(ledger: Ledger, record_id: str, reason: str,
                 label: str | None = None) -> HoldResult:
    """Release a voucher record's hold (``control.hold`` ``release``). Refused when the
    record is not on hold by hand (a hold by an open break ends when the break is
    resolved)."""
    why = check_note(reason, "releasing a hold (--reason)", NOTE_LIMIT)
    return _hold(ledger, record_id, why, label, "release")


def _hold(ledger: Ledger, record_id: str, reason: str, label: str | None,
          action: str) -> HoldResult:
    members = ledger.actor(label).members()
    with ledger.store.writer() as conn:
        v = _one_voucher(ledger, conn, record_id)
        holds = _fold_holds(conn)
        current = holds.get(v.id)
        released = None
        if action == "hold":
            if current is not None:
                raise InputError(_("record {id} is on hold already ({hold}, by {user}: "
                                   "{reason})").format(id=v.id, hold=current.id,
                                                       user=current.user,
                                                       reason=printable(current.reason)))
            _lists, disposed = _fold_disposals(conn)
            if v.id in disposed:
                raise InputError(_("record {id} was disposed of ({disposal}): its file is "
                                   "gone; there is nothing left to hold").format(
                    id=v.id, disposal=disposed[v.id]))
        else:
            if current is None:
                raise InputError(_("record {id} is not on hold by hand (a hold by an open "
                                   "break ends when the break is resolved)").format(id=v.id))
            released = current.id
        rec: dict[str, Any] = {
            "type": "control.hold", "id": f"{HOLD_PREFIX}{uuid.uuid4()}", "action": action,
            **members, "record": v.ref(), "reason": reason, "at": now_rfc3339()}
        append_control(ledger.store, conn, [rec])
    return HoldResult(rec["id"], action, v.ref(), reason, str(members["user"]), rec["at"],
                      released)


# -- due ------------------------------------------------------------------------------------

STATES = ("held", "break", "due")
"""A due record's state: on hold by hand, held by an open break, due for appraisal."""


@dataclass(frozen=True, slots=True)
class DueRecord:
    """A voucher record whose retention ended, and why it may or may not go."""

    voucher: Voucher
    state: str
    hold: Hold | None
    breaks: tuple[str, ...]
    listed: str | None
    """A disposal list not executed yet that names it."""
    kept: int
    """已保管期限 by the as-of date."""

    def held_by(self) -> list[str]:
        return ([self.hold.id] if self.hold is not None else []) + list(self.breaks)

    def to_json(self) -> dict[str, Any]:
        v = self.voucher
        return {"record": v.ref(), "kind": v.kind, "year": v.year, "retention": v.retention,
                "declared": v.declared, "kept": self.kept,
                "due": None if v.due is None else v.due.isoformat(), "state": self.state,
                "hold": None if self.hold is None else self.hold.to_json(),
                "breaks": list(self.breaks), "list": self.listed}

    def considered(self) -> dict[str, Any]:
        """The member of an appraisal's ``considered`` (FORMAT.md §11.3)."""
        v = self.voucher
        return {"record": v.ref(), "kind": v.kind, "year": v.year, "retention": v.retention,
                "kept": self.kept, "due": None if v.due is None else v.due.isoformat(),
                "state": self.state, "held_by": self.held_by(), "list": self.listed}


@dataclass
class DueReport:
    """The voucher records whose retention ended by ``as_of`` (disposed ones left out)."""

    as_of: date
    records: list[DueRecord]
    disposed: int = 0
    """Records whose retention ended that were disposed of already (not listed)."""

    def by_kind_year(self) -> list[dict[str, Any]]:
        groups: dict[tuple[str, int], dict[str, int]] = {}
        for r in self.records:
            g = groups.setdefault((r.voucher.kind, r.voucher.year), dict.fromkeys(STATES, 0))
            g[r.state] += 1
        return [{"kind": k, "year": y, **counts} for (k, y), counts in sorted(groups.items())]

    def count(self, state: str) -> int:
        return sum(1 for r in self.records if r.state == state)

    def to_json(self) -> dict[str, Any]:
        return {"as_of": self.as_of.isoformat(), "count": len(self.records),
                "counts": {s: self.count(s) for s in STATES}, "disposed": self.disposed,
                "by_kind_year": self.by_kind_year(),
                "records": [r.to_json() for r in self.records]}


def _due(conn: Connection, st: _State, as_of: date) -> DueReport:
    report = DueReport(as_of, [])
    for v in _vouchers(conn):
        if not v.ended(as_of):
            continue
        if v.id in st.disposed:
            report.disposed += 1
            continue
        hold = st.holds.get(v.id)
        breaks = st.open_breaks(v)
        state = "held" if hold is not None else "break" if breaks else "due"
        report.records.append(DueRecord(v, state, hold, breaks, st.pending_list(v.id),
                                        years_kept(v.year, as_of)))
    report.records.sort(key=lambda r: (r.voucher.kind, r.voucher.year, r.voucher.id))
    return report


def vouchers_due(ledger: Ledger, as_of: date | None = None) -> DueReport:
    """The voucher records whose retention ended by ``as_of`` (default today,
    Asia/Shanghai), with their state, by kind, year and id. Reads only."""
    day = as_of or today()
    breaks = _open_breaks(ledger)
    with ledger.store.reader() as conn:
        return _due(conn, _state(conn, breaks), day)


# -- appraisal ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Appraisal:
    """An appraisal (鉴定意见书) appended: its entry's id and what it holds."""

    id: str
    as_of: date
    considered: list[DueRecord]
    proposed: list[str]
    opinion: str
    user: str
    at: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "as_of": self.as_of.isoformat(),
                "considered": [r.considered() for r in self.considered],
                "proposed": self.proposed, "opinion": self.opinion, "user": self.user,
                "at": self.at}


def appraise(ledger: Ledger, opinion: str, as_of: date | None = None,
             label: str | None = None) -> Appraisal:
    """Appraise the records whose retention ended by ``as_of`` (default today): append a
    ``control.appraisal`` entry with every due record considered, those proposed for
    disposal (due, not held, on no pending disposal list) and the opinion. Refused for a
    date after today or when no record is due."""
    text = check_note(opinion, "an appraisal (--opinion)", OPINION_LIMIT)
    now = today()
    day = as_of or now
    if day > now:
        raise InputError(_("--as-of {day} is after today ({today}, Asia/Shanghai): an "
                           "appraisal considers records whose retention has ended").format(
            day=day.isoformat(), today=now.isoformat()))
    breaks = _open_breaks(ledger)
    members = ledger.actor(label).members()
    with ledger.store.writer() as conn:
        report = _due(conn, _state(conn, breaks), day)
        if not report.records:
            raise InputError(_("no voucher record's retention ended by {day} (disposed ones "
                               "aside): nothing to appraise").format(day=day.isoformat()))
        proposed = [r.voucher.id for r in report.records
                    if r.state == "due" and r.listed is None]
        years = [r.voucher.year for r in report.records]
        rec: dict[str, Any] = {
            "type": "control.appraisal", "id": f"{APPRAISAL_PREFIX}{uuid.uuid4()}",
            **members, "as_of": day.isoformat(), "retention": "permanent",
               "years": {"from": min(years), "to": max(years)},
               "considered": [r.considered() for r in report.records],
               "proposed": proposed, "opinion": text, "at": now_rfc3339()}
        append_control(ledger.store, conn, [rec])
    return Appraisal(rec["id"], day, report.records, proposed, text, str(members["user"]),
                     rec["at"])


# -- the disposal list ----------------------------------------------------------------------


def list_csv(rows: list[dict[str, Any]]) -> bytes:
    """The CSV of a disposal list's rows: UTF-8 with a byte-order mark, CRLF line ends,
    the header :data:`CSV_HEADER`, one line per row (FORMAT.md §11.3)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_HEADER)
    for r in rows:
        w.writerow([r["record"]["id"], r["kind"], r["year"], r["retention"], r["kept"],
                    r["sha256"], r["size"]])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


@dataclass(frozen=True, slots=True)
class ListResult:
    """A disposal list made: its entry and the file written."""

    id: str
    appraisal: str
    rows: list[dict[str, Any]]
    digest: str
    out: Path
    posts: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "appraisal": self.appraisal, "out": str(self.out),
                "digest": self.digest, "count": len(self.rows), "posts": list(self.posts),
                "rows": self.rows}


def _appraisal(ledger: Ledger, conn: Connection, appraisal_id: str) -> dict[str, Any]:
    found = read_entries(ledger.store, conn, "control", [appraisal_id]).get(appraisal_id)
    if found is None or found.kind != "appraisal":
        raise NotFoundError(_("no appraisal {id} in the ledger ('bfa archive appraise' makes "
                              "one)").format(id=repr(printable(appraisal_id))))
    return found.record


def make_disposal_list(ledger: Ledger, appraisal_id: str, out: Path,
                       label: str | None = None) -> ListResult:
    """Build the disposal list (销毁清册) of an appraisal from the records it proposed,
    write it to ``out`` (a new file) as CSV and append ``control.disposal`` ``list`` with
    the rows and the file's digest. Refused when the appraisal has a list already,
    proposed nothing, or one of its records was held or listed since."""
    if out.exists() or out.is_symlink():
        raise InputError(_("{path} exists; name a new file for the disposal list").format(
            path=out))
    breaks = _open_breaks(ledger)
    members = ledger.actor(label).members()
    written = False
    try:
        with ledger.store.writer() as conn:
            appr = _appraisal(ledger, conn, appraisal_id)
            rows = _list_rows(ledger, conn, _state(conn, breaks), appraisal_id, appr)
            data = list_csv(rows)
            digest = hashlib.sha256(data).hexdigest()
            posts = tuple(POSTS)
            rec: dict[str, Any] = {
                "type": "control.disposal", "id": f"{LIST_PREFIX}{uuid.uuid4()}",
                "action": "list", **members, "appraisal": appraisal_id,
                "retention": "permanent", "posts": list(posts), "rows": rows,
                "count": len(rows), "digest": digest, "at": now_rfc3339()}
            _write_new(out, data)
            written = True
            append_control(ledger.store, conn, [rec])
    except BaseException:
        if written:  # the entry was not committed: no list without its entry
            out.unlink(missing_ok=True)
        raise
    return ListResult(rec["id"], appraisal_id, rows, digest, out, posts)


def _list_rows(ledger: Ledger, conn: Connection, st: _State, appraisal_id: str,
               appr: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the list of an appraisal: its proposed records, each still free to go."""
    have = next((lst for lst in st.lists.values() if lst.appraisal == appraisal_id), None)
    if have is not None:
        raise InputError(_("appraisal {appraisal} has disposal list {list} already").format(
            appraisal=appraisal_id, list=have.id))
    proposed = [str(i) for i in appr.get("proposed") or ()]
    if not proposed:
        raise InputError(_("appraisal {appraisal} proposes no record for disposal").format(
            appraisal=appraisal_id))
    as_of = date.fromisoformat(str(appr["as_of"]))
    considered = {str(c["record"]["id"]): c for c in appr.get("considered") or ()}
    found = read_entries(ledger.store, conn, "archive", proposed)
    rows: list[dict[str, Any]] = []
    for rid in proposed:
        if rid not in found:
            raise NotFoundError(_("appraisal {appraisal} proposes record {id}, which the "
                                  "ledger does not hold").format(appraisal=appraisal_id, id=rid))
        v = _voucher(found[rid])
        # what st.why_held(v) says (kept English: a disposal's entry stores it), in words
        hold = st.holds.get(v.id)
        if hold is not None:
            raise InputError(_("record {id} is on hold ({hold}, by {user}) since appraisal "
                               "{appraisal}; appraise again").format(
                id=v.id, hold=hold.id, user=hold.user, appraisal=appraisal_id))
        held_by = st.open_breaks(v)
        if held_by:
            raise InputError(_("record {id} is held by open break {breaks} since appraisal "
                               "{appraisal}; appraise again").format(
                id=v.id, breaks=", ".join(held_by), appraisal=appraisal_id))
        if v.id in st.disposed:
            raise InputError(_("record {id} was disposed of already ({disposal})").format(
                id=v.id, disposal=st.disposed[v.id]))
        listed = st.pending_list(v.id)
        if listed is not None:
            raise InputError(_("record {id} is on disposal list {list} already").format(
                id=v.id, list=listed))
        c = considered.get(rid, {})
        rows.append({"record": v.ref(), "kind": v.kind, "year": v.year,
                     "retention": c.get("retention", v.retention),
                     "kept": c.get("kept", years_kept(v.year, as_of)),
                     "sha256": v.sha256, "size": v.size})
    return rows


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to the new file ``path`` (never over an existing one or a link)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError as e:
        raise InputError(_("{path} exists; name a new file for the disposal list").format(
            path=path)) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _list(st: _State, list_id: str) -> DisposalList:
    found = st.lists.get(list_id)
    if found is None:
        raise NotFoundError(_("no disposal list {id} in the ledger ('bfa archive dispose "
                              "--list APPRAISAL_ID' makes one)").format(
            id=repr(printable(list_id))))
    return found


def disposal_list(ledger: Ledger, list_id: str) -> DisposalList:
    """A disposal list as its entries say (rows, sign-offs, execution). Reads only."""
    with ledger.store.reader() as conn:
        return _list(_state(conn, {}), list_id)


# -- sign-off -------------------------------------------------------------------------------


def _post_name(post: str) -> str:
    return f"{post} ({POSTS.get(post, '?')})"


def sign_off(ledger: Ledger, list_id: str, post: str,
             label: str | None = None) -> Signoff:
    """Sign a disposal list for ``post`` (``control.disposal`` ``signoff``). Refused when
    the post is signed already, the identity signed another post of the list (each post
    is a different person, identities compared without regard to letter case), or the
    list was executed."""
    if post not in POSTS:
        raise InputError(_("post {post} is not one of: {posts}").format(
            post=repr(printable(post)), posts=", ".join(POSTS)))
    who = ledger.actor(label)
    with ledger.store.writer() as conn:
        lst = _list(_state(conn, {}), list_id)
        if lst.executed is not None:
            raise InputError(_("disposal list {list} was executed already ({disposal}): "
                               "nothing left to sign").format(list=lst.id,
                                                               disposal=lst.executed[0]))
        if post not in lst.posts:
            raise InputError(_("disposal list {list} needs no post {post}").format(
                list=lst.id, post=post))
        done = lst.signed(post)
        if done is not None:
            raise InputError(_("post {post} of disposal list {list} is signed already, by "
                               "{user} (entry {seq})").format(
                post=_post_name(post), list=lst.id, user=done.user, seq=done.seq))
        mine = next((s for s in lst.signoffs if who.same_person(s.user)), None)
        if mine is not None:
            raise InputError(_("{user} signed disposal list {list} as {post} already (entry "
                               "{seq}): each post is signed by a different person").format(
                user=who.identity, list=lst.id, post=_post_name(mine.post), seq=mine.seq))
        rec: dict[str, Any] = {
            "type": "control.disposal", "id": f"{lst.id}/{post}", "action": "signoff",
            **who.members(), "list": lst.id, "post": post, "at": now_rfc3339()}
        (seq,) = append_control(ledger.store, conn, [rec])
    return Signoff(post, who.identity, rec["id"], seq, rec["at"])


# -- disposal -------------------------------------------------------------------------------


@dataclass
class Disposal:
    """What a disposal did (``executed``) or would do: records disposed of and retained,
    files deleted, found absent and kept, each kept one with why."""

    listing: DisposalList
    as_of: date
    records: list[Voucher] = field(default_factory=list)
    retained: list[tuple[Voucher, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)
    id: str = ""
    executed: bool = False
    leftovers: list[str] = field(default_factory=list)
    """Files renamed for deletion that could not be deleted after the commit."""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id or None, "executed": self.executed,
                "list": self.listing.to_json(),
                "as_of": self.as_of.isoformat(),
                "records": [v.ref() for v in self.records],
                "retained": [{"record": v.ref(), "why": why} for v, why in self.retained],
                "deleted": self.deleted, "absent": self.absent,
                "kept": [{"sha256": sha, "why": why} for sha, why in self.kept],
                "leftovers": self.leftovers}


def _plan(conn: Connection, st: _State, lst: DisposalList, store: FileStore,
          as_of: date) -> Disposal:
    plan = Disposal(lst, as_of)
    listed = set(lst.record_ids)
    by_sha: dict[str, list[Voucher]] = {}
    mine: dict[str, Voucher] = {}
    for v in _vouchers(conn):
        by_sha.setdefault(v.sha256, []).append(v)
        if v.id in listed:
            mine[v.id] = v
    shas: dict[str, None] = {}
    for rid in lst.record_ids:
        found = mine.get(rid)
        if found is None:
            raise NotFoundError(_("disposal list {list} names record {id}, which the ledger "
                                  "does not hold").format(list=lst.id, id=rid))
        v = found
        shas[v.sha256] = None
        why = st.why_needed(v, as_of)
        if why is not None:
            plan.retained.append((v, why))
        else:
            plan.records.append(v)
    for sha in shas:
        needs = [w for w in (st.why_needed(v, as_of) for v in sorted(
            by_sha[sha], key=lambda v: v.id)) if w is not None]
        if needs:
            plan.kept.append((sha, "; ".join(needs)))
        elif _exists(store.path_of(sha)):
            plan.deleted.append(sha)
        else:
            plan.absent.append(sha)
    return plan


def _exists(path: Path) -> bool:
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    return True


def _signature_problem(lst: DisposalList) -> str | None:
    """Why the list's sign-offs do not allow its execution (in the reader's language), or
    None."""
    if lst.missing:
        return _("disposal list {list} lacks the sign-off of: {posts}; each is given with "
                 "'bfa archive signoff {list} --post POST'").format(
            list=lst.id, posts=", ".join(_post_name(p) for p in lst.missing))
    seen: dict[str, Signoff] = {}
    for p in lst.posts:
        s = lst.signed(p)
        assert s is not None
        other = seen.get(s.user.casefold())
        if other is not None:
            return _("disposal list {list}: {user} signed two posts, {first} (entry "
                     "{first_seq}) and {second} (entry {second_seq}); each post is signed by "
                     "a different person").format(
                list=lst.id, user=s.user, first=_post_name(other.post), first_seq=other.seq,
                second=_post_name(p), second_seq=s.seq)
        seen[s.user.casefold()] = s
    return None


def dispose(ledger: Ledger, store: FileStore, list_id: str, *, execute: bool = False,
            label: str | None = None) -> Disposal:
    """The disposal of a list as of today (Asia/Shanghai). Without ``execute``: what it
    would do (reads only; nothing for a list executed already). With it, only when every
    post signed, each by a different identity: delete every file of the list's records
    that no record still needs (inside retention, on hold, held by an open break), append
    the ``control.disposal`` ``dispose`` tombstone and return what was done."""
    as_of = today()
    breaks = _open_breaks(ledger)
    if not execute:
        with ledger.store.reader() as conn:
            st = _state(conn, breaks)
            lst = _list(st, list_id)
            if lst.executed is not None:  # its tombstone says what was done
                return Disposal(lst, as_of)
            return _plan(conn, st, lst, store, as_of)
    members = ledger.actor(label).members()
    moved: list[tuple[Path, Path]] = []
    try:
        with ledger.store.writer() as conn:
            st = _state(conn, breaks)
            lst = _list(st, list_id)
            if lst.executed is not None:
                raise InputError(_("disposal list {list} was executed already ({disposal})")
                                 .format(list=lst.id, disposal=lst.executed[0]))
            problem = _signature_problem(lst)
            if problem is not None:
                raise InputError(problem)
            plan = _plan(conn, st, lst, store, as_of)
            plan.id = f"{lst.id}/dispose"
            rec: dict[str, Any] = {"type": "control.disposal", "id": plan.id, "action": "dispose",
                   **members, "list": lst.id, "appraisal": lst.appraisal,
                   "as_of": as_of.isoformat(), "records": [v.ref() for v in plan.records],
                   "retained": [{"record": v.ref(), "why": why} for v, why in plan.retained],
                   "deleted": plan.deleted, "absent": plan.absent,
                   "kept": [{"sha256": sha, "why": why} for sha, why in plan.kept],
                   "at": now_rfc3339()}
            (seq,) = append_control(ledger.store, conn, [rec])  # the database checks the duty
            lst.executed = (plan.id, seq)
            for sha in plan.deleted:
                path = store.path_of(sha)
                aside = path.with_name(QUARANTINE_PREFIX + sha)
                os.rename(path, aside)
                moved.append((path, aside))
    except BaseException:
        for path, aside in reversed(moved):  # the entry was not written: put them back
            with contextlib.suppress(OSError):
                os.rename(aside, path)
        raise
    plan.executed = True
    for _path, aside in moved:
        try:
            if stat.S_ISREG(os.lstat(aside).st_mode):
                # stored files are read-only; another member's file in a group home cannot
                # be chmod-ed, but its folder lets us unlink it
                with contextlib.suppress(PermissionError):
                    os.chmod(aside, 0o600)
            os.unlink(aside)
        except OSError:
            plan.leftovers.append(str(aside))
    return plan


__all__ = [
    "CSV_HEADER",
    "ELECTRONIC_POSTS",
    "POSTS",
    "Appraisal",
    "Disposal",
    "DisposalList",
    "DueRecord",
    "DueReport",
    "Hold",
    "HoldResult",
    "ListResult",
    "Signoff",
    "Voucher",
    "appraise",
    "disposal_list",
    "dispose",
    "disposed_files",
    "due_on",
    "list_csv",
    "make_disposal_list",
    "place_hold",
    "release_hold",
    "retention_of",
    "sign_off",
    "vouchers_due",
    "years_kept",
]
