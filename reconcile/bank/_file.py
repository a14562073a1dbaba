"""The statement file itself, kept in the voucher store (INTERCHANGE v1.1
``archive.bank_statement``, FORMAT.md §9.6).

Every file a statement import reads becomes one ``archive.bank_statement`` record, the
last record of the file's batch, and its bytes go into the voucher store through the
ledger's ingest pipeline (``ledger.VoucherStore``: this package never imports
``archive``), so a refused batch takes the stored file back like any voucher's:

- ``id``: ``BS-`` + the first statement's bank account + ``-`` + its sequence (else its
  date) + ``-`` + the first 12 hex digits of the file's SHA-256, the account and the
  sequence made id characters as statement ids are (at most 64 and 32 characters; a part
  that comes out empty is left out). The same bytes give the same id.
- ``occurred_at``: the latest of the statements' dates (each ``finance.statement``'s
  ``occurred_at``: closing date, else opening, else latest entry value date) at
  ``T00:00:00+08:00``; ``source`` ``bank-statement/<format>``; ``region`` the first statement's.
- ``sha256``, ``size``: of the bytes read (and parsed); ``media_type``
  ``application/xml`` (camt.053) or ``text/plain`` (MT940); ``retention`` ``10y``
  (会计档案管理办法 2015: 银行对账单, 10 years).
- ``file``: the file's name (its last component) as given; a byte that is not UTF-8, a
  control character or a backslash becomes U+FFFD. The name only tells people which
  file it was: :class:`StatementFile` hands the store the file that was read.
- ``refs``: :attr:`~reconcile.bank._records.StatementBatch.refs`, the statement records
  and the movements the file made or confirmed.

A file that was kept before under the same id with the same SHA-256 is sent again as the
record the ledger holds (:func:`kept_record`), so re-importing it is a no-op even when
the movements it would confirm now are others (a movement the finance system sent
later, a correction), or when the file comes back under another name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from ledger import Ledger, VoucherStore, read_entries
from reconcile.bank._mt940 import id_part
from reconcile.bank._records import StatementBatch, StatementFormat

KIND: Final = "archive.bank_statement"
MEDIA_TYPES: Final[Mapping[StatementFormat, str]] = {
    "camt053": "application/xml",
    "mt940": "text/plain",
}
"""The media type each statement format is kept as (the 四性 check reads it)."""
RETENTION: Final = "10y"
ID_PREFIX: Final = "BS"
_NOT_KEPT = re.compile(r"[\\\x00-\x1f\x7f-\x9f]")


def file_name(path: Path) -> str:
    """The last component of ``path`` as a record's ``file`` (module docstring)."""
    name = os.fsencode(path.name).decode("utf-8", "replace")
    return _NOT_KEPT.sub("\ufffd", name) or "\ufffd"


def file_record_id(batch: StatementBatch, sha256: str) -> str:
    """The record id of a statement file (module docstring); at most 113 characters."""
    first = batch.headers[0]
    label = str(first.get("sequence") or str(first["occurred_at"])[:10])
    parts = (id_part(str(first["bank_account"]))[:64].strip("-"), id_part(label)[:32].strip("-"))
    return "-".join([ID_PREFIX, *(p for p in parts if p), sha256[:12]])


def file_record(batch: StatementBatch, path: Path, fmt: StatementFormat, sha256: str,
                size: int) -> dict[str, object]:
    """The ``archive.bank_statement`` record of the file ``path`` (module docstring)."""
    return {
        "type": KIND, "id": file_record_id(batch, sha256),
        "region": str(batch.headers[0]["region"]),
        "occurred_at": max(str(h["occurred_at"]) for h in batch.headers),
        "source": f"bank-statement/{fmt}", "sha256": sha256,
        "media_type": MEDIA_TYPES[fmt], "size": size, "file": file_name(path),
        "refs": list(batch.refs), "retention": RETENTION,
    }


def kept_record(ledger: Ledger, record: dict[str, object]) -> dict[str, object]:
    """``record``, or the record the ledger holds under its id for the same bytes (a file
    read again: an identical re-send, whatever it would refer to now)."""
    rid, sha256 = str(record["id"]), record["sha256"]
    with ledger.store.reader() as conn:
        found = read_entries(ledger.store, conn, "archive", [rid]).get(rid)
    if found is not None and found.record.get("type") == KIND and (
            found.record.get("sha256") == sha256):
        return dict(found.record)
    return record


@runtime_checkable
class _BatchChecks(Protocol):
    """The checks a voucher store may run on what a batch appends (the archive's 四性
    check; the ledger's ``BatchChecks``, which it does not export)."""

    def begin_batch(self) -> None: ...

    def appended(self, record: Mapping[str, Any]) -> None: ...

    def batch_members(self) -> dict[str, Any]: ...


class StatementFile:
    """The voucher store of one statement file's batch: ``store``, handed the file that
    was read (``source``) for the record of its bytes, whatever its ``file`` name says,
    and passing on the store's checks of the batch."""

    def __init__(self, store: VoucherStore, source: Path, sha256: str) -> None:
        self.store = store
        self.source = source
        self.sha256 = sha256

    def put(self, source: Path, sha256: str, size: int) -> Path | None:
        """Copy the statement file in; the store checks it still has ``sha256`` and
        ``size`` (a file changed since it was read is refused)."""
        return self.store.put(self.source if sha256 == self.sha256 else source, sha256, size)

    def begin_batch(self) -> None:
        if isinstance(self.store, _BatchChecks):
            self.store.begin_batch()

    def appended(self, record: Mapping[str, Any]) -> None:
        if isinstance(self.store, _BatchChecks):
            self.store.appended(record)

    def batch_members(self) -> dict[str, Any]:
        return self.store.batch_members() if isinstance(self.store, _BatchChecks) else {}
