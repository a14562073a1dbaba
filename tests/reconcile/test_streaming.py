"""The reconciler streams its findings (``reconcile.derive_breaks``, and
``reconcile.stream_report`` with evidence for ``bfa bundle export``): what it hands over
part by part equals the report a run builds whole, at every as-of day, and no part is
larger than ``PART``. The batches of ``_batches`` cover every rule (settlement,
returns, heuristic matches made and undone, vouchers, terminations, payees); a part
of two breaks makes every rule's findings cross part boundaries. Both backends.
"""

from __future__ import annotations

from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

import reconcile.matching._match
import reconcile.matching._run
from ledger import Ledger
from reconcile import Break, Rules, derive_breaks, load_rules, run_reconcile, stream_report
from tests.reconcile import _scenarios as sc
from tests.reconcile._batches import EARLY, add, batches

EXAMPLE = Path(__file__).resolve().parents[2] / "reconcile" / "rules.custom.example.toml"
CUT = date(2026, 11, 10)  # after the assessments of 5 November, before most records


def _keep(parts: list[list[Break]], conn: Connection, breaks: list[Break]) -> None:
    assert conn.in_transaction()
    parts.append(list(breaks))


def _seen(b: Break) -> tuple[Any, ...]:
    return (b.id, b.code, b.field, b.records, dict(b.amounts), b.message, b.amount_at_risk)


def test_breaks_handed_over_in_parts_equal_the_report(
        led: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconcile.matching._run, "PART", 2)
    monkeypatch.setattr(reconcile.matching._match, "STREAM_PART", 3)
    checked = cut = 0
    for i, batch in enumerate(batches(tmp_path)):
        add(led, tmp_path, i, batch)
        for as_of in (CUT, EARLY, sc.AS_OF, date(2027, 6, 30)):
            want = run_reconcile(led, as_of, full=True)
            parts: list[list[Break]] = []
            derive_breaks(led, as_of, Rules(), partial(_keep, parts))
            assert all(len(p) <= 2 for p in parts[:-1]), [len(p) for p in parts]
            got = {b.id: b for part in parts for b in part}  # the last of an id counts
            assert sorted(map(_seen, got.values())) == sorted(map(_seen, want.breaks)), (
                f"batch {i}, as of {as_of}")
            assert all(b.evidence == "" for b in got.values())
            checked += len(want.breaks)
            cut += bool(want.run.not_judged and want.breaks)
    assert checked > 30  # the batches do find breaks, across many parts
    assert cut  # and some are left out by the cut-off while others stay


def test_the_report_streamed_with_evidence_equals_the_report(
        led: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``stream_report`` (what a bundle export keeps its scope's breaks from): the same
    breaks as the report, each with the same evidence and day, an agency's own SQL rule's
    included, in parts of at most PART."""
    monkeypatch.setattr(reconcile.matching._run, "PART", 2)
    monkeypatch.setattr(reconcile.matching._match, "STREAM_PART", 3)
    rules = load_rules(EXAMPLE)  # with the example's two SQL rules
    checked = 0
    # the last batch: a payment of 12,000.00 with no bank slip, for the example's rule
    for i, batch in enumerate([*batches(tmp_path), [sc.payment_event(900, "12000.00")]]):
        add(led, tmp_path, i, batch)
        for as_of in (CUT, sc.AS_OF):
            want = run_reconcile(led, as_of, rules)
            parts: list[list[Break]] = []
            stream_report(led, as_of, rules, partial(_keep, parts))
            assert all(len(p) <= 2 for p in parts[:-1]), [len(p) for p in parts]
            got = {b.id: b for part in parts for b in part}  # the last of an id counts
            assert sorted((b.model_dump() for b in got.values()), key=lambda d: d["id"]) == (
                sorted((b.model_dump() for b in want.breaks), key=lambda d: d["id"])), (
                f"batch {i}, as of {as_of}")
            assert all(b.evidence for b in got.values())
            checked += len(want.breaks)
    assert checked > 30
    assert any(b.code.startswith("CUSTOM_") for b in want.breaks)


def test_streaming_leaves_no_cycles_behind_its_parts(
        led: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The collector is paused during a run (``paused_gc``), and each part's look-ups leave
    statement objects in reference cycles that hold their lists of ids: each part
    collects its own, or memory grows with the breaks (bench/ARCHIVE.md)."""
    import gc

    monkeypatch.setattr(reconcile.matching._run, "PART", 2)
    for i, batch in enumerate(batches(tmp_path)):
        add(led, tmp_path, i, batch)
    parts: list[list[Break]] = []
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        stream_report(led, sc.AS_OF, Rules(), partial(_keep, parts))
        left = gc.collect()
    finally:
        if was:
            gc.enable()
    assert len(parts) > 20
    assert left < 400, left
