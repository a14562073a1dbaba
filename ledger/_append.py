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
        self.store.copy_rows(self.conn, "entries", ENTRY_COLUMNS, self._entries)
        self.store.copy_rows(self.conn, "tree_nodes", NODE_COLUMNS, self._nodes)
        self.store.copy_rows(self.conn, "vault", VAULT_COLUMNS, self._vault)
        self._entries.clear()
        self._nodes.clear()
        self._vault.clear()
        if self.deriver is not None:
            self.deriver.flush(self.conn)

    def finish(self) -> None:
        """Write everything buffered and let the deriver settle (before the commit)."""
        self.flush()
        if self.deriver is not None:
            self.deriver.finish(self.conn, self.range.size)
