"""Black-box tests of several ``bfa`` processes on one ledger, and of processes killed mid-way.

Written only from README.md, docs/FORMAT.md (§2.5 ``control.break`` and the break
workflow, §8.5 transactions, §9 ingest, §10 exit codes), docs/adr/0011 (break
workflow), 0012 (nightly lock), 0017 (SQLite background checkpoints), 0018 (derived
rows at ingest) and the commands' ``--help``; the implementation was not read.

The commands under test run as real OS processes (the venv's ``bfa``, started with
``subprocess.Popen``); ledgers are built, and results read, in-process through click's
runner, which is another process as far as the database is concerned. Where a race
may go either way the tests assert what holds for every interleaving (exactly one
winner of a one-way transition, transitions numbered 1..n, a consistent snapshot, a
clean ``bfa verify``), not a particular winner. To make two processes meet at the
same point, some tests hold the writer lock FORMAT §8.5 documents (SQLite ``BEGIN
IMMEDIATE``; PostgreSQL ``pg_advisory_xact_lock(0x62666131)``) while the processes
start, then release it: every process is then queued on that lock at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests._cli import h, invoke, jok, ok
from tests._identity import spawn_env
from tests.reconcile._blackbox import R, Rec, T, assessment, collection, voucher, write_jsonl

REVEAL = ("--reveal", "--purpose", "test")  # a reveal states its purpose
BATCH = 1  # the control.ingest entry that closes every batch that appends (FORMAT.md §2.5)

pytestmark = pytest.mark.slow

BFA = str(Path(sys.executable).with_name("bfa"))
ORIGIN = "cc.example/440100"
STRANGER = "91440100MA99999999"
AS_OF = "2026-12-31"
WRITER_KEY = 0x62666131  # FORMAT §8.5: the writers' transaction-scoped advisory lock
NIGHTLY_KEY = int.from_bytes(hashlib.sha256(b"bfa nightly").digest()[:8], "big", signed=True)
# what a refusal must never show (FORMAT §10: one line ``bfa: error: ...``)
RAW = ("Traceback", "internal error", "sqlite3.", "psycopg.errors", "sqlalchemy.exc",
       "OperationalError", "IntegrityError", "database is locked", "UNIQUE constraint",
       "duplicate key", "UniqueViolation", "could not serialize", "deadlock",
       "SerializationFailure")


# ---------------------------------------------------------------------------- helpers


def spawn(home: Path, db: str, *args: str, user: str = "alice") -> subprocess.Popen[str]:
    env = spawn_env({**os.environ, "BFA_HOME": str(home), "BFA_DATABASE_URL": db,
                     "BFA_USER": user, "BFA_DEBUG": ""})
    return subprocess.Popen([BFA, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace")


def done(p: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode is not None
    return p.returncode, out, err


def no_raw_text(out: str, err: str) -> None:
    assert not any(w in out + err for w in RAW), (out, err)


def clean_refusal(rc: int, out: str, err: str) -> str:
    """FORMAT §10: exit 2, exactly one line ``bfa: error: ...``, nothing of the database."""
    assert rc == 2, (rc, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bfa: error: "), err
    no_raw_text(out, err)
    return lines[0]


_batches = iter(range(10**6))


def ingest(home: Path, db: str, records: list[Rec]) -> None:
    ok("ingest", *h(home, db), str(write_jsonl(home.parent / f"b{next(_batches)}.jsonl",
                                                 records)))


def new_ledger(root: Path, db: str, records: list[Rec]) -> Path:
    home = root / "home"
    ok("init", *h(home, db), "--origin", ORIGIN)
    if records:
        ingest(home, db, records)
    return home


def reconcile(home: Path, db: str, *extra: str) -> dict[str, Any]:
    rep: dict[str, Any] = jok("reconcile", *h(home, db), "--as-of", AS_OF, *extra, code=(0, 1))
    return rep


def size(home: Path, db: str) -> int:
    n: int = jok("status", *h(home, db))["size"]
    return n


def verify_clean(home: Path, db: str, *extra: str) -> None:
    rep = jok("verify", *h(home, db), *extra)
    assert rep["ok"] is True and rep["problems"] == [], rep


def breaks_of(rep: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return sorted((b["id"], b["code"], b["evidence"], b["status"]) for b in rep["breaks"])


def ids_of(rep: dict[str, Any], code: str) -> list[str]:
    return sorted(b["id"] for b in rep["breaks"] if b["code"] == code)


def history(home: Path, db: str, bid: str) -> list[dict[str, Any]]:
    """The break's transitions, checked to be numbered 1..n in ledger order (FORMAT §2.5)."""
    shown = jok("breaks", "show", *h(home, db), bid)
    hist: list[dict[str, Any]] = shown["history"]
    assert [t["id"] for t in hist] == [f"{bid}/{n}" for n in range(1, len(hist) + 1)], hist
    seqs = [t["seq"] for t in hist]
    assert seqs == sorted(set(seqs)), hist
    assert shown["transitions"] == len(hist), shown
    assert not hist or shown["status"] == hist[-1]["status"], shown
    return hist


