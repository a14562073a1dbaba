"""The 四性 check of voucher records, recorded in the ledger (FORMAT.md §11.2).

:func:`check_record` judges one voucher record: its stored file by content
(:func:`archive._fourprop.check_file`: authenticity, integrity, usability, security) and
the record's own ``retention`` against its kind's minimum (会计档案管理办法 2015, INTERCHANGE
v1.1 §12). A set of results is one ``voucher_check`` object (:func:`check_result`): how
many records were checked and a digest of their ids, every failing record with its
findings, and the records it *cleared* (failing before, passing now). The reconciler
folds them into ``VOUCHER_DEFECT`` breaks (``reconcile.defect_state``).

Two ways in: :class:`Intake`, the voucher store an ingest uses, checks each voucher the
batch appends and hands the batch's entry to the ingester, which appends it in the batch's
transaction as the ``voucher_check`` member of its ``control.ingest`` entry;
:func:`check_vouchers` (``bfa archive check``) checks records already in the ledger, named
or all of them, and appends a ``control.voucher_check`` entry.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from archive._files import FileRow, ar_files, files_in_range, refresh_files
from archive._fourprop import CHECK_VERSION, check_file
from archive._store import FileStore
from ledger import Ledger, NotFoundError, append_control, now_rfc3339, read_entries
from reconcile import defect_state
from schemas import gettext as _

RETENTION_RANK = {"10y": 10, "30y": 30, "permanent": 1000}
"""Retention periods in order (``permanent`` above any number of years)."""

MINIMUM_RETENTION: Mapping[str, str] = {
    "fiscal_receipt": "30y",
    "bank_slip": "30y",
    "accounting_voucher": "30y",
    "bank_statement": "10y",
    "reconciliation_statement": "10y",
    "application_form": "permanent",
    "approval_document": "permanent",
}
"""Each voucher kind's minimum retention (会计档案管理办法 2015, 附表一; application forms
and approval documents: the agency's schedule, by default permanent)."""

CHECKER = f"bfa-4prop-{CHECK_VERSION}"
"""Names the rules a result was made with (in every ``control.voucher_check`` entry)."""


@dataclass(frozen=True, slots=True)
class RecordCheck:
    """The check of one voucher record: the format found, findings, notes."""

    record: str
    kind: str
    sha256: str
    format: str
    findings: tuple[dict[str, Any], ...]
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def failed_json(self) -> dict[str, Any]:
        return {"record": self.record, "sha256": self.sha256, "format": self.format,
                "findings": list(self.findings)}

    def to_json(self) -> dict[str, Any]:
        return {**self.failed_json(), "kind": self.kind, "ok": self.ok,
                "notes": dict(sorted(self.notes.items()))}


def retention_finding(kind: str, retention: str) -> dict[str, Any] | None:
    """The ``retention`` finding of a record whose period is below its kind's minimum."""
    least = MINIMUM_RETENTION.get(kind)
    if least is None or RETENTION_RANK.get(retention, 0) >= RETENTION_RANK[least]:
        return None
    return {"property": "retention", "code": "retention_below_minimum", "part": None,
            "detail": f"retention {retention} is below the minimum {least} for "
                      f"{kind} (会计档案管理办法 2015)"}


def check_record(store: FileStore, record: Mapping[str, Any]) -> RecordCheck:
    """The 四性 check of one voucher record (its stored file) and its retention."""
    kind = str(record["type"]).split(".", 1)[1]
    sha = str(record["sha256"])
    result = check_file(store.path_of(sha), str(record.get("media_type", "")))
    findings = [f.to_json() for f in sorted(
        result.findings, key=lambda f: (f.property, f.code, f.part or "", f.detail))]
    ret = retention_finding(kind, str(record.get("retention", "")))
    if ret is not None:
        findings.append(ret)
    notes = {str(k): str(v) for k, v in result.notes.items() if v}
    return RecordCheck(str(record["id"]), kind, sha, str(result.format), tuple(findings), notes)


def ids_digest(ids: Iterable[str]) -> str:
    """Hex SHA-256 of the ids sorted by code point, each followed by 0x0A."""
    h = hashlib.sha256()
    for rid in sorted(ids):
        h.update(rid.encode() + b"\n")
    return h.hexdigest()


def check_result(checks: Sequence[RecordCheck], cleared: Iterable[str]) -> dict[str, Any]:
    """What a set of results says (the ``voucher_check`` member, FORMAT.md §11.2)."""
    return {"checker": CHECKER, "checked": len(checks),
            "records": ids_digest(c.record for c in checks),
            "failed": [c.failed_json() for c in sorted(checks, key=lambda c: c.record)
                       if not c.ok],
            "cleared": sorted(set(cleared))}


