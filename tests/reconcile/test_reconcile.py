"""Reconciliation on both backends: each code injected and its clean near miss, windows,
corrections, stable break ids and the incremental refresh."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from ledger import Ledger
from reconcile import Report, break_id, run_reconcile
from reconcile.matching import _refresh, _run
from reconcile.matching._tables import allocations, events, records
from tests._records import write_jsonl
from tests.reconcile import _scenarios as sc

Scenario = Callable[[Path, bool], list[dict[str, Any]]]
BATCH = 1  # the control.ingest entry that closes every batch that appends (FORMAT.md §2.5)

CASES: dict[str, tuple[Scenario, list[tuple[str, ...]]]] = {
    "UNSETTLED_EVENT": (sc.unsettled, [("BP-2",)]),
    "AMOUNT_MISMATCH": (sc.mismatch, [("BP-2", "PAY-2"), ("PAY-2",)]),
    "LATE_SETTLEMENT": (sc.late, [("CA-2", "COL-2")]),
    "MISSING_VOUCHER": (sc.missing_voucher, [("CA-2",)]),
    "ORPHAN_MOVEMENT": (sc.orphan, [("COL-9",)]),
    "AMBIGUOUS_MATCH": (sc.ambiguous, [("COL-7", "CA-7a", "CA-7b")]),
}


def reconcile(led: Ledger, tmp_path: Path, extra: list[dict[str, Any]],
              as_of: date = sc.AS_OF) -> Report:
    sc.ingest(led, tmp_path, sc.base(tmp_path) + extra)
    return run_reconcile(led, as_of)


def test_clean_base_has_no_breaks(led: Ledger, tmp_path: Path) -> None:
    report = reconcile(led, tmp_path, [])
    assert report.clean, report.breaks
    assert report.summary.breaks == 0 and report.summary.amount_at_risk == "0.00"
    assert not report.expected


@pytest.mark.parametrize("code", list(CASES))
def test_code_injected(led: Ledger, tmp_path: Path, code: str) -> None:
    scenario, recs = CASES[code]
    report = reconcile(led, tmp_path, scenario(tmp_path, False))
    found = [b for b in report.breaks if b.code == code]
    assert [b.records for b in found] == recs, report.breaks
    assert report.summary.by_code[code] == len(recs)
    assert not report.clean


@pytest.mark.parametrize("code", list(CASES))
def test_near_miss_is_clean(led: Ledger, tmp_path: Path, code: str) -> None:
    scenario, _ = CASES[code]
    report = reconcile(led, tmp_path, scenario(tmp_path, True))
    assert report.clean, report.breaks


def test_amount_mismatch_reports_both_sides(led: Ledger, tmp_path: Path) -> None:
    report = reconcile(led, tmp_path, sc.mismatch(tmp_path, False))
    msgs = {b.records: (b.message, b.amounts, b.field) for b in report.breaks}
    assert msgs[("PAY-2",)] == (
        "allocations add up to 3456.68, movement 3456.78",
        {"movement": "3456.78", "allocated": "3456.68"}, "allocations")
    # under-allocated event: after its window it is a mismatch, not "unsettled"
    assert msgs[("BP-2", "PAY-2")] == (
        "allocated 3456.68, event 3456.78", {"event": "3456.78", "allocated": "3456.68"},
        "amount")
    assert report.summary.amount_at_risk == "0.20"
    assert {b.severity for b in report.breaks} == {"medium"}


def test_over_allocation_is_a_break_at_once(led: Ledger, tmp_path: Path) -> None:
    extra = sc.with_vouchers(tmp_path, [
        sc.payment_event(2, amount="100.00"),
        sc.payment("PAY-2", "100.00", allocations=[("BP-2", "60.00")]),
        sc.payment("PAY-3", "60.00", allocations=[("BP-2", "60.00")]),
    ], "x")
    report = reconcile(led, tmp_path, extra, as_of=date(2026, 11, 21))
    assert [(b.code, b.records) for b in report.breaks if b.code == "AMOUNT_MISMATCH"] == [
        ("AMOUNT_MISMATCH", ("BP-2", "PAY-2", "PAY-3")), ("AMOUNT_MISMATCH", ("PAY-2",))]


def test_inside_window_is_expected_not_a_break(led: Ledger, tmp_path: Path) -> None:
    report = reconcile(led, tmp_path, sc.unsettled(tmp_path, False), as_of=date(2026, 12, 1))
    assert report.clean
    assert [(x.code, x.records, x.until) for x in report.expected] == [
        ("UNSETTLED_EVENT", ("BP-2",), "2026-12-20")]
    # the last day of the window is still expected; the day after it is a break
    assert run_reconcile(led, date(2026, 12, 20)).clean
    late = run_reconcile(led, date(2026, 12, 21))
    assert [b.code for b in late.breaks] == ["UNSETTLED_EVENT"]
    assert late.breaks[0].message == "benefit_payment BP-2 of 3456.78 has no movement settling it"


def test_orphan_is_high_severity_and_at_risk(led: Ledger, tmp_path: Path) -> None:
    report = reconcile(led, tmp_path, sc.orphan(tmp_path, False))
    (b,) = report.breaks
    assert (b.severity, b.amounts, report.summary.amount_at_risk) == (
        "high", {"movement": "777.00"}, "777.00")


def test_allocation_to_unknown_event_is_orphan(led: Ledger, tmp_path: Path) -> None:
    extra = sc.with_vouchers(tmp_path, [
        sc.collection("COL-5", "5.00", allocations=[("CA-NOPE", "5.00")])], "x")
    report = reconcile(led, tmp_path, extra)
    assert [(b.code, b.records) for b in report.breaks] == [("ORPHAN_MOVEMENT", ("COL-5",))]


def test_heuristic_match_settles_the_event(led: Ledger, tmp_path: Path) -> None:
    report = reconcile(led, tmp_path, sc.orphan(tmp_path, True))
    assert report.clean and not report.expected


def test_heuristic_match_needs_date_window(led: Ledger, tmp_path: Path) -> None:
    # value date 31 days after the due date: no candidate, so both sides are breaks
    extra = sc.with_vouchers(tmp_path, [
        sc.assessment("CA-9", "777.00", employer=sc.OTHER_EMPLOYER),
        sc.collection("COL-9", "777.00", allocations=None, payer=sc.OTHER_EMPLOYER,
                      value_date="2026-12-16"),
    ], "x")
    report = reconcile(led, tmp_path, extra)
    assert sorted(b.code for b in report.breaks) == ["ORPHAN_MOVEMENT", "UNSETTLED_EVENT"]


def test_benefit_payment_slip_may_name_the_event(led: Ledger, tmp_path: Path) -> None:
    extra = [sc.payment_event(2), sc.payment("PAY-2", allocations=[("BP-2", "3456.78")]),
             sc.voucher(tmp_path, "bank_slip", "BS-2", ["BP-2"]),
             sc.voucher(tmp_path, "accounting_voucher", "AV-2", ["PAY-2"])]
    assert reconcile(led, tmp_path, extra).clean


# -- corrections -------------------------------------------------------------------------

def corrected_event(amount: str) -> dict[str, Any]:
    rec = sc.payment_event(2, amount=amount)
    rec["id"], rec["corrects"] = "BP-2-C", "BP-2"
    return rec


def test_correction_is_reconciled_and_superseded_never_reported(
    led: Ledger, tmp_path: Path
) -> None:
    extra = sc.with_vouchers(tmp_path, [
        sc.payment_event(2), corrected_event("3456.68"),
        sc.payment("PAY-2", allocations=[("BP-2", "3456.78")]),
    ], "x")
    report = reconcile(led, tmp_path, extra)
    assert [(b.code, b.records, b.message) for b in report.breaks] == [
        ("AMOUNT_MISMATCH", ("BP-2-C", "PAY-2"), "allocated 3456.78, event 3456.68")]


@pytest.mark.parametrize("chunk", [1, 5000])
def test_allocation_and_correction_of_its_event_in_one_refresh(
    led: Ledger, tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh points a new allocation at an event decoded with it; a correction of
    that event decoded in the same refresh (in the same chunk or a later one) moves the
    allocation to the latest version."""
    monkeypatch.setattr(_refresh, "CHUNK", chunk)
    extra = sc.with_vouchers(tmp_path, [
        sc.payment_event(2), sc.payment("PAY-2", "3456.68", allocations=[("BP-2", "3456.68")]),
        corrected_event("3456.68"),
    ], "x")
    assert reconcile(led, tmp_path, extra).clean
    with led.store.reader() as conn:
        linked = conn.execute(
            select(records.c.record_id).join(allocations, allocations.c.event_seq == records.c.seq)
            .where(allocations.c.movement_id == "PAY-2")).scalars().all()
    assert linked == ["BP-2-C"]


