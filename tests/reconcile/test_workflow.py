"""The break workflow on both backends: four-eyes, reasons, the ledger trail, evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import cli._breaks_cmds  # noqa: F401  (registers `bfa breaks`, `trace`, `nightly`)
from cli import bfa
from ledger import InputError, Ledger, NotFoundError
from ledger._store import IDS_PER_STATEMENT
from reconcile import Break, run_reconcile
from reconcile.reports._report import Report, RunInfo
from reconcile.workflow import _workflow as wf
from reconcile.workflow._workflow import (
    apply_states,
    apply_states_detail,
    approve_break,
    assign_break,
    get_break,
    history,
    list_breaks,
    reopen_break,
    replay_states,
    resolve_break,
)
from tests.reconcile import _scenarios as sc


def _setup(led: Ledger, tmp_path: Path, extra: list[dict[str, Any]]) -> dict[str, str]:
    """Ingest base + extra, reconcile, apply states; returns {code: break id}."""
    sc.ingest(led, tmp_path, sc.base(tmp_path) + extra)
    apply_states(led, run_reconcile(led, sc.AS_OF))
    return {s.code: s.break_id for s in list_breaks(led)}


def _table_states(led: Ledger) -> dict[str, dict[str, Any]]:
    return {s.break_id: {k: getattr(s, k) for k in wf.WORKFLOW_FIELDS}
            for s in list_breaks(led, include_gone=True) if s.transitions}


def test_high_severity_needs_a_second_user(led: Ledger, tmp_path: Path) -> None:
    bid = _setup(led, tmp_path, sc.orphan(tmp_path, False))["ORPHAN_MOVEMENT"]
    assert get_break(led, bid).status == "open"
    s = resolve_break(led, bid, "alice", "bank_error", "bank re-credited on 11-28")
    assert s.status == "pending_approval" and s.resolved_by == "alice"
    with pytest.raises(InputError, match="four-eyes: alice resolved"):
        approve_break(led, bid, "alice")
    assert get_break(led, bid).status == "pending_approval"
    s = approve_break(led, bid, "bob")
    assert (s.status, s.resolved_by, s.approved_by) == ("resolved", "alice", "bob")
    with pytest.raises(InputError, match="not pending approval"):
        approve_break(led, bid, "carol")


def test_every_transition_is_a_provable_control_entry(led: Ledger, tmp_path: Path) -> None:
    bid = _setup(led, tmp_path, sc.orphan(tmp_path, False))["ORPHAN_MOVEMENT"]
    size = led.size()
    assign_break(led, bid, "lead", "alice")
    resolve_break(led, bid, "alice", "timing", "arrives with the December file")
    approve_break(led, bid, "bob")
    assert led.size() == size + 3
    state, steps = history(led, bid)
    assert [t.record["action"] for t in steps] == ["assign", "resolve", "approve"]
    assert [t.seq for t in steps] == [size, size + 1, size + 2]
    assert not any(t.covered for t in steps)
    first = steps[1].record
    assert first["type"] == "control.break" and first["id"] == f"{bid}/2"
    assert (first["break"], first["code"], first["user"], first["reason"], first["note"]) == (
        bid, "ORPHAN_MOVEMENT", "alice", "timing", "arrives with the December file")
    assert {"evidence", "at", "status"} <= set(first)
    led.checkpoint()
    _state, steps = history(led, bid)
    assert all(t.covered for t in steps)
    entry, proof = led.prove(f"{bid}/3", "control")
    assert entry.record["action"] == "approve" and entry.record["user"] == "bob"
    assert proof.index == size + 2
    assert led.verify().ok
    # the working table is exactly what the ledger entries say
    assert replay_states(led) == _table_states(led)
    assert state.status == "resolved"


def test_medium_severity_resolves_without_approval(led: Ledger, tmp_path: Path) -> None:
    bid = _setup(led, tmp_path, sc.unsettled(tmp_path, False))["UNSETTLED_EVENT"]
    s = resolve_break(led, bid, "alice", "data_entry", "event entered twice, corrected")
    assert s.status == "resolved" and s.approved_by is None
    with pytest.raises(InputError, match="not pending approval"):
        approve_break(led, bid, "bob")


def test_resolve_needs_reason_and_note(led: Ledger, tmp_path: Path) -> None:
    bid = _setup(led, tmp_path, sc.unsettled(tmp_path, False))["UNSETTLED_EVENT"]
    size = led.size()
    with pytest.raises(InputError, match="reason 'because' is not one of: timing"):
        resolve_break(led, bid, "alice", "because", "note")
    with pytest.raises(InputError, match="needs a note"):
        resolve_break(led, bid, "alice", "timing", "   ")
    with pytest.raises(InputError, match="label"):  # an empty label is no label
        resolve_break(led, bid, "a\nb", "timing", "note")
    with pytest.raises(NotFoundError, match="no break 'BRK-nope'"):
        resolve_break(led, "BRK-nope", "alice", "timing", "note")
    assert led.size() == size  # refused transitions append nothing
    assert set(wf.REASONS) == {"timing", "bank_error", "data_entry", "duplicate_import",
                               "write_off", "other"}


def test_assign_reopen_and_prefix(led: Ledger, tmp_path: Path) -> None:
    bid = _setup(led, tmp_path, sc.orphan(tmp_path, False))["ORPHAN_MOVEMENT"]
    s = assign_break(led, bid[:10], "lead", "alice")  # a unique prefix is enough
    assert (s.status, s.assignee) == ("assigned", "alice")
    with pytest.raises(InputError, match="only resolved or pending"):
        reopen_break(led, bid, "lead", "why not")
    resolve_break(led, bid, "alice", "other", "explained in ticket 42")
    with pytest.raises(InputError, match="reopen it before assigning"):
        assign_break(led, bid, "lead", "bob")
    with pytest.raises(InputError, match="needs a note"):
        reopen_break(led, bid, "lead", "")
    s = reopen_break(led, bid, "lead", "ticket 42 does not explain it")
    assert (s.status, s.assignee, s.resolved_by, s.reason) == ("assigned", "alice", None, None)
    assert list_breaks(led, "assigned")[0].break_id == bid
    with pytest.raises(InputError, match="status 'done'"):
        list_breaks(led, "done")


def _with_evidence(report: Any, value: str) -> Any:
    """The report with every break's evidence set to ``value`` (a changed record)."""
    return report.model_copy(update={"breaks": tuple(
        b.model_copy(update={"evidence": value}) for b in report.breaks)})


