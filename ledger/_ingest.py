"""Ingest: stream JSON Lines into the ledger, one file = one atomic batch.

Each line is parsed strictly (``_canonical.loads_strict``), validated against the
interchange models (``schemas``), checked against what the ledger already holds
(identical re-send: no-op; same id with other content: conflict), and appended.
A record whose ``corrects`` names a record not yet seen waits until the end of
its batch (records arrive in any order, INTERCHANGE "Files"). Archive records
hand their voucher file to a :class:`VoucherStore`, so ``ledger`` never imports
``archive``. With a ``derive`` factory (the reconciler's), the tables derived from the
entries are written in the same transaction (ADR 0018).

Without a reject sink any problem refuses the whole file: nothing of it is
written. With one, valid lines are appended and rejected ones are handed back.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from pydantic import ValidationError
from sqlalchemy import Connection

from ledger import _schema as s
from ledger._append import Appender, DeriverFactory, now_rfc3339
from ledger._canonical import canonicalize_plain, loads_strict
from ledger._entry import leaf_record
from ledger._errors import (
    BatchRefusedError,
    BfaError,
    InputError,
    LocatedInputError,
    VoucherMismatchError,
)
from ledger._identity import Actor
from ledger._privacy import Pseudonymizer
from ledger._store import Store
from ledger._vault import Keyring, VaultKey
from schemas import N_, current_language, language, parse_record, record_payload
from schemas import gettext as _

MAX_REPORTED = 100
ANALYZE_AFTER = 10_000  # rows appended by one batch before planner statistics are refreshed
CHUNK = 2000


STATEMENT_SOURCE = "bank-statement/"
"""The ``source`` of the records a bank-statement import makes (FORMAT.md §9.6)."""


class VoucherStore(Protocol):
    """Where voucher files go; the archive implements it."""

    def put(self, source: Path, sha256: str, size: int) -> Path | None:
        """Copy ``source`` into the store if its bytes match; raise VoucherMismatchError if not.
        Returns the file it created, None when the store held those bytes already."""


@runtime_checkable
class BatchChecks(Protocol):
    """A voucher store that also checks what a batch appends (the archive's 四性 check):
    told when a batch starts and of each voucher record appended, it gives the members
    the ingester adds to the batch's ``control.ingest`` entry (FORMAT.md §11.2)."""

    def begin_batch(self) -> None: ...

    def appended(self, record: Mapping[str, Any]) -> None: ...

    def batch_members(self) -> dict[str, Any]: ...


def voucher_source(base: Path, rel: str) -> Path:
    """The voucher file ``rel`` of a batch read from ``base`` (FORMAT.md §9.5).

    ``rel`` is already a relative path without ``..`` (the interchange model); a
    symbolic link on the way must not lead out of ``base`` either, or a link in the
    drop directory would let a batch read (and archive) any file the process can read.
    """
    source = base / rel
    try:
        real = source.resolve(strict=True)
        inside = real.is_relative_to(base.resolve(strict=True))
    except FileNotFoundError:
        return source  # the store reports it missing, on ``file``
    except (OSError, RuntimeError) as e:  # a loop of links, a permission on the way
        raise VoucherMismatchError("file", f"voucher file {source}: {e}") from e
    if not inside:
        raise VoucherMismatchError(
            "file", f"voucher file {source} leads outside {base} through a symbolic link")
    return real


@dataclass
class FileReport:
    """What happened to one input file."""

    file: str
    lines: int = 0
    appended: int = 0
    duplicates: int = 0
    rejected: int = 0
    problems: list[LocatedInputError] = field(default_factory=list)


@dataclass(slots=True)
class _Pending:
    line: int
    text: str
    record: dict[str, Any]
    domain: str
    rid: str
    digest: bytes
    corrects: str | None
    voucher: tuple[Path, str, str, int] | None
    """(directory of the batch, ``file`` as sent, ``sha256``, ``size``)"""


class RejectSink(Protocol):
    def reject(self, problem: LocatedInputError, text: str) -> None: ...


ProgressFn = Callable[[int], None]


_SHOWN: dict[str, str] = {
    "missing": N_("is required"),
    "extra_forbidden": N_("is not a member of this record type"),
    "string_type": N_("must be a string"),
    "int_type": N_("must be an integer"),
    "bool_type": N_("must be true or false"),
    "list_type": N_("must be an array"),
    "dict_type": N_("must be an object"),
    "model_type": N_("must be an object"),
    "model_attributes_type": N_("must be an object"),
    "literal_error": N_("must be one of {expected}"),
    "enum": N_("must be one of {expected}"),
    "string_pattern_mismatch": N_("does not have the form the interchange requires"),
    "string_too_short": N_("is too short"),
    "string_too_long": N_("is too long"),
    "too_short": N_("has too few items"),
    "too_long": N_("has too many items"),
    "record_id": N_("must be a record id: 1 to 128 characters of A-Z a-z 0-9 . _ : / -"),
    "region_code": N_('must be a 6-digit region code string, like "440100"'),
    "period": N_('must be a period "YYYY-MM" with a month from 01 to 12, like "2026-03"'),
    "sha256_hex": N_("must be a SHA-256 digest: 64 lowercase hex digits"),
    "base64_hash": N_("must be a 32-byte hash in standard base64 (44 characters ending in "
                      "'=')"),
    "media_type": N_('must be a media type "type/subtype" without parameters, like '
                     '"application/pdf"'),
    "short_text": N_("must be 1 to 128 characters, without control characters or "
                     "leading/trailing whitespace"),
    "text": N_("must be 1 to 1024 characters, without control characters or "
               "leading/trailing whitespace"),
    "money_type": N_('money must be a string like "3456.78"'),
    "money_format": N_("money must have exactly two fraction digits and at most 15 integer "
                       "digits, without leading zeros or '+', like \"3456.78\""),
    "money_not_positive": N_("amount must be greater than 0.00"),
    "money_signed": N_("amount must not be negative (its direction says which way)"),
    "timestamp_type": N_('timestamp must be a string like "2026-03-01T09:30:00+08:00"'),
    "timestamp_naive": N_("timestamp has no UTC offset; RFC 3339 requires one, like "
                          '"2026-03-01T09:30:00+08:00"'),
    "timestamp_format": N_('timestamp must be RFC 3339 with an offset, like '
                           '"2026-03-01T09:30:00+08:00"'),
    "timestamp_value": N_("timestamp is not a real date and time: {reason}"),
    "date_format": N_('date must be "YYYY-MM-DD", like "2026-03-01"'),
    "date_value": N_("date is not a real calendar date: {reason}"),
    "path_type": N_("file must be a string path"),
    "path_backslash": N_('file must use "/" separators, not "\\"'),
    "path_chars": N_("file must be 1 to 1024 characters without control characters"),
    "path_absolute": N_('file must be a relative path, not start with "/"'),
    "path_segment": N_('file must not contain empty, "." or ".." path segments'),
    "corrects_self": N_("corrects must name an earlier record, not the record itself"),
    "withdrawn_without_corrects": N_("a withdrawal corrects the record it withdraws"),
    "allocations_empty": N_("allocations must not be empty; omit the field instead"),
    "allocations_total": N_("allocations add up to more than 999999999999999.99, the "
                            "largest amount"),
    "sweep_same_account": N_("a sweep must move money between two different accounts"),
    "entries_empty": N_("entries must not be empty; omit the field"),
    "refs_empty": N_("refs must name at least one record"),
    "refs_duplicate": N_("refs must not name the same record twice"),
}
"""What a validation error of each type says to a reader of another language than English
(pydantic's own words, and ours in schemas, are English; the reject file keeps them)."""


def _shown(first: Any) -> str:
    """The error's message in the reader's language: :data:`_SHOWN`'s words for its type
    with its context filled in; pydantic's English when the type has none here."""
    english = str(first["msg"])
    template = _SHOWN.get(str(first["type"]))
    if template is None or current_language() == "en":  # English: pydantic's own words
        return english
    ctx = {str(k): str(v) for k, v in dict(first.get("ctx") or {}).items()}
    try:
        return _(template).format_map(ctx)
    except (KeyError, IndexError, ValueError):
        return english


def _field_of(err: ValidationError) -> tuple[str, str, str]:
    """The field path of the first error, and its message in English (the reject file's)
    and in the reader's language (pydantic's own messages stay English)."""
    first = err.errors(include_url=False)[0]
    etype = first["type"]
    loc = list(first["loc"])
    if etype == "union_tag_not_found":
        required = N_('is required (e.g. "business.benefit_payment")')
        return "type", required, _(required)
    if etype == "union_tag_invalid":
        unknown = N_("unknown record type; {reason}")
        return ("type", unknown.format(reason=first["msg"]),
                _(unknown).format(reason=first["msg"]))
    if loc and isinstance(loc[0], str) and "." in loc[0]:
        loc = loc[1:]
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "record", str(first["msg"]), _shown(first)


def parse_line(name: str, n: int, text: str, *, withdrawals: bool = False
               ) -> tuple[dict[str, Any], Any]:
    """Line ``n`` of file ``name`` as a record: strict JSON (FORMAT.md §9.1), an object,
    no ``withdrawn`` member unless ``withdrawals`` (an approved withdrawal's own records),
    valid for its kind's model; returns the object and the model. Anything else is a
    :class:`LocatedInputError` naming the line and the field (``bfa ingest`` and the lines
    ``bfa precheck`` reads alike)."""
    try:
        obj = loads_strict(text)
    except InputError as e:  # the parser's reason stays English (FORMAT.md §9.4)
        raise LocatedInputError.of(name, n, "line", N_("not JSON: {reason}"),
                                   reason=str(e)) from e
    if not isinstance(obj, dict):
        raise LocatedInputError.of(name, n, "record", N_("a record must be a JSON object"))
    if "withdrawn" in obj and not withdrawals:
        raise LocatedInputError.of(name, n, "withdrawn", N_(
            "only an approved withdrawal (bfa statement approve) withdraws a record; no "
            "file may"))
    try:
        model = parse_record(obj)
    except ValidationError as e:
        fld, msg, shown = _field_of(e)
        raise LocatedInputError(name, n, fld, msg, shown=shown) from e
    return obj, model


class Ingester:
    """Ingests files into one store; one instance per command."""

    def __init__(
        self,
        store: Store,
        secret: bytes,
        vouchers: VoucherStore | None,
        *,
        vault_key: VaultKey | None = None,
        reject_sink: RejectSink | None = None,
        progress: ProgressFn | None = None,
        derive: DeriverFactory | None = None,
        who: Actor | None = None,
        withdrawals: bool = False,
        bank_records: bool = False,
    ) -> None:
        self.store = store
        self.withdrawals = withdrawals
        """Whether records may carry ``withdrawn`` (an approved withdrawal's corrections,
        FORMAT.md §9.8); from a file they never may."""
        self.bank_records = bank_records or withdrawals
        """Whether records may correct what a bank-statement import made (``source``
        ``bank-statement/…``): a statement import or an approved withdrawal may, a file
        may not (FORMAT.md §9.8)."""
        self.derive = derive
        self.who = who
        """Who ingests: a batch that appends ends with a ``control.ingest`` entry naming
        them (FORMAT.md §2.5), so that nobody approves a break on a record they sent."""
        self.pseudo = Pseudonymizer(secret)
        self.vault_key = vault_key
        """Seals the clear values of personal fields (FORMAT.md §4.4); without it a batch
        whose records hold personal data is refused."""
        self.vouchers = vouchers
        self.sink = reject_sink
        self.progress = progress
        self._refused: set[tuple[str, str | None]] = set()
        self._new_files: list[Path] = []
        """Voucher files the current batch brought into the store (removed if it fails)."""
        self._unwritten: dict[tuple[str, str], bytes] = {}
        """What the last :meth:`_settle` appended: buffered, not yet in the database."""

    # -- public ---------------------------------------------------------------
    def ingest_path(self, path: Path) -> FileReport:
        # a name that is not UTF-8 is shown with \x escapes: reports, messages and the
        # reject file are UTF-8 text
        name = os.fsencode(path).decode("utf-8", "backslashreplace")
        try:
            f = path.open("rb")
        except OSError as e:
            raise InputError(_("{path}: cannot open: {error}").format(
                path=name, error=e.strerror)) from e
        with f:
            return self.ingest_stream(f, name, path.resolve().parent)

    def ingest_stream(self, stream: IO[bytes], name: str, base: Path) -> FileReport:
        """Ingest one batch atomically; raises :class:`BatchRefusedError` when refused."""
        report = FileReport(name)
        if isinstance(self.vouchers, BatchChecks):
            self.vouchers.begin_batch()
        self._refused = set()
        self._unwritten = {}
        self._new_files = []
        try:
            return self._batch(stream, name, base, report)
        except BaseException:
            # nothing of a refused batch stays: voucher files it brought are removed again
            # (batches are serialised by the writer lock, so none other can use them yet)
            for path in self._new_files:
                path.unlink(missing_ok=True)
            raise

    def _batch(self, stream: IO[bytes], name: str, base: Path, report: FileReport
               ) -> FileReport:
        with self.store.writer() as conn:
            if self.store.dialect == "postgresql":
                # A big batch grows entries inside one transaction, before any statistics
                # know it: keep the planner on the indexes for the per-chunk lookups.
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            deriver = self.derive(self.store, conn) if self.derive is not None else None
            keyring = (Keyring(self.store, self.vault_key) if self.vault_key is not None
                       else None)
            app = Appender(self.store, conn, self.pseudo, deriver, keyring)
            try:
                self._run(conn, app, stream, name, base, report)
            finally:
                app.close()
            if report.problems and self.sink is None:
                conn.rollback()
                raise BatchRefusedError(name, report.problems, report.rejected > MAX_REPORTED)
            if app.appended and self.who is not None:
                checks: dict[str, Any] = (self.vouchers.batch_members()
                          if isinstance(self.vouchers, BatchChecks) else {})
                at = now_rfc3339()
                app.append({"type": "control.ingest", "id": f"ingest-{uuid.uuid4()}",
                            **self.who.members(), "file": name[:1000],
                            "first": app.size - app.appended, "count": app.appended,
                            **checks, "at": at}, recorded_at=at, protect=False)
            app.finish()
        if report.appended >= ANALYZE_AFTER:
            self.store.analyze()
        return report

    # -- internals ------------------------------------------------------------
    def _lines(self, stream: IO[bytes]) -> Iterator[tuple[int, str | None, int]]:
        """``(line number, text, -1)``, or ``(line number, None, offset)`` for a line that
        is not UTF-8 (``offset``: its first bad byte)."""
        for n, raw in enumerate(stream, 1):
            if self.progress:
                self.progress(len(raw))
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield n, None, e.start
                continue
            yield n, text.rstrip("\r\n"), -1

    def _problem(
        self, report: FileReport, problem: LocatedInputError, text: str
    ) -> None:
        report.rejected += 1
        if len(report.problems) < MAX_REPORTED:
            report.problems.append(problem)
        if self.sink is not None:
            self.sink.reject(problem, text)

    def _parse(self, name: str, n: int, text: str, base: Path) -> _Pending:
        _obj, model = parse_line(name, n, text, withdrawals=self.withdrawals)
        record = record_payload(model)
        domain, _kind = str(record["type"]).split(".", 1)
        digest = self.pseudo.content_digest(canonicalize_plain(record))
        voucher = None
        if domain == "archive" and "file" in record:
            voucher = (base, str(record["file"]), str(record["sha256"]), int(str(record["size"])))
        corrects = record.get("corrects")
        return _Pending(
            n, text, record, domain, str(record["id"]), digest,
            str(corrects) if corrects else None, voucher,
        )

    def _run(
        self,
        conn: Connection,
        app: Appender,
        stream: IO[bytes],
        name: str,
        base: Path,
        report: FileReport,
    ) -> None:
        chunk: list[_Pending] = []
        deferred: list[_Pending] = []
        for n, text, bad in self._lines(stream):
            report.lines = n
            if text is None:
                self._problem(report, LocatedInputError.of(
                    name, n, "line", N_("not valid UTF-8 at byte {offset}"), offset=bad), "")
                continue
            if not text.strip():
                continue
            try:
                chunk.append(self._parse(name, n, text, base))
            except LocatedInputError as e:
                self._problem(report, e, text)
            if report.problems and self.sink is None and len(report.problems) >= MAX_REPORTED:
                break
            if len(chunk) >= CHUNK:
                deferred += self._settle(conn, app, chunk, name, report)
                chunk = []
        deferred += self._settle(conn, app, chunk, name, report)
        while deferred:
            before = len(deferred)
            deferred = self._settle(conn, app, deferred, name, report)
            if len(deferred) == before:
                break
        for p in deferred:
            self._problem(
                report,
                LocatedInputError.of(
                    name, p.line, "corrects",
                    N_("names no {domain} record {record} (not in the ledger, and not "
                       "appended from this batch: a rejected line is no target; send the "
                       "correction again with it once it is fixed)"),
                    domain=p.domain, record=repr(p.corrects),
                ),
                p.text,
            )

    def _settle(
        self,
        conn: Connection,
        app: Appender,
        items: list[_Pending],
        name: str,
        report: FileReport,
    ) -> list[_Pending]:
        """Append what can be appended; return items whose ``corrects`` is not yet known."""
        if not items:
            return []
        app.join()  # the connection is free again
        known = self._existing(conn, {(p.domain, p.rid) for p in items}
                               | {(p.domain, p.corrects) for p in items if p.corrects})
        # what the previous call appended was not in the database for that look-up; it
        # is written now, while this chunk is appended (on PostgreSQL on the appender's
        # worker thread, so the server works while Python does)
        known.update(self._unwritten)
        app.flush(background=True)
        waiting: list[_Pending] = []
        recorded_at = now_rfc3339()
        in_batch: dict[tuple[str, str], bytes] = {}
        appended: dict[tuple[str, str], bytes] = {}
        banked = set() if self.bank_records else self._from_statements(
            conn, {p.corrects for p in items if p.corrects and p.domain == "finance"
                   and ("finance", p.corrects) in known})
        for p in items:
            key = (p.domain, p.rid)
            prior = known.get(key, in_batch.get(key))
            if prior is not None:
                if prior == p.digest:
                    report.duplicates += 1
                elif str(p.record.get("source", "")).startswith(STATEMENT_SOURCE):
                    self._problem(report, LocatedInputError.of(
                        name, p.line, "id",
                        N_("conflict: {domain} record {record} was imported before from "
                           "another file or with other options; to import it again, withdraw "
                           "it first (bfa statement withdraw {id})"),
                        domain=p.domain, record=repr(p.rid), id=p.rid), p.text)
                else:
                    self._problem(report, LocatedInputError.of(
                        name, p.line, "id",
                        N_("conflict: {domain} record {record} was received before with "
                           "different content (in the ledger, or earlier in this file); to "
                           "change it, send a correction with 'corrects'"),
                        domain=p.domain, record=repr(p.rid),
                    ), p.text)
                continue
            if p.corrects in banked and p.domain == "finance":
                self._problem(report, LocatedInputError.of(
                    name, p.line, "corrects",
                    N_("record {record} came from a bank statement (its file is kept in the "
                       "archive): it changes only by withdrawing the statement (bfa statement "
                       "withdraw) and importing the corrected file"),
                    record=repr(p.corrects)), p.text)
                continue
            target = (p.domain, p.corrects)
            if p.corrects and target not in known and target not in in_batch and (
                target not in self._refused
            ):
                waiting.append(p)
                continue
            if p.voucher is not None and self.vouchers is not None:
                base, rel, sha256, size = p.voucher
                try:
                    # what the store says goes into the reject file, data for programs
                    # (FORMAT.md §9.4): it says it in English, whoever raises it
                    with language("en"):
                        made = self.vouchers.put(voucher_source(base, rel), sha256, size)
                    if made is not None:
                        self._new_files.append(made)
                except VoucherMismatchError as e:
                    self._problem(report, LocatedInputError(name, p.line, e.field, str(e)), p.text)
                    continue
                except BfaError as e:
                    self._problem(report, LocatedInputError(name, p.line, "file", str(e)), p.text)
                    continue
            if report.problems and self.sink is None:
                # the batch is refused anyway: keep validating, write nothing, but remember
                # the record so that corrections naming it are not reported as dangling
                self._refused.add(key)
                in_batch[key] = p.digest
                continue
            app.append(p.record, recorded_at=recorded_at, digest=p.digest)
            if p.voucher is not None and isinstance(self.vouchers, BatchChecks):
                self.vouchers.appended(p.record)
            in_batch[key] = appended[key] = p.digest
            report.appended += 1
        self._unwritten = appended
        return waiting

    def _from_statements(self, conn: Connection, ids: set[str | None]) -> set[str]:
        """Which finance records of ``ids`` a bank-statement import made (their ``source``
        is ``bank-statement/…``), read from their leaves."""
        wanted = sorted(x for x in ids if x)
        if not wanted:
            return set()
        e = s.entries.c
        return {str(rid) for rid, leaf in self.store.select_by_ids(
            conn, e.record_id, wanted, (e.record_id, e.leaf), (e.domain == "finance",))
            if str(leaf_record(bytes(leaf)).get("source", "")).startswith(STATEMENT_SOURCE)}

    def _existing(
        self, conn: Connection, keys: set[tuple[str, str | None]]
    ) -> dict[tuple[str, str], bytes]:
        by_domain: dict[str, list[str]] = {}
        for domain, rid in keys:
            if rid is not None:
                by_domain.setdefault(domain, []).append(rid)
        found: dict[tuple[str, str], bytes] = {}
        e = s.entries.c
        for domain, ids in by_domain.items():
            for rid, digest in self.store.select_by_ids(
                    conn, e.record_id, ids, (e.record_id, e.content_digest),
                    (e.domain == domain,)):
                found[(domain, rid)] = bytes(digest) if digest is not None else b""
        return found