def test_reference_to_superseded_counts_for_current(led: Ledger, tmp_path: Path) -> None:
    extra = sc.with_vouchers(tmp_path, [
        sc.payment_event(2), corrected_event("3456.68"),
        sc.payment("PAY-2", "3456.68", allocations=[("BP-2", "3456.68")]),
    ], "x")
    assert reconcile(led, tmp_path, extra).clean


def test_correction_in_a_later_batch(led: Ledger, tmp_path: Path) -> None:
    first = reconcile(led, tmp_path, sc.with_vouchers(tmp_path, [
        sc.payment_event(2), sc.payment("PAY-2", "3456.68", allocations=[("BP-2", "3456.68")]),
    ], "x"))
    assert [b.records for b in first.breaks] == [("BP-2", "PAY-2")]
    # a chain: BP-2 <- BP-2-C <- BP-2-D, sent in two later batches
    sc.ingest(led, tmp_path, [corrected_event("3456.00")], "fix1")
    second = run_reconcile(led, sc.AS_OF)
    assert [b.records for b in second.breaks] == [("BP-2-C", "PAY-2")]
    final = corrected_event("3456.68")
    final["id"], final["corrects"] = "BP-2-D", "BP-2-C"
    sc.ingest(led, tmp_path, [final], "fix2")
    third = run_reconcile(led, sc.AS_OF)
    assert third.clean and third.run.decoded == 1
    with led.store.reader() as conn:
        current = conn.execute(select(records.c.record_id, records.c.current_id).where(
            records.c.record_id.like("BP-2%")).order_by(records.c.record_id)).all()
    assert [tuple(r) for r in current] == [
        ("BP-2", "BP-2-D"), ("BP-2-C", "BP-2-D"), ("BP-2-D", "BP-2-D")]


