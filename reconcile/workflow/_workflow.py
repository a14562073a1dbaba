"""The break workflow: assign, resolve, approve (four-eyes) and reopen, each a ledger entry.

This module owns the workflow tables ``wf_break_state`` and ``wf_break_records``
(Alembic revision ``0003``) and the ``control.break`` entries.

**The ledger is the authority.** Every transition is appended to the ledger as a
``control.break`` entry (id ``<break id>/<n>``, the n-th transition of that break)::

    {"type": "control.break", "id": "BRK-0123456789abcdef/2", "break": "BRK-0123456789abcdef",
     "code": "ORPHAN_MOVEMENT", "action": "resolve", "status": "pending_approval",
     "user": "li.wei", "reason": "bank_error", "note": "bank re-credited on 11-28",
     "evidence": "<hex SHA-256 of the break's evidence>", "at": "2026-11-23T..."}

so the history of resolutions is chained, signed by the next checkpoint and provable
with ``bfa prove BRK-0123456789abcdef/2 --domain control``. ``wf_break_state`` is a
working copy kept in the *same* writer transaction as the entry; :func:`replay_states`
rebuilds it from the entries alone (the same :func:`_apply` function folds both).

**States**: ``open`` → ``assigned`` (assign) → ``resolved`` (resolve; low and medium
severity) or ``pending_approval`` (resolve; high severity: orphan money, payment after
termination, duplicate payment, payee mismatch, integrity) → ``resolved`` (approve, by a
user other than the resolver: four-eyes). ``reopen`` returns a resolved or pending break
to work (``assigned`` when it has an assignee, else ``open``).

**Evidence**: a resolution records the break's ``evidence`` digest. :func:`apply_states`,
run after each reconciliation, keeps a resolved break resolved while the evidence is the
same and reopens it automatically (a ``reopen`` entry by user ``bfa``) when it changed.

Resolving needs one of :data:`REASONS` and a note.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any, Literal, cast, get_args

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    delete,
    or_,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from ledger import (
    NAMING,
    Actor,
    DutyError,
    Entry,
    InputError,
    IntegrityError,
    Ledger,
    NotFoundError,
    Store,
    append_control,
    check_note,
    check_user,
    checked_entry,
    checkpoints,
    entries,
    held_duties,
    ingested_by,
    now_rfc3339,
    read_entries,
)
from reconcile.matching._custom import CUSTOM_PREFIX, recorded_severity
from reconcile.matching._gc import paused_gc
from reconcile.matching._state import RUN_PREFIX, ids_digest, last_run
from reconcile.matching._units import money
from reconcile.reports._labels import label
from reconcile.reports._report import (
    SEVERITY,
    Break,
    Report,
    at_risk_total,
    break_id,
    render_message,
    workflow_break,
)
from schemas import gettext as _

Status = Literal["open", "assigned", "pending_approval", "resolved"]
STATUSES: tuple[Status, ...] = get_args(Status)
Action = Literal["assign", "resolve", "approve", "reopen"]

SYSTEM_USER = "bfa"
"""The label of automatic transitions (a reopen because the evidence changed); their
``user`` is the identity of the process that made them (FORMAT.md §2.5)."""

REASONS: dict[str, str] = {
    "timing": "timing difference: the item settles in a later period (在途)",
    "bank_error": "bank error, corrected by the bank",
    "data_entry": "data entry error, corrected by a correction record",
    "duplicate_import": "the same item was imported twice",
    "write_off": "written off with the required authorisation",
    "other": "anything else: the note says what and why",
}
"""Reason codes a resolution must give (``bfa breaks resolve --reason``)."""

metadata = MetaData(naming_convention=NAMING)

break_state = Table(
    "wf_break_state",
    metadata,
    Column("break_id", String(40), primary_key=True),
    Column("code", String(40), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("field", String(64), nullable=False),
    Column("records", Text, nullable=False),  # JSON list of interchange ids
    Column("amounts", Text, nullable=False),  # JSON object of money strings
    Column("message", Text, nullable=False),
    Column("evidence", String(64), nullable=False),  # as last seen by apply_states
    Column("status", String(20), nullable=False),
    Column("assignee", String(128), nullable=True),
    Column("resolved_by", String(128), nullable=True),
    Column("approved_by", String(128), nullable=True),
    Column("reason", String(32), nullable=True),
    Column("note", Text, nullable=True),
    Column("resolved_evidence", String(64), nullable=True),
    Column("transitions", Integer, nullable=False),
    Column("last_seq", BigInteger, nullable=True),
    Column("present", Boolean, nullable=False),  # in the latest reconciliation
    Column("first_seen", String(40), nullable=False),
    Column("last_seen", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("id_key", Text, nullable=True),  # JSON list: what the id covers, if not records
    Column("message_params", Text, nullable=True),  # JSON {"template", "params"} (§8.1)
    Index("ix_wf_break_state_status", "status"),
)

break_records = Table(
    "wf_break_records",
    metadata,
    Column("break_id", String(40), primary_key=True),
    Column("record_id", String(128), primary_key=True),
    Index("ix_wf_break_records_record_id", "record_id"),
)

WORKFLOW_FIELDS = ("status", "assignee", "resolved_by", "approved_by", "reason", "note",
                   "resolved_evidence", "transitions", "last_seq")
"""The columns derived from ``control.break`` entries (the rest is the break's snapshot)."""

COLUMNS = tuple(c.name for c in break_state.columns)


@dataclass(slots=True)
class _Fold:
    """The workflow columns a break's ``control.break`` entries give, folded one entry at
    a time by :func:`_apply` (a new break's: open, no transition)."""

    status: str = "open"
    assignee: str | None = None
    resolved_by: str | None = None
    approved_by: str | None = None
    reason: str | None = None
    note: str | None = None
    resolved_evidence: str | None = None
    transitions: int = 0
    last_seq: int | None = None
    updated_at: str = ""
    """When the last transition was made (or the snapshot last written); not compared."""

    def workflow(self) -> dict[str, Any]:
        """The :data:`WORKFLOW_FIELDS` by name."""
        return {f: getattr(self, f) for f in WORKFLOW_FIELDS}


@dataclass(slots=True)
class _Row(_Fold):
    """One ``wf_break_state`` row: the break's last reported snapshot and its workflow
    columns (:class:`_Fold`), as stored (``records``, ``amounts``, ``id_key`` JSON text)."""

    break_id: str = ""
    code: str = ""
    severity: str = ""
    field: str = ""
    records: str = "[]"
    amounts: str = "{}"
    message: str = ""
    evidence: str = ""
    present: bool = False
    first_seen: str = ""
    last_seen: str = ""
    id_key: str | None = None
    message_params: str | None = None

    @classmethod
    def stored(cls, mapping: Any) -> _Row:
        """A row as read (``Row._mapping``), its numbers as Python ints."""
        row = cls(**mapping)
        row.transitions = int(row.transitions or 0)
        row.last_seq = None if row.last_seq is None else int(row.last_seq)
        row.present = bool(row.present)
        return row


_values: Callable[[_Row], tuple[Any, ...]] = attrgetter(*COLUMNS)
"""A row's columns in table order (for ``Store.copy_rows``; one C call a row)."""


@dataclass(frozen=True, slots=True)
class BreakState:
    """A break as the workflow knows it: the last reported snapshot and its state."""

    break_id: str
    code: str
    severity: str
    field: str
    records: tuple[str, ...]
    amounts: dict[str, str]
    message: str
    evidence: str
    status: Status
    assignee: str | None
    resolved_by: str | None
    approved_by: str | None
    reason: str | None
    note: str | None
    resolved_evidence: str | None
    transitions: int
    last_seq: int | None
    present: bool
    """Whether the latest reconciliation still reported it."""
    first_seen: str
    last_seen: str
    updated_at: str
    id_key: tuple[str, ...] | None = None
    """What the id covers instead of ``records`` (FORMAT.md §2.5), None when records."""
    message_params: str | None = None
    """JSON ``{"template": ..., "params": {...}}`` of :attr:`message` (None: English only)."""
    four_eyes: bool | None = None
    """Whether resolving it needs an approver, as :func:`get_break` read it from the
    ledger (an agency's own rule's code, ADR 0036); None: decided by the code alone."""

    def text(self) -> str:
        """The message in the reader's language (English when it has no template)."""
        made = self._made()
        return self.message if made is None else render_message(*made, self.message)

    @property
    def needs_approval(self) -> bool:
        return needs_four_eyes(self.code) if self.four_eyes is None else self.four_eyes

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__slots__}
        out["records"] = list(self.records)
        out["id_key"] = None if self.id_key is None else list(self.id_key)
        made = self._made()
        del out["message_params"]  # as a report's break has them (FORMAT §10.1)
        del out["four_eyes"]
        out["template"], out["params"] = made if made is not None else ("", {})
        return out

    def _made(self) -> tuple[str, dict[str, str]] | None:
        """``(template, params)`` of :attr:`message_params`; None when it has none."""
        if not self.message_params:
            return None
        try:
            made = json.loads(self.message_params)
            return (str(made["template"]),
                    {str(k): str(v) for k, v in dict(made["params"]).items()})
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True, slots=True)
class Transition:
    """One ``control.break`` entry, with its ledger position."""

    seq: int
    entry_hash: str
    covered: bool
    """Whether the latest signed checkpoint covers it (provable now)."""
    record: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "entry_hash": self.entry_hash, "covered": self.covered,
                **{k: v for k, v in self.record.items() if k != "type"}}


