"""A forged tree is never signed: the attack of the insider review, replayed on both backends.

The application role may INSERT into ``entries`` and ``tree_nodes`` (it must, to append).
It appends well-chained entries and one stored level-1 node that commits to two made-up
leaves (a "payment" of 999,999.00). Before the fix, the next ``bfa checkpoint`` signed
the root folded from that node, and the made-up payment had an inclusion proof that
verified offline. Now every signing path refuses (exit 3) and signs nothing, and
``verify --since-checkpoint`` reports the forged node (FORMAT.md §5.5, §6.3).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from ledger import Ledger, LedgerIntegrityError, encode_leaf
from tests._insider import app_role, append_raw, node
from tests._records import payment_event, write_jsonl

BATCH = 1  # the control.ingest entry that closes every batch that appends (FORMAT.md §2.5)
HONEST = 3 + BATCH  # the entries of _attack's honest batch, all signed


def _fake_leaf_hash(seq: int, amount: str) -> bytes:
    leaf = encode_leaf(seq, b"\x11" * 32, payment_event(900 + seq, amount=amount),
                       "2026-11-23T08:00:00.000000+00:00")
    return hashlib.sha256(b"\x00" + leaf).digest()


def _attack(led: Ledger, tmp_path: Path) -> None:
    """Three honest records and their batch's control.ingest entry (entries 0 to 3) and a
    checkpoint; then four entries appended by the insider, with the level-1 node over
    entries 4 and 5 forged. (On PostgreSQL ``app_role``'s grant appends a control.grant
    entry first, entry 4, and the insider's entries are 5 to 8: the insider's first
    entry completes node (1, 2) on both backends.)"""
    led.ingest([str(write_jsonl(tmp_path / "a.jsonl", [payment_event(i) for i in range(3)]))],
               None)
    led.checkpoint()
    forged = node(_fake_leaf_hash(4, "999999.00"), _fake_leaf_hash(5, "1.00"))
    with app_role(led) as conn:
        recs = [payment_event(i) for i in range(10, 14)]
        append_raw(conn, recs, forge={(1, 2): forged})
    with led.store.reader() as conn:  # the forgery is in place
        assert conn.execute(text("SELECT hash FROM tree_nodes WHERE level = 1 AND idx = 2")
                            ).scalar_one() == forged


def _checkpoints(led: Ledger) -> list[int]:
    with led.store.reader() as conn:
        return [int(x) for x in conn.execute(
            text("SELECT tree_size FROM checkpoints ORDER BY tree_size")).scalars()]


def test_checkpoint_refuses_a_forged_tree(led: Ledger, tmp_path: Path) -> None:
    _attack(led, tmp_path)
    with pytest.raises(LedgerIntegrityError) as e:
        led.checkpoint()
    assert e.value.problem.code == "derived-mismatch"
    assert "tree node (level 1, index 2)" in str(e.value)
    assert _checkpoints(led) == [HONEST], "something was signed over the forgery"
    res = led.verify(since_checkpoint=True)
    assert not res.ok and res.problems[0].code == "derived-mismatch"
    assert res.root is None
    full = led.verify()
    assert not full.ok and full.problems[0].code == "derived-mismatch"


def test_a_clean_resumed_check_gives_the_root_it_signs(led: Ledger, tmp_path: Path) -> None:
    """The signed root is the one folded from the entry hashes; verified_size moves only
    over what the check covered."""
    from ledger._merkle import root_from_leaf_hashes

    led.ingest([str(write_jsonl(tmp_path / "a.jsonl", [payment_event(i) for i in range(7)]))],
               None)
    assert led.checkpoint().size == 7 + BATCH
    led.ingest([str(write_jsonl(tmp_path / "b.jsonl", [payment_event(i) for i in range(7, 13)]))],
               None)
    cp = led.checkpoint()
    with led.store.reader() as conn:
        hashes = [bytes(h) for h in conn.execute(
            text("SELECT entry_hash FROM entries ORDER BY seq")).scalars()]
    assert cp.size == 13 + 2 * BATCH and cp.root == root_from_leaf_hashes(hashes)
    assert led.status().verified_size == 13 + 2 * BATCH
    assert led.verify(since_checkpoint=True).ok


def test_a_stored_node_beyond_the_tree_is_reported(led: Ledger, tmp_path: Path) -> None:
    led.ingest([str(write_jsonl(tmp_path / "a.jsonl", [payment_event(i) for i in range(5)]))],
               None)
    led.checkpoint()
    plant = "INSERT INTO tree_nodes (level, idx, hash) VALUES (1, 7, :h)"
    if led.store.dialect == "postgresql":  # the duty trigger refuses the role (FORMAT §8.3)
        with pytest.raises(Exception, match="covers entries the ledger does not hold"), \
                app_role(led) as conn:
            conn.execute(text(plant), {"h": b"\x22" * 32})
    with (led.store.engine.begin() if led.store.dialect == "postgresql"
          else app_role(led)) as conn:  # the owner: only verification stops it
        conn.execute(text(plant), {"h": b"\x22" * 32})
    with pytest.raises(LedgerIntegrityError, match=r"node \(level 1, index 7\), beyond a tree"):
        led.checkpoint()
    assert not led.verify(since_checkpoint=True).ok


def test_cli_checkpoint_and_nightly_exit_3_and_sign_nothing(
        ledger_home: dict[str, Any], tmp_path: Path) -> None:
    from cli import (
                bfa,
    )

    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        _attack(led, tmp_path)
    finally:
        led.close()
    env = {"BFA_HOME": ledger_home["home"], "BFA_DATABASE_URL": ledger_home["db"],
           "BFA_USER": "tester"}
    runner = CliRunner()
    r = runner.invoke(bfa, ["checkpoint"], env=env)
    assert r.exit_code == 3, r.output
    assert "level 1, index 2" in r.output
    r = runner.invoke(bfa, ["verify", "--since-checkpoint"], env=env)
    assert r.exit_code == 3, r.output
    r = runner.invoke(bfa, ["nightly", "--report-dir", str(tmp_path / "reports")], env=env)
    assert r.exit_code == 3, r.output
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        assert _checkpoints(led) == [HONEST]
    finally:
        led.close()
