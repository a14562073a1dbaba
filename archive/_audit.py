"""Fixity audit and restore of the voucher store (``bfa archive audit``, ``restore``).

An audit covers one slice of the hash space (FORMAT.md §11.1): ``start`` and
``length`` over the first 32 bits of a file's SHA-256, wrapping — the whole space for a
full audit, ``length = ⌈2³² · percent / 100⌉`` from where the last audit ended for a
sample, so that consecutive samples sweep the whole store (the nightly's
``--fixity-days 30`` re-reads every file within 30 nights). It merges, in hash order,
the files the ledger names in that slice (``ar_files``, rebuilt from the entries for a
full audit, each row checked against its entry otherwise) with the files the store
holds there, re-hashes every file found, and reports it:

- *changed*: its bytes hash to something else, or its size differs;
- *missing*: named by a record, absent from the store;
- *untracked*: in the store, named by no record (a file put there by hand, or left by an
  ingest killed before it committed).

Each audit appends one ``control.fixity`` entry (scope, counts, failing files with the
records naming them), so the audit trail is in the ledger and the reconciler's
``FIXITY_FAILURE`` breaks come from it (``reconcile.matching._archive``). ``restore``
puts a file back only when its bytes hash to what a record says, and appends a
``control.fixity`` ``restore`` entry.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from archive._files import FileRow, ar_files, files_in_range, refresh_files
from archive._retention import disposed_files
from archive._store import FileStore
from ledger import (
    InputError,
    Ledger,
    VoucherMismatchError,
    append_control,
    latest_numbered,
    now_rfc3339,
    read_entries,
)
from reconcile import SPACE, in_scope
from schemas import gettext as _

PREFIX = "fixity-"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX2 = re.compile(r"[0-9a-f]{2}")
_BATCH = 32
_WORKERS = 2


@dataclass(frozen=True, slots=True)
class FileProblem:
    """A failing file: its hash, what is wrong, and the records that name it."""

    sha256: str
    state: str
    records: tuple[str, ...] = ()
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sha256": self.sha256, "records": list(self.records)}
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass
class AuditResult:
    """What one audit read and found; ``problems`` decides the exit code (0 or 1)."""

    id: str = ""
    start: int = 0
    length: int = SPACE
    files: int = 0
    bytes: int = 0
    changed: list[FileProblem] = field(default_factory=list)
    missing: list[FileProblem] = field(default_factory=list)
    untracked: list[FileProblem] = field(default_factory=list)
    disposed: list[FileProblem] = field(default_factory=list)
    """Missing because a disposal deleted them (FORMAT.md §11.3): not a problem."""
    at: str = ""

    @property
    def full(self) -> bool:
        return self.length >= SPACE

    @property
    def problems(self) -> int:
        return len(self.changed) + len(self.missing) + len(self.untracked)

    @property
    def percent(self) -> str:
        """The share of the hash space covered, as people read it."""
        return "100" if self.full else f"{Decimal(self.length * 100) / SPACE:.2f}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "scope": {"start": self.start, "length": self.length,
                                         "percent": self.percent},
                "files": self.files, "bytes": self.bytes,
                "changed": [p.to_json() for p in self.changed],
                "missing": [p.to_json() for p in self.missing],
                "untracked": [p.sha256 for p in self.untracked],
                "disposed": [p.to_json() for p in self.disposed],
                "problems": self.problems, "at": self.at}


def _ranges(start: int, length: int) -> list[tuple[str, str | None]]:
    """The ``sha256`` text ranges of a scope (hex compares like the number it spells)."""
    if length >= SPACE:
        return [("", None)]
    end = start + length
    if end <= SPACE:
        return [(f"{start:08x}", f"{end:08x}" if end < SPACE else None)]
    return [(f"{start:08x}", None), ("", f"{end - SPACE:08x}")]


def _stored(store: FileStore, start: int, length: int,
            result: AuditResult) -> Iterator[tuple[str, Path]]:
    """The files under the store's hash folders inside the scope, in name order. Names
    that are no SHA-256 (anywhere under ``sha256/``) are untracked; a full audit, or a
    sample that starts the hash space, reports them in ``result`` directly."""
    base = store.root / "sha256"
    if not base.is_dir():
        return
    subs = sorted(os.listdir(base))
    for lo, hi in _ranges(start, length):
        strays = lo == ""
        for sub in subs:
            folder = base / sub
            if not _HEX2.fullmatch(sub) or not folder.is_dir() or folder.is_symlink():
                if strays:
                    result.untracked.append(FileProblem(sub, "untracked"))
                continue
            if sub < lo[:2] or (hi is not None and sub > hi[:2]):
                continue
            for name in sorted(os.listdir(folder)):
                if name.startswith(".incoming-"):
                    continue  # an ingest at work (or killed): not a stored file yet
                if not _HEX64.fullmatch(name) or name[:2] != sub:
                    if strays:
                        result.untracked.append(FileProblem(f"{sub}/{name}", "untracked"))
                    continue
                if name < lo or (hi is not None and name >= hi):
                    continue
                yield name, folder / name


def _known(conn: Connection, start: int, length: int) -> Iterator[tuple[str, list[FileRow]]]:
    """The files the ledger names inside the scope, grouped by hash, in hash order."""
    for lo, hi in _ranges(start, length):
        group: list[FileRow] = []
        for row in files_in_range(conn, lo, hi):
            if group and group[0].sha256 != row.sha256:
                yield group[0].sha256, group
                group = []
            group.append(row)
        if group:
            yield group[0].sha256, group


def _hash(path: Path) -> tuple[str, int] | None:
    """SHA-256 and size of the regular file ``path``; None if it is absent. Anything but a
    regular file (a FIFO would block) hashes to a marker no record holds."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as e:  # a symbolic link (ELOOP), unreadable ...
        return f"unreadable: {e.strerror}", -1
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "not a regular file", -1
        os.set_blocking(fd, True)
        digest = hashlib.file_digest(f, "sha256")
        return digest.hexdigest(), f.tell()


