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
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, literal_column, or_, select

from ledger import (
    SHANGHAI,
    InputError,
    IntegrityError,
    Ledger,
    VoucherStore,
    append_control,
    control_records,
    now_rfc3339,
    printable,
)
from reconcile.bank._checks import StoredStatement, load_statements
from reconcile.bank._records import DIRECTION_KINDS
from reconcile.matching import _tables as t
from reconcile.matching._derived import check_seqs
from reconcile.matching._refresh import refresh
from reconcile.matching._units import fen, money
from reconcile.reports._report import Msg, msg
from schemas import N_
from schemas import gettext as _

ITEM_KINDS = ("bank_credit", "bank_debit", "book_credit", "book_debit")
"""银行已收企业未收, 银行已付企业未付, 企业已收银行未收, 企业已付银行未付."""
ITEM_NAMES = {"bank_credit": N_("bank credits not yet booked"),
              "bank_debit": N_("bank debits not yet booked"),
              "book_credit": N_("booked credits not yet on the statement"),
              "book_debit": N_("booked debits not yet on the statement")}
"""The names of the items in transit: gettext message ids, shown translated
(``gettext(ITEM_NAMES[kind])``); the kind is the key machines use."""
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


_YUAN = re.compile(r"(-?)((?:[0-9]{1,3}(?:,[0-9]{3})+)|[0-9]+)(?:\.([0-9]{1,2}))?", re.ASCII)


def parse_yuan(text: str) -> int:
    """A yuan amount typed by an officer in fen: ASCII digits with an optional ``-``,
    optional thousands separators in their places and at most two decimals (``1234.5``,
    ``-20``, ``1,234.56``); :class:`InputError` for anything else (exponents, ``+``,
    full-width digits, a third decimal) or more than 15 integer digits."""
    m = _YUAN.fullmatch(text.strip())
    digits = m[2].replace(",", "") if m else ""
    if m is None or len(digits.lstrip("0") or "0") > 15 or (len(digits) > 1
                                                             and digits[0] == "0"):
        raise InputError(_("--amount {amount} is not an amount of yuan exact to the fen "
                           "(e.g. 1234.56 or 1,234.56; at most 15 integer digits)").format(
            amount=repr(text)))
    fen = int(digits) * 100 + int((m[3] or "").ljust(2, "0"))
    return -fen if m[1] else fen


