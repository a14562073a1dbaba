"""MT940 statements through the pinned ``mt-940`` library (import name ``mt940``).

The library parses a whole file into one ``Transactions`` object whose header fields
hold the *last* statement's values. A file may carry several statements (one per
``:20:`` message), so the text is cut at each ``:20:`` that starts a line and each
part is parsed alone: one :class:`Statement` per message, with its own ``:60F:``/``:60M:``
opening and ``:62F:``/``:62M:`` closing balance.

Money is read by this module, not the library: before the library parses a message,
every ``:61:`` statement line and every balance (``:60F:``/``:60M:``/``:62F:``/``:62M:``/
``:64:``/``:65:``) must match SWIFT's field format exactly (amount ``15d``: digits, a
decimal comma, at most 15 characters; CNY has two decimals). The library reads a
decimal point, or a 16th digit, as the end of the amount and silently keeps the rest
as a reference; it also signs ``RC`` (reversal of a credit: a debit) as a credit. So
the amount, its direction (``C``/``RD`` credit, ``D``/``RC`` debit) and the balances'
amounts come from our match; dates, references and ``:86:`` from the library.

Mapping: statement ``id`` is ``:20:`` plus ``/`` and ``:28C:``'s statement number, then
``.`` and its sequence number when present (``:28C:1/1`` → ``STMT-1/1.1``), each run of
characters outside the interchange id alphabet replaced by one ``-``; per ``:61:`` line
the amount and mark give direction and amount, its date the value date, its entry date
the booking date (when present), the bank reference (after ``//``) ``acct_svcr_ref``
and the customer reference (unless ``NONREF``) ``entry_ref``. From ``:86:`` only the
counterparty IBAN of a debit is taken (:func:`counter_iban`): MT940 carries no party id
the ledger could compare with an employer or person id.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import mt940

from ledger import InputError, printable
from reconcile.bank._model import Balance, Statement, StatementEntry, quoted
from schemas import gettext

# the library logs each failed match (a regex dump) at ERROR; with no handler Python
# would print it on stderr before our one-line message
logging.getLogger("mt940").addHandler(logging.NullHandler())
logging.getLogger("mt940").propagate = False

_MESSAGE_START = re.compile(r"(?m)^:20:")
_NOT_ID = re.compile(r"[^A-Za-z0-9._:/-]+")
_TAG_LINE = re.compile(r":([0-9]{2}[A-Z]?):(.*)", re.ASCII)
# SWIFT MT940 field 61, subfields 1-6: value date 6!n, entry date [4!n], mark 2a
# (C, D, RC, RD), funds code [1!a], amount 15d, transaction type 1!a3!c. Banks' files
# (tests/reconcile/test_bank_parsers.py, tests/vectors/bank/mt940/) also leave the
# decimal comma out of whole amounts (knab: C500NTRF): accepted; a decimal point is not
_STATEMENT_LINE = re.compile(
    r"(?P<value>[0-9]{6})(?P<entry>[0-9]{4})?(?P<mark>RC|RD|C|D)[A-Z]?"
    r"(?P<amount>[0-9]+(?:,[0-9]{0,2})?)[A-Z][A-Z0-9]{3}", re.ASCII)
# fields 60a, 62a, 64, 65: mark 1!a, date 6!n, currency 3!a, amount 15d
_BALANCE = re.compile(r"(?P<mark>[CD])[0-9]{6}[A-Z]{3}(?P<amount>[0-9]+(?:,[0-9]{0,2})?)",
                      re.ASCII)
_BALANCE_TAGS = {"60F", "60M", "62F", "62M", "64", "65"}
_AMOUNT_CHARS = 15  # "15d": at most 15 characters, the decimal comma included
# a counterparty IBAN in :86: (ISO 13616: country, check digits, 11-30 alphanumerics):
# German structured details (?31 field), SEPA "IBAN+" and the /CNTP/ code word
_IBAN_IN_DETAILS = re.compile(
    r"(?:\?31|IBAN\+ ?|/CNTP/)([A-Z]{2}[0-9]{2}[A-Z0-9]{11,30})", re.ASCII)


@dataclass(frozen=True, slots=True)
class _Money:
    """A ``:61:`` line's (or a balance's) amount and sign as SWIFT wrote them."""

    amount: Decimal
    credit: bool
    line: int


def decode_text(raw: bytes) -> str:
    """Bytes to text: UTF-8, else Latin-1 (every byte decodes; MT940 is mostly ASCII)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def id_part(text: str) -> str:
    """``text`` with every run of characters outside ``[A-Za-z0-9._:/-]`` made one ``-``."""
    return _NOT_ID.sub("-", text.strip()).strip("-")