@dataclass(frozen=True, slots=True)
class Applied:
    """What :func:`apply_states_detail` did to one report."""

    report: Report
    statuses: dict[str, Status]
    new: tuple[str, ...]
    """Break ids never reported before."""
    reopened: tuple[str, ...]
    """Resolved (or pending) breaks reopened because their evidence changed."""


def needs_four_eyes(code: str, conn: Connection | None = None) -> bool:
    """High-severity breaks need a second, different user to approve the resolution; the
    severity follows from the code (:data:`reconcile.SEVERITY`; an unknown code is high).
    A code of an agency's own SQL rule (``CUSTOM_…``), given the connection: the highest
    severity the ledger's ``control.rules`` records ever gave it (ADR 0036), never the
    row's copy, which the application role may write."""
    if code in SEVERITY:
        return SEVERITY[code] == "high"
    if conn is not None and code.startswith(CUSTOM_PREFIX):
        return recorded_severity(conn, code) == "high"
    return True


def _id_filters(conn: Connection, ids: Sequence[str],
                col: ColumnElement[str] | None = None) -> Iterator[ColumnElement[bool]]:
    """Conditions that together select the state rows of ``ids`` (or the rows of ``col``),
    the store's one way of looking up many ids (``Store.id_conditions``)."""
    return Store.id_conditions(conn, break_state.c.break_id if col is None else col, ids)


