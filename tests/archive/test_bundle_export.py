"""``bfa bundle export`` keeps what it gathers on disk (``archive/_bundle_work.py``) and
writes as it reads, so that its memory stays flat (bench/ARCHIVE.md): a bundle written a
few rows at a time — pages of two, the bag writer's names spilled after one file, breaks
handed over two at a time, one row per table on the page — is the same bundle, byte for
byte in every file that does not name the export itself. The findings document is
written one break at a time, exactly as ``json.dumps`` writes it whole. The workflow a
bundle brings is checked against the ledger, a deleted row included. Both backends.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import archive._bagit
import archive._bundle
import archive._bundle_html
import archive._bundle_work
import reconcile.matching._run
from archive import FileStore, Scope, export_bundle, verify_bundle
from archive._bundle_work import json_document
from ledger import IntegrityError, Ledger, NotFoundError
from reconcile import assign_break, get_break, resolve_break, run_tracked
from tests.reconcile import _scenarios as sc
from tests.reconcile._batches import add, batches

SAME = ("bfa/entries.jsonl", "bfa/vouchers.jsonl", "bfa/findings.json")
"""The files of a bundle that say nothing of the export itself (its id, time, key)."""


def _ledger(led: Ledger, tmp_path: Path) -> str:
    """Every batch of the streaming tests ingested, one break worked, a checkpoint; the
    worked break."""
    for i, batch in enumerate(batches(tmp_path)):
        for r in batch:  # the generated months' voucher files, where the batch names them
            made = tmp_path / "data" / str(r.get("file"))
            if "file" in r and not (tmp_path / r["file"]).exists() and made.is_file():
                (tmp_path / r["file"]).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(made, tmp_path / r["file"])
        add(led, tmp_path, i, batch)
    applied = run_tracked(led, sc.AS_OF)
    worked = sorted(b.id for b in applied.report.breaks)[0]
    assign_break(led, worked, "alice", "bob")
    resolve_break(led, worked, "bob", "timing", "paid later")
    led.checkpoint()
    return worked


def _export(led: Ledger, out: Path, scope: Scope) -> archive._bundle.ExportResult:
    return export_bundle(led, FileStore(led.home.archive_dir, led.home.perms), out, scope,
                         as_of=sc.AS_OF)


def test_a_bundle_written_a_few_rows_at_a_time_is_the_same(
        led: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    worked = _ledger(led, tmp_path)
    scope = Scope(periods=("2026-10", "2026-11", "2026-12"), breaks=(worked,))
    whole = _export(led, tmp_path / "whole", scope)
    monkeypatch.setattr(archive._bundle_work, "PAGE", 2)
    monkeypatch.setattr(archive._bagit, "WRITER_SPILL", 1)
    monkeypatch.setattr(reconcile.matching._run, "PART", 2)
    monkeypatch.setattr(archive._bundle, "SHOWN", 1)
    monkeypatch.setattr(archive._bundle_html, "SHOWN", 1)
    paged = _export(led, tmp_path / "paged", scope)
    assert (paged.entries, paged.scoped, paged.vouchers, paged.breaks) == (
        whole.entries, whole.scoped, whole.vouchers, whole.breaks)
    assert whole.entries > 20 and whole.vouchers > 2 and whole.breaks > 5
    for rel in SAME:
        assert (tmp_path / "paged" / rel).read_bytes() == (tmp_path / "whole" / rel).read_bytes()
    findings = json.loads((tmp_path / "whole/bfa/findings.json").read_text("utf-8"))
    assert [b["id"] for b in findings["breaks"]] == sorted(b["id"] for b in findings["breaks"])
    assert next(b for b in findings["breaks"] if b["id"] == worked)["workflow"][
        "resolved_by"] == "bob"
    page = (tmp_path / "paged/index.html").read_text("utf-8")
    assert f"… {whole.entries - 1} more (bfa/entries.jsonl lists all)" in page
    assert f"… {whole.breaks - 1} more (bfa/findings.json lists all)" in page
    assert f"… {whole.vouchers - 1} more (bfa/vouchers.jsonl lists all)" in page
    key = led.home.verifier()
    for name in ("whole", "paged"):
        report = verify_bundle(tmp_path / name, key)
        assert report.ok, report.first_failure()


def test_export_refuses_a_workflow_row_deleted_outside_bfa(led: Ledger, tmp_path: Path
                                                          ) -> None:
    """The workflow table is the application's to write; a break's row deleted there
    would hide its resolution from the bundle. Its ``control.break`` entries say it was
    worked: the export refuses (exit 3), whether the break is named or in the scope, and
    so does every look-up of that break by id."""
    worked = _ledger(led, tmp_path)
    with led.store.engine.begin() as conn:
        assert conn.execute(text("DELETE FROM wf_break_state WHERE break_id = :b"),
                            {"b": worked}).rowcount == 1
    with pytest.raises(IntegrityError, match="no row in the workflow table"):
        _export(led, tmp_path / "b", Scope(periods=("2026-11",)))
    assert not (tmp_path / "b").exists()
    for named in (worked, worked[:12]):  # the break named itself, by id or by prefix
        with pytest.raises(IntegrityError, match="no row in the workflow table"):
            _export(led, tmp_path / "b", Scope(breaks=(named,)))
        with pytest.raises(IntegrityError, match="no row in the workflow table"):
            get_break(led, named)
    with pytest.raises(NotFoundError):  # a break never worked is still unknown
        get_break(led, "BRK-0000000000000000")


def test_the_findings_document_is_json_dumps_byte_for_byte() -> None:
    rng = random.Random(8785)

    def value(depth: int = 0) -> Any:
        kind = rng.randrange(6 if depth < 3 else 3)
        if kind == 0:
            return None if rng.random() < 0.5 else rng.random() < 0.5
        if kind == 1:
            return rng.randrange(-10**12, 10**12)
        if kind == 2:
            return rng.choice(["", "养老保险 \"待遇\"\n", "a\\b", "\u2028", "x" * 30])
        if kind == 3:
            return [value(depth + 1) for _ in range(rng.randrange(3))]
        return {rng.choice("abcz中"): value(depth + 1) for _ in range(rng.randrange(3))}

    for _ in range(300):
        head = {rng.choice(["as_of", "rules", "zz", "breaks", "中"]): value()
                for _ in range(rng.randrange(4))}
        items = [value() for _ in range(rng.randrange(4))]
        want = json.dumps({**head, "breaks": items}, ensure_ascii=False, indent=2,
                          sort_keys=True) + "\n"
        assert "".join(json_document(head, "breaks", iter(items))) == want
