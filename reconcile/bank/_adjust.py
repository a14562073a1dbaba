"""银行存款余额调节表: the bank reconciliation statement of each bank account (FORMAT.md §9.7).

One statement per bank account, totalled per fund account, as of a day:

- **book side** — the agency's own books: the latest opening balance the agency recorded
  for the account on or before the day (``control.opening``, :func:`record_opening`) plus
  every current movement the agency *booked* on the account whose booking day
  (``occurred_at``, Asia/Shanghai) lies from the opening's date to the day. A movement is
  on the account when its ``fund_account`` and ``region`` are those of the account's
  statements; it is *booked by the agency* unless a statement import made it (its id is
  ``<statement id>/…`` of one of the account's statements, with that statement's
  reference and direction: INTERCHANGE "Bank statements");
- **bank side** — the closing balance of the account's latest statement closing on or
  before the day.

Items in transit, matched by ``bank_ref`` and direction:

- 银行已收企业未收 / 银行已付企业未付 (``bank_credit`` / ``bank_debit``): a line of the
  account's statements (value date from the opening's date, statement closing on or
  before the day) that no agency-booked movement carries — also when a statement-made
  movement settles business events with it;
- 企业已收银行未收 / 企业已付银行未付 (``book_credit`` / ``book_debit``): an agency-booked
  movement of the book side on no such statement line;
- *unexplained*: a statement line and an agency-booked movement with the same reference
  and direction and another amount.

adjusted bank = bank + book_credit − book_debit; adjusted book = book + bank_credit −
bank_debit. An account is balanced when it has a statement and an opening balance, the
adjusted balances agree and nothing is unexplained. Money is integer fen throughout.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, or_, select

from ledger import InputError, Ledger, VoucherStore, append_control, control_records
from reconcile.bank._checks import StoredStatement, load_statements
from reconcile.bank._records import DIRECTION_KINDS
from reconcile.matching import _tables as t
from reconcile.matching._refresh import refresh
from reconcile.matching._units import day_date, epoch_day, money

ITEM_KINDS = ("bank_credit", "bank_debit", "book_credit", "book_debit")
"""银行已收企业未收, 银行已付企业未付, 企业已收银行未收, 企业已付银行未付."""
ITEM_NAMES = {"bank_credit": "银行已收企业未收", "bank_debit": "银行已付企业未付",
              "book_credit": "企业已收银行未收", "book_debit": "企业已付银行未付"}
_MAX_FEN = 10**17  # 15 integer digits of yuan, as every amount of the interchange


@dataclass(frozen=True)
class Opening:
    """A ``control.opening`` record: the agency's book balance of a bank account at the
    start of a day."""

    id: str
    bank_account: str
    day: str
    amount: int
    user: str
    seq: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "bank_account": self.bank_account, "date": self.day,
                "amount": money(self.amount), "user": self.user, "seq": self.seq}


def parse_yuan(text: str) -> int:
    """A yuan amount typed by an officer (``1234.5``, ``-20``, ``1,234.56``) in fen;
    :class:`InputError` unless exact to the fen and within 15 integer digits."""
    raw = text.replace(",", "").replace("，", "").strip()
    try:
        value = Decimal(raw) * 100
    except InvalidOperation as e:
        raise InputError(f"--amount {text!r} is not an amount of yuan (e.g. 1234.56)") from e
    if not value.is_finite() or value != value.to_integral_value() or abs(value) >= _MAX_FEN:
        raise InputError(f"--amount {text!r} is not an amount exact to the fen (at most 15 "
                         "integer digits)")
    return int(value)


def record_opening(ledger: Ledger, bank_account: str, day: date, amount_fen: int,
                   label: str | None = None) -> Opening:
    """Append a ``control.opening`` entry: the agency's book balance of ``bank_account``
    at the start of ``day``. A later one for the same account and a later or equal day
    takes over from that day on."""
    account = bank_account.strip()
    if not account or len(account) > 128 or not account.isprintable():
        raise InputError("--bank-account must be the account number as on the bank's "
                         "statements (1-128 printable characters)")
    from ledger._append import now_rfc3339

    members = ledger.actor(label).members()
    rec: dict[str, Any] = {
        "type": "control.opening", "id": f"OPEN-{uuid.uuid4()}", **members,
        "bank_account": account, "date": day.isoformat(), "amount": money(amount_fen),
        "at": now_rfc3339()}
    with ledger.store.writer() as conn:
        (seq,) = append_control(ledger.store, conn, [rec])
    return Opening(rec["id"], account, rec["date"], amount_fen, str(members["user"]), seq)


def openings(conn: Connection) -> list[Opening]:
    """Every ``control.opening`` record, in ledger order (each checked against its leaf)."""
    out = []
    for seq, rec in control_records(conn, "opening"):
        out.append(Opening(str(rec.get("id")), str(rec.get("bank_account")),
                           str(rec.get("date")), _fen(str(rec.get("amount"))),
                           str(rec.get("user")), seq))
    return out


def _fen(text: str) -> int:
    return int(Decimal(text) * 100)


@dataclass
class Item:
    """One item in transit or one unexplained difference."""

    kind: str
    record: str
    """The movement's id, or ``<statement id>#<line>`` for a statement line."""
    bank_ref: str
    direction: str
    amount: int
    day: str
    book_amount: int | None = None
    """Unexplained only: the agency-booked movement's amount (``amount`` is the bank's)."""
    movement: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "record": self.record,
                               "bank_ref": self.bank_ref, "direction": self.direction,
                               "amount": money(self.amount), "date": self.day}
        if self.book_amount is not None:
            out["book_amount"] = money(self.book_amount)
            out["movement"] = self.movement
        return out


