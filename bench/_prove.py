"""Benchmark 3, proofs: ``Ledger.prove`` in a warm process, and the ``bfa`` CLI's cost.

On the ledger of benchmark 1 (set-up, untimed: checkpoint signed; ``ANALYZE`` on
PostgreSQL):

- ``prove/<backend>``: median milliseconds of ``Ledger.prove(record_id)`` over
  ``--proofs`` (default 200) records chosen at random, one warm-up call first,
  the ledger opened once. Target: median <= 5 ms. Baseline: the least database
  work a proof needs, on a raw driver connection — one indexed lookup of the
  entry by ``record_id`` (through the ``(domain, record_id)`` unique index, with
  ``domain IN`` all three domains, since the id alone does not say which) and
  one query fetching the proof's tree nodes as an OR of ``(level, idx)`` point
  lookups (+ leaf hashes by ``seq``; the node list is computed before the clock
  starts).
- ``cli-startup --version`` / ``cli-startup --help``: median wall time of 5 runs
  beside the bare interpreter's start (``python -I -c pass``); target: at most 8 × it;
- ``cli-status``, ``cli-show``, ``cli-prove`` per backend: the whole ``bfa status``,
  ``bfa show ID`` and ``bfa prove ID`` processes (median of 3), beside the same
  interpreter start: what an officer waits for each time.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from bench._env import Env, LedgerHandle
from bench._report import Result, fmt_count, log
from ledger._merkle import inclusion_ranges, nodes_needed

TARGET_MS = 5.0
# The entry by id through the (domain, record_id) unique index: the id alone does
# not name its domain, so probe all three (what an index on record_id would give).
_ENTRY_SQL = ("SELECT seq, leaf FROM entries WHERE domain IN ('business', 'finance', 'archive') "
              "AND record_id = {0}")


def _bfa() -> str:
    exe = Path(sys.executable).with_name("bfa")
    return str(exe) if exe.exists() else "bfa"


def _wall(cmd: list[str], runs: int) -> tuple[float, list[float]]:
    """Median wall seconds of ``runs`` runs of ``cmd`` (each must exit 0)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-500:]}")
    return statistics.median(times), times


def _baseline_queries(
    handle: LedgerHandle, ids: list[str], size: int
) -> tuple[list[float], int]:
    """Per-id milliseconds of the raw entry lookup plus one tree-node fetch."""
    pg = handle.backend == "postgresql"
    conn: Any = psycopg.connect(handle.url, autocommit=True) if pg \
        else sqlite3.connect(handle.sqlite_path)
    mark = "%s" if pg else "?"
    times: list[float] = []
    found = 0
    try:
        plans = []
        for rid in ids:
            seq = conn.execute(_ENTRY_SQL.format(mark), (rid,)).fetchone()[0]
            keys = sorted(nodes_needed(inclusion_ranges(int(seq), size)))
            leaves = [k[1] for k in keys if k[0] == 0]
            inner = [k for k in keys if k[0] > 0]
            # OR of point lookups: both planners turn it into index probes (SQLite
            # scans the table for a row-value IN list).
            node_sql = "SELECT level, idx, hash FROM tree_nodes WHERE " + " OR ".join(
                f"(level = {int(lv)} AND idx = {int(ix)})" for lv, ix in inner) if inner else None
            leaf_sql = "SELECT seq, entry_hash FROM entries WHERE seq IN (" + \
                ", ".join(str(int(x)) for x in leaves) + ")" if leaves else None
            plans.append((rid, node_sql, leaf_sql))
        for rid, node_sql, leaf_sql in plans:
            t0 = time.perf_counter()
            row = conn.execute(_ENTRY_SQL.format(mark), (rid,)).fetchone()
            got = conn.execute(node_sql).fetchall() if node_sql else []
            if leaf_sql:
                got += conn.execute(leaf_sql).fetchall()
            times.append((time.perf_counter() - t0) * 1000)
            found += 1 if row is not None and got else 0
    finally:
        conn.close()
    return times, found


