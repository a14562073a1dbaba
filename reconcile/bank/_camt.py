"""A small camt.053 (BankToCustomerStatement, versions 02–08) parser on defusedxml.

It reads what the ledger needs and nothing else: per ``Stmt`` the ``Id``, account
(``Acct/Id/IBAN`` or ``Acct/Id/Othr/Id``), currency, the opening (``OPBD``, else
``PRCD``) and closing (``CLBD``) booked balances, sequence numbers, and per ``Ntry``
the amount, direction, status, booking and value dates, ``AcctSvcrRef``/``NtryRef`` and
the party fields of INTERCHANGE's mapping. The namespace decides the version; any other
document, a DTD/entity trick (defusedxml) or a missing required element is an
:class:`~ledger.InputError` naming the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException  # type: ignore[import-untyped]
from defusedxml.ElementTree import fromstring  # type: ignore[import-untyped]

from ledger import InputError
from reconcile.bank._model import Balance, Statement, StatementEntry, quoted
from schemas import gettext as _

_NS = re.compile(r"^\{urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.(\d\d)\}Document$")
SUPPORTED_VERSIONS = frozenset({2, 3, 4, 5, 6, 7, 8})
OPENING_CODES = ("OPBD", "PRCD")
CLOSING_CODES = ("CLBD",)


# XML Schema Part 2, 3.2.3.1 (lexical space of xs:decimal), ASCII digits only; camt.053's
# ActiveOrHistoricCurrencyAndAmount is an xs:decimal (ISO 20022 message definition)
_XS_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
# ISODate is an xs:date (3.2.9: a time zone may follow), ISODateTime an xs:dateTime
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_ZONE = re.compile(r"(?:Z|[+-][0-9]{2}:[0-9]{2})?", re.ASCII)


_MAX_INTEGER_DIGITS = 15
"""Integer digits of the largest amount the ledger keeps (FORMAT.md §1)."""


@dataclass(frozen=True, slots=True)
class _Where:
    """Where in the document an element is: a statement's balance (its code) or entry
    (its position)."""

    statement: str
    balance: str | None = None
    entry: int | None = None


class _Doc:
    """Element lookups with the document's namespace, errors naming the file."""

    def __init__(self, path: Path, ns: str) -> None:
        self.path = path
        self.ns = ns

    def q(self, rel: str) -> str:
        return "/".join(f"{{{self.ns}}}{p}" for p in rel.split("/"))

    def find(self, el: Element, rel: str) -> Element | None:
        return el.find(self.q(rel))

    def text(self, el: Element, rel: str) -> str | None:
        found = el.find(self.q(rel))
        if found is None or found.text is None:
            return None
        return found.text.strip() or None

    def first_text(self, el: Element, *rels: str) -> str | None:
        for rel in rels:
            value = self.text(el, rel)
            if value is not None:
                return value
        return None

    def fail(self, where: _Where, in_balance: str, in_entry: str,
             **params: object) -> InputError:
        """The error about a balance's or an entry's element: ``in_balance`` or
        ``in_entry``, whole translated messages naming ``{path}``, ``{statement}``,
        ``{balance}`` or ``{entry}`` and ``params``."""
        message = in_balance if where.entry is None else in_entry
        return InputError(message.format(path=self.path, statement=where.statement,
                                         balance=where.balance, entry=where.entry, **params))

    def amount(self, el: Element, where: _Where) -> tuple[Decimal, str]:
        amt = self.find(el, "Amt")
        if amt is None or not (amt.text or "").strip():
            raise self.fail(
                where, _("{path}: camt.053 statement {statement} balance {balance}: no Amt"),
                _("{path}: camt.053 statement {statement} entry {entry}: no Amt"))
        text = (amt.text or "").strip()
        if _XS_DECIMAL.fullmatch(text) is None:  # Decimal() would also take 1E3, 1_000, ١٠٠٠
            raise self.fail(
                where, _("{path}: camt.053 statement {statement} balance {balance}: Amt "
                         "{amount} is not a decimal number (XML Schema xs:decimal: digits 0-9 "
                         "and one '.')"),
                _("{path}: camt.053 statement {statement} entry {entry}: Amt {amount} is not "
                  "a decimal number (XML Schema xs:decimal: digits 0-9 and one '.')"),
                amount=quoted(text))
        try:
            value = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            raise self.fail(
                where, _("{path}: camt.053 statement {statement} balance {balance}: Amt "
                         "{amount} is not a decimal number"),
                _("{path}: camt.053 statement {statement} entry {entry}: Amt {amount} is not "
                  "a decimal number"), amount=quoted(text)) from None
        if value < 0:
            raise self.fail(
                where, _("{path}: camt.053 statement {statement} balance {balance}: Amt "
                         "{amount} must be a non-negative decimal"),
                _("{path}: camt.053 statement {statement} entry {entry}: Amt {amount} must be "
                  "a non-negative decimal"), amount=quoted(text))
        if value.adjusted() >= _MAX_INTEGER_DIGITS:  # money holds at most 15 integer digits
            raise self.fail(
                where, _("{path}: camt.053 statement {statement} balance {balance}: Amt "
                         "{amount} has more than {digits} integer digits (the largest amount "
                         "is 999999999999999.99)"),
                _("{path}: camt.053 statement {statement} entry {entry}: Amt {amount} has "
                  "more than {digits} integer digits (the largest amount is "
                  "999999999999999.99)"), amount=quoted(text, 40), digits=_MAX_INTEGER_DIGITS)
        ccy = amt.get("Ccy")
        if not ccy:
            raise self.fail(
                where, _("{path}: camt.053 statement {statement} balance {balance}: Amt has "
                         "no Ccy"),
                _("{path}: camt.053 statement {statement} entry {entry}: Amt has no Ccy"))
        return value, ccy

    def credit(self, el: Element, where: _Where) -> bool:
        ind = self.text(el, "CdtDbtInd")
        if ind not in ("CRDT", "DBIT"):
            raise self.fail(
                where, _("{path}: camt.053 statement {statement} balance {balance}: CdtDbtInd "
                         "{indicator} is neither CRDT nor DBIT"),
                _("{path}: camt.053 statement {statement} entry {entry}: CdtDbtInd "
                  "{indicator} is neither CRDT nor DBIT"), indicator=quoted(ind or ""))
        return ind == "CRDT"

    def date(self, el: Element, rel: str, where: _Where) -> date | None:
        raw = self.first_text(el, f"{rel}/Dt", f"{rel}/DtTm")
        if raw is None:
            return None
        # Dt is an xs:date, DtTm an xs:dateTime: its date counts
        head, rest = raw[:10], raw[10:]
        try:
            if _DATE.fullmatch(head) is None or not (
                    _ZONE.fullmatch(rest) or (rest[:1] == "T" and datetime.fromisoformat(raw))):
                raise ValueError(raw)
            return date.fromisoformat(head)
        except ValueError:
            raise self.fail(
                where, _("{path}: camt.053 statement {statement} balance {balance}: {element} "
                         "{date} is not a date"),
                _("{path}: camt.053 statement {statement} entry {entry}: {element} {date} is "
                  "not a date"), element=rel, date=quoted(raw)) from None