@dataclass
class AccountReconciliation:
    """The 银行存款余额调节表 of one bank account."""

    bank_account: str
    fund_account: str | None
    region: str
    statement: StoredStatement | None
    opening: Opening | None
    bank: int = 0
    book: int = 0
    items: dict[str, list[Item]] = field(default_factory=lambda: {k: [] for k in ITEM_KINDS})
    unexplained: list[Item] = field(default_factory=list)

    @property
    def adjusted_bank(self) -> int:
        return (self.bank + sum(i.amount for i in self.items["book_credit"])
                - sum(i.amount for i in self.items["book_debit"]))

    @property
    def adjusted_book(self) -> int:
        return (self.book + sum(i.amount for i in self.items["bank_credit"])
                - sum(i.amount for i in self.items["bank_debit"]))

    @property
    def difference(self) -> int:
        return self.adjusted_bank - self.adjusted_book

    @property
    def problem(self) -> str | None:
        """Why the account cannot be reconciled, or None."""
        if self.statement is None:
            return "no statement with a closing balance on or before the day"
        if self.fund_account is None:
            return (f"the statements of bank account {self.bank_account} name no fund "
                    "account (imported without --fund-account): its movements cannot be "
                    "told")
        if self.opening is None:
            return (f"no opening balance recorded for bank account {self.bank_account} on "
                    "or before the day (bfa balance opening)")
        return None

    @property
    def balanced(self) -> bool:
        return self.problem is None and self.difference == 0 and not self.unexplained

    def to_json(self) -> dict[str, Any]:
        st = self.statement
        return {
            "bank_account": self.bank_account, "fund_account": self.fund_account,
            "region": self.region, "balanced": self.balanced, "problem": self.problem,
            "statement": None if st is None else {
                "id": st.id, "closing_date": st.closing_date,
                "closing_balance": money(st.closing or 0)},
            "opening": None if self.opening is None else self.opening.to_json(),
            "bank_balance": money(self.bank), "book_balance": money(self.book),
            "adjusted_bank": money(self.adjusted_bank),
            "adjusted_book": money(self.adjusted_book),
            "difference": money(self.difference),
            "items": {k: {"name": ITEM_NAMES[k], "total": money(sum(i.amount for i in v)),
                          "records": [i.to_json() for i in v]}
                      for k, v in self.items.items()},
            "unexplained": [i.to_json() for i in self.unexplained]}


