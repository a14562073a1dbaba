"""Benchmark 2, verify: the chain pass and the derived pass against a raw read-and-hash.

On the ledger of benchmark 1 (set-up, untimed: a checkpoint is signed and, on
PostgreSQL, ``ANALYZE`` runs, as autovacuum would shortly after a bulk load):

- ``verify/<backend>``: ``Ledger.verify(derived=False)`` (chain, every entry hash,
  every checkpoint's signature and root). Baseline: read the same rows the
  fastest raw way — PostgreSQL ``COPY (SELECT seq, leaf, entry_hash FROM entries
  ORDER BY seq) TO STDOUT (FORMAT BINARY)`` through psycopg ``copy.rows()`` with
  ``set_types``; SQLite a plain ``SELECT`` with ``fetchmany`` — computing one
  chained SHA-256 per row, ``h = sha256(prev + leaf)``. Target ratio >= 0.5.
- ``verify-derived/<backend>``: the derived pass alone (``ledger._verify._derived_pass``:
  entries' columns agree with their leaves, stored tree nodes agree with a
  rebuilt tree). Baseline: a raw read of ``(seq, domain, kind, record_id, leaf)``
  and of all of ``tree_nodes``, with one ``json.loads`` per leaf body (the least
  work that could compare columns with leaves). No target; it shows the cost.

Each baseline runs before and after ours; the faster run counts.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from typing import Any

import psycopg

from bench._env import Env, LedgerHandle
from bench._report import Result, fmt_count, log, time_result
from ledger._entry import HEADER_SIZE
from ledger._verify import VerifyResult, _derived_pass

TARGET = 0.5
_CHAIN_SQL = "SELECT seq, leaf, entry_hash FROM entries ORDER BY seq"
_DERIVED_SQL = "SELECT seq, domain, kind, record_id, leaf FROM entries ORDER BY seq"
_NODES_SQL = "SELECT level, idx, hash FROM tree_nodes ORDER BY level, idx"


def baseline_chain(handle: LedgerHandle) -> tuple[float, int]:
    """(seconds, rows): fastest raw read of every entry plus one chained SHA-256 per row."""
    sha256 = hashlib.sha256
    prev = bytes(32)
    n = 0
    t0 = time.perf_counter()
    if handle.backend == "postgresql":
        with psycopg.connect(handle.url) as conn, conn.cursor() as cur, cur.copy(
                f"COPY ({_CHAIN_SQL}) TO STDOUT (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "bytea", "bytea"])
            for _seq, leaf, _stored in cp.rows():
                prev = sha256(prev + leaf).digest()
                n += 1
    else:
        lite = sqlite3.connect(handle.sqlite_path)
        try:
            lcur = lite.execute(_CHAIN_SQL)
            while rows := lcur.fetchmany(10_000):
                for _seq, leaf, _stored in rows:
                    prev = sha256(prev + leaf).digest()
                    n += 1
        finally:
            lite.close()
    return time.perf_counter() - t0, n


def baseline_derived(handle: LedgerHandle) -> tuple[float, int]:
    """(seconds, rows): raw read of entries' columns and leaves (json.loads each) and nodes."""
    loads = json.loads
    n = 0
    t0 = time.perf_counter()
    if handle.backend == "postgresql":
        with psycopg.connect(handle.url) as conn, conn.cursor() as cur:
            with cur.copy(f"COPY ({_DERIVED_SQL}) TO STDOUT (FORMAT BINARY)") as cp:
                cp.set_types(["int8", "text", "text", "text", "bytea"])
                for row in cp.rows():
                    loads(row[4][HEADER_SIZE:])
                    n += 1
            with cur.copy(f"COPY ({_NODES_SQL}) TO STDOUT (FORMAT BINARY)") as cp:
                cp.set_types(["int2", "int8", "bytea"])
                for _ in cp.rows():
                    pass
    else:
        lite = sqlite3.connect(handle.sqlite_path)
        try:
            lcur = lite.execute(_DERIVED_SQL)
            while rows := lcur.fetchmany(10_000):
                for row in rows:
                    loads(row[4][HEADER_SIZE:])
                    n += 1
            lcur = lite.execute(_NODES_SQL)
            while lcur.fetchmany(10_000):
                pass
        finally:
            lite.close()
    return time.perf_counter() - t0, n


def _twice(what: str, fn: Any, handle: LedgerHandle) -> tuple[float, float]:
    t, n = fn(handle)
    if n != handle.entries:
        raise RuntimeError(f"{what}: baseline read {n} rows, the ledger holds {handle.entries}")
    log(f"{what}: baseline took {t:.2f} s")
    return t, n


def run(env: Env, backend: str) -> list[Result]:
    """Chain pass and derived pass on the benchmark ledger, each beside its raw baseline."""
    handle = env.main_ledger(backend)
    handle.prepare()
    n = handle.entries
    label = "COPY+sha256" if backend == "postgresql" else "SELECT+sha256"

    log(f"verify/{backend}: baseline {label} (run 1 of 2)")
    b1, _ = _twice(f"verify/{backend}", baseline_chain, handle)
    log(f"verify/{backend}: ours, verify(derived=False) over {fmt_count(n)} entries")
    led = handle.open()
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        res = led.verify(derived=False)
        ours = time.perf_counter() - t0
        cpu = time.process_time() - c0
    finally:
        led.close()
    if not res.ok or res.entries_checked != n or res.checkpoints_checked < 1:
        raise RuntimeError(f"verify/{backend}: unexpected result {res}")
    log(f"verify/{backend}: ours took {ours:.2f} s")
    log(f"verify/{backend}: baseline {label} (run 2 of 2)")
    b2, _ = _twice(f"verify/{backend}", baseline_chain, handle)
    chain = time_result("verify", backend, n, "entries", ours, min(b1, b2), label,
                        target=TARGET, rate_unit="entries",
                        extra={"baseline_runs_s": [b1, b2], "what": "verify(derived=False)",
                               "client_cpu_s": cpu})

    dlabel = "raw read+json.loads"
    log(f"verify-derived/{backend}: baseline {dlabel} (run 1 of 2)")
    d1, _ = _twice(f"verify-derived/{backend}", baseline_derived, handle)
    log(f"verify-derived/{backend}: ours, the derived pass alone")
    led = handle.open()
    try:
        dres = VerifyResult()
        c0, t0 = time.process_time(), time.perf_counter()
        with led.store.reader() as conn:
            _derived_pass(led.store, conn, dres)
        dours = time.perf_counter() - t0
        dcpu = time.process_time() - c0
    finally:
        led.close()
    if not dres.derived_checked or dres.problems:
        raise RuntimeError(f"verify-derived/{backend}: unexpected result {dres}")
    log(f"verify-derived/{backend}: ours took {dours:.2f} s")
    log(f"verify-derived/{backend}: baseline {dlabel} (run 2 of 2)")
    d2, _ = _twice(f"verify-derived/{backend}", baseline_derived, handle)
    derived = time_result("verify-derived", backend, n, "entries", dours, min(d1, d2), dlabel,
                          rate_unit="entries",
                          extra={"baseline_runs_s": [d1, d2], "what": "_derived_pass",
                                 "client_cpu_s": dcpu,
                                 "full_verify_estimate_s": ours + dours})
    return [chain, derived]
