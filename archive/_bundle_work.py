"""What ``bfa bundle export`` keeps while it writes a bundle: on disk, not in memory.

A bundle may hold a month of a large agency (a million entries) and the reconciliation it
states is the whole ledger's, so nothing the export gathers is kept in Python objects
beyond a chunk: :class:`ExportWork` is a temporary SQLite file (no journal, no fsync:
thrown away at the end) holding

* ``roles``: every entry of the bundle and its role (``scope``, ``closure``, ``history``;
  FORMAT.md §12.2), inserted in that order, the first role given an entry kept;
* ``ids``: the record ids of the scoped entries (which breaks the bundle keeps);
* ``b`` and ``br``: every break the reconciliation reported (its JSON without workflow,
  and its records), whether the bundle keeps it, and its workflow once looked up;
* ``v``: the voucher records of the bundle by file hash;
* ``hold``: entries found while the closure is gathered, given a role at each step.

It also hands out paths for the tag files written before they join the bag
(:meth:`ExportWork.file`). :func:`json_document` writes a JSON document one item of its
long list at a time, byte for byte as :func:`json.dumps` with ``indent=2`` would.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

PAGE = 1000
"""Rows read back at a time."""


class ExportWork:
    """The export's working set (see the module docstring); a context manager that deletes
    it on leaving."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="bfa-export-")
        db = sqlite3.connect(os.path.join(self._dir.name, "work.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        for ddl in (
                "CREATE TABLE roles (seq INTEGER PRIMARY KEY, role TEXT NOT NULL)",
                "CREATE TABLE ids (id TEXT PRIMARY KEY) WITHOUT ROWID",
                "CREATE TABLE hold (seq INTEGER PRIMARY KEY)",
                "CREATE TABLE b (id TEXT PRIMARY KEY, body TEXT NOT NULL, "
                "kept INTEGER NOT NULL DEFAULT 0, workflow TEXT) WITHOUT ROWID",
                "CREATE TABLE br (id TEXT NOT NULL, record TEXT NOT NULL, "
                "PRIMARY KEY (id, record)) WITHOUT ROWID",
                "CREATE INDEX br_record ON br (record)",
                "CREATE TABLE v (sha TEXT NOT NULL, seq INTEGER NOT NULL, size INTEGER NOT "
                "NULL, record TEXT NOT NULL, PRIMARY KEY (sha, seq)) WITHOUT ROWID"):
            db.execute(ddl)
        self.db = db

    def __enter__(self) -> ExportWork:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()
        self._dir.cleanup()

    def file(self, name: str) -> Path:
        """A path in the working directory for a file written before it joins the bag."""
        return Path(self._dir.name) / name

    # --- entries and their roles -------------------------------------------------------------
    def add_roles(self, seqs: Iterable[int], role: str) -> None:
        """Give ``role`` to each of ``seqs`` that has none yet."""
        self.db.executemany("INSERT OR IGNORE INTO roles VALUES (?, ?)",
                            ((int(q), role) for q in seqs))

    def seqs(self, role: str) -> Iterator[list[int]]:
        """The entries of ``role``, in order, a page at a time."""
        for page in self.roles(role):
            yield [q for q, _role in page]

    def roles(self, role: str | None = None) -> Iterator[list[tuple[int, str]]]:
        """The entries (of ``role``, or all) and their roles, in order, a page at a time."""
        where = "" if role is None else "AND role = ?"
        args: tuple[str, ...] = () if role is None else (role,)
        last = -1
        while True:
            page = [(int(q), str(r)) for q, r in self.db.execute(
                f"SELECT seq, role FROM roles WHERE seq > ? {where} ORDER BY seq "
                f"LIMIT {PAGE}", (last, *args))]
            if not page:
                return
            yield page
            last = page[-1][0]

    def count(self, role: str | None = None) -> int:
        if role is None:
            return int(self.db.execute("SELECT count(*) FROM roles").fetchone()[0])
        return int(self.db.execute("SELECT count(*) FROM roles WHERE role = ?",
                                   (role,)).fetchone()[0])

    def first_at_or_after(self, size: int) -> int | None:
        """The first entry of the bundle at or after ``size`` (one a checkpoint of that size
        does not cover)."""
        row = self.db.execute("SELECT min(seq) FROM roles WHERE seq >= ?", (size,)).fetchone()
        return None if row[0] is None else int(row[0])

    def hold(self, seqs: Iterable[int]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO hold VALUES (?)", ((int(q),) for q in seqs))

    def promote(self, role: str) -> None:
        """Give ``role`` to each held entry that has none yet, and empty the work table."""
        self.db.execute("INSERT OR IGNORE INTO roles SELECT seq, ? FROM hold", (role,))
        self.db.execute("DELETE FROM hold")

    def add_ids(self, ids: Iterable[str]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO ids VALUES (?)", ((i,) for i in ids))

    # --- breaks ---------------------------------------------------------------------------------
    def add_breaks(self, breaks: Sequence[tuple[str, Sequence[str], Mapping[str, Any]]]) -> None:
        """Breaks as ``(id, records, JSON object)``; a break id given again replaces the one
        before (the last counts, as in a report)."""
        ids = [(bid,) for bid, _records, _body in breaks]
        self.db.executemany("DELETE FROM br WHERE id = ?", ids)
        self.db.executemany("INSERT OR REPLACE INTO b (id, body) VALUES (?, ?)", (
            (bid, json.dumps(body, ensure_ascii=False)) for bid, _records, body in breaks))
        self.db.executemany("INSERT OR IGNORE INTO br VALUES (?, ?)", (
            (bid, rid) for bid, records, _body in breaks for rid in records))

    def keep(self, named: Iterable[str]) -> int:
        """Keep the breaks that name a scoped record, and those of ``named``; how many."""
        self.db.execute("UPDATE b SET kept = 1 WHERE id IN (SELECT br.id FROM br JOIN ids "
                        "ON ids.id = br.record)")
        self.db.executemany("UPDATE b SET kept = 1 WHERE id = ?", ((i,) for i in named))
        return int(self.db.execute("SELECT count(*) FROM b WHERE kept = 1").fetchone()[0])

    def kept(self, bid: str) -> bool:
        return self.db.execute("SELECT 1 FROM b WHERE id = ? AND kept = 1",
                               (bid,)).fetchone() is not None

    def kept_ids(self) -> Iterator[list[str]]:
        """The kept breaks' ids, in order, a page at a time."""
        last = ""
        while True:
            page = [str(i) for (i,) in self.db.execute(
                f"SELECT id FROM b WHERE kept = 1 AND id > ? ORDER BY id LIMIT {PAGE}",
                (last,))]
            if not page:
                return
            yield page
            last = page[-1]

    def set_workflow(self, workflow: Mapping[str, Mapping[str, Any]]) -> None:
        self.db.executemany("UPDATE b SET workflow = ? WHERE id = ?", (
            (json.dumps(wf, ensure_ascii=False), bid) for bid, wf in workflow.items()))

    def kept_breaks(self, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """The kept breaks in id order, each with its ``workflow`` (None when the workflow
        does not know it)."""
        last = ""
        left = limit
        while left is None or left > 0:
            n = PAGE if left is None else min(PAGE, left)
            rows = self.db.execute(
                "SELECT id, body, workflow FROM b WHERE kept = 1 AND id > ? ORDER BY id "
                f"LIMIT {n}", (last,)).fetchall()
            if not rows:
                return
            for _bid, body, wf in rows:
                item: dict[str, Any] = json.loads(body)
                item["workflow"] = None if wf is None else json.loads(wf)
                yield item
            last = str(rows[-1][0])
            if left is not None:
                left -= len(rows)

    # --- vouchers -------------------------------------------------------------------------------
    def add_voucher(self, sha: str, seq: int, size: int, record: str) -> None:
        self.db.execute("INSERT INTO v VALUES (?, ?, ?, ?)", (sha, seq, size, record))

    def voucher_count(self) -> int:
        return int(self.db.execute("SELECT count(DISTINCT sha) FROM v").fetchone()[0])

    def vouchers(self, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """``{"sha256", "size", "records"}`` of each voucher file, by hash; the records in
        ledger order (the size is the first record's)."""
        last = ""
        left = limit
        while left is None or left > 0:
            n = PAGE if left is None else min(PAGE, left)
            shas = [str(x) for (x,) in self.db.execute(
                f"SELECT DISTINCT sha FROM v WHERE sha > ? ORDER BY sha LIMIT {n}", (last,))]
            if not shas:
                return
            rows = self.db.execute(
                "SELECT sha, size, record FROM v WHERE sha >= ? AND sha <= ? ORDER BY sha, seq",
                (shas[0], shas[-1])).fetchall()
            current: dict[str, Any] | None = None
            for sha, size, record in rows:
                if current is None or current["sha256"] != sha:
                    if current is not None:
                        yield current
                    current = {"sha256": str(sha), "size": int(size), "records": []}
                current["records"].append(str(record))
            if current is not None:
                yield current
            last = shas[-1]
            if left is not None:
                left -= len(shas)


def json_document(head: Mapping[str, Any], key: str, items: Iterable[Any]) -> Iterator[str]:
    """The text of ``json.dumps({**head, key: list(items)}, ensure_ascii=False, indent=2,
    sort_keys=True) + "\\n"``, exactly, with ``items`` read one at a time (the list never
    held)."""

    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)

    yield "{"
    first = True
    for k in sorted({*head, key}):
        yield ("\n" if first else ",\n") + "  " + json.dumps(k, ensure_ascii=False) + ": "
        first = False
        if k != key:
            yield dumps(head[k]).replace("\n", "\n  ")
            continue
        empty = True
        for item in items:
            yield ("[\n    " if empty else ",\n    ") + dumps(item).replace("\n", "\n    ")
            empty = False
        yield "[]" if empty else "\n  ]"
    yield "\n}\n"


__all__ = ["PAGE", "ExportWork", "json_document"]
