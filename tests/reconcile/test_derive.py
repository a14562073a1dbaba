"""Derived rows written by the ingest (``reconcile.Deriver``, ADR 0018).

Two ledgers with one home (one secret, so the same pseudonyms) receive the same
batches: one ingests with the deriver, the other without it and refreshes after each
batch, as a run did before the deriver existed. Their derived tables must hold the
same rows, and the runs the same findings. One batch goes in without the deriver on
both sides, and a reveal appends a control entry: the next derived ingest catches up
with what lies below the head. A refused batch derives nothing. Both backends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ledger import Ledger, LocatedInputError, _append
from ledger._ingest import BatchRefusedError
from ledger._schema import entries
from reconcile import Deriver, refresh, run_reconcile
from reconcile.matching import _tables as t
from tests._records import write_jsonl
from tests.reconcile import _scenarios as sc
from tests.reconcile._batches import EARLY, batches, view

DECODED = (t.records, t.events, t.movements, t.allocations, t.vouchers, t.voucher_refs,
           t.person_events)


def _tables(led: Ledger) -> dict[str, list[tuple[Any, ...]]]:
    """Every decoded table's rows in ``seq`` order, entry hashes left out (they cover
    each ledger's own recording times)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with led.store.reader() as conn:
        for table in DECODED:
            cols = [c for c in table.columns if c.name != "entry_hash"]
            out[table.name] = [tuple(r) for r in conn.execute(
                select(*cols).order_by(*table.primary_key.columns))]
    return out


def _watermark(led: Ledger) -> int:
    with led.store.reader() as conn:
        return int(led.store.get_meta(conn, t.WATERMARK_KEY) or 0)


def _second(ledger_home: dict[str, Any], other_url: str) -> Ledger:
    """A second ledger of the same home (one secret, the same pseudonyms) at
    ``other_url``."""
    init = Ledger.open(ledger_home["home"], other_url, check=False)
    init.init("test.bfa.example/ledger")
    init.close()
    return Ledger.open(ledger_home["home"], other_url)


def test_ingest_derives_what_a_refresh_decodes(ledger_home: dict[str, Any], other_url: str,
                                              tmp_path: Path) -> None:
    derived = Ledger.open(ledger_home["home"], ledger_home["db"])
    refreshed = _second(ledger_home, other_url)
    try:
        for i, batch in enumerate(batches(tmp_path)):
            if not batch:
                continue
            if i == 1:  # a control entry (not decoded) between two batches
                for led in (derived, refreshed):
                    led.reveal("BP-2026-11-000000", None, "auditor", "test")
            path = write_jsonl(tmp_path / f"batch-{i}.jsonl", batch)
            lagging = i == 1  # in without the deriver: the next batch catches up
            derived.ingest([str(path)], None, derive=None if lagging else Deriver)
            refreshed.ingest([str(path)], None)
            if lagging:  # compared after the next batch, which catches up
                assert _watermark(derived) < derived.size()
                continue
            assert _watermark(derived) == derived.size(), f"batch {i}"
            refresh(refreshed.store)
            assert _tables(derived) == _tables(refreshed), f"batch {i}"
            for as_of in (EARLY, sc.AS_OF):
                assert view(run_reconcile(derived, as_of)) == view(
                    run_reconcile(refreshed, as_of)), f"batch {i}, as of {as_of}"
        with derived.store.reader() as conn:  # the entry hashes are the entries' own
            e, r = entries.c, t.records.c
            pairs = conn.execute(select(e.entry_hash, r.entry_hash)
                                 .join_from(t.records, entries, e.seq == r.seq)).all()
        assert pairs and all(bytes(a).hex() == b for a, b in pairs)
    finally:
        derived.close()
        refreshed.close()