def row_to_state(row: _Row) -> BreakState:
    vals = {c: getattr(row, c) for c in COLUMNS}
    vals["records"] = tuple(json.loads(row.records))
    vals["amounts"] = json.loads(row.amounts)
    vals["id_key"] = None if row.id_key is None else tuple(json.loads(row.id_key))
    return BreakState(**vals)


def read_rows(conn: Connection, q: Select[Any]) -> list[_Row]:
    """The state rows ``q`` (a select of ``wf_break_state``) gives."""
    return [_Row.stored(r._mapping) for r in conn.execute(q)]


def _load(conn: Connection, ids: Sequence[str]) -> dict[str, _Row]:
    out: dict[str, _Row] = {}
    for cond in _id_filters(conn, ids):
        for row in read_rows(conn, select(break_state).where(cond)):
            out[row.break_id] = row
    return out


def _resolve_id(store: Store, conn: Connection, break_id: str) -> _Row:
    """The state row of a break id, or of the one break whose id starts with it. A break
    the ledger has ``control.break`` entries of but no row for (deleted outside bfa) is
    :class:`IntegrityError`, not unknown."""
    bid = break_id.strip()
    rows = _load(conn, [bid])
    if bid in rows:
        return rows[bid]
    prefix = len(bid) >= 8 and "%" not in bid and "_" not in bid
    if prefix:
        found = conn.execute(
            select(break_state).where(break_state.c.break_id.like(f"{bid}%")).limit(2)).all()
        if len(found) == 1:
            return _Row.stored(found[0]._mapping)
        if len(found) > 1:
            raise InputError(_("break id {id} is ambiguous; give more of it").format(
                id=repr(bid)))
    e = entries.c
    worked = [bid] if read_entries(store, conn, "control", [f"{bid}/1"]) else (
        [str(rid).rsplit("/", 1)[0] for rid in conn.execute(
            select(e.record_id).where(e.domain == "control", e.kind == "break",
                                      e.record_id.like(f"{bid}%/1")).limit(2)).scalars()]
        if prefix else [])
    if len(worked) == 1:  # the row is gone, its entries are not
        _raise_problems(_checked(store, conn, {}, worked)[1])
    raise NotFoundError(_("no break {id} known to the workflow; run 'bfa reconcile' or 'bfa "
                          "nightly' first").format(id=repr(bid)))


# -- the one fold: a transition record applied to a state row ------------------------------
def _apply(row: _Fold, rec: dict[str, Any], seq: int) -> None:
    """Fold one ``control.break`` record into a state row (live and in :func:`replay_states`)."""
    action = rec["action"]
    row.status = rec["status"]
    if action == "assign":
        row.assignee = rec["assignee"]
    elif action == "resolve":
        row.resolved_by = rec["user"]
        row.approved_by = None
        row.reason = rec["reason"]
        row.note = rec["note"]
        row.resolved_evidence = rec.get("evidence", "")
    elif action == "approve":
        row.approved_by = rec["user"]
    elif action == "reopen":
        row.resolved_by = None
        row.approved_by = None
        row.reason = None
        row.note = rec.get("note")
        row.resolved_evidence = None
    row.transitions += 1
    row.last_seq = seq
    row.updated_at = rec["at"]


# -- the table checked against the ledger ---------------------------------------------------


def _transitions_by_id(store: Store, conn: Connection,
                       counts: dict[str, int]) -> dict[str, list[Entry]]:
    """Each break's ``control.break`` entries ``<id>/1``, ``<id>/2``, …, looked up by id
    (the unique index): first ``1 … n + 1`` for a break whose row says ``n``, then, while
    the last one asked for exists, twice as far (a row that hides transitions)."""
    found: dict[str, list[Entry]] = {bid: [] for bid in counts}
    upto = {bid: n + 1 for bid, n in counts.items()}
    while upto:
        ids = [f"{bid}/{k}" for bid, top in upto.items()
               for k in range(len(found[bid]) + 1, top + 1)]
        got = read_entries(store, conn, "control", ids)
        more: dict[str, int] = {}
        for bid, top in upto.items():
            have = found[bid]
            for k in range(len(have) + 1, top + 1):
                e = got.get(f"{bid}/{k}")
                if e is None:
                    break
                have.append(e)
            else:
                more[bid] = 2 * top
        upto = more
    return found


def _replay(bid: str, transitions: list[Entry]) -> _Fold:
    """The workflow fields a break's entries give (:func:`_apply`, as the live path)."""
    row = _Fold()
    for e in transitions:
        rec = e.record
        if rec.get("type") != "control.break" or rec.get("break") != bid:
            raise IntegrityError(_("entry {seq} ({record}) is not a transition of {id}").format(
                seq=e.seq, record=e.record_id, id=bid))
        _apply(row, rec, e.seq)
    return row