@dataclass
class BankReconciliation:
    """Every bank account's statement as of a day, with totals per fund account."""

    as_of: str
    accounts: list[AccountReconciliation]

    @property
    def balanced(self) -> bool:
        """Every account balanced; never true with no account (nothing reconciled)."""
        return bool(self.accounts) and all(a.balanced for a in self.accounts)

    def totals(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, int]] = {}
        for a in self.accounts:
            tot = out.setdefault(a.fund_account or "", {k: 0 for k in (
                "bank_balance", "book_balance", "adjusted_bank", "adjusted_book",
                "difference")})
            for k, v in (("bank_balance", a.bank), ("book_balance", a.book),
                         ("adjusted_bank", a.adjusted_bank),
                         ("adjusted_book", a.adjusted_book), ("difference", a.difference)):
                tot[k] += v
        return {fa: {k: money(v) for k, v in tot.items()} for fa, tot in out.items()}

    def to_json(self) -> dict[str, Any]:
        return {"as_of": self.as_of, "balanced": self.balanced,
                "accounts": [a.to_json() for a in self.accounts],
                "fund_accounts": self.totals()}


def bank_reconciliation(ledger: Ledger, as_of: date, *, fund_account: str | None = None,
                        bank_account: str | None = None) -> BankReconciliation:
    """The 银行存款余额调节表 of every bank account with a statement (or of those the
    filters name) as of ``as_of`` (module docstring)."""
    refresh(ledger.store)
    with ledger.store.reader() as conn:
        every = load_statements(conn, None)
        opens = openings(conn)
        accounts = _accounts(every)
        out = []
        for account, stmts in sorted(accounts.items()):
            fa, region = _home_of(stmts)
            if fund_account is not None and fa != fund_account:
                continue
            if bank_account is not None and account != bank_account:
                continue
            out.append(_reconcile_account(conn, account, fa, region, stmts, opens, as_of))
        if bank_account is not None and not out:
            known = [o for o in opens if o.bank_account == bank_account]
            out.append(AccountReconciliation(bank_account, fund_account, "", None,
                                             _latest_opening(known, as_of)))
    return BankReconciliation(as_of.isoformat(), out)


def _accounts(stmts: Iterable[StoredStatement]) -> dict[str, list[StoredStatement]]:
    by: dict[str, list[StoredStatement]] = {}
    for st in stmts:
        by.setdefault(st.bank_account, []).append(st)
    return {k: sorted(v, key=StoredStatement.order_key) for k, v in by.items()}


def _home_of(stmts: Sequence[StoredStatement]) -> tuple[str | None, str]:
    """The fund account and region of an account: those of its latest statement that
    names a fund account (else its latest statement's region, no fund account)."""
    named = [s for s in stmts if s.fund_account]
    last = (named or list(stmts))[-1]
    return last.fund_account, last.region


def _latest_opening(opens: Sequence[Opening], as_of: date) -> Opening | None:
    day = as_of.isoformat()
    best: Opening | None = None
    for o in opens:  # ledger order: for one day, the later entry takes over
        if o.day <= day and (best is None or o.day >= best.day):
            best = o
    return best


