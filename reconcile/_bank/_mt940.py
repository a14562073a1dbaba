"""MT940 statements through the pinned ``mt-940`` library (import name ``mt940``).

The library parses a whole file into one ``Transactions`` object whose header fields
hold the *last* statement's values. A file may carry several statements (one per
``:20:`` message), so the text is cut at each ``:20:`` that starts a line and each
part is parsed alone: one :class:`Statement` per message, with its own ``:60F:``/``:60M:``
opening and ``:62F:``/``:62M:`` closing balance.

Mapping: statement ``id`` is ``:20:`` plus ``/`` and ``:28C:`` (statement number,
``.`` sequence number), characters outside the interchange id alphabet replaced by
``-``; per ``:61:`` line the signed amount gives direction and amount, its date the
value date, its entry date the booking date (when present), the bank reference
(after ``//``) ``acct_svcr_ref`` and the customer reference (unless ``NONREF``)
``entry_ref``. From ``:86:`` only the counterparty IBAN of a debit is taken
(``applicant_iban`` of the library's structured-details processor): MT940 carries no
party id the ledger could compare with an employer or person id.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import mt940

from ledger import InputError
from reconcile._bank._model import Balance, Statement, StatementEntry

_MESSAGE_START = re.compile(r"(?m)^:20:")
_NOT_ID = re.compile(r"[^A-Za-z0-9._:/-]+")


def decode_text(raw: bytes) -> str:
    """Bytes to text: UTF-8, else Latin-1 (every byte decodes; MT940 is mostly ASCII)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def id_part(text: str) -> str:
    """``text`` with every run of characters outside ``[A-Za-z0-9._:/-]`` made one ``-``."""
    return _NOT_ID.sub("-", text.strip()).strip("-")


def parse_mt940(path: Path, data: bytes | None = None) -> list[Statement]:
    """Parse an MT940 file into statements, one per ``:20:`` message.

    Raises:
        InputError: the file holds no ``:20:`` message, or the library cannot parse it;
            the message names the file (and the statement).
    """
    text = decode_text(path.read_bytes() if data is None else data)
    starts = [m.start() for m in _MESSAGE_START.finditer(text)]
    if not starts:
        raise InputError(f"{path}: not an MT940 statement (no :20: transaction reference)")
    ends = [*starts[1:], len(text)]
    spans = zip(starts, ends, strict=True)
    return [_statement(path, text[a:b], i) for i, (a, b) in enumerate(spans, 1)]


def _date(value: Any) -> date | None:
    if value is None:
        return None
    return date(value.year, value.month, value.day)


def _balance(value: Any) -> Balance | None:
    if value is None:
        return None
    return Balance(Decimal(value.amount.amount), str(value.amount.currency), _date(value.date)
                   or date.min)


def _statement(path: Path, chunk: str, index: int) -> Statement:
    try:
        parsed = mt940.parse(chunk)
    except Exception as e:  # the library raises several types on malformed input
        raise InputError(f"{path}: MT940 message {index}: cannot parse: {e}") from None
    head = parsed.data
    ref = id_part(str(head.get("transaction_reference") or ""))
    if not ref:
        raise InputError(f"{path}: MT940 message {index}: :20: transaction reference is empty")
    number = head.get("statement_number")
    seq = head.get("sequence_number")
    sid = ref if not number else f"{ref}/{id_part(str(number))}"
    if seq:
        sid += f".{id_part(str(seq))}"
    account = head.get("account_identification")
    if not account:
        raise InputError(f"{path}: MT940 statement {sid}: no :25: account identification")
    opening = _balance(head.get("final_opening_balance")
                       or head.get("intermediate_opening_balance"))
    closing = _balance(head.get("final_closing_balance")
                       or head.get("intermediate_closing_balance"))
    currency = opening.currency if opening else closing.currency if closing else None
    entries = []
    for pos, tx in enumerate(parsed, 1):
        d = tx.data
        amount = d.get("amount")
        if amount is None:
            raise InputError(f"{path}: MT940 statement {sid} line {pos}: :61: has no amount")
        value = Decimal(amount.amount)
        status = str(d.get("status") or "")
        credit = value > 0 or (value == 0 and status in ("C", "RD"))
        bank_ref = d.get("bank_reference")
        cust_ref = d.get("customer_reference")
        entries.append(StatementEntry(
            position=pos, amount=abs(value), currency=str(amount.currency or currency or ""),
            credit=credit, value_date=_date(d.get("date")), booking_date=_date(d.get("entry_date")),
            acct_svcr_ref=str(bank_ref).strip() or None if bank_ref else None,
            entry_ref=(str(cust_ref).strip() or None)
            if cust_ref and str(cust_ref).strip().upper() != "NONREF" else None,
            counter_account=None if credit else (d.get("applicant_iban") or None)))
    return Statement(id=sid, account=str(account), currency=currency, opening=opening,
                     closing=closing, entries=tuple(entries),
                     sequence=None if not number else f"{number}/{seq}" if seq else str(number))
