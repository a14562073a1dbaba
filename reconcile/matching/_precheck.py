"""Check before payment (事前): a proposed batch of benefit payments against the ledger.

This module owns ``bfa precheck`` (issue 20 item 3; INTERCHANGE.md §12.4, ADR 0037): every
line of a proposed payment batch (``business.benefit_payment`` JSON Lines, read and
pseudonymised by :class:`ledger.ProposedFile`, never stored in clear) is judged against the
derived tables as the reconciler would judge it once ingested, and the lines to hold are
named with their reasons. The one thing written is a ``control.precheck`` entry (batch
digest, counts, who), so that "this file was checked before it was sent" can be shown
later (FORMAT.md §2.5).

Each reason is the reconciler's rule (:class:`reconcile.matching._match.Matcher`) applied
to the line as if the batch were in the ledger:

=====================  ========================================================
``no_approval``        ``PAYMENT_WITHOUT_APPROVAL``: a recurring line with no approval
                       of the person and insurance in force for its period
                       (:meth:`Matcher.in_force`); a one-off line when the person has no
                       current approval of the insurance at all. Only in a region and
                       insurance of which the ledger holds approvals (:meth:`Matcher.covered`)
``over_approved``      ``OVERPAYMENT``: the recurring lines of one person, insurance and
                       period, with the ledger's current recurring payments of them,
                       add up to more than the monthly amount of the approval in force
                       (beyond the tolerance)
``terminated``         ``PAYMENT_AFTER_TERMINATION``: a recurring line for a period a
                       current termination ended, no re-approval since
``dead``               ``PAYMENT_AFTER_DEATH``: a recurring line for a period after the
                       month of death a compared death list gives the person
``payee_mismatch``     ``PAYEE_MISMATCH``: the account differs from that of the latest
                       current approval starting in or before the period
``already_paid``       ``DUPLICATE_PAYMENT`` with the ledger: the ledger holds a current
                       recurring payment of the person, insurance and period; or the
                       line's id is already a business record of the ledger (a re-send,
                       or a conflict ingest would refuse: the bank would pay it again)
``duplicate_in_batch`` ``DUPLICATE_PAYMENT`` inside the batch: another line has the same
                       id, or (both recurring) the same person, insurance and period
=====================  ========================================================

Records of the ledger that a line ``corrects`` are left out of ``already_paid`` and
``over_approved``: ingested, the line would take their place.

**Set-based, memory flat.** The lines stream from the file into a work table of the
check's transaction (:class:`_Tables`) a block at a time (read, validated and
pseudonymised by worker processes for a big file, :meth:`ledger.ProposedFile.reader`;
COPY on PostgreSQL), while this process brings the derived tables up to date. What the
reasons ask of the ledger is then computed once per person and insurance of the batch —
their approvals with the period each stops being in force, their terminations with the
period a re-approval ends each, and from those their periods cut into *segments* in
which the approval in force, the latest approval and whether payments are ended stay the
same — and once per person, insurance and period (the batch's recurring lines, the
ledger's payments); one last pass over the lines reads every reason off those rows and
writes ``(line, id, mask)``, a bit per reason (and one for a line left unjudged), for
each line held or unjudged. The held lines are read back from that table alone in line
order and handed to the caller one at a time. Each step names the :class:`Matcher` rule
it applies and why it gives the same answer; ``tests/reconcile/test_precheck_rules.py``
checks the whole against ``run_reconcile`` on random ledgers and batches.

**What is checked, what is trusted** (FORMAT.md §8.3, ADR 0032). The derived tables are
brought up to date first (the refresh, in the check's transaction). The rows a clear
line relies on — the approval rows that put an approval in force and give its account
and amount — are checked against their entries (decoded again from their leaves, as the
derived check does), and no row of the tables it reads may be keyed outside the entries
(planted); a difference is an integrity failure and nothing is appended. A row that
*holds* a line needs no check (a hold is looked at by a person). Trusted: that no row of
a termination or of an earlier payment was deleted or changed so that it no longer
matches — an absence cannot be shown from the rows; ``bfa verify`` and the nightly's
rotation find such a row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    CompoundSelect,
    Connection,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    union,
)

from ledger import (
    FormatError,
    IntegrityError,
    Ledger,
    LocatedInputError,
    ProposedFile,
    Store,
    append_control,
    entries,
    latest_numbered,
    leaf_record,
    now_rfc3339,
)
from reconcile.lists import death_list
from reconcile.matching import _tables as t
from reconcile.matching._derived import MAX_LISTED, Checked, Mismatch, _same, watermark
from reconcile.matching._incremental import rules_digest
from reconcile.matching._match import Matcher
from reconcile.matching._refresh import Deriver, _Batch
from reconcile.matching._rules import Rules, load_rules
from schemas import N_
from schemas import gettext as _

P, E = t.person_events, t.events

HOLD_REASONS: tuple[str, ...] = ("no_approval", "over_approved", "terminated", "dead",
                                 "payee_mismatch", "already_paid", "duplicate_in_batch")
"""Why a line is held, in the order reports list them (codes: machine-read, untranslated)."""

HOLD_TEXT: dict[str, str] = {
    "no_approval": N_("no approval in force"),
    "over_approved": N_("above the approved monthly amount"),
    "terminated": N_("paid after a termination"),
    "dead": N_("after the month of death on a death list"),
    "payee_mismatch": N_("account differs from the approved one"),
    "already_paid": N_("already paid for this period"),
    "duplicate_in_batch": N_("duplicated inside the batch"),
}
"""Each reason in words (``_(HOLD_TEXT[code])`` in the reader's language)."""

HOLD_BREAK: dict[str, str] = {
    "no_approval": "PAYMENT_WITHOUT_APPROVAL", "over_approved": "OVERPAYMENT",
    "terminated": "PAYMENT_AFTER_TERMINATION", "dead": "PAYMENT_AFTER_DEATH",
    "payee_mismatch": "PAYEE_MISMATCH", "already_paid": "DUPLICATE_PAYMENT",
    "duplicate_in_batch": "DUPLICATE_PAYMENT",
}
"""The break code the reconciler would report for each reason once the line is ingested."""

PREFIX = "precheck-"
"""Ids of ``control.precheck`` records: ``precheck-<digest>/<n>``, the n-th check of the
file with that SHA-256 (FORMAT.md §2.5)."""

PART = 10_000
"""Lines copied into the database at a time."""

STREAM_PART = 2000


@dataclass(frozen=True, slots=True)
class Held:
    """A line to hold: its number in the file, its record id and why (codes, in the
    order of :data:`HOLD_REASONS`)."""

    line: int
    record_id: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class PrecheckResult:
    """What a check found and the ``control.precheck`` entry that records it."""

    file: str
    digest: str
    lines: int
    held: int
    counts: dict[str, int]
    """Lines held for each reason (every reason, 0 included); a line held for several
    reasons counts under each."""
    unjudged: int
    """Lines in a region and insurance of which the ledger holds no approval: not judged
    for ``no_approval`` (as the reconciler does not, INTERCHANGE §12.3)."""
    rules: str
    record: dict[str, Any]
    """The ``control.precheck`` record appended."""
    seq: int

    @property
    def clear(self) -> int:
        return self.lines - self.held

    @property
    def id(self) -> str:
        return str(self.record["id"])


HeldSink = Callable[[Held, str | None], None]
"""Called with each held line in line order, and its original text when asked for."""

DeathList = Callable[[Store, Connection], Mapping[str, int]]


def _month_after(day: int) -> str:
    """The first period after the month of epoch day ``day`` (``YYYY-MM``)."""
    d = date(1970, 1, 1) + timedelta(days=day)
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return f"{year:04d}-{month:02d}"


class _Watch:
    """Seconds spent in each stage (``timings``), for the benchmark's breakdown."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into = into
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        if self.into is not None:
            self.into[stage] = self.into.get(stage, 0.0) + now - self.last
        self.last = now


class _Tables:
    """The check's work tables, on its connection, dropped before it commits.

    On PostgreSQL, when the role may create tables in its schema, they are ``UNLOGGED``
    and those a query fills are made by ``CREATE TABLE … AS`` (as the reconciler's work
    tables are, :class:`reconcile.matching._match.Work`), so that the statements over the
    batch's million lines — building a table, and every one reading them — may run on
    parallel workers: a temporary table is private to its backend, and an ``INSERT …
    SELECT`` is never planned in parallel. The check holds the ledger's writer lock, so
    the names never clash; made in the check's transaction, no other session sees them,
    and they are dropped before it commits (a failed check's rollback removes them).
    Otherwise (SQLite, or a duty's role without ``CREATE``) they are temporary."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.md = MetaData()
        self.made: list[Table] = []
        traits = Store.traits(conn)
        self.indexed = not traits.hash_joins_whole
        self.shared = traits.parallel and Store.may_create_tables(conn)

    def key(self, name: str) -> Column[int]:
        """A table's key column: its primary key where statements look rows up by it
        (SQLite); on PostgreSQL, which hash-joins these tables whole, a plain column (a
        million-row index costs more to build than it saves)."""
        return Column(name, BigInteger, primary_key=self.indexed, autoincrement=False)

    def make(self, name: str, *cols: Column[Any], index: tuple[tuple[str, ...], ...] = (),
             rows: Select[Any] | CompoundSelect[Any] | None = None) -> Table:
        """Table ``name`` of ``cols``, filled with ``rows`` (a query giving their values
        in that order) if given; indexed where statements look rows up by key (SQLite)."""
        from sqlalchemy import Index

        tbl = Table(name, self.md, *cols,
                    prefixes=["UNLOGGED" if self.shared else "TEMPORARY"])
        if rows is not None and self.shared:
            sub = rows.subquery()
            Store.create_table_as(self.conn, name, select(*(
                col.label(c.name) for col, c in zip(sub.c, cols, strict=True))),
                unlogged=True)
        else:
            tbl.create(self.conn)
            if rows is not None:
                self.conn.execute(tbl.insert().from_select([c.name for c in cols], rows))
        self.made.append(tbl)
        if self.indexed:
            for i, names in enumerate(index):
                Index(f"ix_{name}_{i}", *(tbl.c[c] for c in names)).create(self.conn)
        return tbl

    def drop(self) -> None:
        for tbl in reversed(self.made):
            tbl.drop(self.conn)
        self.made.clear()


def precheck(ledger: Ledger, path: Path, *, rules: Rules | Mapping[str, Any] | Path | None = None,
             label: str | None = None, on_held: HeldSink | None = None,
             with_text: bool = False, progress: Callable[[int], None] | None = None,
             death_list: DeathList = death_list, workers: int | None = None,
             timings: dict[str, float] | None = None) -> PrecheckResult:
    """Check the proposed payment batch at ``path`` against the ledger.

    Args:
        ledger: the ledger (its secret pseudonymises the lines).
        path: a JSON Lines file of ``business.benefit_payment`` records.
        rules: the reconciler's rules (one-off benefits, tolerance); default rules if None.
        label: ``--user``, recorded beside the identity.
        on_held: called with every held line, in line order, inside the transaction
            (what it raises undoes everything, the ``control.precheck`` entry too).
        with_text: give ``on_held`` each held line's original text (the file is read
            again; its bytes must not have changed).
        progress: called with the bytes of each line read.
        death_list: where the compared death lists come from.
        workers: processes that read the file (None: one per processor for a big file,
            :meth:`ledger.ProposedFile.reader`; 0: this one).
        timings: filled with the seconds each stage took (benchmarks).

    Returns:
        The counts and the ``control.precheck`` record appended.

    Raises:
        BatchRefusedError: a line is not a valid benefit payment (nothing appended).
        IntegrityError: a derived row the check relies on differs from the entries.
    """
    if isinstance(rules, Path):
        rules = load_rules(rules)
    r = rules if isinstance(rules, Rules) else Rules.from_mapping(rules)
    m = Matcher(r)
    who = ledger.actor(label)
    secret = ledger.secret()
    store = ledger.store
    batch = ProposedFile(path, progress)
    watch = _Watch(timings)
    as_text = store.takes_copy_text
    # the workers that read the file start while the derived tables are brought up to date
    with batch.reader(secret, as_text=as_text, workers=workers) as reader, \
            store.writer() as conn:
        Deriver(store, conn).finish(conn, store.head(conn)[0])  # the tables are current
        watch.lap("refresh")
        Store.tune_analysis(conn)
        Store.temp_buffers(conn, TEMP_BUFFERS)
        Store.work_mem(conn, WORK_MEM)
        tabs = _Tables(conn)
        lines = tabs.make(
            "bfa_pc_lines", tabs.key("line"),
            Column("record_id", String(128)), Column("region", String(6)),
            Column("person", String(40)), Column("insurance", String(16)),
            Column("period", String(7)), Column("amount_fen", BigInteger),
            Column("account", String(40)), Column("benefit", String(128)),
            Column("corrects", String(128)),
            index=(("person", "insurance", "period"), ("record_id",), ("corrects",)))
        names = [c.name for c in lines.columns]
        for part in reader:
            if isinstance(part, bytes):
                store.copy_text(conn, lines.name, names, part)
            else:
                store.copy_rows(conn, lines.name, names, part)
        Store.analyze_table(conn, lines.name)
        # one look at the lines: the span of their ids (for the last pass) and whether any
        # corrects a record (few batches do: then the look for unknown targets is spared)
        lo, hi, fixes = conn.execute(select(func.min(lines.c.record_id), func.max(
            lines.c.record_id), func.count(lines.c.corrects))).one()
        if fixes:
            _corrections_known(conn, lines, batch.name)
        deaths = tabs.make("bfa_pc_deaths", Column("person", String(40)),
                           Column("after", String(7)), index=(("person",),))
        store.copy_rows(conn, deaths.name, ["person", "after"],
                        [(p, _month_after(d)) for p, d in death_list(store, conn).items()])
        Store.analyze_table(conn, deaths.name)
        watch.lap("load")
        held, relied = _judge(conn, tabs, lines, deaths, m, watch, (str(lo), str(hi)))
        Store.whole_joins(conn, False)  # the entries are read by key from here on
        checked = _check_relied(store, conn, relied)
        watch.lap("derived check")
        if not checked.ok:
            raise IntegrityError(_(
                "the reconciler's derived rows this check relies on differ from the ledger's "
                "entries, so no line can be cleared: {first}; run 'bfa reconcile' (it "
                "rebuilds them from the entries) and check again").format(
                    first="; ".join(checked.messages()[:3])))
        counts = dict.fromkeys(HOLD_REASONS, 0)

        def lines_with(bits: int) -> Any:
            return func.coalesce(func.sum(case((held.c.mask.op("&")(bits) != 0, 1),
                                               else_=0)), 0)

        tally = conn.execute(select(lines_with(HELD), lines_with(UNJUDGED), *(
            lines_with(_bit(code)) for code in HOLD_REASONS))).one()
        n_held, unjudged = int(tally[0]), int(tally[1])
        for code, n in zip(HOLD_REASONS, tally[2:], strict=True):
            counts[code] = int(n)
        digest = rules_digest(r)
        seq_no = _next_number(store, conn, batch.digest)
        record: dict[str, Any] = {
            "type": "control.precheck", "id": f"{PREFIX}{batch.digest}/{seq_no}",
            **who.members(), "file": batch.name[:1000], "digest": batch.digest,
            "lines": batch.count, "clear": batch.count - n_held, "held": n_held,
            "reasons": counts, "unjudged": unjudged, "rules": digest, "at": now_rfc3339()}
        seq = append_control(store, conn, [record])[0]
        watch.lap("record")
        if on_held is not None:
            _stream(conn, held, batch, on_held, with_text)
        tabs.drop()
        watch.lap("held lines")
    return PrecheckResult(batch.name, batch.digest, batch.count, n_held, counts, unjudged,
                          digest, record, seq)


def _bit(reason: str) -> int:
    """The bit of ``reason`` in a held line's ``mask``."""
    return 1 << HOLD_REASONS.index(reason)


UNJUDGED = 1 << len(HOLD_REASONS)
"""The bit in ``mask`` of a line in a region and insurance of which the ledger holds no
approval (:meth:`Matcher.covered`): counted as unjudged, held only for another reason."""

HELD = UNJUDGED - 1
"""The bits of the reasons to hold a line."""


def _corrections_known(conn: Connection, lines: Table, name: str) -> None:
    """A line that ``corrects`` a record neither the ledger nor the batch holds would be
    refused by ingest: the file is refused, naming the first such line (exit 2)."""
    rec, l2 = t.records.c, lines.alias("l_target")
    row = conn.execute(
        select(lines.c.line, lines.c.corrects)
        .where(lines.c.corrects.is_not(None),
               ~select(literal(1)).where(rec.record_id == lines.c.corrects,
                                         rec.domain == "business").correlate(lines).exists(),
               ~select(literal(1)).select_from(l2).where(l2.c.record_id == lines.c.corrects)
               .correlate(lines).exists())
        .order_by(lines.c.line).limit(1)).first()
    if row is not None:
        raise LocatedInputError.of(name, int(row[0]), "corrects", N_(
            "corrects {record}, which neither the ledger nor this file holds"),
            record=repr(row[1]))


WORK_MEM = "256MB"
"""PostgreSQL: memory for each hash and sort of the check's statements: the last one
hashes every line with what it was joined to (about 150 bytes a line), which at the
analysis' 64 MB would go to disk in batches from about 400,000 lines."""

TEMP_BUFFERS = "256MB"
"""PostgreSQL: memory for the check's temporary tables, when they are (a role without
``CREATE``, :class:`_Tables`; a million lines are about 150 MB: the default 8 MB writes and
reads them back through temporary files)."""


def _next_number(store: Store, conn: Connection, digest: str) -> int:
    """One more than the checks of this file the ledger records (ids ``…/1``, ``…/2`` …)."""
    last = latest_numbered(store, conn, "control", f"{PREFIX}{digest}/")
    return 1 if last is None else int(str(last.record["id"]).rsplit("/", 1)[1]) + 1


def _judge(conn: Connection, tabs: _Tables, L: Table, deaths: Table, m: Matcher,
           watch: _Watch, ids: tuple[str, str]) -> tuple[Table, _Relied]:
    """Write ``(line, record_id, mask)`` for every line held (a bit per reason,
    :func:`_bit`) or unjudged (:data:`UNJUDGED`); returns
    that table and the comparison of the approvals it read with their entries, under way.

    Four passes over the batch (its people and insurances; its recurring lines per person,
    insurance and period; its ids; the last one) instead of one statement or more per
    reason: what a reason asks of the ledger is first computed once per person and
    insurance (their approvals: when each stops being in force; their terminations: the
    periods each ends; from both, the segments of their periods), then once per person,
    insurance and period of the batch (the batch's and the ledger's payments), and the last
    statement reads every reason of a line off those rows, each ``CASE`` the rule of
    :class:`Matcher` it names."""
    c = L.c
    one_off = sorted(m.rules.one_off_benefits)
    # Matcher.recurring, of a line: no ``benefit``, or one that is not one-off
    recurring = or_(c.benefit.is_(None), c.benefit.not_in(one_off)) if one_off else true()
    # every statement here joins the batch whole: hash joins. Estimates of a table made a
    # moment ago can make the planner probe an index per row of a million: quadratic
    Store.whole_joins(conn, True)

    # the batch's people and insurances
    pairs = tabs.make("bfa_pc_pairs", Column("person", String(40)),
                      Column("insurance", String(16)), index=(("person", "insurance"),),
                      rows=select(c.person, c.insurance).group_by(c.person, c.insurance))
    Store.analyze_table(conn, pairs.name)

    # their current approvals (what the check of the derived rows reads again), each with
    # ``ends``: the first period it is no longer in force for. Matcher.in_force ends an
    # approval x for a period when a current termination of the person (same insurance or
    # "all") has x.period < tm.period <= period, or tm.period = x.period recorded on x's
    # day or later: exactly when the least such tm.period is <= period
    x, tm = P.alias("x"), P.alias("tm")
    A = tabs.make(
        "bfa_pc_approvals", tabs.key("seq"), Column("person", String(40)),
        Column("insurance", String(16)), Column("start", String(7)),
        Column("amount_fen", BigInteger), Column("account", String(40)),
        Column("occurred_day", Integer), Column("ends", String(7)),
        index=(("person", "insurance"),),
        rows=select(x.c.seq, x.c.person, x.c.insurance, x.c.period, x.c.amount_fen, x.c.account,
               x.c.occurred_day, func.min(tm.c.period))
        .select_from(pairs)
        .join(x, and_(x.c.kind == "benefit_approval", x.c.person == pairs.c.person,
                      x.c.insurance == pairs.c.insurance, x.c.superseded.is_(False)))
        .outerjoin(tm, and_(tm.c.kind == "termination", tm.c.person == x.c.person,
                            or_(tm.c.insurance == x.c.insurance, tm.c.insurance == "all"),
                            tm.c.superseded.is_(False),
                            or_(tm.c.period > x.c.period,
                                and_(tm.c.period == x.c.period,
                                     tm.c.occurred_day >= x.c.occurred_day))))
        .group_by(x.c.seq, x.c.person, x.c.insurance, x.c.period, x.c.amount_fen,
                  x.c.account, x.c.occurred_day))
    Store.analyze_table(conn, A.name)
    relied = _Relied(conn, A)  # compared while the statements below run

    # their current terminations, each with ``until``: the first period a re-approval
    # covers. Matcher.after_termination holds a payment for a period >= tm.period unless a
    # current approval of the person and insurance starts after tm.period (or in it,
    # recorded after tm) and in or before the period: exactly when the period lies in
    # [tm.period, the least such start)
    again = A.alias("again")
    T = tabs.make(
        "bfa_pc_ended", Column("person", String(40)), Column("insurance", String(16)),
        Column("start", String(7)), Column("until", String(7)),
        index=(("person", "insurance"),),
        rows=select(pairs.c.person, pairs.c.insurance, tm.c.period, func.min(again.c.start))
        .select_from(pairs)
        .join(tm, and_(tm.c.kind == "termination", tm.c.person == pairs.c.person,
                       or_(tm.c.insurance == pairs.c.insurance, tm.c.insurance == "all"),
                       tm.c.superseded.is_(False)))
        .outerjoin(again, and_(again.c.person == pairs.c.person,
                               again.c.insurance == pairs.c.insurance,
                               or_(again.c.start > tm.c.period,
                                   and_(again.c.start == tm.c.period,
                                        again.c.occurred_day > tm.c.occurred_day))))
        .group_by(pairs.c.person, pairs.c.insurance, tm.c.seq, tm.c.period))
    Store.analyze_table(conn, T.name)

    # each person and insurance's periods cut where any of those changes (an approval
    # starts or ends, a termination starts or a re-approval ends it): inside a segment
    # [start, until) the approval in force, the latest one started and whether a
    # termination ends payments are the same for every period, so each is computed once,
    # at the segment's start, by the rules above. '' (before every period) starts the
    # first segment of each: nothing started yet, and whether an approval exists at all
    bounds = tabs.make("bfa_pc_bounds", Column("person", String(40)),
                       Column("insurance", String(16)), Column("start", String(7)), rows=union(
        select(A.c.person, A.c.insurance, literal("")),
        select(T.c.person, T.c.insurance, literal("")),
        select(A.c.person, A.c.insurance, A.c.start),
        select(A.c.person, A.c.insurance, A.c.ends).where(A.c.ends.is_not(None)),
        select(T.c.person, T.c.insurance, T.c.start),
        select(T.c.person, T.c.insurance, T.c.until).where(T.c.until.is_not(None))))
    # (sorted by code point: a period's order, and no locale's comparison per pair)
    cp = Store.code_point_order
    seg = select(bounds.c.person, bounds.c.insurance, bounds.c.start, func.lead(
        bounds.c.start).over(partition_by=(cp(conn, bounds.c.person),
                                           cp(conn, bounds.c.insurance)),
                             order_by=cp(conn, bounds.c.start)).label("until")).subquery("seg")
    a, e = A.alias("a"), T.alias("e")
    at = seg.c.start
    started = a.c.start <= at
    segs = (
        select(seg.c.person, seg.c.insurance, seg.c.start, seg.c.until,
               # Matcher.in_force: started, not ended; the latest start among those
               func.max(case((and_(started, or_(a.c.ends.is_(None), a.c.ends > at)),
                              a.c.start))).label("force"),
               # Matcher.payee_mismatches: the latest start in or before the period
               func.max(case((started, a.c.start))).label("latest"),
               # a one-off line's Matcher.without_approval: any current approval at all
               func.max(case((a.c.seq.is_not(None), 1), else_=0)).label("ever"),
               # Matcher.after_termination (the spans of ``ended``)
               func.max(case((and_(e.c.start <= at, or_(e.c.until.is_(None),
                                                        e.c.until > at)), 1), else_=0)
                        ).label("stopped"))
        .select_from(seg)
        .outerjoin(a, and_(a.c.person == seg.c.person, a.c.insurance == seg.c.insurance))
        .outerjoin(e, and_(e.c.person == seg.c.person, e.c.insurance == seg.c.insurance))
        .group_by(seg.c.person, seg.c.insurance, seg.c.start, seg.c.until)
        .subquery("segs"))
    # Matcher.overpayments: the monthly amount in force, of two approvals with the start
    # in force the larger
    fa = A.alias("fa")
    S = tabs.make(
        "bfa_pc_segments", Column("person", String(40)), Column("insurance", String(16)),
        Column("start", String(7)), Column("until", String(7)), Column("force", String(7)),
        Column("approved", BigInteger), Column("latest", String(7)), Column("ever", Integer),
        Column("stopped", Integer), index=(("person", "insurance"),),
        rows=select(segs.c.person, segs.c.insurance, segs.c.start, segs.c.until, segs.c.force,
               func.max(fa.c.amount_fen), segs.c.latest, segs.c.ever, segs.c.stopped)
        .select_from(segs)
        .outerjoin(fa, and_(fa.c.person == segs.c.person, fa.c.insurance == segs.c.insurance,
                            fa.c.start == segs.c.force))
        .group_by(segs.c.person, segs.c.insurance, segs.c.start, segs.c.until, segs.c.force,
                  segs.c.latest, segs.c.ever, segs.c.stopped))
    Store.analyze_table(conn, S.name)
    watch.lap("approvals")

    # the recurring lines of each person, insurance and period when there are more than
    # one: how many, their total (the last pass reads a line's own amount for the others).
    # The keys first, a count per key of the batch and nothing more (a sum per key of a
    # million costs a third more), then the lines of those few keys counted and added up
    twins = tabs.make("bfa_pc_twins", Column("person", String(40)),
                      Column("insurance", String(16)), Column("period", String(7)),
                      rows=select(c.person, c.insurance, c.period).where(recurring)
                      .group_by(c.person, c.insurance, c.period).having(func.count() > 1))
    Store.analyze_table(conn, twins.name)
    many = tabs.make("bfa_pc_many", Column("person", String(40)),
                     Column("insurance", String(16)), Column("period", String(7)),
                     Column("n", BigInteger), Column("batch", BigInteger),
                     index=(("person", "insurance", "period"),),
                     rows=select(c.person, c.insurance, c.period, func.count(),
                                 func.sum(c.amount_fen))
                     .select_from(L.join(twins, and_(
                         twins.c.person == c.person, twins.c.insurance == c.insurance,
                         twins.c.period == c.period)))
                     .where(recurring).group_by(c.person, c.insurance, c.period))

    # what the ledger paid for each (Matcher.duplicates, Matcher.overpayments): its
    # current recurring payments, but for those the batch re-sends or corrects (ingested,
    # the lines would take their place). The payments of the batch's periods first (few:
    # a batch pays periods the ledger has not paid), then those the batch replaces out.
    # The batch's periods are a few: the ledger's payments of other periods are left out
    # before they meet the batch's million keys
    periods = tabs.make("bfa_pc_periods", Column("period", String(7)),
                        rows=select(c.period).where(recurring).distinct())
    Store.analyze_table(conn, periods.name)
    found = tabs.make("bfa_pc_found", Column("record_id", String(128)),
                      Column("person", String(40)), Column("insurance", String(16)),
                      Column("period", String(7)), Column("amount_fen", BigInteger),
                      rows=select(E.c.record_id, E.c.person, E.c.insurance, E.c.period,
                                  E.c.amount_fen)
        .select_from(E)
        .join(L, and_(c.person == E.c.person, c.insurance == E.c.insurance,
                      c.period == E.c.period, recurring))
        .where(E.c.kind == "benefit_payment", E.c.superseded.is_(False), m.recurring(),
               E.c.period.in_(select(periods.c.period)))
        .distinct())
    Store.analyze_table(conn, found.name)
    l2, l3 = L.alias("l_id"), L.alias("l_fix")
    paid = tabs.make("bfa_pc_paid", Column("person", String(40)),
                     Column("insurance", String(16)), Column("period", String(7)),
                     Column("paid", BigInteger), index=(("person", "insurance", "period"),),
                     rows=select(found.c.person, found.c.insurance, found.c.period,
                                 func.sum(found.c.amount_fen))
        .where(~exists().where(l2.c.record_id == found.c.record_id),
               ~exists().where(l3.c.corrects == found.c.record_id))
        .group_by(found.c.person, found.c.insurance, found.c.period))
    # the same id more than once in the batch
    twice = tabs.make("bfa_pc_twice", Column("record_id", String(128)),
                      index=(("record_id",),),
                      rows=select(c.record_id).group_by(c.record_id).having(func.count() > 1))
    # the regions and insurances the ledger holds approvals of (Matcher.covered)
    covered = tabs.make("bfa_pc_covered", Column("region", String(6)),
                        Column("insurance", String(16)), index=(("region", "insurance"),),
                        rows=select(P.c.region, P.c.insurance)
                        .where(P.c.kind == "benefit_approval")
                        .group_by(P.c.region, P.c.insurance))
    # the accounts of the approvals by start (the payee's look-up)
    accounts = tabs.make("bfa_pc_accounts", Column("person", String(40)),
                         Column("insurance", String(16)), Column("start", String(7)),
                         Column("account", String(40)),
                         index=(("person", "insurance", "start", "account"),),
                         rows=select(A.c.person, A.c.insurance, A.c.start, A.c.account)
                         .group_by(A.c.person, A.c.insurance, A.c.start, A.c.account))
    for tbl in (many, paid, twice, covered, accounts):
        Store.analyze_table(conn, tbl.name)
    any_death = conn.execute(select(literal(1)).select_from(deaths).limit(1)).first()
    watch.lap("groups")

    # every reason of a line, one pass
    cv, ac, tw, pd, d, mn = (covered.alias("cv"), accounts.alias("ac"), twice.alias("tw"),
                             paid.alias("pd"), deaths.alias("d"), many.alias("mn"))

    def of_key(g: Any) -> Any:
        return and_(g.c.person == c.person, g.c.insurance == c.insurance,
                    g.c.period == c.period)

    def flag(reason: str, cond: Any) -> Any:
        return case((cond, _bit(reason)), else_=0)

    # the ledger's business records with a line's id: only those whose ids lie between the
    # batch's least and greatest (``ids``), an index range (a batch's ids are mostly a
    # run of new ones, beside or past the ledger's), not every business record of the
    # ledger hashed (1.5 million at two million records); the whole index at worst
    rid = (select(t.records.c.seq, t.records.c.record_id)
           .where(t.records.c.domain == "business", t.records.c.record_id >= ids[0],
                  t.records.c.record_id <= ids[1]).subquery("rid"))
    # the recurring lines of the line's person, insurance and period with what the ledger
    # paid for it: the line's own amount when it is the only one
    total = func.coalesce(mn.c.batch, c.amount_fen) + func.coalesce(pd.c.paid, 0)
    mask = (
        # PAYMENT_WITHOUT_APPROVAL (Matcher.without_approval), where approvals are held
        flag("no_approval", and_(cv.c.region.is_not(None), or_(
            and_(~recurring, func.coalesce(S.c.ever, 0) == 0),
            and_(recurring, S.c.force.is_(None)))))
        # OVERPAYMENT (Matcher.overpayments, the batch's recurring lines of the person,
        # insurance and period added to the ledger's): above the amount in force, beyond
        # the tolerance
        + flag("over_approved", and_(recurring, total > S.c.approved,
                                     ~m.within(total, S.c.approved)))
        # PAYMENT_AFTER_TERMINATION
        + flag("terminated", and_(recurring, S.c.stopped == 1))
        # PAYMENT_AFTER_DEATH (the death list: the first period after the month of death)
        + (flag("dead", and_(recurring, c.period >= d.c.after)) if any_death else 0)
        # PAYEE_MISMATCH: no approval with the latest start has the line's account
        + flag("payee_mismatch", and_(S.c.latest.is_not(None), ac.c.start.is_(None)))
        # DUPLICATE_PAYMENT with the ledger; or the id is a business record of the ledger
        # already: ingested, it would add nothing (a re-send) or be refused (a conflict),
        # and the bank would pay it again
        + flag("already_paid", or_(and_(recurring, pd.c.person.is_not(None)),
                                   rid.c.seq.is_not(None)))
        # DUPLICATE_PAYMENT inside the batch: the same id, or (both recurring) the same
        # person, insurance and period
        + flag("duplicate_in_batch", or_(tw.c.record_id.is_not(None),
                                         and_(recurring, mn.c.n.is_not(None))))
        # not judged for PAYMENT_WITHOUT_APPROVAL (Matcher.covered): counted
        + case((cv.c.region.is_(None), UNJUDGED), else_=0)
    ).label("mask")
    joined = (
        L.outerjoin(S, and_(S.c.person == c.person, S.c.insurance == c.insurance,
                            S.c.start <= c.period,
                            or_(S.c.until.is_(None), S.c.until > c.period)))
        .outerjoin(mn, and_(of_key(mn), recurring))
        .outerjoin(pd, of_key(pd))
        .outerjoin(ac, and_(ac.c.person == c.person, ac.c.insurance == c.insurance,
                            ac.c.start == S.c.latest, ac.c.account == c.account))
        .outerjoin(cv, and_(cv.c.region == c.region, cv.c.insurance == c.insurance))
        .outerjoin(tw, tw.c.record_id == c.record_id)
        .outerjoin(rid, rid.c.record_id == c.record_id))
    if any_death:  # no death list compared: no join of a million lines with nothing
        joined = joined.outerjoin(d, d.c.person == c.person)
    judged = select(c.line, c.record_id, mask).select_from(joined).subquery("judged")
    # the lines held, and those unjudged, with their ids: read back without the lines
    held = tabs.make("bfa_pc_held", tabs.key("line"), Column("record_id", String(128)),
                     Column("mask", Integer),
                     rows=select(judged.c.line, judged.c.record_id, judged.c.mask)
                     .where(judged.c.mask != 0))
    watch.lap("reasons")
    return held, relied


class _Relied:
    """The approval rows the clear lines rely on, compared with their entries (ADR 0032)
    in a thread while the statements that judge the lines run on the connection.

    Each row relied on (the approvals that put one in force, and the latest approval whose
    account a line is compared with: of every current approval of a person and insurance
    of the batch — ``relied``, the approvals :func:`_judge` reads — a few more than those)
    is decoded again from its leaf by the refresh's own decoder and compared column by
    column, as the derived check does; ``superseded`` is recomputed from the stored
    ``corrects`` of ``rc_records`` (what the derived check reads for it too). The rows are
    read in one join, not one query per few hundred entries (a batch of a million lines
    relies on tens of thousands), and held until compared: the connection is needed for
    the next statement, and the comparison, pure Python, overlaps the database's work."""

    def __init__(self, conn: Connection, relied: Table) -> None:
        e, R = entries.c, t.records
        # "is not null" lets PostgreSQL hash the few corrections through their partial
        # index instead of every business record (a million and a half: 2.9 s → 0.9 s)
        corrected = (select(literal(1)).select_from(R)
                     .where(R.c.domain == "business", R.c.corrects.is_not(None),
                            R.c.corrects == P.c.record_id)
                     .correlate_except(R).exists())
        Store.whole_joins(conn, False)  # the entries are read by key
        self.rows = conn.execute(
            select(P.c.seq, e.leaf, e.entry_hash, corrected, *P.columns).select_from(relied)
            .join(P, P.c.seq == relied.c.seq)
            .outerjoin(entries, and_(e.seq == relied.c.seq, e.domain == "business"))
            .order_by(P.c.seq)).all()
        Store.whole_joins(conn, True)
        self.out = Checked()
        self.failed: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="precheck-relied", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._compare()
        except BaseException as err:  # handed to the caller by result()
            self.failed = err
        finally:
            self.rows = []

    def _compare(self) -> None:
        out = self.out
        names = [c.name for c in P.columns]
        void_at, rid_at = names.index("superseded"), names.index("record_id")
        for seq, leaf, entry_hash, fixed, *stored in self.rows:
            rid = str(stored[rid_at])
            out.entries += 1
            if leaf is None:  # no business entry has this seq
                out.add(Mismatch(P.name, int(seq), rid, "planted"))
                continue
            batch = _Batch({}, set())
            try:
                batch.add(int(seq), leaf_record(bytes(leaf)), bytes(entry_hash).hex())
            except (FormatError, KeyError, TypeError, ValueError, AttributeError) as err:
                out.add(Mismatch("entries", int(seq), rid, "undecodable", expected=str(err)))
                continue
            if not batch.persons:
                out.add(Mismatch(P.name, int(seq), rid, "planted"))
                continue
            want = list(batch.persons[0])
            want[void_at] = bool(want[void_at]) or bool(fixed)
            for name, got, exp in zip(names, stored, want, strict=True):
                if not _same(got, exp):
                    out.add(Mismatch(P.name, int(seq), rid, "differs", name, got, exp))

    def result(self) -> Checked:
        self.thread.join()
        if self.failed is not None:
            raise self.failed
        return self.out


def _check_relied(store: Store, conn: Connection, relied: _Relied) -> Checked:
    """The comparison of the rows relied on (:class:`_Relied`), and planted rows: no row of
    the tables the check reads may be keyed outside the entries."""
    out = relied.result()
    mark = watermark(store, conn)
    for table in (P, E):  # what the check reads: rows keyed outside the entries
        for where in (table.c.seq < 0, table.c.seq >= mark):  # two index ranges, not an OR
            for seq, rid in conn.execute(select(table.c.seq, table.c.record_id)
                                         .where(where).limit(MAX_LISTED)):
                out.add(Mismatch(table.name, int(seq), str(rid), "planted"))
    return out


def _stream(conn: Connection, held: Table, batch: ProposedFile, sink: HeldSink,
            with_text: bool) -> None:
    rows = conn.execute(
        select(held.c.line, held.c.record_id, held.c.mask)
        .where(held.c.mask.op("&")(HELD) != 0).order_by(held.c.line)
        .execution_options(yield_per=STREAM_PART))
    again = batch.reread() if with_text else None
    for line, rid, mask in _iter(rows):
        text = again.text(int(line)) if again is not None else None
        sink(Held(int(line), str(rid),
                  tuple(r for r in HOLD_REASONS if int(mask) & _bit(r))), text)
    if again is not None:
        again.close()


def _iter(rows: Any) -> Iterator[tuple[Any, ...]]:
    for r in rows:
        yield tuple(r)


__all__ = [
    "HOLD_BREAK",
    "HOLD_REASONS",
    "HOLD_TEXT",
    "PREFIX",
    "Held",
    "HeldSink",
    "PrecheckResult",
    "precheck",
]