def parse_camt053(path: Path, data: bytes | None = None) -> list[Statement]:
    """Parse a camt.053 file into statements (in document order).

    Raises:
        InputError: not well-formed XML, not camt.053 02–08, no statement, or an
            element the mapping needs is missing or malformed; the message names the file.
    """
    raw = path.read_bytes() if data is None else data
    try:
        root = fromstring(raw, forbid_dtd=True)  # camt.053 is defined by XSD, never a DTD
    except (ParseError, DefusedXmlException) as e:
        raise InputError(_("{path}: not a well-formed, safe XML document: {error}").format(
            path=path, error=e)) from None
    m = _NS.match(root.tag)
    if m is None:
        raise InputError(_("{path}: not a camt.053 document (root element {element})").format(
            path=path, element=quoted(str(root.tag))))
    version = int(m.group(1))
    if version not in SUPPORTED_VERSIONS:
        raise InputError(_("{path}: camt.053.001.{version} is not supported (02 to 08 are)")
                         .format(path=path, version=f"{version:02d}"))
    ns = root.tag[1:root.tag.index("}")]
    doc = _Doc(path, ns)
    stmts = root.findall(doc.q("BkToCstmrStmt/Stmt"))
    if not stmts:
        raise InputError(_("{path}: camt.053 document holds no statement "
                           "(BkToCstmrStmt/Stmt)").format(path=path))
    return [_statement(doc, el, i) for i, el in enumerate(stmts, 1)]


