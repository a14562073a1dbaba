"""Real processes: concurrent ingests form one linear chain; SIGKILL never leaves half a batch.

These start ``python -m cli`` as separate OS processes against the same database,
on both backends.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ledger import Ledger
from tests._records import payment_event, write_jsonl

pytestmark = pytest.mark.slow


def _env(home: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(BFA_HOME=home["home"], BFA_DATABASE_URL=home["db"], BFA_USER="proc")
    return env


def _bfa(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def test_concurrent_ingests_one_linear_chain(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    files = []
    for k in range(4):
        recs = [payment_event(k * 10_000 + i) for i in range(400)]
        files.append(write_jsonl(tmp_path / f"f{k}.jsonl", recs))
    procs = [subprocess.Popen(_bfa("ingest", str(f)), env=_env(ledger_home),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for f in files]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        with led.store.engine.connect() as conn:
            seqs = [r[0] for r in conn.execute(text("SELECT seq FROM entries ORDER BY seq"))]
        assert seqs == list(range(1600))  # no gap, no duplicate
        led.checkpoint()
        res = led.verify()
        assert res.ok, res.problems  # no fork: every entry chains to the one before
    finally:
        led.close()


def test_sigkill_never_leaves_partial_batch(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    runs = int(os.environ.get("BFA_SIGKILL_RUNS", "30"))
    rng = random.Random(1123)
    sizes = [700, 1300]
    files = [write_jsonl(tmp_path / f"k{k}.jsonl",
                         [payment_event(k * 100_000 + i) for i in range(n)])
             for k, n in enumerate(sizes)]
    allowed = {0, sizes[0], sizes[1], sum(sizes)}
    env = _env(ledger_home)
    # Measure one full run's duration on a scratch copy of nothing: the first kill
    # windows span 0 .. 1.5 x a typical start-up plus ingest time.
    horizon = 4.0
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        for _ in range(runs):
            p = subprocess.Popen(_bfa("ingest", *map(str, files)), env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.2, horizon))
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            p.wait()
            size = led.size()
            # what is there is whole batches (already complete files are no-ops)
            assert size in allowed, f"partial batch: {size} entries"
            res = led.verify(derived=True)
            assert res.ok, res.problems
        done = subprocess.run(_bfa("ingest", *map(str, files)), env=env, capture_output=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr.decode()
        assert led.size() == sum(sizes)
        led.checkpoint()
        assert led.verify().ok
    finally:
        led.close()
