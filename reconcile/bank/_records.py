"""Bank statements to interchange records (INTERCHANGE "Bank statements").

:func:`statement_records` parses a camt.053 or MT940 file and returns what to ingest
as one batch: per statement a ``finance.statement`` record (balances, sequence, the
list of entries as the bank reported them) and one *unallocated* ``finance.collection``
(credit) or ``finance.payment`` (debit) per booked entry that is new to the ledger.
:func:`statement_batch` gives the same records with what the file is evidence for (the
``refs`` of the ``archive.bank_statement`` record that keeps the file, ``_file``).

- Movement ``id``: statement id, ``/``, the entry's ``AcctSvcrRef`` (else ``NtryRef``,
  else its 1-based position); ``bank_ref``: ``AcctSvcrRef`` (else ``NtryRef``, else the id).
- Idempotent: the statement record is built from the file alone, so re-importing it is
  a no-op, and an entry whose ``bank_ref`` and direction already belong to a current
  movement is not added again; that is also how an entry *confirms* a movement the
  finance system sent earlier. When that movement's amount differs, nothing is added:
  the statement record keeps the bank's amount and :func:`reconcile.bank.statement_breaks`
  reports ``AMOUNT_MISMATCH``.
- Only CNY exact to the fen: any other currency (entries or balances) or a third
  decimal digit that is not zero is an :class:`~ledger.InputError` naming the file,
  the statement and the entry; nothing of that file is imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Literal

from sqlalchemy import Connection, and_, select

from ledger import BankAccount, InputError, Ledger
from reconcile.bank._camt import parse_camt053
from reconcile.bank._model import Statement, StatementEntry, quoted
from reconcile.bank._mt940 import id_part, parse_mt940
from reconcile.bank._withdraw import reinstated_ids
from reconcile.matching import _tables as t
from reconcile.matching._refresh import refresh
from reconcile.matching._units import fen
from schemas import gettext

StatementFormat = Literal["camt053", "mt940"]
CURRENCY = "CNY"
TZ = "+08:00"
DIRECTION_KINDS: dict[str, tuple[str, ...]] = {
    "credit": ("collection", "return", "sweep"),
    "debit": ("payment", "refund", "transfer", "sweep"),
}
"""Movement kinds a statement entry of each direction can confirm."""
_FEN = Decimal("0.01")


def parse_statement_file(path: Path, fmt: StatementFormat,
                         data: bytes | None = None) -> list[Statement]:
    """Parse ``path`` (or ``data``, the bytes read from it) as ``fmt``; raises
    :class:`InputError` naming the file."""
    if fmt == "camt053":
        return parse_camt053(path, data)
    if fmt == "mt940":
        return parse_mt940(path, data)
    raise InputError(gettext("{path}: unknown statement format {format} (camt053 or mt940)")
                     .format(path=path, format=repr(fmt)))


def money_str(value: Decimal) -> str:
    """Exact two-digit money string; ``-0.00`` becomes ``0.00``."""
    q = value.quantize(_FEN)
    return "0.00" if q == 0 else f"{q:.2f}"


def _cny(path: Path, sid: str, part: int | Literal["opening", "closing"], amount: Decimal,
         currency: str | None) -> None:
    """``part``: the opening or closing balance, or the position of an entry."""
    if currency != CURRENCY:
        if part == "opening":
            text = (gettext("{path}: statement {statement} opening balance: currency "
                            "{currency}; only CNY is imported") if currency else
                    gettext("{path}: statement {statement} opening balance: currency none; "
                            "only CNY is imported"))
        elif part == "closing":
            text = (gettext("{path}: statement {statement} closing balance: currency "
                            "{currency}; only CNY is imported") if currency else
                    gettext("{path}: statement {statement} closing balance: currency none; "
                            "only CNY is imported"))
        else:
            text = (gettext("{path}: statement {statement} entry {entry}: currency "
                            "{currency}; only CNY is imported") if currency else
                    gettext("{path}: statement {statement} entry {entry}: currency none; "
                            "only CNY is imported"))
        raise InputError(text.format(path=path, statement=sid, entry=part, currency=currency))
    if amount != amount.quantize(_FEN):
        if part == "opening":
            text = gettext("{path}: statement {statement} opening balance: amount {amount} is "
                           "not exact to the fen")
        elif part == "closing":
            text = gettext("{path}: statement {statement} closing balance: amount {amount} is "
                           "not exact to the fen")
        else:
            text = gettext("{path}: statement {statement} entry {entry}: amount {amount} is "
                           "not exact to the fen")
        raise InputError(text.format(path=path, statement=sid, entry=part, amount=amount))


def check_cny(path: Path, st: Statement) -> None:
    """Refuse a statement that is not all CNY exact to the fen."""
    if st.currency is not None and st.currency != CURRENCY:
        raise InputError(gettext("{path}: statement {statement}: account currency {currency}; "
                                 "only CNY is imported").format(
            path=path, statement=st.id, currency=st.currency))
    if st.opening is not None:
        _cny(path, st.id, "opening", st.opening.amount, st.opening.currency)
    if st.closing is not None:
        _cny(path, st.id, "closing", st.closing.amount, st.closing.currency)
    for e in st.entries:
        _cny(path, st.id, e.position, e.amount, e.currency)


def _entry_key(e: StatementEntry) -> str:
    return e.acct_svcr_ref or e.entry_ref or str(e.position)


def _day(e: StatementEntry, path: Path, sid: str) -> date:
    day = e.value_date or e.booking_date
    if day is None:
        raise InputError(gettext("{path}: statement {statement} entry {entry}: no value or "
                                 "booking date").format(path=path, statement=sid,
                                                        entry=e.position))
    return day


def _record_id(path: Path, text: str, entry: int | None) -> str:
    """The record id made of ``text``: a statement's (``entry`` None) or an entry's."""
    rid = id_part(text)
    if not rid or len(rid) > 128:
        message = (gettext("{path}: statement id {id} cannot be made a record id (1-128 of "
                           "[A-Za-z0-9._:/-])") if entry is None else
                   gettext("{path}: entry {entry} id {id} cannot be made a record id (1-128 "
                           "of [A-Za-z0-9._:/-])"))
        raise InputError(message.format(path=path, entry=entry, id=quoted(text)))
    return rid


def current_movements(conn: Connection, refs: Iterable[str]) -> dict[tuple[str, str], list[
        tuple[str, int]]]:
    """``(bank_ref, direction) -> [(movement id, amount fen)]`` of current movements."""
    m, r = t.movements, t.records
    found: dict[tuple[str, str], list[tuple[str, int]]] = {}
    wanted = sorted(set(refs))
    for i in range(0, len(wanted), 500):
        rows = conn.execute(
            select(m.c.bank_ref, m.c.kind, m.c.record_id, m.c.amount_fen)
            .join(r, and_(r.c.seq == m.c.seq))
            .where(m.c.bank_ref.in_(wanted[i:i + 500]), r.c.superseded.is_(False))
        ).all()
        for ref, kind, rid, amount in rows:
            for direction, kinds in DIRECTION_KINDS.items():
                if kind in kinds:
                    found.setdefault((str(ref), direction), []).append((str(rid), int(amount)))
    return found


@dataclass(frozen=True, slots=True)
class StatementBatch:
    """What a statement file becomes: its records and what the file is evidence for."""

    headers: tuple[dict[str, object], ...]
    """One ``finance.statement`` record per statement, in file order."""
    movements: tuple[dict[str, object], ...]
    """The unallocated movements new to the ledger, in file order."""
    refs: tuple[str, ...]
    """The statement ids, then per booked non-zero entry the id of the movement it made
    or of the current movements it confirms (by id), each id once."""
    confirmed: int = 0
    """Booked non-zero entries whose reference and direction belong to a current movement
    of the same amount."""
    mismatched: int = 0
    """… to current movements of other amounts only (``AMOUNT_MISMATCH``)."""

    @property
    def entries(self) -> int:
        """Booked entries of the file's statements (zero amounts included)."""
        return sum(int(str(h.get("entry_count", 0))) for h in self.headers)

    def summary(self) -> dict[str, int]:
        """What an import did: entries, confirmed, new, mismatched (FORMAT.md §9.6)."""
        return {"statements": len(self.headers), "entries": self.entries,
                "confirmed": self.confirmed, "new": len(self.movements),
                "mismatched": self.mismatched}

    @property
    def records(self) -> list[dict[str, object]]:
        """What to ingest: the statements first, then the movements."""
        return [*self.headers, *self.movements]


