"""Black-box insider review of ADR 0023 (what the application role writes is checked).

The attacker holds only the application role's rights (``tests._insider.app_role``: on
PostgreSQL the rights ``bfa db grant`` gives, on SQLite a plain connection to the file
with the append-only triggers in place) or, for the file-system attacks, write access to
a directory next to the home. Every test drives the real ``bfa`` CLI and asserts what
README.md, docs/FORMAT.md and ADR 0023 promise. Promises the product breaks are kept as
``xfail(strict=True)`` with the reason starting ``BUG``.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Connection, text

from cli import (
        bfa,
)
from ledger import (
    Ledger,
    TLogProof,
    Verifier,
    encode_leaf,
    entry_hash,
    verify_inclusion,
    verify_tlog_proof,
)
from tests._insider import app_role, append_raw
from tests._records import collection as plain_collection
from tests._records import write_jsonl
from tests.reconcile import _scenarios as sc

AS_OF = "2027-03-01"
ORIGIN = "test.bfa.example/ledger"  # the origin tests/conftest.py's ledger_home uses
GROUPS = ("breaks", "db", "key", "audit")
BATCH = 1  # the control.ingest entry that closes every batch that appends (FORMAT.md §2.5)
ALL_DUTIES = ("--duty", "officer", "--duty", "approver", "--duty", "auditor", "--duty",
              "privacy", "--duty", "service")  # the most 'bfa db grant' gives a role


# --------------------------------------------------------------------------- harness


class Env:
    """One initialised ledger home and the attacker's connection to its database."""

    def __init__(self, home: str, db: str, work: Path) -> None:
        self.home, self.db, self.work = home, db, work
        self._led: Ledger | None = None
        self.runner = CliRunner()

    def run(self, *args: str, env: dict[str, str] | None = None, db: bool = True) -> Result:
        n = 2 if args[0] in GROUPS else 1
        argv = [*args[:n], "--home", self.home, *(["--db", self.db] if db else []), *args[n:]]
        return self.runner.invoke(bfa, argv, env=env or {}, catch_exceptions=False)

    @property
    def led(self) -> Ledger:
        if self._led is None:
            self._led = Ledger.open(self.home, self.db)
        return self._led

    @contextmanager
    def insider(self) -> Iterator[Connection]:
        """One committed transaction with the application role's rights."""
        with app_role(self.led) as conn:
            yield conn

    def sql(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.insider() as conn:
            res = conn.execute(text(query), params)
            return [tuple(r) for r in res] if res.returns_rows else []

    def plant(self, query: str, **params: Any) -> None:
        """Write ``query`` as the application role would; on PostgreSQL the duty trigger
        refuses what lands beyond the ledger's end (FORMAT.md §8.3), so it is checked to
        refuse and then written by the tables' owner, whom only verification stops."""
        if not self.db.startswith("postgresql"):
            self.sql(query, **params)
            return
        with pytest.raises(Exception, match=r"does not hold|do not follow"):
            self.sql(query, **params)
        with self.led.store.engine.begin() as conn:
            conn.execute(text(query), params)

    def read(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        """Plain read (no role juggling): what the tables hold now."""
        with self.led.store.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query), params)]

    def ingest(self, records: list[Any], name: str = "batch") -> Result:
        path = write_jsonl(self.work / f"{name}.jsonl", records)
        res = self.run("ingest", str(path))
        assert res.exit_code == 0, res.output
        return res

    def close(self) -> None:
        if self._led is not None:
            self._led.close()


@pytest.fixture
def env(ledger_home: dict[str, Any], tmp_path: Path) -> Iterator[Env]:
    work = tmp_path / "work"
    work.mkdir()
    e = Env(ledger_home["home"], ledger_home["db"], work)
    yield e
    e.close()


def dup_scenario(e: Env, pairs: int = 1) -> list[str]:
    """A clean base plus ``pairs`` duplicate benefit payments (each paid and vouchered):
    after one reconcile exactly ``pairs`` DUPLICATE_PAYMENT breaks (high severity, four-eyes),
    returned as their ids in record order."""
    extra: list[dict[str, Any]] = []
    for k in range(pairs):
        a, b = 100 + 2 * k, 101 + 2 * k
        extra += [sc.payment_event(a, who=a), sc.payment_event(b, who=a),
                  sc.payment(f"PAY-{a}", allocations=[(f"BP-{a}", "3456.78")]),
                  sc.payment(f"PAY-{b}", allocations=[(f"BP-{b}", "3456.78")])]
    e.ingest(sc.base(e.work) + extra + sc.vouchers_for(e.work, extra, "dups"))
    res = e.run("reconcile", "--as-of", AS_OF)
    assert res.exit_code == 1, res.output
    rows = e.read("SELECT break_id, code, records FROM wf_break_state")
    assert {c for _, c, _ in rows} == {"DUPLICATE_PAYMENT"}, rows
    return [b for b, _, _ in sorted(rows, key=lambda r: r[2])]


def row(e: Env, break_id: str) -> dict[str, Any]:
    cols = ("status", "assignee", "resolved_by", "approved_by", "reason", "note",
            "resolved_evidence", "transitions", "last_seq", "code", "field", "records")
    got = e.read(f"SELECT {', '.join(cols)} FROM wf_break_state WHERE break_id = :b", b=break_id)
    return dict(zip(cols, got[0], strict=True)) if got else {}


def problems(res: Result) -> list[dict[str, Any]]:
    return json.loads(res.output)["problems"] if res.output.strip().startswith("{") else []


def checkpoint_sizes(e: Env) -> list[int]:
    return [int(s) for (s,) in e.read("SELECT tree_size FROM checkpoints ORDER BY tree_size")]


