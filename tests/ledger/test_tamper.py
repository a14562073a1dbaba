"""Tampering behind the application's back is caught by verification, on both backends.

Each test bypasses the append-only triggers the way a database superuser could
(SQLite: drop the trigger; PostgreSQL: ``session_replication_role = replica``),
changes history, and checks that ``verify`` names the first bad entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ledger import Ledger, Signer
from ledger._note import Checkpoint, sign_checkpoint
from tests._records import payment_event, superuser, write_jsonl

BATCH = 1  # the control.ingest entry that closes every batch that appends (FORMAT.md §2.5)


def _fill(led: Ledger, tmp_path: Path, n: int = 12, checkpoint: bool = True) -> None:
    """``n`` business records (entries 0 to n - 1), then the batch's control.ingest entry."""
    led.ingest([str(write_jsonl(tmp_path / "a.jsonl", [payment_event(i) for i in range(n)]))],
               None)
    if checkpoint:
        led.checkpoint()


def _first(led: Ledger, **kw: Any) -> tuple[str, int | None, str]:
    res = led.verify(**kw)
    assert not res.ok, "tampering went unnoticed"
    p = res.problems[0]
    return p.code, p.seq, p.message


def test_clean_ledger_verifies(led: Ledger, tmp_path: Path) -> None:
    _fill(led, tmp_path)
    assert led.verify().ok


def test_payload_changed(led: Ledger, tmp_path: Path) -> None:
    _fill(led, tmp_path)
    with superuser(led) as conn:
        leaf = bytes(conn.execute(text("SELECT leaf FROM entries WHERE seq = 5")).scalar_one())
        conn.execute(text("UPDATE entries SET leaf = :l WHERE seq = 5"),
                     {"l": leaf.replace(b'"3456.78"', b'"3956.78"')})
    code, seq, msg = _first(led)
    assert (code, seq) == ("payload-changed", 5)
    assert "entry 5: payload changed" in msg


def test_payload_and_hash_rewritten(led: Ledger, tmp_path: Path) -> None:
    """Recomputing the entry hash too breaks the chain at the next entry."""
    import hashlib

    _fill(led, tmp_path)
    with superuser(led) as conn:
        leaf = bytes(conn.execute(text("SELECT leaf FROM entries WHERE seq = 5")).scalar_one())
        forged = leaf.replace(b'"3456.78"', b'"3956.78"')
        conn.execute(text("UPDATE entries SET leaf = :l, entry_hash = :h WHERE seq = 5"),
                     {"l": forged, "h": hashlib.sha256(b"\x00" + forged).digest()})
    code, seq, _ = _first(led)
    assert (code, seq) == ("chain-broken", 6)


def test_entry_missing(led: Ledger, tmp_path: Path) -> None:
    _fill(led, tmp_path)
    with superuser(led) as conn:
        conn.execute(text("DELETE FROM entries WHERE seq = 3"))
    code, seq, msg = _first(led)
    assert (code, seq) == ("entry-missing", 3)
    assert "entry 3 is missing" in msg


def test_reordered(led: Ledger, tmp_path: Path) -> None:
    _fill(led, tmp_path)
    with superuser(led) as conn:
        conn.execute(text("UPDATE entries SET seq = 100 WHERE seq = 4"))
        conn.execute(text("UPDATE entries SET seq = 4 WHERE seq = 5"))
        conn.execute(text("UPDATE entries SET seq = 5 WHERE seq = 100"))
    code, seq, msg = _first(led)
    assert (code, seq) == ("reordered", 4)
    assert "its leaf says it is entry 5" in msg


def test_tail_truncated_behind_checkpoint(led: Ledger, tmp_path: Path) -> None:
    _fill(led, tmp_path)
    with superuser(led) as conn:
        conn.execute(text("DELETE FROM entries WHERE seq >= 9"))
    code, _seq, msg = _first(led)
    assert code == "truncated"
    assert f"covers {12 + BATCH} entries but the ledger holds 9" in msg


def test_checkpoint_not_signed_by_key(led: Ledger, tmp_path: Path) -> None:
    _fill(led, tmp_path)
    other = Signer.generate(led.origin)
    with superuser(led) as conn:
        root = bytes(conn.execute(text("SELECT root_hash FROM checkpoints")).scalar_one())
        note = sign_checkpoint(Checkpoint(led.origin, 12 + BATCH, root), other)
        conn.execute(text("UPDATE checkpoints SET note = :n"), {"n": note})
    code, seq, msg = _first(led)
    assert (code, seq) == ("checkpoint-signature", 12 + BATCH)
    assert "not signed by the ledger key" in msg


