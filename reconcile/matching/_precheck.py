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

**Set-based, memory flat.** The lines stream from the file into a temporary table
(``Store.copy_rows``: COPY on PostgreSQL) a part at a time; a few statements join it to
``rc_person_events`` and ``rc_events`` and write ``(line, reason)`` rows into a second
one; the held lines are read back in line order and handed to the caller one at a time.

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

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
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
    """The check's temporary tables, on its connection, dropped before it commits."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.md = MetaData()
        self.made: list[Table] = []
        self.indexed = not Store.traits(conn).hash_joins_whole

    def key(self, name: str) -> Column[int]:
        """A table's key column: its primary key where statements look rows up by it
        (SQLite); on PostgreSQL, which hash-joins these tables whole, a plain column (a
        million-row index costs more to build than it saves)."""
        return Column(name, BigInteger, primary_key=self.indexed, autoincrement=False)

    def make(self, name: str, *cols: Column[Any], index: tuple[tuple[str, ...], ...] = ()
             ) -> Table:
        from sqlalchemy import Index

        tbl = Table(name, self.md, *cols, prefixes=["TEMPORARY"])
        tbl.create(self.conn)
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
             death_list: DeathList = death_list,
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
    one_off = frozenset(r.one_off_benefits)
    who = ledger.actor(label)
    secret = ledger.secret()
    store = ledger.store
    batch = ProposedFile(path, progress)
    watch = _Watch(timings)
    with store.writer() as conn:
        Deriver(store, conn).finish(conn, store.head(conn)[0])  # the tables are current
        watch.lap("refresh")
        Store.tune_analysis(conn)
        Store.temp_buffers(conn, TEMP_BUFFERS)
        deaths = {p: _month_after(d) for p, d in death_list(store, conn).items()}
        tabs = _Tables(conn)
        lines = tabs.make(
            "bfa_pc_lines", tabs.key("line"),
            Column("record_id", String(128)), Column("region", String(6)),
            Column("person", String(40)), Column("insurance", String(16)),
            Column("period", String(7)), Column("amount_fen", BigInteger),
            Column("account", String(40)), Column("one_off", Integer),
            Column("corrects", String(128)), Column("dead", Integer),
            index=(("person", "insurance", "period"), ("record_id",), ("corrects",)))
        names = [c.name for c in lines.columns]
        part: list[tuple[Any, ...]] = []
        for ln in batch.lines(secret):
            off = ln.benefit is not None and ln.benefit in one_off
            after = deaths.get(ln.person)
            part.append((ln.line, ln.record_id, ln.region, ln.person, ln.insurance, ln.period,
                         ln.amount_fen, ln.account, int(off), ln.corrects,
                         int(not off and after is not None and ln.period >= after)))
            if len(part) >= PART:
                store.copy_rows(conn, lines.name, names, part)
                part = []
        store.copy_rows(conn, lines.name, names, part)
        Store.analyze_table(conn, lines.name)
        _corrections_known(conn, lines, batch.name)
        watch.lap("load")
        held = _judge(conn, tabs, lines, m, watch)
        Store.whole_joins(conn, False)  # the entries are read by key from here on
        checked = _check_relied(store, conn, lines, tabs)
        watch.lap("derived check")
        if not checked.ok:
            raise IntegrityError(_(
                "the reconciler's derived rows this check relies on differ from the ledger's "
                "entries, so no line can be cleared: {first}; run 'bfa reconcile' (it "
                "rebuilds them from the entries) and check again").format(
                    first="; ".join(checked.messages()[:3])))
        counts = dict.fromkeys(HOLD_REASONS, 0)
        for code, n in conn.execute(select(held.c.reason, func.count())
                                    .group_by(held.c.reason)):
            counts[HOLD_REASONS[int(code)]] = int(n)
        n_held = int(conn.execute(select(func.count(func.distinct(held.c.line)))).scalar_one())
        unjudged = int(conn.execute(select(func.count()).select_from(lines)
                                    .where(~_covered(lines))).scalar_one())
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
            _stream(conn, lines, held, batch, on_held, with_text)
        tabs.drop()
        watch.lap("held lines")
    return PrecheckResult(batch.name, batch.digest, batch.count, n_held, counts, unjudged,
                          digest, record, seq)


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


TEMP_BUFFERS = "256MB"
"""PostgreSQL: memory for the check's temporary tables (a million lines are about 150 MB;
the default 8 MB writes and reads them back through temporary files)."""


def _next_number(store: Store, conn: Connection, digest: str) -> int:
    """One more than the checks of this file the ledger records (ids ``…/1``, ``…/2`` …)."""
    last = latest_numbered(store, conn, "control", f"{PREFIX}{digest}/")
    return 1 if last is None else int(str(last.record["id"]).rsplit("/", 1)[1]) + 1


def _covered(lines: Table) -> Any:
    """The line's region and insurance are ones of which the ledger holds an approval
    (:meth:`Matcher.covered`)."""
    return tuple_(lines.c.region, lines.c.insurance).in_(
        select(P.c.region, P.c.insurance).where(P.c.kind == "benefit_approval"))


def _judge(conn: Connection, tabs: _Tables, L: Table, m: Matcher, watch: _Watch) -> Table:
    """Write ``(line, reason)`` for every reason a line is held for; returns that table."""
    recurring = L.c.one_off == 0
    # every statement here joins the batch whole: hash joins. Estimates of a table made a
    # moment ago (the groups of a batch) can make the planner probe an index per row of a
    # million and scan the batch inside an anti join: quadratic
    Store.whole_joins(conn, True)
    # the start of the approval in force for each line (Matcher.in_force) ...
    force = tabs.make("bfa_pc_force", tabs.key("line"), Column("start", String(7)))
    ap, in_force = m.in_force("benefit_approval", L.c.person, L.c.insurance, L.c.period, "ap")
    conn.execute(force.insert().from_select(
        ["line", "start"], select(L.c.line, func.max(ap.c.period)).select_from(L)
        .join(ap, in_force).group_by(L.c.line)))
    # ... and of the latest current approval starting in or before its period (payee)
    latest = tabs.make("bfa_pc_latest", tabs.key("line"), Column("start", String(7)))
    p2 = P.alias("p2")
    conn.execute(latest.insert().from_select(
        ["line", "start"], select(L.c.line, func.max(p2.c.period)).select_from(L)
        .join(p2, and_(p2.c.kind == "benefit_approval", p2.c.person == L.c.person,
                       p2.c.insurance == L.c.insurance, p2.c.period <= L.c.period,
                       p2.c.superseded.is_(False)))
        .group_by(L.c.line)))
    for tbl in (force, latest):
        Store.analyze_table(conn, tbl.name)
    watch.lap("approvals")

    held = tabs.make("bfa_pc_held", Column("line", BigInteger), Column("reason", Integer),
                     index=(("line",),))

    def hold(reason: str, q: Any) -> None:
        conn.execute(held.insert().from_select(
            ["line", "reason"], q.add_columns(literal(HOLD_REASONS.index(reason)))))
        watch.lap(reason)

    # no_approval
    any_ap = P.alias("any_ap")
    approved_ever = (select(literal(1)).select_from(any_ap)
                     .where(any_ap.c.kind == "benefit_approval", any_ap.c.person == L.c.person,
                            any_ap.c.insurance == L.c.insurance,
                            any_ap.c.superseded.is_(False)).exists())
    in_force_now = exists().where(force.c.line == L.c.line)
    hold("no_approval", select(L.c.line).where(
        _covered(L), or_(and_(~recurring, ~approved_ever), and_(recurring, ~in_force_now))))

    # the recurring lines per person, insurance and period: their total, how many, the
    # start of the approval in force; and what the ledger paid for each (one pass each)
    groups = tabs.make("bfa_pc_groups", Column("person", String(40)),
                       Column("insurance", String(16)), Column("period", String(7)),
                       Column("batch", BigInteger), Column("n", BigInteger),
                       Column("start", String(7)),
                       index=(("person", "insurance", "period"),))
    conn.execute(groups.insert().from_select(
        ["person", "insurance", "period", "batch", "n", "start"],
        select(L.c.person, L.c.insurance, L.c.period, func.sum(L.c.amount_fen), func.count(),
               func.max(force.c.start))
        .select_from(L).outerjoin(force, force.c.line == L.c.line).where(recurring)
        .group_by(L.c.person, L.c.insurance, L.c.period)))
    Store.analyze_table(conn, groups.name)
    paid = tabs.make("bfa_pc_paid", Column("person", String(40)),
                     Column("insurance", String(16)), Column("period", String(7)),
                     Column("paid", BigInteger), index=(("person", "insurance", "period"),))
    l2, l3 = L.alias("l_id"), L.alias("l_fix")
    conn.execute(paid.insert().from_select(
        ["person", "insurance", "period", "paid"],
        select(groups.c.person, groups.c.insurance, groups.c.period, func.sum(E.c.amount_fen))
        .select_from(groups)
        .join(E, and_(E.c.person == groups.c.person, E.c.insurance == groups.c.insurance,
                      E.c.period == groups.c.period))
        .where(E.c.kind == "benefit_payment", E.c.superseded.is_(False), m.recurring(),
               ~exists().where(l2.c.record_id == E.c.record_id),
               ~exists().where(l3.c.corrects == E.c.record_id))
        .group_by(groups.c.person, groups.c.insurance, groups.c.period)))
    Store.analyze_table(conn, paid.name)
    watch.lap("groups")

    def of_group(g: Any) -> Any:
        return and_(g.c.person == L.c.person, g.c.insurance == L.c.insurance,
                    g.c.period == L.c.period)

    # over_approved (Matcher.overpayments, the batch's lines added to the ledger's)
    pa = P.alias("approved")
    total = groups.c.batch + func.coalesce(paid.c.paid, 0)
    approved = func.max(pa.c.amount_fen)
    over = (select(groups.c.person, groups.c.insurance, groups.c.period)
            .select_from(groups)
            .outerjoin(paid, and_(paid.c.person == groups.c.person,
                                  paid.c.insurance == groups.c.insurance,
                                  paid.c.period == groups.c.period))
            .join(pa, and_(pa.c.kind == "benefit_approval", pa.c.person == groups.c.person,
                           pa.c.insurance == groups.c.insurance, pa.c.period == groups.c.start,
                           pa.c.superseded.is_(False)))
            .group_by(groups.c.person, groups.c.insurance, groups.c.period, groups.c.batch,
                      paid.c.paid)
            .having(and_(total > approved, ~m.within(total, approved)))
            .subquery("over"))
    hold("over_approved", select(L.c.line).select_from(L).join(over, of_group(over))
         .where(recurring))

    # terminated (Matcher.after_termination)
    tm, again = P.alias("tm"), P.alias("again")
    reapproved = (select(literal(1)).select_from(again)
                  .where(again.c.kind == "benefit_approval", again.c.person == L.c.person,
                         again.c.insurance == L.c.insurance, again.c.superseded.is_(False),
                         or_(again.c.period > tm.c.period,
                             and_(again.c.period == tm.c.period,
                                  again.c.occurred_day > tm.c.occurred_day)),
                         again.c.period <= L.c.period)
                  .correlate_except(again).exists())
    ended = (select(literal(1)).select_from(tm)
             .where(tm.c.kind == "termination", tm.c.person == L.c.person,
                    or_(tm.c.insurance == L.c.insurance, tm.c.insurance == "all"),
                    L.c.period >= tm.c.period, tm.c.superseded.is_(False), ~reapproved)
             .correlate_except(tm).exists())
    hold("terminated", select(L.c.line).where(recurring, ended))

    # dead: decided as the lines were read (the death list by person, month of death)
    hold("dead", select(L.c.line).where(L.c.dead == 1))

    # payee_mismatch (Matcher.payee_mismatches)
    same = (select(literal(1)).select_from(p2)
            .where(p2.c.kind == "benefit_approval", p2.c.person == L.c.person,
                   p2.c.insurance == L.c.insurance, p2.c.period == latest.c.start,
                   p2.c.superseded.is_(False), p2.c.account == L.c.account)
            .correlate_except(p2).exists())
    hold("payee_mismatch", select(L.c.line).select_from(L)
         .join(latest, latest.c.line == L.c.line).where(~same))

    # already_paid (Matcher.duplicates, with the ledger); or the line's id is a business
    # record of the ledger already: ingested, it would add nothing (a re-send) or be
    # refused (a conflict), and the bank would pay it again
    rec = t.records.c
    taken = (select(literal(1)).where(rec.record_id == L.c.record_id, rec.domain == "business")
             .correlate(L).exists())
    hold("already_paid", union(
        select(L.c.line).select_from(L).join(paid, of_group(paid)).where(recurring),
        select(L.c.line).where(taken)).subquery("paid_lines").select())

    # duplicate_in_batch: the same id, or (recurring) the same person, insurance and period
    ids = select(L.c.record_id).group_by(L.c.record_id).having(func.count() > 1)
    twice = select(groups).where(groups.c.n > 1).subquery("twice")
    hold("duplicate_in_batch", union(
        select(L.c.line).where(L.c.record_id.in_(ids)),
        select(L.c.line).select_from(L).join(twice, of_group(twice)).where(recurring)
    ).subquery("dup").select())
    return held


def _check_relied(store: Store, conn: Connection, L: Table, tabs: _Tables) -> Checked:
    """The approval rows the clear lines rely on against their entries, and planted rows.

    Each row relied on (the approvals that put one in force, and the latest approval whose
    account a line is compared with: of every current approval of a person and insurance
    of the batch, a few more than those) is decoded again from its leaf by the refresh's own
    decoder and compared column by column, as the derived check does (ADR 0032);
    ``superseded`` is recomputed from the stored ``corrects`` of ``rc_records`` (what the
    derived check reads for it too). One streamed join, not one query per few hundred
    entries: the rows a batch of a million lines relies on are tens of thousands."""
    relied = tabs.make("bfa_pc_relied", tabs.key("seq"))
    # every current approval of a person and insurance of the batch: those a clear line
    # relies on among them (one semi-join, not a join per line of a million)
    conn.execute(relied.insert().from_select(["seq"], select(P.c.seq).where(
        P.c.kind == "benefit_approval", P.c.superseded.is_(False),
        tuple_(P.c.person, P.c.insurance).in_(select(L.c.person, L.c.insurance)))))
    e, R = entries.c, t.records
    corrected = (select(literal(1)).select_from(R)
                 .where(R.c.domain == "business", R.c.corrects == P.c.record_id)
                 .correlate_except(R).exists())
    names = [c.name for c in P.columns]
    void_at = names.index("superseded")
    out = Checked()
    rows = conn.execute(
        select(P.c.seq, e.leaf, e.entry_hash, corrected, *P.columns).select_from(relied)
        .join(P, P.c.seq == relied.c.seq)
        .outerjoin(entries, and_(e.seq == relied.c.seq, e.domain == "business"))
        .order_by(P.c.seq).execution_options(yield_per=STREAM_PART))
    for seq, leaf, entry_hash, fixed, *stored in rows:
        rid = str(stored[names.index("record_id")])
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
    mark = watermark(store, conn)
    for table in (P, E):  # what the check reads: rows keyed outside the entries
        for where in (table.c.seq < 0, table.c.seq >= mark):  # two index ranges, not an OR
            for seq, rid in conn.execute(select(table.c.seq, table.c.record_id)
                                         .where(where).limit(MAX_LISTED)):
                out.add(Mismatch(table.name, int(seq), str(rid), "planted"))
    return out


def _stream(conn: Connection, L: Table, held: Table, batch: ProposedFile, sink: HeldSink,
            with_text: bool) -> None:
    rows = conn.execute(
        select(held.c.line, L.c.record_id, held.c.reason).select_from(held)
        .join(L, L.c.line == held.c.line).order_by(held.c.line, held.c.reason)
        .execution_options(yield_per=STREAM_PART))
    again = batch.reread() if with_text else None
    current: tuple[int, str] | None = None
    reasons: list[str] = []

    def emit() -> None:
        if current is not None:
            text = again.text(current[0]) if again is not None else None
            sink(Held(current[0], current[1], tuple(dict.fromkeys(reasons))), text)

    for line, rid, reason in _iter(rows):
        if current is None or current[0] != int(line):
            emit()
            current, reasons = (int(line), str(rid)), []
        reasons.append(HOLD_REASONS[int(reason)])
    emit()
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
