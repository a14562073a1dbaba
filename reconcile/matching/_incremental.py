"""Incremental matching: which items a run re-checks, and the findings kept between runs.

This module owns the matching *state* (``rc_findings``, ``rc_open``, ``rc_matched``,
``rc_dirty``, ``rc_month_sums``; the watermark, rules digest and findings digest of the
last run are a ``control.reconcile`` ledger entry, :mod:`reconcile.matching._state`)
and :func:`match`, which runs the statements of :mod:`reconcile.matching._match` either over
everything (a **full** run) or over a :class:`~reconcile.matching._match.Scope` (an
**incremental** run) and stores what they return per root item.

A finding depends only on its root's neighbourhood, so a run re-checks exactly the
roots whose neighbourhood may have changed since the last run. With ``X`` the records
decoded since then plus the older records whose version status changed (``rc_dirty``):

- movements: those in ``X``; every unallocated current movement in no stored pair
  (``ORPHAN_MOVEMENT``, ``AMBIGUOUS_MATCH`` are re-decided every run); those whose
  allocations name a business record in ``X`` (its arrival or correction changes what
  they resolve to); those named by a voucher in ``X``;
- events: those in ``X``; every event still open (``rc_open``: allocations do not
  settle it) in no stored pair; the events named by any allocation of a re-checked
  movement; the business records named by a voucher in ``X``;
- stored heuristic pairs (``rc_matched``): both items, when either is re-checked by the
  rules above, when a new unallocated movement could be a second candidate of the
  pair's event (same kind, amount, party and window), or when the pair's movement turns
  out to be a candidate of a re-checked event (then the scope is built again with the
  pair in it). A pair nothing touches stays matched: its event and movement have no
  other candidate, and nothing they depend on changed;
- records (``MISSING_VOUCHER``): ``X``, the records named by vouchers in ``X``, the
  re-checked events; vouchers (amounts): those in ``X`` and those naming a record in
  ``X``; benefit payments (terminations, payees): those in ``X`` and those of a person
  with an approval or termination in ``X``; duplicate groups: those of the benefit
  payments in ``X``;
- the income account's monthly sums are kept by delta: plus new current movements,
  minus those that were current at the last run and are superseded now.

Everything else keeps the findings stored for it. Dates are not part of any finding:
the rows are judged against the run's as-of date every time (:mod:`reconcile.matching._run`).
A run is full when there is no state yet, when the rules changed, when asked
(``full=True``), or when the new entries are a large share of the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Select,
    String,
    Table,
    and_,
    cast,
    delete,
    func,
    literal,
    select,
    true,
    tuple_,
    union,
    update,
)

from ledger import Actor, Store
from reconcile.matching import _tables as t
from reconcile.matching._match import (
    RULE_NAMES,
    Findings,
    Matcher,
    Rows,
    Rowset,
    Scope,
    Stages,
    Work,
    probe,
)
from reconcile.matching._outside import Outside, outside
from reconcile.matching._rules import RULESET_VERSION, Rules
from reconcile.matching._state import (
    Digest,
    Stored,
    described_digest,
    emptied,
    findings_digest,
    findings_empty,
    last_run,
    read_findings,
    record_rules,
    record_run,
    state_digest,
    state_mismatch,
)
from reconcile.matching._state import mismatch as findings_mismatch

FULL_SHARE = 0.25
"""An incremental run re-checks its scope by index lookups; when the new entries are
more than this share of the ledger, one full set-based pass is cheaper."""

R, E, M, A, V, VR, P = (t.records, t.events, t.movements, t.allocations, t.vouchers,
                        t.voucher_refs, t.person_events)
F = t.findings
MT = t.matched

SCOPED_BY: dict[str, str] = {
    "event_findings": "events", "movement_mismatches": "movements", "orphans": "movements",
    "ambiguous": "movements", "missing_vouchers": "records", "duplicates": "groups",
    "after_termination": "payments", "payee_mismatches": "payments",
    "account_rule_violations": "movements", "voucher_mismatches": "vouchers",
    "without_approval": "payments", "overpayments": "groups", "without_enrolment": "payments",
    "duplicate_enrolments": "enrolments", "after_death": "payments",
    "death_unrecorded": "persons", "certification_overdue": "payments",
    "transfers_unmatched": "transfers", "transfer_region_mismatch": "movements",
}
"""Which scope table holds the roots each stored statement is re-checked for."""


@dataclass
class Outcome:
    """What :func:`match` found: every stored finding, and the run's mode."""

    mode: str  # "full" or "incremental"
    size: int  # the derived tables' watermark: entries 0 .. size - 1 were matched
    rechecked: int  # roots re-checked: events + movements + records + vouchers
    findings: Findings
    """Every stored finding, typed, by rule, in root order: read as it is iterated, so
    only inside :func:`matched`'s block."""
    netting: Rows  # month, in_fen, out_fen, count: months whose income does not net to 0
    mismatch: str | None = None
    """Why the stored findings were not trusted (they differ from the last run's record
    in the ledger): a ``LEDGER_INTEGRITY`` break; the run re-checked everything."""
    breaks: Digest | None = None
    """Set by the caller's block of :func:`matched` when it recorded the run's breaks in
    the workflow (a tracked run): the run's ``control.reconcile`` entry states it."""
    as_of: str | None = None
    """… and the day it judged by (a tracked run)."""
    derived: tuple[int, int] | None = None
    """Set by a nightly's block: the slice of the derived tables it checked."""