def provable(home: Path, db: str, bid: str, n: int) -> None:
    """After a checkpoint, BRK-.../1..n are provable control entries and /n+1 is unknown."""
    ok("checkpoint", *h(home, db))
    for k in range(1, n + 1):
        ok("prove", *h(home, db), f"{bid}/{k}", "--domain", "control")
    refused = invoke("prove", *h(home, db), f"{bid}/{n + 1}", "--domain", "control")
    assert refused.exit_code == 2, refused.output


def sqlite_file(db: str) -> str:
    assert db.startswith("sqlite:///")
    return db[len("sqlite:///"):]


def is_pg(db: str) -> bool:
    return db.startswith("postgresql")


@contextmanager
def writer_lock(db: str) -> Iterator[None]:
    """Hold the writer lock of FORMAT §8.5 (as a long writer would) until the block ends."""
    if is_pg(db):
        with psycopg.connect(db) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_KEY,))
            yield
            conn.rollback()
        return
    lite = sqlite3.connect(sqlite_file(db), isolation_level=None, timeout=120)
    try:
        lite.execute("BEGIN IMMEDIATE")
        yield
        lite.execute("ROLLBACK")
    finally:
        lite.close()


def _pg_count(db: str, sql: str, *params: Any) -> int:
    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


_ADVISORY = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted = %s "
             "AND classid::bigint = %s AND objid::bigint = %s AND database = "
             "(SELECT oid FROM pg_database WHERE datname = current_database())")


def _key_parts(key: int) -> tuple[int, int]:
    u = key & 0xFFFFFFFFFFFFFFFF
    return u >> 32, u & 0xFFFFFFFF


def pg_waiting(db: str, key: int) -> int:
    return _pg_count(db, _ADVISORY, False, *_key_parts(key))


def pg_held(db: str, key: int) -> int:
    return _pg_count(db, _ADVISORY, True, *_key_parts(key))


def _cpu(pid: int) -> tuple[str, int]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return "X", 0
    return fields[0], int(fields[11]) + int(fields[12])


def wait_blocked(procs: list[subprocess.Popen[str]], db: str, timeout: float = 40) -> None:
    """Wait until every live process waits for the writer lock we hold (best effort on
    SQLite, where a waiter is seen as a sleeping process that stopped using CPU)."""
    deadline = time.monotonic() + timeout
    if is_pg(db):
        while time.monotonic() < deadline:
            live = sum(p.poll() is None for p in procs)
            if pg_waiting(db, WRITER_KEY) >= live:
                return
            time.sleep(0.05)
        return
    last: dict[int, int] = {}
    quiet: dict[int, int] = {}
    while time.monotonic() < deadline:
        for p in procs:
            state, ticks = _cpu(p.pid)
            blocked = p.poll() is not None or (state == "S" and ticks > 20
                                               and last.get(p.pid) == ticks)
            quiet[p.pid] = quiet.get(p.pid, 0) + 1 if blocked else 0
            last[p.pid] = ticks
        if all(v >= 6 for v in quiet.values()):
            return
        time.sleep(0.1)


