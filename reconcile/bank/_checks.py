"""Statement checks: balance continuity and bank-versus-books amounts.

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

The bank reconciliation statement (银行存款余额调节表) is ``reconcile.bank._adjust``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from typing import Any

from sqlalchemy import Connection, literal_column, select

from ledger import decode_leaf, entries
from reconcile.bank._records import current_movements
from reconcile.matching import _tables as t
from reconcile.matching._units import epoch_day, fen, money
from reconcile.reports._report import Break, msg


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
    region: str = ""

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
        net=fen(str(rec["entries_net"])), lines=lines, region=str(rec.get("region", "")))


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
                msg("statement {statement}: opening {opening} + entries {entries} = {sum}, "
                    "closing {closing}", statement=st.id, opening=money(st.opening),
                    entries=money(st.net), sum=money(st.opening + st.net),
                    closing=money(st.closing)), abs(diff)))
    for group in by_account.values():
        ordered = sorted(group, key=StoredStatement.order_key)
        for prev, nxt in pairwise(ordered):
            if prev.closing is None or nxt.opening is None or prev.closing == nxt.opening:
                continue
            out.append(Break.make(
                "STATEMENT_BALANCE_BREAK", (nxt.id, prev.id),
                {"previous_closing": prev.closing, "opening": nxt.opening}, "opening_balance",
                msg("statement {statement} opens at {opening}, the previous statement "
                    "{previous} of account closed at {closing}", statement=nxt.id,
                    opening=money(nxt.opening), previous=prev.id, closing=money(prev.closing)),
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
            "amount", msg("bank statement {statement} has {amount} for {direction} {ref}, the "
                          "books {book}", statement=sid, amount=money(amount),
                          direction=direction, ref=ref, book=money(book_amount)),
            abs(book_amount - amount)))
    return out