def _reconcile_account(conn: Connection, account: str, fa: str | None, region: str,
                       stmts: Sequence[StoredStatement], opens: Sequence[Opening],
                       as_of: date) -> AccountReconciliation:
    day = as_of.isoformat()
    opening = _latest_opening([o for o in opens if o.bank_account == account], as_of)
    closed = [s for s in stmts if s.closing is not None and (s.closing_date or "") <= day]
    rec = AccountReconciliation(account, fa, region, closed[-1] if closed else None, opening)
    if rec.statement is None or opening is None or fa is None:
        return rec
    rec.bank = rec.statement.closing or 0
    made: dict[tuple[str, str], set[str]] = {}
    for s in stmts:
        for ref, d, _a, _v in s.lines:
            made.setdefault((ref, d), set()).add(f"{s.id}/")
    booked: dict[tuple[str, str], list[tuple[str, int, int]]] = {}
    for rid, ref, direction, amount, oday in _movements(conn, fa, region):
        if any(rid.startswith(p) for p in made.get((ref, direction), ())):
            continue  # made by a statement import: known to the bank, not booked by us
        booked.setdefault((ref, direction), []).append((rid, amount, oday))
    cleared: set[str] = set()
    for st in closed:
        for n, (ref, direction, amount, vday) in enumerate(st.lines, 1):
            if vday < opening.day:
                continue
            ours = [m for m in booked.get((ref, direction), []) if m[0] not in cleared]
            same = next((m for m in ours if m[1] == amount), None)
            if same is not None:
                cleared.add(same[0])
                continue
            where = f"{st.id}#{n}"
            if ours:
                mid, book_amount = ours[0][0], ours[0][1]
                cleared.add(mid)
                rec.unexplained.append(Item("unexplained", where, ref, direction, amount,
                                            vday, book_amount, mid))
                continue
            kind = "bank_credit" if direction == "credit" else "bank_debit"
            rec.items[kind].append(Item(kind, where, ref, direction, amount, vday))
    start, end = epoch_day(opening.day), epoch_day(as_of)
    rec.book = opening.amount
    for (ref, direction), moves in booked.items():
        for rid, amount, oday in moves:
            if not start <= oday <= end:
                continue
            rec.book += amount if direction == "credit" else -amount
            if rid in cleared:
                continue
            kind = "book_credit" if direction == "credit" else "book_debit"
            rec.items[kind].append(Item(kind, rid, ref, direction, amount,
                                        day_date(oday).isoformat()))
    for items in rec.items.values():
        items.sort(key=lambda i: (i.day, i.record))
    return rec


def _movements(conn: Connection, fund_account: str, region: str
               ) -> Iterable[tuple[str, str, str, int, int]]:
    """``(id, bank_ref, direction, amount fen, booking day)`` of the current movements on
    the fund account in the region (a sweep on either end)."""
    m, r = t.movements, t.records
    q = (select(m.c.record_id, m.c.kind, m.c.bank_ref, m.c.amount_fen, r.c.occurred_day,
                m.c.fund_account, m.c.from_account, m.c.to_account)
         .join(r, r.c.seq == m.c.seq)
         .where(r.c.superseded.is_(False), r.c.region == region,
                or_(m.c.fund_account == fund_account, m.c.from_account == fund_account,
                    m.c.to_account == fund_account))
         .order_by(m.c.seq))
    for rid, kind, ref, amount, oday, fa, frm, to in conn.execute(q):
        if kind == "sweep":
            if fund_account not in (frm, to):
                continue
            direction = "credit" if to == fund_account else "debit"
        elif fa != fund_account:
            continue
        else:
            direction = "credit" if kind in DIRECTION_KINDS["credit"] else "debit"
        yield str(rid), str(ref), direction, int(amount), int(oday)


CSV_COLUMNS = ["bank_account", "fund_account", "as_of", "line", "name", "record", "bank_ref",
               "direction", "date", "amount"]