def _disagreement(row: _Row, want: _Fold, code: str | None) -> str | None:
    """What a state row says that its break's entries (replayed: ``want``) do not."""
    bid = row.break_id
    for f in WORKFLOW_FIELDS:
        have, should = getattr(row, f), getattr(want, f)
        if have != should:
            return (f"break {bid}: the workflow table says {f} = {have!r}, its control.break "
                    f"entries in the ledger say {should!r} ({want.transitions} transitions)")
    if code is not None and row.code != code:
        return (f"break {bid}: the workflow table says code {row.code}, its control.break "
                f"entries say {code}")
    # the id covers code, field and records (or the key): none of them can change alone
    try:
        names = json.loads(row.id_key if row.id_key is not None else (row.records or "[]"))
        ok = (isinstance(names, list) and all(isinstance(n, str) for n in names)
              and break_id(str(row.code), str(row.field), tuple(names)) == bid)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        return (f"break {bid}: the workflow table's code, field and records or key "
                f"({row.code}, {row.field}) do not give its id")
    return None


def _checked(store: Store, conn: Connection, rows: dict[str, _Row],
             absent: Sequence[str] = ()) -> tuple[dict[str, _Fold], list[tuple[str, str]]]:
    """Check state rows (and the absence of rows for ``absent`` ids) against the ledger.

    Returns the workflow fields the ledger gives for every break that disagrees (to
    restore), and one ``(break id, why)`` per disagreement."""
    return _compared(rows, _entries_of(store, conn, rows, absent))


def _entries_of(store: Store, conn: Connection, rows: dict[str, _Row],
                absent: Iterable[str]) -> dict[str, list[Entry]]:
    """The ``control.break`` entries of the breaks of ``rows`` and of ``absent``."""
    counts = {bid: r.transitions for bid, r in rows.items()}
    counts.update(dict.fromkeys(absent, 0))
    return _transitions_by_id(store, conn, counts)


def _compared(rows: dict[str, _Row], found: dict[str, list[Entry]]
              ) -> tuple[dict[str, _Fold], list[tuple[str, str]]]:
    """:func:`_checked` once each break's entries were looked up (``found``)."""
    restore: dict[str, _Fold] = {}
    problems: list[tuple[str, str]] = []
    for bid, trans in found.items():
        want = _replay(bid, trans)
        code = str(trans[-1].record.get("code")) if trans else None
        row = rows.get(bid)
        if row is None:
            if trans:
                problems.append((bid, f"break {bid} has {len(trans)} control.break entries in "
                                      "the ledger but no row in the workflow table"))
                restore[bid] = want
            continue
        why = _disagreement(row, want, code)
        if why is not None:
            problems.append((bid, why))
            restore[bid] = want
    return restore, problems


def _restored(store: Store, conn: Connection, ids: Sequence[str], fresh: Callable[[], _Row]
              ) -> tuple[dict[str, _Row], list[str], list[tuple[str, str]]]:
    """The state rows of ``ids``, each checked against its entries and restored from them
    where it differs: the rows by id (a deleted row comes back from ``fresh``), the ids
    whose row was gone, and one ``(break id, why)`` per disagreement."""
    existing = _load(conn, ids)
    restored, problems = _checked(store, conn, existing, [i for i in ids if i not in existing])
    relink = [bid for bid in restored if bid not in existing]
    for bid, fold in restored.items():
        row = existing.get(bid)
        if row is None:
            row = existing[bid] = fresh()
        for f in WORKFLOW_FIELDS:
            setattr(row, f, getattr(fold, f))
    return existing, relink, problems


def require_honest(store: Store, conn: Connection, rows: Sequence[_Row]) -> None:
    """Raise :class:`IntegrityError` (exit 3) when a state row about to be shown or acted
    on disagrees with its ``control.break`` entries."""
    _raise_problems(_checked(store, conn, {r.break_id: r for r in rows})[1])


def _raise_problems(problems: Sequence[tuple[str, str]]) -> None:
    """:func:`require_honest`'s refusal, when a row or its absence disagrees with the
    ledger."""
    if problems:
        # the problem itself is English: the same words are the break's message and
        # 'bfa verify''s problem (stored, and in --json)
        if len(problems) > 1:
            text = _("{problem} (and {more} more): the table was changed outside bfa; 'bfa "
                     "reconcile' restores it from the ledger and reports it")
        else:
            text = _("{problem}: the table was changed outside bfa; 'bfa reconcile' restores "
                     "it from the ledger and reports it")
        raise IntegrityError(text.format(problem=problems[0][1], more=len(problems) - 1))


def _record(row: _Row, action: Action, who: Actor, status: Status,
            **extra: str | None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "type": "control.break",
        "id": f"{row.break_id}/{row.transitions + 1}",
        "break": row.break_id,
        "code": row.code,
        "action": action,
        "status": status,
        **who.members(),
        "evidence": row.evidence,
        "at": now_rfc3339(),
    }
    rec.update({k: v for k, v in extra.items() if v is not None})
    return rec


