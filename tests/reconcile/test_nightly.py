"""``bfa nightly``: the lock (with real processes), stale locks, exit codes, reports, delta."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

import cli._breaks_cmds  # noqa: F401  (registers `bfa nightly`)
from cli import bfa
from ledger import Ledger
from reconcile.reports._nightly import NightlyLock, NightlyLockedError, run_nightly
from reconcile.workflow._workflow import approve_break, list_breaks, resolve_break
from tests._records import payment_event
from tests.reconcile import _scenarios as sc

AS_OF = sc.AS_OF.isoformat()
BATCH = 1  # the control.ingest entry that closes every batch that appends (FORMAT.md §2.5)


def _env(home: dict[str, Any]) -> dict[str, str]:
    return {"BFA_HOME": home["home"], "BFA_DATABASE_URL": home["db"], "BFA_USER": "cron"}


def _nightly(home: dict[str, Any], out: Path, *extra: str) -> Any:
    return CliRunner().invoke(bfa, ["nightly", "--report-dir", str(out), "--as-of", AS_OF,
                                    *extra], env=_env(home))


def _fill(home: dict[str, Any], tmp_path: Path, extra: list[dict[str, Any]]) -> None:
    led = Ledger.open(home["home"], home["db"])
    try:
        sc.ingest(led, tmp_path, sc.base(tmp_path) + extra)
    finally:
        led.close()


def test_clean_run_signs_and_writes_reports(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    _fill(ledger_home, tmp_path, [])
    out = tmp_path / "reports"
    res = _nightly(ledger_home, out)
    assert res.exit_code == 0, res.output
    day = (out / "latest").resolve()
    assert re.fullmatch(r"20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9]{6}\+0800(-[0-9]+)?", day.name)
    for name in ("report.json", "report.csv", "report.html", "nightly.json"):
        assert (day / name).stat().st_size > 0
    assert os.readlink(out / "latest") == day.name
    doc = json.loads((out / "latest.json").read_text())
    assert doc == json.loads((day / "nightly.json").read_text())
    assert doc["exit_code"] == 0 and doc["outcome"] == "clean" and doc["verify"]["ok"]
    assert doc["summary"]["mode"] == "full"  # the first run; the next ones are incremental
    assert doc["checkpoint_root"] and doc["backdated"] is False
    assert _nightly(ledger_home, out).exit_code == 0
    doc = json.loads((out / "latest.json").read_text())
    assert doc["summary"]["mode"] == "incremental"
    # two runs (the same day, maybe the same second): two folders, both in the index
    second = (out / "latest").resolve()
    assert second != day and (day / "nightly.json").is_file()
    index = json.loads((out / "index.json").read_text())
    assert [r["folder"] for r in index] == [day.name, second.name]
    assert index[1]["checkpoint"] == doc["checkpoint"] and index[1]["outcome"] == "clean"
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        assert doc["checkpoint"] == led.size()  # its own control.reconcile entry included
        with led.store.reader() as conn:
            cp = led.latest_checkpoint(conn)
        assert cp is not None and cp[0] == led.size()
    finally:
        led.close()
    assert json.loads((day / "report.json").read_text())["breaks"] == []
    assert not (Path(ledger_home["home"]) / "nightly.lock").exists()


def test_breaks_exit_1_and_delta(ledger_home: dict[str, Any], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(ledger_home, tmp_path, sc.orphan(tmp_path, False) + sc.unsettled(tmp_path, False)[:1])
    out = tmp_path / "reports"
    res = _nightly(ledger_home, out)
    assert res.exit_code == 1, res.output
    report = json.loads((out / "latest" / "report.json").read_text())
    n = len(report["breaks"])
    assert f"{n} breaks ({n} unresolved): {n} new, 0 closed, 0 reopened" in res.output
    statuses = {b["code"]: b["status"] for b in report["breaks"]}
    assert statuses["ORPHAN_MOVEMENT"] == statuses["UNSETTLED_EVENT"] == "open"
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        ids = {s.code: s.break_id for s in list_breaks(led)}
        for code, other in ids.items():  # side effects of the injected records: settle them
            if code not in ("ORPHAN_MOVEMENT", "UNSETTLED_EVENT") and resolve_break(
                    led, other, "alice", "other", "side effect").needs_approval:
                approve_break(led, other, "bob")
        # settle BP-2 (closes UNSETTLED_EVENT); resolve the orphan with four-eyes
        sc.ingest(led, tmp_path, sc.with_vouchers(
            tmp_path, [sc.payment("PAY-2", allocations=[("BP-2", "3456.78")])], "b2"), "b2")
        resolve_break(led, ids["ORPHAN_MOVEMENT"], "alice", "bank_error", "recalled")
        run = run_nightly(led, out, sc.AS_OF)
        assert run.exit_code == 1  # pending approval is not resolved
        assert ids["UNSETTLED_EVENT"] in [d["id"] for d in run.delta.closed]
        assert run.delta.new == () and run.delta.reopened == ()
        approve_break(led, ids["ORPHAN_MOVEMENT"], "bob")
        run = run_nightly(led, out, sc.AS_OF)
        assert run.exit_code == 0 and run.unresolved == 0  # only a resolved break is left
        # the evidence changes: the break is reopened automatically and the delta says so
        from reconcile.matching import _run as run_mod

        def with_evidence(value: str) -> Any:
            real = run_mod._with_evidence

            def run(*a: Any, **kw: Any) -> Any:  # every break's records changed, say
                return [b.model_copy(update={"evidence": value}) for b in real(*a, **kw)]
            return run

        monkeypatch.setattr(run_mod, "_with_evidence", with_evidence("ab" * 32))
        run_nightly(led, out, sc.AS_OF)
        run_nightly(led, out, sc.AS_OF)  # resolve again below with this evidence
        resolve_break(led, ids["ORPHAN_MOVEMENT"], "alice", "bank_error", "recalled")
        approve_break(led, ids["ORPHAN_MOVEMENT"], "bob")
        assert run_nightly(led, out, sc.AS_OF).exit_code == 0
        monkeypatch.undo()
        monkeypatch.setattr(run_mod, "_with_evidence", with_evidence("cd" * 32))
        run = run_nightly(led, out, sc.AS_OF)
        assert run.exit_code == 1
        assert [d["id"] for d in run.delta.reopened] == [ids["ORPHAN_MOVEMENT"]]
        assert json.loads((out / "latest.json").read_text())["delta"]["reopened"][0][
            "status"] == "open"
    finally:
        led.close()


def _tamper(led: Ledger, seq: int = 2) -> None:
    with led.store.engine.connect() as conn, conn.begin():
        if led.store.dialect == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS entries_no_update"))
        leaf = bytes(conn.execute(text("SELECT leaf FROM entries WHERE seq = :s"),
                                  {"s": seq}).scalar_one())
        assert b'"region":"440100"' in leaf, leaf  # a record of region 440100 to tamper with
        conn.execute(text("UPDATE entries SET leaf = :l WHERE seq = :s"),
                     {"s": seq, "l": leaf.replace(b'"region":"440100"', b'"region":"440199"')})


def test_integrity_failure_exit_3_nothing_signed(ledger_home: dict[str, Any],
                                                 tmp_path: Path) -> None:
    _fill(ledger_home, tmp_path, [])
    out = tmp_path / "reports"
    assert _nightly(ledger_home, out).exit_code == 0
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        sc.ingest(led, tmp_path, [payment_event(7)], "more")
        size = led.size()
        # the batch's last record (before its control.ingest entry): the incremental
        # verify reads what the last run did not
        _tamper(led, size - 1 - BATCH)
        with led.store.reader() as conn:
            before = led.latest_checkpoint(conn)
    finally:
        led.close()
    res = _nightly(ledger_home, out)
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        with led.store.reader() as conn:
            assert led.latest_checkpoint(conn) == before  # nothing signed
        assert led.size() == size  # nothing appended
    finally:
        led.close()
    assert res.exit_code == 3, res.output
    assert "INTEGRITY FAILURE" in res.output
    report = json.loads((out / "latest" / "report.json").read_text())
    assert [b["code"] for b in report["breaks"]] == ["LEDGER_INTEGRITY"]
    assert json.loads((out / "latest.json").read_text())["checkpoint"] is None


def test_integrity_failure_in_new_entries(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    _fill(ledger_home, tmp_path, [])
    out = tmp_path / "reports"
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        size = led.size()
        _tamper(led)  # no checkpoint yet: the first nightly verifies everything
    finally:
        led.close()
    res = _nightly(ledger_home, out)
    assert res.exit_code == 3, res.output
    doc = json.loads((out / "latest.json").read_text())
    assert doc["outcome"] == "integrity" and doc["checkpoint"] is None
    assert doc["verify"]["problems"][0]["seq"] == 2
    report = json.loads((out / "latest" / "report.json").read_text())
    assert [b["code"] for b in report["breaks"]] == ["LEDGER_INTEGRITY"]
    assert "entry 2" in report["breaks"][0]["message"]
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        with led.store.reader() as conn:
            assert led.latest_checkpoint(conn) is None
        assert led.size() == size
    finally:
        led.close()


# -- the lock ------------------------------------------------------------------------------
def _bfa(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def _proc_env(home: dict[str, Any]) -> dict[str, str]:
    return {**os.environ, **_env(home)}


@pytest.mark.slow
def test_two_processes_never_overlap(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    _fill(ledger_home, tmp_path, [payment_event(100 + i) for i in range(300)])
    lock = Path(ledger_home["home"]) / "nightly.lock"
    out = tmp_path / "reports"
    args = _bfa("nightly", "--report-dir", str(out), "--as-of", AS_OF)
    first = subprocess.Popen(args, env=_proc_env(ledger_home), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not lock.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        first.send_signal(signal.SIGSTOP)  # freeze it while it holds the lock
        second = subprocess.run(args, env=_proc_env(ledger_home), capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert "another nightly run holds" in second.stderr
        assert f"pid {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGCONT)
    _out, err = first.communicate(timeout=300)
    assert first.returncode == 1, err  # the 300 unsettled events are breaks
    assert not lock.exists()


@pytest.mark.slow
def test_stale_lock_of_a_dead_process_is_taken_over(ledger_home: dict[str, Any],
                                                    tmp_path: Path) -> None:
    _fill(ledger_home, tmp_path, [])
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from reconcile.reports._nightly import NightlyLock; "
         "NightlyLock(Path(sys.argv[1])).acquire(); "
         "print('locked', flush=True); time.sleep(600)",
         str(Path(ledger_home["home"]) / "nightly.lock")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    out = tmp_path / "reports"
    args = _bfa("nightly", "--report-dir", str(out), "--as-of", AS_OF)
    busy = subprocess.run(args, env=_proc_env(ledger_home), capture_output=True, text=True,
                          timeout=120)
    assert busy.returncode == 2 and "another nightly run holds" in busy.stderr
    holder.kill()
    holder.wait()
    done = subprocess.run(args, env=_proc_env(ledger_home), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "took over a stale nightly lock" in done.stderr
    assert f"process {holder.pid} is no longer running" in done.stderr


def test_old_lock_is_stale(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    _fill(ledger_home, tmp_path, [])
    lock = Path(ledger_home["home"]) / "nightly.lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                "started_at": time.time() - 7200, "token": "x"}))
    out = tmp_path / "reports"
    res = _nightly(ledger_home, out, "--lock-max-age", "10000")
    assert res.exit_code == 2 and "another nightly run holds" in res.output  # alive, not old
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                "started_at": time.time() - 7200, "token": "x"}))
    res = CliRunner().invoke(bfa, ["nightly", "--report-dir", str(out), "--as-of", AS_OF],
                             env={**_env(ledger_home), "BFA_NIGHTLY_LOCK_MAX_AGE": "60"})
    assert res.exit_code == 0, res.output
    assert "took over a stale nightly lock" in res.output
    assert "more than the maximum 60 s" in res.output
    assert not lock.exists()


def test_lock_unit(tmp_path: Path) -> None:
    path = tmp_path / "nightly.lock"
    a = NightlyLock(path)
    assert a.acquire() is None
    with pytest.raises(NightlyLockedError, match="another nightly run holds"):
        NightlyLock(path).acquire()
    b = NightlyLock(path)
    b.release()  # not b's lock: left alone
    assert path.exists()
    a.release()
    assert not path.exists()
    path.write_text("garbage")
    note = NightlyLock(path).acquire()
    assert note is not None and "unreadable" in note


def test_two_homes_sharing_a_database_never_overlap(ledger_home: dict[str, Any],
                                                    tmp_path: Path) -> None:
    """A second host (its own home, its own lock file) on the same PostgreSQL database:
    the database's advisory lock stops its run while another holds it, and the server
    frees the lock of a killed holder."""
    if not ledger_home["db"].startswith("postgresql"):
        pytest.skip("SQLite's database is one file on one host: the home's lock file serves")
    _fill(ledger_home, tmp_path, [])
    other = dict(ledger_home, home=str(tmp_path / "other-host-home"))
    shutil.copytree(ledger_home["home"], other["home"])
    out = tmp_path / "reports"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from ledger import Ledger; "
         "from reconcile.reports._nightly import DB_LOCK; "
         "led = Ledger.open(sys.argv[1], sys.argv[2]); "
         "cm = led.store.exclusive(DB_LOCK); print('locked' if cm.__enter__() else 'busy', "
         "flush=True); time.sleep(600)", ledger_home["home"], ledger_home["db"]],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        busy = _nightly(other, out)
        assert busy.exit_code == 2, busy.output
        assert "holds the database's lock" in busy.output
        assert not (Path(other["home"]) / "nightly.lock").exists()  # its own lock released
    finally:
        holder.kill()
        holder.wait()
    done = _nightly(other, out)
    assert done.exit_code == 0, done.output


def test_a_lost_lock_connection_neither_masks_the_result_nor_keeps_the_lock(
        led: Ledger) -> None:
    """The server ends the lock's session while the block runs (a restart, a network
    cut): leaving the block raises nothing of its own, and the lock is free again."""
    if led.store.dialect != "postgresql":
        pytest.skip("the database lock is PostgreSQL's (SQLite: the home's lock file)")
    name = "bfa test lost lock"
    with led.store.exclusive(name) as taken:
        assert taken
        with led.store.engine.connect() as admin:
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
            pid = admin.execute(text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1 "
                "AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())"),
                {"hi": key >> 32, "lo": key & 0xFFFFFFFF}).scalars().all()
            assert pid, "the lock's session holds an advisory lock"
            for p in pid:
                admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": p})
            admin.commit()
    with led.store.exclusive(name) as again:
        assert again
