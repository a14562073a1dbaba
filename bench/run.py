"""Run the BFA Ledger benchmarks: ``python -m bench.run [options]`` (``make bench``).

Benchmarks, in the order they run on each backend (``--only`` picks some):

- ``ingest``        ``Ledger.ingest`` of N records vs. a raw COPY / executemany
- ``verify``        chain pass and derived pass vs. a raw read-and-hash
- ``prove``         ``Ledger.prove`` median ms, ``bfa --version`` and ``bfa prove``
- ``verify-memory`` peak RSS of a full verify at N and at N/5

Each result line shows our figure beside a baseline measured in the same run
and their ratio; a summary table ends the run. Progress goes to stderr, results
to stdout. See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import _ingest, _memory, _prove, _verify
from bench._env import DEFAULT_PG_URL, Env, PgServer, new_run_id
from bench._report import Result, log, summary

BENCHMARKS = ("ingest", "verify", "prove", "verify-memory")
BACKENDS = ("postgresql", "sqlite")


def _count(text: str) -> int:
    n = int(text.replace("_", "").replace(",", ""))
    if n < 10:
        raise argparse.ArgumentTypeError("need at least 10 records")
    return n


def _names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    for name in names:
        if name not in BENCHMARKS:
            raise argparse.ArgumentTypeError(
                f"unknown benchmark {name!r} (choose from {', '.join(BENCHMARKS)})")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=_count, default=1_000_000, metavar="N",
                   help="records to generate and ingest (default 1,000,000)")
    p.add_argument("--only", type=_names, action="extend", metavar="NAME",
                   help=f"run only these benchmarks (repeat or comma-separate): "
                        f"{', '.join(BENCHMARKS)}")
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both",
                   help="which backend(s) to measure (default both)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.add_argument("--proofs", type=int, default=200, metavar="N",
                   help="records to prove for the prove median (default 200)")
    p.add_argument("--profile", type=_count, nargs="?", const=100_000, default=0, metavar="N",
                   help="also ingest the first N records (default 100,000) under cProfile "
                        "and print where the time goes (not a timing)")
    p.add_argument("--workdir", type=Path, metavar="DIR",
                   help="where to put generated records and SQLite ledgers "
                        "(default: a new temporary directory, removed at the end)")
    p.add_argument("--keep", action="store_true",
                   help="keep the work directory and the databases (for debugging)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--seed", type=int, default=20261123, help="record generator seed")
    return p.parse_args(argv)


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=False, cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=False,
                               cwd=Path(__file__).resolve().parent)
        if out.returncode != 0 or not out.stdout.strip():
            return "?"
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return "?"


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    only: list[str] = args.only or list(BENCHMARKS)
    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    signal.signal(signal.SIGTERM, _on_sigterm)

    run_id = new_run_id()
    pg: PgServer | None = None
    pg_version = None
    if "postgresql" in backends:
        pg = PgServer(os.environ.get("BFA_BENCH_DATABASE_URL") or DEFAULT_PG_URL, run_id)
        try:
            pg_version = pg.check()
        except Exception as e:
            print(f"bench: cannot reach PostgreSQL at {pg.admin_url}: {e}\n"
                  "  set BFA_BENCH_DATABASE_URL or pass --backend sqlite", file=sys.stderr)
            return 2

    made_workdir = args.workdir is None
    workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix=f"bfa-bench-{run_id}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = Env(args.records, workdir, pg, seed=args.seed)
    results: list[Result] = []
    profiles: dict[str, str] = {}
    meta: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "records": args.records, "benchmarks": only, "backends": backends,
        "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "postgresql": pg_version, "sqlite": sqlite3.sqlite_version, "commit": _git_commit(),
        "loadavg_start": os.getloadavg(), "workdir": str(workdir), "run_id": run_id,
    }
    log(f"run {run_id}: {args.records:,} records, benchmarks {', '.join(only)}, "
        f"backends {', '.join(backends)}, work dir {workdir}, load {os.getloadavg()[0]:.2f}")

    def emit(new: list[Result]) -> None:
        for r in new:
            results.append(r)
            print(r.line(), flush=True)

    steps: list[tuple[str, Callable[[str], list[Result]]]] = [
        ("ingest", lambda b: _ingest.run(env, b)),
        ("verify", lambda b: _verify.run(env, b)),
        ("prove", lambda b: _prove.run(env, b, args.proofs)),
        ("verify-memory", lambda b: _memory.run(env, b)),
    ]
    t_start = time.monotonic()
    try:
        if "prove" in only:
            emit(_prove.run_cli_startup())
        for backend in backends:
            for name, step in steps:
                if name in only:
                    emit(step(backend))
            if args.profile:
                profiles[backend] = _ingest.profile(env, backend, min(args.profile, args.records))
                print(profiles[backend], file=sys.stderr, flush=True)
            if not args.keep:
                env.drop_backend(backend)
    finally:
        if not args.keep:
            env.cleanup()
            if made_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir} and databases {pg.created if pg else []}")

    meta["seconds"] = time.monotonic() - t_start
    meta["loadavg_end"] = os.getloadavg()
    print()
    print(f"summary: {args.records:,} records, {len(results)} results, "
          f"{meta['seconds']:.0f} s, load {meta['loadavg_start'][0]:.2f} -> "
          f"{meta['loadavg_end'][0]:.2f} (ratio = baseline / ours; higher is better)")
    print(summary(results))
    if args.json:
        doc = {"meta": meta, "results": [r.to_json() for r in results], "profiles": profiles}
        args.json.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n",
                             encoding="utf-8")
        log(f"wrote {args.json}")
    missed = [r for r in results if r.ok is False]
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