def settle(db: str) -> None:
    """Wait until no killed client's transaction is still running on the server: a COMMIT a
    killed ``bfa`` had sent may still complete (PostgreSQL); take and drop the writer lock,
    and wait for the nightly's session lock to go with its connection (ADR 0012)."""
    if not is_pg(db):
        return
    with writer_lock(db):
        pass
    deadline = time.monotonic() + 20
    while pg_held(db, NIGHTLY_KEY) and time.monotonic() < deadline:
        time.sleep(0.05)


# ------------------------------------------------------------------------ records


def benefit_payment(i: str, person: str) -> Rec:
    return {"type": "business.benefit_payment", "id": i, "region": R, "occurred_at": T,
            "person_id": person, "insurance": "pension", "period": "2026-10",
            "amount": "3000.00", "account": "6222020200112233445"}


def orphan(d: Path, i: str) -> list[Rec]:
    """A collection from a stranger, with its voucher: one ORPHAN_MOVEMENT (four-eyes)."""
    return [collection(i, value_date="2026-10-01", payer=STRANGER),
            voucher(d, "accounting_voucher", "AV-" + i, [i])]


def settled(d: Path, tag: str, n: int) -> list[Rec]:
    """n assessments with allocated collections and both vouchers: nothing to report."""
    recs: list[Rec] = []
    for i in range(n):
        ca, col = f"CA-{tag}{i}", f"COL-{tag}{i}"
        recs += [assessment(ca), collection(col, allocs=[(ca, "1000.00")]),
                 voucher(d, "fiscal_receipt", f"FR-{tag}{i}", [ca], "1000.00"),
                 voucher(d, "accounting_voucher", f"AV-{tag}{i}", [col], "1000.00")]
    return recs


def account_rule(d: Path) -> list[Rec]:
    """FORMAT/INTERCHANGE: a collection booked on the income account breaks an account rule."""
    return [assessment("CA-ACC"),
            collection("COL-ACC", allocs=[("CA-ACC", "1000.00")], fund_account="income"),
            voucher(d, "fiscal_receipt", "FR-ACC", ["CA-ACC"], "1000.00"),
            voucher(d, "accounting_voucher", "AV-ACC", ["COL-ACC"], "1000.00")]


def income_change(i: int) -> list[Rec]:
    """Another income collection: the account rule break's evidence changes (ADR 0011)."""
    return [collection(f"COL-INC{i}", amount="50.00", payer=STRANGER, fund_account="income")]


# --------------------------------------------------------------- one break, two officers


