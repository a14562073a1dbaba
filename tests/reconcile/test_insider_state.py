"""The insider review's attacks on derived state, replayed on both backends with the
application role's rights (tests/_insider.py): break states rewritten, rows deleted,
severities downgraded, findings dropped. Each is refused or reported as
``LEDGER_INTEGRITY`` (exit 3), and nothing is signed over it (FORMAT.md §8.3, §6.7)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from ledger import IntegrityError, Ledger
from reconcile import (
    apply_states,
    approve_break,
    list_breaks,
    reconcile_and_track,
    resolve_break,
    run_reconcile,
    verify_all,
)
from reconcile.workflow._workflow import get_break, history, replay_states
from tests._insider import app_role
from tests.reconcile import _scenarios as sc
from tests.reconcile.test_domain_rules import after_termination, duplicate, payee

CODES = ("DUPLICATE_PAYMENT", "PAYEE_MISMATCH", "PAYMENT_AFTER_TERMINATION")


def _ledger_with_breaks(led: Ledger, tmp_path: Path) -> dict[str, str]:
    """The three high-severity findings of the review, reconciled once: code -> break id."""
    orphan = sc.collection("COL-9", "777.00", allocations=None, payer=sc.OTHER_EMPLOYER)
    sc.ingest(led, tmp_path, sc.base(tmp_path) + duplicate(tmp_path, False)
              + after_termination(tmp_path, False) + payee(tmp_path, False) + [orphan])
    report = reconcile_and_track(led, sc.AS_OF)  # as bfa reconcile: the breaks recorded
    ids = {b.code: b.id for b in report.breaks}
    assert set(CODES) <= set(ids), ids
    return ids


def _codes(report: Any) -> set[str]:
    return {b.code for b in report.breaks}


def _sizes(led: Ledger) -> tuple[int, int | None]:
    st = led.status()
    return st.size, st.checkpoint_size


def test_rewritten_states_are_refused_then_restored(led: Ledger, tmp_path: Path) -> None:
    ids = _ledger_with_breaks(led, tmp_path)
    bid = ids["DUPLICATE_PAYMENT"]
    with app_role(led) as conn:
        conn.execute(text("UPDATE wf_break_state SET status = 'resolved'"))
    # every command that shows or acts on a state refuses
    for call in (lambda: list_breaks(led), lambda: get_break(led, bid),
                 lambda: history(led, bid),
                 lambda: resolve_break(led, bid, "li.wei", "other", "looks fine")):
        with pytest.raises(IntegrityError, match="changed outside bfa"):
            call()
    res = verify_all(led)
    assert not res.ok and {p.code for p in res.problems} == {"workflow-mismatch"}
    assert any(bid in p.message and "status" in p.message for p in res.problems)
    # a reconciliation restores the rows from the ledger and reports each as integrity
    report = reconcile_and_track(led, sc.AS_OF)
    assert report.integrity_failed
    flagged = [b for b in report.breaks if b.code == "LEDGER_INTEGRITY"]
    assert len(flagged) >= 3 and all(b.field == "workflow" for b in flagged)
    assert {b.id: b.status for b in report.breaks}[bid] == "open"
    assert {s.break_id: s.status for s in list_breaks(led)}[bid] == "open"
    assert verify_all(led).ok


def test_a_deleted_row_of_a_resolved_break_is_found(led: Ledger, tmp_path: Path) -> None:
    ids = _ledger_with_breaks(led, tmp_path)
    bid = ids["PAYEE_MISMATCH"]
    resolve_break(led, bid, "li.wei", "data_entry", "account corrected")
    approve_break(led, bid, "wang.fang")
    with app_role(led) as conn:
        conn.execute(text("DELETE FROM wf_break_state WHERE break_id = :b"), {"b": bid})
    full = verify_all(led)
    assert {p.code for p in full.problems} == {"workflow-mismatch"}
    assert any("no row in the workflow table" in p.message for p in full.problems)
    # the run's record of present breaks, and the links trace reads, say so too
    assert any("breaks present, not the" in p.message for p in full.problems), full.problems
    assert any("wf_break_records names records it does not" in p.message
               for p in full.problems)
    report = reconcile_and_track(led, sc.AS_OF)
    assert report.integrity_failed
    assert {b.id: b.status for b in report.breaks}[bid] == "resolved"  # from the ledger
    assert replay_states(led)[bid]["status"] == "resolved"


def test_four_eyes_follows_the_code_not_the_row(led: Ledger, tmp_path: Path) -> None:
    ids = _ledger_with_breaks(led, tmp_path)
    bid = ids["DUPLICATE_PAYMENT"]
    with app_role(led) as conn:  # the severity copied into the row decides nothing
        conn.execute(text("UPDATE wf_break_state SET severity = 'low' WHERE break_id = :b"),
                     {"b": bid})
    assert resolve_break(led, bid, "li.wei", "other", "paid twice").status == "pending_approval"
    other = ids["PAYMENT_AFTER_TERMINATION"]
    with app_role(led) as conn:  # nor may its code be swapped for a low one
        conn.execute(text("UPDATE wf_break_state SET code = 'LATE_SETTLEMENT', "
                          "severity = 'low' WHERE break_id = :b"), {"b": other})
    with pytest.raises(IntegrityError, match="do not give its id"):
        resolve_break(led, other, "li.wei", "other", "fine")


def test_dropped_findings_are_reported_and_rechecked(led: Ledger, tmp_path: Path) -> None:
    _ledger_with_breaks(led, tmp_path)
    with app_role(led) as conn:
        gone = conn.execute(text(
            "DELETE FROM rc_findings WHERE rule IN "
            "('duplicates', 'payee_mismatches', 'after_termination')")).rowcount
        conn.execute(text("UPDATE meta SET value = '999999' WHERE key = 'reconcile_run'"))
    assert gone >= 3
    res = verify_all(led)
    assert [p.code for p in res.problems] == ["findings-mismatch"]
    report = run_reconcile(led, sc.AS_OF)
    assert report.run.mode == "full" and report.integrity_failed
    assert set(CODES) <= _codes(report)  # re-checked: nothing lost
    (flag,) = [b for b in report.breaks if b.code == "LEDGER_INTEGRITY"]
    assert "changed outside bfa" in flag.message
    again = run_reconcile(led, sc.AS_OF)  # the stored findings are honest again
    assert again.run.mode == "incremental" and not again.integrity_failed
    assert set(CODES) <= _codes(again)
    assert verify_all(led).ok


@pytest.mark.parametrize("attack", [
    # two roots' rows swapped: the same multiset of texts, in other places
    "UPDATE rc_findings SET row = CASE WHEN root = :a THEN (SELECT row FROM rc_findings "
    "WHERE rule = 'duplicates' AND root = :b AND pos = 0) ELSE (SELECT row FROM rc_findings "
    "WHERE rule = 'duplicates' AND root = :a AND pos = 0) END "
    "WHERE rule = 'duplicates' AND root IN (:a, :b) AND pos = 0",
    # a row whose text carries one more frame separator than bfa writes
    "UPDATE rc_findings SET row = row || char(10) WHERE rule = 'duplicates' AND root = :a",
    # a finding planted for a root no run reported
    "INSERT INTO rc_findings (rule, root, pos, row) SELECT rule, root || '0', pos, row "
    "FROM rc_findings WHERE rule = 'duplicates' AND root = :a",
])
def test_rewritten_findings_are_reported(led: Ledger, tmp_path: Path, attack: str) -> None:
    _ledger_with_breaks(led, tmp_path)
    with app_role(led) as conn:
        rule = conn.execute(text(
            "SELECT rule FROM rc_findings GROUP BY rule HAVING count(DISTINCT root) >= 2 "
            "ORDER BY rule")).scalars().first()
        assert rule is not None
        roots = sorted(conn.execute(text("SELECT DISTINCT root FROM rc_findings WHERE "
                                         "rule = :r"), {"r": rule}).scalars())
        sql = attack.replace("'duplicates'", ":rule")
        if conn.dialect.name == "postgresql":
            sql = sql.replace("char(10)", "chr(10)")
        assert conn.execute(text(sql), {"a": roots[0], "b": roots[1], "rule": rule}
                            ).rowcount >= 1
    assert [p.code for p in verify_all(led).problems] == ["findings-mismatch"]
    report = run_reconcile(led, sc.AS_OF)
    assert report.run.mode == "full" and report.integrity_failed
    assert verify_all(led).ok


def test_findings_digest_scheme() -> None:
    """The digest of FORMAT.md §2.5: the worked example, the frame check, and a record
    of the older additive scheme still checked by its own digest."""
    from reconcile.matching._state import LastRun, findings_digest, legacy_digest, mismatch

    rows = [("duplicates", "p1|pension|2026-10", 0, '[1,"x"]'), ("orphans", "17", 0, "[2]")]
    body = 'duplicates\x00p1|pension|2026-10\x000\x00[1,"x"]\norphans\x0017\x000\x00[2]\n'
    assert findings_digest(rows).digest == hashlib.sha256(body.encode()).hexdigest()
    assert findings_digest([("orphans", "1\n7", 0, "[2]")]).digest == "invalid"
    assert findings_digest([("orphans", "17", 0, "[2]\x00")]).digest == "invalid"
    old = legacy_digest(rows)
    legacy = LastRun(3, 10, "r", 2, old.digest, "additive", seq=20)
    assert mismatch(legacy, rows, "x") is None
    assert mismatch(LastRun(3, 10, "r", 2, old.digest, "sorted-sha256", seq=20), rows, "x")
    assert mismatch(LastRun(3, 30, "r", 2, old.digest, "additive", seq=20), rows, "x")
    assert mismatch(legacy, rows[:1], "x")


def test_a_forged_watermark_in_meta_is_ignored(led: Ledger, tmp_path: Path) -> None:
    """The old meta marks of the incremental state are not read: new records are
    checked whatever meta says."""
    _ledger_with_breaks(led, tmp_path)
    with app_role(led) as conn:
        conn.execute(text("UPDATE meta SET value = '0' WHERE key = 'reconcile_run'"))
        conn.execute(text("INSERT INTO meta (key, value) VALUES ('reconcile_checked', "
                          "'999999999')"))
    sc.ingest(led, tmp_path, [sc.payment_event(7)], "more")
    report = run_reconcile(led, sc.AS_OF)
    assert report.run.mode == "incremental" and "UNSETTLED_EVENT" in _codes(report)


def test_cli_exit_3_and_the_nightly_signs_nothing(ledger_home: dict[str, Any],
                                                 tmp_path: Path) -> None:
    from cli import (
                bfa,
    )

    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        _ledger_with_breaks(led, tmp_path)
        led.checkpoint()
        with app_role(led) as conn:
            conn.execute(text("UPDATE wf_break_state SET status = 'resolved'"))
            conn.execute(text("DELETE FROM rc_findings WHERE rule = 'duplicates'"))
        before = _sizes(led)
    finally:
        led.close()
    env = {"BFA_HOME": ledger_home["home"], "BFA_DATABASE_URL": ledger_home["db"],
           "BFA_USER": "tester"}
    runner = CliRunner()
    for args in (["breaks", "list"], ["verify"], ["verify", "--since-checkpoint"]):
        r = runner.invoke(bfa, args, env=env)
        assert r.exit_code == 3, (args, r.output)
    r = runner.invoke(bfa, ["nightly", "--report-dir", str(tmp_path / "rep"), "--as-of",
                            sc.AS_OF.isoformat()], env=env)
    assert r.exit_code == 3, r.output
    assert "INTEGRITY FAILURE" in r.output and "nothing signed" in r.output
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        size, cp = _sizes(led)
        assert cp == before[1] and size > before[0]  # the run's record, no signature
    finally:
        led.close()
    r = runner.invoke(bfa, ["reconcile", "--as-of", sc.AS_OF.isoformat()], env=env)
    assert r.exit_code == 1, r.output  # restored and re-checked: only the breaks remain


def test_migration_0011_keys_the_breaks_of_older_ledgers(led: Ledger, tmp_path: Path) -> None:
    """Revision 0011 adds wf_break_state.id_key; rows written before it get their key from
    their message, so the id check of every command passes on an upgraded ledger."""
    from tests.reconcile.test_domain_rules import netting

    sc.ingest(led, tmp_path, sc.base(tmp_path) + netting(tmp_path, False))
    report = apply_states(led, run_reconcile(led, sc.AS_OF))
    keyed = [b for b in report.breaks if b.key]
    assert keyed and keyed[0].code == "ACCOUNT_RULE_VIOLATION"
    with led.store.engine.begin() as conn:  # as revision 0010 left the table
        conn.execute(text("ALTER TABLE wf_break_state DROP COLUMN id_key"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0010'"))
    led.store.migrate()
    states = {s.break_id: s for s in list_breaks(led)}  # checks every row's id
    assert states[keyed[0].id].id_key == keyed[0].key
    assert verify_all(led).ok