def record_opening(ledger: Ledger, bank_account: str, day: date, amount_fen: int,
                   label: str | None = None) -> Opening:
    """Append a ``control.opening`` entry: the agency's book balance of ``bank_account``
    at the start of ``day``. A later one for the same account and a later or equal day
    takes over from that day on."""
    account = bank_account.strip()
    if not account or len(account) > 128 or not account.isprintable():
        raise InputError(_("--bank-account must be the account number as on the bank's "
                           "statements (1-128 printable characters)"))
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
                           str(rec.get("date")), fen(str(rec.get("amount"))),
                           str(rec.get("user")), seq))
    return out


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
    """The 银行存款余额调节表 of one bank account — or of the bank accounts that serve one
    fund account in one region, which are reconciled together: the agency's movements
    name a fund account, not which of its bank accounts moved the money."""

    bank_accounts: tuple[str, ...]
    fund_account: str | None
    region: str
    statements: tuple[StoredStatement, ...] = ()
    """The bank side: each account's latest statement closing on or before the day."""
    openings: tuple[Opening, ...] = ()
    """Each account's opening balance in force on the day."""
    bank: int | None = None
    book: int | None = None
    items: dict[str, list[Item]] = field(default_factory=lambda: {k: [] for k in ITEM_KINDS})
    unexplained: list[Item] = field(default_factory=list)
    problem: str | None = None
    """Why the account cannot be reconciled (in English, as ``--json`` has it), or None."""
    problem_msg: Msg | None = None
    """The same as a message people read (:meth:`problem_text`)."""

    def why(self, m: Msg) -> None:
        """The account cannot be reconciled, for the reason ``m``."""
        self.problem, self.problem_msg = m.english(), m

    def problem_text(self) -> str | None:
        """Why it cannot be reconciled, in the reader's language."""
        return self.problem_msg.text() if self.problem_msg is not None else self.problem

    @property
    def bank_account(self) -> str:
        return " + ".join(self.bank_accounts)

    def _sum(self, kind: str) -> int:
        return sum(i.amount for i in self.items[kind])

    @property
    def adjusted_bank(self) -> int | None:
        if self.bank is None or self.problem is not None:
            return None
        return self.bank + self._sum("book_credit") - self._sum("book_debit")

    @property
    def adjusted_book(self) -> int | None:
        if self.book is None or self.problem is not None:
            return None
        return self.book + self._sum("bank_credit") - self._sum("bank_debit")

    @property
    def difference(self) -> int | None:
        ab, ak = self.adjusted_bank, self.adjusted_book
        return None if ab is None or ak is None else ab - ak

    @property
    def balanced(self) -> bool:
        return self.problem is None and self.difference == 0 and not self.unexplained

    def to_json(self) -> dict[str, Any]:
        def m(v: int | None) -> str | None:
            return None if v is None else money(v)

        return {
            "bank_account": self.bank_account, "bank_accounts": list(self.bank_accounts),
            "fund_account": self.fund_account, "region": self.region,
            "balanced": self.balanced, "problem": self.problem,
            "statements": [{"id": st.id, "bank_account": st.bank_account,
                            "closing_date": st.closing_date,
                            "closing_balance": money(st.closing or 0)}
                           for st in self.statements],
            "openings": [o.to_json() for o in self.openings],
            "bank_balance": m(self.bank), "book_balance": m(self.book),
            "adjusted_bank": m(self.adjusted_bank), "adjusted_book": m(self.adjusted_book),
            "difference": m(self.difference),
            "items": {k: {"name": ITEM_NAMES[k], "total": money(self._sum(k)),
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
        """Per fund account, the sums over its accounts that could be reconciled."""
        out: dict[str, dict[str, int]] = {}
        for a in self.accounts:
            if a.problem is not None or a.fund_account is None:
                continue
            tot = out.setdefault(a.fund_account, dict.fromkeys(
                ("bank_balance", "book_balance", "adjusted_bank", "adjusted_book",
                 "difference"), 0))
            for k, v in (("bank_balance", a.bank), ("book_balance", a.book),
                         ("adjusted_bank", a.adjusted_bank),
                         ("adjusted_book", a.adjusted_book), ("difference", a.difference)):
                tot[k] += v or 0
        return {fa: {k: money(v) for k, v in tot.items()} for fa, tot in out.items()}

    def to_json(self) -> dict[str, Any]:
        return {"as_of": self.as_of, "balanced": self.balanced,
                "accounts": [a.to_json() for a in self.accounts],
                "fund_accounts": self.totals()}


def bank_reconciliation(ledger: Ledger, as_of: date, *, fund_account: str | None = None,
                        bank_account: str | None = None,
                        region: str | None = None) -> BankReconciliation:
    """The 银行存款余额调节表 of every bank account with a statement (or of those the
    filters name) as of ``as_of`` (module docstring). ``region``: only the accounts of that
    pooling region (an account's region is that of its statements, which the home's map
    of bank accounts gave them); movements carry no insurance, so a statement is per
    account and region, never per insurance.

    Raises:
        InputError: ``region`` is the region of no statement and of no bank account the
            home maps (``bfa bank-account set``).

    Before it states anything, the derived rows it read — the ``rc_records`` rows of every
    bank statement and the ``rc_movements`` and ``rc_records`` rows of every movement of
    the accounts it states — are checked against their entries
    (:func:`reconcile.matching._derived.check_seqs`); a difference is an
    :class:`~ledger.IntegrityError` (exit 3) naming the row, never a wrong statement."""
    refresh(ledger.store)
    with ledger.store.reader() as conn:
        every = load_statements(conn, None)
        if region is not None:
            _require_region(ledger, every, region)
        opens = openings(conn)
        made = _statement_ids(conn)
        used = _statement_seqs(conn)
        out = []
        known = False
        for (fa, unit_region), accounts in sorted(_units(every).items(),
                                                  key=lambda kv: (kv[0][0] or "", kv[0][1])):
            if bank_account is not None and bank_account not in accounts:
                continue
            known = True
            if (fund_account is not None and fa != fund_account) or (
                    region is not None and region != unit_region):
                continue
            out.append(_reconcile_unit(conn, accounts, fa, unit_region, opens, made, as_of,
                                       used))
        if bank_account is not None and not known:  # no statement of it at all
            opening = _latest_opening([o for o in opens if o.bank_account == bank_account],
                                      as_of)
            rec = AccountReconciliation(
                (bank_account,), fund_account, "", openings=(opening,) if opening else ())
            rec.why(msg("no statement of bank account {account} was imported",
                        account=bank_account))
            out.append(rec)
        _require_derived(ledger, conn, used)
    return BankReconciliation(as_of.isoformat(), out)


def _require_region(ledger: Ledger, statements: Iterable[StoredStatement], region: str) -> None:
    """Refuse a region no statement and no mapped bank account has, naming the known ones."""
    if not (len(region) == 6 and region.isascii() and region.isdigit()):
        raise InputError(_("--region {region} is not a pooling-region code (6 digits, e.g. "
                           "440100)").format(region=repr(printable(region))))
    known = {st.region for st in statements} | {a.region for a in ledger.home.bank_accounts}
    if region not in known:
        raise InputError(_(
            "--region {region}: no bank account of that region (no statement names it and "
            "bfa bank-account set maps none to it); regions with bank accounts: "
            "{known}").format(region=printable(region),
                              known=", ".join(sorted(known)) or _("none")))


def _statement_seqs(conn: Connection) -> set[int]:
    """The entries of every ``finance.statement`` record the derived tables know."""
    r = t.records
    q = select(r.c.seq).where(r.c.kind == literal_column("'statement'"),
                              r.c.domain == "finance")
    return {int(x) for x in conn.execute(q).scalars()}


def _require_derived(ledger: Ledger, conn: Connection, used: set[int]) -> None:
    """Refuse (:class:`IntegrityError`, exit 3) when a derived row the statement used
    differs from its entry."""
    checked = check_seqs(ledger.store, conn, used)
    if not checked.ok:
        first = checked.mismatches[0]
        raise IntegrityError(_(
            "the bank reconciliation statement is not stated: {problem} ({n} rows differ); "
            "the table was changed outside bfa, and the next 'bfa reconcile' or 'bfa "
            "nightly' rebuilds it from the entries").format(
            problem=first.message(), n=len(checked.mismatches) + checked.more))


def statement_accounts(ledger: Ledger) -> set[str]:
    """The bank accounts of every statement in the ledger."""
    refresh(ledger.store)
    with ledger.store.reader() as conn:
        return {st.bank_account for st in load_statements(conn, None)}


def _units(stmts: Iterable[StoredStatement]
           ) -> dict[tuple[str | None, str], dict[str, list[StoredStatement]]]:
    """Bank accounts grouped by the fund account and region of their latest statement
    that names a fund account (else of their latest statement): ``(fund account, region)
    -> {account: its statements in order}``."""
    by: dict[str, list[StoredStatement]] = {}
    for st in stmts:
        by.setdefault(st.bank_account, []).append(st)
    units: dict[tuple[str | None, str], dict[str, list[StoredStatement]]] = {}
    for account, group in sorted(by.items()):
        ordered = sorted(group, key=StoredStatement.order_key)
        named = [s for s in ordered if s.fund_account]
        last = (named or ordered)[-1]
        units.setdefault((last.fund_account, last.region), {})[account] = ordered
    return units


def _statement_ids(conn: Connection) -> set[str]:
    """The id of every ``finance.statement`` record, superseded ones included: a movement
    a statement import made is ``<statement id>/…`` of the statement as it was imported,
    whatever corrected it since."""
    r = t.records
    q = select(r.c.record_id).where(r.c.kind == literal_column("'statement'"),
                                    r.c.domain == "finance")
    return {str(x) for x in conn.execute(q).scalars()}


def _latest_opening(opens: Sequence[Opening], as_of: date) -> Opening | None:
    day = as_of.isoformat()
    best: Opening | None = None
    for o in opens:  # ledger order: for one day, the later entry takes over
        if o.day <= day and (best is None or o.day >= best.day):
            best = o
    return best


def _reconcile_unit(conn: Connection, accounts: Mapping[str, list[StoredStatement]],
                    fa: str | None, region: str, opens: Sequence[Opening],
                    statement_ids: set[str], as_of: date, used: set[int]
                    ) -> AccountReconciliation:
    day = as_of.isoformat()
    names = tuple(sorted(accounts))
    rec = AccountReconciliation(names, fa, region)
    closed = {a: [s for s in stmts if s.closing is not None and (s.closing_date or "") <= day]
              for a, stmts in accounts.items()}
    rec.statements = tuple(c[-1] for c in closed.values() if c)
    found = {a: _latest_opening([o for o in opens if o.bank_account == a], as_of)
             for a in names}
    rec.openings = tuple(o for o in found.values() if o is not None)
    missing_st = [a for a in names if not closed[a]]
    missing_op = [a for a in names if found[a] is None]
    days = {o.day for o in rec.openings}
    if not missing_st:
        rec.bank = sum(st.closing or 0 for st in rec.statements)
    if fa is None:
        rec.why(msg("the statements of bank account {account} name no fund account (imported "
                    "without --fund-account): its movements cannot be told",
                    account=rec.bank_account))
    elif missing_st:
        rec.why(msg("no statement of bank account {account} with a closing balance on or "
                    "before the day", account=", ".join(missing_st)))
    elif missing_op:
        rec.why(msg("no opening balance recorded for bank account {account} on or before the "
                    "day (bfa balance opening)", account=", ".join(missing_op)))
    elif len(days) > 1:
        rec.why(msg("bank accounts {accounts} serve one fund account in one region and are "
                    "reconciled together, but their opening balances are for different days "
                    "({days}): record them for one day", accounts=", ".join(names),
                    days=", ".join(sorted(days))))
    if rec.problem is not None or fa is None:
        return rec
    start_day = days.pop()
    lines = [(st, n, line) for a in names for st in closed[a]
             for n, line in enumerate(st.lines, 1)]
    on_lines = {(ref, d) for _st, _n, (ref, d, _a, _v) in lines}
    booked: dict[tuple[str, str], list[tuple[str, int, str]]] = {}
    for rid, ref, direction, amount, bday in _movements(conn, fa, region, used):
        if (ref, direction) in on_lines and _made(rid, statement_ids):
            continue  # made by a statement import: known to the bank, not booked by us
        booked.setdefault((ref, direction), []).append((rid, amount, bday))
    cleared: set[str] = set()
    for st, n, (ref, direction, amount, vday) in lines:
        if vday < start_day or amount == 0:
            continue  # before the opening, or a line that moves no money
        ours = [m for m in booked.get((ref, direction), []) if m[0] not in cleared]
        same = next((m for m in ours if m[1] == amount), None)
        if same is not None:
            cleared.add(same[0])
            continue
        where = f"{st.id}#{n}"
        if ours:
            cleared.add(ours[0][0])
            rec.unexplained.append(Item("unexplained", where, ref, direction, amount, vday,
                                        ours[0][1], ours[0][0]))
            continue
        kind = "bank_credit" if direction == "credit" else "bank_debit"
        rec.items[kind].append(Item(kind, where, ref, direction, amount, vday))
    rec.book = sum(o.amount for o in rec.openings)
    for (ref, direction), moves in booked.items():
        for rid, amount, bday in moves:
            if not start_day <= bday <= day:
                continue
            rec.book += amount if direction == "credit" else -amount
            if rid in cleared:
                continue
            kind = "book_credit" if direction == "credit" else "book_debit"
            rec.items[kind].append(Item(kind, rid, ref, direction, amount, bday))
    for items in rec.items.values():
        items.sort(key=lambda i: (i.day, i.record))
    return rec


def _made(rid: str, statement_ids: set[str]) -> bool:
    """Whether ``rid`` is ``<statement id>/…`` (a statement id may hold ``/`` itself)."""
    head = rid
    while "/" in head:
        head = head.rsplit("/", 1)[0]
        if head in statement_ids:
            return True
    return False


def shanghai_day(timestamp: str) -> str:
    """The Asia/Shanghai (UTC+08:00, no daylight saving) date of an RFC 3339 timestamp
    with an offset."""
    return datetime.fromisoformat(timestamp).astimezone(SHANGHAI).date().isoformat()


def _movements(conn: Connection, fund_account: str, region: str, used: set[int]
               ) -> Iterable[tuple[str, str, str, int, str]]:
    """``(id, bank_ref, direction, amount fen, booking day)`` of the current movements on
    the fund account in the region (a sweep on either end); the booking day is the
    ``occurred_at`` date in Asia/Shanghai. The entry of every row read is added to
    ``used``."""
    m, r = t.movements, t.records
    q = (select(m.c.seq, m.c.record_id, m.c.kind, m.c.bank_ref, m.c.amount_fen,
                r.c.occurred_at, m.c.fund_account, m.c.from_account, m.c.to_account)
         .join(r, r.c.seq == m.c.seq)
         .where(r.c.superseded.is_(False), r.c.region == region,
                or_(m.c.fund_account == fund_account, m.c.from_account == fund_account,
                    m.c.to_account == fund_account))
         .order_by(m.c.seq))
    for seq, rid, kind, ref, amount, occurred, fa, frm, to in conn.execute(q):
        used.add(int(seq))
        if kind == "sweep":
            if fund_account not in (frm, to):
                continue
            direction = "credit" if to == fund_account else "debit"
        elif fa != fund_account:
            continue
        else:
            direction = "credit" if kind in DIRECTION_KINDS["credit"] else "debit"
        yield str(rid), str(ref), direction, int(amount), shanghai_day(str(occurred))


CSV_COLUMNS = [N_("bank_account"), N_("fund_account"), N_("as_of"), N_("line"), N_("name"),
               N_("record"), N_("bank_ref"), N_("direction"), N_("date"), N_("amount")]
"""The statement CSV's columns; its header row shows each translated (the archived
statement's, :func:`archive_statements`, as they are here)."""
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    """A text cell as a spreadsheet must not misread it: text it would run as a formula
    gets a leading ``'`` (CSV injection); a run of more than 11 digits (an account
    number, which Excel would turn into a rounded number) a leading tab."""
    if value.startswith(_FORMULA_START):
        return "'" + value
    if len(value) > 11 and value.isascii() and value.isdigit():
        return "\t" + value
    return value


def statement_csv(rep: BankReconciliation, *, archived: bool = False) -> str:
    """The statements as CSV rows (UTF-8 with a byte-order mark, which Excel on Chinese
    Windows needs to read UTF-8): balances, each item, adjusted balances, difference.

    The header and the names of the lines are in the current language; ``line`` keeps
    the machine key (``bank_balance``, ``book_credit`` ...). With ``archived``, the
    statement as :func:`archive_statements` keeps it: the same bytes in every language
    (:data:`ARCHIVED_NAMES`), so the same statement archived again is a duplicate."""
    def named(key: str) -> str:
        return ARCHIVED_NAMES[key] if archived else _(
            ITEM_NAMES[key] if key in ITEM_NAMES else LABELS[key])

    def unexplained(i: Item) -> str:
        if archived:
            return (f"{ARCHIVED_NAMES['unexplained']}: books {_plain(i.book_amount)} "
                    f"({i.movement})")
        return _("{unexplained}: books {amount} ({movement})").format(
            unexplained=_(LABELS["unexplained"]), amount=_plain(i.book_amount),
            movement=i.movement)

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS if archived else [_(c) for c in CSV_COLUMNS])
    for a in rep.accounts:
        base = [_text(a.bank_account), a.fund_account or "", rep.as_of]

        def row(line: str, name: str, fen: int | None, record: str = "", ref: str = "",
                direction: str = "", day: str = "", *, base: list[str] = base) -> None:
            w.writerow([*base, line, _text(name), _text(record), _text(ref), direction, day,
                        _plain(fen)])

        if a.problem is not None:
            row("problem", a.problem if archived else (a.problem_text() or a.problem), None)
            continue
        row("bank_balance", named("bank_balance"), a.bank)
        for k in ("book_credit", "book_debit"):
            for i in a.items[k]:
                row(k, named(k), i.amount, i.record, i.bank_ref, i.direction, i.day)
        row("adjusted_bank", named("adjusted_bank"), a.adjusted_bank)
        row("book_balance", named("book_balance"), a.book)
        for k in ("bank_credit", "bank_debit"):
            for i in a.items[k]:
                row(k, named(k), i.amount, i.record, i.bank_ref, i.direction, i.day)
        row("adjusted_book", named("adjusted_book"), a.adjusted_book)
        for i in a.unexplained:
            row("unexplained", unexplained(i), i.amount, i.record, i.bank_ref, i.direction,
                i.day)
        row("difference", named("difference"), a.difference)
    return "\ufeff" + buf.getvalue()


LABELS = {"bank_balance": N_("balance per bank statement"),
          "adjusted_bank": N_("adjusted bank balance"),
          "book_balance": N_("balance per books"),
          "adjusted_book": N_("adjusted book balance"),
          "difference": N_("difference"), "unexplained": N_("unexplained")}
"""The names of the statement's lines: gettext message ids, shown translated
(``gettext(LABELS[key])``); the key is the CSV's ``line``."""

ARCHIVED_NAMES = {"bank_balance": "银行对账单余额", "adjusted_bank": "调节后的银行存款余额",
                  "book_balance": "银行存款日记账余额", "adjusted_book": "调节后的日记账余额",
                  "difference": "差额", "unexplained": "未达原因不明",
                  "bank_credit": "银行已收企业未收", "bank_debit": "银行已付企业未付",
                  "book_credit": "企业已收银行未收", "book_debit": "企业已付银行未付"}
"""The names of the lines in an archived statement (``statement_csv(archived=True)``),
not translated: the archived file is hashed into the ledger, and a statement archived
again must give the same bytes (the same record id) whatever the language of the run."""


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
    problem_shown: str | None = None
    """``problem`` in the reader's language (not in ``to_json``)."""

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
        if acct.problem is not None or not acct.statements:
            out.append(Archived(acct.bank_account, None, False, False, acct.problem,
                                acct.problem_text()))
            continue
        data = statement_csv(BankReconciliation(rep.as_of, [acct]),
                             archived=True).encode("utf-8")
        sha = hashlib.sha256(data).hexdigest()
        account = id_part("+".join(acct.bank_accounts))[:64].strip("-") or "account"
        rid = f"RS-{account}-{rep.as_of}-{sha[:12]}"
        refs = list(dict.fromkeys([*(st.id for st in acct.statements), *(
            i.record for k in ("book_credit", "book_debit") for i in acct.items[k]), *(
            i.movement for i in acct.unexplained if i.movement)]))
        name = f"调节表-{re.sub(r'[^A-Za-z0-9._+-]', '-', account)}-{rep.as_of}.csv"
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
