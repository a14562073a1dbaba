"""Importing bank statements into the ledger as one atomic batch (INTERCHANGE "Bank statements").

The statement is parsed and mapped to interchange records by ``reconcile.bank``;
the records then take the same ingest pipeline as a JSON Lines file. Given a voucher
store, the batch also keeps the file itself: its ``archive.bank_statement`` record
(``_file``) is the batch's last record, and its bytes go into the store (FORMAT.md §9.6).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from ledger import FileReport, InputError, Ledger, VoucherStore, note_files_before
from reconcile.matching._refresh import Deriver
from schemas import gettext as _

StatementFormat = Literal["camt053", "mt940"]


def ingest_statement(
    ledger: Ledger,
    path: Path,
    fmt: StatementFormat,
    region: str | None,
    fund_account: str | None = None,
    label: str | None = None,
    *,
    vouchers: VoucherStore | None = None,
) -> FileReport:
    """Map ``path`` to movements (credits: collections, debits: payments) and append them,
    with the ``archive.bank_statement`` record of the file when ``vouchers`` is given (the
    file goes into that store; without one the file is not kept).

    Raises:
        InputError: the file cannot be read or is refused (the message names it).
    """
    return _ingest(ledger, path, fmt, region, fund_account, label, vouchers)[0]


def _ingest(ledger: Ledger, path: Path, fmt: StatementFormat, region: str | None,
            fund_account: str | None, label: str | None,
            vouchers: VoucherStore | None) -> tuple[FileReport, int, dict[str, int]]:
    from reconcile.bank._file import StatementFile, file_record, kept_record
    from reconcile.bank._records import statement_batch

    # a name that is not UTF-8 is shown with \x escapes, as for JSON Lines files
    name = os.fsencode(path).decode("utf-8", "backslashreplace")
    try:
        data = path.read_bytes()  # read once: what is parsed is what is kept
    except OSError as e:
        raise InputError(_("{path}: cannot open: {error}").format(
            path=name, error=e.strerror or e)) from e
    batch = statement_batch(ledger, path, fmt, region, fund_account, data)
    records = batch.records
    store: VoucherStore | None = None
    if vouchers is not None:
        sha256 = hashlib.sha256(data).hexdigest()
        records.append(kept_record(ledger, file_record(batch, path, fmt, sha256, len(data))))
        store = StatementFile(vouchers, path, sha256)
    report = ledger.ingest_records(records, name, store, derive=Deriver, label=label,
                                   bank_records=True)
    return report, len(data), batch.summary()


def ingest_statements(
    ledger: Ledger,
    paths: Iterable[Path],
    fmt: StatementFormat,
    region: str | None,
    fund_account: str | None = None,
    progress: Callable[[int], None] | None = None,
    label: str | None = None,
    *,
    vouchers: VoucherStore | None = None,
    summaries: list[dict[str, int]] | None = None,
) -> list[FileReport]:
    """:func:`ingest_statement` for each file, each its own batch; a refused file's error
    names the files before it, which stay appended (FORMAT.md §9.1). ``progress`` is
    told each file's size in bytes once it is appended; ``summaries``, when given, gets
    each file's :meth:`StatementBatch.summary` (entries, confirmed, new, mismatched)."""
    reports: list[FileReport] = []
    for path in paths:
        try:
            report, size, summary = _ingest(ledger, path, fmt, region, fund_account, label,
                                            vouchers)
        except InputError as e:
            note_files_before(e, reports)
            raise
        reports.append(report)
        if summaries is not None:
            summaries.append(summary)
        if progress is not None:
            progress(size)
    return reports