def _transition(ledger: Ledger, bid: str, label: str | None, action: Action,
                **kw: str | None) -> BreakState:
    who = ledger.actor(label)
    with ledger.store.writer() as conn:
        if action == "approve":  # the duty first: four-eyes is a question for approvers
            _require_approver(conn)
        row = _resolve_id(ledger.store, conn, bid)
        require_honest(ledger.store, conn, [row])
        status = _next_status(row, action, who, conn, **kw)
        if action == "approve":
            _refuse_own_records(ledger.store, conn, row, who)
        rec = _record(row, action, who, status, **kw)
        (seq,) = append_control(ledger.store, conn, [rec])
        _apply(row, rec, seq)
        conn.execute(update(break_state).where(break_state.c.break_id == row.break_id)
                     .values({k: getattr(row, k) for k in (*WORKFLOW_FIELDS, "updated_at")}))
    return row_to_state(row)


def _require_approver(conn: Connection) -> None:
    """:class:`DutyError` unless the session's role may approve (FORMAT.md §8.3: the
    approver duty, or the tables' owner; on SQLite whoever writes the file)."""
    held = held_duties(conn)
    if "approver" not in held and "owner" not in held:
        role = conn.exec_driver_sql("SELECT session_user").scalar()
        text = (_("role {role} holds {duties}, not approver") if held else
                _("role {role} holds no duty, not approver"))
        raise DutyError(text.format(role=role, duties=", ".join(held)), refused=True)


def _next_status(row: _Row, action: Action, who: Actor, conn: Connection,
                 **kw: str | None) -> Status:
    """The state after ``action``, or :class:`InputError` saying why it is not allowed."""
    bid, cur = row.break_id, row.status
    if action == "assign":
        if cur not in ("open", "assigned"):
            raise InputError(_("{id} is {status}; reopen it before assigning it").format(
                id=bid, status=label("status", cur)))
        return "assigned"
    if action == "resolve":
        if cur not in ("open", "assigned"):
            raise InputError(_("{id} is already {status}").format(
                id=bid, status=label("status", cur)))
        reason = kw.get("reason")
        if reason not in REASONS:
            raise InputError(_("reason {reason} is not one of: {reasons} (see 'bfa breaks "
                               "resolve --help')").format(reason=repr(reason),
                                                          reasons=", ".join(REASONS)))
        # the severity follows from the code (the row's copy is only for display)
        return "pending_approval" if needs_four_eyes(row.code, conn) else "resolved"
    if action == "approve":
        if cur != "pending_approval":
            raise InputError(_("{id} is {status}, not pending approval").format(
                id=bid, status=label("status", cur)))
        if who.same_person(row.resolved_by):  # identities: Li.Wei is li.wei
            raise InputError(_(
                "four-eyes: {user} resolved {id} and cannot also approve it; a second person "
                "must approve it under their own account (a home shared by an operating-system "
                "group, 'bfa init --group', or one PostgreSQL role per person)").format(
                    user=who.identity, id=bid))
        return "resolved"
    if action == "reopen":
        if cur not in ("resolved", "pending_approval"):
            raise InputError(_("{id} is {status}; only resolved or pending breaks can be "
                               "reopened").format(id=bid, status=label("status", cur)))
        return "assigned" if row.assignee else "open"
    raise InputError(_("unknown action {action}").format(action=repr(action)))


def _refuse_own_records(store: Store, conn: Connection, row: _Row, who: Actor
                        ) -> None:
    """Separation of duties (FORMAT.md §2.5): nobody approves a break on a record they
    ingested, as the ``control.ingest`` entry of its batch names them."""
    records = [str(r) for r in json.loads(row.records or "[]")]
    found = ingested_by(store, conn, records)
    unknown = [i for i in found if i.user is None]
    if unknown:
        first = unknown[0]
        raise InputError(_(
            "separation of duties: {domain} record {record} (entry {seq}) was appended "
            "outside 'bfa ingest' (no control.ingest entry covers it), so who ingested it is "
            "unknown; {id} cannot be approved — run 'bfa verify' and ask the ledger's "
            "owner").format(domain=first.domain, record=first.record_id, seq=first.seq,
                            id=row.break_id))
    mine = [i for i in found if who.same_person(i.user)]
    if mine:
        first = mine[0]
        raise InputError(_(
            "separation of duties: {user} ingested {domain} record {record} (entry {seq}) and "
            "cannot approve {id} on it; an approver who did not ingest its records must "
            "approve it").format(user=who.identity, domain=first.domain,
                                 record=first.record_id, seq=first.seq, id=row.break_id))


# -- public transitions ------------------------------------------------------------------
def assign_break(ledger: Ledger, break_id: str, user: str | None, assignee: str) -> BreakState:
    """Assign a break to ``assignee`` (``open``/``assigned`` → ``assigned``)."""
    return _transition(ledger, break_id, user, "assign",
                       assignee=check_user(assignee, "assignee"))


def resolve_break(ledger: Ledger, break_id: str, user: str | None, reason: str,
                  note: str) -> BreakState:
    """Resolve a break with a reason code and a note (→ ``resolved`` or ``pending_approval``)."""
    return _transition(ledger, break_id, user, "resolve", reason=reason,
                       note=check_note(note, "resolving a break (what was done)"))


def approve_break(ledger: Ledger, break_id: str, user: str | None) -> BreakState:
    """Approve a pending resolution; the approver must differ from the resolver (four-eyes)."""
    return _transition(ledger, break_id, user, "approve")