def audit(ledger: Ledger, store: FileStore, *, percent: Decimal | None = None,
          label: str | None = None,
          progress: Callable[[int], Callable[[int], None] | None] | None = None
          ) -> AuditResult:
    """Audit the store (whole, or a ``percent`` sample continuing the rotation); appends
    the ``control.fixity`` entry and returns what was found. ``progress``, when given, is
    called once with the bytes the ledger's records in the scope add up to and returns a
    function called with the bytes of each file hashed (or None)."""
    full = percent is None or percent >= 100
    with ledger.store.writer() as conn:
        refresh_files(ledger.store, conn, rebuild=full)
        last = _last_audit(ledger, conn)
    start = 0 if full or last is None else _end_of(last)
    length = SPACE if full else max(1, math.ceil(SPACE * Decimal(percent or 0) / 100))
    result = AuditResult(start=start, length=min(length, SPACE))
    with ledger.store.reader() as conn, ThreadPoolExecutor(_WORKERS) as pool:
        tick = progress(planned_bytes(conn, start, length)) if progress is not None else None
        gone = disposed_files(conn)
        work: list[tuple[str, list[FileRow], Path]] = []

        def drain() -> None:
            for (sha, rows, _p), got in zip(work, pool.map(lambda w: _hash(w[2]), work),
                                            strict=True):
                records = tuple(sorted({r.record_id for r in rows}))
                size = rows[0].size
                if got is None:
                    if sha in gone and max(r.seq for r in rows) < gone[sha]:
                        result.disposed.append(FileProblem(sha, "disposed", records))
                    else:
                        result.missing.append(FileProblem(sha, "missing", records))
                    continue
                result.files += 1
                result.bytes += max(got[1], 0)
                if tick is not None:
                    tick(max(got[1], 0))
                if got != (sha, size):
                    detail = (got[0] if got[1] < 0 else f"hashes to {got[0]}" if got[0] != sha
                              else f"has {got[1]} bytes, the record says {size}")
                    result.changed.append(FileProblem(sha, "changed", records, detail))
            work.clear()

        for sha, rows, path in _merge(_known(conn, start, length),
                                      _stored(store, start, length, result), store, result):
            work.append((sha, rows, path))
            if len(work) >= _BATCH:
                drain()
        drain()
    with ledger.store.writer() as conn:
        _record(ledger, conn, result, label)
    return result


def planned_bytes(conn: Connection, start: int, length: int) -> int:
    """What the files the ledger names in a scope add up to (for a progress bar)."""
    f = ar_files.c
    total = 0
    for lo, hi in _ranges(start, length):
        q = select(func.coalesce(func.sum(f.size), 0)).where(f.sha256 >= lo)
        if hi is not None:
            q = q.where(f.sha256 < hi)
        total += int(conn.execute(q).scalar_one())
    return total