def statement_csv(rep: BankReconciliation) -> str:
    """The statements as CSV rows (UTF-8 with a byte-order mark, which Excel on Chinese
    Windows needs to read UTF-8): balances, each item, adjusted balances, difference."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for a in rep.accounts:
        base = [a.bank_account, a.fund_account or "", rep.as_of]

        def row(line: str, name: str, fen: int | None, record: str = "", ref: str = "",
                direction: str = "", day: str = "", *, base: list[str] = base) -> None:
            w.writerow([*base, line, name, record, ref, direction, day, _plain(fen)])

        if a.problem is not None:
            row("problem", a.problem, None)
            continue
        row("bank_balance", "银行对账单余额", a.bank)
        for k in ("book_credit", "book_debit"):
            for i in a.items[k]:
                row(k, ITEM_NAMES[k], i.amount, i.record, i.bank_ref, i.direction, i.day)
        row("adjusted_bank", "调节后的银行存款余额", a.adjusted_bank)
        row("book_balance", "企业银行存款日记账余额", a.book)
        for k in ("bank_credit", "bank_debit"):
            for i in a.items[k]:
                row(k, ITEM_NAMES[k], i.amount, i.record, i.bank_ref, i.direction, i.day)
        row("adjusted_book", "调节后的企业账面余额", a.adjusted_book)
        for i in a.unexplained:
            row("unexplained", f"未达原因不明: books {_plain(i.book_amount or 0)} "
                f"({i.movement})", i.amount, i.record, i.bank_ref, i.direction, i.day)
        row("difference", "差额", a.difference)
    return "\ufeff" + buf.getvalue()


def _plain(fen: int | None) -> str:
    if fen is None:
        return ""
    whole, part = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}{whole}.{part:02d}"


RECONCILIATION_KIND = "archive.reconciliation_statement"


@dataclass(frozen=True)
class Archived:
    """One bank account's statement kept in the voucher store (or why it was not)."""

    bank_account: str
    record_id: str | None
    appended: bool
    """False: the same statement was archived before (the same bytes), or ``problem``."""
    balanced: bool
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"bank_account": self.bank_account, "record_id": self.record_id,
                "appended": self.appended, "balanced": self.balanced,
                "problem": self.problem}


def archive_statements(ledger: Ledger, rep: BankReconciliation, vouchers: VoucherStore,
                       label: str | None = None) -> list[Archived]:
    """Keep each account's statement of ``rep`` (its CSV, :func:`statement_csv`) in the
    voucher store as an ``archive.reconciliation_statement`` record (10 years; FORMAT.md
    §9.7), one batch per account. The same statement archived again is a duplicate (the
    same bytes give the same id); an account that cannot be reconciled is not archived."""
    import hashlib
    import tempfile
    from pathlib import Path

    from reconcile.bank._file import StatementFile
    from reconcile.bank._mt940 import id_part
    from reconcile.matching._refresh import Deriver

    out: list[Archived] = []
    for acct in rep.accounts:
        if acct.problem is not None or acct.statement is None:
            out.append(Archived(acct.bank_account, None, False, False, acct.problem))
            continue
        data = statement_csv(BankReconciliation(rep.as_of, [acct])).encode("utf-8")
        sha = hashlib.sha256(data).hexdigest()
        account = id_part(acct.bank_account)[:64].strip("-") or "account"
        rid = f"RS-{account}-{rep.as_of}-{sha[:12]}"
        refs = list(dict.fromkeys([acct.statement.id, *(
            i.record for k in ("book_credit", "book_debit") for i in acct.items[k]), *(
            i.movement for i in acct.unexplained if i.movement)]))
        name = f"调节表-{account}-{rep.as_of}.csv"
        record: dict[str, object] = {
            "type": RECONCILIATION_KIND, "id": rid, "region": acct.region,
            "occurred_at": f"{rep.as_of}T00:00:00+08:00", "source": "bfa-balance",
            "sha256": sha, "media_type": "text/plain", "size": len(data), "file": name,
            "refs": refs, "retention": "10y"}
        with tempfile.TemporaryDirectory(prefix="bfa-rs-") as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            report = ledger.ingest_records([record], str(path),
                                           StatementFile(vouchers, path, sha),
                                           derive=Deriver, label=label)
        out.append(Archived(acct.bank_account, rid, report.appended > 0, acct.balanced))
    return out