# -- stable ids, incremental refresh, report form ------------------------------------------

def test_break_ids_are_stable(led: Ledger, tmp_path: Path) -> None:
    orphan = sc.collection("COL-9", "777.00", allocations=None, payer=sc.OTHER_EMPLOYER)
    extra = [*sc.mismatch(tmp_path, False), orphan]
    one = reconcile(led, tmp_path, extra)
    two = run_reconcile(led, sc.AS_OF)
    assert [b.id for b in one.breaks] == [b.id for b in two.breaks]
    assert len({b.id for b in one.breaks}) == len(one.breaks) >= 3
    for b in one.breaks:
        assert b.id == break_id(b.code, b.field, b.records)
        assert b.id.startswith("BRK-") and len(b.id) == 20
    assert break_id("ORPHAN_MOVEMENT", "allocations", ("COL-9",)) == next(
        b.id for b in one.breaks if b.code == "ORPHAN_MOVEMENT")


def test_refresh_is_incremental(led: Ledger, tmp_path: Path) -> None:
    first = reconcile(led, tmp_path, [])
    size = led.size()
    # every record; the batch's control.ingest entry and the run's own control.rules and
    # control.reconcile entries need no decoding
    assert first.run.decoded == size - BATCH - 2
    assert first.run.ledger_size == size - 2
    assert run_reconcile(led, sc.AS_OF).run.decoded == 0
    size = led.size()
    sc.ingest(led, tmp_path, sc.unsettled(tmp_path, False), "more")
    added = led.size() - size
    again = run_reconcile(led, sc.AS_OF)
    assert again.run.decoded == added - BATCH > 0
    assert [b.code for b in again.breaks] == ["UNSETTLED_EVENT"]
    with led.store.reader() as conn:
        runs = 3 + 1  # control.reconcile (and control.rules) entries have no rc_records row
        batches = 2  # nor have the batches' control.ingest entries
        assert conn.execute(select(func.count()).select_from(records)).scalar_one() == (
            led.size() - runs - batches * BATCH)
        fen = conn.execute(select(events.c.amount_fen).where(events.c.record_id == "BP-2"))
        assert fen.scalar_one() == 345678


def test_report_json_shape(led: Ledger, tmp_path: Path) -> None:
    data = reconcile(led, tmp_path, sc.orphan(tmp_path, False)).to_json()
    assert set(data) == {"run", "summary", "breaks", "expected"}
    assert {"as_of", "started_at", "ledger_size"} <= set(data["run"])
    assert data["run"]["as_of"] == "2027-03-01"
    assert data["summary"] == {"breaks": 1, "by_code": {"ORPHAN_MOVEMENT": 1},
                               "amount_at_risk": "777.00", "expected": 0,
                               "amount_at_risk_resolved": "0.00"}
    assert set(data["breaks"][0]) == {"id", "code", "severity", "records", "amounts", "field",
                                      "message", "template", "params", "amount_at_risk",
                                      "evidence", "status", "assignee"}
    assert data["breaks"][0]["amount_at_risk"] == "777.00"
    assert len(data["breaks"][0]["evidence"]) == 64


def test_migration_0002_matches_table_definitions(led: Ledger) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from reconcile.matching._tables import RC_TABLES, metadata

    with led.store.reader() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    ours = [d for d in diffs if RC_TABLES[0][:3] in repr(d)]
    assert ours == []