def reopen_break(ledger: Ledger, break_id: str, user: str | None, note: str) -> BreakState:
    """Reopen a resolved or pending break, saying why."""
    return _transition(ledger, break_id, user, "reopen",
                       note=check_note(note, "reopening a break (why)"))


# -- after each reconciliation -------------------------------------------------------------
# one encoder each, not json.dumps with options (which builds an encoder per call)
_json_records = json.JSONEncoder(ensure_ascii=False).encode
_json_amounts = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def _snapshot(row: _Row, b: Break, seen: str) -> None:
    """Write the break as this run reported it into its row (present, seen now)."""
    row.break_id, row.code, row.severity, row.field = b.id, b.code, b.severity, b.field
    row.records = _json_records(list(b.records))
    row.amounts = _json_amounts(b.amounts)
    row.message, row.evidence, row.present, row.last_seen = b.message, b.evidence, True, seen
    row.id_key = None if b.key is None else _json_records(list(b.key))
    row.message_params = (_json_amounts({"template": b.template, "params": b.params})
                          if b.template else None)


def _annotate(report: Report, statuses: dict[str, Status],
              assignees: dict[str, str | None]) -> Report:
    """The report with each break's workflow status and assignee; the amount at risk
    of the resolved breaks is counted apart from the others'."""
    done = at_risk_total(b for b in report.breaks if statuses.get(b.id) == "resolved")
    left = at_risk_total(b for b in report.breaks if statuses.get(b.id) != "resolved")
    summary = report.summary.model_copy(update={
        "amount_at_risk": money(left), "amount_at_risk_resolved": money(done)})
    return report.model_copy(update={"summary": summary, "breaks": tuple(
        b.model_copy(update={"status": statuses.get(b.id, "open"),
                             "assignee": assignees.get(b.id)}) for b in report.breaks)})


def looked_back(ledger: Ledger, report: Report) -> Applied:
    """A look back's report (an earlier day than the last tracked run's) with the breaks'
    states as they are: nothing is recorded, nothing is new or reopened."""
    states = {b.break_id: b for b in list_breaks(ledger, include_gone=True)}
    statuses: dict[str, Status] = {
        b.id: states[b.id].status if b.id in states else "open"
        for b in report.breaks}
    assignees = {b.id: states[b.id].assignee if b.id in states else None
                 for b in report.breaks}
    return Applied(_annotate(report, statuses, assignees), statuses, (), ())


def apply_states(ledger: Ledger, report: Report) -> Report:
    """Record a report's breaks in the workflow and mark each with its status.

    A resolved (or pending) break whose evidence changed since its resolution is
    reopened, and the reopen is appended to the ledger (user ``bfa``).
    """
    return apply_states_detail(ledger, report).report


@paused_gc
def apply_states_detail(ledger: Ledger, report: Report) -> Applied:
    """:func:`apply_states`, also returning which breaks are new and which were reopened."""
    with ledger.store.writer() as conn:
        return apply_states_in(ledger, conn, report)


def apply_states_in(ledger: Ledger, conn: Connection, report: Report) -> Applied:
    """:func:`apply_states_detail` in the writer transaction ``conn`` (a tracked run records
    its breaks in the run's own transaction, ``reconcile.run_tracked``)."""
    seen = now_rfc3339()
    ids = [b.id for b in report.breaks]
    new: list[str] = []
    reopened: list[str] = []
    rows: list[_Row] = []
    links: list[tuple[str, str]] = []
    automatic = ledger.actor(SYSTEM_USER)  # who runs the reconciliation, labelled "bfa"
    def fresh() -> _Row:  # a break never reported: open, first seen now
        return _Row(first_seen=seen, updated_at=seen)

    # the ledger is the authority: rows that disagree with their control.break entries
    # are restored from them, and each disagreement is reported as LEDGER_INTEGRITY
    existing, relink, problems = _restored(ledger.store, conn, ids, fresh)
    if problems:
        extra = [workflow_break(bid, why) for bid, why in problems]
        report = Report.build(report.run, [*report.breaks, *extra], list(report.expected))
        # the integrity breaks have states of their own (an earlier run reported them)
        more = [b.id for b in extra if b.id not in existing]
        found, again, _also = _restored(ledger.store, conn, more, fresh)
        existing.update(found)
        relink += again
    if relink:  # a deleted row: its record links are written again below
        for cond in _id_filters(conn, relink, break_records.c.break_id):
            conn.execute(delete(break_records).where(cond))
    pending: list[dict[str, Any]] = []
    relinked = set(relink)
    for b in report.breaks:
        row = existing.get(b.id)
        is_new = row is None
        if row is None:
            row = fresh()
            new.append(b.id)
        if is_new or b.id in relinked:  # sets: a nightly may bring 20,000 new breaks
            links.extend((b.id, r) for r in sorted(set(b.records)))
        _snapshot(row, b, seen)
        was = row.resolved_evidence
        if (row.status in ("resolved", "pending_approval") and was
                and row.evidence and row.evidence != was):
            rec = _record(row, "reopen", automatic, "assigned" if row.assignee else "open",
                          note=f"evidence changed since the resolution ({was[:12]}… → "
                          f"{row.evidence[:12]}…)", previous_evidence=was)
            pending.append(rec)
            _apply(row, rec, -1)  # its seq is known once appended, below
            reopened.append(b.id)
        rows.append(row)
    if pending:
        by_id = {r.break_id: r for r in rows}
        for rec, seq in zip(pending, append_control(ledger.store, conn, pending),
                            strict=True):
            by_id[rec["break"]].last_seq = seq
    for cond in _id_filters(conn, list(existing)):
        conn.execute(delete(break_state).where(cond))
    ledger.store.copy_rows(conn, break_state.name, list(COLUMNS), [_values(r) for r in rows])
    ledger.store.copy_rows(conn, break_records.name, ["break_id", "record_id"], links)
    conn.execute(update(break_state).where(
        break_state.c.present.is_(True), break_state.c.last_seen != seen).values(present=False))
    statuses: dict[str, Status] = {r.break_id: cast(Status, r.status) for r in rows}
    assignees = {r.break_id: r.assignee for r in rows}
    return Applied(_annotate(report, statuses, assignees), statuses, tuple(new), tuple(reopened))


