"""``run_reconcile``: refresh the derived tables, run the matching SQL, judge by date.

This module owns the run: the SQL (:mod:`reconcile.matching._match`, run full or
incrementally by :mod:`reconcile.matching._incremental`) returns only rows that are not in order;
here each row is judged against the run's date and the
:class:`~reconcile.matching._rules.Rules`: still inside its window, it is *expected*; past it,
it is a :class:`Break`. Amounts that cannot be right whatever happens later (an event
allocated more than its amount, a movement whose allocations do not add up, an
ambiguous match, a late settlement, a duplicate, a payment after a termination or to
another account, a returned payment not yet paid again, a movement against its fund
account's purpose, a voucher amount that differs) are breaks at once. The bank
statement findings come from :func:`reconcile.bank.statement_breaks`; an agency's own SQL
rules (:mod:`reconcile.matching._custom`) run in full every run, after the built-in ones,
in their sandbox. Last, each break gets its ``evidence`` digest from the entry hashes of
its records.

The findings are streamed: the matching rows go to ``rc_findings`` in parts and the judge
reads them back from there as it iterates (:class:`~reconcile.matching._match.Findings`).
A :class:`Report` holds every break, as the commands that render it need;
:func:`derive_breaks` hands them over in parts instead, so that its memory does not grow
with the findings (``bfa bundle verify``'s re-derivation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import DBAPIError

from ledger import InputError, Ledger, Store
from reconcile.bank import statement_breaks
from reconcile.bank._withdraw import withdrawal_breaks
from reconcile.matching import _tables as t
from reconcile.matching._archive import archive_breaks
from reconcile.matching._custom import run_sql_rules
from reconcile.matching._derived import (
    Checked,
    check_all,
    check_dirty,
    check_planted,
    check_spans,
    rebuild,
    rotation,
)
from reconcile.matching._derived import spans_of as rotation_spans
from reconcile.matching._derived import watermark as derived_watermark
from reconcile.matching._gc import collect_young, paused_gc
from reconcile.matching._incremental import Outcome, matched, rules_digest
from reconcile.matching._match import Findings
from reconcile.matching._refresh import refresh
from reconcile.matching._rules import Rules, load_rules
from reconcile.matching._state import ids_digest, last_run, own_rotation, state_base
from reconcile.matching._units import day_date, epoch_day, money
from reconcile.reports._report import (
    Break,
    Expected,
    Msg,
    Report,
    RunInfo,
    Severity,
    derived_break,
    integrity_break,
    msg,
)
from reconcile.workflow._sod import sod_breaks
from reconcile.workflow._workflow import (
    Applied,
    apply_states_in,
    looked_back,
    present_mismatch,
)
from schemas import N_
from schemas import gettext as _

EVIDENCE_PART = 4000
"""Breaks per part when PostgreSQL's look-ups run beside the building (:func:`_with_evidence`)."""

TZ = ZoneInfo("Asia/Shanghai")


def today() -> date:
    """Today in Asia/Shanghai (the default as-of date)."""
    return datetime.now(TZ).date()


_TOO_LARGE = N_(
    "amounts too large to add up: a sum the reconciler keeps in fen (a month of a fund "
    "account, the allocations of one event) exceeds 92233720368547758.07 yuan; correct the "
    "records with the largest amounts (send them again with 'corrects')"
)


@contextmanager
def _sums_fit() -> Iterator[None]:
    """Turn a 64-bit overflow of a sum into an input error (exit 2), not an internal one.

    Every amount fits (15 integer digits), but a month of an account holds as many as
    were sent; SQLite's ``SUM`` raises "integer overflow", PostgreSQL a
    numeric_value_out_of_range (SQLSTATE 22003) when the sum meets a BIGINT.
    """
    try:
        yield
    except OverflowError as e:
        raise InputError(_(_TOO_LARGE)) from e
    except DBAPIError as e:
        if getattr(e.orig, "sqlstate", None) == "22003" or "integer overflow" in str(e.orig):
            raise InputError(_(_TOO_LARGE)) from e
        raise


@paused_gc
def run_reconcile(
    ledger: Ledger, as_of: date | None = None, rules: Rules | Mapping[str, Any] | None = None,
    *, full: bool = False, check_derived: bool = True,
) -> Report:
    """Reconcile the ledger as of a date.

    Args:
        ledger: an open ledger (schema revision 0005 or later).
        as_of: the date to judge windows by; default today in Asia/Shanghai.
        rules: a :class:`Rules` or a dict of overrides of :data:`DEFAULT_RULES`.
        full: re-check everything even when an incremental run would do
            (:mod:`reconcile.matching._incremental`); the report is the same either way.
        check_derived: False only for a ledger no one else can write, whose derived
            tables this process has just derived from verified leaves (a proof bundle's
            scratch ledger): the check of the rows against the entries is skipped.

    Returns:
        The :class:`Report`; ``report.clean`` is true when there are no breaks. The breaks
        are not recorded in the workflow (:func:`run_tracked` does that).
    """
    report = _reconcile(ledger, as_of, rules, full=full, track=False,
                        check_derived=check_derived)[0]
    assert report is not None
    return report


