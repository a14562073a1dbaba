"""Statement checks and the book-versus-bank balance report (银行余额调节表).

Statements are read from the ledger: the current (not superseded) ``finance.statement``
records, found through the derived ``rc_records`` table and decoded from their entries
(:func:`ledger.decode_leaf`); statements are few, so this is cheap. Movements are read
set-based from ``rc_movements``.

``statement_breaks`` reports

- ``STATEMENT_BALANCE_BREAK`` when a statement's opening balance plus its entries is not
  its closing balance, or when two consecutive statements of one bank account (ordered
  by closing date, then sequence number, then id) do not chain: the closing balance of
  one is not the opening balance of the next;
- ``AMOUNT_MISMATCH`` when a statement entry's ``bank_ref`` and direction belong to a
  current movement of another amount (the bank and the books disagree).

``book_vs_bank`` sets, per fund account, the bank balance (the latest closing balance
of each bank account on that fund account, as of the date) against the book balance
(the earliest statement's opening balance carried forward plus the net of the current
movements on the fund account whose value date lies from that opening date to the as-of
date) and lists the outstanding items: movements in the books on no statement, and
statement entries not in the books.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from typing import Any

from sqlalchemy import Connection, and_, literal_column, or_, select

from ledger import Ledger, decode_leaf, entries
from reconcile.bank._records import DIRECTION_KINDS, current_movements
from reconcile.matching import _tables as t
from reconcile.matching._refresh import refresh
from reconcile.matching._units import day_date, epoch_day, fen, money
from reconcile.reports._report import Break


@dataclass(frozen=True)
class StoredStatement:
    """A ``finance.statement`` record as the checks use it (money in fen)."""

    id: str
    bank_account: str
    fund_account: str | None
    sequence: str | None
    opening: int | None
    opening_date: str | None
    closing: int | None
    closing_date: str | None
    net: int
    lines: tuple[tuple[str, str, int, str], ...]
    """``(bank_ref, direction, amount fen, value_date)`` per entry."""

    def order_key(self) -> tuple[str, int, str, str]:
        seq = self.sequence or ""
        digits = "".join(ch for ch in seq if ch.isdigit())
        return (self.closing_date or self.opening_date or "", int(digits or 0), seq, self.id)


def _stored(rec: dict[str, Any]) -> StoredStatement:
    def opt(key: str) -> int | None:
        return None if key not in rec else fen(str(rec[key]))

    lines = tuple((str(x["bank_ref"]), str(x["direction"]), fen(str(x["amount"])),
                   str(x["value_date"])) for x in rec.get("entries") or [])
    return StoredStatement(
        id=str(rec["id"]), bank_account=str(rec["bank_account"]),
        fund_account=rec.get("fund_account"), sequence=rec.get("sequence"),
        opening=opt("opening_balance"), opening_date=rec.get("opening_date"),
        closing=opt("closing_balance"), closing_date=rec.get("closing_date"),
        net=fen(str(rec["entries_net"])), lines=lines)


def load_statements(conn: Connection, as_of: date | None) -> list[StoredStatement]:
    """Current statements whose ``occurred_at`` day is on or before ``as_of``."""
    r, e = t.records, entries.c
    # the kind as a literal, not a bound parameter: the partial index
    # ix_rc_records_statement (kind = 'statement') applies only to a query that states it
    q = (select(e.leaf).join(r, r.c.seq == e.seq)
         .where(r.c.kind == literal_column("'statement'"), r.c.domain == "finance",
                r.c.superseded.is_(False))
         .order_by(e.seq))
    if as_of is not None:
        q = q.where(r.c.occurred_day <= epoch_day(as_of))
    return [_stored(decode_leaf(bytes(leaf)).record) for (leaf,) in conn.execute(q)]


def statement_breaks(conn: Connection, rules: Any, as_of: date | None) -> list[Break]:
    """Balance-continuity and bank-versus-books amount findings (see the module docstring).

    ``conn`` is a reader on a ledger whose derived tables are refreshed; ``rules`` is
    accepted for the common signature (statement checks are exact, no tolerance).
    """
    stmts = load_statements(conn, as_of)
    out: list[Break] = []
    by_account: dict[str, list[StoredStatement]] = {}
    for st in stmts:
        by_account.setdefault(st.bank_account, []).append(st)
        if st.opening is not None and st.closing is not None and st.opening + st.net != st.closing:
            diff = st.opening + st.net - st.closing
            out.append(Break.make(
                "STATEMENT_BALANCE_BREAK", (st.id,),
                {"opening": st.opening, "entries": st.net, "closing": st.closing},
                "closing_balance",
                f"statement {st.id}: opening {money(st.opening)} + entries {money(st.net)} = "
                f"{money(st.opening + st.net)}, closing {money(st.closing)}", abs(diff)))
    for group in by_account.values():
        ordered = sorted(group, key=StoredStatement.order_key)
        for prev, nxt in pairwise(ordered):
            if prev.closing is None or nxt.opening is None or prev.closing == nxt.opening:
                continue
            out.append(Break.make(
                "STATEMENT_BALANCE_BREAK", (nxt.id, prev.id),
                {"previous_closing": prev.closing, "opening": nxt.opening}, "opening_balance",
                f"statement {nxt.id} opens at {money(nxt.opening)}, the previous statement "
                f"{prev.id} of account closed at {money(prev.closing)}",
                abs(prev.closing - nxt.opening)))
    out.extend(_mismatches(conn, stmts))
    return out


def _mismatches(conn: Connection, stmts: Sequence[StoredStatement]) -> list[Break]:
    lines = [(st.id, *line) for st in stmts for line in st.lines]
    if not lines:
        return []
    books = current_movements(conn, (line[1] for line in lines))
    out = []
    for sid, ref, direction, amount, _day in lines:
        movs = books.get((ref, direction))
        if not movs or any(a == amount for _, a in movs):
            continue
        mid, book_amount = movs[0]
        out.append(Break.make(
            "AMOUNT_MISMATCH", (mid, sid), {"movement": book_amount, "statement": amount},
            "amount", f"bank statement {sid} has {money(amount)} for {direction} {ref}, "
            f"the books {money(book_amount)}", abs(book_amount - amount)))
    return out


@dataclass
class BalanceReport:
    """银行余额调节表 of one fund account as of a date (money as strings)."""

    fund_account: str
    as_of: str
    bank_balance: str
    book_balance: str
    adjusted_bank: str
    adjusted_book: str
    balanced: bool
    """The adjusted balances agree; never true when no statement was found (nothing to
    compare the books with is not a reconciled account)."""
    statements: list[dict[str, str]] = field(default_factory=list)
    """The latest statement with a closing balance, per bank account."""
    statements_read: int = 0
    """Statements of the fund account on or before the date, with a closing balance or not."""
    book_only: list[dict[str, str]] = field(default_factory=list)
    """Movements in the books on no statement (deposits in transit, outstanding payments)."""
    bank_only: list[dict[str, str]] = field(default_factory=list)
    """Statement entries not in the books (or in the books with another amount)."""

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "fund_account", "as_of", "bank_balance", "book_balance", "adjusted_bank",
            "adjusted_book", "balanced", "statements", "statements_read", "book_only",
            "bank_only")}


def _signed(direction: str, amount: int) -> int:
    return amount if direction == "credit" else -amount


def book_vs_bank(ledger: Ledger, fund_account: str, as_of: date) -> BalanceReport:
    """Book balance against bank balance of ``fund_account`` with the outstanding items."""
    refresh(ledger.store)
    with ledger.store.reader() as conn:
        stmts = [s for s in load_statements(conn, as_of) if s.fund_account == fund_account]
        latest: dict[str, StoredStatement] = {}
        first: dict[str, StoredStatement] = {}
        for st in sorted(stmts, key=StoredStatement.order_key):
            first.setdefault(st.bank_account, st)
            if st.closing is not None:
                latest[st.bank_account] = st
        bank = sum(st.closing or 0 for st in latest.values())
        start = sum(st.opening or 0 for st in first.values())
        start_date = min((st.opening_date or st.closing_date or "9999-12-31"
                          for st in first.values()), default=None)
        movements = _book_movements(conn, fund_account, start_date, as_of)
    lines = [(st.id, *line) for st in stmts for line in st.lines]
    on_statement = {(ref, d, a) for _, ref, d, a, _ in lines}
    in_books = {(ref, d, a) for _, _, ref, d, a, _ in movements}
    book_only = [m for m in movements if (m[2], m[3], m[4]) not in on_statement]
    bank_only = [ln for ln in lines if (ln[1], ln[2], ln[3]) not in in_books]
    book = start + sum(_signed(d, a) for _, _, _, d, a, _ in movements)
    adj_bank = bank + sum(_signed(m[3], m[4]) for m in book_only)
    adj_book = book + sum(_signed(ln[2], ln[3]) for ln in bank_only)
    return BalanceReport(
        fund_account=fund_account, as_of=as_of.isoformat(), bank_balance=money(bank),
        book_balance=money(book), adjusted_bank=money(adj_bank), adjusted_book=money(adj_book),
        balanced=bool(latest) and adj_bank == adj_book, statements_read=len(stmts),
        statements=[{"id": st.id, "bank_account": st.bank_account,
                     "closing_date": st.closing_date or "",
                     "closing_balance": money(st.closing or 0)}
                    for st in latest.values()],
        book_only=[{"id": rid, "kind": kind, "bank_ref": ref, "direction": d,
                    "amount": money(a), "value_date": vd}
                   for rid, kind, ref, d, a, vd in book_only],
        bank_only=[{"statement": sid, "bank_ref": ref, "direction": d, "amount": money(a),
                    "value_date": vd} for sid, ref, d, a, vd in bank_only])


def _book_movements(conn: Connection, fund_account: str, start_date: str | None,
                    as_of: date) -> list[tuple[str, str, str, str, int, str]]:
    """``(id, kind, bank_ref, direction, amount fen, value_date)`` of current movements."""
    m, r = t.movements, t.records
    q = (select(m.c.record_id, m.c.kind, m.c.bank_ref, m.c.amount_fen, m.c.value_day,
                m.c.fund_account, m.c.from_account, m.c.to_account)
         .join(r, and_(r.c.seq == m.c.seq))
         .where(r.c.superseded.is_(False), m.c.value_day <= epoch_day(as_of),
                or_(m.c.fund_account == fund_account, m.c.from_account == fund_account,
                    m.c.to_account == fund_account)))
    if start_date is not None:
        q = q.where(m.c.value_day >= epoch_day(start_date))
    out = []
    for rid, kind, ref, amount, vday, fa, frm, to in conn.execute(q.order_by(m.c.seq)):
        if kind == "sweep":
            direction = "credit" if to == fund_account else "debit"
        else:
            direction = "credit" if kind in DIRECTION_KINDS["credit"] else "debit"
        del fa, frm
        out.append((str(rid), str(kind), str(ref), direction, int(amount),
                    day_date(int(vday)).isoformat()))
    return out