def rules_digest(rules: Rules) -> str:
    """A digest of the rules (stored findings are only valid under the same rules)."""
    return described_digest(rules.describe())


def match(store: Store, rules: Rules, *, full: bool = False,
          timer: Callable[[str], Any] | None = None, who: Actor | None = None) -> Outcome:
    """Run the matching statements (full or incremental) and store their findings.

    Call after :func:`reconcile.matching._refresh.refresh`. Runs in one writer transaction, so
    the stored findings, ``rc_open`` and the run's ``control.reconcile`` entry move
    together.
    ``timer(name)`` (a context manager factory) wraps each step, for profiling.
    """
    with matched(store, rules, full=full, timer=timer, who=who) as (_conn, found):
        return found


@contextmanager
def matched(store: Store, rules: Rules, *, full: bool = False,
            timer: Callable[[str], Any] | None = None, who: Actor | None = None,
            ) -> Iterator[tuple[Connection, Outcome]]:
    """:func:`match`, yielding its connection with the outcome before it commits.

    The block runs in the same writer transaction, with the append lock still held: what
    it reads (entry hashes for the breaks' evidence, bank statements) is the state the
    findings were computed from, even when an ingest is waiting to commit; a tracked run
    records its breaks' workflow states in it. After the block the run's
    ``control.reconcile`` entry is appended. An error in the block rolls the stored
    findings back.
    """
    def step(name: str) -> Any:
        return timer(name) if timer is not None else nullcontext()

    with store.writer() as conn:
        store.tune_analysis(conn)
        size = int(store.get_meta(conn, t.WATERMARK_KEY) or 0)
        digest = rules_digest(rules)
        # the state of the last run comes from the ledger, not from meta (FORMAT.md §2.5)
        last = last_run(store, conn)
        # emptied (a migration that rebuilds the derived tables, or anyone): nothing stored
        # is kept, so this run re-checks everything and nothing is hidden
        base = None if emptied(last, conn, findings_empty(conn)) else last
        mismatch = findings_mismatch(base, read_findings(conn), "this run re-checked everything")
        if mismatch is None and base is not None:  # rc_open, rc_matched, rc_month_sums
            mismatch = state_mismatch(base, state_digest(conn), "this run re-checked everything")
        checked = base.checked if base is not None else 0
        known = int(store.get_meta(conn, t.RECORDS_KEY) or 0)
        new = _count_where(conn, R.c.seq >= checked) if base is not None else 0
        # findings another identity left are re-checked, not kept: a role that may run
        # reconciliations could otherwise record a doctored set (FORMAT.md §2.5)
        same = who is None or base is None or base.user == who.identity
        incremental = (not full and base is not None and mismatch is None and same
                       and base.rules == digest and new <= FULL_SHARE * (known + new))
        work = Work(conn, timer=timer)
        m = Matcher(rules)
        extra: set[int] = set()
        while True:
            with step("outside"):
                out = outside(work, checked if incremental else None, rules)
            with step("scope"):
                scope = _scope(work, m, checked, sorted(extra), out) if incremental else None
            with step("stages"):
                stages = m.stages(work, scope, out)
            # a stored pair whose movement is a candidate of a re-checked event is no
            # longer a sure match: re-check the pair too (rare; then the run starts over)
            loose = _outside_movements(conn, stages, scope)
            if not loose:
                break
            extra.update(loose)
            work.drop()
        left = _store_findings(store, conn, m, stages, scope, step)
        with step("store"):
            _store_open(conn, stages, scope)
            _store_matched(conn, stages, scope)
            _month_sums(conn, checked if incremental else None)
            conn.execute(delete(t.dirty))
            store.set_meta(conn, t.RECORDS_KEY, str(
                known + new if incremental else _estimate_records(conn)))
            rechecked = (sum(_count(conn, getattr(scope, n)) for n in
                             ("events", "movements", "records", "vouchers"))
                         if scope is not None else -1)
            findings = Findings(lambda rule: (row for *_, row in read_findings(conn, rule)))
            ms = t.month_sums.c
            netting = [tuple(r) for r in conn.execute(
                select(ms.month, ms.in_fen, ms.out_fen, ms.n)
                .where(ms.in_fen != ms.out_fen).order_by(ms.month))]
        work.drop()  # on an error the transaction's rollback removes them
        found = Outcome("incremental" if incremental else "full", size, rechecked,
                        findings, netting, mismatch)
        yield conn, found
        # after the block: a tracked run's breaks are in the workflow now, and its
        # automatic reopens are entries before this one
        head = store.head(conn)[0]
        # the rules' own record the first time they are used (FORMAT.md §2.5)
        added = record_rules(store, conn, digest, rules.describe(), RULESET_VERSION, who)
        record_run(store, conn, last, mode=found.mode, checked=size, rules=digest,
                   digest=left, mismatch=mismatch, who=who, breaks=found.breaks,
                   as_of=found.as_of, state=state_digest(conn), derived=found.derived)
        if head == size:  # the run's own records need no decoding: nothing is behind
            store.set_meta(conn, t.WATERMARK_KEY, str(head + 1 + (added is not None)))