def statement_records(
    ledger: Ledger,
    path: Path,
    fmt: StatementFormat,
    region: str | None,
    fund_account: str | None,
) -> list[dict[str, object]]:
    """The interchange records to ingest for a statement file (see the module docstring).

    Raises:
        InputError: the file cannot be parsed, is not CNY exact to the fen, or an id
            cannot be formed; the message names the file, statement and entry.
    """
    return statement_batch(ledger, path, fmt, region, fund_account).records


def statement_batch(
    ledger: Ledger,
    path: Path,
    fmt: StatementFormat,
    region: str | None,
    fund_account: str | None,
    data: bytes | None = None,
) -> StatementBatch:
    """:func:`statement_records` with the ids the file is evidence for; ``data`` is the
    file's bytes when the caller read them already (what is parsed is what it keeps).

    Raises:
        InputError: as :func:`statement_records`.
    """
    statements = parse_statement_file(path, fmt, data)
    for st in statements:
        check_cny(path, st)
    planned = _plan(path, statements, fmt, region, fund_account, ledger.home.bank_accounts)
    refresh(ledger.store)
    with ledger.store.reader() as conn:
        existing = current_movements(conn, (str(r["bank_ref"]) for r in planned.movements))
        # a withdrawn statement's records come back as corrections of their withdrawals
        # (FORMAT.md §9.8); other records keep their ids
        headers = reinstated_ids(conn, planned.headers)
        movements = reinstated_ids(conn, planned.movements)
    new: list[dict[str, object]] = []
    refs = dict.fromkeys(str(h["id"]) for h in headers)
    same = other = 0
    for rec in movements:
        direction = "credit" if rec["type"] == "finance.collection" else "debit"
        confirmed = existing.get((str(rec["bank_ref"]), direction))
        if confirmed:
            # confirms a movement already in the books (or was imported before)
            refs.update(dict.fromkeys(sorted(rid for rid, _ in confirmed)))
            if any(a == fen(str(rec["amount"])) for _, a in confirmed):
                same += 1
            else:
                other += 1
            continue
        refs[str(rec["id"])] = None
        new.append(rec)
    return StatementBatch(tuple(headers), tuple(new), tuple(refs), same, other)


