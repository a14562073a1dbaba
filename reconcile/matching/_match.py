"""Matching: set-based SQL over the derived tables (one SQLAlchemy Core code path).

This module owns every matching and domain-rule statement. Nothing here loops over
records in Python: each statement's rows are already *findings* (or items still inside
their window), so a clean ledger returns no rows. Every row starts with its **root**:
the item it is about (an event, movement, record or voucher ``seq``, a duplicate group,
a month), so that :mod:`reconcile.matching._incremental` can store findings per root and an
incremental run can replace exactly the roots it re-checked.

A run first builds a few work tables (:class:`Work`, dropped before it commits),
once, and every statement reads them and the links:

- the *links* (not a table, :meth:`Matcher.links`): allocations of *current*
  movements, each resolved to the *current* version of the event it names
  (``rc_allocations.event_seq``, kept by the refresh: a reference to a superseded
  record counts for its latest version). A
  ``finance.return``'s allocations count *negative*: returned money reduces what the
  event has been settled by, so the event is open again until a later payment
  allocates to it (``RETURNED_PAYMENT`` meanwhile);
- ``bfa_check``: current events of the kinds the rules say need money that their
  allocations do not settle exactly and on time, with the allocated total, the last
  value day and the *open* amount (amount minus what allocations settle). Only these
  can have a settlement finding; those with a positive open amount are *open*;
- ``bfa_cand``: for each unallocated current movement of a settling kind, the open
  events of the kind it settles (per the rules) whose open amount equals the
  movement's amount, with a matching party (``payer_id`` = the event's employer or
  person; ``payee_account`` = the event's ``account``) and a value date from
  ``match_days_before`` before to ``match_days_after`` after the event's due date
  (else its ``occurred_at`` date); ``bfa_cand_n`` adds how many events each movement
  has (``n``) and how many movements each event has (``n_e``);
- ``bfa_matched``: the heuristic links, pairs with ``n = n_e = 1``;
- ``bfa_targets``: current vouchers with the current business and finance records
  their refs name (``rc_voucher_refs.business_seq`` / ``finance_seq``).

**A movement never settles more than its amount.** Allocations settle exactly their
amounts (a movement whose allocations exceed it is ``AMOUNT_MISMATCH`` at once). A
heuristic match is made only when the movement has exactly *one* candidate event and
that event has exactly *one* candidate movement; the link carries the movement's
amount, which equals the event's open amount. Several candidates on either side give
``AMBIGUOUS_MATCH`` for each movement concerned and nothing is linked. So one
movement links at most once, for at most its amount, and one event takes at most one
heuristic movement, never beyond what is still open. The matches a run finds replace
the stored ones of the items it re-checked (``rc_matched``, :mod:`reconcile.matching._incremental`);
nothing accumulates: when a new event or movement makes a match ambiguous, the pair is
re-checked, reported as such, and the earlier match is undone.

**Scope.** With a :class:`Scope`, every statement is restricted to its roots in the
scope's tables and the temporary tables hold only what those roots need: the links of
the scoped events, the open events among them, the vouchers naming scoped records.
:mod:`reconcile.matching._incremental` builds scopes that contain every open event and every
unallocated movement outside a stored pair, and both items of every pair that a change
may undo, so candidates and ambiguity are computed over everything that can differ from
the last run. Without a scope, everything. :meth:`Matcher.candidate` is the one
definition of a candidate, for the candidates of a run and for the scope's test of
stored pairs.

Domain rules: ``duplicates`` (same person pseudonym, insurance and
period in more than one current benefit payment), ``after_termination``,
``payee_mismatches`` (the account of the approval in force for the period),
``account_rule_violations`` and ``income_netting`` (财社〔2017〕144号),
``voucher_mismatches``.

Business refunds and transfers out carry no field comparable with their movement's
``payee_account``, so they are settled by allocations only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
    union,
    union_all,
)
from sqlalchemy.sql.selectable import CompoundSelect, LateralFromClause, Subquery

from ledger import Store
from reconcile.matching import _tables as t

if TYPE_CHECKING:
    from reconcile.matching._outside import Outside
from reconcile.matching._rules import Rules
from schemas import N_

R, E, M, A, V, VR, P = (t.records, t.events, t.movements, t.allocations, t.vouchers,
                        t.voucher_refs, t.person_events)

VIA_MOVEMENT = ("benefit_payment", "bank_slip")
"""A ``bank_slip`` naming a movement that settles a benefit payment counts for the event."""

OUTFLOW_KINDS = ("payment", "refund", "transfer")
"""Finance kinds that take money out of the account named by ``fund_account``."""

RULE_NAMES = ("event_findings", "movement_mismatches", "orphans", "ambiguous",
              "missing_vouchers", "duplicates", "after_termination", "payee_mismatches",
              "account_rule_violations", "voucher_mismatches", "without_approval",
              "overpayments", "without_enrolment", "duplicate_enrolments", "after_death",
              "death_unrecorded", "certification_overdue", "transfers_unmatched",
              "transfer_region_mismatch")
"""Statements whose rows are stored per root (``income_netting`` is kept by delta)."""

Rows = list[tuple[Any, ...]]
RowIter = Iterator[tuple[Any, ...]]
"""A statement's rows, streamed (each starts with its root)."""
Rowset = Select[Any] | CompoundSelect[Any]


# -- what each stored statement finds, once its root is taken off (one class per rule) ----
class EventFinding(NamedTuple):
    """``event_findings``: a money event not settled within tolerance, or late."""

    record_id: str
    kind: str
    amount: int
    anchor_day: int
    due_day: int | None
    allocated: int
    last_day: int | None
    movements: str | None
    returned: int
    returns: str | None


class MovementMismatch(NamedTuple):
    """``movement_mismatches``: allocations that do not add up to the movement."""

    record_id: str
    amount: int
    allocated: int


class Orphan(NamedTuple):
    """``orphans``: a movement no event settles (``allocated``: its allocations name none)."""

    record_id: str
    kind: str
    amount: int
    value_day: int
    allocated: bool


class Ambiguous(NamedTuple):
    """``ambiguous``: an unallocated movement with several candidates (or a shared one)."""

    record_id: str
    amount: int
    events: str | None
    n: int


class MissingVoucher(NamedTuple):
    """``missing_vouchers``: a record without a voucher kind it needs."""

    record_id: str
    domain: str
    kind: str
    missing: str | None
    occurred_day: int


class Duplicate(NamedTuple):
    """``duplicates``: several benefit payments for one person, insurance and period."""

    insurance: str
    period: str
    n: int
    total: int
    largest: int
    events: str | None


class AfterTermination(NamedTuple):
    """``after_termination``: a benefit payment for a period a termination ended."""

    record_id: str
    period: str
    amount: int
    from_period: str
    terminations: str | None


class PayeeMismatch(NamedTuple):
    """``payee_mismatches``: a benefit paid to an account other than the one approved."""

    record_id: str
    amount: int
    approvals: str | None
    start: str


class AccountRuleViolation(NamedTuple):
    """``account_rule_violations``: a movement against its fund account's purpose."""

    record_id: str
    kind: str
    amount: int
    field: str
    reason: str


class VoucherMismatchFinding(NamedTuple):
    """``voucher_mismatches``: a voucher amount unlike what its records add up to."""

    voucher_id: str
    amount: int
    domain: str
    evidenced: int
    records: str | None


class WithoutApproval(NamedTuple):
    """``without_approval``: a benefit payment no approval stands behind (``one_off``: a
    one-off benefit, which needs an approval of the person but not one in force)."""

    record_id: str
    insurance: str
    period: str
    amount: int
    benefit: str | None
    one_off: int


class Overpayment(NamedTuple):
    """``overpayments``: recurring payments of one person, insurance and period above the
    monthly amount of the approval in force."""

    insurance: str
    period: str
    n: int
    total: int
    approved: int
    events: str | None
    approvals: str | None


class WithoutEnrolment(NamedTuple):
    """``without_enrolment``: an assessment naming a person not enrolled in the insurance
    for its period."""

    record_id: str
    insurance: str
    period: str
    amount: int


class DuplicateEnrolment(NamedTuple):
    """``duplicate_enrolments``: an enrolment made while one in another region was still
    in force, no transfer between the regions near it."""

    record_id: str
    insurance: str
    region: str
    day: int
    other_id: str
    other_region: str
    other_day: int


class AfterDeath(NamedTuple):
    """``after_death``: a recurring benefit paid for a month after the month of death an
    outside list gives."""

    record_id: str
    insurance: str
    period: str
    amount: int
    death_day: int
    source: str
    entry: int


class DeathUnrecorded(NamedTuple):
    """``death_unrecorded`` (root: the person's pseudonym): a person on a death list with
    approvals still in force for the month after the death, no termination ending them."""

    death_day: int
    source: str
    entry: int
    approvals: str
    insurances: str


class CertificationOverdue(NamedTuple):
    """``certification_overdue``: a recurring payment of a certified insurance for a
    period no certification and no approval start covers within the window."""

    record_id: str
    insurance: str
    period: str
    amount: int
    last: str | None


class TransferUnmatched(NamedTuple):
    """``transfers_unmatched``: a transfer out (in) with no transfer in (out) on the other
    side within the window; ``moved``: 1 when money moved (a settled transfer out, any
    transfer in)."""

    record_id: str
    kind: str
    insurance: str | None
    amount: int
    region: str
    other_region: str
    day: int
    moved: int


