"""Incremental runs (``reconcile.matching._incremental``) report exactly what full runs report.

Two ledgers receive the same batches; one is reconciled incrementally after every
batch (its stored findings carried from run to run), the other always in full. The
batches cover what an incremental run must notice: forward references that resolve
later, corrections of events, movements and vouchers, late vouchers, terminations and
approvals arriving after payments, heuristic matches that become ambiguous (kept
from run to run, then undone by a new candidate on either side), returns, and runs
with nothing new. Both backends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

import reconcile.matching._incremental
from ledger import Ledger
from ledger._store import _MIGRATIONS, Store
from reconcile import run_reconcile
from tests.reconcile import _scenarios as sc
from tests.reconcile._batches import EARLY, H1, add, batches, view

BATCH = 1  # the control.ingest entry that closes every batch that appends (FORMAT.md §2.5)


def test_incremental_runs_match_full_runs(ledger_home: dict[str, Any], other_url: str,
                                         tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # incremental whatever the size
    monkeypatch.setattr(reconcile.matching._incremental, "FULL_SHARE", 1.0)
    inc = Ledger.open(ledger_home["home"], ledger_home["db"])
    full_home = tmp_path / "full-home"
    Ledger.open(str(full_home), other_url, check=False).init("test.bfa.example/full")
    full = Ledger.open(str(full_home), other_url)
    modes = []
    seen: set[tuple[int, str, str]] = set()
    try:
        for i, batch in enumerate(batches(tmp_path)):
            for led in (inc, full):
                add(led, tmp_path, i, batch)
            for as_of in (EARLY, sc.AS_OF):
                got = run_reconcile(inc, as_of)
                want = run_reconcile(full, as_of, full=True)
                assert view(got) == view(want), f"batch {i}, as of {as_of}"
                modes.append(got.run.mode)
                seen.update((i, b.code, (b.records or ("",))[0]) for b in want.breaks)
    finally:
        inc.close()
        full.close()
    assert modes[0] == "full" and set(modes[1:]) == {"incremental"}
    # the entitlement rules come and go with the batches (tests/reconcile/_batches.py)
    assert {(2, "OVERPAYMENT", "BP-76"), (2, "CONTRIBUTION_WITHOUT_ENROLMENT", "CA-77"),
            (3, "CONTRIBUTION_WITHOUT_ENROLMENT", "CA-78"),
            (3, "PAYMENT_WITHOUT_APPROVAL", "BP-80"), (3, "DUPLICATE_ENROLMENT", "EN-78b")} <= seen
    assert (6, "DUPLICATE_ENROLMENT", "EN-78b") not in seen  # the transfer in explains it
    entitlement = ("PAYMENT_WITHOUT_APPROVAL", "OVERPAYMENT", "CONTRIBUTION_WITHOUT_ENROLMENT",
                   "PAYMENT_AFTER_TERMINATION", "DUPLICATE_PAYMENT", "DUPLICATE_ENROLMENT")
    assert not {s for s in seen if s[0] == 3 and s[2] in ("CA-77", "BP-79")
                and s[1] in entitlement}  # enrolled now; a funeral grant after the death
    assert not {s for s in seen if s[0] == 2 and s[2] == "BP-80" and s[1] in entitlement}
    assert (6, "OVERPAYMENT", "BP-76-C") not in seen  # corrected to the approved amount
    # deaths, certifications, transfers (tests/reconcile/_batches.py DEATHS and batches)
    assert {(3, "PAYMENT_AFTER_DEATH", "BP-83"), (3, "DEATH_NOT_RECORDED", "BA-82"),
            (4, "PAYMENT_AFTER_DEATH", "BP-82"), (2, "CERTIFICATION_OVERDUE", "BP-86"),
            (2, "TRANSFER_UNMATCHED", "TO-84"), (2, "TRANSFER_UNMATCHED", "MV-88"),
            (5, "TRANSFER_UNMATCHED", "TI-85")} <= seen
    assert not {s for s in seen if s[1] == "TRANSFER_UNMATCHED" and s[2] == "TI-85"
                and s[0] < 5}  # its region is held from batch 5 on
    assert not {s for s in seen if s[0] >= 5 and (s[1], s[2]) in {
        ("CERTIFICATION_OVERDUE", "BP-86"), ("TRANSFER_UNMATCHED", "TO-84")}}
    assert not {s for s in seen if s[0] == 6 and (s[1], s[2]) in {
        ("DEATH_NOT_RECORDED", "BA-82"), ("TRANSFER_UNMATCHED", "MV-88-C")}}
    assert (2, "PAYMENT_AFTER_DEATH", "BP-83") not in seen  # no list yet
    assert not {s for s in seen if s[2] == "BA-71b" and s[1] == "DEATH_NOT_RECORDED"}


def test_rules_change_makes_a_full_run(led: Ledger, tmp_path: Path) -> None:
    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.unsettled(tmp_path, False))
    assert run_reconcile(led, sc.AS_OF).run.mode == "full"
    again = run_reconcile(led, sc.AS_OF)
    assert again.run.mode == "incremental" and again.run.rechecked > 0
    wider = run_reconcile(led, sc.AS_OF, {"settlement_days": 400})
    assert wider.run.mode == "full" and wider.breaks == ()
    assert [b.code for b in run_reconcile(led, sc.AS_OF).breaks] == ["UNSETTLED_EVENT"]


def test_failed_run_leaves_state_untouched(led: Ledger, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    sc.ingest(led, tmp_path, sc.base(tmp_path))
    assert run_reconcile(led, sc.AS_OF).clean
    sc.ingest(led, tmp_path, sc.unsettled(tmp_path, False), "more")

    def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(reconcile.matching._incremental, "_store_open", boom)
    with pytest.raises(RuntimeError):
        run_reconcile(led, sc.AS_OF)
    monkeypatch.undo()
    report = run_reconcile(led, sc.AS_OF)  # the same new entries are re-checked
    assert report.run.mode == "incremental"
    assert [b.code for b in report.breaks] == ["UNSETTLED_EVENT"]


def _upgrade(store: Store, *counts: str, target: str = "head") -> list[int]:
    """Migrate to ``target``, the newest revision by default (Alembic, one transaction);
    then run ``counts``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)
        return [int(conn.execute(text(q)).scalar_one()) for q in counts]