def _merge(known: Iterator[tuple[str, list[FileRow]]], stored: Iterator[tuple[str, Path]],
           store: FileStore, result: AuditResult
           ) -> Iterator[tuple[str, list[FileRow], Path]]:
    """Files to hash, as ``(sha256, rows, path)``; untracked ones noted in ``result``."""
    k = next(known, None)
    s = next(stored, None)
    while k is not None or s is not None:
        if s is not None and (k is None or s[0] < k[0]):
            result.untracked.append(FileProblem(s[0], "untracked"))
            s = next(stored, None)
        elif k is not None and (s is None or k[0] < s[0]):
            yield k[0], k[1], store.path_of(k[0])  # absent: hashing it says missing
            k = next(known, None)
        else:
            assert k is not None and s is not None
            yield k[0], k[1], s[1]
            k, s = next(known, None), next(stored, None)


def _last_audit(ledger: Ledger, conn: Connection) -> dict[str, Any] | None:
    """The latest ``control.fixity`` audit (restores in between are skipped)."""
    entry = latest_numbered(ledger.store, conn, "control", PREFIX)
    while entry is not None and entry.record.get("action") != "audit":
        n = int(entry.record["run"]) - 1
        if n < 1:
            return None
        entry = read_entries(ledger.store, conn, "control", [f"{PREFIX}{n}"]).get(f"{PREFIX}{n}")
    return None if entry is None else entry.record


def _end_of(rec: dict[str, Any]) -> int:
    scope = rec.get("scope") or {}
    return (int(scope.get("start", 0)) + int(scope.get("length", 0))) % SPACE


def _next_run(ledger: Ledger, conn: Connection) -> int:
    latest = latest_numbered(ledger.store, conn, "control", PREFIX)
    return 1 if latest is None else int(latest.record["run"]) + 1


def _record(ledger: Ledger, conn: Connection, result: AuditResult, label: str | None) -> None:
    n = _next_run(ledger, conn)
    result.id, result.at = f"{PREFIX}{n}", now_rfc3339()
    append_control(ledger.store, conn, [{
        "type": "control.fixity", "id": result.id, "run": n, **ledger.actor(label).members(),
        "action": "audit", "scope": {"start": result.start, "length": result.length},
        "files": result.files, "bytes": result.bytes,
        "changed": [p.to_json() for p in result.changed],
        "missing": [p.to_json() for p in result.missing],
        "untracked": [p.sha256 for p in result.untracked], "at": result.at}])


@dataclass(frozen=True, slots=True)
class Restored:
    """A file put back (or found intact already) by ``restore``."""

    sha256: str
    records: tuple[str, ...]
    replaced: bool
    """False when the store held the right bytes already (nothing written, no entry)."""
    id: str = ""


def restore(ledger: Ledger, store: FileStore, source: Path,
            label: str | None = None) -> Restored:
    """Put ``source`` back into the store if its bytes hash to a file a voucher record
    names (FORMAT.md §11.1); else :class:`~ledger.InputError`. Appends a
    ``control.fixity`` ``restore`` entry when it wrote the file."""
    got = _hash_source(source)
    sha, size = got
    with ledger.store.writer() as conn:
        refresh_files(ledger.store, conn)
        rows = [r for r in files_in_range(conn, sha, _after(sha)) if r.sha256 == sha]
        if not rows:
            raise InputError(_(
                "{path}: no voucher record names a file with these bytes (sha256 {sha256}); "
                "only the exact bytes a record was ingested with can be restored").format(
                    path=source, sha256=sha))
        if rows[0].size != size:
            raise InputError(_("{path}: has {size} bytes, the record says {recorded}").format(
                path=source, size=size, recorded=rows[0].size))
        records = tuple(sorted({r.record_id for r in rows}))
        current = _hash(store.path_of(sha))
        if current == (sha, size):
            return Restored(sha, records, False)
        try:
            store.put(source, sha, size)
        except VoucherMismatchError as e:
            raise InputError(str(e)) from e
        n = _next_run(ledger, conn)
        rid = f"{PREFIX}{n}"
        append_control(ledger.store, conn, [{
            "type": "control.fixity", "id": rid, "run": n, **ledger.actor(label).members(),
            "action": "restore", "sha256": sha, "records": list(records), "at": now_rfc3339()}])
    return Restored(sha, records, True, rid)


def _after(sha: str) -> str:
    """The smallest text above every string that starts with ``sha``."""
    return sha + "g"


def _hash_source(source: Path) -> tuple[str, int]:
    try:
        got = _hash(source)
    except IsADirectoryError as e:
        raise InputError(_("{path}: is a directory; name the voucher files").format(
            path=source)) from e
    except OSError as e:
        raise InputError(_("{path}: cannot read: {error}").format(
            path=source, error=e.strerror)) from e
    if got is None:
        raise InputError(_("{path}: does not exist").format(path=source))
    return got


__all__ = ["AuditResult", "FileProblem", "Restored", "audit", "in_scope", "restore"]
