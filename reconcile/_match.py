"""Matching: set-based SQL over the derived tables (one SQLAlchemy Core code path).

This module owns every matching and domain-rule statement. Nothing here loops over
records in Python: each function runs one statement whose rows are already
*findings* (or items still inside their window), so a clean ledger returns no rows.
The building blocks, as common table expressions:

- ``alloc_links``: allocations of *current* movements, each resolved to the *current*
  version of the event it names (a reference to a superseded record counts for its
  latest version). A ``finance.return``'s allocations count *negative*: returned
  money reduces what the event has been settled by, so the event is open again until
  a later payment allocates to it (``RETURNED_PAYMENT`` meanwhile);
- ``open_events``: current events of the kinds the rules say need money, with their
  *open* amount (amount minus what allocations already settle), where that is positive;
- ``candidates``: for each unallocated current movement of a settling kind, the open
  events of the kind it settles (per the rules) whose open amount equals the
  movement's amount, with a matching party (``payer_id`` = the event's employer or
  person; ``payee_account`` = the event's ``account``) and a value date from
  ``match_days_before`` before to ``match_days_after`` after the event's due date
  (else its ``occurred_at`` date);
- ``links``: ``alloc_links`` plus the heuristic matches;
- ``settled``: per event, the sum of its links, the last value date, the movements.

**A movement never settles more than its amount.** Allocations settle exactly their
amounts (a movement whose allocations exceed it is ``AMOUNT_MISMATCH`` at once). A
heuristic match is made only when the movement has exactly *one* candidate event and
that event has exactly *one* candidate movement; the link carries the movement's
amount, which equals the event's open amount. Several candidates on either side give
``AMBIGUOUS_MATCH`` for each movement concerned and nothing is linked. So one
movement links at most once, for at most its amount, and one event takes at most one
heuristic movement, never beyond what is still open. Matches are not stored: every
run recomputes them from the derived tables, so nothing accumulates across runs (a
movement matched in one run can never be counted again in the next; when a new
event makes it ambiguous, it is reported as such and the earlier match is undone).

Domain rules (issue item 4): ``duplicates`` (same person pseudonym, insurance and
period in more than one current benefit payment), ``after_termination``,
``payee_mismatches`` (the account of the approval in force for the period),
``account_rule_violations`` and ``income_netting`` (财社〔2017〕144号),
``voucher_mismatches``.

Business refunds and transfers out carry no field comparable with their movement's
``payee_account``, so they are settled by allocations only.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    CTE,
    BigInteger,
    ColumnElement,
    Connection,
    Row,
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
    union_all,
)
from sqlalchemy.sql.selectable import NamedFromClause

from reconcile import _tables as t
from reconcile._rules import Rules

R, E, M, A, V, VR, P = (t.records, t.events, t.movements, t.allocations, t.vouchers,
                        t.voucher_refs, t.person_events)

VIA_MOVEMENT = ("benefit_payment", "bank_slip")
"""A ``bank_slip`` naming a movement that settles a benefit payment counts for the event."""

OUTFLOW_KINDS = ("payment", "refund", "transfer")
"""Finance kinds that take money out of the account named by ``fund_account``."""


def _sum(col: ColumnElement[int]) -> ColumnElement[int]:
    """SUM as BIGINT on both backends (PostgreSQL sums BIGINT to NUMERIC)."""
    return cast(func.sum(col), BigInteger)


def _agg_ids(col: ColumnElement[str]) -> ColumnElement[str]:
    """Comma-joined ids (ids never contain commas): group_concat / string_agg."""
    return func.aggregate_strings(col, ",")


def _text(value: str) -> ColumnElement[str]:
    """A typed string literal (PostgreSQL needs the type inside UNION ALL)."""
    return cast(literal(value), String(64))


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

    def late_days(self) -> ColumnElement[int]:
        r = self.rules
        return case(*[(E.c.kind == k, r.late_for(k)) for k in r.money_kinds()],
                    else_=r.late_days)

    # -- building blocks --------------------------------------------------------------
    def alloc_links(self) -> CTE:
        rm, rn, rc = R.alias("rm"), R.alias("rn"), R.alias("rc")
        signed = case((M.c.kind == "return", -A.c.amount_fen), else_=A.c.amount_fen)
        return (
            select(A.c.movement_seq.label("m_seq"), E.c.seq.label("e_seq"),
                   signed.label("amount_fen"), M.c.value_day.label("value_day"))
            .select_from(A)
            .join(M, M.c.seq == A.c.movement_seq)
            .join(rm, and_(rm.c.seq == M.c.seq, rm.c.superseded.is_(False)))
            .join(rn, and_(rn.c.domain == "business", rn.c.record_id == A.c.event_id))
            .join(rc, and_(rc.c.domain == "business", rc.c.record_id == rn.c.current_id))
            .join(E, E.c.seq == rc.c.seq)
            .where(or_(M.c.kind == "return", self.settles(M.c.kind).is_not(None)))
            .cte("alloc_links")
        )

    def open_events(self, alloc_links: CTE) -> CTE:
        re_ = R.alias("re_open")
        alloc_sum = (
            select(alloc_links.c.e_seq, _sum(alloc_links.c.amount_fen).label("total"))
            .group_by(alloc_links.c.e_seq).cte("alloc_sum")
        )
        open_fen = E.c.amount_fen - func.coalesce(alloc_sum.c.total, 0)
        return (
            select(E.c.seq, E.c.kind, E.c.anchor_day, E.c.party, E.c.person, E.c.account,
                   open_fen.label("open_fen"))
            .select_from(E)
            .join(re_, and_(re_.c.seq == E.c.seq, re_.c.superseded.is_(False)))
            .outerjoin(alloc_sum, alloc_sum.c.e_seq == E.c.seq)
            .where(self.money_kind(E.c.kind), open_fen > 0)
            .cte("open_events")
        )

    def candidates(self, alloc_links: CTE) -> CTE:
        rm = R.alias("rm2")
        oe = self.open_events(alloc_links)
        party = or_(
            and_(M.c.payer.is_not(None), or_(M.c.payer == oe.c.party, M.c.payer == oe.c.person)),
            and_(M.c.payee_account.is_not(None), M.c.payee_account == oe.c.account),
        )
        return (
            select(M.c.seq.label("m_seq"), oe.c.seq.label("e_seq"))
            .select_from(M)
            .join(rm, and_(rm.c.seq == M.c.seq, rm.c.superseded.is_(False)))
            .join(oe, and_(
                oe.c.open_fen == M.c.amount_fen,
                oe.c.kind == self.settles(M.c.kind),
                M.c.value_day >= oe.c.anchor_day - self.rules.match_days_before,
                M.c.value_day <= oe.c.anchor_day + self.rules.match_days_after,
                party,
            ))
            .where(M.c.allocated.is_(False))
            .cte("candidates")
        )

    @staticmethod
    def cand_count(candidates: CTE) -> CTE:
        """Per candidate pair: how many events the movement has (``n``) and how many
        movements the event has (``n_e``)."""
        per_m = (select(candidates.c.m_seq, func.count().label("n"))
                 .group_by(candidates.c.m_seq).cte("cand_m"))
        per_e = (select(candidates.c.e_seq, func.count().label("n_e"))
                 .group_by(candidates.c.e_seq).cte("cand_e"))
        return (
            select(candidates.c.m_seq, candidates.c.e_seq, per_m.c.n, per_e.c.n_e)
            .select_from(candidates)
            .join(per_m, per_m.c.m_seq == candidates.c.m_seq)
            .join(per_e, per_e.c.e_seq == candidates.c.e_seq)
            .cte("cand_n")
        )

    def links(self) -> tuple[CTE, CTE, CTE, CTE]:
        """``(alloc_links, candidates, cand_n, links)``."""
        al = self.alloc_links()
        cand = self.candidates(al)
        cn = self.cand_count(cand)
        matched = (
            select(cn.c.m_seq, cn.c.e_seq, M.c.amount_fen, M.c.value_day)
            .select_from(cn)
            .join(M, M.c.seq == cn.c.m_seq)
            .where(cn.c.n == 1, cn.c.n_e == 1)
        )
        plain = select(al.c.m_seq, al.c.e_seq, al.c.amount_fen, al.c.value_day)
        return al, cand, cn, union_all(plain, matched).cte("links")

    # -- settlement findings ------------------------------------------------------------
    def event_findings(self, conn: Connection) -> list[Row[tuple[
            str, str, int, int, int | None, int, int | None, str | None, int, str | None]]]:
        """Current money events not settled (within tolerance), or settled late.

        Rows: record_id, kind, amount_fen, anchor_day, due_day, total_fen, last_value_day,
        paying movement ids (comma-joined, or None), returned_fen, return ids (or None).
        """
        _al, _cand, _cn, links = self.links()
        paid = links.c.amount_fen > 0
        settled = (
            select(links.c.e_seq, _sum(links.c.amount_fen).label("total"),
                   func.max(case((paid, links.c.value_day), else_=None)).label("last_day"),
                   _agg_ids(case((paid, M.c.record_id), else_=None)).label("movements"),
                   _sum(case((paid, 0), else_=-links.c.amount_fen)).label("returned"),
                   _agg_ids(case((paid, None), else_=M.c.record_id)).label("returns"))
            .select_from(links).join(M, M.c.seq == links.c.m_seq)
            .group_by(links.c.e_seq).cte("settled")
        )
        re_ = R.alias("re")
        total = func.coalesce(settled.c.total, 0)
        late = and_(E.c.due_day.is_not(None),
                    settled.c.last_day > E.c.due_day + self.late_days())
        q = (
            select(E.c.record_id, E.c.kind, E.c.amount_fen, E.c.anchor_day, E.c.due_day,
                   total.label("total"), settled.c.last_day, settled.c.movements,
                   func.coalesce(settled.c.returned, 0).label("returned"), settled.c.returns)
            .select_from(E)
            .join(re_, and_(re_.c.seq == E.c.seq, re_.c.superseded.is_(False)))
            .outerjoin(settled, settled.c.e_seq == E.c.seq)
            .where(self.money_kind(E.c.kind), or_(~self.within(total, E.c.amount_fen), late))
            .order_by(E.c.record_id)
        )
        return list(conn.execute(q).tuples())

    def movement_mismatches(self, conn: Connection) -> list[Row[tuple[str, int, int]]]:
        """Current movements whose allocations do not add up to their amount.

        Rows: record_id, amount_fen, allocated_fen.
        """
        rm = R.alias("rm")
        allocated = _sum(A.c.amount_fen)
        q = (
            select(M.c.record_id, M.c.amount_fen, allocated.label("allocated"))
            .select_from(M)
            .join(rm, and_(rm.c.seq == M.c.seq, rm.c.superseded.is_(False)))
            .join(A, A.c.movement_seq == M.c.seq)
            .group_by(M.c.seq, M.c.record_id, M.c.amount_fen)
            .having(~self.within(allocated, M.c.amount_fen))
            .order_by(M.c.record_id)
        )
        return list(conn.execute(q).tuples())

    def orphans(self, conn: Connection) -> list[Row[tuple[str, str, int, int, bool]]]:
        """Current settling movements that settle nothing: unallocated with no candidate,
        or allocated only to events the ledger does not hold.

        Rows: record_id, kind, amount_fen, value_day, allocated.
        """
        al, cand, _cn, _links = self.links()
        rm = R.alias("rm")
        # anti-joins against each side computed once (a correlated EXISTS over the CTEs is
        # re-evaluated per movement by SQLite: quadratic, measured in bench/RECONCILE.md)
        resolved = select(al.c.m_seq).distinct().subquery("resolved")
        candidate = select(cand.c.m_seq).distinct().subquery("candidate")
        q = (
            select(M.c.record_id, M.c.kind, M.c.amount_fen, M.c.value_day, M.c.allocated)
            .select_from(M)
            .join(rm, and_(rm.c.seq == M.c.seq, rm.c.superseded.is_(False)))
            .outerjoin(resolved, resolved.c.m_seq == M.c.seq)
            .outerjoin(candidate, candidate.c.m_seq == M.c.seq)
            .where(self.settles(M.c.kind).is_not(None), or_(
                and_(M.c.allocated.is_(False), candidate.c.m_seq.is_(None)),
                and_(M.c.allocated.is_(True), resolved.c.m_seq.is_(None)),
            ))
            .order_by(M.c.record_id)
        )
        return list(conn.execute(q).tuples())

    def ambiguous(self, conn: Connection) -> list[Row[tuple[str, int, str, int]]]:
        """Unallocated movements with several candidate events, or whose one candidate
        event is also the candidate of another movement.

        Rows: record_id, amount_fen, candidate event ids (comma-joined), number of
        candidate events.
        """
        al = self.alloc_links()
        cand = self.candidates(al)
        cn = self.cand_count(cand)
        unsure = (select(cn.c.m_seq).where(or_(cn.c.n > 1, cn.c.n_e > 1)).distinct()
                  .cte("unsure"))
        q = (
            select(M.c.record_id, M.c.amount_fen, _agg_ids(E.c.record_id).label("events"),
                   func.count().label("n"))
            .select_from(unsure)
            .join(cand, cand.c.m_seq == unsure.c.m_seq)
            .join(M, M.c.seq == cand.c.m_seq)
            .join(E, E.c.seq == cand.c.e_seq)
            .group_by(M.c.seq, M.c.record_id, M.c.amount_fen)
            .order_by(M.c.record_id)
        )
        return list(conn.execute(q).tuples())

    def missing_vouchers(self, conn: Connection) -> list[Row[tuple[str, str, str, str, int]]]:
        """Current records without the vouchers the rules require of their kind.

        A voucher counts when it is current and one of its ``refs`` names the record
        or an earlier version of it; for a benefit payment, a ``bank_slip`` naming a
        movement that settles it counts too.
        Rows: record_id, domain, kind, missing voucher kinds (comma-joined), occurred_day.
        """
        reqs = self.rules.voucher_requirements()
        if not reqs:
            return []
        _al, _cand, _cn, links = self.links()
        rv, rt, rt2 = R.alias("rv"), R.alias("rt"), R.alias("rt2")
        direct = (
            select(rt.c.domain.label("domain"), rt.c.current_id.label("target"),
                   V.c.kind.label("kind"))
            .select_from(VR)
            .join(V, V.c.seq == VR.c.voucher_seq)
            .join(rv, and_(rv.c.seq == V.c.seq, rv.c.superseded.is_(False)))
            .join(rt, and_(rt.c.record_id == VR.c.ref_id,
                           rt.c.domain.in_(("business", "finance"))))
        )
        rv2 = R.alias("rv2")
        via_payment = (
            select(literal("business").label("domain"), E.c.record_id.label("target"),
                   V.c.kind.label("kind"))
            .select_from(links)
            .join(M, M.c.seq == links.c.m_seq)
            .join(E, E.c.seq == links.c.e_seq)
            .join(rt2, and_(rt2.c.domain == "finance", rt2.c.current_id == M.c.record_id))
            .join(VR, VR.c.ref_id == rt2.c.record_id)
            .join(V, and_(V.c.seq == VR.c.voucher_seq, V.c.kind == VIA_MOVEMENT[1]))
            .join(rv2, and_(rv2.c.seq == V.c.seq, rv2.c.superseded.is_(False)))
            .where(E.c.kind == VIA_MOVEMENT[0], links.c.amount_fen > 0)
        )
        evidence = union_all(direct, via_payment).cte("evidence")
        required = union_all(*[
            select(_text(d).label("domain"), _text(k).label("kind"), _text(v).label("voucher"))
            for d, k, v in reqs]).cte("required")
        has = exists().where(evidence.c.domain == R.c.domain, evidence.c.target == R.c.record_id,
                             evidence.c.kind == required.c.voucher)
        q = (
            select(R.c.record_id, R.c.domain, R.c.kind,
                   _agg_ids(required.c.voucher).label("missing"), R.c.occurred_day)
            .select_from(R)
            .join(required, and_(required.c.domain == R.c.domain, required.c.kind == R.c.kind))
            .where(R.c.superseded.is_(False), ~has)
            .group_by(R.c.seq, R.c.record_id, R.c.domain, R.c.kind, R.c.occurred_day)
            .order_by(R.c.record_id)
        )
        return list(conn.execute(q).tuples())

    # -- domain rules -------------------------------------------------------------------
    @staticmethod
    def _current(table: Table | NamedFromClause, name: str) -> ColumnElement[bool]:
        r = R.alias(name)
        return exists().where(r.c.seq == table.c.seq, r.c.superseded.is_(False))

    def duplicates(self, conn: Connection) -> list[Row[tuple[str, str, int, int, int, str]]]:
        """Same person, insurance and period in more than one current benefit payment.

        Rows: insurance, period, count, total_fen, max_fen, event ids (comma-joined).
        """
        q = (
            select(E.c.insurance, E.c.period, func.count().label("n"),
                   _sum(E.c.amount_fen).label("total"),
                   func.max(E.c.amount_fen).label("largest"),
                   _agg_ids(E.c.record_id).label("events"))
            .where(E.c.kind == "benefit_payment", E.c.person.is_not(None),
                   E.c.period.is_not(None), self._current(E, "r_dup"))
            .group_by(E.c.person, E.c.insurance, E.c.period)
            .having(func.count() > 1)
            .order_by(E.c.period)
        )
        return list(conn.execute(q).tuples())

    def after_termination(self, conn: Connection) -> list[Row[tuple[str, str, int, str, str]]]:
        """Current benefit payments for a period on or after the first period a current
        termination of the person (same insurance, or ``all``) no longer covers.

        Rows: event id, period, amount_fen, first uncovered period, termination ids.
        """
        q = (
            select(E.c.record_id, E.c.period, E.c.amount_fen,
                   func.min(P.c.period).label("from_period"),
                   _agg_ids(P.c.record_id).label("terminations"))
            .select_from(E)
            .join(P, and_(P.c.kind == "termination", P.c.person == E.c.person,
                          or_(P.c.insurance == E.c.insurance, P.c.insurance == "all"),
                          E.c.period >= P.c.period))
            .where(E.c.kind == "benefit_payment", self._current(E, "r_e"),
                   self._current(P, "r_p"))
            .group_by(E.c.seq, E.c.record_id, E.c.period, E.c.amount_fen)
            .order_by(E.c.record_id)
        )
        return list(conn.execute(q).tuples())

    def payee_mismatches(self, conn: Connection) -> list[Row[tuple[str, int, str, str]]]:
        """Current benefit payments whose account differs from that of the current
        approval in force for the person and insurance (latest ``start_period`` not
        after the payment's period). No approval on file: no finding.

        Rows: event id, amount_fen, approval ids, in-force start period.
        """
        p2 = P.alias("p2")
        approval = and_(p2.c.kind == "benefit_approval", p2.c.person == E.c.person,
                        p2.c.insurance == E.c.insurance, p2.c.period <= E.c.period)
        in_force = (
            select(E.c.seq.label("e_seq"), func.max(p2.c.period).label("start"))
            .select_from(E).join(p2, approval)
            .where(E.c.kind == "benefit_payment", self._current(E, "r_e"),
                   self._current(p2, "r_p2"))
            .group_by(E.c.seq).cte("in_force")
        )
        same = case((P.c.account == E.c.account, 1), else_=0)
        q = (
            select(E.c.record_id, E.c.amount_fen, _agg_ids(P.c.record_id).label("approvals"),
                   in_force.c.start)
            .select_from(in_force)
            .join(E, E.c.seq == in_force.c.e_seq)
            .join(P, and_(P.c.kind == "benefit_approval", P.c.person == E.c.person,
                          P.c.insurance == E.c.insurance, P.c.period == in_force.c.start))
            .where(self._current(P, "r_p"))
            .group_by(E.c.seq, E.c.record_id, E.c.amount_fen, in_force.c.start)
            .having(func.sum(same) == 0)
            .order_by(E.c.record_id)
        )
        return list(conn.execute(q).tuples())

    def account_rule_violations(self, conn: Connection) -> list[Row[tuple[str, str, int, str,
                                                                          str]]]:
        """Current movements against the purpose of a fund account (财社〔2017〕144号).

        ``income`` pays out only to ``fiscal_special`` by a sweep, as a refund or as a
        transfer out; ``expenditure`` receives only from ``fiscal_special`` by a sweep,
        or by a return. Rows: record_id, kind, amount_fen, field at fault, reason.
        """
        fa, fr, to = M.c.fund_account, M.c.from_account, M.c.to_account
        sweep = M.c.kind == "sweep"
        rules = [
            (and_(M.c.kind == "payment", fa == "income"), "fund_account",
             "the income account pays out only by a sweep to fiscal_special, a refund or a "
             "transfer out"),
            (and_(sweep, fr == "income", or_(to.is_(None), to != "fiscal_special")), "to_account",
             "the income account sweeps only to fiscal_special"),
            (and_(M.c.kind == "collection", fa == "expenditure"), "fund_account",
             "the expenditure account receives only from fiscal_special or by a return"),
            (and_(sweep, to == "expenditure", or_(fr.is_(None), fr != "fiscal_special")),
             "from_account", "the expenditure account receives only from fiscal_special"),
        ]
        field = case(*[(cond, f) for cond, f, _ in rules], else_=None)
        reason = case(*[(cond, why) for cond, _, why in rules], else_=None)
        q = (
            select(M.c.record_id, M.c.kind, M.c.amount_fen, field.label("field"),
                   reason.label("reason"))
            .where(field.is_not(None), self._current(M, "r_m"))
            .order_by(M.c.record_id)
        )
        return list(conn.execute(q).tuples())

    def income_netting(self, conn: Connection) -> list[Row[tuple[str, int, int, int]]]:
        """Months in which the income account's current movements do not net to zero.

        In: collections and returns on ``income``, sweeps to it; out: payments, refunds
        and transfers on ``income``, sweeps from it. Rows: month, in_fen, out_fen, count.
        """
        fa, fr, to = M.c.fund_account, M.c.from_account, M.c.to_account
        sweep = M.c.kind == "sweep"
        inflow = case((and_(~sweep, M.c.kind.in_(("collection", "return")), fa == "income"),
                       M.c.amount_fen),
                      (and_(sweep, to == "income"), M.c.amount_fen), else_=0)
        outflow = case((and_(~sweep, M.c.kind.in_(OUTFLOW_KINDS), fa == "income"),
                        M.c.amount_fen),
                       (and_(sweep, fr == "income"), M.c.amount_fen), else_=0)
        q = (
            select(M.c.value_month, _sum(inflow).label("in_fen"), _sum(outflow).label("out_fen"),
                   func.count().label("n"))
            .where(or_(fa == "income", fr == "income", to == "income"),
                   self._current(M, "r_m"))
            .group_by(M.c.value_month)
            .having(_sum(inflow) != _sum(outflow))
            .order_by(M.c.value_month)
        )
        return list(conn.execute(q).tuples())

    def voucher_mismatches(self, conn: Connection) -> list[Row[tuple[str, int, str, int, str]]]:
        """Current vouchers with an ``amount`` that differs from the sum of the current
        money records they refer to, per domain (a bank slip naming a benefit payment
        and its payment movement evidences the same money twice, once per domain).

        Rows: voucher id, voucher amount_fen, domain, evidenced_fen, record ids.
        """
        rt, rc = R.alias("rt"), R.alias("rc")
        amount = func.coalesce(E.c.amount_fen, M.c.amount_fen)
        targets = (
            select(V.c.seq.label("v_seq"), rc.c.seq.label("r_seq"), rc.c.domain,
                   rc.c.record_id, amount.label("amount_fen"))
            .select_from(V)
            .join(VR, VR.c.voucher_seq == V.c.seq)
            .join(rt, and_(rt.c.record_id == VR.c.ref_id, rt.c.domain.in_(("business", "finance"))))
            .join(rc, and_(rc.c.domain == rt.c.domain, rc.c.record_id == rt.c.current_id,
                           rc.c.superseded.is_(False)))
            .outerjoin(E, E.c.seq == rc.c.seq)
            .outerjoin(M, M.c.seq == rc.c.seq)
            .where(V.c.amount_fen.is_not(None), amount.is_not(None), self._current(V, "r_v"))
            .distinct()
            .cte("voucher_targets")
        )
        total = _sum(targets.c.amount_fen)
        q = (
            select(V.c.record_id, V.c.amount_fen, targets.c.domain, total.label("evidenced"),
                   _agg_ids(targets.c.record_id).label("records"))
            .select_from(targets)
            .join(V, V.c.seq == targets.c.v_seq)
            .group_by(V.c.seq, V.c.record_id, V.c.amount_fen, targets.c.domain)
            .having(~self.within(V.c.amount_fen, total))
            .order_by(V.c.record_id, targets.c.domain)
        )
        return list(conn.execute(q).tuples())