def test_evidence_looked_up_in_parts_equals_one_look_up(
        led: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL builds a large report in parts, looking up the next part's entry
    hashes in a second thread: with one break per part, every break's evidence is the
    one a single look-up gives."""
    if led.store.dialect != "postgresql":
        pytest.skip("SQLite looks the entry hashes up once, in its own thread")
    other = sc.OTHER_EMPLOYER
    faults = [  # as sc.mismatch, sc.late, sc.orphan, sc.ambiguous, with one set of vouchers
        sc.payment_event(2), sc.payment("PAY-2", allocations=[("BP-2", "3456.68")]),
        sc.assessment("CA-2", due="2026-10-01"),
        sc.collection("COL-2", allocations=[("CA-2", "1000.00")], value_date="2026-11-01"),
        sc.collection("COL-9", "777.00", allocations=None, payer=other),
        sc.assessment("CA-7a", "500.00", employer=other),
        sc.collection("COL-7", "500.00", allocations=None, payer=other),
        sc.assessment("CA-7b", "500.00", employer=other, due="2026-11-20"),
    ]
    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.with_vouchers(tmp_path, faults, "x"))
    whole = run_reconcile(led, sc.AS_OF, full=True)
    calls: list[int] = []
    look_up = _run._entry_hashes

    def counted(conn: Any, ids: list[str]) -> dict[str, list[str]]:
        calls.append(len(ids))
        return look_up(conn, ids)

    monkeypatch.setattr(_run, "EVIDENCE_PART", 1)
    monkeypatch.setattr(_run, "_entry_hashes", counted)
    parts = run_reconcile(led, sc.AS_OF, full=True)
    assert len(whole.breaks) >= 5 and all(b.evidence for b in whole.breaks)
    assert len(calls) == len(whole.breaks) + 1  # one per part, one for the bank's breaks
    assert [(b.id, b.evidence) for b in parts.breaks] == [
        (b.id, b.evidence) for b in whole.breaks]


def test_a_run_reports_one_state_while_an_ingest_waits(
        led: Ledger, ledger_home: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An ingest that would correct a break's record arrives after the matching: it
    waits for the run, whose breaks keep the evidence and the size of the state they
    were found in; the next run sees the correction."""
    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.mismatch(tmp_path, False))
    before = run_reconcile(led, sc.AS_OF)
    size = led.size()
    fix = write_jsonl(tmp_path / "fix.jsonl", [corrected_event("3456.78")])
    done: list[Exception | None] = []

    def ingest_fix() -> None:
        other = Ledger.open(ledger_home["home"], ledger_home["db"])
        try:
            other.ingest([str(fix)], None)
            done.append(None)
        except Exception as e:  # reported by the assertion below
            done.append(e)
        finally:
            other.close()

    collect = _run._collect
    waiting: list[threading.Thread] = []

    def collect_while_an_ingest_waits(found: Any, judge: Any) -> None:
        if not waiting:
            waiting.append(threading.Thread(target=ingest_fix))
            waiting[0].start()
            waiting[0].join(1.0)
            assert waiting[0].is_alive(), "the ingest went in during the run"
        collect(found, judge)

    monkeypatch.setattr(_run, "_collect", collect_while_an_ingest_waits)
    during = run_reconcile(led, sc.AS_OF)
    waiting[0].join(60)
    assert done == [None]
    assert during.run.ledger_size == size < led.size()
    assert [(b.id, b.evidence) for b in during.breaks] == [
        (b.id, b.evidence) for b in before.breaks]
    after = run_reconcile(led, sc.AS_OF)
    assert "BP-2" not in {r for b in after.breaks for r in b.records}


def test_as_of_is_a_cut_off_by_occurred_at(led: Ledger, tmp_path: Path) -> None:
    """FORMAT §10.2: a finding whose record at fault occurred after the as-of day is not
    judged, and the run says how many records it left out."""
    december = sc.collection("COL-DEC", "555.00", allocations=None, payer=sc.OTHER_EMPLOYER,
                             value_date="2026-12-05")
    december["occurred_at"] = "2026-12-05T10:00:00+08:00"
    extra = sc.orphan(tmp_path, False) + sc.with_vouchers(tmp_path, [december], "dec")
    sc.ingest(led, tmp_path, sc.base(tmp_path) + extra)
    november = run_reconcile(led, date(2027, 3, 1))  # everything judged
    assert {b.records[0] for b in november.breaks if b.code == "ORPHAN_MOVEMENT"} == {
        "COL-9", "COL-DEC"}
    assert november.run.not_judged == 0
    cut = run_reconcile(led, date(2026, 11, 30))
    assert all("COL-DEC" not in b.records for b in cut.breaks)
    assert all("COL-DEC" not in x.records for x in cut.expected)
    assert cut.run.not_judged == 1  # the movement (its voucher is dated November)
    # a December evening in Shanghai is still December: the day is Asia/Shanghai's
    assert run_reconcile(led, date(2026, 12, 5)).run.not_judged == 0
    assert cut.to_json()["run"]["not_judged"] == 1
