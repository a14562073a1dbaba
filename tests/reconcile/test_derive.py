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

from ledger import Ledger, LocatedInputError
from ledger._ingest import BatchRefusedError
from ledger._schema import entries
from reconcile import Deriver, refresh, run_reconcile
from reconcile import _tables as t
from tests._records import write_jsonl
from tests.reconcile import _scenarios as sc
from tests.reconcile.test_incremental import EARLY, _batches, _view

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


def test_ingest_derives_what_a_refresh_decodes(ledger_home: dict[str, Any], other_url: str,
                                              tmp_path: Path) -> None:
    derived = Ledger.open(ledger_home["home"], ledger_home["db"])
    Ledger.open(ledger_home["home"], other_url, check=False).init("test.bfa.example/ledger")
    refreshed = Ledger.open(ledger_home["home"], other_url)
    try:
        for i, batch in enumerate(_batches(tmp_path)):
            if not batch:
                continue
            if i == 1:  # a control entry (not decoded) between two batches
                for led in (derived, refreshed):
                    led.reveal("BP-2026-11-000000", None, "auditor")
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
                assert _view(run_reconcile(derived, as_of)) == _view(
                    run_reconcile(refreshed, as_of)), f"batch {i}, as of {as_of}"
        with derived.store.reader() as conn:  # the entry hashes are the entries' own
            e, r = entries.c, t.records.c
            pairs = conn.execute(select(e.entry_hash, r.entry_hash)
                                 .join_from(t.records, entries, e.seq == r.seq)).all()
        assert pairs and all(bytes(a).hex() == b for a, b in pairs)
    finally:
        derived.close()
        refreshed.close()


def test_refused_batch_derives_nothing(led: Ledger, tmp_path: Path) -> None:
    led.ingest([str(write_jsonl(tmp_path / "base.jsonl", sc.base(tmp_path)))], None,
               derive=Deriver)
    before, mark = _tables(led), _watermark(led)
    assert mark == led.size() and before[t.records.name]
    bad = sc.payment_event(9)
    bad["amount"] = "12.345"
    path = write_jsonl(tmp_path / "bad.jsonl", [sc.payment_event(8), bad])
    with pytest.raises(BatchRefusedError) as err:
        led.ingest([str(path)], None, derive=Deriver)
    assert isinstance(err.value.problems[0], LocatedInputError)
    assert err.value.problems[0].line == 2
    assert _tables(led) == before and _watermark(led) == mark == led.size()