BreakSink = Callable[[Connection, list[Break]], None]
"""Takes a part of a run's breaks, inside the run's transaction (:func:`derive_breaks`)."""


@paused_gc
def derive_breaks(ledger: Ledger, as_of: date, rules: Rules, sink: BreakSink) -> None:
    """The breaks :func:`run_reconcile` would report for ``as_of`` (a full run), handed to
    ``sink`` in parts of at most :data:`PART` as they are judged, never all held: memory
    stays flat however many there are (``bfa bundle verify`` re-derives a bundle's
    findings this way into its scratch ledger). Only for a ledger no one else can write,
    whose derived tables this process has just derived from verified leaves: the derived
    tables are not checked, and the breaks carry no ``evidence`` and no ``occurred_on``.
    A break id may come more than once (as in :meth:`Report.build`, the last counts).
    An agency's own SQL rules are not run here: a bundle's verifier lists their findings
    as not re-derivable (ADR 0036).
    ``sink(conn, breaks)`` runs in the run's transaction, on its connection."""
    _reconcile(ledger, as_of, rules, full=True, track=False, check_derived=False, sink=sink)


PART = 1000
"""Breaks judged at a time by :func:`derive_breaks` and :func:`stream_report`."""


@paused_gc
def stream_report(ledger: Ledger, as_of: date, rules: Rules, sink: BreakSink) -> None:
    """The breaks :func:`run_reconcile` would report for ``as_of`` — built with their
    evidence and ``occurred_on``, the derived tables checked first and the agency's own SQL
    rules run — handed to ``sink`` in parts of at most :data:`PART` as they are judged,
    never all held (``bfa bundle export`` keeps the ones of its scope). A break id may
    come more than once (as in :meth:`Report.build`, the last counts); no expected items.
    ``sink(conn, breaks)`` runs in the run's transaction, on its connection."""
    _reconcile(ledger, as_of, rules, full=False, track=False, sink=sink, complete=True)


@paused_gc
def run_tracked(
    ledger: Ledger, as_of: date | None = None, rules: Rules | Mapping[str, Any] | None = None,
    *, full: bool = False, derived_days: int = 0,
) -> Applied:
    """:func:`run_reconcile`, with the breaks' workflow states recorded in the run's own
    transaction (``bfa reconcile``, ``bfa nightly``): the run's ``control.reconcile``
    entry then states which breaks it left present (FORMAT.md §2.5), which every list of
    breaks and ``bfa verify`` check. ``derived_days`` (the nightly's ``--derived-days``):
    also check the next slice of a rotation that re-checks every row of the derived
    tables within that many nights (:func:`_check_derived`)."""
    applied = _reconcile(ledger, as_of, rules, full=full, track=True,
                         derived_days=derived_days)[1]
    assert applied is not None
    return applied


DerivedCheck = tuple[Checked, "tuple[int, int] | None"]
"""What a run's check of the derived tables found, and the nightly slice it covered."""


def _check_derived(store: Store, days: int, identity: str, *, full: bool = False
                   ) -> DerivedCheck:
    """Check, before the run matches, the derived rows it is about to rely on most: the
    rows of the entries since the last run's ``checked`` (``C``: the run's new records)
    and ``rc_dirty``; with ``days`` (a nightly), also the next slice of the rotation,
    ``⌈W / days⌉`` entries from where the last slice recorded by ``identity`` (the
    nightly's) ended (W: the watermark; FORMAT.md §8.3), and that no row is keyed below 0
    or at or above W (planted: the run would read it). When the run will keep no stored
    state (no run yet, or the findings emptied) it matches every row: every row is
    checked first, as by ``bfa verify``. ``full``
    (``bfa reconcile --full``, asked to re-check everything): every row, as ``bfa
    verify`` (:func:`reconcile.matching._derived.check_all`)."""
    if full:
        with store.reader() as conn:
            return check_all(store, conn), None
    with store.reader() as conn:
        base = state_base(store, conn)
        mark = derived_watermark(store, conn)
        slice_ = None
        if days > 0:
            prev = own_rotation(store, conn, last_run(store, conn), identity)
            begin = 0 if prev is None else sum(prev)
            slice_ = rotation(begin, mark, days)
        if base is None:  # nothing stored is kept: this run matches every row, so every
            return check_all(store, conn), slice_  # row is checked first (emptied findings)
        spans = [(min(base.checked, mark), mark)]
        if slice_ is not None:
            spans += rotation_spans(*slice_, mark)
        out = check_spans(store, conn, spans, _reread(conn, mark))
        check_planted(conn, mark, out)  # a row no refresh wrote would be read by the run
        check_dirty(store, conn, out)
    return out, slice_