# -- reading -------------------------------------------------------------------------------
_SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}


def reconciled(ledger: Ledger) -> bool:
    """Whether any reconciliation ran on this ledger (a ``control.reconcile`` entry exists):
    before the first, an empty list of breaks means "not looked yet", not "none"."""
    e = entries.c
    with ledger.store.reader() as conn:
        return conn.execute(select(e.seq).where(e.domain == "control", e.kind == "reconcile")
                            .limit(1)).first() is not None


def present_mismatch(store: Store, conn: Connection) -> str | None:
    """Why the breaks marked ``present`` are not those the last tracked run left (its
    ``control.reconcile`` entry states their digest, FORMAT.md §2.5), or None — also when
    the last run recorded no breaks (a run made by the library without the workflow)."""
    last = last_run(store, conn)
    if last is None or last.breaks is None:
        return None
    have = ids_digest(str(i) for i in conn.execute(
        select(break_state.c.break_id).where(break_state.c.present.is_(True))).scalars())
    if have == last.breaks:
        return None
    return (f"the workflow table marks {have.count} breaks present, not the "
            f"{last.breaks.count} that reconciliation run {last.run} left (entry "
            f"{RUN_PREFIX}{last.run}): it was changed outside bfa")


def links_mismatch(conn: Connection) -> list[str]:
    """Every break whose ``wf_break_records`` rows are not exactly its records (the
    records of its state row, which its id covers): what ``bfa trace`` would show wrong
    (``bfa verify``, FORMAT.md §6.7)."""
    want: dict[str, set[str]] = {}
    for bid, recs in conn.execute(select(break_state.c.break_id, break_state.c.records)):
        try:
            names = json.loads(recs or "[]")
        except ValueError:
            names = []
        want[str(bid)] = {str(n) for n in names} if isinstance(names, list) else set()
    have: dict[str, set[str]] = {}
    for bid, rid in conn.execute(select(break_records.c.break_id, break_records.c.record_id)):
        have.setdefault(str(bid), set()).add(str(rid))
    out = []
    for bid in sorted(set(want) | set(have)):
        w, h = want.get(bid, set()), have.get(bid, set())
        if w != h:
            extra, missing = sorted(h - w), sorted(w - h)
            out.append(f"break {bid}: wf_break_records " + "; ".join(
                [*([f"names records it does not: {', '.join(extra[:5])}"] if extra else []),
                 *([f"lacks its records {', '.join(missing[:5])}"] if missing else [])]))
    return out


def list_breaks(ledger: Ledger, status: str | None = None, *,
                include_gone: bool = False) -> list[BreakState]:
    """Breaks of the latest reconciliation (and, with ``include_gone``, earlier ones).

    Ordered by severity (high first), code and id; ``status`` filters by state.
    """
    if status is not None and status not in STATUSES:
        raise InputError(_("status {status} is not one of: {statuses}").format(
            status=repr(status), statuses=", ".join(STATUSES)))
    q = select(break_state)
    if status is not None:
        q = q.where(break_state.c.status == status)
    if not include_gone:
        q = q.where(break_state.c.present.is_(True))
    with ledger.store.reader() as conn:
        rows = read_rows(conn, q)
        require_honest(ledger.store, conn, rows)
        why = present_mismatch(ledger.store, conn)
        if why is not None:
            # ``why`` stays English: it is also 'bfa verify''s problem (--json)
            raise IntegrityError(_("{problem}; 'bfa reconcile' restores it and reports it")
                                 .format(problem=why))
    out = [row_to_state(r) for r in rows]
    out.sort(key=lambda s: (_SEVERITY_RANK.get(s.severity, 9), s.code, s.break_id))
    return out


def get_break(ledger: Ledger, break_id: str) -> BreakState:
    """One break by id (or unique id prefix of at least 8 characters)."""
    with ledger.store.reader() as conn:
        row = _resolve_id(ledger.store, conn, break_id)
        require_honest(ledger.store, conn, [row])
        return _with_four_eyes(conn, row_to_state(row))


def _with_four_eyes(conn: Connection, state: BreakState) -> BreakState:
    """``state`` knowing whether it needs an approver, when that is the ledger's to say
    (an agency's own rule's code: the severity its ``control.rules`` records give it)."""
    if not state.code.startswith(CUSTOM_PREFIX):
        return state
    return replace(state, four_eyes=needs_four_eyes(state.code, conn))