def mth(hashes: list[bytes]) -> bytes:
    """RFC 9162 Merkle tree hash over leaf hashes (FORMAT §3.1), written here from the RFC."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(hashes[:k]) + mth(hashes[k:])).digest()


def raw_append(conn: Connection, rec: dict[str, Any], *, domain: str | None = None,
               kind: str | None = None, record_id: str | None = None) -> int:
    """Append one well-chained entry with INSERTs only, writing the correct tree nodes, but
    with index columns that may lie about the leaf (the attack)."""
    head = conn.execute(text("SELECT seq, entry_hash FROM entries ORDER BY seq DESC LIMIT 1")
                        ).first()
    n = 0 if head is None else int(head[0]) + 1
    prev = b"\x00" * 32 if head is None else bytes(head[1])
    leaf = encode_leaf(n, prev, rec, "2026-11-23T08:00:00.000000+00:00")
    d, k = rec["type"].split(".", 1)
    conn.execute(text("INSERT INTO entries (seq, domain, kind, record_id, leaf, entry_hash) "
                      "VALUES (:s, :d, :k, :r, :l, :h)"),
                 {"s": n, "d": domain or d, "k": kind or k, "r": record_id or rec["id"],
                  "l": leaf, "h": hashlib.sha256(b"\x00" + leaf).digest()})

    def get(level: int, idx: int) -> bytes:
        if level == 0:
            return bytes(conn.execute(text("SELECT entry_hash FROM entries WHERE seq = :s"),
                                      {"s": idx}).scalar_one())
        return bytes(conn.execute(text("SELECT hash FROM tree_nodes WHERE level = :l AND "
                                       "idx = :i"), {"l": level, "i": idx}).scalar_one())

    level = 1
    while (n + 1) % (1 << level) == 0:
        idx = (n + 1) // (1 << level) - 1
        h = hashlib.sha256(b"\x01" + get(level - 1, 2 * idx) + get(level - 1, 2 * idx + 1))
        conn.execute(text("INSERT INTO tree_nodes (level, idx, hash) VALUES (:l, :i, :h)"),
                     {"l": level, "i": idx, "h": h.digest()})
        level += 1
    return n


def proof_verifies(e: Env, record_id: str, *extra: str) -> bool:
    res = e.run("prove", record_id, *extra)
    assert res.exit_code == 0, res.output
    vkey = e.run("key", "export", db=False).output.strip()
    proof = TLogProof.parse(res.output)
    try:
        verify_tlog_proof(proof, entry_hash(proof.extra), Verifier.from_text(vkey),
                          verify_inclusion, ORIGIN)
    except Exception:
        return False
    return True


# ---------------------------------------------------------------- tree nodes, entries


def test_forged_node_with_moved_verified_size_is_never_signed(env: Env) -> None:
    """ADR 0023 §1, FORMAT §5.5: the ADR's own attack, plus a forged `verified_size` past
    the forgery. `checkpoint` and `nightly` sign nothing (exit 3) and the forged entries stay
    unprovable."""
    # the insider's entries start at 4 (on PostgreSQL at 5, after the role's control.grant):
    # on both backends the one at 5 completes the node (1, 2) they forge
    signed = 3 + BATCH
    env.ingest([plain_collection(i) for i in range(3)])
    assert env.run("checkpoint").exit_code == 0
    with env.insider() as conn:
        append_raw(conn, [plain_collection(10), plain_collection(11)],
                   forge={(1, 2): hashlib.sha256(b"made-up leaves").digest()})
        conn.execute(text("UPDATE meta SET value = '1000000' WHERE key = 'verified_size'"))
    res = env.run("checkpoint")
    assert res.exit_code == 3, res.output
    assert "(level 1, index 2)" in res.output
    assert checkpoint_sizes(env) == [signed]
    assert env.read("SELECT value FROM meta WHERE key = 'verified_size'") == [("1000000",)]
    res = env.run("nightly", "--report-dir", str(env.work / "rep"), "--as-of", AS_OF)
    assert res.exit_code == 3, res.output
    assert checkpoint_sizes(env) == [signed]
    assert env.run("prove", "COL-10").exit_code == 1
    codes = {p["code"] for p in problems(env.run("verify", "--since-checkpoint", "--json"))}
    assert codes == {"derived-mismatch"}


def test_node_planted_before_the_legit_ingest_is_never_signed(env: Env) -> None:
    """A forged level-1 node inserted *before* the entries that complete it are appended:
    it is inside the tree by the time the owner signs, so only the comparison of the nodes
    the new entries complete (FORMAT §6.3 step 6) can catch it. Nothing may be signed over
    it (the ingest itself may fail: the insider can deny service, which is out of scope)."""
    signed = 3 + BATCH  # so that node (1, 2) is not complete yet when it is planted
    env.ingest([plain_collection(i) for i in range(3)])
    assert env.run("checkpoint").exit_code == 0
    env.plant("INSERT INTO tree_nodes (level, idx, hash) VALUES (1, 2, :h)", h=b"\x42" * 32)
    env.run("ingest", str(write_jsonl(env.work / "b.jsonl",
                                      [plain_collection(20), plain_collection(21)])))
    assert env.run("checkpoint").exit_code == 3
    assert checkpoint_sizes(env) == [signed]


def test_junk_nodes_off_the_frontier_never_reach_the_signed_root(env: Env) -> None:
    """Rows (level, idx) that no tree of this size has and that are not 'beyond the tree'
    by FORMAT §6.3 step 8's formula (a level-0 row, a negative index, a negative level):
    whatever the checkpoint does, the root it signs is the MTH of the entries and every
    inclusion proof verifies offline; a full `verify` counts the extra rows (§6.5)."""
    env.ingest([plain_collection(i) for i in range(5)])
    with env.insider() as conn:
        for level, idx in ((0, 1), (0, 4), (1, -1), (-1, 0)):
            conn.execute(text("INSERT INTO tree_nodes (level, idx, hash) VALUES (:l, :i, :h)"),
                         {"l": level, "i": idx, "h": b"\x42" * 32})
    res = env.run("checkpoint", "--json")
    if res.exit_code == 0:
        signed = json.loads(res.output)
        hashes = [bytes(h) for (h,) in env.read("SELECT entry_hash FROM entries ORDER BY seq")]
        assert signed["size"] == len(hashes)
        assert bytes.fromhex(signed["root_hash"]) == mth(hashes)
        for i in range(5):
            assert proof_verifies(env, f"COL-{i}")
    else:
        assert res.exit_code == 3
    res = env.run("verify", "--json")
    assert res.exit_code == 3
    assert {p["code"] for p in problems(res)} == {"derived-mismatch"}


def test_nodes_beyond_the_tree_refuse_the_checkpoint(env: Env) -> None:
    """FORMAT §6.3 step 8: no node with (idx + 1)·2^level above the size, also at levels
    where 2^level overflows a 64-bit integer."""
    env.ingest([plain_collection(i) for i in range(5)])
    for level, idx in ((3, 5), (63, 0), (200, 0)):  # rows accumulate: the role cannot delete
        env.plant("INSERT INTO tree_nodes (level, idx, hash) VALUES (:l, :i, :h)",
                  l=level, i=idx, h=b"\x42" * 32)
        res = env.run("checkpoint")
        assert res.exit_code == 3, (level, res.output)
        assert "beyond" in res.output
    assert checkpoint_sizes(env) == []


def test_forged_checkpoint_rows_are_refused(env: Env) -> None:
    """The role may INSERT into `checkpoints`: a real note stored under another size makes
    `checkpoint`, `prove` and `verify` fail (exit 3), never sign or prove against it."""
    env.ingest([plain_collection(i) for i in range(3)])
    assert env.run("checkpoint").exit_code == 0
    env.ingest([plain_collection(i) for i in range(3, 6)], "b")
    note, root = env.read("SELECT note, root_hash FROM checkpoints")[0]
    size = 3 + BATCH + 3 + BATCH  # the ledger's size now
    env.sql("INSERT INTO checkpoints (tree_size, root_hash, note, created_at) VALUES "
            "(:s, :r, :n, '2026-01-01T00:00:00.000000+00:00')", s=size, r=bytes(root), n=note)
    assert env.run("checkpoint").exit_code == 3
    assert env.run("prove", "COL-0").exit_code == 3
    res = env.run("verify", "--json")
    assert res.exit_code == 3
    assert "checkpoint-row" in {p["code"] for p in problems(res)}


def test_entry_with_a_gap_in_seq_is_never_signed(env: Env) -> None:
    """An entry inserted at seq n+1 (n skipped), chained to the head: `entry-missing`."""
    env.ingest([plain_collection(i) for i in range(3)])

    def gap(conn: Connection) -> None:
        n, head = conn.execute(text("SELECT seq, entry_hash FROM entries ORDER BY seq DESC "
                                    "LIMIT 1")).one()
        leaf = encode_leaf(n + 2, bytes(head), plain_collection(9),
                           "2026-11-23T08:00:00.000000+00:00")
        conn.execute(text("INSERT INTO entries (seq, domain, kind, record_id, leaf, entry_hash) "
                          "VALUES (:s, 'finance', 'collection', 'COL-9', :l, :h)"),
                     {"s": n + 2, "l": leaf, "h": hashlib.sha256(b"\x00" + leaf).digest()})

    with env.insider() as conn:
        if env.db.startswith("postgresql"):  # the duty trigger refuses it (FORMAT §8.3)
            with pytest.raises(Exception, match="do not follow"), conn.begin_nested():
                gap(conn)
        else:
            gap(conn)
    if env.db.startswith("postgresql"):  # the tables' owner: only verification stops it
        with env.led.store.engine.begin() as conn:
            gap(conn)
    res = env.run("checkpoint")
    assert res.exit_code == 3, res.output
    assert checkpoint_sizes(env) == []


def test_show_prove_trace_check_index_columns_against_the_leaf(env: Env) -> None:
    """FORMAT §2.4/§6.5 step 2, ADR 0023 summary: `show`/`prove` (and `trace`) check the
    record id and domain of the row against its leaf (exit 3); `show --entry` takes the kind
    from the leaf; the reconciler decodes leaves, not index columns."""
    env.ingest(sc.base(env.work))
    payer = "91440100MA00000000"
    with env.insider() as conn:
        raw_append(conn, sc.collection("COL-X", "999999.00", allocations=None, payer=payer),
                   domain="archive", record_id="BP-1")
        raw_append(conn, sc.collection("COL-Y", "888888.00", allocations=None, payer=payer),
                   kind="statement")
        raw_append(conn, sc.collection("COL-Z", "777777.00", allocations=None, payer=payer),
                   record_id="COL-Q")
    assert env.run("checkpoint").exit_code == 0  # no derived pass before signing (§5.5)
    for args in (("show", "BP-1", "--domain", "archive"), ("prove", "BP-1", "--domain", "archive"),
                 ("trace", "BP-1", "--domain", "archive"), ("show", "COL-Q"),
                 ("prove", "COL-Q"), ("trace", "COL-Q"), ("show", "COL-Q", "--entry", "--json")):
        res = env.run(*args)
        assert res.exit_code == 3, (args, res.output)
        assert "index columns changed" in res.output
    view = json.loads(env.run("show", "COL-Y", "--entry", "--json").output)
    assert (view["domain"], view["kind"]) == ("finance", "collection")
    report = json.loads(env.run("reconcile", "--as-of", AS_OF, "--json").output)
    orphans = {r for b in report["breaks"] if b["code"] == "ORPHAN_MOVEMENT" for r in b["records"]}
    assert orphans == {"COL-X", "COL-Y", "COL-Z"}
    res = env.run("verify", "--json")
    assert res.exit_code == 3
    assert {p["code"] for p in problems(res)} == {"derived-mismatch"}


# ----------------------------------------------------------------- break workflow rows

WORKFLOW_TAMPERS = {
    "status": "status = 'resolved'",
    "assignee": "assignee = 'mallory'",
    "resolved_by": "resolved_by = 'wang.fang'",
    "approved_by": "approved_by = 'wang.fang'",
    "reason": "reason = 'timing'",
    "note": "note = 'nothing to see'",
    "resolved_evidence": "resolved_evidence = '" + "0" * 64 + "'",
    "transitions_down": "transitions = 1",
    "transitions_up": "transitions = 5",
    "last_seq": "last_seq = 0",
    "code": "code = 'MISSING_VOUCHER'",
    "field": "field = 'refs'",
    "records": "records = '[\"BP-100\"]'",
}


def test_every_workflow_column_rewrite_is_refused_reported_and_restored(env: Env) -> None:
    """ADR 0023 §2, FORMAT §8.3, §6.7: one break per tampered column (all pending approval
    after assign + resolve). Every `breaks` command refuses (exit 3); `verify` (full and
    `--since-checkpoint`) reports one workflow-mismatch per break; `reconcile` restores each
    row from the entries and reports one LEDGER_INTEGRITY break (field workflow) per break."""
    ids = dup_scenario(env, len(WORKFLOW_TAMPERS))
    for b in ids:
        assert env.run("breaks", "assign", b, "zhang.min", "--user", "li.wei").exit_code == 0
        assert env.run("breaks", "resolve", b, "--reason", "other", "--note", "checked",
                       "--user", "zhang.min").exit_code == 0
    assert env.run("checkpoint").exit_code == 0
    before = {b: row(env, b) for b in ids}
    assert all(r["status"] == "pending_approval" for r in before.values())
    with env.insider() as conn:
        for b, change in zip(ids, WORKFLOW_TAMPERS.values(), strict=True):
            conn.execute(text(f"UPDATE wf_break_state SET {change} WHERE break_id = :b"),
                         {"b": b})
    for b in ids:
        res = env.run("breaks", "show", b)
        assert res.exit_code == 3, (b, res.output)
        assert "changed outside bfa" in res.output
    assert env.run("breaks", "list").exit_code == 3
    assert env.run("breaks", "approve", ids[2], "--user", "wang.fang").exit_code == 3
    for mode in ((), ("--since-checkpoint",)):
        res = env.run("verify", "--json", *mode)
        assert res.exit_code == 3, mode
        assert {p["code"] for p in problems(res)} == {"workflow-mismatch"}, mode
        # each break named (a rewritten records column also shows in the links trace reads)
        assert all(any(b in p["message"] for p in problems(res)) for b in ids), mode
    res = env.run("reconcile", "--as-of", AS_OF, "--json")
    assert res.exit_code == 3, res.output
    integrity = [b for b in json.loads(res.output)["breaks"] if b["code"] == "LEDGER_INTEGRITY"]
    assert len(integrity) == len(ids)
    assert {b["field"] for b in integrity} == {"workflow"}
    assert {b: row(env, b) for b in ids} == before
    assert env.run("breaks", "show", ids[0]).exit_code == 0


def test_deleted_row_of_a_break_with_entries_is_restored(env: Env) -> None:
    """FORMAT §6.7: a full `verify` replays every control.break entry, so a deleted row is
    found; `reconcile` restores it and reports LEDGER_INTEGRITY."""
    (b,) = dup_scenario(env)
    assert env.run("breaks", "assign", b, "zhang.min", "--user", "li.wei").exit_code == 0
    before = row(env, b)
    env.sql("DELETE FROM wf_break_state WHERE break_id = :b", b=b)
    res = env.run("verify", "--json")
    assert res.exit_code == 3
    assert {p["code"] for p in problems(res)} == {"workflow-mismatch"}
    assert any("no row in the workflow table" in p["message"] for p in problems(res))
    res = env.run("reconcile", "--as-of", AS_OF)
    assert res.exit_code == 3 and "LEDGER_INTEGRITY" in res.output
    assert row(env, b) == before


def test_nightly_signs_nothing_after_a_workflow_rewrite(env: Env) -> None:
    """README, FORMAT §10: exit 3, nothing signed, LEDGER_INTEGRITY in the report, and the
    row is restored from the entries."""
    (b,) = dup_scenario(env)
    assert env.run("breaks", "assign", b, "zhang.min", "--user", "li.wei").exit_code == 0
    assert env.run("checkpoint").exit_code == 0
    before, signed = row(env, b), checkpoint_sizes(env)
    env.sql("UPDATE wf_break_state SET status = 'resolved' WHERE break_id = :b", b=b)
    rep = env.work / "rep"
    res = env.run("nightly", "--report-dir", str(rep), "--as-of", AS_OF)
    assert res.exit_code == 3, res.output
    assert checkpoint_sizes(env) == signed
    assert "LEDGER_INTEGRITY" in (rep / "latest" / "report.json").read_text()
    assert row(env, b) == before


def test_severity_column_does_not_decide_four_eyes(env: Env) -> None:
    """ADR 0023 §2: 'Four-eyes takes the severity from the code, not from the row.'"""
    (b,) = dup_scenario(env)
    env.sql("UPDATE wf_break_state SET severity = 'low' WHERE break_id = :b", b=b)
    res = env.run("breaks", "resolve", b, "--reason", "other", "--note", "x", "--user", "a")
    assert res.exit_code == 0, res.output
    assert row(env, b)["status"] == "pending_approval"


def test_status_of_a_break_without_entries_is_checked(env: Env) -> None:
    """A fresh break (no control.break entry yet) set to resolved: the replay of zero
    entries is `open`, so `breaks` refuses and `verify` reports it."""
    (b,) = dup_scenario(env)
    env.sql("UPDATE wf_break_state SET status = 'resolved', resolved_by = 'x', "
            "approved_by = 'y' WHERE break_id = :b", b=b)
    assert env.run("breaks", "list").exit_code == 3
    assert env.run("verify").exit_code == 3
    assert env.run("verify", "--since-checkpoint").exit_code == 3


def _recode_fresh_break(env: Env) -> str:
    """The attack: a DUPLICATE_PAYMENT break nobody has touched yet (no control.break
    entry) is re-labelled ACCOUNT_RULE_VIOLATION (medium severity) naming no records. A row
    that names no records may carry that code (FORMAT §6.7), and there is no entry whose code
    it must match, so no check of §8.3 applies."""
    (b,) = dup_scenario(env)
    with env.insider() as conn:
        conn.execute(text("UPDATE wf_break_state SET code = 'ACCOUNT_RULE_VIOLATION', "
                          "records = '[]' WHERE break_id = :b"), {"b": b})
        conn.execute(text("DELETE FROM wf_break_records WHERE break_id = :b"), {"b": b})
    return b


def test_four_eyes_cannot_be_bypassed_by_recoding_a_fresh_break(env: Env) -> None:
    b = _recode_fresh_break(env)
    res = env.run("breaks", "resolve", b, "--reason", "other", "--note", "ok", "--user", "mallory")
    assert res.exit_code == 3 or row(env, b)["status"] == "pending_approval", res.output


def test_reconcile_after_a_recoded_break_restores_it_and_reports_integrity(env: Env) -> None:
    """(Found by this review: the re-labelled break was resolved by one user and the next
    runs crashed.) The id binds code, field and records: the resolve is refused, the next
    run restores the row, reports LEDGER_INTEGRITY, and four-eyes applies again."""
    b = _recode_fresh_break(env)
    assert env.run("breaks", "resolve", b, "--reason", "other", "--note", "ok",
                   "--user", "mallory").exit_code == 3
    res = env.run("reconcile", "--as-of", AS_OF, "--json")
    assert res.exit_code == 3, res.output
    assert "LEDGER_INTEGRITY" in {x["code"] for x in json.loads(res.output)["breaks"]}
    assert row(env, b)["code"] == "DUPLICATE_PAYMENT"
    assert env.run("breaks", "resolve", b, "--reason", "other", "--note", "ok",
                   "--user", "mallory").exit_code == 0
    assert row(env, b)["status"] == "pending_approval"
    assert env.run("reconcile", "--as-of", AS_OF).exit_code == 1  # no integrity failure


def test_both_verify_modes_report_a_recoded_row(env: Env) -> None:
    """(Found by this review: full verify did not compare a row's code.) Both modes report
    a row whose code, field and records do not give its id."""
    _recode_fresh_break(env)
    since = env.run("verify", "--since-checkpoint", "--json")
    assert [p["code"] for p in problems(since)] == ["workflow-mismatch"]
    full = env.run("verify", "--json")
    assert [p["code"] for p in problems(full)] == ["workflow-mismatch"], full.output


def test_a_second_rewrite_of_the_same_break_is_restored_again(env: Env) -> None:
    (b,) = dup_scenario(env)
    assert env.run("breaks", "assign", b, "zhang.min", "--user", "li.wei").exit_code == 0
    before = row(env, b)
    env.sql("UPDATE wf_break_state SET status = 'resolved' WHERE break_id = :b", b=b)
    assert env.run("reconcile", "--as-of", AS_OF).exit_code == 3
    assert row(env, b) == before
    env.sql("UPDATE wf_break_state SET status = 'resolved' WHERE break_id = :b", b=b)
    res = env.run("reconcile", "--as-of", AS_OF)
    assert res.exit_code == 3, res.output
    assert row(env, b) == before


def test_open_break_cannot_be_hidden_from_the_worklist(env: Env) -> None:
    """Fixed: the run's control.reconcile entry states the breaks it left present (FORMAT
    §2.5): 'present' flipped, or the row of a never-worked break deleted, makes 'breaks
    list' exit 3 and 'verify' report workflow-mismatch; the next run restores the row and
    reports LEDGER_INTEGRITY."""
    (b,) = dup_scenario(env)
    env.sql("UPDATE wf_break_state SET present = :f WHERE break_id = :b", f=False, b=b)
    res = env.run("breaks", "list")
    assert res.exit_code == 3, res.output
    assert "marks 0 breaks present, not the 1" in res.output
    res = env.run("verify", "--json")
    assert res.exit_code == 3 and "workflow-mismatch" in {p["code"] for p in problems(res)}
    res = env.run("reconcile", "--as-of", AS_OF, "--json")
    assert res.exit_code == 3, res.output
    assert {x["code"] for x in json.loads(res.output)["breaks"]} == {
        "DUPLICATE_PAYMENT", "LEDGER_INTEGRITY"}
    assert b in env.run("breaks", "list").output
    env.sql("DELETE FROM wf_break_state WHERE break_id = :b", b=b)
    assert env.run("breaks", "list").exit_code == 3


def test_trace_shows_the_breaks_that_name_a_record(env: Env) -> None:
    """Fixed: a link planted beside a break that does not name the record makes 'trace'
    exit 3; a deleted link (trace cannot see what is not there) is a workflow-mismatch of
    'verify' (FORMAT §6.7)."""
    (b,) = dup_scenario(env)
    env.sql("INSERT INTO wf_break_records (break_id, record_id) VALUES (:b, 'PAY-100')", b=b)
    res = env.run("trace", "PAY-100", "--json")
    assert res.exit_code == 3 and "does not name" in res.output, res.output
    env.sql("DELETE FROM wf_break_records WHERE break_id = :b", b=b)
    res = env.run("verify", "--json")
    assert res.exit_code == 3
    assert any("lacks its records" in p["message"] for p in problems(res))
    assert env.run("reconcile", "--as-of", AS_OF).exit_code in (1, 3)


# ------------------------------------------------------------------ stored findings


@pytest.mark.parametrize("attack", ["junk row", "row text", "one row deleted"])
def test_stored_findings_rewrite_is_reported_and_rechecked(env: Env, attack: str) -> None:
    """ADR 0023 §3-4, FORMAT §2.5, §6.7, §8.3: the next run reports LEDGER_INTEGRITY (exit 3)
    and still finds every duplicate; `verify` reports findings-mismatch; a repeated attack
    is reported again (no crash)."""
    dup_scenario(env, 2)
    rows = env.read("SELECT rule, root, pos FROM rc_findings ORDER BY root")
    assert len(rows) == 2
    for rnd in range(2):
        rule, root, pos = env.read("SELECT rule, root, pos FROM rc_findings ORDER BY root")[0]
        if attack == "junk row":
            env.sql("INSERT INTO rc_findings (rule, root, pos, row) VALUES "
                    "('duplicates', :r, 0, '[]')", r=f"junk|{rnd}")
        elif attack == "row text":
            env.sql("UPDATE rc_findings SET row = '[\"pension\",\"2026-11\",1,0,0,\"x\"]' "
                    "WHERE rule = :a AND root = :b AND pos = :c", a=rule, b=root, c=pos)
        else:
            env.sql("DELETE FROM rc_findings WHERE rule = :a AND root = :b AND pos = :c",
                    a=rule, b=root, c=pos)
        res = env.run("verify", "--json")
        assert res.exit_code == 3
        assert [p["code"] for p in problems(res)] == ["findings-mismatch"]
        res = env.run("reconcile", "--as-of", AS_OF, "--json")
        assert res.exit_code == 3, res.output
        codes = [x["code"] for x in json.loads(res.output)["breaks"]]
        assert codes.count("DUPLICATE_PAYMENT") == 2 and "LEDGER_INTEGRITY" in codes
        assert env.run("verify").exit_code == 0


def test_stored_findings_rewrite_makes_the_nightly_sign_nothing(env: Env) -> None:
    dup_scenario(env)
    assert env.run("checkpoint").exit_code == 0
    signed = checkpoint_sizes(env)
    env.sql("INSERT INTO rc_findings (rule, root, pos, row) VALUES ('duplicates', 'junk', 0, '[]')")
    res = env.run("nightly", "--report-dir", str(env.work / "rep"), "--as-of", AS_OF)
    assert res.exit_code == 3, res.output
    assert checkpoint_sizes(env) == signed


@pytest.mark.parametrize(("key", "value"), [
    ("reconcile_checked", "1000000"), ("reconcile_rules", "0" * 64),
    ("reconcile_run", "100"), ("reconcile_run", "not a number"), ("reconcile_records", "0"),
    ("reconcile_seq", "1000000")])
def test_reconciler_meta_keys_are_not_believed(env: Env, key: str, value: str) -> None:
    """ADR 0023 §3: watermark and rules come from the control.reconcile record;
    `meta.reconcile_run` is only a hint. New duplicates are found by the incremental run
    and the run numbers stay a series without gaps."""
    dup_scenario(env)
    env.sql("INSERT INTO meta (key, value) VALUES (:k, :v) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", k=key, v=value)
    env.ingest([sc.payment_event(300, who=300), sc.payment_event(301, who=300)], "more")
    res = env.run("reconcile", "--as-of", AS_OF, "--json")
    assert res.exit_code in (1, 3), res.output
    dups = {tuple(x["records"]) for x in json.loads(res.output)["breaks"]
            if x["code"] == "DUPLICATE_PAYMENT"}
    assert ("BP-300", "BP-301") in dups
    runs = [r for (r,) in env.read("SELECT record_id FROM entries WHERE domain = 'control' "
                                   "AND kind = 'reconcile' ORDER BY seq")]
    assert runs == ["reconcile-1", "reconcile-2"]


def test_derived_record_tables_are_checked_against_the_entries(env: Env) -> None:
    """FORMAT §6.7, §8.3, ADR 0032 (this test once confirmed the opposite, ADR 0023): a row
    deleted from an rc_* record table is named by `verify` (exit 3); `reconcile --full`
    checks every derived row, reports LEDGER_INTEGRITY (exit 3), rebuilds the tables from
    the entries and still finds the duplicate; `verify` is clean after it."""
    (_b,) = dup_scenario(env)
    env.sql("DELETE FROM rc_events WHERE record_id = 'BP-101'")
    res = env.run("verify")
    assert res.exit_code == 3 and "rc_events" in res.output and "BP-101" in res.output
    out = env.run("reconcile", "--as-of", AS_OF, "--full", "--json")
    assert out.exit_code == 3, out.output
    codes = {x["code"] for x in json.loads(out.stdout)["breaks"]}
    assert {"DUPLICATE_PAYMENT", "LEDGER_INTEGRITY"} <= codes
    assert env.run("verify").exit_code == 0


# ------------------------------------------------------------------ grants (PostgreSQL)


def test_db_grant_revokes_first_and_refuses_unrestrictable_roles(env: Env) -> None:
    """FORMAT §8.3, ADR 0023 §5: rights granted by hand earlier (ALL on the ledger tables,
    CREATE on the schema) do not survive `bfa db grant`; a superuser, a member of the owner
    and an owner of objects are refused (exit 2); the granted role can neither change ledger
    rows, nor alter working tables, nor create objects."""
    if not env.db.startswith("postgresql"):
        pytest.skip("grants are PostgreSQL's")
    import psycopg

    tag = os.urandom(4).hex()
    app, su, mem, own = (f"rv_{n}_{tag}" for n in ("app", "su", "mem", "own"))
    admin = psycopg.connect(env.db, autocommit=True)
    try:
        owner = admin.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'entries'"
                              ).fetchone()[0]
        admin.execute(f'CREATE ROLE "{app}" NOLOGIN')
        admin.execute(f'GRANT ALL ON entries, tree_nodes, checkpoints, meta, vault TO "{app}"')
        admin.execute(f'GRANT CREATE ON SCHEMA public TO "{app}"')
        admin.execute(f'CREATE ROLE "{su}" SUPERUSER NOLOGIN')
        admin.execute(f'CREATE ROLE "{mem}" NOLOGIN')
        admin.execute(f'GRANT "{owner}" TO "{mem}"')
        admin.execute(f'CREATE ROLE "{own}" NOLOGIN')
        admin.execute(f'CREATE TABLE rc_owned_{tag} (x int)')
        admin.execute(f'ALTER TABLE rc_owned_{tag} OWNER TO "{own}"')
        assert env.run("db", "grant", app, *ALL_DUTIES).exit_code == 0
        for role in (su, mem, own):
            assert env.run("db", "grant", role, *ALL_DUTIES).exit_code == 2, role
        for stmt in ("DELETE FROM entries", "UPDATE tree_nodes SET hash = hash",
                     "UPDATE checkpoints SET note = note", "TRUNCATE rc_findings",
                     "DELETE FROM meta", "UPDATE vault SET clear_value = 'x'",
                     "ALTER TABLE wf_break_state DISABLE TRIGGER ALL",
                     "CREATE TABLE public.rc_planted (x int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), admin.transaction():
                admin.execute(f'SET LOCAL ROLE "{app}"')
                admin.execute(stmt)
    finally:
        admin.execute(f"DROP TABLE IF EXISTS rc_owned_{tag}")
        for role in (app, su, mem, own):
            admin.execute(f'DROP OWNED BY "{role}"') if role != su else None
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


# ------------------------------------------------------------------ ledger secret


def test_wrong_secret_refused_even_when_the_check_value_is_hidden(env: Env) -> None:
    """FORMAT §4.6: a wrong key is refused (exit 2, naming the key file); with
    `meta.secret_check` moved away by the role (UPDATE of the key column: it has no DELETE on
    meta) the key is still tested on a person_id vault row."""
    env.ingest([sc.payment_event(1)])
    wrong = env.work / "wrong.key"
    wrong.write_text(os.urandom(32).hex() + "\n")
    wrong.chmod(0o600)
    batch = str(write_jsonl(env.work / "b.jsonl", [sc.payment_event(2)]))
    for _ in range(2):
        res = env.run("ingest", batch, env={"BFA_SECRET_KEY": str(wrong)})
        assert res.exit_code == 2 and str(wrong) in res.output, res.output
        res = env.run("forget", "110101199000001", "--yes", "--user", "dpo",
                      env={"BFA_SECRET_KEY": str(wrong)})
        assert res.exit_code == 2, res.output
        env.sql("UPDATE meta SET key = 'secret_check_moved' WHERE key = 'secret_check'")
    assert env.run("ingest", batch).exit_code == 0


# ------------------------------------------------------------ homes, files, symlinks


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[Env]:
    """A fresh SQLite home made with the CLI (file attacks do not depend on the backend),
    with a world-writable directory and a victim file next to it."""
    home = tmp_path / "home"
    runner = CliRunner()
    res = runner.invoke(bfa, ["init", "--home", str(home), "--origin", ORIGIN])
    assert res.exit_code == 0, res.output
    work = tmp_path / "work"
    work.mkdir()
    e = Env(str(home), f"sqlite:///{home / 'ledger.db'}", work)
    evil = tmp_path / "evil"
    evil.mkdir()
    evil.chmod(0o777)
    victim = tmp_path / "victim.txt"
    victim.write_text("VICTIM\n")
    victim.chmod(0o644)
    yield e
    e.close()


def modes(root: Path) -> dict[str, int]:
    out = {}
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink():
            out[str(p.relative_to(root.parent))] = p.stat().st_mode & 0o7777
    return out


def test_private_home_files_and_directories(fs: Env) -> None:
    """FORMAT §5.4: directories 0700, every file bfa writes 0600, also reports, reject
    files, `checkpoint --out`, `reconcile --html` outside the home."""
    fs.ingest([*sc.base(fs.work), sc.payment_event(2, who=1)])
    out = fs.work.parent / "out"
    out.mkdir()
    out.chmod(0o755)
    write_jsonl(fs.work / "bad.jsonl", [sc.payment_event(5), '{"x": 1}'])
    assert fs.run("ingest", str(fs.work / "bad.jsonl"), "--reject-file",
                  str(out / "rej.jsonl")).exit_code == 1
    assert fs.run("checkpoint", "--out", str(out / "cp.note")).exit_code == 0
    assert fs.run("reconcile", "--as-of", AS_OF, "--html", str(out / "r.html")).exit_code == 1
    assert fs.run("nightly", "--report-dir", str(out / "rep"), "--as-of", AS_OF).exit_code == 1
    paths = [Path(fs.home), *Path(fs.home).rglob("*"), *(out / "rep").rglob("*"), out / "rep",
             out / "rej.jsonl", out / "cp.note", out / "r.html"]
    # stored voucher files are read-only (FORMAT §11.1)
    wrong = {str(p): oct(p.stat().st_mode & 0o7777) for p in paths if not p.is_symlink()
             and p.stat().st_mode & 0o7777 != (
                 0o700 if p.is_dir() else 0o400 if "/archive/sha256/" in str(p) else 0o600)}
    assert not wrong


def test_group_home_files_and_directories(tmp_path: Path) -> None:
    """FORMAT §5.4: a group home has setgid directories 2770 and files 0660 of its group."""
    group = grp.getgrgid(os.getgid()).gr_name
    home = tmp_path / "home"
    e = Env(str(home), f"sqlite:///{home / 'ledger.db'}", tmp_path)
    res = e.runner.invoke(bfa, ["init", "--home", str(home), "--origin", ORIGIN, "--group", group])
    assert res.exit_code == 0, res.output
    try:
        e.ingest(sc.base(tmp_path))
        assert e.run("nightly", "--report-dir", str(tmp_path / "rep"), "--as-of", AS_OF
                     ).exit_code in (0, 1)
        got = {**modes(home), **modes(tmp_path / "rep")}
        gid = grp.getgrnam(group).gr_gid
        wrong = {k: oct(v) for k, v in got.items()
                 if v != (0o2770 if (tmp_path / k).is_dir()
                          else 0o440 if "/archive/sha256/" in k else 0o660)
                 or (tmp_path / k).stat().st_gid != gid}
        assert not wrong
        key = home / "keys" / "signing.key"
        key.chmod(0o664)  # others may read: refused even in a group home
        assert e.run("key", "export", db=False).exit_code == 2
    finally:
        e.close()


def test_planted_links_at_write_targets_are_replaced_or_refused(fs: Env) -> None:
    """FORMAT §5.4, §9.4: a link at the target is replaced, never followed (checkpoint
    --out, reconcile --html, nightly report files, latest.json); the reject file and the
    nightly lock guard refuse a link (exit 2); a linked nightly.lock is taken over, not
    written through."""
    fs.ingest([*sc.base(fs.work), sc.payment_event(2, who=1)])
    victim = fs.work.parent / "victim.txt"
    evil = fs.work.parent / "evil"
    out = fs.work.parent / "out"
    (out / "rep" / AS_OF).mkdir(parents=True)
    for p in [out / "cp.note", out / "r.html", out / "rej.jsonl", out / "rep" / "latest.json",
              out / "rep" / "index.json",
              *(out / "rep" / AS_OF / f for f in ("report.json", "report.csv", "report.html",
                                                    "nightly.json"))]:
        p.symlink_to(victim)
    assert fs.run("checkpoint", "--out", str(out / "cp.note")).exit_code == 0
    assert fs.run("reconcile", "--as-of", AS_OF, "--html", str(out / "r.html")).exit_code == 1
    write_jsonl(fs.work / "bad.jsonl", ['{"x": 1}'])
    res = fs.run("ingest", str(fs.work / "bad.jsonl"), "--reject-file", str(out / "rej.jsonl"))
    assert res.exit_code == 2 and "symbolic link" in res.output
    guard = Path(fs.home) / "nightly.lock.guard"
    guard.symlink_to(evil / "created")
    res = fs.run("nightly", "--report-dir", str(out / "rep"), "--as-of", AS_OF)
    assert res.exit_code == 2
    assert not (evil / "created").exists()
    guard.unlink()
    (Path(fs.home) / "nightly.lock").symlink_to(victim)
    assert fs.run("nightly", "--report-dir", str(out / "rep"), "--as-of", AS_OF).exit_code == 1
    assert victim.read_text() == "VICTIM\n" and victim.stat().st_mode & 0o777 == 0o644
    for p in [out / "cp.note", out / "r.html", out / "rep" / "latest.json",
              out / "rep" / "index.json", (out / "rep" / "latest").resolve() / "report.json",
              Path(fs.home) / "nightly.lock.guard"]:
        assert p.is_file() and not p.is_symlink(), p
    assert not os.listdir(evil)


def test_nightly_report_directory_link_does_not_redirect_reports(fs: Env) -> None:
    fs.ingest(sc.base(fs.work))
    evil = fs.work.parent / "evil"
    rep = fs.work.parent / "rep"
    rep.mkdir()
    (rep / AS_OF).symlink_to(evil)
    res = fs.run("nightly", "--report-dir", str(rep), "--as-of", AS_OF)
    assert res.exit_code == 2 or not os.listdir(evil), os.listdir(evil)


def test_voucher_store_link_does_not_redirect_voucher_files(fs: Env) -> None:
    evil = fs.work.parent / "evil"
    recs = sc.base(fs.work)
    first = next(r for r in recs if r["type"].startswith("archive."))
    store = Path(fs.home) / "archive" / "sha256"
    store.mkdir(parents=True, exist_ok=True)
    (store / first["sha256"][:2]).symlink_to(evil)
    path = write_jsonl(fs.work / "batch.jsonl", recs)
    res = fs.run("ingest", str(path))
    assert res.exit_code == 2 or not os.listdir(evil), os.listdir(evil)


def _key_export(e: Env, key: Path | None = None) -> Result:
    return e.run("key", "export", db=False,
                 env={"BFA_SIGNING_KEY": str(key)} if key is not None else None)


def test_keys_others_could_replace_are_refused(fs: Env) -> None:
    """FORMAT §5.4: refused (exit 2) when the key grants group/others access, belongs to
    someone else, or lies in (or is reached through) a directory others may write without
    the sticky bit or that belongs to another user; a sticky world-writable directory is
    fine; a key that is not text is refused."""
    keys = Path(fs.home) / "keys"
    key = keys / "signing.key"
    evil = fs.work.parent / "evil"
    assert _key_export(fs).exit_code == 0
    key.chmod(0o640)
    assert _key_export(fs).exit_code == 2
    key.chmod(0o600)
    keys.chmod(0o777)
    assert _key_export(fs).exit_code == 2
    keys.chmod(0o1777)
    assert _key_export(fs).exit_code == 0
    keys.chmod(0o700)
    shutil.copy(key, evil / "k.key")
    (evil / "k.key").chmod(0o600)
    assert _key_export(fs, evil / "k.key").exit_code == 2
    (fs.work / "link.key").symlink_to(evil / "k.key")  # private link to a key in evil/
    assert _key_export(fs, fs.work / "link.key").exit_code == 2
    (evil / "link.key").symlink_to(key)  # link in evil/ to the private key
    assert _key_export(fs, evil / "link.key").exit_code == 2
    raw = key.read_bytes()
    key.write_bytes(b"\xff\xfe\x00 not a key")
    assert _key_export(fs).exit_code == 2
    key.write_bytes(raw)
    if os.geteuid() == 0:  # ownership needs root to set up
        os.chown(key, 65534, -1)
        assert _key_export(fs).exit_code == 2
        os.chown(key, 0, -1)
        other = fs.work.parent / "other"
        other.mkdir(mode=0o755)
        os.chown(other, 65534, -1)
        shutil.copy(key, other / "k.key")
        (other / "k.key").chmod(0o600)
        assert _key_export(fs, other / "k.key").exit_code == 2
    assert _key_export(fs).exit_code == 0


def test_key_link_chain_through_a_writable_directory_is_refused(fs: Env) -> None:
    key = Path(fs.home) / "keys" / "signing.key"
    evil = fs.work.parent / "evil"
    (evil / "hop.key").symlink_to(key)
    (fs.work / "entry.key").symlink_to(evil / "hop.key")  # fs.work is the user's, not writable
    assert _key_export(fs, fs.work / "entry.key").exit_code == 2