def _reread(conn: Connection, mark: int) -> list[int]:
    """The entries whose rows every incremental run reads again, whatever changed: the
    open events (``rc_open``) and the current unallocated movements. Checked each run, so
    a row changed for one run and put back after it cannot have closed a break unseen."""
    m = t.movements.c
    opened = conn.execute(select(t.open_events.c.seq).where(t.open_events.c.seq < mark))
    loose = conn.execute(select(m.seq).where(m.allocated.is_(False), m.superseded.is_(False),
                                             m.seq < mark))
    return [int(x) for x in opened.scalars()] + [int(x) for x in loose.scalars()]


def _derived_breaks(checked: Checked) -> list[Break]:
    """One ``LEDGER_INTEGRITY`` break per difference kept, one more for the rest."""
    out = [derived_break(m.table, m.seq, m.record, m.column or m.what, m.message())
           for m in checked.mismatches]
    if checked.more:
        out.append(integrity_break(checked.messages()[-1], None))
    return out


def _reconcile(ledger: Ledger, as_of: date | None, rules: Rules | Mapping[str, Any] | None,
               *, full: bool, track: bool, derived_days: int = 0, check_derived: bool = True,
               sink: BreakSink | None = None, complete: bool = False
               ) -> tuple[Report | None, Applied | None]:
    started = datetime.now(TZ)
    as_of = as_of or started.date()
    rules = rules if isinstance(rules, Rules) else Rules.from_mapping(rules)
    applied: Applied | None = None
    look_back = False
    if track:  # a day before the last tracked run's: a look back that changes no state
        with ledger.store.reader() as c:
            last = last_run(ledger.store, c)
        look_back = bool(last and last.as_of and as_of.isoformat() < last.as_of)
        track = not look_back
    with _sums_fit():
        decoded, _size = refresh(ledger.store)
        checked, slice_ = (_check_derived(ledger.store, derived_days,
                                          ledger.actor().identity, full=full)
                           if check_derived else (Checked(), None))
        if not checked.ok:  # rebuilt from the entries: this run and the next are right
            with ledger.store.writer() as conn:
                rebuild(ledger.store, conn)
            decoded, _size = refresh(ledger.store)
            full = True
        # judged and looked up inside match's transaction: an ingest committing meanwhile
        # changes neither the evidence nor the size this report states
        with matched(ledger.store, rules, full=full, who=ledger.actor()) as (conn, found):
            found.derived = slice_
            if sink is not None:
                _derive(ledger.store, conn, found, _Judge(epoch_day(as_of), rules), sink,
                        checked if complete else None)
                return None, None
            judge = _Judge(epoch_day(as_of), rules)
            _collect(found.findings, judge)
            _domain_rules(found, judge)
            archive_breaks(conn, judge.add_break)
            ready = (statement_breaks(conn, rules, as_of) + sod_breaks(ledger.store, conn)
                     + withdrawal_breaks(ledger.store, conn))
            # an agency's own SQL rules, in full every run, in their sandbox (ADR 0036)
            ready += run_sql_rules(conn, rules.sql_rules)
            if found.mismatch is not None:
                ready.append(integrity_break(found.mismatch, None))
            ready += _derived_breaks(checked)
            hidden = present_mismatch(ledger.store, conn) if track else None
            if hidden is not None:  # this run marks its own breaks present again
                ready.append(integrity_break(msg("{detail}; this run restored it",
                                                 detail=hidden), None))
            pending, ready, expected, not_judged = _cut_off(
                conn, judge.as_of_day, judge.breaks, ready, judge.expected)
            breaks = _with_evidence(conn, pending, ready)
            run = RunInfo(
                as_of=as_of.isoformat(), started_at=started.isoformat(timespec="seconds"),
                finished_at=datetime.now(TZ).isoformat(timespec="seconds"),
                ledger_size=found.size, decoded=decoded, backend=ledger.store.dialect,
                rules=rules.describe(), mode=found.mode, rechecked=max(found.rechecked, 0),
                look_back=look_back, not_judged=not_judged, rules_digest=rules_digest(rules))
            report = Report.build(run, breaks, expected)
            if track:
                applied = apply_states_in(ledger, conn, report)
                found.breaks = ids_digest(applied.statuses)
                # a day after today sets no threshold: otherwise every later run for
                # today would be a look back and tracking would stop (FORMAT.md §2.5)
                found.as_of = min(as_of, started.date()).isoformat()
    if look_back:
        applied = looked_back(ledger, report)
    return report, applied


