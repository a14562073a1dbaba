"""The insider of the brief: a connection with exactly the application role's rights.

On PostgreSQL that is a role given ``bfa db grant``'s rights (``SET ROLE`` inside the
transaction); on SQLite, a plain connection to the file with the append-only triggers in
place (anyone who may write the file may do as much). Attacks written with it are what
the application's own database role could do if it turned hostile.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from ledger import DUTIES

if TYPE_CHECKING:
    from ledger import Ledger


@contextmanager
def app_role(led: Ledger) -> Iterator[Connection]:
    """One committed transaction with the rights of an application role holding every duty
    (the most `bfa db grant` gives a role that is not the owner)."""
    if led.store.dialect != "postgresql":
        with led.store.engine.connect() as conn, conn.begin():
            yield conn
        return
    role = f"bfa_app_{uuid.uuid4().hex[:8]}"
    with led.store.engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
    try:
        led.grant(role, DUTIES, "dba")
        with led.store.engine.connect() as conn, conn.begin():
            conn.execute(text(f'SET LOCAL ROLE "{role}"'))
            yield conn
    finally:
        with led.store.engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def append_raw(conn: Connection, records: list[dict[str, Any]],
               forge: dict[tuple[int, int], bytes] | None = None,
               index: dict[str, str] | None = None) -> list[bytes]:
    """Append ``records`` as well-chained entries with INSERTs only, writing the tree nodes
    they complete (``index`` overrides the ``domain`` and ``kind`` columns of every row:
    index columns that lie about the leaf); ``forge`` replaces the hash of a node (the
    highest one an entry completes) and everything above it is computed from the forgery
    (the attack). Returns the entry hashes."""
    from ledger import encode_leaf
    from ledger._merkle import CompactRange

    head = conn.execute(text("SELECT seq, entry_hash FROM entries ORDER BY seq DESC LIMIT 1")
                        ).first()
    size = 0 if head is None else int(head[0]) + 1
    prev = b"\x00" * 32 if head is None else bytes(head[1])
    keys = CompactRange.frontier_nodes(size)
    rows = {(int(lv), int(ix)): bytes(h) for lv, ix, h in conn.execute(
        text("SELECT level, idx, hash FROM tree_nodes"))}
    rows.update({(0, int(s)): bytes(h) for s, h in conn.execute(
        text("SELECT seq, entry_hash FROM entries"))})
    crange = CompactRange(size, [rows[k] for k in keys])
    hashes = []
    for i, rec in enumerate(records):
        seq = size + i
        leaf = encode_leaf(seq, prev, rec, "2026-11-23T08:00:00.000000+00:00")
        h = hashlib.sha256(b"\x00" + leaf).digest()
        kind = rec["type"].split(".", 1)
        cols = {"d": kind[0], "k": kind[1], **{k[0]: v for k, v in (index or {}).items()}}
        conn.execute(text("INSERT INTO entries (seq, domain, kind, record_id, leaf, entry_hash) "
                          "VALUES (:s, :d, :k, :r, :l, :h)"),
                     {"s": seq, **cols, "r": rec["id"], "l": leaf, "h": h})
        done = crange.append(h)
        if done and (done[-1][0], done[-1][1]) in (forge or {}):
            # the forged node replaces the real one in the frontier, so every node and
            # root above it commits to the forgery, as a careful insider would make it
            level, idx, _ = done[-1]
            done[-1] = (level, idx, (forge or {})[(level, idx)])
            crange = CompactRange(crange.size, [*crange.frontier[:-1], done[-1][2]])
        for level, idx, nh in done:
            conn.execute(text("INSERT INTO tree_nodes (level, idx, hash) VALUES (:a, :b, :c)"),
                         {"a": level, "b": idx, "c": nh})
        prev = h
        hashes.append(h)
    return hashes