class _Plan:
    def __init__(self) -> None:
        self.headers: list[dict[str, object]] = []
        self.movements: list[dict[str, object]] = []


def account_of(path: Path, st: Statement, accounts: Sequence[BankAccount],
               region: str | None, fund_account: str | None) -> tuple[str, str]:
    """``(region, fund account)`` of a statement: from the home's map of bank accounts
    (FORMAT.md §5.4), which options may repeat but not contradict; for an account the map
    does not hold, from both options; otherwise :class:`InputError` before anything is
    written (FORMAT.md §9.6)."""
    where = {"path": path, "statement": quoted(st.id), "account": quoted(st.account)}
    if not st.account or not st.account.isprintable() or len(st.account) > 128:
        raise InputError(gettext(
            "{path}: statement {statement} of bank account {account}: an account number must "
            "be 1-128 printable characters; nothing was imported").format(**where))
    mapped = next((a for a in accounts if a.number == st.account), None)
    if mapped is not None:
        for option, given, kept in (("--fund-account", fund_account, mapped.fund_account),
                                    ("--region", region, mapped.region)):
            if given is not None and given != kept:
                raise InputError(gettext(
                    "{path}: statement {statement} of bank account {account}: {option} "
                    "{given}, but this home maps the account to {kept} (bfa bank-account "
                    "list)").format(**where, option=option, given=given, kept=kept))
        return mapped.region, mapped.fund_account
    if region is None or fund_account is None:
        raise InputError(gettext(
            "{path}: statement {statement} of bank account {account}: the account is not in "
            "this home's bank accounts; map it once with 'bfa bank-account set {number} "
            "--fund-account F --region R' (or give --fund-account and --region); nothing was "
            "imported").format(**where, number=st.account))
    return region, fund_account