_Pending = tuple[str, tuple[str, ...], dict[str, int], str, Msg, int, "tuple[str, ...] | None",
                 "Severity | None"]
"""A break's :meth:`Break.make` arguments, kept until its evidence is known."""

UNCUT = frozenset({"LEDGER_INTEGRITY", "SOD_CONFLICT", "FIXITY_FAILURE"})
"""Codes about the ledger, its controls and its files, reported whatever the as-of day."""


def _cut_off(conn: Connection, as_of_day: int, pending: list[_Pending], ready: list[Break],
             expected: list[Expected]
             ) -> tuple[list[_Pending], list[Break], list[Expected], int]:
    """The as-of day is a cut-off (FORMAT.md §10.2): a finding whose record at fault (its
    first record) occurred after it is left out, as is an expected item's; codes of
    :data:`UNCUT` and findings without records stay. Also returns how many current
    records occurred after the day (none of them is judged)."""
    n = _after(conn, as_of_day)
    if not n:
        return pending, ready, expected, 0
    firsts = {p[1][0] for p in pending if p[1]} | {e.records[0] for e in expected if e.records}
    firsts |= {b.records[0] for b in ready if b.records and b.code not in UNCUT}
    judged = _judged(conn, as_of_day, firsts)
    return ([p for p in pending if judged(p[0], p[1])],
            [b for b in ready if judged(b.code, b.records)],
            [e for e in expected if judged(e.code, e.records)], n)


def _after(conn: Connection, as_of_day: int) -> int:
    """How many current records occurred after the as-of day."""
    r = t.records.c
    return int(conn.execute(select(func.count()).select_from(t.records).where(
        r.superseded.is_(False), r.occurred_day > as_of_day)).scalar_one())


def _judged(conn: Connection, as_of_day: int, firsts: Iterable[str]
            ) -> Callable[[str, tuple[str, ...]], bool]:
    """Whether a finding (code, records) is judged on the as-of day, given the first
    records of every finding asked about."""
    days = _occurred(conn, sorted(set(firsts)))

    def judged(code: str, records: tuple[str, ...]) -> bool:
        return code in UNCUT or not records or days.get(records[0], as_of_day) <= as_of_day

    return judged


def _derive(store: Store, conn: Connection, found: Outcome, judge: _Judge,
            sink: BreakSink, checked: Checked | None = None) -> None:
    """:func:`derive_breaks` inside the run's transaction: the judge hands over its breaks
    in parts, each cut off by the as-of day (:func:`_cut_off`) and built at once. With
    ``checked`` (the run's check of the derived tables; :func:`stream_report`), the parts
    are the report's breaks: with their evidence, the agency's own SQL rules' and the
    check's."""
    day = judge.as_of_day
    late = _after(conn, day)

    def flush(pending: list[_Pending]) -> None:
        if late:
            judged = _judged(conn, day, (p[1][0] for p in pending if p[1]))
            pending = [p for p in pending if judged(p[0], p[1])]
        if pending:
            sink(conn, [Break.make(*p) for p in pending] if checked is None
                 else _with_evidence(conn, pending, []))
        collect_young()  # the part's statement cycles (paused_gc), or memory grows

    judge.flush = flush
    _collect(found.findings, judge)
    _domain_rules(found, judge)
    archive_breaks(conn, judge.add_break)
    flush(judge.breaks)
    judge.breaks = []
    ready = (statement_breaks(conn, judge.rules, day_date(day)) + sod_breaks(store, conn)
             + withdrawal_breaks(store, conn))
    if checked is not None:  # as _reconcile's report, in the same order
        ready += run_sql_rules(conn, judge.rules.sql_rules)
    if found.mismatch is not None:
        ready.append(integrity_break(found.mismatch, None))
    if checked is not None:
        ready += _derived_breaks(checked)
    if late:
        judged = _judged(conn, day, (b.records[0] for b in ready
                                     if b.records and b.code not in UNCUT))
        ready = [b for b in ready if judged(b.code, b.records)]
    if ready:
        sink(conn, ready if checked is None else _with_evidence(conn, [], ready))