def test_officers_racing_on_one_break(tmp_path: Path, db_url: str) -> None:
    """FORMAT §2.5: resolve only from open/assigned, approve only from pending_approval, by
    a second user, reopen only from resolved/pending. Two resolves, resolve against assign,
    two approves, and a manual reopen against the automatic reopen of a ``bfa reconcile``
    (the break's evidence changed) race: eight processes queued on the writer lock held
    while they start, so every one of them has read the breaks before any may write."""
    recs = orphan(tmp_path, "COL-A") + orphan(tmp_path, "COL-B") + orphan(tmp_path, "COL-C")
    home = new_ledger(tmp_path, db_url, recs + account_rule(tmp_path))
    db = h(home, db_url)
    first = reconcile(home, db_url)
    a, b, c = ids_of(first, "ORPHAN_MOVEMENT")
    (d,) = ids_of(first, "ACCOUNT_RULE_VIOLATION")
    ok("breaks", "resolve", *db, c, "--reason", "bank_error", "--note", "bank re-credited")
    ok("breaks", "resolve", *db, d, "--reason", "timing", "--note", "swept on 11-01")
    ingest(home, db_url, income_change(0))  # d's evidence changes: the next run reopens it
    before = size(home, db_url)

    def resolve(bid: str, user: str) -> subprocess.Popen[str]:
        return spawn(home, db_url, "breaks", "resolve", bid, "--reason", "other",
                     "--note", f"checked by {user}", user=user)

    with writer_lock(db_url):
        procs = {
            "a-alice": resolve(a, "alice"), "a-bob": resolve(a, "bob"),
            "b-resolve": resolve(b, "erin"),
            "b-assign": spawn(home, db_url, "breaks", "assign", b, "zhang.min", user="carol"),
            "c-carol": spawn(home, db_url, "breaks", "approve", c, user="carol"),
            "c-dave": spawn(home, db_url, "breaks", "approve", c, user="dave"),
            "d-reopen": spawn(home, db_url, "breaks", "reopen", d, "--note", "recalled",
                              user="bob"),
            "reconcile": spawn(home, db_url, "reconcile", "--as-of", AS_OF, "--json"),
        }
        wait_blocked(list(procs.values()), db_url)
    res = {k: done(p) for k, p in procs.items()}
    for rc, out, err in res.values():
        no_raw_text(out, err)
        if rc not in (0, 1):
            clean_refusal(rc, out, err)
    assert res["reconcile"][0] == 1, res["reconcile"]
    officers = {k: v[0] for k, v in res.items() if k != "reconcile"}
    assert set(officers.values()) <= {0, 2}, res

    # two resolves: exactly one wins, the break is pending approval by the winner's resolution
    assert sorted((officers["a-alice"], officers["a-bob"])) == [0, 2], res
    winner = "alice" if officers["a-alice"] == 0 else "bob"
    hist_a = history(home, db_url, a)
    assert [(t["action"], t["user"], t["status"]) for t in hist_a] == [
        ("resolve", winner, "pending_approval")]
    # resolve against assign: the resolve always goes through; the assign only before it
    assert officers["b-resolve"] == 0, res["b-resolve"]
    hist_b = history(home, db_url, b)
    if officers["b-assign"] == 0:
        assert [t["action"] for t in hist_b] == ["assign", "resolve"], hist_b
        assert jok("breaks", "show", *db, b)["assignee"] == "zhang.min"
    else:
        assert [t["action"] for t in hist_b] == ["resolve"], hist_b
    # two approvers: exactly one approval
    assert sorted((officers["c-carol"], officers["c-dave"])) == [0, 2], res
    approver = "carol" if officers["c-carol"] == 0 else "dave"
    hist_c = history(home, db_url, c)
    assert [(t["action"], t["user"]) for t in hist_c] == [("resolve", "alice"),
                                                          ("approve", approver)]
    assert jok("breaks", "show", *db, c)["status"] == "resolved"
    # manual against automatic reopen: one reopen, by bob only if his command succeeded
    hist_d = history(home, db_url, d)
    reopener = "bob" if officers["d-reopen"] == 0 else "bfa"
    assert [(t["action"], t["user"]) for t in hist_d] == [("resolve", "alice"),
                                                          ("reopen", reopener)]
    # the run's working copy agrees with the ledger for every break
    listed = {r["break_id"]: r for r in jok("breaks", "list", *db, "--all", code=1)}
    for bid, hist in ((a, hist_a), (b, hist_b), (c, hist_c), (d, hist_d)):
        assert listed[bid]["status"] == hist[-1]["status"]
        assert listed[bid]["transitions"] == len(hist)
    # one entry per successful officer command and per automatic reopen, and the
    # reconcile run's own record (control.reconcile), nothing else
    wins = sum(rc == 0 for rc in officers.values()) + (reopener == "bfa") + 1
    assert size(home, db_url) == before + wins
    assert breaks_of(reconcile(home, db_url)) == breaks_of(reconcile(home, db_url, "--full"))
    verify_clean(home, db_url)
    for bid, hist in ((a, hist_a), (b, hist_b), (c, hist_c), (d, hist_d)):
        provable(home, db_url, bid, len(hist))
    verify_clean(home, db_url)


# ------------------------------------------------------------- reconciling while ingesting


