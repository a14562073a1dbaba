"""Appending entries: the one place that turns records into chained, Merkle-hashed rows.

An :class:`Appender` lives inside one writer transaction. It reads the chain head
and the Merkle frontier once, then turns each record into leaf bytes (``_entry``),
extends the chain and the compact range, and buffers the rows it writes in bulk:
entries, the tree nodes each append completes (RFC 9162 complete subtrees,
level >= 1) and vault rows for personal data. An optional :class:`Deriver` sees each
appended payload in the same transaction (the reconciler keeps its derived tables
current that way, ADR 0018); ``ledger`` only defines the protocol.

On PostgreSQL the ingest writes each chunk on a worker thread while it appends the
next (``flush(background=True)``, ADR 0019): the connection is the worker's until
:meth:`Appender.join`, the buffers and the deriver's rows are handed over, never shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol

from sqlalchemy import Connection

from ledger._entry import ZERO_HASH, encode_leaf, entry_hash
from ledger._errors import IntegrityError
from ledger._merkle import CompactRange
from ledger._privacy import Pseudonymizer, VaultRow
from ledger._store import Store
from ledger._vault import Keyring
from schemas import gettext as _

ENTRY_COLUMNS = ("seq", "domain", "kind", "record_id", "leaf", "entry_hash", "content_digest")
NODE_COLUMNS = ("level", "idx", "hash")
VAULT_COLUMNS = ("domain", "record_id", "field", "subject", "salt", "sealed")
FLUSH_ROWS = 5000
"""Entries buffered before they (with their nodes, vault rows and derived rows) are written."""


DerivedWriter = Callable[[Connection], None]
"""Writes rows a :class:`Deriver` detached (:meth:`Deriver.detach`)."""


class Deriver(Protocol):
    """Keeps tables derived from the entries current as entries are appended.

    Lives inside the appending transaction, so derived rows commit or roll back with
    the entries they come from.
    """

    def add(self, seq: int, payload: Mapping[str, Any], entry_hash: bytes) -> None:
        """Note one appended entry: its sequence number, hashed payload and entry hash."""

    def detach(self) -> DerivedWriter:
        """Hand over what was noted so far: the rows are fixed now, and the returned
        function writes them (inside the caller's transaction, perhaps on the
        appender's worker thread while later entries are noted)."""

    def finish(self, conn: Connection, size: int) -> None:
        """Write the rest and settle; ``size`` is the ledger's size after the appends."""


DeriverFactory = Callable[[Store, Connection], Deriver]
"""Makes a :class:`Deriver` for one writer transaction (``Ingester(derive=...)``)."""


def now_rfc3339() -> str:
    """The current time in UTC with an explicit offset, microsecond precision."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
"""The agency's day and clock: UTC+08:00, no daylight saving."""


def local_time(timestamp: object) -> str:
    """An RFC 3339 time as people here read it: Asia/Shanghai, to the second
    (``2026-11-30 09:15:02+08:00``); anything that is not one with an offset, as text."""
    text = str(timestamp or "")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return text
    if when.tzinfo is None:
        return text
    return when.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S+08:00")


class Appender:
    """Appends records to the ledger inside one writer transaction."""

    def __init__(self, store: Store, conn: Connection, pseudonymizer: Pseudonymizer | None,
                 deriver: Deriver | None = None, keyring: Keyring | None = None) -> None:
        """``pseudonymizer`` may be None when every record is appended with
        ``protect=False`` (control records need no ledger secret); ``keyring`` seals the
        clear values of personal fields (FORMAT.md §4.4), needed when any record has one."""
        self.keyring = keyring
        self.store = store
        self.deriver = deriver
        self.conn = conn
        self.pseudo = pseudonymizer
        size, last = store.head(conn)
        keys = CompactRange.frontier_nodes(size)
        nodes = store.get_nodes(conn, keys)
        missing = [k for k in keys if k not in nodes]
        if missing:
            raise IntegrityError(
                _("tree nodes {nodes} of the ledger's right edge are missing; run 'bfa verify'")
                .format(nodes=missing[:3])
            )
        self.range = CompactRange(size, [nodes[k] for k in keys])
        self.prev = last if last is not None else ZERO_HASH
        self._entries: list[tuple[Any, ...]] = []
        self._nodes: list[tuple[Any, ...]] = []
        self._vault: list[tuple[Any, ...]] = []
        self.appended = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None

    @property
    def size(self) -> int:
        return self.range.size

    def append(
        self,
        record: dict[str, Any],
        *,
        recorded_at: str,
        digest: bytes | None = None,
        protect: bool = True,
    ) -> int:
        """Append one record (clear personal data allowed); returns its sequence number."""
        payload: dict[str, Any]
        rows: list[VaultRow]
        if protect:
            if self.pseudo is None:
                raise ValueError("an Appender without a pseudonymizer appends control records only")
            payload, rows = self.pseudo.protect(record)
        else:
            payload, rows = record, []
        seq = self.range.size
        leaf = encode_leaf(seq, self.prev, payload, recorded_at)
        h = entry_hash(leaf)
        domain, kind = str(record["type"]).split(".", 1)
        rid = str(record["id"])
        self._entries.append((seq, domain, kind, rid, leaf, h, digest))
        self._nodes += self.range.append(h)
        if rows and self.keyring is None:
            raise ValueError("personal data is sealed with the vault key: an Appender "
                             "without a keyring appends records without personal fields only")
        for r in rows:
            self._vault.append((domain, rid, *r))  # sealed in _write: VAULT_COLUMNS
        if self.deriver is not None:
            self.deriver.add(seq, payload, h)
        self.prev = h
        self.appended += 1
        if len(self._entries) >= FLUSH_ROWS:
            self.flush()
        return seq

    def flush(self, *, background: bool = False) -> None:
        """Write buffered rows (still inside the caller's transaction).

        ``background=True`` (PostgreSQL; elsewhere it writes at once): the rows go to
        the database on a worker thread and this returns at once, so the server works
        on them while Python prepares the next ones (two processes, two cores). The
        caller may go on appending, but must :meth:`join` before it uses the
        connection itself; :meth:`flush` and :meth:`finish` do.
        """
        self.join()
        rows = (self._entries, self._nodes, self._vault)
        self._entries, self._nodes, self._vault = [], [], []
        derived = self.deriver.detach() if self.deriver is not None else None
        if not background or self.store.dialect != "postgresql":
            self._write(*rows, derived)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="bfa-append")
        self._pending = self._pool.submit(self._write, *rows, derived)

    def join(self) -> None:
        """Wait for a background write; re-raise what it raised."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        """Wait for a background write (its error, if any, is the caller's to see)
        and stop the worker thread."""
        try:
            self.join()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None

    def _write(self, entries: list[tuple[Any, ...]], nodes: list[tuple[Any, ...]],
               vault: list[tuple[Any, ...]], derived: DerivedWriter | None) -> None:
        self.store.copy_rows(self.conn, "entries", ENTRY_COLUMNS, entries)
        self.store.copy_rows(self.conn, "tree_nodes", NODE_COLUMNS, nodes)
        if vault:
            assert self.keyring is not None
            # the data keys are looked up (and new ones written) on this connection, so on
            # the worker thread with the rest of the chunk
            self.store.copy_rows(self.conn, "vault", VAULT_COLUMNS,
                                 self.keyring.seal_rows(self.conn, vault))
        if derived is not None:
            derived(self.conn)

    def finish(self) -> None:
        """Write everything buffered and let the deriver settle (before the commit)."""
        self.flush()
        if self.deriver is not None:
            self.deriver.finish(self.conn, self.range.size)
