"""Benchmark 1, ingest: ``Ledger.ingest([file])`` against a raw bulk load of the same lines.

Ours: one JSON Lines file of N realistic records, ingested as one atomic batch
into a fresh ledger (parse, validate, pseudonymise, canonicalise, hash, chain,
Merkle nodes, vault rows, bulk write, commit).

Baseline, measured in the same run, twice (before and after ours; the faster
run counts, so the ratio is conservative):

- PostgreSQL: psycopg ``COPY t (id, line) FROM STDIN`` of the same lines as
  text into a fresh table ``(id text primary key, line text)``, one transaction.
  The id is cut out of each line with two ``str.find`` calls (no JSON parse).
- SQLite: ``executemany("INSERT INTO t VALUES (?, ?)")`` of the same lines into
  such a table in one transaction, with the store's pragmas (WAL,
  ``synchronous=FULL``).

Ratio = baseline seconds / our seconds; the issue's target on PostgreSQL is
>= 0.3 (at most ~3.3x slower than a raw COPY).

A second line, ``ingest-rows-only``, times only the database's share: the rows our
ingest wrote (entries, tree nodes, vault), read back out of the ledger it built and
bulk-loaded into the empty tables of a fresh ledger (same schema, indexes and
triggers), one transaction, with no Python work per record (PostgreSQL: binary
``COPY`` from files dumped beforehand, vault ids drawn from its sequence as in an
ingest; SQLite: ``INSERT ... SELECT`` from the attached ledger). Its ratio against
the same baseline is a ceiling: no ingest that stores these rows can beat it.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from bench._env import Env, LedgerHandle
from bench._report import Result, fmt_count, log, time_result

TARGET_PG = 0.3
_ID_KEY = '"id": "'


def _lines(path: Path) -> Iterator[tuple[str, str]]:
    """(id, line) for each non-empty line; the id is cut out without parsing JSON."""
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            text = raw.decode("utf-8").rstrip("\r\n")
            if not text:
                continue
            i = text.find(_ID_KEY)
            if i < 0:
                yield str(n), text
                continue
            i += len(_ID_KEY)
            yield text[i : text.index('"', i)], text


def baseline_pg_copy(url: str, path: Path, run: int) -> float:
    """Seconds to COPY every line into a fresh ``(id text primary key, line text)`` table."""
    table = sql.Identifier(f"bench_baseline_copy_{run}")
    with psycopg.connect(url) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id text PRIMARY KEY, line text NOT NULL)")
                     .format(table))
        conn.commit()
        t0 = time.perf_counter()
        with conn.cursor() as cur, cur.copy(
                sql.SQL("COPY {} (id, line) FROM STDIN").format(table)) as cp:
            for row in _lines(path):
                cp.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - t0
        conn.execute(sql.SQL("DROP TABLE {}").format(table))
        conn.commit()
    return elapsed


def baseline_sqlite_insert(db: Path, path: Path) -> float:
    """Seconds to executemany-INSERT every line into a keyed table, one transaction."""
    db.unlink(missing_ok=True)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, line TEXT NOT NULL)")
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t (id, line) VALUES (?, ?)", _lines(path))
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
    finally:
        conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    return elapsed


def _baseline(env: Env, backend: str, handle: LedgerHandle, path: Path, run: int) -> float:
    if backend == "postgresql":
        return baseline_pg_copy(handle.url, path, run)
    return baseline_sqlite_insert(env.workdir / f"baseline-{run}.db", path)


_ROW_TABLES: tuple[tuple[str, str, str], ...] = (
    # (table, columns as an ingest writes them, order)
    ("entries", "seq, domain, kind, record_id, leaf, entry_hash, content_digest", "seq"),
    ("tree_nodes", "level, idx, hash", "level, idx"),
    # no ORDER BY: the rows come back in the order the bulk load wrote them (PostgreSQL:
    # a fresh heap without updates; SQLite: ``rowid``), which is the ingest's order
    ("vault", "domain, record_id, field, subject, salt, sealed", ""),
    ("vault_keys", "holder, wrapped", ""),
)


def rows_only_pg(src_url: str, dst_url: str, workdir: Path) -> dict[str, float]:
    """Seconds per table (and ``commit``) to binary-COPY the ledger's rows, dumped to
    files first, into a fresh ledger in one transaction."""
    dumps: list[tuple[str, str, Path]] = []
    with psycopg.connect(src_url) as conn, conn.cursor() as cur:
        for table, cols, order in _ROW_TABLES:
            path = workdir / f"rows-{table}.bin"
            by = f" ORDER BY {order}" if order else ""
            with path.open("wb") as f, cur.copy(
                    f"COPY (SELECT {cols} FROM {table}{by}) TO STDOUT (FORMAT BINARY)") as cp:
                for block in cp:
                    f.write(block)
            dumps.append((table, cols, path))
    try:
        with psycopg.connect(dst_url) as conn:
            split: dict[str, float] = {}
            with conn.cursor() as cur:
                for table, cols, path in dumps:
                    t0 = time.perf_counter()
                    with path.open("rb") as f, cur.copy(
                            f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)") as cp:
                        while block := f.read(1 << 20):
                            cp.write(block)
                    split[table] = time.perf_counter() - t0
            t0 = time.perf_counter()
            conn.commit()
            split["commit"] = time.perf_counter() - t0
            return split
    finally:
        for _, _, path in dumps:
            path.unlink(missing_ok=True)


def rows_only_sqlite(src: Path, dst: Path) -> dict[str, float]:
    """Seconds per table (and ``commit``) to ``INSERT ... SELECT`` the ledger's rows
    into a fresh ledger's file in one transaction."""
    conn = sqlite3.connect(dst, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("ATTACH DATABASE ? AS src", (f"file:{src}?mode=ro",))
        split: dict[str, float] = {}
        conn.execute("BEGIN IMMEDIATE")
        for table, cols, order in _ROW_TABLES:
            t0 = time.perf_counter()
            conn.execute(f"INSERT INTO main.{table} ({cols}) "
                         f"SELECT {cols} FROM src.{table} ORDER BY {order or 'rowid'}")
            split[table] = time.perf_counter() - t0
        t0 = time.perf_counter()
        conn.execute("COMMIT")
        split["commit"] = time.perf_counter() - t0
        return split
    finally:
        conn.close()


def run_rows_only(env: Env, backend: str, src: LedgerHandle, baseline_s: float,
                  label_b: str) -> Result:
    """The database's share of our ingest alone (see the module docstring)."""
    dst = env.new_ledger(backend, "rows")
    try:
        log(f"ingest-rows-only/{backend}: bulk-loading the ledger's rows into a fresh ledger")
        if backend == "postgresql":
            split = rows_only_pg(src.url, dst.url, env.workdir)
        else:
            split = rows_only_sqlite(src.sqlite_path, dst.sqlite_path)
        secs = sum(split.values())
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in split.items())
        log(f"ingest-rows-only/{backend}: took {secs:.2f} s ({parts})")
    finally:
        env.drop(dst)
        env.handles.remove(dst)
    return time_result("ingest-rows-only", backend, src.entries, "records", secs, baseline_s,
                       label_b, rate_unit="rec",
                       extra={"what": "the rows of our ingest, bulk-loaded; a ceiling",
                              "split_s": split})


