"""Appending entries: the one place that turns records into chained, Merkle-hashed rows.

An :class:`Appender` lives inside one writer transaction. It reads the chain head
and the Merkle frontier once, then turns each record into leaf bytes (``_entry``),
extends the chain and the compact range, and buffers the rows it writes in bulk:
entries, the tree nodes each append completes (RFC 9162 complete subtrees,
level >= 1) and vault rows for personal data. An optional :class:`Deriver` sees each
appended payload in the same transaction (the reconciler keeps its derived tables
current that way, ADR 0018); ``ledger`` only defines the protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection

from ledger._entry import ZERO_HASH, encode_leaf, entry_hash
from ledger._errors import IntegrityError
from ledger._merkle import CompactRange
from ledger._privacy import Pseudonymizer, VaultRow
from ledger._store import Store

ENTRY_COLUMNS = ("seq", "domain", "kind", "record_id", "leaf", "entry_hash", "content_digest")
NODE_COLUMNS = ("level", "idx", "hash")
VAULT_COLUMNS = ("domain", "record_id", "field", "subject", "salt", "clear_value")
FLUSH_ROWS = 5000
"""Entries buffered before they (with their nodes, vault rows and derived rows) are written."""


class Deriver(Protocol):
    """Keeps tables derived from the entries current as entries are appended.

    Lives inside the appending transaction, so derived rows commit or roll back with
    the entries they come from.
    """

    def add(self, seq: int, payload: Mapping[str, Any], entry_hash: bytes) -> None:
        """Note one appended entry: its sequence number, hashed payload and entry hash."""

    def flush(self, conn: Connection) -> None:
        """Write what was noted so far (still inside the caller's transaction)."""

    def finish(self, conn: Connection, size: int) -> None:
        """Write the rest and settle; ``size`` is the ledger's size after the appends."""


DeriverFactory = Callable[[Store, Connection], Deriver]
"""Makes a :class:`Deriver` for one writer transaction (``Ingester(derive=...)``)."""


def now_rfc3339() -> str:
    """The current time in UTC with an explicit offset, microsecond precision."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Appender:
    """Appends records to the ledger inside one writer transaction."""

    def __init__(self, store: Store, conn: Connection, pseudonymizer: Pseudonymizer,
                 deriver: Deriver | None = None) -> None:
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
                f"tree nodes {missing[:3]} of the ledger's right edge are missing; run 'bfa verify'"
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
        if self._pending is not None:
            self.join()  # the deriver's buffers may be in use by the background write
        payload: dict[str, Any]
        rows: list[VaultRow]
        if protect:
            payload, rows = self.pseudo.protect(record)
        else:
            payload, rows = record, []
        seq = self.range.size
        leaf = encode_leaf(seq, self.prev, payload, recorded_at)
        h = entry_hash(leaf)
        domain, kind = str(record["type"]).split(".", 1)
        rid = str(record["id"])
        self._entries.append((seq, domain, kind, rid, leaf, h, digest))
        for level, idx, node in self.range.append(h):
            self._nodes.append((level, idx, node))
        for r in rows:
            self._vault.append((domain, rid, r.field, r.subject, r.salt, r.clear))
        if self.deriver is not None:
            self.deriver.add(seq, payload, h)
        self.prev = h
        self.appended += 1
        if len(self._entries) >= FLUSH_ROWS:
            self.flush()
        return seq

    def flush(self) -> None:
        """Write buffered rows (still inside the caller's transaction)."""
        self.join()
        self._write(self._entries, self._nodes, self._vault)
        self._entries, self._nodes, self._vault = [], [], []

    def flush_background(self) -> None:
        """Start writing buffered rows on a worker thread and return at once.

        The next use of the connection (:meth:`append`, :meth:`flush`, :meth:`join`)
        waits for it, so the caller may do anything meanwhile except touch ``conn``.
        On PostgreSQL the server then works on the rows while Python prepares the
        next ones (two processes, two cores).
        """
        self.join()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="bfa-append")
        e, n, v = self._entries, self._nodes, self._vault
        self._entries, self._nodes, self._vault = [], [], []
        self._pending = self._pool.submit(self._write, e, n, v)

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
               vault: list[tuple[Any, ...]]) -> None:
        self.store.copy_rows(self.conn, "entries", ENTRY_COLUMNS, entries)
        self.store.copy_rows(self.conn, "tree_nodes", NODE_COLUMNS, nodes)
        self.store.copy_rows(self.conn, "vault", VAULT_COLUMNS, vault)
        if self.deriver is not None:
            self.deriver.flush(self.conn)

    def finish(self) -> None:
        """Write everything buffered and let the deriver settle (before the commit)."""
        self.flush()
        if self.deriver is not None:
            self.deriver.finish(self.conn, self.range.size)