def _covered_size(conn: Connection) -> int:
    size = conn.execute(select(checkpoints.c.tree_size).order_by(
        checkpoints.c.tree_size.desc()).limit(1)).scalar()
    return int(size or 0)


def _transition_entries(conn: Connection, break_ids: Iterable[str] | None) -> Iterator[Transition]:
    e = entries.c
    covered = _covered_size(conn)
    q = select(e.seq, e.leaf, e.entry_hash, e.record_id).where(
        e.domain == "control", e.kind == "break")
    if break_ids is not None:
        ids = sorted(set(break_ids))
        if not ids:
            return
        q = q.where(or_(*(e.record_id.like(f"{i}/%") for i in ids)))
    for seq, leaf, h, rid in conn.execute(q.order_by(e.seq)):
        rec = checked_entry(int(seq), bytes(leaf), bytes(h), "control", str(rid)).record
        yield Transition(int(seq), bytes(h).hex(), int(seq) < covered, rec)


def history(ledger: Ledger, break_id: str) -> tuple[BreakState, list[Transition]]:
    """A break's state and every transition entry, in ledger order, with its position."""
    with ledger.store.reader() as conn:
        row = _resolve_id(ledger.store, conn, break_id)
        return histories(ledger.store, conn, [row.break_id])[row.break_id]


def histories(store: Store, conn: Connection, break_ids: Sequence[str]
              ) -> dict[str, tuple[BreakState, list[Transition]]]:
    """:func:`history` of many breaks by exact id, in the reader (or run) transaction
    ``conn``: the ones the workflow knows; a break it does not know is left out. Every row
    is checked against its ``control.break`` entries, and so is each absence: a break with
    entries but no row (deleted outside bfa) raises :class:`IntegrityError`, as a row that
    disagrees does (``bfa bundle export`` brings each kept break's workflow this way)."""
    ids = sorted(set(break_ids))
    rows = _load(conn, ids)
    found = _entries_of(store, conn, rows, (i for i in ids if i not in rows))
    _raise_problems(_compared(rows, found)[1])
    covered = _covered_size(conn)
    return {bid: (_with_four_eyes(conn, row_to_state(row)),
                  [Transition(e.seq, e.entry_hash.hex(), e.seq < covered, e.record)
                   for e in found[bid]])
            for bid, row in rows.items()}


def transitions_for(conn: Connection, break_ids: Iterable[str]) -> list[Transition]:
    """Transition entries of several breaks (for ``bfa trace``)."""
    return list(_transition_entries(conn, break_ids))


def _replay_all(conn: Connection) -> tuple[dict[str, _Fold], dict[str, str]]:
    """Every break's workflow fields from all ``control.break`` entries, and the code its
    last entry names."""
    out: dict[str, _Fold] = {}
    codes: dict[str, str] = {}
    for t in _transition_entries(conn, None):
        bid = str(t.record["break"])
        row = out.get(bid)
        if row is None:
            row = out[bid] = _Fold()
        _apply(row, t.record, t.seq)
        codes[bid] = str(t.record.get("code"))
    return out, codes


def replay_states(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """Workflow fields of every break rebuilt from the ``control.break`` entries alone.

    Equal to the workflow columns of ``wf_break_state`` unless that working table was
    changed behind the ledger's back (:func:`check_workflow` compares the two).
    """
    with ledger.store.reader() as conn:
        return {bid: fold.workflow() for bid, fold in _replay_all(conn)[0].items()}


def check_workflow(ledger: Ledger, *, full: bool) -> list[tuple[str, str]]:
    """Every disagreement between ``wf_break_state`` and the ``control.break`` entries, as
    ``(break id, why)`` (``bfa verify``, FORMAT.md §6.7).

    ``full``: replay every ``control.break`` entry of the ledger (one pass over the
    entries, as a full verification makes anyway), so a deleted row is found too;
    otherwise each row is checked against its own entries, looked up by id."""
    problems: list[tuple[str, str]] = []
    with ledger.store.reader() as conn:
        why = present_mismatch(ledger.store, conn)
        if why is not None:
            problems.append(("", why))
        problems += [("", msg) for msg in links_mismatch(conn)]
        rows = {r.break_id: r for r in read_rows(conn, select(break_state))}
        if not full:
            return problems + _checked(ledger.store, conn, rows)[1]
        replayed, codes = _replay_all(conn)
    for bid in sorted(set(rows) | set(replayed)):
        row, want = rows.get(bid), replayed.get(bid, _Fold())
        if row is None:
            problems.append((bid, f"break {bid} has {want.transitions} control.break "
                                  "entries in the ledger but no row in the workflow table"))
            continue
        why = _disagreement(row, want, codes.get(bid))
        if why is not None:
            problems.append((bid, why))
    return problems


__all__ = [
    "REASONS",
    "STATUSES",
    "Applied",
    "BreakState",
    "Transition",
    "apply_states",
    "apply_states_detail",
    "apply_states_in",
    "approve_break",
    "assign_break",
    "check_workflow",
    "get_break",
    "history",
    "links_mismatch",
    "list_breaks",
    "present_mismatch",
    "read_rows",
    "reopen_break",
    "replay_states",
    "require_honest",
    "resolve_break",
]
