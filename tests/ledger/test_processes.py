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

BATCH = 1  # the control.ingest entry that closes every batch that appends (FORMAT.md §2.5)


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
        _out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        with led.store.engine.connect() as conn:
            seqs = [r[0] for r in conn.execute(text("SELECT seq FROM entries ORDER BY seq"))]
        assert seqs == list(range(1600 + 4 * BATCH))  # no gap, no duplicate
        led.checkpoint()
        res = led.verify()
        assert res.ok, res.problems  # no fork: every entry chains to the one before
    finally:
        led.close()


def _settled_size(led: Ledger) -> int:
    """Ledger size once no writer is left: a COMMIT the killed client had already sent
    still completes on the PostgreSQL server, so take the append lock before counting."""
    with led.store.writer() as conn:
        return led.store.head(conn)[0]


def _batch_ends(led: Ledger, since: int) -> list[int]:
    """The seqs of the control.ingest entries from ``since`` on (the indexed columns; the
    final full verify checks them against the leaves)."""
    with led.store.reader() as conn:
        return list(conn.execute(text(
            "SELECT seq FROM entries WHERE domain = 'control' AND kind = 'ingest' "
            "AND seq >= :since ORDER BY seq"), {"since": since}).scalars())


def test_sigkill_never_leaves_partial_batch(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    """Kill ``bfa ingest`` at random points; only whole files ever land, and re-running converges.

    Each run ingests two new files (800 + 800 records, each file a batch that ends with
    its control.ingest entry) in one process. The first
    run is timed, uninterrupted; later runs are killed with SIGKILL at a random
    moment within that duration. Runs continue until 30 processes were killed
    while still running (``BFA_SIGKILL_RUNS``).

    Each run ends with a checkpoint, so the check after the next kill is the incremental
    one (``verify(since_checkpoint=True)``): it streams only what landed since, chained
    from the signed checkpoint, and compares the tree nodes they complete and the frontier
    — the cost of the test stays linear in the runs. The full verification (with the
    derived pass: columns against leaves, every record inside a batch) runs once at the end.
    """
    kills_wanted = int(os.environ.get("BFA_SIGKILL_RUNS", "30"))
    rng = random.Random(1123)
    env = _env(ledger_home)
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    kills = 0
    duration = 0.0
    per_file = 800 + BATCH
    try:
        for r in range(kills_wanted * 3):
            if kills >= kills_wanted:
                break
            files = [write_jsonl(tmp_path / f"r{r}-{k}.jsonl",
                                 [payment_event(r * 10_000 + k * 5_000 + i) for i in range(800)])
                     for k in range(2)]
            before = led.size()
            started = time.monotonic()
            p = subprocess.Popen(_bfa("ingest", *map(str, files)), env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r == 0:
                assert p.wait(timeout=300) == 0
                duration = time.monotonic() - started
            else:
                time.sleep(rng.uniform(0.1, 1.0) * duration)
                if p.poll() is None:
                    os.kill(p.pid, signal.SIGKILL)
                    kills += 1
                p.wait()
            landed = _settled_size(led) - before
            assert landed in (0, per_file, 2 * per_file), \
                f"run {r}: partial batch of {landed} entries"
            # what landed is whole files: each closed by its control.ingest entry
            ends = [before + per_file * (k + 1) - 1 for k in range(landed // per_file)]
            assert _batch_ends(led, before) == ends, (r, landed)
            # the entries since the last checkpoint (exactly this run's) chain on from it
            res = led.verify(since_checkpoint=True)
            assert res.ok, (r, res.problems)
            assert (res.start, res.entries_checked) == (before, landed), (r, res)
            # re-running the same ingest converges: the rest lands, what landed is a no-op
            reports = led.ingest([str(f) for f in files], None)
            assert sum(x.appended for x in reports) == 1600 - 800 * (landed // per_file)
            assert led.size() == before + 2 * per_file
            assert _batch_ends(led, before) == [before + per_file - 1, before + 2 * per_file - 1]
            # signs only after checking this run's entries: the next run resumes from here
            assert led.checkpoint().size == before + 2 * per_file
        res = led.verify()
        assert res.ok, res.problems
        assert res.derived_checked and res.entries_checked == led.size()
        assert kills >= kills_wanted, f"only {kills} processes were killed while running"
    finally:
        led.close()