def check_entry(checks: Sequence[RecordCheck], cleared: Iterable[str],
                members: Mapping[str, str], at: str | None = None) -> dict[str, Any]:
    """The ``control.voucher_check`` record of a set of results (FORMAT.md §11.2)."""
    return {"type": "control.voucher_check", "id": f"vcheck-{uuid.uuid4()}", **members,
            "voucher_check": check_result(checks, cleared), "at": at or now_rfc3339()}


class Intake:
    """The voucher store of an ingest: :class:`FileStore` plus the 四性 check of every
    voucher the batch appends (``ledger.VoucherStore``)."""

    def __init__(self, store: FileStore) -> None:
        self.store = store
        self.checks: list[RecordCheck] = []
        self.recorded: list[RecordCheck] = []
        """Failing checks of every batch whose entry was handed over (for the report)."""

    def put(self, source: Path, sha256: str, size: int) -> Path | None:
        return self.store.put(source, sha256, size)

    def begin_batch(self) -> None:
        self.checks = []

    def appended(self, record: Mapping[str, Any]) -> None:
        """A voucher record the batch appended (its file is in the store)."""
        self.checks.append(check_record(self.store, record))

    def batch_members(self) -> dict[str, Any]:
        """The ``voucher_check`` member of the batch's ``control.ingest`` entry (none for a
        batch that appended no voucher)."""
        if not self.checks:
            return {}
        self.recorded += [c for c in self.checks if not c.ok]
        return {"voucher_check": check_result(self.checks, ())}


@dataclass
class CheckReport:
    """What ``bfa archive check`` found; ``failed`` decides the exit code."""

    id: str = ""
    checks: list[RecordCheck] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[RecordCheck]:
        return [c for c in self.checks if not c.ok]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "checked": len(self.checks), "failed": len(self.failed),
                "cleared": self.cleared, "results": [c.to_json() for c in self.checks]}


def check_vouchers(ledger: Ledger, store: FileStore, ids: Sequence[str] = (),
                   label: str | None = None,
                   progress: Callable[[int], Callable[[int], None] | None] | None = None
                   ) -> CheckReport:
    """Check the voucher records ``ids`` (every voucher record when none is named),
    append one ``control.voucher_check`` entry and return the results. An id the
    ledger holds no voucher record for is a :class:`~ledger.NotFoundError`."""
    report = CheckReport()
    with ledger.store.writer() as conn:
        refresh_files(ledger.store, conn)
    with ledger.store.reader() as conn:
        if ids:
            found = read_entries(ledger.store, conn, "archive", list(dict.fromkeys(ids)))
            unknown = [i for i in ids if i not in found]
            if unknown:
                raise NotFoundError(_("no voucher record {id} in the ledger (archive "
                                      "domain)").format(id=repr(unknown[0])))
            records = [found[i].record for i in dict.fromkeys(ids)]
            tick = progress(len(records)) if progress is not None else None
            for rec in records:
                report.checks.append(check_record(store, rec))
                if tick is not None:
                    tick(1)
        else:
            total = int(conn.execute(select(func.count()).select_from(ar_files)).scalar_one())
            tick = progress(total) if progress is not None else None
            from archive._retention import disposed_files  # it needs this module's minimums

            gone = disposed_files(conn)  # deleted after appraisal and sign-off: not checked
            rows: list[FileRow] = []
            for row in files_in_range(conn, "", None):
                if row.sha256 in gone and row.seq < gone[row.sha256]:
                    continue
                rows.append(row)
                if len(rows) >= 500:
                    _check_rows(ledger, conn, store, rows, report, tick)
                    rows = []
            _check_rows(ledger, conn, store, rows, report, tick)
        before = defect_state(conn)
    report.checks.sort(key=lambda c: c.record)
    passed = {c.record for c in report.checks if c.ok}
    report.cleared = sorted(passed & set(before))
    with ledger.store.writer() as conn:
        entry = check_entry(report.checks, report.cleared, ledger.actor(label).members())
        append_control(ledger.store, conn, [entry])
        report.id = str(entry["id"])
    return report


def _check_rows(ledger: Ledger, conn: Connection, store: FileStore, rows: list[FileRow],
                report: CheckReport, tick: Callable[[int], None] | None) -> None:
    if not rows:
        return
    found = read_entries(ledger.store, conn, "archive", [r.record_id for r in rows])
    for r in rows:
        entry = found.get(r.record_id)
        if entry is None or entry.seq != r.seq:
            continue  # a superseded version's row: its current record is checked instead
        report.checks.append(check_record(store, entry.record))
        if tick is not None:
            tick(1)