def test_history_rewritten_and_resigned_caught_against_auditor(
    led: Ledger, tmp_path: Path
) -> None:
    """An operator with the key rewrites everything and re-signs: the auditor's copy catches it."""
    _fill(led, tmp_path)
    auditor = led.checkpoint().note
    with superuser(led) as conn:
        conn.execute(text("DELETE FROM checkpoints"))
        conn.execute(text("DELETE FROM tree_nodes"))
        conn.execute(text("DELETE FROM entries"))
        conn.execute(text("DELETE FROM vault"))
    recs = [payment_event(i, amount="1.00") for i in range(14)]
    led.ingest([str(write_jsonl(tmp_path / "forged.jsonl", recs))], None)
    led.checkpoint()
    assert led.verify().ok  # internally consistent, freshly re-signed
    res = led.verify(against=auditor)
    assert not res.ok
    assert res.problems[0].code == "fork"
    assert "history was rewritten" in res.problems[0].message


def test_against_good_checkpoint(led: Ledger, tmp_path: Path) -> None:
    _fill(led, tmp_path, 5)
    auditor = led.checkpoint().note
    led.ingest([str(write_jsonl(tmp_path / "b.jsonl", [payment_event(100 + i)
                                                       for i in range(9)]))], None)
    led.checkpoint()
    res = led.verify(against=auditor)
    assert res.ok, res.problems
    assert res.against == 5 + BATCH


def test_tree_node_tampered_found_by_derived_pass(led: Ledger, tmp_path: Path) -> None:
    _fill(led, tmp_path)
    with superuser(led) as conn:
        conn.execute(text("UPDATE tree_nodes SET hash = :h WHERE level = 1 AND idx = 2"),
                     {"h": bytes(32)})
    code, _seq, msg = _first(led)
    assert code == "derived-mismatch"
    assert "level 1, index 2" in msg


def test_since_checkpoint_checks_only_the_tail(led: Ledger, tmp_path: Path) -> None:
    _fill(led, tmp_path)
    assert led.verify().ok
    led.ingest([str(write_jsonl(tmp_path / "b.jsonl", [payment_event(100 + i)
                                                       for i in range(5)]))], None)
    res = led.verify(since_checkpoint=True)
    assert res.ok and res.start == 12 + BATCH and res.entries_checked == 5 + BATCH
    third = 12 + BATCH + 2  # the third record of b.jsonl
    assert led.entry_at(third).record_id == "BP-102"
    with superuser(led) as conn:
        leaf = bytes(conn.execute(text("SELECT leaf FROM entries WHERE seq = :s"),
                                  {"s": third}).scalar_one())
        conn.execute(text("UPDATE entries SET leaf = :l WHERE seq = :s"),
                     {"l": leaf.replace(b"3456.78", b"3456.79"), "s": third})
    code, seq, _ = _first(led, since_checkpoint=True)
    assert (code, seq) == ("payload-changed", third)


@pytest.mark.parametrize("sql", [
    "UPDATE entries SET domain = 'x'",
    "DELETE FROM entries",
    "UPDATE tree_nodes SET hash = hash",
    "DELETE FROM checkpoints",
])
def test_triggers_refuse_rewrites(led: Ledger, tmp_path: Path, sql: str) -> None:
    _fill(led, tmp_path, 3)
    with pytest.raises(Exception, match="append-only"), led.store.engine.begin() as conn:
        conn.execute(text(sql))


def test_truncate_refused_on_postgresql(led: Ledger, tmp_path: Path) -> None:
    if led.store.dialect != "postgresql":
        pytest.skip("TRUNCATE exists on PostgreSQL only; SQLite's DELETE trigger covers it")
    _fill(led, tmp_path, 3)
    for t in ("entries", "tree_nodes", "checkpoints"):
        with pytest.raises(Exception, match="append-only"), led.store.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {t} CASCADE"))


def test_checkpoint_refused_over_tampered_ledger(led: Ledger, tmp_path: Path) -> None:
    from ledger import LedgerIntegrityError

    _fill(led, tmp_path, 6, checkpoint=False)
    with superuser(led) as conn:
        leaf = bytes(conn.execute(text("SELECT leaf FROM entries WHERE seq = 2")).scalar_one())
        conn.execute(text("UPDATE entries SET leaf = :l WHERE seq = 2"),
                     {"l": leaf.replace(b"3456.78", b"3456.79")})
    with pytest.raises(LedgerIntegrityError, match="entry 2: payload changed"):
        led.checkpoint()