class _Judge:
    """Collects breaks and expected items, deciding by window end versus the as-of day.
    With ``flush`` (:func:`_derive`), breaks are handed to it :data:`PART` at a time and
    expected items are not kept."""

    def __init__(self, as_of_day: int, rules: Rules) -> None:
        self.as_of_day = as_of_day
        self.rules = rules
        self.breaks: list[_Pending] = []
        self.expected: list[Expected] = []
        self.flush: Callable[[list[_Pending]], None] | None = None

    def add_break(self, code: str, records: tuple[str, ...], amounts: dict[str, int],
                  field: str, message: Msg, at_risk_fen: int = 0,
                  key: tuple[str, ...] | None = None, severity: Severity | None = None
                  ) -> None:
        """A break, kept as :meth:`Break.make` arguments: it is built once, with its
        evidence, by :func:`_with_evidence`."""
        self.breaks.append((code, records, amounts, field, message, at_risk_fen, key,
                            severity))
        if self.flush is not None and len(self.breaks) >= PART:
            self.flush(self.breaks)
            self.breaks = []

    def windowed(self, until_day: int, code: str, records: tuple[str, ...],
                 amounts: dict[str, int], field: str, message: Msg, at_risk: int,
                 key: tuple[str, ...] | None = None, severity: Severity | None = None
                 ) -> None:
        if self.as_of_day <= until_day:
            if self.flush is not None:
                return
            until = day_date(until_day).isoformat()
            self.expected.append(Expected(
                code=code, records=records, amounts={k: money(v) for k, v in amounts.items()},
                field=field, until=until, message=f"{message.english()} (window until {until})",
                template=message.template, params=dict(message.params)))
        else:
            self.add_break(code, records, amounts, field, message, at_risk, key, severity)


def _ids(joined: str | None) -> tuple[str, ...]:
    return tuple(sorted(set(joined.split(",")))) if joined else ()


def _collect(f: Findings, j: _Judge) -> None:
    r = j.rules
    for ev in f.event_findings:
        rid, kind, amount, total = ev.record_id, ev.kind, ev.amount, ev.allocated
        records = (rid, *_ids(ev.movements))
        amounts = {"event": amount, "allocated": total}
        window = ev.anchor_day + r.settlement_for(kind)
        settled = r.within(total - amount, amount)
        if ev.returned and not settled and total < amount:
            j.add_break(
                "RETURNED_PAYMENT", (rid, *_ids(ev.returns)),
                {"event": amount, "returned": ev.returned, "settled": total}, "returns",
                msg("{kind} {record}: {returned} came back from the bank and {unpaid} has "
                    "not been paid again", kind=kind, record=rid, returned=money(ev.returned),
                    unpaid=money(amount - total)), amount - total)
        elif total == 0:
            j.windowed(window, "UNSETTLED_EVENT", (rid,), {"event": amount},
                       "amount", msg("{kind} {record} of {amount} has no movement settling it",
                                     kind=kind, record=rid, amount=money(amount)), amount)
        elif not settled and total < amount:
            j.windowed(window, "AMOUNT_MISMATCH", records, amounts, "amount",
                       _allocated(total, amount), amount - total)
        elif not settled:
            j.add_break(
                "AMOUNT_MISMATCH", records, amounts, "amount", _allocated(total, amount),
                total - amount)
        elif ev.due_day is not None and ev.last_day is not None:
            j.add_break(
                "LATE_SETTLEMENT", records, {"event": amount}, "value_date",
                msg("{kind} {record} due {due} was settled on {settled}, {days} days later "
                    "(allowed {allowed})", kind=kind, record=rid, due=day_date(ev.due_day),
                    settled=day_date(ev.last_day), days=ev.last_day - ev.due_day,
                    allowed=r.late_for(kind)))
    for mm in f.movement_mismatches:
        j.add_break(
            "AMOUNT_MISMATCH", (mm.record_id,), {"movement": mm.amount,
                                                 "allocated": mm.allocated},
            "allocations", msg("allocations add up to {allocated}, movement {amount}",
                               allocated=money(mm.allocated), amount=money(mm.amount)),
            abs(mm.amount - mm.allocated))
    for o in f.orphans:
        why = (N_("{kind} {record} of {amount}: its allocations name no event in the ledger")
               if o.allocated else
               N_("{kind} {record} of {amount}: it is unallocated and matches no event"))
        j.windowed(o.value_day + r.orphan_days, "ORPHAN_MOVEMENT", (o.record_id,),
                   {"movement": o.amount}, "allocations",
                   msg(why, kind=o.kind, record=o.record_id, amount=money(o.amount)), o.amount)
    for a in f.ambiguous:
        cands = _ids(a.events)
        listed = f"{', '.join(cands[:10])}{' ...' if len(cands) > 10 else ''}"
        why = (N_("unallocated {record} of {amount} matches {n} events equally well: {events}")
               if a.n > 1 else N_("unallocated {record} of {amount} matches {events}, which "
                                  "another unallocated movement matches too"))
        j.add_break(
            "AMBIGUOUS_MATCH", (a.record_id, *cands), {"movement": a.amount}, "allocations",
            msg(why, record=a.record_id, amount=money(a.amount), n=a.n, events=listed),
            a.amount)
    for mv in f.missing_vouchers:
        j.windowed(mv.occurred_day + r.voucher_days, "MISSING_VOUCHER", (mv.record_id,), {},
                   "refs", msg("{type} {record} has no {vouchers}", type=mv.domain + "." + mv.kind,
                               record=mv.record_id, vouchers=", ".join(_ids(mv.missing))), 0)


