"""The working table ``ar_files``: every voucher record's file, by SHA-256 (FORMAT.md §8.1).

One row per ``archive`` entry (``seq``, record id, kind, ``sha256``, ``size``), brought
up to date from the entries after a watermark (``meta.archive_files_seq``) by
:func:`refresh_files`, or rebuilt from all of them (``rebuild=True``, what a full audit
does). Its index on ``sha256`` lets an audit read one slice of the hash space in order.
It is a working table the application role may write, so :func:`files_in_range` checks
every row it yields against its entry's leaf (:func:`ledger.checked_entry`): a changed
row is an :class:`~ledger.IntegrityError`; a deleted one hides its file only until the
next full audit, which reads the entries themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, Column, Connection, Index, MetaData, String, Table, select

from ledger import NAMING, IntegrityError, Store, checked_entry, entries
from schemas import gettext

metadata = MetaData(naming_convention=NAMING)

ar_files = Table(
    "ar_files",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("record_id", String(128), nullable=False),
    Column("kind", String(48), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Index("ix_ar_files_sha256", "sha256"),
)

WATERMARK = "archive_files_seq"
_CHUNK = 1000


class FileRow(NamedTuple):
    """A voucher record's file, as its entry says."""

    seq: int
    record_id: str
    kind: str
    sha256: str
    size: int


def _row_of(seq: int, record: dict[str, Any]) -> FileRow:
    return FileRow(seq, str(record["id"]), str(record["type"]).split(".", 1)[1],
                   str(record["sha256"]), int(record["size"]))


def archive_entries(conn: Connection, after: int = -1) -> Iterator[FileRow]:
    """The voucher files the ``archive`` entries after ``after`` name, each entry checked
    against its leaf, in ``seq`` order (streamed)."""
    e = entries.c
    q = (select(e.seq, e.leaf, e.entry_hash, e.record_id)
         .where(e.seq > after, e.domain == "archive").order_by(e.seq)
         .execution_options(yield_per=_CHUNK))
    for seq, leaf, h, rid in conn.execute(q):
        entry = checked_entry(int(seq), bytes(leaf), bytes(h), "archive", str(rid))
        yield _row_of(entry.seq, entry.record)


def refresh_files(store: Store, conn: Connection, *, rebuild: bool = False) -> int:
    """Bring ``ar_files`` up to date in the caller's writer transaction; returns the rows
    added. ``rebuild`` empties it and reads every archive entry again."""
    size, _ = store.head(conn)
    mark = store.get_meta(conn, WATERMARK)
    after = int(mark) if mark is not None and mark.lstrip("-").isdigit() else -1
    if rebuild or after >= size:  # a watermark beyond the ledger was not written by bfa
        conn.execute(ar_files.delete())
        after = -1
    added = 0
    batch: list[dict[str, Any]] = []
    for row in archive_entries(conn, after):
        if row.seq >= size:
            break
        batch.append(row._asdict())
        if len(batch) >= _CHUNK:
            conn.execute(ar_files.insert(), batch)
            added += len(batch)
            batch = []
    if batch:
        conn.execute(ar_files.insert(), batch)
        added += len(batch)
    store.set_meta(conn, WATERMARK, str(size - 1))
    return added


def files_in_range(conn: Connection, lo: str, hi: str | None) -> Iterator[FileRow]:
    """The rows with ``lo <= sha256 < hi`` (``hi`` None: no upper bound), ordered by
    ``sha256`` then ``seq``, each checked against its entry (module docstring)."""
    f = ar_files.c
    q = select(f.seq, f.record_id, f.kind, f.sha256, f.size).where(f.sha256 >= lo)
    if hi is not None:
        q = q.where(f.sha256 < hi)
    q = q.order_by(f.sha256, f.seq).execution_options(yield_per=_CHUNK)
    pending: list[FileRow] = []
    for r in conn.execute(q):
        pending.append(FileRow(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4])))
        if len(pending) >= _CHUNK:
            yield from _checked(conn, pending)
            pending = []
    yield from _checked(conn, pending)


def _checked(conn: Connection, rows: list[FileRow]) -> Iterator[FileRow]:
    if not rows:
        return
    e = entries.c
    found = {int(seq): (bytes(leaf), bytes(h), str(d), str(rid)) for seq, leaf, h, d, rid in
             conn.execute(select(e.seq, e.leaf, e.entry_hash, e.domain, e.record_id)
                          .where(e.seq.in_([r.seq for r in rows])))}
    for row in rows:
        got = found.get(row.seq)
        if got is None or got[2] != "archive":
            raise IntegrityError(gettext(
                "ar_files names entry {seq} as voucher {id}, but the ledger holds no archive "
                "entry there; run a full 'bfa archive audit', which rebuilds the table from the "
                "entries, and 'bfa verify'").format(seq=row.seq, id=repr(row.record_id)))
        entry = checked_entry(row.seq, got[0], got[1], "archive", got[3])
        if _row_of(entry.seq, entry.record) != row:
            raise IntegrityError(gettext(
                "ar_files row of entry {seq} does not match the entry (working table changed); "
                "run a full 'bfa archive audit', which rebuilds it from the entries").format(
                    seq=row.seq))
        yield row