def test_resolved_stays_resolved_unless_evidence_changes(led: Ledger, tmp_path: Path) -> None:
    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.unsettled(tmp_path, False))
    apply_states(led, _with_evidence(run_reconcile(led, sc.AS_OF), "e1" * 32))
    bid = {s.code: s.break_id for s in list_breaks(led)}["UNSETTLED_EVENT"]
    resolve_break(led, bid, "alice", "timing", "paid in December")
    size = led.size()
    applied = apply_states_detail(led, _with_evidence(run_reconcile(led, sc.AS_OF), "e1" * 32))
    assert applied.statuses[bid] == "resolved" and applied.reopened == () and applied.new == ()
    assert led.size() == size + 1  # only the run's own record while nothing changed
    applied = apply_states_detail(led, _with_evidence(run_reconcile(led, sc.AS_OF), "e2" * 32))
    assert applied.statuses[bid] == "open" and applied.reopened == (bid,)
    _state, steps = history(led, bid)
    auto = steps[-1].record
    assert (auto["action"], auto["user"], auto["status"]) == ("reopen", "bfa", "open")
    assert auto["previous_evidence"] == "e1" * 32 and auto["evidence"] == "e2" * 32
    assert replay_states(led) == _table_states(led)
    assert {b.id: b.status for b in applied.report.breaks}[bid] == "open"


def test_breaks_no_longer_reported_are_gone(led: Ledger, tmp_path: Path) -> None:
    bid = _setup(led, tmp_path, sc.unsettled(tmp_path, False))["UNSETTLED_EVENT"]
    sc.ingest(led, tmp_path, [sc.payment("PAY-2", allocations=[("BP-2", "3456.78")])], "fix")
    apply_states(led, run_reconcile(led, sc.AS_OF))
    assert bid not in {s.break_id for s in list_breaks(led)}
    gone = {s.break_id: s for s in list_breaks(led, include_gone=True)}
    assert not gone[bid].present


def test_cli_breaks(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        bid = _setup(led, tmp_path, sc.orphan(tmp_path, False))["ORPHAN_MOVEMENT"]
    finally:
        led.close()
    env = {"BFA_HOME": ledger_home["home"], "BFA_DATABASE_URL": ledger_home["db"]}

    def run(*args: str, user: str = "alice") -> Any:
        return CliRunner().invoke(bfa, list(args), env={**env, "BFA_USER": user})

    res = run("breaks", "list")
    assert res.exit_code == 1 and bid in res.output and "ORPHAN_MOVEMENT" in res.output
    res = run("breaks", "resolve", bid, "--reason", "nope", "--note", "x")
    assert res.exit_code == 2 and "nope" in res.output
    res = run("breaks", "resolve", bid, "--reason", "bank_error", "--note", "re-credited")
    assert res.exit_code == 0 and "pending_approval" in res.output, res.output
    res = run("breaks", "approve", bid)
    assert res.exit_code == 2 and "four-eyes" in res.output
    res = run("breaks", "approve", bid, "--user", "bob", "--json")
    assert res.exit_code == 0, res.output
    assert '"approved_by": "bob"' in res.output
    res = run("breaks", "show", bid)
    assert res.exit_code == 0 and "resolve" in res.output and "approve" in res.output
    res = run("breaks", "list")
    assert res.exit_code == 0, res.output  # everything listed is resolved


def test_states_of_more_breaks_than_one_lookup_part(led: Ledger) -> None:
    """Existing states are found and replaced whatever their number (SQLite looks them
    up in parts of ``IDS_PER_STATEMENT`` ids, PostgreSQL in one parameter): a second run keeps each
    existing break's workflow state and reports only the others as new."""

    def report(ids: range) -> Report:
        run = RunInfo(as_of="2026-10-31", started_at="2026-11-01T00:00:00+08:00",
                      finished_at="2026-11-01T00:00:01+08:00", ledger_size=led.size(),
                      decoded=0, backend="test", rules={})
        return Report.build(run, [
            Break.make("ORPHAN_MOVEMENT", (f"M-{i:05d}",), {"movement": 100 + i},
                       "allocations", f"movement M-{i:05d} has no business event", 100 + i,
                       entry_hashes=["ab" * 32]) for i in ids], [])

    n = 2 * IDS_PER_STATEMENT + 7
    first = apply_states_detail(led, report(range(n)))
    assert len(first.new) == n
    some = report(range(n - 1, n)).breaks[0].id  # reported by both runs
    assign_break(led, some, "lead", "alice")
    second = apply_states_detail(led, report(range(n // 2, n + n // 2)))
    assert sorted(second.new) == sorted(
        b.id for b in report(range(n, n + n // 2)).breaks)
    assert len(second.statuses) == n and second.statuses[some] == "assigned"
    assert sum(st == "open" for st in second.statuses.values()) == n - 1
    states = {s.break_id: s for s in list_breaks(led, include_gone=True)}
    assert len(states) == n + n // 2
    assert sum(s.present for s in states.values()) == n
    assert states[some].status == "assigned"
