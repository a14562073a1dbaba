"""Matching: set-based SQL over the derived tables (one SQLAlchemy Core code path).

Nothing here loops over records in Python: each function runs one statement whose
rows are already *findings* (or items still inside their window), so a clean
ledger returns no rows at all. The building blocks, as common table expressions:

- ``alloc_links``: allocations of *current* movements (returns excluded), each
  resolved to the *current* version of the event it names (a reference to a
  superseded record counts for its latest version);
- ``candidates``: for each unallocated current movement, the current events of the
  kind it settles, not yet settled by allocations, with the same amount, a
  matching party (``payer_id`` = the event's employer or person; ``payee_account``
  = the event's ``account``) and a value date from ``match_days_before`` before to
  ``match_days_after`` after the event's due date (else its ``occurred_at`` date);
- ``links``: ``alloc_links`` plus the heuristic matches (movements with exactly
  one candidate; several candidates are ``AMBIGUOUS_MATCH`` and nothing is guessed);
- ``settled``: per event, the sum of its links, the last value date, the movements.

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
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    union_all,
)

from reconcile import _tables as t
from reconcile._rules import Rules

R, E, M, A, V, VR = t.records, t.events, t.movements, t.allocations, t.vouchers, t.voucher_refs

REQUIRED_VOUCHER: dict[tuple[str, str], str] = {
    ("business", "contribution_assessment"): "fiscal_receipt",
    ("business", "benefit_payment"): "bank_slip",
    ("business", "refund"): "accounting_voucher",
    ("business", "transfer_out"): "approval_document",
    ("business", "benefit_approval"): "approval_document",
    ("business", "enrollment"): "application_form",
}
"""Voucher kind each business kind needs (INTERCHANGE table); every finance
movement needs an ``accounting_voucher``."""
FINANCE_VOUCHER = "accounting_voucher"


def _sum(col: ColumnElement[int]) -> ColumnElement[int]:
    """SUM as BIGINT on both backends (PostgreSQL sums BIGINT to NUMERIC)."""
    return cast(func.sum(col), BigInteger)


def _agg_ids(col: ColumnElement[str]) -> ColumnElement[str]:
    """Comma-joined ids (ids never contain commas): group_concat / string_agg."""
    return func.aggregate_strings(col, ",")


@dataclass(frozen=True)
class Matcher:
    """The CTEs of one run, built once from the rules."""

    rules: Rules

    # -- building blocks --------------------------------------------------------
    def alloc_links(self) -> CTE:
        rm, rn, rc = R.alias("rm"), R.alias("rn"), R.alias("rc")
        return (
            select(A.c.movement_seq.label("m_seq"), E.c.seq.label("e_seq"),
                   A.c.amount_fen.label("amount_fen"), M.c.value_day.label("value_day"))
            .select_from(A)
            .join(M, M.c.seq == A.c.movement_seq)
            .join(rm, and_(rm.c.seq == M.c.seq, rm.c.superseded.is_(False)))
            .join(rn, and_(rn.c.domain == "business", rn.c.record_id == A.c.event_id))
            .join(rc, and_(rc.c.domain == "business", rc.c.record_id == rn.c.current_id))
            .join(E, E.c.seq == rc.c.seq)
            .where(M.c.kind != "return")
            .cte("alloc_links")
        )

    def candidates(self, alloc_links: CTE) -> CTE:
        rm, re_ = R.alias("rm2"), R.alias("re")
        alloc_sum = (
            select(alloc_links.c.e_seq, _sum(alloc_links.c.amount_fen).label("total"))
            .group_by(alloc_links.c.e_seq).cte("alloc_sum")
        )
        party = or_(
            and_(M.c.payer.is_not(None), or_(M.c.payer == E.c.party, M.c.payer == E.c.person)),
            and_(M.c.payee_account.is_not(None), M.c.payee_account == E.c.account),
        )
        return (
            select(M.c.seq.label("m_seq"), E.c.seq.label("e_seq"))
            .select_from(M)
            .join(rm, and_(rm.c.seq == M.c.seq, rm.c.superseded.is_(False)))
            .join(E, and_(
                E.c.kind == M.c.settles,
                E.c.amount_fen == M.c.amount_fen,
                M.c.value_day >= E.c.anchor_day - self.rules.match_days_before,
                M.c.value_day <= E.c.anchor_day + self.rules.match_days_after,
                party,
            ))
            .join(re_, and_(re_.c.seq == E.c.seq, re_.c.superseded.is_(False)))
            .outerjoin(alloc_sum, alloc_sum.c.e_seq == E.c.seq)
            .where(M.c.allocated.is_(False),
                   or_(alloc_sum.c.total.is_(None), alloc_sum.c.total < E.c.amount_fen))
            .cte("candidates")
        )

    @staticmethod
    def cand_count(candidates: CTE) -> CTE:
        return (
            select(candidates.c.m_seq, func.count().label("n"))
            .group_by(candidates.c.m_seq).cte("cand_n")
        )

    def links(self) -> tuple[CTE, CTE, CTE, CTE]:
        """``(alloc_links, candidates, cand_n, links)``."""
        al = self.alloc_links()
        cand = self.candidates(al)
        cn = self.cand_count(cand)
        matched = (
            select(cand.c.m_seq, cand.c.e_seq, M.c.amount_fen, M.c.value_day)
            .select_from(cand)
            .join(cn, and_(cn.c.m_seq == cand.c.m_seq, cn.c.n == 1))
            .join(M, M.c.seq == cand.c.m_seq)
        )
        plain = select(al.c.m_seq, al.c.e_seq, al.c.amount_fen, al.c.value_day)
        return al, cand, cn, union_all(plain, matched).cte("links")

    # -- findings -----------------------------------------------------------------
    def event_findings(self, conn: Connection) -> list[Row[tuple[str, str, int, int, int | None,
                                                                 int, int | None, str | None]]]:
        """Current money events not settled exactly, or settled late (assessments).

        Rows: record_id, kind, amount_fen, anchor_day, due_day, total_fen, last_value_day,
        movement ids (comma-joined, or None).
        """
        _al, _cand, _cn, links = self.links()
        settled = (
            select(links.c.e_seq, _sum(links.c.amount_fen).label("total"),
                   func.max(links.c.value_day).label("last_day"),
                   _agg_ids(M.c.record_id).label("movements"))
            .select_from(links).join(M, M.c.seq == links.c.m_seq)
            .group_by(links.c.e_seq).cte("settled")
        )
        re_ = R.alias("re")
        total = func.coalesce(settled.c.total, 0)
        late = and_(E.c.kind == "contribution_assessment", E.c.due_day.is_not(None),
                    settled.c.last_day > E.c.due_day + self.rules.late_days)
        q = (
            select(E.c.record_id, E.c.kind, E.c.amount_fen, E.c.anchor_day, E.c.due_day,
                   total.label("total"), settled.c.last_day, settled.c.movements)
            .select_from(E)
            .join(re_, and_(re_.c.seq == E.c.seq, re_.c.superseded.is_(False)))
            .outerjoin(settled, settled.c.e_seq == E.c.seq)
            .where(or_(total != E.c.amount_fen, late))
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
            .having(allocated != M.c.amount_fen)
            .order_by(M.c.record_id)
        )
        return list(conn.execute(q).tuples())

    def orphans(self, conn: Connection) -> list[Row[tuple[str, str, int, int, bool]]]:
        """Current movements that settle nothing: unallocated with no candidate, or
        allocated only to events the ledger does not hold.

        Rows: record_id, kind, amount_fen, value_day, allocated.
        """
        al, _cand, cn, _links = self.links()
        rm = R.alias("rm")
        resolved = exists().where(al.c.m_seq == M.c.seq)
        q = (
            select(M.c.record_id, M.c.kind, M.c.amount_fen, M.c.value_day, M.c.allocated)
            .select_from(M)
            .join(rm, and_(rm.c.seq == M.c.seq, rm.c.superseded.is_(False)))
            .outerjoin(cn, cn.c.m_seq == M.c.seq)
            .where(M.c.settles.is_not(None), or_(
                and_(M.c.allocated.is_(False), cn.c.n.is_(None)),
                and_(M.c.allocated.is_(True), ~resolved),
            ))
            .order_by(M.c.record_id)
        )
        return list(conn.execute(q).tuples())

    def ambiguous(self, conn: Connection) -> list[Row[tuple[str, int, str]]]:
        """Unallocated movements with several candidate events.

        Rows: record_id, amount_fen, candidate event ids (comma-joined).
        """
        al = self.alloc_links()
        cand = self.candidates(al)
        cn = self.cand_count(cand)
        q = (
            select(M.c.record_id, M.c.amount_fen, _agg_ids(E.c.record_id).label("events"))
            .select_from(cand)
            .join(cn, and_(cn.c.m_seq == cand.c.m_seq, cn.c.n > 1))
            .join(M, M.c.seq == cand.c.m_seq)
            .join(E, E.c.seq == cand.c.e_seq)
            .group_by(M.c.seq, M.c.record_id, M.c.amount_fen)
            .order_by(M.c.record_id)
        )
        return list(conn.execute(q).tuples())

    def missing_vouchers(self, conn: Connection) -> list[Row[tuple[str, str, str, str, int]]]:
        """Current records without the voucher their kind requires.

        A voucher counts when it is current and one of its ``refs`` names the record
        or an earlier version of it; for a benefit payment, a ``bank_slip`` naming a
        movement that settles it counts too.
        Rows: record_id, domain, kind, required voucher kind, occurred_day.
        """
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
            .join(V, and_(V.c.seq == VR.c.voucher_seq, V.c.kind == "bank_slip"))
            .join(rv2, and_(rv2.c.seq == V.c.seq, rv2.c.superseded.is_(False)))
            .where(E.c.kind == "benefit_payment")
        )
        evidence = union_all(direct, via_payment).cte("evidence")
        required = case(
            (R.c.domain == "finance", FINANCE_VOUCHER),
            *[(and_(R.c.domain == d, R.c.kind == k), v) for (d, k), v in REQUIRED_VOUCHER.items()],
            else_=None,
        )
        has = exists().where(evidence.c.domain == R.c.domain, evidence.c.target == R.c.record_id,
                             evidence.c.kind == required)
        q = (
            select(R.c.record_id, R.c.domain, R.c.kind, required.label("required"),
                   R.c.occurred_day)
            .where(R.c.superseded.is_(False), required.is_not(None), ~has)
            .order_by(R.c.record_id)
        )
        return list(conn.execute(q).tuples())