def _without_run_records(conn: Any) -> None:
    """As a ledger reconciled before runs were recorded in the ledger: its trailing
    ``control.reconcile`` entries (and the tree nodes they completed) removed the way a
    superuser could, and the old ``meta`` marks of the state in their place."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
    else:
        for table in ("entries", "tree_nodes"):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    runs = [int(x) for x in conn.exec_driver_sql(
        "SELECT seq FROM entries WHERE domain = 'control' AND kind = 'reconcile' ORDER BY seq"
    ).scalars()]
    size = int(conn.exec_driver_sql("SELECT count(*) FROM entries").scalar_one())
    assert runs == list(range(size - len(runs), size)), "run records must be the tail"
    size -= len(runs)
    conn.exec_driver_sql(f"DELETE FROM entries WHERE seq >= {size}")
    for level in range(1, 64):
        conn.exec_driver_sql(f"DELETE FROM tree_nodes WHERE level = {level} "
                             f"AND idx >= {size >> level}")
    conn.exec_driver_sql(f"UPDATE meta SET value = '{size}' WHERE key = 'reconcile_seq'")
    conn.exec_driver_sql("DELETE FROM meta WHERE key = 'reconcile_run'")
    conn.exec_driver_sql(f"INSERT INTO meta (key, value) VALUES ('reconcile_checked', '{size}')")


def _without_rule_views(conn: Any) -> None:
    """Undo revision 0019: the rule views read the derived tables, whose older layouts the
    tests restore (SQLite rebuilds a table for some changes; a view would stop it)."""
    from ledger import RULE_VIEWS

    for name in RULE_VIEWS:
        conn.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")


def _back_to_0007(conn: Any) -> None:
    """Undo revision 0008 on a migrated ledger: ``rc_movements``' indexes as 0007 left them."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    _without_rule_views(conn)
    op = Operations(MigrationContext.configure(conn))
    op.drop_index("ix_rc_movements_unallocated", table_name="rc_movements")
    op.create_index("ix_rc_movements_allocated", "rc_movements", ["allocated"])


