"""The check of the reconciler's derived tables against the entries (ADR 0032, FORMAT.md
§6.7, §8.3), on both backends, with the application role's rights (tests/_insider.py):
a column of a row edited, a row deleted, a row planted in each table; ``bfa verify``
names each (exit 3), a run reports them as ``LEDGER_INTEGRITY`` and rebuilds the tables
from the entries, the nightly finds an old row within its rotation, ``bfa balance``
refuses. No false alarm on a ledger with corrections, withdrawals (红冲), bank
statements, vouchers and incremental runs."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Table, select

from ledger import IntegrityError, Ledger
from reconcile import (
    approve_withdrawal,
    bank_reconciliation,
    reconcile_and_track,
    refresh,
    request_withdrawal,
    run_nightly,
    verify_all,
)
from reconcile.bank import statement_records
from reconcile.matching import _tables as t
from reconcile.matching._derived import check_all
from tests._cli import h, invoke
from tests._insider import app_role
from tests._records import REGION
from tests.reconcile import _scenarios as sc
from tests.reconcile._batches import EARLY, batches
from tests.reconcile.test_bank_statement import _month, camt


def _derived_problems(led: Ledger) -> list[str]:
    with led.store.reader() as conn:
        return check_all(led.store, conn).messages()


def _full_ledger(led: Ledger, tmp: Path) -> None:
    """Corrections, forward references, vouchers, heuristic matches, incremental runs; a
    bank statement withdrawn (红冲) and another imported; a correction
    after the last run (``rc_dirty``)."""
    parts = batches(tmp)
    for i, batch in enumerate(parts):
        if batch:
            sc.ingest(led, tmp, batch, f"b{i}")
        if i in (1, 2, len(parts) - 1):
            reconcile_and_track(led, EARLY)
    _month(led, tmp)  # an opening balance, the books, statement ST-11 (income account)
    req = request_withdrawal(led, "ST-11", "imported for the wrong month", "alice")
    approve_withdrawal(led, req.id, "bob")
    dec = camt(tmp / "dec.xml", "ST-12", ("13007.34", "2026-12-01"),
               ("13007.34", "2026-12-31"), [])
    led.ingest_records(statement_records(led, dec, "camt053", REGION, "income"), "dec")
    reconcile_and_track(led, EARLY)
    fix = sc.assessment("CA-P1-C", "310.00")
    fix["corrects"] = "CA-P1"
    sc.ingest(led, tmp, [fix], "late")
    refresh(led.store)  # derived after the last run: rc_dirty holds CA-P1


def test_no_false_alarm(led: Ledger, tmp_path: Path) -> None:
    _full_ledger(led, tmp_path)
    with led.store.reader() as conn:
        checked = check_all(led.store, conn)
        assert conn.execute(select(t.dirty.c.seq)).first() is not None
    assert checked.ok and checked.entries > 200, checked.messages()
    res = verify_all(led)
    assert res.ok, res.problems
    bank_reconciliation(led, date(2026, 11, 30))
    report = reconcile_and_track(led, EARLY)
    assert not report.integrity_failed and _derived_problems(led) == []


def _one(conn: Connection, table: Table, *where: Any) -> dict[str, Any]:
    row = conn.execute(select(table).where(*where).order_by(*table.primary_key.columns)
                       .limit(1)).mappings().first()
    assert row is not None, (table.name, where)
    return dict(row)


def _key(table: Table, row: dict[str, Any]) -> Any:
    return [table.c[c.name] == row[c.name] for c in table.primary_key.columns]


def _tamper(conn: Connection, control_seq: int) -> list[tuple[str, int]]:
    """One column edited, one row deleted, one row planted in each derived table (each on
    another row); returns ``(table, seq)`` of each."""
    r, e, m, a, v, vr, p = (t.records, t.events, t.movements, t.allocations, t.vouchers,
                            t.voucher_refs, t.person_events)
    done: list[tuple[str, int]] = []
    plan: list[tuple[Table, str, Any, list[Any]]] = [
        (r, "superseded", False, [r.c.superseded.is_(True), r.c.kind != "statement"]),
        (e, "amount_fen", 1, [e.c.kind == "contribution_assessment"]),
        (m, "fund_account", "expenditure", [m.c.fund_account == "income"]),
        (a, "event_seq", None, [a.c.event_seq.is_not(None)]),
        (v, "n_refs", 9, []),
        (vr, "business_seq", None, [vr.c.business_seq.is_not(None)]),
        (p, "person", "ps1:forged", []),
    ]
    for table, column, value, where in plan:
        first = table.primary_key.columns.values()[0]
        edit = _one(conn, table, *where)
        conn.execute(table.update().where(*_key(table, edit)).values({column: value}))
        gone = _one(conn, table, first > edit[first.name])
        conn.execute(table.delete().where(*_key(table, gone)))
        planted = dict(_one(conn, table, first > gone[first.name]))
        planted[first.name] = control_seq
        if "record_id" in planted and table is r:
            planted["record_id"] = "PLANTED-1"
        conn.execute(table.insert(), planted)
        done += [(table.name, int(edit[first.name])), (table.name, int(gone[first.name])),
                 (table.name, control_seq)]
    return done


def test_each_table_tampered_is_named_then_rebuilt(led: Ledger, ledger_home: dict[str, Any],
                                                   tmp_path: Path) -> None:
    _full_ledger(led, tmp_path)
    with led.store.reader() as conn:  # a control entry: no derived row may name it
        control = int(conn.execute(select(t.dirty.c.seq).limit(1)).scalar_one())
        dirty = control
        from ledger import entries

        control = int(conn.execute(select(entries.c.seq).where(
            entries.c.domain == "control").limit(1)).scalar_one())
    with app_role(led) as conn:
        tampered = _tamper(conn, control)
        conn.execute(t.dirty.update().where(t.dirty.c.seq == dirty).values(was_current=False))
        conn.execute(t.dirty.insert().values(seq=1, was_current=True))
    res = verify_all(led)
    assert not res.ok and {p.code for p in res.problems} == {"derived-mismatch"}
    named = {(p.message.split(":")[0].split()[-1], p.seq) for p in res.problems}
    for table, seq in [*tampered, ("rc_dirty", dirty), ("rc_dirty", 1)]:
        assert (table, seq) in named, (table, seq, [p.message for p in res.problems])
    out = invoke("verify", *h(Path(ledger_home["home"]), ledger_home["db"]))
    assert out.exit_code == 3 and "rc_movements" in out.output and "fund_account" in out.output
    # the run reports each as LEDGER_INTEGRITY, rebuilds the tables and reconciles right
    report = reconcile_and_track(led, EARLY)
    flagged = [b for b in report.breaks if b.code == "LEDGER_INTEGRITY"]
    assert report.integrity_failed and flagged and all(b.field == "derived" for b in flagged)
    assert verify_all(led).ok and _derived_problems(led) == []
    assert not reconcile_and_track(led, EARLY).integrity_failed


def test_the_matching_state_is_held_to_the_runs_record(led: Ledger, tmp_path: Path) -> None:
    for i, batch in enumerate(batches(tmp_path)[:3]):
        sc.ingest(led, tmp_path, batch, f"b{i}")
    reconcile_and_track(led, EARLY)
    for table in (t.open_events, t.matched, t.month_sums):
        with led.store.reader() as conn:
            row = _one(conn, table)
        with app_role(led) as conn:
            conn.execute(table.delete().where(*_key(table, row)))
        res = verify_all(led)
        assert [p.code for p in res.problems] == ["derived-mismatch"], table.name
        assert "matching state" in res.problems[0].message
        report = reconcile_and_track(led, EARLY)  # not trusted: a full run restores it
        assert report.integrity_failed and report.run.mode == "full"
        assert verify_all(led).ok


def test_a_new_row_tampered_is_caught_by_the_next_run(led: Ledger, tmp_path: Path) -> None:
    sc.ingest(led, tmp_path, sc.base(tmp_path))
    reconcile_and_track(led, sc.AS_OF)
    sc.ingest(led, tmp_path, [sc.payment_event(2)], "more")
    refresh(led.store)  # derived (as bfa ingest does), not yet matched
    with app_role(led) as conn:  # the new event is halved before any run matched it
        conn.execute(t.events.update().where(t.events.c.record_id == "BP-2")
                     .values(amount_fen=t.events.c.amount_fen / 2))
    report = reconcile_and_track(led, sc.AS_OF)
    assert report.integrity_failed
    (flag,) = [b for b in report.breaks if b.code == "LEDGER_INTEGRITY"]
    assert "rc_events" in flag.message and "BP-2" in flag.message
    assert "345678" in [str(b.amounts.get("event")).replace(".", "") for b in report.breaks
                        if b.code == "UNSETTLED_EVENT"]  # judged on the rebuilt rows
    assert not reconcile_and_track(led, sc.AS_OF).integrity_failed


def test_nightly_finds_an_old_row_within_its_rotation(led: Ledger, tmp_path: Path) -> None:
    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.unsettled(tmp_path, False))
    out = tmp_path / "reports"
    assert run_nightly(led, out, sc.AS_OF, derived_days=3).exit_code != 3
    with app_role(led) as conn:  # the first record, well below the last run's watermark
        conn.execute(t.records.update().where(t.records.c.seq == 0).values(region="000000"))
    codes = [run_nightly(led, out, sc.AS_OF, derived_days=3).exit_code for _ in range(3)]
    assert 3 in codes, codes
    failed = codes.index(3)
    assert all(c != 3 for c in codes[failed + 1:])  # rebuilt: the next nights are clean
    assert run_nightly(led, out, sc.AS_OF, derived_days=3).exit_code != 3
    assert verify_all(led).ok


def test_balance_refuses_a_movement_it_uses_when_edited(led: Ledger, ledger_home: dict[str, Any],
                                                        tmp_path: Path) -> None:
    _month(led, tmp_path)
    assert bank_reconciliation(led, date(2026, 11, 30)).balanced
    with app_role(led) as conn:
        conn.execute(t.movements.update().where(t.movements.c.record_id == "COL-C")
                     .values(amount_fen=1))
    with pytest.raises(IntegrityError, match=r"rc_movements.*COL-C.*amount_fen"):
        bank_reconciliation(led, date(2026, 11, 30))
    res = invoke("balance", *h(Path(ledger_home["home"]), ledger_home["db"]),
                 "--as-of", "2026-11-30")
    assert res.exit_code == 3 and "COL-C" in res.stderr, res.output


# -- the insider review's findings (F1-F4), each now caught by the run itself ---------------
def test_an_open_event_changed_for_one_run_is_caught_by_that_run(led: Ledger,
                                                                 tmp_path: Path) -> None:
    """F1: an old open event's amount changed before an incremental run (and put back
    after it) would have closed its break unseen: every run checks the rows it reads
    again (open events, unallocated movements)."""
    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.mismatch(tmp_path, False))
    first = reconcile_and_track(led, sc.AS_OF)
    assert any(b.code == "AMOUNT_MISMATCH" for b in first.breaks)
    sc.ingest(led, tmp_path, [sc.payment_event(7)], "later")  # the next run is incremental
    with app_role(led) as conn:
        conn.execute(t.events.update().where(t.events.c.record_id == "BP-2")
                     .values(amount_fen=345668))  # now equal to what was allocated
    report = reconcile_and_track(led, sc.AS_OF)
    assert report.integrity_failed
    assert any(b.code == "AMOUNT_MISMATCH" and "BP-2" in b.records for b in report.breaks)


def test_emptied_findings_make_the_run_check_every_row(led: Ledger, tmp_path: Path) -> None:
    """F2: with ``rc_findings`` emptied a run keeps nothing stored and matches every row:
    it checks every row first, so an edit made beside the emptying is caught."""
    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.unsettled(tmp_path, False))
    reconcile_and_track(led, sc.AS_OF)
    with app_role(led) as conn:
        conn.execute(t.events.update().where(t.events.c.record_id == "BP-2")
                     .values(amount_fen=1))
        conn.execute(t.findings.delete())
    report = reconcile_and_track(led, sc.AS_OF)
    assert report.integrity_failed
    flagged = [b.message for b in report.breaks if b.code == "LEDGER_INTEGRITY"]
    assert any("rc_events" in m and "BP-2" in m for m in flagged), flagged


def test_a_planted_row_above_the_watermark_is_caught_by_the_run(led: Ledger,
                                                                tmp_path: Path) -> None:
    """F4: a movement planted at a key no entry has yet (at or above the watermark) would
    be read by the next run: every run looks for such rows first."""
    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.unsettled(tmp_path, False))
    reconcile_and_track(led, sc.AS_OF)
    with led.store.reader() as conn:
        row = _one(conn, t.movements)
    row["seq"] = 9_000_000_000
    with app_role(led) as conn:
        conn.execute(t.movements.insert(), row)
    report = reconcile_and_track(led, sc.AS_OF)
    assert report.integrity_failed
    assert any("rc_movements" in b.message and "given by no entry" in b.message
               for b in report.breaks if b.code == "LEDGER_INTEGRITY")
    assert not reconcile_and_track(led, sc.AS_OF).integrity_failed


def test_the_nightly_finds_its_own_slice_whatever_is_appended_after_it(
        led: Ledger, tmp_path: Path) -> None:
    """F3: the nightly continues its rotation from its own last record, found by entry:
    records appended by another identity after it, however numbered, do not move it."""
    from reconcile.matching._state import last_run, own_rotation

    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.unsettled(tmp_path, False))
    out = tmp_path / "reports"
    run_nightly(led, out, sc.AS_OF, derived_days=3)
    identity = led.actor().identity
    with led.store.reader() as conn:
        mine = own_rotation(led.store, conn, last_run(led.store, conn), identity)
        assert mine is not None
        # what another identity's records in between look like to the nightly
        assert own_rotation(led.store, conn, last_run(led.store, conn), "someone-else") is None