def _count_where(conn: Connection, cond: ColumnElement[bool]) -> int:
    return int(conn.execute(select(func.count()).select_from(R).where(cond)).scalar_one())


def _estimate_records(conn: Connection) -> int:
    """About how many ``rc_records`` rows there are (only the full-run heuristic uses it):
    the planner's estimate on PostgreSQL (fresh after ``ANALYZE``), the rowid span on
    SQLite; a count where neither is known."""
    est = Store.estimate_rows(conn, R.name)
    return est if est is not None else _count_where(conn, true())


def _count(conn: Connection, tbl: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(tbl)).scalar_one())


def _seqs(work: Work, name: str, *parts: Select[Any]) -> Table:
    rows: Rowset = union(*parts) if len(parts) > 1 else parts[0].distinct()
    return work.table(name, [Column("seq", BigInteger, primary_key=True, autoincrement=False)],
                      rows)


def _looked_up(work: Work, drive: Table, key: ColumnElement[int], out: ColumnElement[int],
               *where: ColumnElement[bool]) -> Select[Any]:
    """``out`` of the rows whose ``key`` is a ``seq`` of ``drive`` (a small work table),
    read through the index on ``key``: on PostgreSQL by :func:`probe` (as an ``IN`` the
    planner scanned the whole allocations table, ADR 0016); SQLite drives ``IN`` by the
    index itself."""
    if not Store.traits(work.conn).lookups_by_probe:
        return select(out).where(key.in_(select(drive.c.seq)), *where)
    found = probe(drive, key, out.label("seq"), where=where)
    return select(found.c.seq).select_from(drive).join(found, true())