def test_reconcile_and_nightly_while_an_ingest_runs(tmp_path: Path, db_url: str) -> None:
    """ADR 0018: a run judges one state while an ingest waits; the next run sees the rest.
    The batch (2,001 records) also changes the evidence of a resolved break: whichever
    process sees it reopens it, once. Afterwards an incremental and a full run agree."""
    home = new_ledger(tmp_path, db_url, account_rule(tmp_path) + orphan(tmp_path, "COL-O"))
    db = h(home, db_url)
    (acc,) = ids_of(reconcile(home, db_url), "ACCOUNT_RULE_VIOLATION")
    ok("breaks", "resolve", *db, acc, "--reason", "timing", "--note", "swept on 11-01")
    before = reconcile(home, db_url)
    big = write_jsonl(tmp_path / "big.jsonl", settled(tmp_path, "x", 500) + income_change(0))
    rep_dir = tmp_path / "reports"
    ing = spawn(home, db_url, "ingest", str(big))
    rec = spawn(home, db_url, "reconcile", "--as-of", AS_OF, "--json")
    nig = spawn(home, db_url, "nightly", "--as-of", AS_OF, "--report-dir", str(rep_dir))
    (rc_i, out_i, err_i), (rc_r, out_r, err_r), (rc_n, out_n, err_n) = map(done, (ing, rec, nig))
    assert rc_i == 0, (out_i, err_i)
    assert rc_r in (0, 1), (rc_r, err_r)  # FORMAT §10
    assert rc_n in (0, 1), (rc_n, out_n, err_n)
    for out, err in ((out_i, err_i), (out_r, err_r), (out_n, err_n)):
        no_raw_text(out, err)

    plain = reconcile(home, db_url)
    full = reconcile(home, db_url, "--full")
    assert breaks_of(plain) == breaks_of(full)
    assert plain["summary"] == full["summary"]
    # each concurrent run reported the ledger before the batch or after it, nothing between
    seen = {b[:3] for b in breaks_of(before)}, {b[:3] for b in breaks_of(full)}
    assert {b[:3] for b in breaks_of(json.loads(out_r))} in seen
    nightly_report = json.loads((rep_dir / "latest" / "report.json").read_text("utf-8"))
    assert {b[:3] for b in breaks_of(nightly_report)} in seen
    assert json.loads((rep_dir / "latest.json").read_text("utf-8"))["exit_code"] == rc_n
    # the evidence changed once: one automatic reopen, whoever made it
    hist = history(home, db_url, acc)
    assert [(t["action"], t["user"]) for t in hist] == [("resolve", "alice"), ("reopen", "bfa")]
    # records and their batch's entry, resolve, the big batch and its entry, reopen,
    # one control.reconcile per run (six runs), the nightly's fixity audit, and the one
    # control.rules record of the rules every run used (ADR 0033)
    assert size(home, db_url) == 6 + BATCH + 1 + 2001 + BATCH + 1 + 6 + 1 + 1
    verify_clean(home, db_url)


# ---------------------------------------------------------------------- the nightly lock