def _back_to_0006(conn: Any) -> None:
    """Undo revisions 0008 and 0007 on a migrated ledger: as 0006 left it."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    _back_to_0007(conn)
    op = Operations(MigrationContext.configure(conn))
    op.drop_index("ix_rc_records_statement", table_name="rc_records")
    with op.batch_alter_table("rc_records") as batch:
        batch.drop_constraint("uq_rc_records_record_id_domain", type_="unique")
        batch.create_unique_constraint("uq_rc_records_domain_record_id", ["domain", "record_id"])
    op.create_index("ix_rc_records_record_id", "rc_records", ["record_id"])


def test_migration_0005_rebuilds_the_derived_tables(ledger_home: dict[str, Any],
                                                     tmp_path: Path) -> None:
    """A ledger reconciled under revision 0004 is upgraded: 0005 empties the derived
    tables and the watermark, and the next run decodes everything again."""
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.unsettled(tmp_path, False))
    want = [b.code for b in run_reconcile(led, sc.AS_OF).breaks]
    store = led.store
    with store.engine.begin() as conn:  # back to how 0004 left a reconciled ledger
        _back_to_0006(conn)
        for name in ("rc_findings", "rc_open", "rc_dirty", "rc_month_sums", "rc_matched"):
            conn.exec_driver_sql(f"DROP TABLE {name}")
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0004'")
        conn.exec_driver_sql("CREATE INDEX ix_rc_events_record_id ON rc_events (record_id)")
        conn.exec_driver_sql(
            "CREATE INDEX ix_rc_events_kind_amount_fen ON rc_events (kind, amount_fen)")
        for ix in ("ix_rc_records_domain_current_id", "ix_rc_events_person",
                   "ix_rc_movements_allocated", "ix_rc_voucher_refs_business_seq",
                   "ix_rc_voucher_refs_finance_seq", "ix_rc_allocations_event_seq",
                   "ix_rc_records_current_seq"):
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {ix}")
        for table, col in (("rc_records", "current_seq"), ("rc_events", "superseded"),
                           ("rc_movements", "superseded"), ("rc_movements", "allocated_fen"),
                           ("rc_vouchers", "superseded"), ("rc_vouchers", "n_refs"),
                           ("rc_person_events", "superseded"),
                           ("rc_allocations", "event_seq"), ("rc_allocations", "kind"),
                           ("rc_allocations", "value_day"), ("rc_allocations", "superseded"),
                           ("rc_voucher_refs", "business_seq"),
                           ("rc_voucher_refs", "finance_seq"),
                           # revision 0017's: its upgrade adds them again
                           ("rc_events", "benefit"), ("rc_events", "other_region"),
                           ("rc_events", "region"),
                           ("rc_person_events", "amount_fen"), ("rc_person_events", "region"),
                           ("rc_person_events", "occurred_day"),
                           ("rc_movements", "to_region")):  # revision 0018's
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {col}")
    led.close()
    assert store.schema_revision() == "0004"
    assert _upgrade(store, "SELECT count(*) FROM rc_records",
                    "SELECT count(*) FROM meta WHERE key LIKE 'reconcile_%' "
                    "AND key <> 'reconcile_run'") == [0, 0]  # the run number is only a hint
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        again = run_reconcile(led, sc.AS_OF)
        # every record: the batch's control.ingest entry, the two runs'
        # control.reconcile entries and the rules' control.rules entry are not decoded
        assert again.run.mode == "full" and again.run.decoded == led.size() - BATCH - 3
        assert [b.code for b in again.breaks] == want == ["UNSETTLED_EVENT"]
    finally:
        led.close()


def test_correction_into_a_record_without_amount_unlinks_allocations(
        led: Ledger, tmp_path: Path) -> None:
    """CA-1 is corrected by an enrollment (no amount): the collection that allocated to
    CA-1 no longer settles anything, in an incremental run as in a full one."""
    sc.ingest(led, tmp_path, sc.base(tmp_path))
    assert run_reconcile(led, sc.AS_OF).clean
    fix = {"type": "business.enrollment", "id": "EN-FIX", "region": sc.REGION,
           "occurred_at": "2026-11-05T10:00:00+08:00", "person_id": sc.person(1),
           "insurance": "pension", "effective_date": "2026-11-01", "corrects": "CA-1"}
    sc.ingest(led, tmp_path, [fix], "fix")
    got = run_reconcile(led, sc.AS_OF)
    want = run_reconcile(led, sc.AS_OF, full=True)
    assert got.run.mode == "incremental" and view(got) == view(want)
    assert ("ORPHAN_MOVEMENT", ("COL-1",)) in [(b.code, b.records) for b in got.breaks]


def test_migration_0006_starts_with_a_full_run(ledger_home: dict[str, Any],
                                               tmp_path: Path) -> None:
    """A ledger reconciled under revision 0005 is upgraded: 0006 adds an empty
    ``rc_matched`` and removes ``reconcile_checked``, so the next run is a full one that
    stores the heuristic matches (0017 also empties the derived tables, which that run
    decodes again); the run after it is incremental and keeps them."""
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    sc.ingest(led, tmp_path, [
        *sc.base(tmp_path), sc.assessment("CA-H1", "777.00", employer=H1),
        sc.collection("COL-H1", "777.00", allocations=None, payer=H1)])
    want = view(run_reconcile(led, sc.AS_OF))
    store = led.store
    with store.engine.begin() as conn:  # back to how 0005 left a reconciled ledger
        _without_run_records(conn)
        _back_to_0006(conn)
        conn.exec_driver_sql("DROP TABLE rc_matched")
        conn.exec_driver_sql("DROP INDEX ix_rc_records_domain_corrects")
        for ddl in ("ix_rc_records_domain_corrects ON rc_records (domain, corrects)",
                    "ix_rc_records_current_seq ON rc_records (current_seq)",
                    "ix_rc_events_record_id ON rc_events (record_id)",
                    "ix_rc_events_kind_amount_fen ON rc_events (kind, amount_fen)"):
            conn.exec_driver_sql(f"CREATE INDEX {ddl}")
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0005'")
    led.close()
    assert _upgrade(store, "SELECT count(*) FROM rc_matched",
                    "SELECT count(*) FROM meta WHERE key = 'reconcile_checked'",
                    target="0016") == [0, 0]
    assert _upgrade(store, "SELECT count(*) FROM rc_records") == [0]  # 0017
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        first = run_reconcile(led, sc.AS_OF)
        assert first.run.mode == "full" and first.run.decoded > 0
        assert view(first) == want
        with led.store.reader() as conn:
            assert conn.execute(text("SELECT count(*) FROM rc_matched")).scalar() == 1
        second = run_reconcile(led, sc.AS_OF)
        assert second.run.mode == "incremental" and view(second) == want
    finally:
        led.close()


@pytest.mark.parametrize("revision", ["0006", "0007"])
def test_migrations_0007_0008_keep_the_state(ledger_home: dict[str, Any], tmp_path: Path,
                                             revision: str) -> None:
    """A ledger reconciled under revision 0006 (or 0007) is upgraded: 0007 and 0008 only
    change indexes (of ``rc_records``, of ``rc_movements``), so up to 0016 the derived rows
    and the matching state stay; 0017 empties them, and the next run, a full one, gives
    the same report; the schema is the one a new ledger gets."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from reconcile.matching._tables import metadata

    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    sc.ingest(led, tmp_path, [
        *sc.base(tmp_path), sc.assessment("CA-H1", "777.00", employer=H1),
        sc.collection("COL-H1", "777.00", allocations=None, payer=H1)])
    want = view(run_reconcile(led, sc.AS_OF))
    store = led.store
    with store.engine.begin() as conn:
        (_back_to_0006 if revision == "0006" else _back_to_0007)(conn)
        conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{revision}'")
    led.close()
    counts = ("SELECT count(*) FROM rc_records", "SELECT count(*) FROM rc_matched")
    before = _upgrade(store, *counts, target="0016")
    assert before[0] > 0 and before[1:] == [1]
    assert _upgrade(store, *counts) == [0, 0]  # 0017 rebuilds the derived tables
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diffs if "rc_" in repr(d)] == []
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        again = run_reconcile(led, sc.AS_OF)
        assert again.run.mode == "full" and view(again) == want
        assert run_reconcile(led, sc.AS_OF).run.mode == "incremental"
    finally:
        led.close()