def _scope(work: Work, m: Matcher, checked: int, extra: list[int], out: Outside) -> Scope:
    """The roots to re-check since the last run (see the module docstring).

    ``X`` is written as two parts everywhere: ``seq >= checked`` (a range, read from an
    index) and the few ``rc_dirty`` rows, so no lookup scans a whole table. ``extra``:
    movements of stored pairs to re-check with their pair (:func:`_outside_movements`).
    ``out``: the death lists and regions, with what is new since the last run.
    """
    dirty = select(t.dirty.c.seq)
    paired_m, paired_e = select(MT.c.m_seq), select(MT.c.e_seq)

    def in_x(col: ColumnElement[int]) -> list[ColumnElement[bool]]:
        return [col >= checked, col.in_(dirty)]

    def each(q: Select[Any], col: ColumnElement[int]) -> list[Select[Any]]:
        return [q.where(cond) for cond in in_x(col)]

    # business ids whose version changed: allocations naming them may have lost their
    # event (the latest version is no money event), so they are looked up by id
    dirty_ids = select(R.c.record_id).where(R.c.seq.in_(dirty), R.c.domain == "business")

    movements = _seqs(
        work, "bfa_s_m",
        *each(select(M.c.seq), M.c.seq),
        select(A.c.movement_seq).where(A.c.event_id.in_(dirty_ids)),
        select(M.c.seq).where(M.c.allocated.is_(False), M.c.superseded.is_(False),
                              M.c.seq.not_in(paired_m)),
        *each(select(A.c.movement_seq), A.c.event_seq),
        *each(select(VR.c.finance_seq).where(VR.c.finance_seq.is_not(None)),
              VR.c.voucher_seq),
    )
    # transfers (TRANSFER_UNMATCHED): those in X, those of a person with a transfer in X,
    # those towards a region held only since the last run; re-checked as events too, so
    # that whether money moved for them (allocations, matches) is this run's
    tk = E.c.kind.in_(("transfer_out", "transfer_in"))
    transfers = _seqs(
        work, "bfa_s_tx",
        *each(select(E.c.seq).where(tk), E.c.seq),
        *(select(E.c.seq).where(tk, E.c.person.in_(q))
          for q in each(select(E.c.person).where(tk, E.c.person.is_not(None)), E.c.seq)),
        *([select(E.c.seq).where(tk, E.c.other_region.in_(out.newly_held))]
          if out.newly_held else []),
    )
    events = _seqs(
        work, "bfa_s_e",
        select(transfers.c.seq),
        *each(select(E.c.seq), E.c.seq),
        select(t.open_events.c.seq).where(t.open_events.c.seq.not_in(paired_e)),
        _looked_up(work, movements, A.c.movement_seq, A.c.event_seq,
                   A.c.event_seq.is_not(None)),
        *each(select(VR.c.business_seq).where(VR.c.business_seq.is_not(None)),
              VR.c.voucher_seq),
    )
    _add_pairs(work, m, checked, extra, movements, events)
    # a transfer out whose settlement changed (a movement in X allocates to it)
    work.conn.execute(transfers.insert().from_select(
        ["seq"], select(E.c.seq).where(tk, E.c.seq.in_(select(events.c.seq)),
                                       E.c.seq.not_in(select(transfers.c.seq)))))
    work.analyze(transfers)
    records = _seqs(
        work, "bfa_s_r",
        *each(select(R.c.seq), R.c.seq),
        *each(select(VR.c.finance_seq).where(VR.c.finance_seq.is_not(None)),
              VR.c.voucher_seq),
        select(events.c.seq),  # holds the business records vouchers in X name
    )
    vouchers = _seqs(
        work, "bfa_s_v",
        *each(select(V.c.seq), V.c.seq),
        *each(select(VR.c.voucher_seq), VR.c.business_seq),
        *each(select(VR.c.voucher_seq), VR.c.finance_seq),
    )
    # benefit payments and assessments: a person's approvals, terminations, enrolments
    # and certifications decide their entitlement findings
    bp = E.c.kind.in_(("benefit_payment", "contribution_assessment"))
    # a region and insurance the first approval or enrolment covers: every payment and
    # assessment there is judged from now on (Matcher.covered; coverage never ends)
    held = P.alias("held")
    newly = (select(P.c.region, P.c.insurance)
             .where(P.c.seq >= checked,
                    P.c.kind.in_(("benefit_approval", "enrollment", "certification")),
                    ~select(literal(1)).select_from(held)
                    .where(held.c.seq < checked, held.c.kind == P.c.kind,
                           held.c.region == P.c.region, held.c.insurance == P.c.insurance)
                    .exists())
             .distinct())
    # read first: usually none, and an empty IN over a subquery still scans every event
    newly_held = [tuple(r) for r in work.conn.execute(newly)]
    payments = _seqs(
        work, "bfa_s_pay",
        *each(select(E.c.seq).where(bp), E.c.seq),
        *(select(E.c.seq).where(bp, E.c.person.in_(q))
          for q in each(select(P.c.person), P.c.seq)),
        *([select(E.c.seq).where(bp, tuple_(E.c.region, E.c.insurance).in_(newly_held))]
          if newly_held else []),
        # a person on a list compared since the last run (PAYMENT_AFTER_DEATH)
        select(E.c.seq).where(bp, E.c.person.in_(select(out.new_dead.c.person))),
    )
    # people on a death list (DEATH_NOT_RECORDED): newly compared, or with an approval or
    # termination in X
    dead = out.deaths.c.person
    persons = work.table(
        "bfa_s_dead", [Column("person", String(40), primary_key=True)],
        union(select(out.new_dead.c.person),
              *(q.where(P.c.person.in_(select(dead)))
                for q in each(select(P.c.person), P.c.seq))))
    ins = func.coalesce(E.c.insurance, "")
    groups = work.table(
        "bfa_s_grp",
        [Column("person", String(40), primary_key=True),
         Column("insurance", String(16), primary_key=True),
         Column("period", String(7), primary_key=True)],
        select(E.c.person, ins, E.c.period).distinct()
        .where(E.c.kind == "benefit_payment", E.c.person.is_not(None),
               E.c.period.is_not(None), E.c.seq.in_(select(payments.c.seq))))
    # enrolments (DUPLICATE_ENROLMENT): those of a person with an enrolment, termination
    # or transfer in X
    en = P.c.kind == "enrollment"
    enrolments = _seqs(
        work, "bfa_s_en",
        *each(select(P.c.seq).where(en), P.c.seq),
        *(select(P.c.seq).where(en, P.c.person.in_(q))
          for q in (*each(select(P.c.person), P.c.seq),
                    *each(select(E.c.person).where(tk, E.c.person.is_not(None)),
                          E.c.seq))),
    )
    return Scope(events=events, movements=movements, records=records, vouchers=vouchers,
                 payments=payments, groups=groups, enrolments=enrolments, persons=persons,
                 transfers=transfers)