class TransferRegionMismatch(NamedTuple):
    """``transfer_region_mismatch``: a transfer movement whose ``to_region`` is not that
    of the transfer out it settles."""

    record_id: str
    to_region: str
    event_id: str
    event_region: str | None
    amount: int


FINDING_TYPES: dict[str, Any] = {
    "event_findings": EventFinding, "movement_mismatches": MovementMismatch,
    "orphans": Orphan, "ambiguous": Ambiguous, "missing_vouchers": MissingVoucher,
    "duplicates": Duplicate, "after_termination": AfterTermination,
    "payee_mismatches": PayeeMismatch, "account_rule_violations": AccountRuleViolation,
    "voucher_mismatches": VoucherMismatchFinding, "without_approval": WithoutApproval,
    "overpayments": Overpayment, "without_enrolment": WithoutEnrolment,
    "duplicate_enrolments": DuplicateEnrolment, "after_death": AfterDeath,
    "death_unrecorded": DeathUnrecorded, "certification_overdue": CertificationOverdue,
    "transfers_unmatched": TransferUnmatched, "transfer_region_mismatch": TransferRegionMismatch,
}
"""The record type of each stored statement's rows (without their root)."""


class Findings:
    """Every stored finding of a run, typed, by rule, in canonical root order (that of
    :func:`reconcile.matching._state.read_findings`). Each attribute reads its rule's
    rows from ``rc_findings`` as it is iterated, inside the run's transaction: no finding
    is held here, so memory stays flat however many a run finds. ``read(rule)`` gives the
    stored JSON rows of a rule in that order."""

    __slots__ = ("_read",)

    def __init__(self, read: Callable[[str], Iterable[str]]) -> None:
        self._read = read

    def _of(self, rule: str) -> Iterator[Any]:
        make = FINDING_TYPES[rule]._make
        for text_ in self._read(rule):
            yield make(json.loads(text_))

    @property
    def event_findings(self) -> Iterator[EventFinding]:
        return self._of("event_findings")

    @property
    def movement_mismatches(self) -> Iterator[MovementMismatch]:
        return self._of("movement_mismatches")

    @property
    def orphans(self) -> Iterator[Orphan]:
        return self._of("orphans")

    @property
    def ambiguous(self) -> Iterator[Ambiguous]:
        return self._of("ambiguous")

    @property
    def missing_vouchers(self) -> Iterator[MissingVoucher]:
        return self._of("missing_vouchers")

    @property
    def duplicates(self) -> Iterator[Duplicate]:
        return self._of("duplicates")

    @property
    def after_termination(self) -> Iterator[AfterTermination]:
        return self._of("after_termination")

    @property
    def payee_mismatches(self) -> Iterator[PayeeMismatch]:
        return self._of("payee_mismatches")

    @property
    def account_rule_violations(self) -> Iterator[AccountRuleViolation]:
        return self._of("account_rule_violations")

    @property
    def voucher_mismatches(self) -> Iterator[VoucherMismatchFinding]:
        return self._of("voucher_mismatches")

    @property
    def without_approval(self) -> Iterator[WithoutApproval]:
        return self._of("without_approval")

    @property
    def overpayments(self) -> Iterator[Overpayment]:
        return self._of("overpayments")

    @property
    def without_enrolment(self) -> Iterator[WithoutEnrolment]:
        return self._of("without_enrolment")

    @property
    def duplicate_enrolments(self) -> Iterator[DuplicateEnrolment]:
        return self._of("duplicate_enrolments")

    @property
    def after_death(self) -> Iterator[AfterDeath]:
        return self._of("after_death")

    @property
    def death_unrecorded(self) -> Iterator[DeathUnrecorded]:
        return self._of("death_unrecorded")

    @property
    def certification_overdue(self) -> Iterator[CertificationOverdue]:
        return self._of("certification_overdue")

    @property
    def transfers_unmatched(self) -> Iterator[TransferUnmatched]:
        return self._of("transfers_unmatched")

    @property
    def transfer_region_mismatch(self) -> Iterator[TransferRegionMismatch]:
        return self._of("transfer_region_mismatch")


def _sum(col: ColumnElement[int]) -> ColumnElement[int]:
    """SUM as BIGINT on both backends (PostgreSQL sums BIGINT to NUMERIC)."""
    return cast(func.sum(col), BigInteger)


def _agg_ids(col: ColumnElement[str]) -> ColumnElement[str]:
    """Comma-joined ids (ids never contain commas): group_concat / string_agg."""
    return func.aggregate_strings(col, ",")


def _text(value: str) -> ColumnElement[str]:
    """A typed string literal (PostgreSQL needs the type inside UNION ALL)."""
    return cast(literal(value), String(64))


STREAM_PART = 2000
"""Rows fetched at a time when a statement's findings are streamed (``yield_per``: a
server-side cursor on PostgreSQL)."""


def _rows(conn: Connection, q: Select[Any], *root: ColumnElement[Any]) -> RowIter:
    """The statement's rows, ordered by their root (``root``: its columns), streamed
    in parts: a root's rows come together, so the caller numbers them holding nothing
    (:func:`reconcile.matching._incremental._store_findings`)."""
    for r in conn.execute(q.order_by(*root).execution_options(yield_per=STREAM_PART)):
        yield tuple(r)


@dataclass(frozen=True)
class Scope:
    """Temporary tables naming the roots an incremental run re-checks (each ``seq``,
    except ``groups``: ``person, insurance, period``)."""

    events: Table
    movements: Table
    records: Table
    vouchers: Table
    payments: Table
    groups: Table
    enrolments: Table
    persons: Table
    """``person``: people on a death list whose approvals are re-checked."""
    transfers: Table


@dataclass
class Work:
    """The work tables of one run, on one connection, dropped by :meth:`drop`."""

    conn: Connection
    tables: list[Table] = field(default_factory=list)
    timer: Callable[[str], Any] | None = None
    shared: bool = field(init=False)
    """The backend runs statements in parallel and the role may create tables in its
    schema: ``UNLOGGED`` tables (parallel plans); else temporary ones (an application
    role with the grants of ``bfa db grant`` has no CREATE on the schema)."""

    def __post_init__(self) -> None:
        self.shared = (Store.traits(self.conn).parallel
                       and Store.may_create_tables(self.conn))

    def table(self, name: str, columns: Sequence[Column[Any]], rows: Rowset | None,
              indexes: Sequence[Sequence[str]] = ()) -> Table:
        """Create work table ``name``, fill it from ``rows``, index, analyse."""
        if self.timer is None:
            return self._table(name, columns, rows, indexes)
        with self.timer(name):
            return self._table(name, columns, rows, indexes)

    def _table(self, name: str, columns: Sequence[Column[Any]], rows: Rowset | None,
               indexes: Sequence[Sequence[str]]) -> Table:
        shared = self.shared
        # Shared: an UNLOGGED table made by CREATE TABLE AS, not a TEMPORARY one, so
        # that building it and every statement reading it may use parallel workers (a
        # temporary table is private to its backend). Runs hold the ledger's writer lock,
        # so names never clash; the table is dropped before the transaction commits and
        # a failed run's rollback removes it.
        tbl = Table(name, MetaData(), *columns,
                    prefixes=["UNLOGGED" if shared else "TEMPORARY"])
        if shared and rows is not None:
            sub = rows.subquery()
            labelled = select(*(col.label(c.name) for col, c in zip(sub.c, columns,
                                                                    strict=True)))
            Store.create_table_as(self.conn, name, labelled, unlogged=True)
        else:
            tbl.create(self.conn)
            if rows is not None:
                self.conn.execute(tbl.insert().from_select([c.name for c in columns], rows))
        self.tables.append(tbl)
        for cols in indexes:
            Index(f"ix_{name}_{'_'.join(cols)}", *(tbl.c[c] for c in cols)).create(self.conn)
        if rows is not None:
            self.analyze(tbl)
        return tbl

    def analyze(self, tbl: Table) -> None:
        """Statistics for the planner (autovacuum has not seen a table made just now)."""
        Store.analyze_table(self.conn, tbl.name)

    def drop(self) -> None:
        for tbl in reversed(self.tables):
            tbl.drop(self.conn)
        self.tables.clear()


def probe(drive: Table, key: ColumnElement[int], *cols: ColumnElement[Any],
          where: Sequence[ColumnElement[bool]] = (), name: str | None = None) -> LateralFromClause:
    """PostgreSQL: ``cols`` of the rows whose ``key`` equals a ``drive.seq``, as a
    LATERAL subquery to join to ``drive`` (``ON true``): one index look-up on ``key`` per
    row of ``drive``, a small work table. ``OFFSET 0`` keeps the planner from flattening
    it into a join: as ``key IN (SELECT seq FROM drive)`` or a join, misjudging how many
    rows a work table's ids select, it hash-joined whole tables (ADR 0016, amendment)."""
    return select(*cols).where(key == drive.c.seq, *where).offset(0).lateral(name)


def _big(name: str, pk: bool = False) -> Column[int]:
    return Column(name, BigInteger, primary_key=pk, autoincrement=False)


