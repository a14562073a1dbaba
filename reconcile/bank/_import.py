"""Importing bank statements into the ledger as one atomic batch (INTERCHANGE "Bank statements").

The statement is parsed and mapped to interchange records by ``reconcile.bank``;
the records then take the same ingest pipeline as a JSON Lines file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from ledger import FileReport, InputError, Ledger, note_files_before
from reconcile.matching._refresh import Deriver

StatementFormat = Literal["camt053", "mt940"]


def ingest_statement(
    ledger: Ledger,
    path: Path,
    fmt: StatementFormat,
    region: str,
    fund_account: str | None = None,
    label: str | None = None,
) -> FileReport:
    """Map ``path`` to movements (credits: collections, debits: payments) and append them."""
    from reconcile.bank import statement_records

    records = statement_records(ledger, path, fmt, region, fund_account)
    return ledger.ingest_records(records, str(path), derive=Deriver, label=label)


def ingest_statements(
    ledger: Ledger,
    paths: Iterable[Path],
    fmt: StatementFormat,
    region: str,
    fund_account: str | None = None,
    progress: Callable[[int], None] | None = None,
    label: str | None = None,
) -> list[FileReport]:
    """:func:`ingest_statement` for each file, each its own batch; a refused file's error
    names the files before it, which stay appended (FORMAT.md §9.1). ``progress`` is
    told each file's size in bytes once it is appended."""
    reports: list[FileReport] = []
    for path in paths:
        try:
            reports.append(ingest_statement(ledger, path, fmt, region, fund_account,
                                            label))
        except InputError as e:
            note_files_before(e, reports)
            raise
        if progress is not None:
            progress(path.stat().st_size)
    return reports