def counter_iban(details: str) -> str | None:
    """The counterparty IBAN named in ``:86:`` details (lines joined), if one with a valid
    ISO 13616 check (mod 97) is there; else ``None``."""
    for m in _IBAN_IN_DETAILS.finditer(re.sub(r"[\r\n]", "", details)):
        iban = m.group(1)
        digits = "".join(str(int(c, 36)) for c in iban[4:] + iban[:4])
        if int(digits) % 97 == 1:
            return iban
    return None


def parse_mt940(path: Path, data: bytes | None = None) -> list[Statement]:
    """Parse an MT940 file into statements, one per ``:20:`` message.

    Raises:
        InputError: the file holds no ``:20:`` message, a statement line or balance does
            not match SWIFT's format, or the library cannot parse it; the message names
            the file (and the message, and the file's line).
    """
    text = decode_text(path.read_bytes() if data is None else data)
    starts = [m.start() for m in _MESSAGE_START.finditer(text)]
    if not starts:
        raise InputError(gettext("{path}: not an MT940 statement (no :20: transaction "
                                 "reference)").format(path=path))
    ends = [*starts[1:], len(text)]
    spans = zip(starts, ends, strict=True)
    return [_statement(path, text[a:b], i, text.count("\n", 0, a) + 1)
            for i, (a, b) in enumerate(spans, 1)]


_REFERENCE_CHARS = 16
"""Characters of a ``:20:`` transaction reference (SWIFT MT940: 16x)."""


def _money(path: Path, statement: str, index: int, entry: int | None, line: int, tag: str,
           value: str) -> _Money:
    """The amount and sign of a ``:61:`` line (``entry``: its number in the message) or a
    balance (``entry`` None), exactly as SWIFT writes them."""
    m = (_STATEMENT_LINE if tag == "61" else _BALANCE).match(value.strip())
    # some banks pad balances with zeros beyond the 15 characters (Rabobank's
    # 0000000001000,89): only the significant digits count
    if m is None or len(m["amount"].lstrip("0")) > _AMOUNT_CHARS or (
            tag != "61" and m.end() != len(value.strip())):
        if tag == "61":
            text = gettext(
                "{path}: MT940 statement {statement} (message {message}) entry {entry}, line "
                "{line}: :{tag}: {value} is not in SWIFT's format (value date, [entry date], "
                "C/D/RC/RD, amount with a decimal comma (at most 15 characters), type, e.g. "
                "2610121012C1000,00NTRF)")
        else:
            text = gettext(
                "{path}: MT940 statement {statement} (message {message}) balance, line "
                "{line}: :{tag}: {value} is not in SWIFT's format (C/D, date, currency, amount "
                "with a decimal comma (at most 15 characters), e.g. C261031CNY1100,00)")
        raise InputError(text.format(path=path, statement=statement, message=index,
                                     entry=entry, line=line, tag=tag,
                                     value=quoted(value.strip(), 60)))
    if tag == "61":
        _check_dates(path, statement, index, entry, line, m["value"], m["entry"])
    whole, _, frac = m["amount"].partition(",")
    amount = Decimal(f"{whole}.{frac or '0'}")
    credit = m["mark"] in ("C", "RD")  # RD reverses a debit: money in; RC: money out
    return _Money(amount, credit, line)


def _check_dates(path: Path, statement: str, index: int, number: int | None, line: int,
                 value: str, entry: str | None) -> None:
    """A ``:61:`` value date (YYMMDD) must exist, and an entry date (MMDD) exist in some
    year: the library would read 30 February as the 28th, moving the money's date."""
    for is_value, text, year, month_at in ((True, value, 2000 + int(value[:2]), 2),
                                           (False, entry, 2000, 0)):  # 2000: a leap year
        if text is None:
            continue
        try:
            date(year, int(text[month_at:month_at + 2]), int(text[month_at + 2:month_at + 4]))
        except ValueError:
            message = (gettext("{path}: MT940 statement {statement} (message {message}) entry "
                               "{entry}, line {line}: :61: value date {date} is not a date")
                       if is_value else
                       gettext("{path}: MT940 statement {statement} (message {message}) entry "
                               "{entry}, line {line}: :61: entry date {date} is not a date"))
            raise InputError(message.format(path=path, statement=statement, message=index,
                                            entry=number, line=line, date=text)) from None