def _allocated(total: int, amount: int) -> Msg:
    return msg("allocated {allocated}, event {event}", allocated=money(total),
               event=money(amount))


def _month_end(month: str) -> int:
    year, mon = int(month[:4]), int(month[5:7])
    nxt = date(year + 1, 1, 1) if mon == 12 else date(year, mon + 1, 1)
    return epoch_day(nxt) - 1


def _domain_rules(found: Outcome, j: _Judge) -> None:
    """Duplicates, terminations, payees, fund accounts, voucher amounts."""
    f = found.findings
    for d in f.duplicates:
        ids = _ids(d.events)
        j.add_break(
            "DUPLICATE_PAYMENT", ids, {"paid": d.total, "largest": d.largest}, "period",
            msg("{n} benefit payments for one person, {insurance} {period}: {records}",
                n=d.n, insurance=d.insurance, period=d.period, records=", ".join(ids)),
            d.total - d.largest)
    for at in f.after_termination:
        tids = _ids(at.terminations)
        j.add_break(
            "PAYMENT_AFTER_TERMINATION", (at.record_id, *tids), {"event": at.amount}, "period",
            msg("benefit_payment {record} for {period}, but {terminations} ended the benefit "
                "from {from_period}", record=at.record_id, period=at.period,
                terminations=", ".join(tids), from_period=at.from_period), at.amount)
    for pm in f.payee_mismatches:
        aids = _ids(pm.approvals)
        j.add_break(
            "PAYEE_MISMATCH", (pm.record_id, *aids), {"event": pm.amount}, "account",
            msg("benefit_payment {record} pays an account other than the one approved in "
                "{approvals} (in force from {start})", record=pm.record_id,
                approvals=", ".join(aids), start=pm.start), pm.amount)
    for av in f.account_rule_violations:
        j.add_break(
            "ACCOUNT_RULE_VIOLATION", (av.record_id,), {"movement": av.amount}, av.field,
            msg("{kind} {record} of {amount}: {reason}", kind=av.kind, record=av.record_id,
                amount=money(av.amount), reason=av.reason), av.amount)
    last_month = day_date(j.as_of_day).isoformat()[:7]
    for month, in_fen, out_fen, n in found.netting:
        if month > last_month:  # a month that begins after the as-of day: not judged
            continue
        net = in_fen - out_fen
        j.windowed(_month_end(month) + j.rules.income_netting_days, "ACCOUNT_RULE_VIOLATION",
                   (), {"in": in_fen, "out": out_fen, "net": net}, "fund_account",
                   msg("income account {month}: {n} movements, in {in_amount}, out "
                       "{out_amount}, net {net} (must net to zero each month)", month=month,
                       n=n, in_amount=money(in_fen), out_amount=money(out_fen), net=money(net)),
                   abs(net), key=("income", month))
    _entitlement(f, j)
    flagged: set[str] = set()
    for vm in f.voucher_mismatches:
        if vm.voucher_id in flagged:  # one break per voucher: its first domain that differs
            continue
        flagged.add(vm.voucher_id)
        j.add_break(
            "AMOUNT_MISMATCH", (vm.voucher_id, *_ids(vm.records)),
            {"voucher": vm.amount, "evidenced": vm.evidenced}, "amount",
            msg("voucher {voucher} says {amount}, the {domain} records it evidences add up to "
                "{evidenced}", voucher=vm.voucher_id, amount=money(vm.amount),
                domain=vm.domain, evidenced=money(vm.evidenced)), abs(vm.amount - vm.evidenced))