def _plan(path: Path, statements: Sequence[Statement], fmt: StatementFormat,
          region_option: str | None, fund_option: str | None,
          accounts: Sequence[BankAccount] = ()) -> _Plan:
    plan = _Plan()
    seen_sids: set[str] = set()
    for index, st in enumerate(statements, 1):
        region, fund_account = account_of(path, st, accounts, region_option, fund_option)
        sid = _record_id(path, st.id, None)
        if sid in seen_sids:
            sid = _record_id(path, f"{st.id}-{index}", None)
        seen_sids.add(sid)
        booked = [e for e in st.entries if e.booked]
        lines: list[dict[str, object]] = []
        seen_ids: set[str] = set()
        net = Decimal(0)
        for e in booked:
            day = _day(e, path, sid)
            mid = _record_id(path, f"{sid}/{_entry_key(e)}", e.position)
            if mid in seen_ids:
                mid = _record_id(path, f"{mid}/{e.position}", e.position)
            seen_ids.add(mid)
            bank_ref = (e.acct_svcr_ref or e.entry_ref or mid)[:128]
            direction = "credit" if e.credit else "debit"
            net += e.amount if e.credit else -e.amount
            lines.append({"bank_ref": bank_ref, "direction": direction,
                          "amount": money_str(e.amount), "value_date": day.isoformat()})
            if fen(e.amount) == 0:
                continue  # a zero entry moves no money: kept on the statement only
            booking = e.booking_date or day
            rec: dict[str, object] = {
                "type": "finance.collection" if e.credit else "finance.payment",
                "id": mid, "region": region, "occurred_at": f"{booking.isoformat()}T00:00:00{TZ}",
                "amount": money_str(e.amount), "value_date": day.isoformat(),
                "bank_ref": bank_ref, "source": f"bank-statement/{fmt}",
            }
            if fund_account:
                rec["fund_account"] = fund_account
            if e.credit and e.party_id:
                rec["payer_id"] = e.party_id[:128]
            if not e.credit and e.counter_account:
                rec["payee_account"] = e.counter_account[:128]
            plan.movements.append(rec)
        plan.headers.append(_header(st, sid, fmt, region, fund_account, lines, net))
    return plan


def _header(st: Statement, sid: str, fmt: StatementFormat, region: str,
            fund_account: str | None, lines: list[dict[str, object]],
            net: Decimal) -> dict[str, object]:
    when = (st.closing.date if st.closing else st.opening.date if st.opening
            else max((date.fromisoformat(str(x["value_date"])) for x in lines),
                     default=date(1970, 1, 1)))
    rec: dict[str, object] = {
        "type": "finance.statement", "id": sid, "region": region,
        "occurred_at": f"{when.isoformat()}T00:00:00{TZ}", "source": f"bank-statement/{fmt}",
        "bank_account": st.account[:128], "currency": CURRENCY, "format": fmt,
        "entry_count": len(lines), "entries_net": money_str(net),
    }
    if fund_account:
        rec["fund_account"] = fund_account
    if st.sequence:
        rec["sequence"] = st.sequence[:128]
    if st.opening is not None:
        rec["opening_balance"] = money_str(st.opening.amount)
        rec["opening_date"] = st.opening.date.isoformat()
    if st.closing is not None:
        rec["closing_balance"] = money_str(st.closing.amount)
        rec["closing_date"] = st.closing.date.isoformat()
    if lines:
        rec["entries"] = lines
    return rec
