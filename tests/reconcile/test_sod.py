"""Separation of duties (FORMAT.md §2.5.1), on both backends: nobody approves a break on a
record they ingested, and an approval that got past the workflow's checks (written before
they existed, or by the tables' owner) is found from the ledger as a ``SOD_CONFLICT``
break. Labels stand for identities here (tests/_identity.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import InputError, Ledger
from reconcile import run_reconcile
from reconcile.workflow import _workflow as wf
from reconcile.workflow._workflow import apply_states, approve_break, list_breaks, resolve_break
from tests._records import write_jsonl
from tests.reconcile import _scenarios as sc


def _orphan_ingested_by(led: Ledger, tmp_path: Path, who: str) -> str:
    """The base month ingested by someone else, the orphan collection by ``who``;
    returns the orphan's break id."""
    sc.ingest(led, tmp_path, sc.base(tmp_path))
    batch = write_jsonl(tmp_path / "orphan.jsonl", sc.orphan(tmp_path, False))
    led.ingest([str(batch)], None, label=who)
    apply_states(led, run_reconcile(led, sc.AS_OF))
    return next(s.break_id for s in list_breaks(led) if s.code == "ORPHAN_MOVEMENT")


def test_nobody_approves_a_break_on_what_they_ingested(led: Ledger, tmp_path: Path) -> None:
    bid = _orphan_ingested_by(led, tmp_path, "li.wei")
    resolve_break(led, bid, "wang.fang", "bank_error", "returned on 12-02")
    with pytest.raises(InputError, match=r"separation of duties: li\.wei ingested finance "
                                         r"record COL-9 \(entry \d+\) and cannot approve"):
        approve_break(led, bid, "li.wei")
    assert approve_break(led, bid, "zhao.min").status == "resolved"
    report = run_reconcile(led, sc.AS_OF)
    assert not [b for b in report.breaks if b.code == "SOD_CONFLICT"]


def test_an_approval_past_the_checks_is_a_sod_conflict(
        led: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An approval from before the checks (here: with them switched off) by the identity
    that ingested the record and resolved the break: one high-severity break naming both."""
    bid = _orphan_ingested_by(led, tmp_path, "li.wei")
    resolve_break(led, bid, "li.wei", "bank_error", "returned on 12-02")
    monkeypatch.setattr(wf, "_refuse_own_records", lambda *a: None)
    monkeypatch.setattr(wf.Actor, "same_person", lambda self, other: False)
    approve_break(led, bid, "li.wei")
    monkeypatch.undo()

    report = run_reconcile(led, sc.AS_OF)
    (sod,) = [b for b in report.breaks if b.code == "SOD_CONFLICT"]
    assert sod.severity == "high" and sod.field == "approved_by"
    assert f"li.wei approved {bid}" in sod.message
    assert "resolved it (entry" in sod.message and "ingested COL-9 (entry" in sod.message
    assert sod.key == ("sod", bid)
    # keyed by the approval: the same break on every run, and on a full one
    again = run_reconcile(led, sc.AS_OF, full=True)
    assert [b.id for b in again.breaks if b.code == "SOD_CONFLICT"] == [sod.id]


def test_separate_people_raise_no_sod_conflict(led: Ledger, tmp_path: Path) -> None:
    bid = _orphan_ingested_by(led, tmp_path, "li.wei")
    resolve_break(led, bid, "wang.fang", "bank_error", "returned on 12-02")
    approve_break(led, bid, "zhao.min")
    assert not [b for b in run_reconcile(led, sc.AS_OF).breaks if b.code == "SOD_CONFLICT"]


def test_a_record_no_batch_covers_has_no_known_ingester(
        led: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After batches were first recorded, a record appended without a control.ingest entry
    (a raw insert) has an unknown ingester: no break on it is approved, and an approval
    written past that check is a SOD_CONFLICT."""
    from tests._insider import append_raw

    sc.ingest(led, tmp_path, sc.base(tmp_path))
    with led.store.engine.begin() as conn:
        append_raw(conn, sc.orphan(tmp_path, False)[:1])  # COL-9 alone, no batch entry
    assert [p.code for p in led.verify().problems] == ["ingest-unrecorded"]  # FORMAT §6.5
    apply_states(led, run_reconcile(led, sc.AS_OF))
    bid = next(s.break_id for s in list_breaks(led) if s.code == "ORPHAN_MOVEMENT")
    resolve_break(led, bid, "wang.fang", "bank_error", "returned on 12-02")
    with pytest.raises(InputError, match=r"COL-9 \(entry \d+\) was appended outside 'bfa "
                                         r"ingest'"):
        approve_break(led, bid, "zhao.min")
    monkeypatch.setattr(wf, "_refuse_own_records", lambda *a: None)
    approve_break(led, bid, "zhao.min")
    monkeypatch.undo()
    (sod,) = [b for b in run_reconcile(led, sc.AS_OF).breaks if b.code == "SOD_CONFLICT"]
    assert "which no control.ingest covers" in sod.message and "COL-9" in sod.message