def _wait_for(cond: Any, what: str, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _refused_at_once(p: subprocess.Popen[str]) -> str:
    try:
        rc, out, err = done(p, timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        pytest.fail("the second nightly waited instead of exiting 2 at once")
    return clean_refusal(rc, out, err)


def test_two_nightlies_on_one_home(tmp_path: Path, db_url: str) -> None:
    """ADR 0012 / FORMAT §10: while one nightly holds <home>/nightly.lock a second exits 2 at
    once. The first is kept inside its run by holding the writer lock (FORMAT §8.5)."""
    home = new_ledger(tmp_path, db_url, orphan(tmp_path, "COL-O"))
    lock = home / "nightly.lock"
    with writer_lock(db_url):
        first = spawn(home, db_url, "nightly", "--as-of", AS_OF, "--report-dir",
                      str(tmp_path / "r1"))
        _wait_for(lambda: lock.exists() or first.poll() is not None, "the first run's lock")
        assert first.poll() is None, done(first)
        second = spawn(home, db_url, "nightly", "--as-of", AS_OF, "--report-dir",
                       str(tmp_path / "r2"))
        _refused_at_once(second)
        assert lock.exists() and first.poll() is None  # the first run goes on, lock is its own
    rc, out, err = done(first)
    assert rc == 1, (rc, out, err)  # the orphan is a break to work
    no_raw_text(out, err)
    assert not lock.exists()
    assert not (tmp_path / "r2" / "latest.json").exists()
    assert json.loads((tmp_path / "r1" / "latest.json").read_text("utf-8"))["exit_code"] == 1
    st = jok("status", *h(home, db_url))
    assert st["checkpoint_size"] == st["size"]
    # started back to back, unforced: whatever overlaps, at most the refusals are exit 2
    runs = [spawn(home, db_url, "nightly", "--as-of", AS_OF, "--report-dir",
                  str(tmp_path / f"r{k}")) for k in (3, 4)]
    results = [done(p) for p in runs]
    assert any(rc in (0, 1) for rc, _, _ in results), results
    for rc, out, err in results:
        assert rc in (1, 2), (rc, out, err)
        if rc == 2:
            clean_refusal(rc, out, err)
    assert not lock.exists()
    verify_clean(home, db_url)


def test_two_homes_sharing_one_postgresql_database(tmp_path: Path, db_url: str) -> None:
    """ADR 0012 (amended) / FORMAT §10: on PostgreSQL two homes on one database never run a
    nightly at once: the second cannot take the advisory lock and exits 2 at once."""
    if not is_pg(db_url):
        pytest.skip("the advisory lock is PostgreSQL's")
    home = new_ledger(tmp_path, db_url, orphan(tmp_path, "COL-O"))
    other = tmp_path / "other-host" / "home"
    shutil.copytree(home, other)  # the same keys and configuration, another lock file
    with writer_lock(db_url):
        first = spawn(home, db_url, "nightly", "--as-of", AS_OF, "--report-dir",
                      str(tmp_path / "r1"))
        _wait_for(lambda: pg_held(db_url, NIGHTLY_KEY) > 0 or first.poll() is not None,
                  "the first run's advisory lock")
        assert first.poll() is None, done(first)
        second = spawn(other, db_url, "nightly", "--as-of", AS_OF, "--report-dir",
                       str(tmp_path / "r2"))
        _refused_at_once(second)
        assert first.poll() is None
        assert not (other / "nightly.lock").exists()
    rc, out, err = done(first)
    assert rc == 1, (rc, out, err)
    st = jok("status", *h(other, db_url))
    assert st["checkpoint_size"] == st["size"]
    verify_clean(other, db_url)


# ------------------------------------------------ checkpoints and readers during an ingest


def test_checkpoints_and_readers_during_an_ingest(tmp_path: Path, db_url: str) -> None:
    """FORMAT §8.5 / §9.1: each file is one transaction and readers see a snapshot, so a
    checkpoint or a status taken during an ingest sees a batch boundary; readers answer
    (no 'database is locked'); every checkpoint signed meanwhile verifies, also later."""
    home = new_ledger(tmp_path, db_url, settled(tmp_path, "a", 2) + orphan(tmp_path, "COL-O"))
    db = h(home, db_url)
    reconcile(home, db_url)
    s0 = size(home, db_url)
    files = [write_jsonl(tmp_path / f"{t}.jsonl", settled(tmp_path, t, 250)) for t in "xy"]
    batch = 1000 + BATCH  # one file: 1,000 records and the batch's control.ingest entry
    sizes = {s0, s0 + batch, s0 + 2 * batch}
    notes = [tmp_path / "proc.note"]
    ing = spawn(home, db_url, "ingest", *map(str, files))
    cp = spawn(home, db_url, "checkpoint", "--json", "--out", str(notes[0]))
    st = spawn(home, db_url, "status", "--json")
    slowest = 0.0
    k = 0
    while ing.poll() is None:
        k += 1
        started = time.monotonic()
        assert jok("status", *db)["size"] in sizes
        ok("breaks", "list", *db, code=(0, 1))
        ok("trace", *db, "CA-a0")
        if k % 3 == 0:
            notes.append(tmp_path / f"in-{k}.note")
            signed = jok("checkpoint", *db, "--out", str(notes[-1]))
            assert signed["size"] in sizes, signed
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.05)
    for p in (ing, cp, st):
        rc, out, err = done(p)
        assert rc == 0, (p.args, rc, out, err)
        no_raw_text(out, err)
        if p is not ing:
            assert json.loads(out)["size"] in sizes, out
    assert slowest < 60, slowest
    assert size(home, db_url) == s0 + 2 * batch
    verify_clean(home, db_url)
    for note in notes:
        verify_clean(home, db_url, "--against", str(note))
    ingest(home, db_url, settled(tmp_path, "z", 1))  # later: the ledger only grew
    ok("checkpoint", *db)
    for note in notes:
        verify_clean(home, db_url, "--against", str(note))
    verify_clean(home, db_url, "--since-checkpoint")


# ---------------------------------------------------------------------------- SIGKILL


def _kill_at(p: subprocess.Popen[str], delay: float) -> bool:
    """SIGKILL p after delay seconds if it still runs; True when it was killed running."""
    time.sleep(delay)
    killed = p.poll() is None
    if killed:
        os.kill(p.pid, signal.SIGKILL)
    p.communicate()
    return killed


def _timed(p: subprocess.Popen[str]) -> tuple[float, int, str, str]:
    started = time.monotonic()
    rc, out, err = done(p)
    return time.monotonic() - started, rc, out, err


_VOLATILE = ("first_seen", "last_seen", "updated_at", "last_seq", "break_id", "records",
             "evidence", "resolved_evidence", "amounts", "message", "params")


def _state(home: Path, db: str) -> list[str]:
    """``breaks list --all --json`` without ids, timestamps and per-record members."""
    rows = jok("breaks", "list", *h(home, db), "--all", code=(0, 1))
    return sorted(json.dumps({k: v for k, v in r.items() if k not in _VOLATILE},
                              sort_keys=True) for r in rows)


def test_sigkill_breaks_resolve(tmp_path: Path, db_url: str) -> None:
    """A resolve killed at a random moment leaves the break as it was or as resolved; running
    it again converges to what an uninterrupted resolve gives (FORMAT §2.5, §8.5)."""
    rng = random.Random(2041)
    recs = [r for i in range(4) for r in orphan(tmp_path, f"COL-{i}")]
    home = new_ledger(tmp_path, db_url, recs)
    db = h(home, db_url)
    ids = ids_of(reconcile(home, db_url), "ORPHAN_MOVEMENT")
    args = ("--reason", "bank_error", "--note", "bank re-credited")
    d, rc, out, err = _timed(spawn(home, db_url, "breaks", "resolve", ids[0], *args))
    assert rc == 0, (out, err)
    for bid in ids[1:]:
        _kill_at(spawn(home, db_url, "breaks", "resolve", bid, *args), rng.uniform(0.6, 1.05) * d)
        settle(db_url)
        verify_clean(home, db_url)
        n = len(history(home, db_url, bid))
        assert n in (0, 1)
        again = invoke("breaks", "resolve", *db, bid, *args)
        if n:  # it had landed: the same command is now a refused transition
            clean_refusal(again.exit_code, again.stdout, again.stderr)
        else:
            assert again.exit_code == 0, again.output
        assert len(history(home, db_url, bid)) == 1
    assert len(set(_state(home, db_url))) == 1  # every break as the uninterrupted one
    for bid in ids:
        provable(home, db_url, bid, 1)
    verify_clean(home, db_url)


def test_sigkill_reconcile(tmp_path: Path, db_url: str) -> None:
    """A reconcile killed at a random moment, then run again, gives the report of a full run,
    and a changed evidence is reopened exactly once (ADR 0011, 0014, 0018)."""
    rng = random.Random(2042)
    home = new_ledger(tmp_path, db_url, account_rule(tmp_path) + orphan(tmp_path, "COL-O"))
    db = h(home, db_url)
    (acc,) = ids_of(reconcile(home, db_url), "ACCOUNT_RULE_VIOLATION")
    d = 0.0
    for r in range(4):
        ok("breaks", "resolve", *db, acc, "--reason", "timing", "--note", f"round {r}")
        ingest(home, db_url, income_change(r))
        p = spawn(home, db_url, "reconcile", "--as-of", AS_OF, "--json")
        if r == 0:
            d, rc, out, err = _timed(p)
            assert rc == 1, (out, err)
            reference = _state(home, db_url)
        else:
            _kill_at(p, rng.uniform(0.6, 1.05) * d)
            settle(db_url)
        verify_clean(home, db_url)
        plain = reconcile(home, db_url)
        assert breaks_of(plain) == breaks_of(reconcile(home, db_url, "--full"))
        assert [t["action"] for t in history(home, db_url, acc)] == ["resolve", "reopen"] * (r + 1)
        if r == 0:
            assert _state(home, db_url) == reference  # re-running changes nothing
    provable(home, db_url, acc, 8)


def test_sigkill_nightly_and_stale_lock(tmp_path: Path, db_url: str) -> None:
    """ADR 0012: a nightly killed while it holds the lock leaves a stale lock (its process is
    gone) that the next nightly takes over with a note; after any kill the next run
    converges: everything signed, reports as a full reconciliation."""
    rng = random.Random(2043)
    home = new_ledger(tmp_path, db_url, account_rule(tmp_path) + orphan(tmp_path, "COL-O"))
    db = h(home, db_url)
    rep = tmp_path / "reports"
    night = ("nightly", "--as-of", AS_OF, "--report-dir", str(rep))
    lock = home / "nightly.lock"
    (acc,) = ids_of(reconcile(home, db_url), "ACCOUNT_RULE_VIOLATION")
    d = 0.0
    for r in range(5):
        ok("breaks", "resolve", *db, acc, "--reason", "timing", "--note", f"round {r}")
        ingest(home, db_url, income_change(r))
        p = spawn(home, db_url, *night)
        if r == 0:  # killed for sure while it holds the lock
            with writer_lock(db_url):
                _wait_for(lambda: lock.exists() or p.poll() is not None,  # noqa: B023
                          "the nightly's lock")
                assert _kill_at(p, 0.0)
        elif r == 1:  # uninterrupted: the reference duration
            d, rc, out, err = _timed(p)
            assert rc == 1, (out, err)
            assert not lock.exists()
        else:
            _kill_at(p, rng.uniform(0.6, 1.05) * d)
        settle(db_url)
        left = lock.exists()
        if r == 0:
            assert left, "a killed nightly leaves its lock behind"
        verify_clean(home, db_url)
        res = ok(*night[:1], *db, *night[1:], code=1)
        if left:
            note = res.stdout + res.stderr + (rep / "latest.json").read_text("utf-8")
            assert "stale" in note, note
        assert not lock.exists()
        assert json.loads((rep / "latest.json").read_text("utf-8"))["exit_code"] == 1
        st = jok("status", *db)
        assert st["checkpoint_size"] == st["size"]
        assert [t["action"] for t in history(home, db_url, acc)] == ["resolve", "reopen"] * (r + 1)
        assert breaks_of(reconcile(home, db_url)) == breaks_of(reconcile(home, db_url, "--full"))
    verify_clean(home, db_url)


def test_sigkill_forget(tmp_path: Path, db_url: str) -> None:
    """FORMAT §4.6: a forget killed at a random moment erased all of the person or nothing;
    the ledger verifies, and forgetting again gives what an uninterrupted forget gives."""
    rng = random.Random(2044)
    people = [f"11010119900101{1000 + i}" for i in range(5)]
    home = new_ledger(tmp_path, db_url,
                      [benefit_payment(f"BP-{i}", p) for i, p in enumerate(people)])
    db = h(home, db_url)
    full_reveal = jok("show", *db, "BP-4", *REVEAL)["revealed"]
    assert set(full_reveal) == {"account", "person_id"}
    d, rc, out, err = _timed(spawn(home, db_url, "forget", people[0], "--yes"))
    assert rc == 0, (out, err)
    assert jok("show", *db, "BP-0", *REVEAL)["revealed"] == {}
    for i in (1, 2, 3):
        before = size(home, db_url)
        _kill_at(spawn(home, db_url, "forget", people[i], "--yes"), rng.uniform(0.6, 1.05) * d)
        settle(db_url)
        verify_clean(home, db_url)
        landed = size(home, db_url) - before
        assert landed in (0, 1)
        shown = jok("show", *db, f"BP-{i}", *REVEAL)["revealed"]
        assert set(shown) == (set() if landed else set(full_reveal))  # all or nothing
        ok("forget", *db, people[i], "--yes")
        assert jok("show", *db, f"BP-{i}", *REVEAL)["revealed"] == {}
    assert jok("show", *db, "BP-4", *REVEAL)["revealed"] == full_reveal
    verify_clean(home, db_url)