def _entitlement(f: Findings, j: _Judge) -> None:
    """Payments without an approval, overpayments, duplicate enrolments, assessments
    without an enrolment (INTERCHANGE v1.1)."""
    for wa in f.without_approval:
        if wa.one_off:
            j.add_break(
                "PAYMENT_WITHOUT_APPROVAL", (wa.record_id,), {"event": wa.amount}, "benefit",
                msg("benefit_payment {record} of {amount} ({benefit}, {period}): the person "
                    "has no benefit approval for {insurance}", record=wa.record_id,
                    amount=money(wa.amount), benefit=wa.benefit, period=wa.period,
                    insurance=wa.insurance), wa.amount)
        else:
            j.add_break(
                "PAYMENT_WITHOUT_APPROVAL", (wa.record_id,), {"event": wa.amount}, "period",
                msg("benefit_payment {record} of {amount} for {period}: no benefit approval "
                    "of the person for {insurance} is in force for that period",
                    record=wa.record_id, amount=money(wa.amount), period=wa.period,
                    insurance=wa.insurance), wa.amount)
    for op in f.overpayments:
        ids, aids = _ids(op.events), _ids(op.approvals)
        j.add_break(
            "OVERPAYMENT", (*ids, *aids), {"paid": op.total, "approved": op.approved},
            "amount",
            msg("{n} benefit payment(s) for one person, {insurance} {period}, add up to "
                "{paid}; the approval in force ({approvals}) allows {approved} a month",
                n=op.n, insurance=op.insurance, period=op.period, paid=money(op.total),
                approvals=", ".join(aids), approved=money(op.approved)),
            op.total - op.approved)
    window = j.rules.transfer_days
    for de in f.duplicate_enrolments:
        j.windowed(
            de.day + window, "DUPLICATE_ENROLMENT", (de.record_id, de.other_id), {}, "region",
            msg("enrollment {record} in {region} ({insurance}, from {date}) while enrollment "
                "{other} in {other_region} (from {other_date}) was still in force, and no "
                "transfer between the two regions within {days} days", record=de.record_id,
                region=de.region, insurance=de.insurance, date=day_date(de.day),
                other=de.other_id, other_region=de.other_region,
                other_date=day_date(de.other_day), days=window), 0)
    _deaths_and_transfers(f, j)
    for we in f.without_enrolment:
        j.add_break(
            "CONTRIBUTION_WITHOUT_ENROLMENT", (we.record_id,), {"event": we.amount},
            "person_id",
            msg("contribution_assessment {record} of {amount} for {insurance} {period} names "
                "a person with no enrolment in force for that period", record=we.record_id,
                amount=money(we.amount), insurance=we.insurance, period=we.period),
            we.amount)


def _deaths_and_transfers(f: Findings, j: _Judge) -> None:
    """Payments after a death, deaths not recorded, certifications overdue, transfers
    without their other side (INTERCHANGE v1.1). A finding about a death after the as-of
    day is not judged: the list was not true yet on that day."""
    for ad in f.after_death:
        if ad.death_day > j.as_of_day:
            continue
        j.add_break(
            "PAYMENT_AFTER_DEATH", (ad.record_id,), {"event": ad.amount}, "period",
            msg("benefit_payment {record} of {amount} for {period} ({insurance}), but the "
                "death list from {source} (entry {entry}) gives {date} as the date of death",
                record=ad.record_id, amount=money(ad.amount), period=ad.period,
                insurance=ad.insurance, source=ad.source, entry=ad.entry,
                date=day_date(ad.death_day)), ad.amount)
    for du in f.death_unrecorded:
        if du.death_day > j.as_of_day:
            continue
        aids = _ids(du.approvals)
        j.add_break(
            "DEATH_NOT_RECORDED", aids, {}, "person_id",
            msg("the death list from {source} (entry {entry}) gives {date} as the date of "
                "death of the person of {approvals} ({insurances}); no termination ends the "
                "benefit from the month after", source=du.source, entry=du.entry,
                date=day_date(du.death_day), approvals=", ".join(aids),
                insurances=", ".join(_ids(du.insurances))), 0)
    months = j.rules.certification_months
    for co in f.certification_overdue:
        params: dict[str, object] = {
            "record": co.record_id, "amount": money(co.amount), "period": co.period,
            "insurance": co.insurance, "months": months}
        text = (msg("benefit_payment {record} of {amount} for {period} ({insurance}): neither "
                    "a certification nor the start of the benefit lies within the {months} "
                    "months before it; the last certification was in {last}", last=co.last,
                    **params) if co.last else
                msg("benefit_payment {record} of {amount} for {period} ({insurance}): neither "
                    "a certification nor the start of the benefit lies within the {months} "
                    "months before it; no certification is on file", **params))
        j.add_break("CERTIFICATION_OVERDUE", (co.record_id,), {"event": co.amount}, "period",
                    text, co.amount)
    window = j.rules.transfer_days
    for tu in f.transfers_unmatched:
        if tu.kind == "transfer_out":
            text = msg("transfer_out {record} of {amount} ({insurance}) from {region} to "
                       "{other}: no transfer_in of the person, insurance and amount in {other} "
                       "within {days} days", record=tu.record_id, amount=money(tu.amount),
                       insurance=tu.insurance or "-", region=tu.region, other=tu.other_region,
                       days=window)
        else:
            text = msg("transfer_in {record} of {amount} ({insurance}) into {region} from "
                       "{other}: no transfer_out of the person, insurance and amount in {other} "
                       "within {days} days", record=tu.record_id, amount=money(tu.amount),
                       insurance=tu.insurance or "-", region=tu.region, other=tu.other_region,
                       days=window)
        j.windowed(tu.day + window, "TRANSFER_UNMATCHED", (tu.record_id,),
                   {"event": tu.amount}, "region", text, tu.amount if tu.moved else 0,
                   severity=None if tu.moved else "medium")
    for rm in f.transfer_region_mismatch:
        j.add_break(
            "TRANSFER_UNMATCHED", (rm.record_id, rm.event_id), {"movement": rm.amount},
            "to_region",
            msg("transfer {record} of {amount} goes to {to_region}, but the transfer_out it "
                "settles, {event}, names {event_region}", record=rm.record_id,
                amount=money(rm.amount), to_region=rm.to_region, event=rm.event_id,
                event_region=rm.event_region or "-"), rm.amount)