def _add_pairs(work: Work, m: Matcher, checked: int, extra: list[int], movements: Table,
               events: Table) -> None:
    """Put both items of every stored pair that may no longer hold into the scope.

    A pair is re-checked when its movement or its event is in the scope already, when
    its movement is in ``extra``, or when a new unallocated movement could be a second
    candidate of its event (same kind, amount, party, window: then the event has two
    candidates and the match is undone). A re-checked event that could be a second
    candidate of a pair's movement shows in the run's candidates
    (:func:`_outside_movements`).
    """
    conn = work.conn
    sm, pe = M.alias("sm"), E.alias("pe")
    # a paired event's open amount is its pair's amount (else it is in the scope already)
    base, parties = m.candidate(sm.c, pe.c, MT.c.amount_fen)
    rival = [  # one select per party condition: each an equality the database can hash
        select(MT.c.m_seq, MT.c.e_seq).select_from(MT)
        .join(pe, pe.c.seq == MT.c.e_seq)
        .join(sm, and_(base, party))
        .where(sm.c.seq >= checked, sm.c.allocated.is_(False), sm.c.superseded.is_(False),
               sm.c.seq != MT.c.m_seq)
        for party in parties
    ]
    parts: list[Select[Any]] = [
        select(MT.c.m_seq, MT.c.e_seq).where(MT.c.m_seq.in_(select(movements.c.seq))),
        select(MT.c.m_seq, MT.c.e_seq).where(MT.c.e_seq.in_(select(events.c.seq))),
        *rival,
    ]
    if extra:
        parts.append(select(MT.c.m_seq, MT.c.e_seq).where(MT.c.m_seq.in_(extra)))
    pairs = work.table("bfa_s_pairs", [Column("m_seq", BigInteger), Column("e_seq", BigInteger)],
                       union(*parts))
    for tbl, col in ((movements, pairs.c.m_seq), (events, pairs.c.e_seq)):
        conn.execute(tbl.insert().from_select(
            ["seq"], select(col).where(col.not_in(select(tbl.c.seq))).distinct()))
        work.analyze(tbl)


def _outside_movements(conn: Connection, stages: Stages, scope: Scope | None) -> list[int]:
    """Candidate movements of re-checked events that are not re-checked themselves: each
    is in a stored pair (every other unallocated movement is in the scope) that this
    candidate may undo."""
    if scope is None:
        return []
    c = stages.cand.c
    return [int(x) for x in conn.execute(
        select(c.m_seq).where(c.m_seq.not_in(select(scope.movements.c.seq))).distinct()
    ).scalars()]


def _roots(scope: Scope, rule: str) -> Select[Any]:
    """The stored-root strings a scoped run replaces for ``rule``."""
    tbl: Table = getattr(scope, SCOPED_BY[rule])
    if tbl is scope.groups:
        g = tbl.c  # the same text as reconcile.matching._match.group_key
        return select(g.person + "|" + g.insurance + "|" + g.period)
    if tbl is scope.persons:
        return select(tbl.c.person)
    return select(cast(tbl.c.seq, String(200)))