def db_bytes(handle: LedgerHandle) -> int:
    """Disk used by the ledger's database (PostgreSQL database size, or SQLite files)."""
    if handle.backend == "postgresql":
        with psycopg.connect(handle.url) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return int(row[0]) if row else 0
    db = handle.sqlite_path
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


class _Progress:
    """Ingest progress to stderr about every 10% of the input bytes."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = max(1, total)
        self.done = 0
        self.next = self.total // 10

    def __call__(self, n: int) -> None:
        self.done += n
        if self.done >= self.next:
            self.next += self.total // 10
            log(f"{self.label}: {100 * self.done // self.total}% of the input read")


def run(env: Env, backend: str) -> list[Result]:
    """Time our ingest of the records file beside the raw baseline; keep the ledger.

    Returns the ingest line and the ``ingest-rows-only`` line (the database's share).
    """
    rf = env.records_file()
    handle = env.new_ledger(backend, "main")
    label_b = "COPY" if backend == "postgresql" else "executemany"
    log(f"ingest/{backend}: baseline {label_b} (run 1 of 2)")
    b1 = _baseline(env, backend, handle, rf.path, 1)
    log(f"ingest/{backend}: baseline {label_b} took {b1:.2f} s")
    log(f"ingest/{backend}: ours, {fmt_count(rf.records)} records")
    led = handle.open()
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        rep = led.ingest([str(rf.path)], None,
                         progress=_Progress(f"ingest/{backend}", rf.size_bytes))[0]
        ours = time.perf_counter() - t0
        cpu = time.process_time() - c0
        size = led.size()  # the records and the batch's control.ingest entry
    finally:
        led.close()
    if rep.appended != rf.records:
        raise RuntimeError(
            f"ingest/{backend}: appended {rep.appended} of {rf.records} records "
            f"(duplicates {rep.duplicates}, rejected {rep.rejected}: {rep.problems[:3]})")
    handle.entries = size
    handle.sample_ids = rf.sample_ids
    env.main[backend] = handle
    log(f"ingest/{backend}: ours took {ours:.2f} s ({cpu:.1f} s CPU in this process)")
    log(f"ingest/{backend}: baseline {label_b} (run 2 of 2)")
    b2 = _baseline(env, backend, handle, rf.path, 2)
    log(f"ingest/{backend}: baseline {label_b} took {b2:.2f} s")
    size = db_bytes(handle)
    log(f"ingest/{backend}: the ledger takes {size / 1e6:,.0f} MB "
        f"(input {rf.size_bytes / 1e6:,.0f} MB)")
    extra: dict[str, object] = {
        "baseline_runs_s": [b1, b2], "input_bytes": rf.size_bytes, "kinds": rf.kinds,
        "client_cpu_s": cpu, "db_bytes": size,
    }
    target = TARGET_PG if backend == "postgresql" else None
    ingest = time_result("ingest", backend, rf.records, "records", ours, min(b1, b2), label_b,
                         target=target, rate_unit="rec", extra=extra)
    return [ingest, run_rows_only(env, backend, handle, min(b1, b2), label_b)]


def profile(env: Env, backend: str, records: int, top: int = 30) -> str:
    """Ingest the first ``records`` lines into a scratch ledger under cProfile.

    Not a timing (cProfile slows Python code unevenly): it shows *where* the time
    goes. Returns the report (top functions by own time, then by cumulative time);
    the raw stats are saved as ``ingest-<backend>.pstats`` in the work directory.
    """
    src = env.records_file()
    head = env.workdir / f"records-head-{records}.jsonl"
    if not head.exists():
        with src.path.open("rb") as f, head.open("wb") as w:
            for i, line in enumerate(f):
                if i >= records:
                    break
                w.write(line)
    handle = env.new_ledger(backend, "profile")
    log(f"ingest-profile/{backend}: {fmt_count(records)} records under cProfile")
    led = handle.open()
    prof = cProfile.Profile()
    try:
        t0 = time.perf_counter()
        prof.enable()
        led.ingest([str(head)], None)
        prof.disable()
        elapsed = time.perf_counter() - t0
    finally:
        led.close()
        env.drop(handle)
        env.handles.remove(handle)
    prof.dump_stats(env.workdir / f"ingest-{backend}.pstats")
    out = io.StringIO()
    print(f"ingest-profile/{backend}: {fmt_count(records)} records in {elapsed:.2f} s "
          "under cProfile", file=out)
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()