def test_a_refresh_that_forgets_money_events_derives_the_same_rows(
        ledger_home: dict[str, Any], other_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A refresh remembers at most MONEY_IDS money events by id (memory stays flat); an
    allocation naming one it forgot is resolved in SQL to the same row."""
    from reconcile.matching import _refresh

    normal = Ledger.open(ledger_home["home"], ledger_home["db"])
    forgetful = _second(ledger_home, other_url)
    try:
        for i, batch in enumerate(batches(tmp_path)):
            if not batch:
                continue
            path = write_jsonl(tmp_path / f"batch-{i}.jsonl", batch)
            normal.ingest([str(path)], None, derive=Deriver)
            with monkeypatch.context() as m:
                m.setattr(_refresh, "MONEY_IDS", 1)
                forgetful.ingest([str(path)], None, derive=Deriver)
            assert _tables(forgetful) == _tables(normal), f"batch {i}"
        with normal.store.reader() as conn:  # allocations were resolved at all
            assert conn.execute(select(t.allocations.c.event_seq).where(
                t.allocations.c.event_seq.is_not(None)).limit(1)).first() is not None
    finally:
        normal.close()
        forgetful.close()


class _Rejects:
    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []

    def reject(self, problem: LocatedInputError, text: str) -> None:
        self.lines.append((problem.line, problem.field))


def test_flushes_deferred_corrections_and_rejected_lines(
        ledger_home: dict[str, Any], other_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One batch written in many flushes (three entries each), a correction that comes
    before the record it corrects (appended after it), a line rejected to the sink: the
    derived rows are those a refresh decodes."""
    monkeypatch.setattr(_append, "FLUSH_ROWS", 3)
    fix = sc.assessment("CA-5-C", "900.00")
    fix["corrects"] = "CA-5"
    bad = sc.payment_event(9)
    bad["amount"] = "1.234"
    batch = [fix, bad, *sc.with_vouchers(tmp_path, [
        sc.assessment("CA-5"), sc.collection("COL-5", "900.00", allocations=[("CA-5", "900.00")]),
        sc.payment_event(6), sc.payment("PAY-6", allocations=[("BP-6", "3456.78")])], "f")]
    path = write_jsonl(tmp_path / "batch.jsonl", sc.base(tmp_path) + batch)
    refreshed = _second(ledger_home, other_url)
    derived = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        rejected = [_Rejects(), _Rejects()]
        derived.ingest([str(path)], None, reject_sink=rejected[0], derive=Deriver)
        refreshed.ingest([str(path)], None, reject_sink=rejected[1])
        refresh(refreshed.store)
        assert rejected[0].lines == rejected[1].lines == [(len(sc.base(tmp_path)) + 2, "amount")]
        assert _watermark(derived) == derived.size() > 2 * 3
        assert _tables(derived) == _tables(refreshed)
        report = run_reconcile(derived, sc.AS_OF)
        assert view(report) == view(run_reconcile(refreshed, sc.AS_OF))
        assert report.clean, report.breaks
    finally:
        derived.close()
        refreshed.close()


def test_refused_batch_derives_nothing(led: Ledger, tmp_path: Path) -> None:
    """The refusal comes after the deriver has written rows in the batch's transaction:
    it catches up with a batch that went in without it, and the batch's own records are
    appended before the last line turns out to correct nothing. The rollback takes all
    of it back."""
    led.ingest([str(write_jsonl(tmp_path / "base.jsonl", sc.base(tmp_path)))], None,
               derive=Deriver)
    led.ingest([str(write_jsonl(tmp_path / "lagging.jsonl", [sc.payment_event(7)]))], None)
    before, mark, size = _tables(led), _watermark(led), led.size()
    assert mark < size and before[t.records.name]
    fix = dict(sc.payment_event(9), id="BP-FIX-1", corrects="BP-NOT-THERE")
    path = write_jsonl(tmp_path / "bad.jsonl", [sc.payment_event(8), fix])
    with pytest.raises(BatchRefusedError) as err:
        led.ingest([str(path)], None, derive=Deriver)
    problem = err.value.problems[0]
    assert isinstance(problem, LocatedInputError)
    assert (problem.line, problem.field) == (2, "corrects")
    assert _tables(led) == before and _watermark(led) == mark and led.size() == size
