"""Ledger end to end on both backends: ingest, checkpoint, verify, prove, consistency."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from archive import FileStore
from ledger import (
    BatchRefusedError,
    Ledger,
    NotCoveredError,
    TLogProof,
    decode_leaf,
    entry_hash,
    leaf_record,
    verify_consistency,
    verify_inclusion,
)
from ledger._canonical import canonicalize
from ledger._errors import FormatError
from ledger._tlogproof import verify_tlog_proof
from tests._records import collection, payment_event, voucher, write_jsonl

BATCH = 1  # the control.ingest entry that closes every batch that appends (FORMAT.md §2.5)


def _ingest(led: Ledger, path: Path) -> Any:
    return led.ingest([str(path)], FileStore(led.home.archive_dir))[0]


def test_ingest_checkpoint_verify_prove(led: Ledger, tmp_path: Path) -> None:
    recs = [payment_event(i) for i in range(20)] + [collection(i) for i in range(7)]
    rep = _ingest(led, write_jsonl(tmp_path / "a.jsonl", recs))
    assert (rep.appended, rep.duplicates, rep.rejected) == (27, 0, 0)
    cp = led.checkpoint()
    assert cp.size == 27 + BATCH and cp.new
    assert not led.checkpoint().new  # nothing new: the same checkpoint
    res = led.verify()
    assert res.ok, res.problems
    assert res.entries_checked == 27 + BATCH and res.checkpoints_checked == 1 \
        and res.derived_checked

    entry, proof = led.prove("BP-5")
    text = proof.marshal()
    parsed = TLogProof.parse(text)
    assert parsed.extra == entry.leaf
    got = verify_tlog_proof(parsed, entry_hash(parsed.extra), led.home.verifier(),
                            verify_inclusion, led.origin)
    assert got.size == 27 + BATCH


def test_reingest_is_noop_and_conflict_refused(led: Ledger, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [payment_event(1), payment_event(2)])
    _ingest(led, path)
    rep = _ingest(led, path)
    assert (rep.appended, rep.duplicates) == (0, 2)
    changed = write_jsonl(tmp_path / "b.jsonl", [payment_event(3), payment_event(1, "1.00")])
    with pytest.raises(BatchRefusedError, match=r"b.jsonl:2: id: conflict: business record 'BP-1'"):
        _ingest(led, changed)
    assert led.size() == 2 + BATCH  # nothing of b.jsonl was written, not even BP-3


def test_batch_ends_with_its_control_ingest_entry(led: Ledger, tmp_path: Path) -> None:
    """FORMAT.md §2.5: a batch of N records that appends is closed by one control.ingest
    entry at seq N naming the file, who ingested it, the first seq and the count; a
    re-send of the same file appends nothing, not even a control.ingest entry."""
    recs = [payment_event(i) for i in range(1, 5)] + [collection(1)]
    n = len(recs)
    path = write_jsonl(tmp_path / "a.jsonl", recs)
    rep = _ingest(led, path)
    assert rep.appended == n and led.size() == n + BATCH
    assert [led.entry_at(i).domain for i in range(n)] == ["business"] * 4 + ["finance"]
    closing = led.entry_at(n)
    assert closing.record["type"] == "control.ingest"
    uuid4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    assert re.fullmatch(f"ingest-{uuid4}", closing.record_id)
    assert set(closing.record) == {"type", "id", "user", "file", "first", "count", "at"}
    assert closing.record["user"] == led.actor().identity
    assert closing.record["file"] == str(path) == rep.file
    assert (closing.record["first"], closing.record["count"]) == (0, n)
    assert closing.record["at"] == closing.recorded_at
    again = _ingest(led, path)
    assert (again.appended, again.duplicates) == (0, n)
    assert led.size() == n + BATCH
    assert led.verify().ok


def test_bad_line_refuses_whole_file(led: Ledger, tmp_path: Path) -> None:
    bad = dict(payment_event(2), amount=12.5)
    path = write_jsonl(tmp_path / "bad.jsonl", [payment_event(1), bad, "{not json"])
    with pytest.raises(BatchRefusedError) as err:
        _ingest(led, path)
    msgs = [str(p) for p in err.value.problems]
    assert msgs[0].startswith(f"{path}:2: amount:")
    assert msgs[1].startswith(f"{path}:3: ") and "not JSON" in msgs[1]
    assert led.size() == 0


def test_reject_sink_appends_valid_lines(led: Ledger, tmp_path: Path) -> None:
    class Sink:
        def __init__(self) -> None:
            self.got: list[tuple[str, str]] = []

        def reject(self, problem: Any, text: str) -> None:
            self.got.append((str(problem), text))

    sink = Sink()
    path = write_jsonl(tmp_path / "m.jsonl", [payment_event(1), '{"type": "business.x"}',
                                              payment_event(2)])
    rep = led.ingest([str(path)], None, reject_sink=sink)[0]
    assert (rep.appended, rep.rejected) == (2, 1)
    assert sink.got[0][0].startswith(f"{path}:2: type:")
    assert sink.got[0][1] == '{"type": "business.x"}'


def test_duplicate_keys_rejected(led: Ledger, tmp_path: Path) -> None:
    line = json.dumps(payment_event(1))[:-1] + ', "amount": "1.00"}'
    path = write_jsonl(tmp_path / "d.jsonl", [line])
    with pytest.raises(BatchRefusedError, match="duplicate key 'amount'"):
        _ingest(led, path)


def test_corrections_any_order(led: Ledger, tmp_path: Path) -> None:
    fix = dict(payment_event(9, "10.00"), id="BP-1-fix", corrects="BP-1")
    path = write_jsonl(tmp_path / "c.jsonl", [fix, payment_event(1)])
    rep = _ingest(led, path)
    assert rep.appended == 2
    dangling = dict(payment_event(9), id="BP-2-fix", corrects="BP-404")
    with pytest.raises(BatchRefusedError, match=r"corrects: names no business record 'BP-404'"):
        _ingest(led, write_jsonl(tmp_path / "e.jsonl", [dangling]))


def test_vouchers_checked_and_stored(led: Ledger, tmp_path: Path) -> None:
    good = voucher(tmp_path, 1, ["BP-1"])
    rep = _ingest(led, write_jsonl(tmp_path / "v.jsonl", [payment_event(1), good]))
    assert rep.appended == 2
    assert FileStore(led.home.archive_dir).has(good["sha256"])
    wrong = dict(voucher(tmp_path, 2, ["BP-1"]), sha256="0" * 64)
    with pytest.raises(BatchRefusedError, match=r"v2.jsonl:1: sha256: voucher file .* hashes to"):
        _ingest(led, write_jsonl(tmp_path / "v2.jsonl", [wrong]))
    missing = dict(voucher(tmp_path, 3, ["BP-1"]), file="nope.pdf")
    with pytest.raises(BatchRefusedError,
                       match=r"v3.jsonl:1: file: voucher file .* does not exist"):
        _ingest(led, write_jsonl(tmp_path / "v3.jsonl", [missing]))


def test_prove_needs_checkpoint(led: Ledger, tmp_path: Path) -> None:
    _ingest(led, write_jsonl(tmp_path / "a.jsonl", [payment_event(1)]))
    with pytest.raises(NotCoveredError, match="not yet covered by a signed checkpoint"):
        led.prove("BP-1")


def test_consistency_between_checkpoints(led: Ledger, tmp_path: Path) -> None:
    sizes = []
    for part in range(4):
        recs = [payment_event(part * 100 + i) for i in range(part * 3 + 2)]
        _ingest(led, write_jsonl(tmp_path / f"p{part}.jsonl", recs))
        sizes.append(led.checkpoint())
    for old in sizes:
        for new in sizes:
            if old.size > new.size:
                continue
            proof = led.prove_consistency(old.size, new.size)
            verify_consistency(old.size, new.size, old.root, new.root, list(proof.hashes))
    text = led.prove_consistency(sizes[0].size).to_text()
    assert text.startswith(f"old {sizes[0].size}\n")


def test_privacy_pseudonyms_reveal_forget(led: Ledger, tmp_path: Path) -> None:
    person = "110101199001011234"
    _ingest(led, write_jsonl(tmp_path / "a.jsonl", [payment_event(1, person=person)]))
    entry = led.entry("BP-1")
    raw = entry.leaf.decode()
    assert person not in raw and "6222020200112233445" not in raw
    assert entry.record["person_id"].startswith("ps1:")
    assert set(entry.record["_commitments"]) == {"person_id", "account"}
    _e, clear = led.reveal("BP-1", None, "auditor-1", "test")
    assert clear == {"person_id": person, "account": "6222020200112233445"}
    reveal = led.entry_at(1 + BATCH)
    assert reveal.kind == "reveal" and reveal.record["user"] == "auditor-1"
    assert led.forget(person, "dpo") == 2
    _e, clear = led.reveal("BP-1", None, "auditor-1", "test")
    assert clear == {}
    led.checkpoint()
    assert led.verify().ok


def test_payer_comparable_with_employer(led: Ledger, tmp_path: Path) -> None:
    assessment = {
        "type": "business.contribution_assessment", "id": "CA-1", "region": "440100",
        "occurred_at": "2026-11-05T10:00:00+08:00", "employer_id": "91440100MA12345678",
        "insurance": "pension", "period": "2026-11", "amount": "100.00",
        "due_date": "2026-11-15",
    }
    _ingest(led, write_jsonl(tmp_path / "a.jsonl", [assessment, collection(1)]))
    a = led.entry("CA-1").record
    c = led.entry("COL-1").record
    assert a["employer_id"] == "91440100MA12345678"
    assert c["payer_id"] == a["employer_party"]


def test_leaf_bytes_decode_and_hash(led: Ledger, tmp_path: Path) -> None:
    _ingest(led, write_jsonl(tmp_path / "a.jsonl", [payment_event(1), payment_event(2)]))
    e0, e1 = led.entry_at(0), led.entry_at(1)
    assert e1.prev_hash == e0.entry_hash and e0.prev_hash == bytes(32)
    again = decode_leaf(e1.leaf)
    assert again.record == e1.record
    assert base64.b64encode(entry_hash(e1.leaf))
    assert leaf_record(e1.leaf) == e1.record  # the reconciler's unchecked fast path
    head = e1.leaf[:41]
    for body in (b"not json", b"[1]", b'{"record": 5, "recorded_at": "x"}'):
        with pytest.raises(FormatError):
            leaf_record(head + body)


_GOOD_BODY: dict[str, Any] = {
    "record": {"type": "business.enrollment", "id": "EN-1"},
    "recorded_at": "2026-11-23T08:00:00.000000+00:00",
}


@pytest.mark.parametrize(("change", "reason"), [
    ({"record": {"type": "business.enrollment"}}, "no 'id' string"),
    ({"record": {"type": "business.enrollment", "id": ""}}, "no 'id' string"),
    ({"record": {"type": "business.enrollment", "id": 7}}, "no 'id' string"),
    ({"record": {"type": "business.", "id": "EN-1"}}, "domain.kind"),
    ({"record": {"type": ".enrollment", "id": "EN-1"}}, "domain.kind"),
    ({"record": {"type": "business", "id": "EN-1"}}, "domain.kind"),
    ({"record": {"type": 5, "id": "EN-1"}}, "domain.kind"),
    ({"record": [1]}, "'record' is not an object"),
    ({"recorded_at": "yesterday"}, "'recorded_at' is not an RFC 3339"),
    ({"recorded_at": "2026-11-23T08:00:00"}, "'recorded_at' is not an RFC 3339"),
    ({"recorded_at": 1732348800}, "'recorded_at' is not an RFC 3339"),
    ({"record": {"type": "business.enrollment", "id": "EN-1", "n": 1.5}}, "floating-point"),
    ({"record": {"type": "business.enrollment", "id": "EN-1", "n": 1e21}}, "floating-point"),
])
def test_decode_leaf_refuses_bodies_the_ledger_never_writes(
    change: dict[str, Any], reason: str
) -> None:
    """FORMAT.md §6.5 step 1: canonical bodies that break a rule are still refused."""
    head = bytes([1]) + (0).to_bytes(8, "big") + bytes(32)
    assert decode_leaf(head + canonicalize({**_GOOD_BODY})).record_id == "EN-1"
    with pytest.raises(FormatError, match=re.escape(reason)):
        decode_leaf(head + canonicalize({**_GOOD_BODY, **change}))


def test_refused_batch_reports_only_real_problems(led: Ledger, tmp_path: Path) -> None:
    fix = dict(payment_event(9), id="BP-1-fix", corrects="BP-1")
    bad = dict(payment_event(5), region="x")
    path = write_jsonl(tmp_path / "r.jsonl", [bad, fix, payment_event(1)])
    with pytest.raises(BatchRefusedError) as err:
        _ingest(led, path)
    assert [p.line for p in err.value.problems] == [1]  # the correction's target is in the file


def test_batch_in_many_chunks_and_background_writes(
        led: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch settled in chunks of 4 and flushed every 3 entries (on PostgreSQL each
    chunk is written on the worker thread while the next is parsed): duplicates and
    conflicts across chunks are seen, a correction from an earlier chunk waits for its
    target, and the ledger verifies."""
    from ledger import _append
    from ledger import _ingest as ingest_mod

    monkeypatch.setattr(ingest_mod, "CHUNK", 4)
    monkeypatch.setattr(_append, "FLUSH_ROWS", 3)
    fix = dict(payment_event(30, "10.00"), id="BP-1-fix", corrects="BP-1")
    recs: list[Any] = [fix] + [payment_event(i) for i in range(1, 24)]
    recs += [payment_event(2), payment_event(3, "1.00")]  # a re-send and a conflict
    rejected: list[tuple[int, str]] = []

    class Sink:
        def reject(self, problem: Any, text: str) -> None:
            rejected.append((problem.line, problem.field))

    rep = led.ingest([str(write_jsonl(tmp_path / "m.jsonl", recs))], None, reject_sink=Sink())[0]
    assert (rep.appended, rep.duplicates, rep.rejected) == (24, 1, 1)
    assert rejected == [(len(recs), "id")]
    assert led.size() == 24 + BATCH
    res = led.verify()
    assert res.ok, res.problems
    with led.store.reader() as conn:
        order = [r for (r,) in conn.exec_driver_sql("SELECT record_id FROM entries ORDER BY seq")]
    *business, closing = order
    assert closing.startswith("ingest-") and led.entry_at(24).kind == "ingest"
    assert business.index("BP-1") < business.index("BP-1-fix")
    assert sorted(business) == sorted({str(r["id"]) for r in recs})