def _statement(doc: _Doc, el: Element, index: int) -> Statement:
    sid = doc.text(el, "Id")
    if sid is None:
        raise InputError(_("{path}: camt.053 statement {index}: no Id").format(
            path=doc.path, index=index))
    account = doc.first_text(el, "Acct/Id/IBAN", "Acct/Id/Othr/Id")
    if account is None:
        raise InputError(_("{path}: camt.053 statement {statement}: no account (Acct/Id/IBAN "
                           "or Acct/Id/Othr/Id)").format(path=doc.path, statement=sid))
    opening: Balance | None = None
    closing: Balance | None = None
    for bal in el.findall(doc.q("Bal")):
        code = doc.first_text(bal, "Tp/CdOrPrtry/Cd", "Tp/CdOrPrtry/Prtry")
        if code not in OPENING_CODES + CLOSING_CODES:
            continue
        bwhere = _Where(sid, balance=code)
        value, ccy = doc.amount(bal, bwhere)
        signed = value if doc.credit(bal, bwhere) else -value
        day = doc.date(bal, "Dt", bwhere)
        if day is None:
            raise InputError(_("{path}: camt.053 statement {statement} balance {balance}: no "
                               "Dt").format(path=doc.path, statement=sid, balance=code))
        b = Balance(signed, ccy, day)
        if code in CLOSING_CODES:
            closing = b
        elif opening is None or code == "OPBD":
            opening = b
    entries = tuple(_entry(doc, n, pos, sid)
                    for pos, n in enumerate(el.findall(doc.q("Ntry")), 1))
    return Statement(
        id=sid, account=account, currency=doc.text(el, "Acct/Ccy"), opening=opening,
        closing=closing, entries=entries, sequence=doc.text(el, "ElctrncSeqNb"),
        legal_sequence=doc.text(el, "LglSeqNb"), created_at=doc.text(el, "CreDtTm"))


def _entry(doc: _Doc, n: Element, pos: int, sid: str) -> StatementEntry:
    where = _Where(sid, entry=pos)
    value, ccy = doc.amount(n, where)
    credit = doc.credit(n, where)
    status = doc.first_text(n, "Sts/Cd", "Sts")
    rp = "NtryDtls/TxDtls/RltdPties"
    party = doc.first_text(
        n, f"{rp}/Dbtr/Id/OrgId/Othr/Id", f"{rp}/Dbtr/Pty/Id/OrgId/Othr/Id",
        f"{rp}/Dbtr/Id/PrvtId/Othr/Id", f"{rp}/Dbtr/Pty/Id/PrvtId/Othr/Id")
    counter = doc.first_text(n, f"{rp}/CdtrAcct/Id/Othr/Id", f"{rp}/CdtrAcct/Id/IBAN")
    return StatementEntry(
        position=pos, amount=value, currency=ccy, credit=credit,
        value_date=doc.date(n, "ValDt", where), booking_date=doc.date(n, "BookgDt", where),
        acct_svcr_ref=doc.text(n, "AcctSvcrRef"), entry_ref=doc.text(n, "NtryRef"),
        party_id=party, counter_account=counter, booked=status in (None, "BOOK"))