@dataclass(frozen=True)
class Stages:
    """The shared work tables of a run."""

    links: Subquery  # m_seq, e_seq, amount_fen (signed), value_day: allocation links
    # the same, not restricted to the scope: for look-ups by one movement or one event
    # (a scope filter inside a correlated look-up makes the planner join it per row)
    every_link: Subquery
    check: Table  # events not settled exactly and on time by allocations (open_fen > 0: open)
    cand: Table  # m_seq, e_seq
    cand_n: Table  # m_seq, e_seq, n, n_e
    matched: Table  # m_seq, e_seq, amount_fen, value_day: heuristic links
    targets: Table  # v_seq, v_kind, v_amount, v_refs, t_seq, t_domain: vouchers' targets
    outside: Outside  # the death lists and the regions held
    # person, insurance, period, n, total: the groups of recurring benefit payments that
    # duplicates or overpayments may report (Matcher.paid_groups)
    paid: Table

    def all_links(self, events: Select[Any]) -> Subquery:
        """Allocation links (of the scope) and heuristic links together, of ``events`` (a
        select of event seqs) alone: each part is read through its index on the event, so
        that nothing is materialised for the events not asked about."""
        a, h = self.links, self.matched
        return union_all(
            select(a.c.m_seq, a.c.e_seq, a.c.amount_fen, a.c.value_day)
            .where(a.c.e_seq.in_(events)),
            select(h.c.m_seq, h.c.e_seq, h.c.amount_fen, h.c.value_day)
            .where(h.c.e_seq.in_(events)),
        ).subquery("all_links")


