"""``trace``: a record's trail across the three domains, with ledger positions, both backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

import cli._breaks_cmds  # noqa: F401  (registers `bfa trace`)
from cli import bfa
from ledger import InputError, IntegrityError, Ledger, NotFoundError
from reconcile import run_reconcile, run_tracked
from reconcile.workflow._trace import trace
from reconcile.workflow._workflow import apply_states, list_breaks, resolve_break
from tests._records import payment_event
from tests.reconcile import _scenarios as sc


def _mismatch(led: Ledger, tmp_path: Path) -> None:
    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.mismatch(tmp_path, False))


def _by_id(tr: Any) -> dict[str, Any]:
    return {i.record_id: i for i in tr.items}


def test_event_trail(led: Ledger, tmp_path: Path) -> None:
    _mismatch(led, tmp_path)
    tr = trace(led, "BP-2")
    items = _by_id(tr)
    assert set(items) == {"BP-2", "PAY-2", "BA-x", "AC-x"}
    assert items["BP-2"].subject and items["BP-2"].role == "event"
    assert items["PAY-2"].relation == "settles BP-2" and items["PAY-2"].role == "movement"
    assert items["BA-x"].role == "voucher" and "evidences PAY-2" in items["BA-x"].relation
    assert tr.allocations == ({"movement": "PAY-2", "event": "BP-2", "amount": "3456.68"},)
    assert not any(i.covered for i in tr.items) and tr.checkpoint_size == 0
    with led.store.reader() as conn:
        e = led.find_entry(conn, "PAY-2", None)
    assert (items["PAY-2"].seq, items["PAY-2"].entry_hash) == (e.seq, e.entry_hash.hex())
    assert tr.breaks == ()  # the workflow has not seen a reconciliation yet
    apply_states(led, run_reconcile(led, sc.AS_OF))
    led.checkpoint()
    tr = trace(led, "BP-2")
    assert all(i.covered for i in tr.items) and tr.checkpoint_size == led.size()
    assert {(b.code, b.records) for b in tr.breaks} == {
        ("AMOUNT_MISMATCH", ("BP-2", "PAY-2")), ("AMOUNT_MISMATCH", ("PAY-2",))}
    assert {i.record_id for i in trace(led, "CA-1").items} == {"CA-1", "COL-1", "FI-base",
                                                               "AC-base"}


def test_movement_and_voucher_trails(led: Ledger, tmp_path: Path) -> None:
    _mismatch(led, tmp_path)
    mv = _by_id(trace(led, "PAY-2"))
    assert mv["PAY-2"].subject and mv["BP-2"].relation == "settled by PAY-2"
    assert {"BA-x", "AC-x"} <= set(mv)
    vo = _by_id(trace(led, "BA-x"))
    assert vo["BA-x"].subject and {"PAY-2", "BP-2"} <= set(vo)


def test_corrections_both_ways_and_resolved_breaks(led: Ledger, tmp_path: Path) -> None:
    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.orphan(tmp_path, False))
    fixed = {**payment_event(1), "id": "BP-1c", "corrects": "BP-1"}
    fixed2 = {**payment_event(1), "id": "BP-1d", "corrects": "BP-1c"}
    sc.ingest(led, tmp_path, [fixed, fixed2], "corr")
    for rid in ("BP-1", "BP-1c", "BP-1d"):
        items = _by_id(trace(led, rid))
        assert {"BP-1", "BP-1c", "BP-1d", "PAY-1"} <= set(items), rid
        assert items["BP-1"].superseded and items["BP-1"].current_id == "BP-1d"
        assert items["BP-1c"].corrects == "BP-1" and items["BP-1d"].corrects == "BP-1c"
        assert all(items[v].subject for v in ("BP-1", "BP-1c", "BP-1d"))
        assert not items["PAY-1"].subject
    apply_states(led, run_reconcile(led, sc.AS_OF))
    bid = list_breaks(led)[0].break_id
    resolve_break(led, bid, "alice", "bank_error", "returned by the bank")
    tr = trace(led, "COL-9")
    (b,) = tr.breaks
    assert (b.break_id, b.status) == (bid, "pending_approval")
    assert [t.record["action"] for t in b.transitions] == ["resolve"]
    ctl = trace(led, f"{bid}/1", "control")
    assert ctl.items[0].role == "control" and ctl.notes


def test_unknown_and_ambiguous_ids(led: Ledger, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        trace(led, "NOPE")
    _mismatch(led, tmp_path)
    clash = {"type": "finance.payment", "id": "BP-2", "region": "440100",
             "occurred_at": "2026-11-20T09:00:00+08:00", "amount": "1.00",
             "value_date": "2026-11-20", "bank_ref": "R", "payee_account": sc.ACCOUNT}
    sc.ingest(led, tmp_path, [clash], "clash")
    with pytest.raises(InputError, match="pass --domain"):
        trace(led, "BP-2")
    assert trace(led, "BP-2", "finance").items[0].role == "movement"


def test_cli_trace(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        _mismatch(led, tmp_path)
    finally:
        led.close()
    env = {"BFA_HOME": ledger_home["home"], "BFA_DATABASE_URL": ledger_home["db"]}
    res = CliRunner().invoke(bfa, ["trace", "BP-2", "--json"], env=env)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["record"] == {"id": "BP-2", "domain": "business"}
    assert {i["record_id"] for i in data["items"]} == {"BP-2", "PAY-2", "BA-x", "AC-x"}
    assert {"seq", "entry_hash", "covered"} <= set(data["items"][0])
    res = CliRunner().invoke(bfa, ["trace", "BP-2"], env=env)
    assert res.exit_code == 0 and "PAY-2" in res.output and "not yet" in res.output
    res = CliRunner().invoke(bfa, ["trace", "NOPE"], env=env)
    assert res.exit_code == 2 and "no record 'NOPE'" in res.output


def test_a_break_deleted_from_the_workflow_tables_is_not_hidden(led: Ledger, tmp_path: Path
                                                                ) -> None:
    """An insider deletes a break's row and its record links: the trail would show no
    break at all. The breaks present are checked against the last run's entry first."""
    _mismatch(led, tmp_path)
    run_tracked(led, sc.AS_OF)
    (b, *_rest) = list_breaks(led)
    rid = b.records[0]
    assert b.break_id in {x.break_id for x in trace(led, rid).breaks}
    with led.store.engine.begin() as conn:
        for table in ("wf_break_records", "wf_break_state"):
            conn.execute(text(f"DELETE FROM {table} WHERE break_id = :b"), {"b": b.break_id})
    with pytest.raises(IntegrityError, match="bfa reconcile"):
        trace(led, rid)
