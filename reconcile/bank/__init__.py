"""Bank statements: camt.053 and MT940 parsing, import mapping,
balance continuity checks and the book-versus-bank report (银行余额调节表).

- :func:`parse_statement_file` (``_camt``: defusedxml, camt.053 02–08; ``_mt940``: the
  pinned ``mt-940`` library) gives the neutral model of ``_model``;
- :func:`statement_records` maps a file to the records ``bfa ingest --format`` appends
  (``finance.statement`` + unallocated ``finance.collection``/``finance.payment``);
  ``reconcile.ingest_statement`` given a voucher store also keeps the file itself as an
  ``archive.bank_statement`` record in the same batch (``_file``);
- :func:`statement_breaks` reports ``STATEMENT_BALANCE_BREAK`` and bank-versus-books
  ``AMOUNT_MISMATCH`` for ``run_reconcile``;
- :func:`bank_reconciliation` builds the 银行存款余额调节表 of each bank account from
  the opening balances the agency records (:func:`record_opening`) (``_adjust``).

Example::

    from datetime import date
    from pathlib import Path
    from reconcile.bank import bank_reconciliation, statement_records

    records = statement_records(led, Path("stmt.xml"), "camt053", "440100", "income")
    led.ingest_records(records, "stmt.xml")
    print(bank_reconciliation(led, date(2026, 3, 31)).to_json())
"""

from __future__ import annotations

from reconcile.bank._adjust import (
    ITEM_KINDS,
    ITEM_NAMES,
    LABELS,
    AccountReconciliation,
    Archived,
    BankReconciliation,
    Item,
    Opening,
    archive_statements,
    bank_reconciliation,
    openings,
    parse_yuan,
    record_opening,
    statement_accounts,
    statement_csv,
)
from reconcile.bank._checks import load_statements, statement_breaks
from reconcile.bank._model import Balance, Statement, StatementEntry
from reconcile.bank._records import StatementFormat, parse_statement_file, statement_records

__all__ = [
    "ITEM_KINDS",
    "ITEM_NAMES",
    "LABELS",
    "AccountReconciliation",
    "Archived",
    "Balance",
    "BankReconciliation",
    "Item",
    "Opening",
    "Statement",
    "StatementEntry",
    "StatementFormat",
    "archive_statements",
    "bank_reconciliation",
    "load_statements",
    "openings",
    "parse_statement_file",
    "parse_yuan",
    "record_opening",
    "statement_accounts",
    "statement_breaks",
    "statement_csv",
    "statement_records",
]