def _scan(path: Path, chunk: str, index: int, first_line: int
          ) -> tuple[list[_Money], list[str], dict[str, _Money]]:
    """Every ``:61:`` line's money and the raw ``:86:`` text after it (its lines joined
    with newlines, ``""`` when none), and every balance's money, in message order."""
    lines: list[_Money] = []
    details: list[str] = []
    balances: dict[str, _Money] = {}
    statement = quoted(chunk[4:].split(chr(10), 1)[0].strip())
    in_86 = False
    for k, raw in enumerate(chunk.splitlines()):
        m = _TAG_LINE.match(raw)
        if m is None:
            if in_86:  # a continuation line of :86:
                details[-1] += "\n" + raw
            continue
        tag = m.group(1)
        in_86 = tag == "86" and len(details) > 0
        if tag == "61":
            lines.append(_money(path, statement, index, len(lines) + 1, first_line + k, tag,
                                m.group(2)))
            details.append("")
        elif in_86:
            details[-1] = m.group(2)
        elif tag == "20" and len(m.group(2).strip()) > _REFERENCE_CHARS:
            # the library would cut it to 16 and two statements could share one id
            raise InputError(gettext(
                "{path}: MT940 statement {statement} (message {message}), line {line}: :20: "
                "transaction reference {reference} is {length} characters long; SWIFT allows "
                "{allowed}").format(
                    path=path, statement=statement, message=index, line=first_line + k,
                    reference=quoted(m.group(2).strip(), 40), length=len(m.group(2).strip()),
                    allowed=_REFERENCE_CHARS))
        elif tag in _BALANCE_TAGS:
            balances[tag] = _money(path, statement, index, None, first_line + k, tag,
                                   m.group(2))
    return lines, details, balances


def _date(value: Any) -> date | None:
    if value is None:
        return None
    return date(value.year, value.month, value.day)


def _balance(path: Path, sid: str, value: Any, money: _Money | None) -> Balance | None:
    if value is None:
        return None
    if money is None:  # the library found a balance our line-by-line reading did not
        raise InputError(gettext("{path}: MT940 statement {statement}: a balance is not on a "
                                 "line of its own starting with its tag (:60F:, :62F:, …)")
                         .format(path=path, statement=sid))
    signed = money.amount if money.credit else -money.amount
    return Balance(signed, str(value.amount.currency), _date(value.date) or date.min)


def _statement(path: Path, chunk: str, index: int, first_line: int) -> Statement:
    lines61, details86, balances = _scan(path, chunk, index, first_line)
    try:
        parsed = mt940.parse(chunk)
        transactions = list(parsed)
    except Exception as e:  # the library raises several types on malformed input
        reason = printable(str(e).split("\n")[0])[:120]
        if "object at 0x" in reason:  # the library's repr of its own objects says nothing
            reason = type(e).__name__
        raise InputError(gettext("{path}: MT940 message {message} (from line {line}): cannot "
                                 "parse: {reason}").format(
            path=path, message=index, line=first_line, reason=reason)) from None
    if len(transactions) != len(lines61):
        raise InputError(gettext("{path}: MT940 message {message} (from line {line}): {lines} "
                                 ":61: statement line(s), but {read} could be read").format(
            path=path, message=index, line=first_line, lines=len(lines61),
            read=len(transactions)))
    head = parsed.data
    ref = id_part(str(head.get("transaction_reference") or ""))
    if not ref:
        raise InputError(gettext("{path}: MT940 message {message}: :20: transaction reference "
                                 "is empty").format(path=path, message=index))
    number = head.get("statement_number")
    seq = head.get("sequence_number")
    sid = ref if not number else f"{ref}/{id_part(str(number))}"
    if seq:
        sid += f".{id_part(str(seq))}"
    account = head.get("account_identification")
    if not account:
        raise InputError(gettext("{path}: MT940 statement {statement}: no :25: account "
                                 "identification").format(path=path, statement=sid))
    final_open = head.get("final_opening_balance")
    final_close = head.get("final_closing_balance")
    opening = _balance(path, sid, final_open or head.get("intermediate_opening_balance"),
                       balances.get("60F" if final_open else "60M"))
    closing = _balance(path, sid, final_close or head.get("intermediate_closing_balance"),
                       balances.get("62F" if final_close else "62M"))
    currency = opening.currency if opening else closing.currency if closing else None
    entries = []
    for pos, (tx, money, details) in enumerate(
            zip(transactions, lines61, details86, strict=True), 1):
        d = tx.data
        amount = d.get("amount")
        if amount is None:
            raise InputError(gettext("{path}: MT940 statement {statement}, line {line}: :61: "
                                     "has no amount").format(
                path=path, statement=sid, line=money.line))
        bank_ref = d.get("bank_reference")
        cust_ref = d.get("customer_reference")
        entries.append(StatementEntry(
            position=pos, amount=money.amount, currency=str(amount.currency or currency or ""),
            credit=money.credit, value_date=_date(d.get("date")),
            booking_date=_date(d.get("entry_date")),
            acct_svcr_ref=str(bank_ref).strip() or None if bank_ref else None,
            entry_ref=(str(cust_ref).strip() or None)
            if cust_ref and str(cust_ref).strip().upper() != "NONREF" else None,
            counter_account=None if money.credit else counter_iban(details)))
    return Statement(id=sid, account=str(account), currency=currency, opening=opening,
                     closing=closing, entries=tuple(entries),
                     sequence=None if not number else f"{number}/{seq}" if seq else str(number))