def test_unparseable_leaf_is_an_integrity_problem(led: Ledger, tmp_path: Path) -> None:
    """Entry 2 rewritten with its hash, and the back-link of the entry after it (the
    batch's control.ingest entry) with it: the chain holds, the strict decode does not."""
    import hashlib

    _fill(led, tmp_path, 3, checkpoint=False)
    with superuser(led) as conn:
        leaf = bytes(conn.execute(text("SELECT leaf FROM entries WHERE seq = 2")).scalar_one())
        forged = leaf.replace(b'"3456.78"', b"NaN")
        forged_hash = hashlib.sha256(b"\x00" + forged).digest()
        conn.execute(text("UPDATE entries SET leaf = :l, entry_hash = :h WHERE seq = 2"),
                     {"l": forged, "h": forged_hash})
        closing = bytes(conn.execute(text("SELECT leaf FROM entries WHERE seq = 3")).scalar_one())
        relinked = closing[:9] + forged_hash + closing[41:]
        conn.execute(text("UPDATE entries SET leaf = :l, entry_hash = :h WHERE seq = 3"),
                     {"l": relinked, "h": hashlib.sha256(b"\x00" + relinked).digest()})
    assert led.size() == 3 + BATCH
    code, seq, _ = _first(led)
    assert (code, seq) == ("leaf-format", 2)


# -- proofs check themselves before they are handed out -------------------------------
# Entry 6's inclusion proof in a tree of 12 + BATCH needs node (1, 2): leaves 4 and 5.

def test_prove_refuses_a_tampered_tree_node(led: Ledger, tmp_path: Path) -> None:
    from ledger import IntegrityError

    _fill(led, tmp_path)
    rid = led.entry_at(6).record_id
    led.prove(rid)  # clean: it verifies
    with superuser(led) as conn:
        conn.execute(text("UPDATE tree_nodes SET hash = :h WHERE level = 1 AND idx = 2"),
                     {"h": bytes(32)})
    with pytest.raises(IntegrityError, match="proof of entry 6 does not verify"):
        led.prove(rid)


def test_prove_refuses_a_missing_tree_node(led: Ledger, tmp_path: Path) -> None:
    from ledger import IntegrityError

    _fill(led, tmp_path)
    with superuser(led) as conn:
        conn.execute(text("DELETE FROM tree_nodes WHERE level = 1 AND idx = 2"))
    missing = r"tree node \(level, index\) = \(1, 2\) is not available in the stored tree"
    with pytest.raises(IntegrityError, match=missing):
        led.prove(led.entry_at(6).record_id)


def test_prove_refuses_a_checkpoint_not_signed_by_key(led: Ledger, tmp_path: Path) -> None:
    from ledger import IntegrityError

    _fill(led, tmp_path)
    other = Signer.generate(led.origin)
    with superuser(led) as conn:
        root = bytes(conn.execute(text("SELECT root_hash FROM checkpoints")).scalar_one())
        conn.execute(text("UPDATE checkpoints SET note = :n"),
                     {"n": sign_checkpoint(Checkpoint(led.origin, 12 + BATCH, root), other)})
    with pytest.raises(IntegrityError, match=f"stored checkpoint of size {12 + BATCH}"):
        led.prove(led.entry_at(6).record_id)


def test_consistency_proof_refuses_a_tampered_tree_node(led: Ledger, tmp_path: Path) -> None:
    from ledger import IntegrityError

    _fill(led, tmp_path, 4)
    old = 4 + BATCH  # 5
    led.ingest([str(write_jsonl(tmp_path / "b.jsonl", [payment_event(100 + i)
                                                       for i in range(6)]))], None)
    led.checkpoint()
    new = old + 6 + BATCH  # 12
    assert led.prove_consistency(old, new).hashes  # clean: it verifies
    # (0, 5), the entry of BP-100 (b.jsonl's first record), is in the proof from 5 to 12
    assert led.entry_at(old).record_id == "BP-100"
    with superuser(led) as conn:
        conn.execute(text("UPDATE entries SET entry_hash = :h WHERE seq = :s"),
                     {"h": bytes(32), "s": old})
    with pytest.raises(IntegrityError, match="consistency proof from size 5 to 12 does not"):
        led.prove_consistency(old, new)


def test_show_and_prove_refuse_a_changed_or_unparseable_leaf(led: Ledger, tmp_path: Path) -> None:
    import hashlib

    from ledger import IntegrityError

    _fill(led, tmp_path)
    changed, broken = led.entry_at(5).record_id, led.entry_at(7).record_id
    with superuser(led) as conn:
        leaf = bytes(conn.execute(text("SELECT leaf FROM entries WHERE seq = 5")).scalar_one())
        conn.execute(text("UPDATE entries SET leaf = :l WHERE seq = 5"),
                     {"l": leaf.replace(b'"3456.78"', b'"3956.78"')})
        leaf = bytes(conn.execute(text("SELECT leaf FROM entries WHERE seq = 7")).scalar_one())
        forged = leaf.replace(b'"3456.78"', b"NaN")
        conn.execute(text("UPDATE entries SET leaf = :l, entry_hash = :h WHERE seq = 7"),
                     {"l": forged, "h": hashlib.sha256(b"\x00" + forged).digest()})
    for call in (led.entry, led.prove):
        with pytest.raises(IntegrityError, match="entry 5: stored leaf does not match its row"):
            call(changed)
        with pytest.raises(IntegrityError, match="entry 7: stored leaf is not well formed"):
            call(broken)
