"""What checking the stored findings costs a run, against reading them (ADR 0023, 0016).

Every reconciliation run reads all stored findings (``rc_findings``: their rows are judged
again each night) and checks them against the digest the last run recorded in the ledger
(FORMAT.md §2.5). This benchmark fills ``rc_findings`` of a fresh ledger with ``--rows``
synthetic findings and times, in the same process and on the same table:

- the read a run makes anyway (``read_findings``: every row, in canonical order) — the
  baseline;
- the check's digest over those rows (scheme ``sorted-sha256``);
- the additive digest the first version used (SHAKE-256 per row, summed mod 2^2048).

Each figure is the median of ``--repeat`` runs and is printed beside the read with the
ratio between them. Run: ``.venv/bin/python -m bench.findings_check [--rows N]
[--backend sqlite|postgresql|both]``. PostgreSQL databases are made through
``BFA_BENCH_DATABASE_URL`` (default the local server) and dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
RULES = ("event_findings", "missing_vouchers", "orphans", "voucher_mismatches", "duplicates")


def _rows(n: int) -> list[tuple[str, str, int, str]]:
    rnd = random.Random(7)
    enc = json.JSONEncoder(separators=(",", ":")).encode
    out = []
    for i in range(n):
        rule = RULES[i % len(RULES)]
        root = (f"p{rnd.randrange(10**9):09d}|pension|2026-{1 + i % 12:02d}"
                if rule == "duplicates" else str(rnd.randrange(10**8)))
        row = enc([i, "2026-10-01", rnd.randrange(10**7), "UNSETTLED", None, [1, 2]])
        out.append((rule, f"{root}-{i}", 0, row))
    return out


def _median(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench(url: str, n: int, repeat: int) -> dict[str, float]:
    from ledger import Store
    from reconcile.matching._state import findings_digest, legacy_digest, read_findings
    from reconcile.matching._tables import findings as f

    store = Store(url)
    store.migrate()
    rows = _rows(n)
    with store.writer() as conn:
        store.copy_rows(conn, f.name, [c.name for c in f.columns], rows)
    with store.reader() as conn:
        read = _median(lambda: read_findings(conn), repeat)
        stored = read_findings(conn)
    digest = _median(lambda: findings_digest(stored), repeat)
    legacy = _median(lambda: legacy_digest(stored), repeat)
    store.dispose()
    return {"rows": n, "read_s": read, "digest_s": digest, "legacy_s": legacy}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.findings_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = p.parse_args(argv)
    admin = os.environ.get("BFA_BENCH_DATABASE_URL") or DEFAULT_ADMIN_URL
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as d:
                r = bench(f"sqlite:///{Path(d) / 'f.db'}", args.rows, args.repeat)
        else:
            name = f"bfa_fbench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            try:
                url = make_url(admin).set(drivername="postgresql+psycopg", database=name)
                r = bench(url.render_as_string(hide_password=False), args.rows, args.repeat)
            finally:
                with psycopg.connect(admin, autocommit=True) as c:
                    c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                              .format(sql.Identifier(name)))
        print(f"{backend}: {r['rows']:,} stored findings, median of {args.repeat}")
        print(f"  read (baseline, what a run reads anyway)  {r['read_s']:.3f} s")
        print(f"  check, sorted-sha256 digest               {r['digest_s']:.3f} s  "
              f"{r['digest_s'] / r['read_s']:.2f} of the read")
        print(f"  check, additive digest (before)           {r['legacy_s']:.3f} s  "
              f"{r['legacy_s'] / r['read_s']:.2f} of the read")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