def _with_evidence(conn: Connection, pending: list[_Pending], ready: list[Break]) -> list[Break]:
    """The breaks, each with its evidence digest over the current entry hashes of its
    records: ``pending`` built now, ``ready`` (bank statement findings) copied with it.

    On PostgreSQL a large report is built in parts, the look-up of the next part's
    entry hashes running in a second thread while this one builds the current part's
    breaks (psycopg leaves the interpreter while it waits for the server); the
    connection is used by one thread at a time. SQLite's connections stay in their
    thread: one look-up, then the building."""
    out: list[Break] = []
    days = _occurred(conn, _all_ids([*(p[1] for p in pending), *(b.records for b in ready)]))
    if Store.traits(conn).threads_share_connection and len(pending) > EVIDENCE_PART:
        parts = [pending[i:i + EVIDENCE_PART] for i in range(0, len(pending), EVIDENCE_PART)]
        with ThreadPoolExecutor(1, thread_name_prefix="bfa-evidence") as pool:
            future = pool.submit(_entry_hashes, conn, _all_ids(p[1] for p in parts[0]))
            for k, part in enumerate(parts):
                hashes = future.result()
                if k + 1 < len(parts):
                    future = pool.submit(_entry_hashes, conn, _all_ids(p[1] for p in parts[k + 1]))
                out += [Break.make(*p, entry_hashes=_of(hashes, p[1]),
                                   occurred_on=_first(days, p[1])) for p in part]
        hashes = _entry_hashes(conn, _all_ids(b.records for b in ready))
    else:
        hashes = _entry_hashes(conn, _all_ids([*(p[1] for p in pending),
                                           *(b.records for b in ready)]))
        out += [Break.make(*p, entry_hashes=_of(hashes, p[1]),
                           occurred_on=_first(days, p[1])) for p in pending]
    # a ready break may come with its own evidence (an integrity break)
    out += [(b if b.evidence else b.with_evidence(_of(hashes, b.records))).model_copy(
        update={"occurred_on": _first(days, b.records)}) for b in ready]
    return out


def _occurred(conn: Connection, ids: list[str]) -> dict[str, int]:
    """The ``occurred_at`` day of the current record of each id (the earliest, when ids
    of two domains coincide)."""
    r = t.records.c
    out: dict[str, int] = {}
    for rid, day in Store.select_by_ids(conn, r.record_id, ids, (r.record_id, r.occurred_day),
                                        (r.superseded.is_(False),)):
        out[str(rid)] = min(int(day), out.get(str(rid), int(day)))
    return out


def _first(days: dict[str, int], records: tuple[str, ...]) -> str | None:
    known = [days[r] for r in records if r in days]
    return day_date(min(known)).isoformat() if known else None


def _all_ids(groups: Iterable[tuple[str, ...]]) -> list[str]:
    return sorted({rid for records in groups for rid in records})


def _of(hashes: dict[str, list[str]], records: tuple[str, ...]) -> list[str]:
    return [h for rid in records for h in hashes.get(rid, [rid])]


def _entry_hashes(conn: Connection, ids: list[str]) -> dict[str, list[str]]:
    """``domain:entry_hash`` of the current record(s) of each id, in domain order."""
    r = t.records.c
    rows = Store.select_by_ids(conn, r.record_id, ids, (r.record_id, r.domain, r.entry_hash),
                               (r.superseded.is_(False),))
    hashes: dict[str, list[str]] = {}
    for rid, domain, h in sorted(rows, key=lambda x: (x[0], x[1])):
        hashes.setdefault(str(rid), []).append(f"{domain}:{h}")
    return hashes


def reconcile_and_track(
    ledger: Ledger, as_of: date | None = None, rules_file: Path | None = None,
    *, full: bool = False,
) -> Report:
    """What ``bfa reconcile`` does: load the rules, reconcile, record the breaks' states.

    Breaks carry their workflow status; a resolved break stays resolved unless its
    evidence changed (then it is reopened, and that is logged in the ledger).
    """
    rules = load_rules(rules_file) if rules_file is not None else None
    return run_tracked(ledger, as_of, rules, full=full).report
