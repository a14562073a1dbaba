"""Benchmark 2b, verify memory: peak RSS of a full ``verify`` in its own process, and its growth.

Each measurement runs ``python -m bench._child verify HOME URL`` (a full
``Ledger.verify()``, chain and derived pass, after signing a checkpoint and,
on PostgreSQL, ``ANALYZE``) and
takes the child's RSS high-water mark, ``VmHWM`` from its ``/proc/self/status``.
(``ru_maxrss`` from ``os.wait4`` is kept in the JSON for reference but not used:
Linux carries the parent's high-water mark over ``vfork``/``exec`` into it, so
it reads the benchmark runner's size, not the child's.)

- ``verify-memory/<backend>``: peak RSS at N entries. Target <= 300 MB. Baseline:
  the same child that only opens the ledger and reads its size (interpreter,
  imports, engine, one query); ratio = baseline / ours (1.0 = verify costs no
  memory beyond start-up).
- ``verify-memory-growth/<backend>``: peak RSS at N beside peak RSS at N/5;
  ratio = small / large, target >= 0.8 (flat: less than 25% growth for 5x the
  entries). ``--records 5000000`` gives the issue's 1M-vs-5M comparison.

When the benchmark ledger already exists (``ingest`` ran), the N/5 point is a
separate ledger built from the first N/5 records. Otherwise the benchmark
ledger is built in two stages (first N/5 records, measure, the rest, measure),
so ``--only verify-memory`` ingests N records in total, not 1.2 N.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._env import Env, LedgerHandle
from bench._report import Result, fmt_count, log

TARGET_MB = 300.0
TARGET_FLAT = 0.8
_ROOT = Path(__file__).resolve().parent.parent


def measure(handle: LedgerHandle, mode: str) -> tuple[float, dict[str, Any]]:
    """(peak RSS in MB, the child's JSON report) of one child run."""
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench._child", mode, str(handle.home), handle.url],
            cwd=_ROOT, stdout=subprocess.PIPE, stderr=errf,
        )
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.stdout.close()
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            errf.seek(0)
            err = errf.read().decode(errors="replace")
            raise RuntimeError(f"bench._child {mode} exited {proc.returncode}: {err[-800:]}")
    report: dict[str, Any] = json.loads(out)
    report["ru_maxrss_mb"] = usage.ru_maxrss / 1024
    hwm = int(report.get("vm_hwm_kib") or 0)
    return (hwm or usage.ru_maxrss) / 1024, report


def _verify_point(handle: LedgerHandle, what: str) -> tuple[float, dict[str, Any]]:
    handle.prepare()
    log(f"{what}: full verify of {fmt_count(handle.entries)} entries in a child process")
    mb, rep = measure(handle, "verify")
    if not rep["ok"] or rep["entries"] != handle.entries or not rep["derived"]:
        raise RuntimeError(f"{what}: verify failed: {rep}")
    log(f"{what}: peak RSS {mb:.0f} MB, verify took {rep['seconds']:.1f} s")
    return mb, rep


def run(env: Env, backend: str) -> list[Result]:
    n = env.records
    small_n = max(1, n // 5)
    what = f"verify-memory/{backend}"
    if backend in env.main:
        big = env.main[backend]
        small = env.new_ledger(backend, "small")
        head, _tail = env.split(small_n)
        env.ingest_untimed(small, head, f"the first {fmt_count(small_n)} records")
        small_mb, small_rep = _verify_point(small, what)
        env.drop(small)
        env.handles.remove(small)
    else:
        big = env.new_ledger(backend, "main")
        head, tail = env.split(small_n)
        env.ingest_untimed(big, head, f"the first {fmt_count(small_n)} records")
        small_mb, small_rep = _verify_point(big, what)
        env.ingest_untimed(big, tail, f"the other {fmt_count(n - small_n)} records")
        big.sample_ids = env.records_file().sample_ids
        env.main[backend] = big
    big_mb, big_rep = _verify_point(big, what)
    log(f"{what}: baseline, open the ledger only")
    base_mb, _ = measure(big, "open")
    log(f"{what}: baseline peak RSS {base_mb:.0f} MB")
    extra = {"verify_seconds": big_rep["seconds"], "small_entries": small_n,
             "small_mb": small_mb, "small_verify_seconds": small_rep["seconds"]}
    return [
        Result("verify-memory", backend, big.entries, "entries", "MB", big_mb, base_mb,
               "open only", base_mb / big_mb, "ours<=", TARGET_MB,
               f"full verify {big_rep['seconds']:.0f} s", extra),
        Result("verify-memory-growth", backend, big.entries, "entries", "MB", big_mb, small_mb,
               f"at {fmt_count(small_n)}", small_mb / big_mb, "ratio>=", TARGET_FLAT,
               "", extra),
    ]