def run_library(env: Env, backend: str, proofs: int) -> Result:
    """Median ms of ``Ledger.prove`` over random records, beside raw point queries."""
    handle = env.main_ledger(backend)
    handle.prepare()
    pool = list(handle.sample_ids)
    ids = random.Random(7).sample(pool, min(proofs, len(pool)))
    n = handle.entries
    log(f"prove/{backend}: baseline raw lookups for {len(ids)} records")
    base_ms, found = _baseline_queries(handle, ids, handle.checkpointed_at)
    if found != len(ids):
        raise RuntimeError(f"prove/{backend}: baseline found {found} of {len(ids)} records")
    log(f"prove/{backend}: ours, Ledger.prove for {len(ids)} records")
    led = handle.open()
    try:
        led.prove(ids[-1])  # warm-up: connection pool, statement caches
        times = []
        hashes = []
        for rid in ids:
            t0 = time.perf_counter()
            _entry, proof = led.prove(rid)
            times.append((time.perf_counter() - t0) * 1000)
            hashes.append(len(proof.hashes))
    finally:
        led.close()
    ours = statistics.median(times)
    base = statistics.median(base_ms)
    q = statistics.quantiles(times, n=20) if len(times) >= 2 else [ours] * 19
    log(f"prove/{backend}: median {ours:.2f} ms (baseline {base:.2f} ms)")
    return Result(
        "prove", backend, n, "entries", "ms", ours, base, "raw 2-3 queries", base / ours,
        "ours<=", TARGET_MS, f"median of {len(ids)}, p95 {q[18]:.2f} ms",
        {"p95_ms": q[18], "max_ms": max(times), "min_ms": min(times),
         "mean_proof_hashes": statistics.mean(hashes), "baseline_p95_ms":
         statistics.quantiles(base_ms, n=20)[18] if len(base_ms) >= 2 else base},
    )


STARTUP_TARGET = 1 / 8
"""``bfa --version`` and ``bfa --help`` within 8 × the start of a bare interpreter."""


def run_cli_startup() -> list[Result]:
    """``bfa --version`` and ``bfa --help`` beside ``python -I -c pass``, median of 5."""
    log("cli-startup: python -I -c pass, bfa --version, bfa --help (5 runs each)")
    py, py_runs = _wall([sys.executable, "-I", "-c", "pass"], 5)
    out = []
    for args in (["--version"], ["--help"]):
        ours, runs = _wall([_bfa(), *args], 5)
        log(f"cli-startup: bfa {args[0]} {ours * 1000:.0f} ms, python {py * 1000:.0f} ms")
        out.append(Result(
            f"cli-startup {args[0]}", "any", 0, "", "ms", ours * 1000, py * 1000,
            "python -I -c pass", py / ours, "ratio>=", STARTUP_TARGET, note="median of 5",
            extra={"runs_ms": [t * 1000 for t in runs],
                   "baseline_runs_ms": [t * 1000 for t in py_runs]}))
    return out


def run_cli_reads(env: Env, backend: str) -> list[Result]:
    """The start-up of the read commands officers run (``status``, ``show``, ``prove``),
    whole processes, each beside ``python -I -c pass`` measured alongside (median of 3)."""
    handle = env.main_ledger(backend)
    handle.prepare()
    rid = handle.sample_ids[0]
    where = ["--home", str(handle.home), "--db", handle.url]
    py, _ = _wall([sys.executable, "-I", "-c", "pass"], 5)
    out = []
    for name, args in (("status", ["status"]), ("show", ["show", rid]),
                       ("prove", ["prove", rid])):
        ours, runs = _wall([_bfa(), *args, *where], 3)
        log(f"cli-{name}/{backend}: {ours * 1000:.0f} ms (python {py * 1000:.0f} ms)")
        out.append(Result(f"cli-{name}", backend, handle.entries, "entries", "ms",
                          ours * 1000, py * 1000, "python -I -c pass", py / ours,
                          note="median of 3", extra={"runs_ms": [t * 1000 for t in runs]}))
    return out


def run(env: Env, backend: str, proofs: int) -> list[Result]:
    out = [run_library(env, backend, proofs), *run_cli_reads(env, backend)]
    log(f"prove/{backend}: done on {fmt_count(env.main_ledger(backend).entries)} entries")
    return out
