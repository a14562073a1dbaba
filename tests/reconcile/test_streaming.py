"""The reconciler streams its findings (``reconcile.derive_breaks``): what it hands over
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
from reconcile import Break, Rules, derive_breaks, run_reconcile
from tests.reconcile import _scenarios as sc
from tests.reconcile._batches import EARLY, add, batches

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
