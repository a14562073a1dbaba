"""Withdrawing a mis-imported bank statement (红冲, FORMAT.md §9.8).

A statement imported by mistake (the wrong account, the wrong file) cannot be deleted: the
ledger is append-only. It is withdrawn instead, with four eyes:

1. :func:`request_withdrawal` — an officer names the statement (its ``finance.statement``
   id, or the ``archive.bank_statement`` id of the file) and a reason; a
   ``control.withdrawal`` entry (``action`` ``request``) lists the current version of each
   record to withdraw: the file's statements and the movements their import made
   (``<statement id>/…``; movements a statement only confirmed are the agency's own and
   stay). The file itself stays in the archive: it is what the bank sent.
2. :func:`approve_withdrawal` — another identity appends, for each listed record still
   current, a correction of it that carries ``withdrawn`` (the request, its reason and who
   asked): one batch, recorded as ingested by the approver. A withdrawn record counts
   nowhere (the reconciler treats it as superseded), and a file may never send
   ``withdrawn`` itself.

Importing the corrected file afterwards appends its records as corrections of the
withdrawn ones (:func:`reinstated_ids`): same statement and movement ids, new versions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, select

from ledger import (
    InputError,
    Ledger,
    append_control,
    check_note,
    control_records,
    now_rfc3339,
    read_entries,
)
from reconcile.matching import _tables as t
from reconcile.matching._refresh import Deriver, refresh
from schemas import PERSONAL_FIELDS, gettext

PREFIX = "WD-"
NOTE_LIMIT = 1000


@dataclass(frozen=True)
class WithdrawalRequest:
    """A ``control.withdrawal`` request and, once approved, who approved it."""

    id: str
    target: str
    records: tuple[str, ...]
    """``finance:<id>`` of each record version to withdraw."""
    reason: str
    user: str
    at: str
    seq: int
    approved_by: str | None = None
    cancelled_by: str | None = None

    @property
    def status(self) -> str:
        return ("approved" if self.approved_by else "cancelled" if self.cancelled_by
                else "requested")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "target": self.target, "records": list(self.records),
                "reason": self.reason, "user": self.user, "at": self.at, "seq": self.seq,
                "status": self.status, "approved_by": self.approved_by,
                "cancelled_by": self.cancelled_by}


def withdrawals(ledger: Ledger) -> list[WithdrawalRequest]:
    """Every request, in ledger order, with who approved it (from the records whose
    ``withdrawn`` names it and the ingest entries of their batch)."""
    refresh(ledger.store)
    with ledger.store.reader() as conn:
        return list(_requests(ledger, conn).values())


def _requests(ledger: Ledger, conn: Connection) -> dict[str, WithdrawalRequest]:
    out: dict[str, WithdrawalRequest] = {}
    cancelled: dict[str, str] = {}
    for seq, rec in control_records(conn, "withdrawal"):
        if rec.get("action") == "cancel":
            cancelled[str(rec.get("request"))] = str(rec.get("user"))
        if rec.get("action") != "request":
            continue
        out[str(rec["id"])] = WithdrawalRequest(
            str(rec["id"]), str(rec.get("target")), tuple(map(str, rec.get("records") or ())),
            str(rec.get("reason")), str(rec.get("user")), str(rec.get("at")), seq)
    for rid, who in cancelled.items():
        if rid in out:
            out[rid] = WithdrawalRequest(**{**out[rid].__dict__, "cancelled_by": who})
    if out:
        done = _approvals(ledger, conn, out)
        out = {k: WithdrawalRequest(**{**v.__dict__, "approved_by": done.get(k)})
               for k, v in out.items()}
    return out


def _approvals(ledger: Ledger, conn: Connection, requests: Mapping[str, WithdrawalRequest]
               ) -> dict[str, str]:
    """Request id → the identity that ingested its withdrawal records."""
    from ledger import ingested_by

    r = t.records
    ids = sorted({f"{x.split(':', 1)[1]}" for q in requests.values() for x in q.records})
    corrections = {str(rid): str(fix) for rid, fix in conn.execute(
        select(r.c.record_id, r.c.corrects).where(r.c.domain == "finance",
                                                   r.c.corrects.in_(ids)))}
    found = read_entries(ledger.store, conn, "finance", sorted(corrections))
    done: dict[str, str] = {}
    for rid, entry in found.items():
        w = entry.record.get("withdrawn")
        if isinstance(w, dict) and str(w.get("request")) in requests:
            by = ingested_by(ledger.store, conn, [rid])
            done[str(w["request"])] = str(by[0].user) if by and by[0].user else "?"
    return done


def _current(conn: Connection, ids: Iterable[str]) -> dict[str, tuple[str, bool]]:
    """Finance record id → (the id of its current version, whether that is withdrawn)."""
    r, cur = t.records, t.records.alias("cur")
    wanted = sorted(set(ids))
    out: dict[str, tuple[str, bool]] = {}
    for i in range(0, len(wanted), 500):
        q = (select(r.c.record_id, r.c.current_id, cur.c.superseded)
             .join(cur, and_(cur.c.domain == r.c.domain, cur.c.record_id == r.c.current_id))
             .where(r.c.domain == "finance", r.c.record_id.in_(wanted[i:i + 500])))
        out.update({str(a): (str(b), bool(c)) for a, b, c in conn.execute(q)})
    return out


def _root(conn: Connection, rid: str) -> str:
    """The first version of record ``rid``'s chain of corrections (what the statement was
    imported as: its movements are named after it)."""
    r = t.records
    for _ in range(64):
        before = conn.execute(select(r.c.corrects).where(
            r.c.domain == "finance", r.c.record_id == rid)).scalar()
        if before is None:
            return rid
        rid = str(before)
    return rid


def _statement_records(ledger: Ledger, conn: Connection, target: str) -> list[str]:
    """The records a withdrawal of ``target`` takes back (module docstring)."""
    archived = read_entries(ledger.store, conn, "archive", [target]).get(target)
    if archived is not None:
        if archived.record.get("type") != "archive.bank_statement":
            raise InputError(gettext(
                "{target} is a {type} record, not a bank statement file "
                "(archive.bank_statement) or statement").format(
                    target=target, type=archived.record.get("type")))
        refs = [str(x) for x in archived.record.get("refs") or ()]
        found = read_entries(ledger.store, conn, "finance", refs)
        statements = [rid for rid in refs
                      if found.get(rid) and found[rid].record.get("type") == "finance.statement"]
    else:
        found = read_entries(ledger.store, conn, "finance", [target])
        if target not in found or found[target].record.get("type") != "finance.statement":
            raise InputError(gettext(
                "no bank statement {target} (give the id of a finance.statement record or of "
                "the archive.bank_statement record of its file: bfa show ID)").format(
                    target=repr(target)))
        statements = [target]
    statements = list(dict.fromkeys(_root(conn, sid) for sid in statements))
    m = t.movements
    made: list[str] = []
    for sid in statements:
        made += [str(x) for x in conn.execute(select(m.c.record_id).where(
            m.c.record_id.like(f"{_escape(sid)}/%", escape="\\")).order_by(m.c.seq)).scalars()]
    return statements + [rid for rid in made if "/" in rid]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def request_withdrawal(ledger: Ledger, target: str, reason: str,
                       label: str | None = None) -> WithdrawalRequest:
    """Ask for the withdrawal of a statement (module docstring); another identity
    approves it with :func:`approve_withdrawal`."""
    why = check_note(reason, "withdrawing a statement (--reason)", NOTE_LIMIT)
    refresh(ledger.store)
    members = ledger.actor(label).members()
    with ledger.store.writer() as conn:
        ids = _statement_records(ledger, conn, target.strip())
        current = _current(conn, ids)
        live = sorted({cur for cur, void in current.values() if not void})
        if not live:
            raise InputError(gettext("{target}: every record of it is withdrawn already")
                             .format(target=target))
        pending = [q for q in _requests(ledger, conn).values()
                   if q.status == "requested"
                   and set(q.records) & {f"finance:{x}" for x in live}]
        if pending:
            raise InputError(gettext(
                "{target}: request {request} by {user} waits for approval already (bfa "
                "statement approve {request})").format(
                    target=target, request=pending[0].id, user=pending[0].user))
        rec: dict[str, Any] = {
            "type": "control.withdrawal", "id": f"{PREFIX}{uuid.uuid4()}",
            "action": "request", **members, "target": target.strip(),
            "records": [f"finance:{x}" for x in live], "reason": why, "at": now_rfc3339()}
        (seq,) = append_control(ledger.store, conn, [rec])
    return WithdrawalRequest(rec["id"], rec["target"], tuple(rec["records"]), why,
                             str(members["user"]), rec["at"], seq)


@dataclass(frozen=True)
class Approved:
    request: WithdrawalRequest
    withdrawn: tuple[str, ...]
    """The ids of the corrections appended."""


def approve_withdrawal(ledger: Ledger, request_id: str, label: str | None = None) -> Approved:
    """Withdraw what request ``request_id`` lists, as an identity other than the one that
    asked (four-eyes): one batch of corrections carrying ``withdrawn``."""
    refresh(ledger.store)
    who = ledger.actor(label)
    with ledger.store.reader() as conn:
        req = _requests(ledger, conn).get(request_id.strip())
        if req is None:
            raise InputError(gettext("no withdrawal request {request} (bfa statement "
                                     "withdrawals lists them)").format(request=repr(request_id)))
        if req.approved_by is not None:
            raise InputError(gettext("{request} was approved already, by {user}").format(
                request=req.id, user=req.approved_by))
        if req.cancelled_by is not None:
            raise InputError(gettext("{request} was cancelled by {user}").format(
                request=req.id, user=req.cancelled_by))
        if who.identity.casefold() == req.user.casefold():
            raise InputError(gettext("four-eyes: {user} asked for {request} and cannot also "
                                     "approve it; another officer approves").format(
                user=who.identity, request=req.id))
        ids = [x.split(":", 1)[1] for x in req.records]
        current = _current(conn, ids)
        moved = [x for x in ids if current.get(x, ("", True))[0] != x]
        if moved:
            raise InputError(gettext(
                "{request}: record {record} was corrected since the request; cancel it (bfa "
                "statement cancel {request}) and ask again").format(
                    request=req.id, record=moved[0]))
        found = read_entries(ledger.store, conn, "finance", ids)
    reversals = [_reversal(found[x].record, req) for x in ids]
    report = ledger.ingest_records(reversals, f"withdrawal {req.id}", derive=Deriver,
                                   label=label, withdrawals=True)
    if report.appended != len(reversals):
        raise InputError(gettext("{request}: {appended} of {total} withdrawals appended")
                         .format(request=req.id, appended=report.appended,
                                 total=len(reversals)))
    return Approved(WithdrawalRequest(**{**req.__dict__, "approved_by": who.identity}),
                    tuple(str(r["id"]) for r in reversals))


def cancel_withdrawal(ledger: Ledger, request_id: str, reason: str,
                      label: str | None = None) -> WithdrawalRequest:
    """Cancel a request that waits (asked by mistake, or refused by the approver): a
    ``control.withdrawal`` entry with ``action`` ``cancel``; any officer may."""
    why = check_note(reason, "cancelling a withdrawal (--reason)", NOTE_LIMIT)
    refresh(ledger.store)
    members = ledger.actor(label).members()
    with ledger.store.writer() as conn:
        req = _requests(ledger, conn).get(request_id.strip())
        if req is None:
            raise InputError(gettext("no withdrawal request {request} (bfa statement "
                                     "withdrawals lists them)").format(request=repr(request_id)))
        if req.status != "requested":
            raise InputError(gettext("{request} is {status} already").format(
                request=req.id, status=req.status))
        append_control(ledger.store, conn, [{
            "type": "control.withdrawal", "id": f"{PREFIX}{uuid.uuid4()}",
            "action": "cancel", **members, "request": req.id, "reason": why,
            "at": now_rfc3339()}])
    return WithdrawalRequest(**{**req.__dict__, "cancelled_by": str(members["user"])})


def _reversal(rec: Mapping[str, Any], req: WithdrawalRequest) -> dict[str, Any]:
    """The correction that withdraws ``rec``: its fields as stored, without personal data
    (which the ledger keeps pseudonymised; a withdrawn record needs none) and the ledger's
    own members, plus ``corrects`` and ``withdrawn``."""
    kept = {k: v for k, v in rec.items()
            if not k.startswith("_") and k not in PERSONAL_FIELDS and k not in ("corrects",
                                                                         "withdrawn")}
    return {**kept, "id": version_id(str(rec["id"]), "W"), "corrects": rec["id"],
            "withdrawn": {"request": req.id, "reason": req.reason[:1024],
                          "requested_by": req.user[:128]}}


def version_id(current: str, mark: str) -> str:
    """The id of a new version of the record ``current``: ``<current>:<mark>``; an id that
    would be longer than 128 characters is refused (a statement withdrawn and imported
    again that many times is a case for the database's owner)."""
    rid = f"{current}:{mark}"
    if len(rid) > 128:
        raise InputError(gettext(
            "record {record} has been withdrawn and imported again too often: its next "
            "version's id would exceed 128 characters").format(record=current))
    return rid


def reinstated_ids(conn: Connection, records: Sequence[dict[str, object]]
                   ) -> list[dict[str, object]]:
    """``records`` of a statement import, each whose id names a withdrawn record made a
    correction of its current (withdrawn) version (module docstring)."""
    current = _current(conn, (str(r["id"]) for r in records))
    out = []
    for rec in records:
        cur, void = current.get(str(rec["id"]), ("", False))
        if void:
            rec = {**rec, "id": version_id(cur, "R"), "corrects": cur}
        out.append(rec)
    return out


def withdrawal_breaks(ledger_store: Any, conn: Connection) -> list[Any]:
    """``SOD_CONFLICT`` for every withdrawal (a finance record carrying ``withdrawn``)
    that no request of another identity covers: written outside ``bfa statement
    approve`` (no such request, or the request does not list the record it corrects), or
    appended by the identity that asked for it, or by nobody a ``control.ingest`` names."""
    from ledger import ingested_by
    from reconcile.reports._report import Break, msg
    from schemas import N_

    r = t.records
    ids = [str(x) for x in conn.execute(select(r.c.record_id).where(
        r.c.domain == "finance", r.c.corrects.is_not(None)).order_by(r.c.seq)).scalars()]
    if not ids:
        return []
    requests: dict[str, dict[str, Any]] = {
        str(rec.get("id")): rec for _seq, rec in control_records(conn, "withdrawal")
        if rec.get("action") == "request"}
    out = []
    for i in range(0, len(ids), 500):
        found = read_entries(ledger_store, conn, "finance", ids[i:i + 500])
        void = {rid: e for rid, e in found.items() if "withdrawn" in e.record}
        if not void:
            continue
        by = {x.record_id: x.user for x in ingested_by(ledger_store, conn, sorted(void))}
        for rid, entry in void.items():
            w = entry.record["withdrawn"]
            req = requests.get(str(w.get("request"))) if isinstance(w, dict) else None
            who = by.get(rid)
            target = f"finance:{entry.record.get('corrects')}"
            why = None
            if req is None:
                why = N_("withdrawal {record} (entry {seq}): no withdrawal request of that id was "
                       "asked for: one identity on both sides of a control, or none")
            elif target not in (req.get("records") or ()):
                why = N_("withdrawal {record} (entry {seq}): request {request} does not list "
                       "{target}: one identity on both sides of a control, or none")
            elif who is None:
                why = N_("withdrawal {record} (entry {seq}): no control.ingest names who appended "
                       "it: one identity on both sides of a control, or none")
            elif who.casefold() == str(req.get("user", "")).casefold():
                why = N_("withdrawal {record} (entry {seq}): {who} asked for the withdrawal and "
                       "also appended it: one identity on both sides of a control, or none")
            if why is not None:
                m = msg(why, record=rid, seq=entry.seq, who=who or "",
                        request=req.get("id") if req else "", target=target)
                b = Break.make("SOD_CONFLICT", (rid,), {}, "withdrawn", m, 0,
                               key=("withdrawal", rid))
                out.append(b.with_evidence([rid, str(entry.seq)]))
    return out
