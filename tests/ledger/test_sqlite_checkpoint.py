"""SQLite's WAL is checkpointed in the background (ledger._store._Checkpointer).

What is checked is what the checkpoint is for: after it, the database file *alone*
(copied without its ``-wal``) holds every committed row.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from ledger._store import CHECKPOINT_BYTES, Store

MB = 1024 * 1024


def _store_at(tmp_path: Path) -> tuple[Store, Path]:
    db = tmp_path / "ledger.db"
    store = Store(f"sqlite:///{db}")
    with store.writer() as conn:
        conn.exec_driver_sql("CREATE TABLE blobs (n INTEGER, b BLOB)")
    return store, db


def _write(store: Store, n: int, size: int) -> None:
    with store.writer() as conn:
        conn.exec_driver_sql(f"INSERT INTO blobs VALUES ({n}, randomblob({size}))")


def _rows_in_file_alone(db: Path, tmp_path: Path) -> int:
    """Rows of ``blobs`` in a copy of the database file without its WAL."""
    copy = tmp_path / "alone.db"
    shutil.copyfile(db, copy)
    con = sqlite3.connect(copy)
    try:
        return int(con.execute("SELECT count(*) FROM blobs").fetchone()[0])
    except sqlite3.OperationalError:  # the table itself is still only in the WAL
        return -1
    finally:
        con.close()


def test_connections_do_not_checkpoint_on_commit(tmp_path: Path) -> None:
    store, _ = _store_at(tmp_path)
    try:
        with store.reader() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    finally:
        store.dispose()


def test_a_large_commit_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    store, db = _store_at(tmp_path)
    try:
        for n in range(3):
            _write(store, n, (CHECKPOINT_BYTES // 2) + MB)
        checkpointer = store._checkpointer
        assert checkpointer is not None
        checkpointer.join()  # only the background thread: no checkpoint of its own
        assert _rows_in_file_alone(db, tmp_path) >= 1
    finally:
        store.dispose()


def test_small_commits_start_no_thread(tmp_path: Path) -> None:
    store, _ = _store_at(tmp_path)
    try:
        _write(store, 1, 1000)
        assert store._checkpointer is not None and store._checkpointer._thread is None
    finally:
        store.dispose()


def test_wait_checkpoint_puts_every_commit_in_the_file(tmp_path: Path) -> None:
    store, db = _store_at(tmp_path)
    try:
        for n in range(5):
            _write(store, n, MB)  # a background checkpoint starts on the way
        assert store._checkpointer is not None
        store._checkpointer.join()
        # a commit no background run covers (not through writer(): no thread starts)
        with store.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO blobs VALUES (99, randomblob(10))")
        assert _rows_in_file_alone(db, tmp_path) <= 5  # not row 99 yet
        store.wait_checkpoint()
        assert _rows_in_file_alone(db, tmp_path) == 6
    finally:
        store.dispose()


def test_a_failed_checkpoint_is_harmless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint that cannot run (here: its connection cannot be opened; the store's
    own connection is already open in its pool) changes nothing: the data stays in the
    WAL, readable, and the next checkpoint writes it."""
    store, db = _store_at(tmp_path)
    try:
        real = sqlite3.connect

        def refuse(*args: object, **kwargs: object) -> sqlite3.Connection:
            raise sqlite3.OperationalError("unable to open database file")

        monkeypatch.setattr(sqlite3, "connect", refuse)
        _write(store, 1, CHECKPOINT_BYTES + MB)
        store.wait_checkpoint()
        with store.reader() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM blobs").scalar() == 1
        monkeypatch.setattr(sqlite3, "connect", real)
        _write(store, 2, 10)
        store.wait_checkpoint()
        assert _rows_in_file_alone(db, tmp_path) == 2
    finally:
        store.dispose()