_ROW_JSON = json.JSONEncoder(separators=(",", ":"))
"""How a stored finding's row is written (``rc_findings.row``): compact JSON, ASCII."""

def _store_findings(store: Store, conn: Connection, m: Matcher, stages: Stages,
                    scope: Scope | None, step: Callable[[str], Any]) -> Digest:
    """Replace the stored findings of the re-checked roots (every one, in a full run) by
    this run's rows, streamed from each statement in parts, each row's root taken out and
    its position counted within its root (a statement's rows come ordered by root); return
    the digest of every finding stored afterwards (the kept ones and the new), read back
    in canonical order. No finding is held in memory."""
    encode = _ROW_JSON.encode  # one encoder for every row (json.dumps builds one per call)
    columns = [c.name for c in F.columns]
    if scope is None:
        conn.execute(delete(F))
    else:
        for rule in RULE_NAMES:
            conn.execute(delete(F).where(F.c.rule == rule, F.c.root.in_(_roots(scope, rule))))
    for rule in RULE_NAMES:
        with step(rule):
            part: list[Stored] = []
            last, pos = None, 0
            for root, *rest in m.rows(rule, conn, stages, scope):
                key = str(root)
                pos = pos + 1 if key == last else 0
                last = key
                part.append((rule, key, pos, encode(rest)))
                if len(part) >= STORE_PART:
                    store.copy_rows(conn, F.name, columns, part)
                    part = []
            store.copy_rows(conn, F.name, columns, part)
    return findings_digest(read_findings(conn))


STORE_PART = 5000
"""Findings written to ``rc_findings`` at a time."""


def _store_open(conn: Connection, stages: Stages, scope: Scope | None) -> None:
    o = t.open_events
    if scope is None:
        conn.execute(delete(o))
    else:
        conn.execute(delete(o).where(o.c.seq.in_(select(scope.events.c.seq))))
    c = stages.check
    conn.execute(o.insert().from_select(["seq"], select(c.c.seq).where(c.c.open_fen > 0)))


def _store_matched(conn: Connection, stages: Stages, scope: Scope | None) -> None:
    """Keep this run's heuristic matches: replace the pairs of the re-checked items."""
    if scope is None:
        conn.execute(delete(MT))
    else:
        conn.execute(delete(MT).where(MT.c.m_seq.in_(select(scope.movements.c.seq))))
        conn.execute(delete(MT).where(MT.c.e_seq.in_(select(scope.events.c.seq))))
    h = stages.matched.c
    conn.execute(MT.insert().from_select(["m_seq", "e_seq", "amount_fen"],
                                         select(h.m_seq, h.e_seq, h.amount_fen)))


def _month_sums(conn: Connection, checked: int | None) -> None:
    """Full: recompute the income account's sums per month. Incremental (``checked``):
    add the new current movements, subtract those superseded since the last run."""
    ms = t.month_sums
    if checked is None:
        conn.execute(delete(ms))
        conn.execute(ms.insert().from_select(["month", "in_fen", "out_fen", "n"],
                                             Matcher.month_sums_select()))
        return
    added = select(M.c.seq).where(M.c.seq >= checked, M.c.superseded.is_(False))
    gone = select(t.dirty.c.seq).where(t.dirty.c.seq < checked, t.dirty.c.was_current.is_(True))
    delta: dict[str, list[int]] = {}
    for seqs, sign in ((added, 1), (gone, -1)):
        for month, in_fen, out_fen, n in conn.execute(Matcher.month_sums_select(seqs, sign)):
            d = delta.setdefault(str(month), [0, 0, 0])
            d[0] += int(in_fen)
            d[1] += int(out_fen)
            d[2] += int(n)
    for month, (in_fen, out_fen, n) in sorted(delta.items()):
        done = conn.execute(update(ms).where(ms.c.month == month).values(
            in_fen=ms.c.in_fen + in_fen, out_fen=ms.c.out_fen + out_fen, n=ms.c.n + n)).rowcount
        if not done:
            conn.execute(ms.insert().values(month=month, in_fen=in_fen, out_fen=out_fen, n=n))
    conn.execute(delete(ms).where(ms.c.n == 0))


__all__ = ["Outcome", "match", "rules_digest"]