@dataclass(frozen=True)
class Matcher:
    """The statements of one run, built from the rules."""

    rules: Rules

    # -- rule expressions -----------------------------------------------------------
    def within(self, actual: ColumnElement[int],
               expected: ColumnElement[int]) -> ColumnElement[bool]:
        """``actual`` equals ``expected`` within the rules' tolerance (exact by default)."""
        r = self.rules
        if r.tolerance_fen == 0 and r.tolerance_ppm == 0:
            return actual == expected
        diff = func.abs(actual - expected)
        return or_(diff <= r.tolerance_fen,
                   diff * 1_000_000 <= func.abs(expected) * r.tolerance_ppm)

    def settles(self, kind: ColumnElement[str]) -> ColumnElement[str]:
        """The business kind a finance kind settles under the rules (NULL: none)."""
        mapping = self.rules.settles()
        if not mapping:
            return cast(literal(None), String(48))
        return case(*[(kind == m, e) for m, e in sorted(mapping.items())], else_=None)

    def money_kind(self, kind: ColumnElement[str]) -> ColumnElement[bool]:
        kinds = self.rules.money_kinds()
        return kind.in_(kinds) if kinds else false()

    def late_days(self, kind: ColumnElement[str] | None = None) -> ColumnElement[int]:
        r = self.rules
        k_col = E.c.kind if kind is None else kind
        return case(*[(k_col == k, r.late_for(k)) for k in r.money_kinds()],
                    else_=r.late_days)

    @staticmethod
    def _scoped(q: Select[Any], col: ColumnElement[int], scope: Table | None) -> Select[Any]:
        return q if scope is None else q.where(col.in_(select(scope.c.seq)))

    # -- the shared work tables -----------------------------------------------------------
    def stages(self, work: Work, scope: Scope | None, outside: Outside) -> Stages:
        # indexes serve the correlated look-ups of scoped runs and SQLite; a full run on
        # PostgreSQL hash-joins these tables whole, and building the indexes would cost
        # more than they save
        indexed = scope is not None or not Store.traits(work.conn).hash_joins_whole

        def ix(*cols: str) -> list[tuple[str, ...]]:
            return [(c,) for c in cols] if indexed else []

        links = self.links(scope)
        check = work.table("bfa_check", [
            _big("seq", pk=True), Column("record_id", String(128)), Column("kind", String(48)),
            _big("amount_fen"), Column("due_day", Integer), Column("anchor_day", Integer),
            Column("party", String(40)), Column("person", String(40)),
            Column("account", String(40)), _big("total"), Column("last_day", Integer),
            _big("open_fen")],
            self._check_select(links, scope), [("open_fen",)])
        cand = work.table("bfa_cand", [_big("m_seq"), _big("e_seq")], self._cand_select(check),
                          [("m_seq",), ("e_seq",)])
        cand_n = work.table("bfa_cand_n", [_big("m_seq"), _big("e_seq"), _big("n"), _big("n_e")],
                            self._cand_n_select(cand), [("m_seq",)])
        matched = work.table(
            "bfa_matched", [_big("m_seq"), _big("e_seq"), _big("amount_fen"),
                            Column("value_day", Integer)],
            select(cand_n.c.m_seq, cand_n.c.e_seq, M.c.amount_fen, M.c.value_day)
            .select_from(cand_n).join(M, M.c.seq == cand_n.c.m_seq)
            .where(cand_n.c.n == 1, cand_n.c.n_e == 1), [("e_seq",), ("m_seq",)])
        targets = work.table("bfa_targets", [
            _big("v_seq"), Column("v_kind", String(48)), _big("v_amount"),
            Column("v_refs", Integer), _big("t_seq"),
            Column("t_domain", String(16))], self._targets_select(work, scope, links, matched),
            # covering for missing_vouchers' look-up of a record's voucher kinds (a seq is
            # one record's: it names the domain too); voucher_mismatches reads a voucher's
            # refs from rc_voucher_refs, so no index by voucher is built
            [("t_seq", "v_kind")] if indexed else [])
        every = self.links(None, "every_link") if scope is not None else links
        paid = work.table("bfa_paid", [
            Column("person", String(40)), Column("insurance", String(16)),
            Column("period", String(7)), _big("n"), _big("total")],
            self.paid_groups(scope, whole=not indexed))
        return Stages(links, every, check, cand, cand_n, matched, targets, outside, paid)

    def paid_groups(self, scope: Scope | None, *, whole: bool = False) -> Select[Any]:
        """Person, insurance and period of the current recurring benefit payments
        (:meth:`recurring`) paid more than once (``duplicates``) or, with an insurance,
        paid more than the smallest current approval of the person and insurance
        (``overpayments``: a group paid no more is over none of them). One grouping of
        the payments for both rules; each joins the few groups found back to their
        payments. ``whole``: the smallest approvals are aggregated once and hash-joined
        (a full run on PostgreSQL, where the look-up per group ran as a subplan per
        group); else looked up per group through the person index."""
        ins = func.coalesce(E.c.insurance, "")
        paid = (E.c.kind == "benefit_payment", E.c.superseded.is_(False),
                E.c.person.is_not(None), E.c.period.is_not(None), self.recurring())
        if whole and scope is None:
            least_q = (select(P.c.person, P.c.insurance,
                              func.min(P.c.amount_fen).label("least"))
                       .where(P.c.kind == "benefit_approval", P.c.superseded.is_(False))
                       .group_by(P.c.person, P.c.insurance).subquery("least"))
            g = (select(E.c.person, E.c.insurance, E.c.period, func.count().label("n"),
                        _sum(E.c.amount_fen).label("total"))
                 .where(*paid).group_by(E.c.person, E.c.insurance, E.c.period)
                 .subquery("groups"))
            return (select(g.c.person, g.c.insurance, g.c.period, g.c.n, g.c.total)
                    .select_from(g)
                    .outerjoin(least_q, and_(least_q.c.person == g.c.person,
                                             least_q.c.insurance == g.c.insurance))
                    .where(or_(g.c.n > 1, and_(g.c.insurance.is_not(None),
                                               g.c.total > least_q.c.least))))
        low = P.alias("least")
        least = (select(func.min(low.c.amount_fen))
                 .where(low.c.kind == "benefit_approval", low.c.person == E.c.person,
                        low.c.insurance == E.c.insurance, low.c.superseded.is_(False))
                 .correlate_except(low).scalar_subquery())
        total = _sum(E.c.amount_fen)
        q = (select(E.c.person, E.c.insurance, E.c.period, func.count(), total)
             .where(*paid)
             .group_by(E.c.person, E.c.insurance, E.c.period)
             .having(or_(func.count() > 1,
                         and_(E.c.insurance.is_not(None), total > least))))
        if scope is not None:
            sg = scope.groups
            q = q.where(E.c.person.in_(select(sg.c.person)),
                        tuple_(E.c.person, ins, E.c.period).in_(
                            select(sg.c.person, sg.c.insurance, sg.c.period)))
        return q

    def _paid_events(self, pd: Table) -> ColumnElement[bool]:
        """The join of a paid group (:meth:`paid_groups`) with its payments."""
        return and_(E.c.person == pd.c.person,
                    E.c.insurance.is_not_distinct_from(pd.c.insurance),
                    E.c.period == pd.c.period, E.c.kind == "benefit_payment",
                    E.c.superseded.is_(False), self.recurring())

    def links(self, scope: Scope | None, name: str = "links") -> Subquery:
        """Allocation links: read from ``rc_allocations`` alone (the movement's kind,
        value day and status are copied onto its allocations), not materialised."""
        signed = case((A.c.kind == "return", -A.c.amount_fen), else_=A.c.amount_fen)
        q = (
            select(A.c.movement_seq.label("m_seq"), A.c.event_seq.label("e_seq"),
                   signed.label("amount_fen"), A.c.value_day)
            .where(A.c.event_seq.is_not(None), A.c.superseded.is_(False),
                   or_(A.c.kind == "return", self.settles(A.c.kind).is_not(None)))
        )
        return self._scoped(q, A.c.event_seq, None if scope is None else scope.events
                            ).subquery(name)

    @staticmethod
    def _targets_select(work: Work, scope: Scope | None, links: Subquery,
                        matched: Table) -> Rowset:
        """Current vouchers with the current records their refs name (business, finance)."""
        b, f = VR.c.business_seq, VR.c.finance_seq
        base = (select(V.c.seq, V.c.kind, V.c.amount_fen, V.c.n_refs).select_from(VR)
                .join(V, and_(V.c.seq == VR.c.voucher_seq, V.c.superseded.is_(False))))
        # one pass over the refs; a ref naming both a business and a finance record (the
        # same id in both domains) gives its finance row in a second, small pass
        one = base.add_columns(func.coalesce(b, f), case((b.is_not(None), _text("business")),
                                                           else_=_text("finance")))
        one = one.where(or_(b.is_not(None), f.is_not(None)))
        both = base.add_columns(f, _text("finance")).where(b.is_not(None), f.is_not(None))
        if scope is None:
            return union_all(one, both)
        # what the scoped vouchers name; what names the scoped records, or the movements
        # linked to the scoped events (a bank slip naming a benefit's payment); one
        # select per domain, each driven by an index
        want = work.table("bfa_want", [_big("seq")], union(
            select(scope.records.c.seq), select(links.c.m_seq), select(matched.c.m_seq)))
        parts = []
        for domain, col in (("business", b), ("finance", f)):
            if not Store.traits(work.conn).lookups_by_probe:
                q = base.add_columns(col, _text(domain)).where(col.is_not(None))
                parts.append(q.where(V.c.seq.in_(select(scope.vouchers.c.seq))))
                parts.append(q.where(col.in_(select(want.c.seq))))
                continue
            # PostgreSQL: index look-ups (`probe`): the refs of each scoped voucher
            # through the primary key, the refs naming each wanted record through the
            # domain's index. As joins the planner hash-joined the whole refs table to
            # find a handful of rows (figures: ADR 0016)
            for drive, key, name in ((scope.vouchers, VR.c.voucher_seq, "by_voucher"),
                                     (want, col, "by_record")):
                ref = probe(drive, key, VR.c.voucher_seq, col.label("t_seq"),
                            where=[col.is_not(None)], name=f"ref_{domain}_{name}")
                parts.append(
                    select(V.c.seq, V.c.kind, V.c.amount_fen, V.c.n_refs, ref.c.t_seq,
                           _text(domain))
                    .select_from(drive).join(ref, true())
                    .join(V, and_(V.c.seq == ref.c.voucher_seq, V.c.superseded.is_(False))))
        return union(*parts)

    def _check_select(self, links: Subquery, scope: Scope | None) -> Select[Any]:
        """Current money events that allocations do not settle exactly and on time: the
        open ones (``open_fen > 0``: heuristic candidates, windows), the over-settled and
        the late. An event outside this set has no settlement finding (a heuristic match
        is only ever made to an open event)."""
        paid = links.c.amount_fen > 0
        s = (select(links.c.e_seq, _sum(links.c.amount_fen).label("total"),
                    func.max(case((paid, links.c.value_day), else_=None)).label("last_day"))
             .group_by(links.c.e_seq).subquery("alloc_sum"))
        total = func.coalesce(s.c.total, 0)
        late = and_(E.c.due_day.is_not(None), s.c.last_day > E.c.due_day + self.late_days())
        q = (
            select(E.c.seq, E.c.record_id, E.c.kind, E.c.amount_fen, E.c.due_day,
                   E.c.anchor_day, E.c.party, E.c.person, E.c.account, total.label("total"),
                   s.c.last_day, E.c.amount_fen - total)
            .select_from(E)
            .outerjoin(s, s.c.e_seq == E.c.seq)
            .where(E.c.superseded.is_(False), self.money_kind(E.c.kind),
                   or_(total != E.c.amount_fen, late))
        )
        return self._scoped(q, E.c.seq, None if scope is None else scope.events)

    def candidate(self, m: Any, e: Any, open_fen: ColumnElement[int]
                  ) -> tuple[ColumnElement[bool], list[ColumnElement[bool]]]:
        """When unallocated movement ``m`` is a heuristic candidate of open event ``e``
        (column collections: ``m`` of ``rc_movements``, ``e`` with ``kind``,
        ``anchor_day``, ``party``, ``person``, ``account``) whose open amount is
        ``open_fen``: the condition on amount, kind and window, and the party conditions,
        any one of which must hold (``payer_id`` = the employer or the person;
        ``payee_account`` = the account; NULL never matches)."""
        r = self.rules
        base = and_(open_fen > 0, open_fen == m.amount_fen, e.kind == self.settles(m.kind),
                    m.value_day >= e.anchor_day - r.match_days_before,
                    m.value_day <= e.anchor_day + r.match_days_after)
        return base, [m.payer == e.party, m.payer == e.person, m.payee_account == e.account]

    def _cand_select(self, oe: Table) -> Select[Any]:
        base, parties = self.candidate(M.c, oe.c, oe.c.open_fen)
        return (
            select(M.c.seq, oe.c.seq)
            .select_from(M)
            .join(oe, and_(base, or_(*parties)))
            .where(M.c.allocated.is_(False), M.c.superseded.is_(False))
        )

    @staticmethod
    def _cand_n_select(cand: Table) -> Select[Any]:
        per_m = (select(cand.c.m_seq, func.count().label("n"))
                 .group_by(cand.c.m_seq).subquery("cand_m"))
        per_e = (select(cand.c.e_seq, func.count().label("n_e"))
                 .group_by(cand.c.e_seq).subquery("cand_e"))
        return (
            select(cand.c.m_seq, cand.c.e_seq, per_m.c.n, per_e.c.n_e)
            .select_from(cand)
            .join(per_m, per_m.c.m_seq == cand.c.m_seq)
            .join(per_e, per_e.c.e_seq == cand.c.e_seq)
        )

    # -- all statements -------------------------------------------------------------------
    def rows(self, rule: str, conn: Connection, st: Stages, scope: Scope | None) -> RowIter:
        """The rows of one stored statement (a name of :data:`RULE_NAMES`), streamed,
        ordered by root."""
        fn: Callable[[Connection, Stages, Scope | None], RowIter] = getattr(self, rule)
        return fn(conn, st, scope)

    # -- settlement findings ------------------------------------------------------------
    def event_findings(self, conn: Connection, st: Stages, scope: Scope | None) -> RowIter:
        """Current money events not settled (within tolerance), or settled late.

        Rows: root (event seq), record_id, kind, amount_fen, anchor_day, due_day, total_fen,
        last_value_day, paying movement ids (comma-joined, or None), returned_fen, return
        ids (or None).
        """
        c, h = st.check, st.matched
        heur = (select(h.c.e_seq, _sum(h.c.amount_fen).label("total"),
                       func.max(h.c.value_day).label("day"))
                .group_by(h.c.e_seq).subquery("heur"))
        total = c.c.total + func.coalesce(heur.c.total, 0)
        last = case((heur.c.day.is_(None), c.c.last_day), (c.c.last_day.is_(None), heur.c.day),
                    (heur.c.day > c.c.last_day, heur.c.day), else_=c.c.last_day)
        late = and_(c.c.due_day.is_not(None), last > c.c.due_day + self.late_days(c.c.kind))
        found = (
            select(c.c.seq, c.c.record_id, c.c.kind, c.c.amount_fen, c.c.anchor_day,
                   c.c.due_day, total.label("total"), last.label("last_day"))
            .select_from(c)
            .outerjoin(heur, heur.c.e_seq == c.c.seq)
            .where(or_(~self.within(total, c.c.amount_fen), late))
            .cte("found")
        )
        # the movement ids only for the events found (aggregating strings for every
        # event would cost more than the whole settlement check)
        links = st.all_links(select(found.c.seq))
        paid = links.c.amount_fen > 0
        q = (
            select(found.c.seq, found.c.record_id, found.c.kind, found.c.amount_fen,
                   found.c.anchor_day, found.c.due_day, found.c.total, found.c.last_day,
                   _agg_ids(case((paid, M.c.record_id), else_=None)).label("movements"),
                   func.coalesce(_sum(case((paid, 0), else_=-links.c.amount_fen)), 0
                                 ).label("returned"),
                   _agg_ids(case((paid, None), else_=M.c.record_id)).label("returns"))
            .select_from(found)
            .outerjoin(links, links.c.e_seq == found.c.seq)
            .outerjoin(M, M.c.seq == links.c.m_seq)
            .group_by(*found.c)
        )
        return _rows(conn, q, found.c.seq)

    def movement_mismatches(self, conn: Connection, st: Stages, scope: Scope | None
                            ) -> RowIter:
        """Current movements whose allocations do not add up to their amount.

        Rows: root (movement seq), record_id, amount_fen, allocated_fen.
        """
        q = (
            select(M.c.seq, M.c.record_id, M.c.amount_fen, M.c.allocated_fen)
            .where(M.c.superseded.is_(False), M.c.allocated.is_(True),
                   ~self.within(M.c.allocated_fen, M.c.amount_fen))
        )
        return _rows(conn, self._scoped(q, M.c.seq, None if scope is None else scope.movements),
                     M.c.seq)

    def orphans(self, conn: Connection, st: Stages, scope: Scope | None) -> RowIter:
        """Current settling movements that settle nothing: unallocated with no candidate,
        or allocated only to events the ledger does not hold.

        Rows: root (movement seq), record_id, kind, amount_fen, value_day, allocated.
        """
        lk, cd = st.every_link, st.cand
        q = (
            select(M.c.seq, M.c.record_id, M.c.kind, M.c.amount_fen, M.c.value_day,
                   M.c.allocated)
            .where(M.c.superseded.is_(False), self.settles(M.c.kind).is_not(None), or_(
                and_(M.c.allocated.is_(False), ~exists().where(cd.c.m_seq == M.c.seq)),
                and_(M.c.allocated.is_(True), ~exists().where(lk.c.m_seq == M.c.seq)),
            ))
        )
        return _rows(conn, self._scoped(q, M.c.seq, None if scope is None else scope.movements),
                     M.c.seq)

    def ambiguous(self, conn: Connection, st: Stages, scope: Scope | None) -> RowIter:
        """Unallocated movements with several candidate events, or whose one candidate
        event is also the candidate of another movement.

        Rows: root (movement seq), record_id, amount_fen, candidate event ids
        (comma-joined), number of candidate events.
        """
        cn = st.cand_n
        q = (
            select(M.c.seq, M.c.record_id, M.c.amount_fen, _agg_ids(E.c.record_id).label("events"),
                   func.count().label("n"))
            .select_from(cn)
            .join(M, M.c.seq == cn.c.m_seq)
            .join(E, E.c.seq == cn.c.e_seq)
            .where(cn.c.m_seq.in_(select(cn.c.m_seq).where(or_(cn.c.n > 1, cn.c.n_e > 1))))
            .group_by(M.c.seq, M.c.record_id, M.c.amount_fen)
        )
        # every candidate movement of a scoped run is in its scope (reconcile.matching._incremental)
        return _rows(conn, self._scoped(q, M.c.seq, None if scope is None else scope.movements),
                     M.c.seq)

    def missing_vouchers(self, conn: Connection, st: Stages, scope: Scope | None
                         ) -> RowIter:
        """Current records without the vouchers the rules require of their kind.

        A voucher counts when it is current and one of its ``refs`` names the record
        or an earlier version of it; for a benefit payment, a ``bank_slip`` naming a
        movement that settles it counts too.
        Rows: root (record seq), record_id, domain, kind, missing voucher kinds
        (comma-joined), occurred_day.
        """
        reqs = self.rules.voucher_requirements()
        if not reqs:
            return iter(())
        required = union_all(*[
            select(_text(d).label("domain"), _text(k).label("kind"), _text(v).label("voucher"))
            for d, k, v in reqs]).subquery("required")
        vt = st.targets
        direct = (select(literal(1)).select_from(vt)
                  .where(vt.c.t_seq == R.c.seq, vt.c.v_kind == required.c.voucher).exists())

        def via_link(links: Subquery | Table) -> ColumnElement[bool]:
            return (
                select(literal(1)).select_from(links)
                # t_seq is the movement's (a seq is one record's, so its domain is finance)
                .join(vt, and_(vt.c.t_seq == links.c.m_seq, vt.c.v_kind == VIA_MOVEMENT[1]))
                .where(links.c.e_seq == R.c.seq, links.c.amount_fen > 0)
                .exists()
            )

        via_payment = or_(via_link(st.every_link), via_link(st.matched))
        via = and_(R.c.domain == "business", R.c.kind == VIA_MOVEMENT[0],
                   required.c.voucher == VIA_MOVEMENT[1], via_payment)
        q = (
            select(R.c.seq, R.c.record_id, R.c.domain, R.c.kind,
                   _agg_ids(required.c.voucher).label("missing"), R.c.occurred_day)
            .select_from(R)
            .join(required, and_(required.c.domain == R.c.domain, required.c.kind == R.c.kind))
            .where(R.c.superseded.is_(False), ~direct, ~via)
            .group_by(R.c.seq, R.c.record_id, R.c.domain, R.c.kind, R.c.occurred_day)
        )
        return _rows(conn, self._scoped(q, R.c.seq, None if scope is None else scope.records),
                     R.c.seq)

    # -- domain rules -------------------------------------------------------------------
    def duplicates(self, conn: Connection, st: Stages, scope: Scope | None) -> RowIter:
        """Same person, insurance and period in more than one current benefit payment of
        the recurring benefit (:meth:`recurring`).

        Rows: root (``person|insurance|period``), insurance, period, count, total_fen,
        max_fen, event ids (comma-joined).
        """
        pd = st.paid
        ins = func.coalesce(pd.c.insurance, "")
        q = (
            select(pd.c.person.label("g_person"), ins.label("g_ins"),
                   pd.c.period.label("g_period"), pd.c.insurance, pd.c.period,
                   pd.c.n, pd.c.total, func.max(E.c.amount_fen).label("largest"),
                   _agg_ids(E.c.record_id).label("events"))
            .select_from(pd).join(E, self._paid_events(pd))
            .where(pd.c.n > 1)
            .group_by(pd.c.person, pd.c.insurance, pd.c.period, pd.c.n, pd.c.total)
        )
        # ordered by the group's columns: equal roots come together
        return ((group_key(p, i, per), *rest)
                for p, i, per, *rest in _rows(conn, q, pd.c.person, ins, pd.c.period))

    def after_termination(self, conn: Connection, st: Stages, scope: Scope | None
                          ) -> RowIter:
        """Current benefit payments of the recurring benefit for a period on or after the
        first period a current termination of the person (same insurance, or ``all``) no
        longer covers, unless a current approval of the person and insurance starts again
        in or before the payment's period and after that one — or in it, recorded after
        the termination (a re-approval: the termination ended nothing of it,
        :meth:`in_force`).

        Rows: root (event seq), event id, period, amount_fen, first uncovered period,
        termination ids.
        """
        again = P.alias("again")
        reapproved = (select(literal(1)).select_from(again)
                      .where(again.c.kind == "benefit_approval", again.c.person == E.c.person,
                             again.c.insurance == E.c.insurance,
                             again.c.superseded.is_(False),
                             or_(again.c.period > P.c.period,
                                 and_(again.c.period == P.c.period,
                                      again.c.occurred_day > P.c.occurred_day)),
                             again.c.period <= E.c.period)
                      .correlate_except(again).exists())
        q = (
            select(E.c.seq, E.c.record_id, E.c.period, E.c.amount_fen,
                   func.min(P.c.period).label("from_period"),
                   _agg_ids(P.c.record_id).label("terminations"))
            .select_from(E)
            .join(P, and_(P.c.kind == "termination", P.c.person == E.c.person,
                          or_(P.c.insurance == E.c.insurance, P.c.insurance == "all"),
                          E.c.period >= P.c.period, P.c.superseded.is_(False), ~reapproved))
            .where(E.c.kind == "benefit_payment", E.c.superseded.is_(False), self.recurring())
            .group_by(E.c.seq, E.c.record_id, E.c.period, E.c.amount_fen)
        )
        return _rows(conn, self._scoped(q, E.c.seq, None if scope is None else scope.payments),
                     E.c.seq)

    def payee_mismatches(self, conn: Connection, st: Stages, scope: Scope | None
                         ) -> RowIter:
        """Current benefit payments whose account differs from that of the current
        approval in force for the person and insurance (latest ``start_period`` not
        after the payment's period). No approval on file: no finding.

        Rows: root (event seq), event id, amount_fen, approval ids, in-force start period.
        """
        p2 = P.alias("p2")
        approval = and_(p2.c.kind == "benefit_approval", p2.c.person == E.c.person,
                        p2.c.insurance == E.c.insurance, p2.c.period <= E.c.period,
                        p2.c.superseded.is_(False))
        # only a payment with an approval on another account (or none) in or before its
        # period can differ from the one in force: most payments are left by one look-up
        p3 = P.alias("p3")
        other = (select(literal(1)).select_from(p3)
                 .where(p3.c.kind == "benefit_approval", p3.c.person == E.c.person,
                        p3.c.insurance == E.c.insurance, p3.c.period <= E.c.period,
                        p3.c.superseded.is_(False),
                        or_(p3.c.account.is_(None), E.c.account.is_(None),
                            p3.c.account != E.c.account))
                 .correlate_except(p3).exists())
        in_force_q = (
            select(E.c.seq.label("e_seq"), func.max(p2.c.period).label("start"))
            .select_from(E).join(p2, approval)
            .where(E.c.kind == "benefit_payment", E.c.superseded.is_(False), other)
            .group_by(E.c.seq)
        )
        in_force = self._scoped(in_force_q, E.c.seq,
                                None if scope is None else scope.payments).subquery("in_force")
        same = case((P.c.account == E.c.account, 1), else_=0)
        q = (
            select(E.c.seq, E.c.record_id, E.c.amount_fen,
                   _agg_ids(P.c.record_id).label("approvals"), in_force.c.start)
            .select_from(in_force)
            .join(E, E.c.seq == in_force.c.e_seq)
            .join(P, and_(P.c.kind == "benefit_approval", P.c.person == E.c.person,
                          P.c.insurance == E.c.insurance, P.c.period == in_force.c.start,
                          P.c.superseded.is_(False)))
            .group_by(E.c.seq, E.c.record_id, E.c.amount_fen, in_force.c.start)
            .having(func.sum(same) == 0)
        )
        return _rows(conn, q, E.c.seq)

    def account_rule_violations(self, conn: Connection, st: Stages,
                                scope: Scope | None) -> RowIter:
        """Current movements against the purpose of a fund account (财社〔2017〕144号).

        ``income`` pays out only to ``fiscal_special`` by a sweep, as a refund or as a
        transfer out; ``expenditure`` receives only from ``fiscal_special`` by a sweep,
        or by a return. Rows: root (movement seq), record_id, kind, amount_fen, field at
        fault, reason.
        """
        fa, fr, to = M.c.fund_account, M.c.from_account, M.c.to_account
        sweep = M.c.kind == "sweep"
        rules = [
            (and_(M.c.kind == "payment", fa == "income"), "fund_account",
             N_("the income account pays out only by a sweep to fiscal_special, a refund or a "
             "transfer out")),
            (and_(sweep, fr == "income", or_(to.is_(None), to != "fiscal_special")), "to_account",
             N_("the income account sweeps only to fiscal_special")),
            (and_(M.c.kind == "collection", fa == "expenditure"), "fund_account",
             N_("the expenditure account receives only from fiscal_special or by a return")),
            (and_(sweep, to == "expenditure", or_(fr.is_(None), fr != "fiscal_special")),
             "from_account", N_("the expenditure account receives only from fiscal_special")),
        ]
        fld = case(*[(cond, f) for cond, f, _ in rules], else_=None)
        reason = case(*[(cond, why) for cond, _, why in rules], else_=None)
        q = (
            select(M.c.seq, M.c.record_id, M.c.kind, M.c.amount_fen, fld.label("field"),
                   reason.label("reason"))
            .where(fld.is_not(None), M.c.superseded.is_(False))
        )
        return _rows(conn, self._scoped(q, M.c.seq, None if scope is None else scope.movements),
                     M.c.seq)

    def voucher_mismatches(self, conn: Connection, st: Stages, scope: Scope | None
                           ) -> RowIter:
        """Current vouchers with an ``amount`` that differs from the sum of the current
        money records they refer to, per domain (a bank slip naming a benefit payment
        and its payment movement evidences the same money twice, once per domain).

        Rows: root (voucher seq), voucher id, voucher amount_fen, domain, evidenced_fen,
        record ids; a voucher's rows in domain order.
        """
        vt = st.targets
        scoped: ColumnElement[bool] = vt.c.v_amount.is_not(None)
        if scope is not None:
            scoped = and_(scoped, vt.c.v_seq.in_(select(scope.vouchers.c.seq)))

        # a voucher with one ref: its amount against that record's, no aggregation; the
        # few with several refs (two may name versions of one record) are summed below
        def single(domain: str, table: Table) -> Select[Any]:
            return (select(vt.c.v_seq).select_from(vt).join(table, table.c.seq == vt.c.t_seq)
                    .where(vt.c.t_domain == domain, vt.c.v_refs == 1, scoped,
                           ~self.within(vt.c.v_amount, table.c.amount_fen)))

        several = select(vt.c.v_seq).where(vt.c.v_refs > 1, scoped)
        suspects = sorted({int(x) for x in conn.execute(
            union(single("business", E), single("finance", M), several)).scalars()})
        b, f = VR.c.business_seq, VR.c.finance_seq
        for i in range(0, len(suspects), 1000):
            # the suspects' targets as bfa_targets has them (a ref's business record, its
            # finance record, or both), read by voucher from the refs' primary key
            part = suspects[i:i + 1000]
            pairs = union(
                select(VR.c.voucher_seq.label("v_seq"), b.label("t_seq"),
                       _text("business").label("t_domain"))
                .where(VR.c.voucher_seq.in_(part), b.is_not(None)),
                select(VR.c.voucher_seq, f, _text("finance"))
                .where(VR.c.voucher_seq.in_(part), f.is_not(None)),
            ).subquery("pairs")
            targets = union_all(*(
                select(pairs.c.v_seq, _text(domain).label("domain"), table.c.record_id,
                       table.c.amount_fen)
                .select_from(pairs).join(table, table.c.seq == pairs.c.t_seq)
                .where(pairs.c.t_domain == domain)
                for domain, table in (("business", E), ("finance", M)))
            ).subquery("voucher_targets")
            total = _sum(targets.c.amount_fen)
            q = (
                select(V.c.seq, V.c.record_id, V.c.amount_fen, targets.c.domain,
                       total.label("evidenced"), _agg_ids(targets.c.record_id).label("records"))
                .select_from(targets)
                .join(V, V.c.seq == targets.c.v_seq)
                .group_by(V.c.seq, V.c.record_id, V.c.amount_fen, targets.c.domain)
                .having(~self.within(V.c.amount_fen, total))
            )
            yield from _rows(conn, q, V.c.seq, targets.c.domain)

    # -- entitlement rules (INTERCHANGE v1.1) -------------------------------------------------
    def in_force(self, kind: str, person: ColumnElement[str],
                 insurance: ColumnElement[str] | None, period: ColumnElement[str], name: str
                 ) -> tuple[Any, ColumnElement[bool]]:
        """An alias of ``rc_person_events`` and the condition that its row is a current
        record of ``kind`` (``benefit_approval``, ``enrollment``) of the person and
        insurance *in force* for ``period``: taking effect in or before it, and not ended
        by a current termination of the person (same insurance or ``all``) whose first
        uncovered period lies in or before ``period`` and after that start — or in the
        start's own month, when the termination occurred (``occurred_at``) on the day of
        the record or later. A termination that takes effect before the start, or in its
        month but recorded before it (a later re-approval, a re-enrolment), ends nothing
        of it. ``insurance`` None: of any insurance (the record's own)."""
        x, tm = P.alias(name), P.alias(f"{name}_end")
        if insurance is None:
            insurance = x.c.insurance
        ended = (select(literal(1)).select_from(tm)
                 .where(tm.c.kind == "termination", tm.c.person == person,
                        or_(tm.c.insurance == insurance, tm.c.insurance == "all"),
                        tm.c.superseded.is_(False),
                        or_(tm.c.period > x.c.period,
                            and_(tm.c.period == x.c.period,
                                 tm.c.occurred_day >= x.c.occurred_day)),
                        tm.c.period <= period)
                 .correlate_except(tm)  # two levels down: name what is its own
                 .exists())
        return x, and_(x.c.kind == kind, x.c.person == person, x.c.insurance == insurance,
                       x.c.superseded.is_(False), x.c.period <= period, ~ended)

    @staticmethod
    def covered(kind: str) -> ColumnElement[bool]:
        """The event's region and insurance are *covered* by ``kind`` (approvals for
        payments, enrolments for assessments): the ledger holds a record of that kind, of
        that insurance, in that region — current or superseded, so coverage never ends.
        Where the business system sends none, every payment (assessment) would be a
        finding; the rule judges nothing there (FORMAT.md §8.2)."""
        return tuple_(E.c.region, E.c.insurance).in_(
            select(P.c.region, P.c.insurance).where(P.c.kind == kind))

    def one_off(self) -> ColumnElement[bool]:
        """A benefit payment of a one-off benefit (the rules' ``one_off_benefits``)."""
        kinds = self.rules.one_off_benefits
        return E.c.benefit.in_(kinds) if kinds else false()

    def recurring(self) -> ColumnElement[bool]:
        """A benefit payment of the recurring benefit: no ``benefit``, or one that is not
        one-off. One-off ones (a funeral grant, back pay) are neither duplicates of the
        month's payment nor payments after a termination by themselves (INTERCHANGE
        v1.1)."""
        return or_(E.c.benefit.is_(None), ~self.one_off())

    def without_approval(self, conn: Connection, st: Stages, scope: Scope | None
                         ) -> RowIter:
        """Current benefit payments no approval stands behind: a recurring one (no
        ``benefit``, or one not among the rules' one-off benefits) for a period no
        approval of the person and insurance is in force for (:meth:`in_force`); a
        one-off one when the person has no current approval for the insurance at all.

        Only where approvals are held (:meth:`covered`).

        Rows: root (event seq), event id, insurance, period, amount_fen, benefit,
        one_off (1 or 0).
        """
        ap, cond = self.in_force("benefit_approval", E.c.person, E.c.insurance, E.c.period,
                                 "ap")
        in_force = select(literal(1)).select_from(ap).where(cond).exists()
        any_ap, started = P.alias("any_ap"), P.alias("started")
        approved_ever = (select(literal(1)).select_from(any_ap)
                         .where(any_ap.c.kind == "benefit_approval",
                                any_ap.c.person == E.c.person,
                                any_ap.c.insurance == E.c.insurance,
                                any_ap.c.superseded.is_(False)).exists())
        # an approval taking effect in or before the period: in force unless a termination
        # ended it, which only a person with a termination can have
        started_by = (select(literal(1)).select_from(started)
                      .where(started.c.kind == "benefit_approval",
                             started.c.person == E.c.person,
                             started.c.insurance == E.c.insurance,
                             started.c.superseded.is_(False),
                             started.c.period <= E.c.period).exists())
        tm = P.alias("terminated")
        terminated = E.c.person.in_(select(tm.c.person).where(
            tm.c.kind == "termination", tm.c.superseded.is_(False)))
        one_off = and_(E.c.benefit.is_not(None), self.one_off())
        q = (
            select(E.c.seq, E.c.record_id, E.c.insurance, E.c.period, E.c.amount_fen,
                   E.c.benefit, case((one_off, 1), else_=0).label("one_off"))
            .where(E.c.kind == "benefit_payment", E.c.superseded.is_(False),
                   E.c.person.is_not(None), E.c.period.is_not(None),
                   self.covered("benefit_approval"))
        )
        q = self._scoped(q, E.c.seq, None if scope is None else scope.payments)
        # three disjoint parts, each NOT EXISTS on its own (an anti-join on PostgreSQL;
        # under OR, each was a subplan per payment): a one-off payment never approved; a
        # recurring one with no approval started by its period; a recurring one of a
        # person with a termination, whose approvals started are all ended (in_force)
        parts = union_all(
            q.where(one_off, ~approved_ever),
            q.where(~one_off, ~started_by),
            q.where(~one_off, terminated, started_by, ~in_force),
        ).subquery("without")
        return _rows(conn, select(*parts.c), parts.c.seq)

    def overpayments(self, conn: Connection, st: Stages, scope: Scope | None) -> RowIter:
        """Person, insurance and period whose current recurring benefit payments add up
        to more than the ``monthly_amount`` of the approval in force (:meth:`in_force`:
        the latest start among those in force; two with that start, the larger amount),
        beyond the rules' tolerance. No approval in force: no finding here
        (``without_approval`` has each payment).

        Rows: root (``person|insurance|period``), insurance, period, count, total_fen,
        approved_fen, event ids, approval ids.
        """
        pd = st.paid
        groups = (select(pd.c.person, pd.c.insurance, pd.c.period, pd.c.n, pd.c.total,
                         _agg_ids(E.c.record_id).label("events"))
                  .select_from(pd).join(E, self._paid_events(pd))
                  .where(pd.c.insurance.is_not(None))
                  .group_by(pd.c.person, pd.c.insurance, pd.c.period, pd.c.n, pd.c.total)
                  # a CTE: read twice below, computed once
                  .cte("paid"))
        ap, cond = self.in_force("benefit_approval", groups.c.person, groups.c.insurance,
                                 groups.c.period, "ap")
        start = (select(groups.c.person, groups.c.insurance, groups.c.period,
                        func.max(ap.c.period).label("start"))
                 .select_from(groups).join(ap, cond)
                 .group_by(groups.c.person, groups.c.insurance, groups.c.period)
                 .subquery("in_force"))
        a2 = P.alias("approved")
        approved = func.max(a2.c.amount_fen)
        q = (
            select(groups.c.person, groups.c.insurance, groups.c.period, groups.c.insurance,
                   groups.c.period, groups.c.n, groups.c.total, approved.label("approved"),
                   groups.c.events, _agg_ids(a2.c.record_id).label("approvals"))
            .select_from(groups)
            .join(start, and_(start.c.person == groups.c.person,
                              start.c.insurance == groups.c.insurance,
                              start.c.period == groups.c.period))
            .join(a2, and_(a2.c.kind == "benefit_approval", a2.c.person == groups.c.person,
                           a2.c.insurance == groups.c.insurance, a2.c.period == start.c.start,
                           a2.c.superseded.is_(False)))
            .group_by(groups.c.person, groups.c.insurance, groups.c.period, groups.c.n,
                      groups.c.total, groups.c.events)
            .having(and_(groups.c.total > approved, ~self.within(groups.c.total, approved)))
        )
        return ((group_key(p, i, per), *rest)
                for p, i, per, *rest in _rows(conn, q, groups.c.person, groups.c.insurance,
                                              groups.c.period))

    def without_enrolment(self, conn: Connection, st: Stages, scope: Scope | None
                          ) -> RowIter:
        """Current contribution assessments that name a person with no enrolment in the
        insurance in force for the assessed period (:meth:`in_force`: enrolled in or
        before its month, not ended by a termination since). Only where enrolments are
        held (:meth:`covered`).

        Rows: root (event seq), event id, insurance, period, amount_fen.
        """
        en, cond = self.in_force("enrollment", E.c.person, E.c.insurance, E.c.period, "en")
        q = (
            select(E.c.seq, E.c.record_id, E.c.insurance, E.c.period, E.c.amount_fen)
            .where(E.c.kind == "contribution_assessment", E.c.superseded.is_(False),
                   E.c.person.is_not(None), E.c.period.is_not(None),
                   self.covered("enrollment"),
                   ~select(literal(1)).select_from(en).where(cond).exists())
        )
        return _rows(conn, self._scoped(q, E.c.seq, None if scope is None else scope.payments),
                     E.c.seq)

    def duplicate_enrolments(self, conn: Connection, st: Stages, scope: Scope | None
                             ) -> RowIter:
        """Current enrolments of a person in an insurance made (``effective_date``) while a
        current enrolment of the same person and insurance in another region was still in
        force — from its own date until the first current termination of the person there
        (same insurance or ``all``, effective on or after it) or the first current
        ``transfer_out`` of the person and insurance from that region occurring on or after
        it, whichever comes first — with no current transfer between the two regions
        (a ``transfer_out`` from the first to the second, or a ``transfer_in`` into the
        second from the first, of that person and insurance) occurring within
        ``transfer_days`` before or after the later enrolment. Two enrolments of one day:
        the later entry is the one at fault.

        Rows: root (the later enrolment's seq), its id, insurance, region, effective day,
        the earlier enrolment's id, region, effective day.
        """
        e1, e2, tm = P.alias("en_first"), P.alias("en_later"), P.alias("en_end")
        xo, xo_r = E.alias("xo"), R.alias("xo_r")
        tx, tx_r = E.alias("tx"), R.alias("tx_r")
        window = self.rules.transfer_days
        ended_by_termination = (
            select(literal(1)).select_from(tm)
            .where(tm.c.kind == "termination", tm.c.person == e1.c.person,
                   or_(tm.c.insurance == e1.c.insurance, tm.c.insurance == "all"),
                   tm.c.region == e1.c.region, tm.c.superseded.is_(False),
                   tm.c.effective_day >= e1.c.effective_day,
                   tm.c.effective_day <= e2.c.effective_day)
            .correlate_except(tm).exists())
        transferred_out = (
            select(literal(1)).select_from(xo).join(xo_r, xo_r.c.seq == xo.c.seq)
            .where(xo.c.kind == "transfer_out", xo.c.person == e1.c.person,
                   xo.c.insurance == e1.c.insurance, xo.c.region == e1.c.region,
                   xo.c.superseded.is_(False), xo_r.c.occurred_day >= e1.c.effective_day,
                   xo_r.c.occurred_day <= e2.c.effective_day)
            .correlate_except(xo, xo_r).exists())
        explained = (
            select(literal(1)).select_from(tx).join(tx_r, tx_r.c.seq == tx.c.seq)
            .where(tx.c.person == e2.c.person, tx.c.insurance == e2.c.insurance,
                   tx.c.superseded.is_(False),
                   or_(and_(tx.c.kind == "transfer_out", tx.c.region == e1.c.region,
                            tx.c.other_region == e2.c.region),
                       and_(tx.c.kind == "transfer_in", tx.c.region == e2.c.region,
                            tx.c.other_region == e1.c.region)),
                   tx_r.c.occurred_day >= e2.c.effective_day - window,
                   tx_r.c.occurred_day <= e2.c.effective_day + window)
            .correlate_except(tx, tx_r).exists())
        q = (
            select(e2.c.seq, e2.c.record_id, e2.c.insurance, e2.c.region, e2.c.effective_day,
                   e1.c.record_id, e1.c.region, e1.c.effective_day)
            .select_from(e2)
            .join(e1, and_(e1.c.kind == "enrollment", e1.c.person == e2.c.person,
                           e1.c.insurance == e2.c.insurance, e1.c.region != e2.c.region,
                           e1.c.superseded.is_(False), e1.c.effective_day.is_not(None),
                           or_(e1.c.effective_day < e2.c.effective_day,
                               and_(e1.c.effective_day == e2.c.effective_day,
                                    e1.c.seq < e2.c.seq))))
            .where(e2.c.kind == "enrollment", e2.c.superseded.is_(False),
                   e2.c.effective_day.is_not(None), ~ended_by_termination,
                   ~transferred_out, ~explained)
        )
        if scope is not None:
            q = q.where(e2.c.seq.in_(select(scope.enrolments.c.seq)))
        return _rows(conn, q, e2.c.seq, e1.c.seq)

    # -- outside lists, certification, transfers (INTERCHANGE v1.1) ---------------------------
    def after_death(self, conn: Connection, st: Stages, scope: Scope | None) -> RowIter:
        """Current payments of the recurring benefit (:meth:`recurring`: pension is paid
        for the month of death; funeral grants and survivor benefits after it) for a
        ``period`` later than the month of death a compared list gives for the person
        (:mod:`reconcile.matching._outside`).

        Rows: root (event seq), event id, insurance, period, amount_fen, death day, the
        list's source and first entry.
        """
        d = st.outside.deaths
        q = (
            select(E.c.seq, E.c.record_id, E.c.insurance, E.c.period, E.c.amount_fen, d.c.day,
                   d.c.source, d.c.entry)
            .select_from(E).join(d, d.c.person == E.c.person)
            .where(E.c.kind == "benefit_payment", E.c.superseded.is_(False),
                   E.c.period.is_not(None), E.c.period > d.c.month, self.recurring())
        )
        return _rows(conn, self._scoped(q, E.c.seq, None if scope is None else scope.payments),
                     E.c.seq)

    def death_unrecorded(self, conn: Connection, st: Stages, scope: Scope | None
                         ) -> RowIter:
        """People on a compared death list with a current benefit approval (any insurance)
        still in force (:meth:`in_force`) for the month after the month of death: no
        termination ends it by then.

        Rows: root (the person's pseudonym), death day, the list's source and first entry,
        approval ids, their insurances.
        """
        d = st.outside.deaths
        ap, cond = self.in_force("benefit_approval", d.c.person, None, d.c.next_month, "ap")
        q = (
            select(d.c.person, d.c.day, d.c.source, d.c.entry, _agg_ids(ap.c.record_id),
                   _agg_ids(ap.c.insurance))
            .select_from(d).join(ap, cond)
            .group_by(d.c.person, d.c.day, d.c.source, d.c.entry)
        )
        if scope is not None:
            q = q.where(d.c.person.in_(select(scope.persons.c.person)))
        return _rows(conn, q, d.c.person)

    @staticmethod
    def _month_no(period: ColumnElement[str]) -> ColumnElement[int]:
        """``YYYY-MM`` as a count of months (year × 12 + month)."""
        return (cast(func.substr(period, 1, 4), Integer) * 12
                + cast(func.substr(period, 6, 2), Integer))

    def certification_overdue(self, conn: Connection, st: Stages, scope: Scope | None
                              ) -> RowIter:
        """Current payments of the recurring benefit of a certified insurance (the rules'
        ``certified_insurances``) for a ``period`` that neither a current certification of
        the person and insurance nor the ``start_period`` of a current approval covers: one
        in month ``c`` covers ``c`` to ``c + certification_months - 1``. Only where
        certifications are held (:meth:`covered`).

        Rows: root (event seq), event id, insurance, period, amount_fen, the last
        certification's month before the period (or NULL).
        """
        kinds = self.rules.certified_insurances
        if not kinds:
            return iter(())
        window = self.rules.certification_months
        c = P.alias("cert")
        paid = self._month_no(E.c.period)
        covering = (select(literal(1)).select_from(c)
                    .where(c.c.kind.in_(("certification", "benefit_approval")),
                           c.c.person == E.c.person, c.c.insurance == E.c.insurance,
                           c.c.superseded.is_(False), c.c.period <= E.c.period,
                           paid - self._month_no(c.c.period) < window)
                    .correlate_except(c).exists())
        last_c = P.alias("last_cert")
        last = (select(func.max(last_c.c.period)).select_from(last_c)
                .where(last_c.c.kind == "certification", last_c.c.person == E.c.person,
                       last_c.c.insurance == E.c.insurance, last_c.c.superseded.is_(False),
                       last_c.c.period <= E.c.period)
                .correlate_except(last_c).scalar_subquery())
        q = (
            select(E.c.seq, E.c.record_id, E.c.insurance, E.c.period, E.c.amount_fen, last)
            .where(E.c.kind == "benefit_payment", E.c.superseded.is_(False),
                   E.c.person.is_not(None), E.c.period.is_not(None),
                   E.c.insurance.in_(kinds), self.recurring(),
                   self.covered("certification"), ~covering)
        )
        return _rows(conn, self._scoped(q, E.c.seq, None if scope is None else scope.payments),
                     E.c.seq)

    def transfers_unmatched(self, conn: Connection, st: Stages, scope: Scope | None
                            ) -> RowIter:
        """Current ``transfer_out`` events whose ``to_region`` is held (the run's regions)
        with no current ``transfer_in`` of the same person, insurance and amount there,
        from their region, occurring within ``transfer_days`` before or after them; and
        current ``transfer_in`` events whose ``from_region`` is held with no such
        ``transfer_out`` there. ``moved``: a ``transfer_out`` settled by a current movement
        (allocated or matched), or any ``transfer_in`` (it records money received).

        Rows: root (event seq), event id, kind, insurance, amount_fen, region, other region,
        occurred day, moved (1 or 0).
        """
        if scope is not None and conn.execute(
                select(scope.transfers.c.seq).limit(1)).first() is None:
            return iter(())  # nothing to re-check: the regions are not even read
        held = st.outside.regions()
        if not held:
            return iter(())
        tx, tx_r = E.alias("tx_other"), R.alias("tx_other_r")
        window = self.rules.transfer_days
        opposite = case((E.c.kind == "transfer_out", _text("transfer_in")),
                        else_=_text("transfer_out"))
        partner = (
            select(literal(1)).select_from(tx).join(tx_r, tx_r.c.seq == tx.c.seq)
            .where(tx.c.kind == opposite, tx.c.person == E.c.person,
                   tx.c.insurance == E.c.insurance, tx.c.amount_fen == E.c.amount_fen,
                   tx.c.region == E.c.other_region, tx.c.other_region == E.c.region,
                   tx.c.superseded.is_(False),
                   tx_r.c.occurred_day >= R.c.occurred_day - window,
                   tx_r.c.occurred_day <= R.c.occurred_day + window)
            .correlate_except(tx, tx_r).exists())
        links = st.every_link
        settled = or_(
            select(literal(1)).select_from(links).where(links.c.e_seq == E.c.seq)
            .correlate_except(links).exists(),
            select(literal(1)).select_from(st.matched).where(st.matched.c.e_seq == E.c.seq)
            .correlate_except(st.matched).exists())
        moved = case((E.c.kind == "transfer_in", 1), (settled, 1), else_=0)
        q = (
            select(E.c.seq, E.c.record_id, E.c.kind, E.c.insurance, E.c.amount_fen,
                   E.c.region, E.c.other_region, R.c.occurred_day, moved)
            .select_from(E).join(R, R.c.seq == E.c.seq)
            .where(E.c.kind.in_(("transfer_out", "transfer_in")), E.c.superseded.is_(False),
                   E.c.person.is_not(None), E.c.other_region.in_(held), ~partner)
        )
        return _rows(conn, self._scoped(q, E.c.seq,
                                        None if scope is None else scope.transfers), E.c.seq)

    def transfer_region_mismatch(self, conn: Connection, st: Stages, scope: Scope | None
                                 ) -> RowIter:
        """Current ``transfer`` movements with a ``to_region`` that settle (allocated, or
        matched by the run) a current ``transfer_out`` whose ``to_region`` differs.

        Rows: root (movement seq), movement id, its to_region, the event's id, its
        to_region, the movement's amount_fen.
        """
        a, h = st.every_link, st.matched
        la, lh = select(a.c.m_seq, a.c.e_seq), select(h.c.m_seq, h.c.e_seq)
        if scope is not None:  # the scope's movements first: not every allocation
            la = la.where(a.c.m_seq.in_(select(scope.movements.c.seq)))
            lh = lh.where(h.c.m_seq.in_(select(scope.movements.c.seq)))
        pairs = union_all(la, lh).subquery("tr_pairs")
        q = (
            select(M.c.seq, M.c.record_id, M.c.to_region, E.c.record_id, E.c.other_region,
                   M.c.amount_fen)
            .select_from(pairs)
            .join(M, M.c.seq == pairs.c.m_seq)
            .join(E, E.c.seq == pairs.c.e_seq)
            .where(M.c.kind == "transfer", M.c.superseded.is_(False),
                   M.c.to_region.is_not(None), E.c.kind == "transfer_out",
                   E.c.superseded.is_(False),
                   or_(E.c.other_region.is_(None), E.c.other_region != M.c.to_region))
            .distinct()
        )
        return _rows(conn, self._scoped(q, M.c.seq,
                                        None if scope is None else scope.movements),
                     M.c.seq, E.c.record_id)

    # -- the income account, per month ------------------------------------------------------
    @staticmethod
    def month_sums_select(seqs: Select[Any] | None = None,
                          sign: int = 1) -> Select[Any]:
        """The income account's in, out and count per value month over current movements
        (or over the movements ``seqs`` selects, whatever their status, times ``sign``)."""
        fa, fr, to = M.c.fund_account, M.c.from_account, M.c.to_account
        sweep = M.c.kind == "sweep"
        inflow = case((and_(~sweep, M.c.kind.in_(("collection", "return")), fa == "income"),
                       M.c.amount_fen),
                      (and_(sweep, to == "income"), M.c.amount_fen), else_=0)
        outflow = case((and_(~sweep, M.c.kind.in_(OUTFLOW_KINDS), fa == "income"),
                        M.c.amount_fen),
                       (and_(sweep, fr == "income"), M.c.amount_fen), else_=0)
        q = (
            select(M.c.value_month, _sum(inflow * sign).label("in_fen"),
                   _sum(outflow * sign).label("out_fen"),
                   cast(func.count() * sign, BigInteger).label("n"))
            .where(or_(fa == "income", fr == "income", to == "income"))
            .group_by(M.c.value_month)
        )
        if seqs is None:
            return q.where(M.c.superseded.is_(False))
        return q.where(M.c.seq.in_(seqs))


def group_key(person: str, insurance: str, period: str) -> str:
    """The root of a duplicates group."""
    return f"{person}|{insurance}|{period}"