def test_failed_bulk_write_leaves_nothing(
        led: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bulk write that fails (here the third, on PostgreSQL on the worker thread) fails
    the batch: its error reaches the caller, nothing of the file is written, the append
    lock is free and the same file then goes in whole."""
    from ledger import _ingest as ingest_mod
    from ledger._store import Store

    monkeypatch.setattr(ingest_mod, "CHUNK", 5)
    real = Store.copy_rows
    calls = [0]

    def failing(self: Store, *args: Any) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("disk full (simulated)")
        real(self, *args)

    path = write_jsonl(tmp_path / "a.jsonl", [payment_event(i) for i in range(1, 21)])
    monkeypatch.setattr(Store, "copy_rows", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        _ingest(led, path)
    monkeypatch.setattr(Store, "copy_rows", real)
    assert led.size() == 0
    rep = _ingest(led, path)
    assert rep.appended == 20 and led.size() == 20 + BATCH
    assert led.verify().ok


def test_binary_copy_types_cover_the_ledger_tables_only() -> None:
    """Ledger tables go through binary COPY with their column types; other tables
    (the reconciler's) keep text COPY."""
    from ledger._append import ENTRY_COLUMNS, NODE_COLUMNS, VAULT_COLUMNS
    from ledger._store import _binary_types

    assert _binary_types("entries", ENTRY_COLUMNS) == [
        "int8", "text", "text", "text", "bytea", "bytea", "bytea"]
    assert _binary_types("tree_nodes", NODE_COLUMNS) == ["int2", "int8", "bytea"]
    assert _binary_types("vault", VAULT_COLUMNS) == [
        "text", "text", "text", "text", "bytea", "bytea"]
    assert _binary_types("vault_keys", ("holder", "wrapped")) == ["text", "bytea"]
    assert _binary_types("rc_events", ("seq",)) is None


def test_integer_beyond_i_json_is_refused_on_its_field(led: Ledger, tmp_path: Path) -> None:
    """A count the ledger could not hash as RFC 8785 (beyond 2**53 - 1) is bad input on
    its field, not an entry that later fails `bfa verify`."""
    statement = {
        "type": "finance.statement", "id": "253CNY6222000011112222", "region": "440100",
        "occurred_at": "2026-03-31T18:00:00+08:00", "bank_account": "6222000011112222",
        "currency": "CNY", "format": "camt053", "entry_count": 2**53, "entries_net": "0.00",
    }
    path = write_jsonl(tmp_path / "s.jsonl", [payment_event(1), statement])
    with pytest.raises(BatchRefusedError, match=r"s.jsonl:2: entry_count: .*9007199254740991"):
        _ingest(led, path)
    assert led.size() == 0
    statement["entry_count"] = 2**53 - 1
    assert _ingest(led, write_jsonl(tmp_path / "t.jsonl", [statement])).appended == 1
    assert led.verify().ok
