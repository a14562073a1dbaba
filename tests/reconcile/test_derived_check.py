"""The check of the reconciler's derived tables against the entries (ADR 0032, FORMAT.md
§6.7, §8.3), on both backends, with the application role's rights (tests/_insider.py):
a column of a row edited, a row deleted, a row planted in each table; ``bfa verify``
names it (exit 3), a run and the nightly report it as ``LEDGER_INTEGRITY`` and rebuild the
tables, ``bfa balance`` refuses. No false alarm on a ledger with corrections, withdrawals,
bank statements, vouchers and incremental runs."""

from __future__ import annotations

from pathlib import Path

from ledger import Ledger
from reconcile import reconcile_and_track, verify_all
from reconcile.matching._derived import check_all
from tests.reconcile import _scenarios as sc
from tests.reconcile._batches import EARLY, batches


def _derived_problems(led: Ledger) -> list[str]:
    with led.store.reader() as conn:
        return check_all(led.store, conn).messages()


def test_no_false_alarm_over_incremental_runs(led: Ledger, tmp_path: Path) -> None:
    for i, batch in enumerate(batches(tmp_path)):
        if batch:
            sc.ingest(led, tmp_path, batch, f"b{i}")
        assert _derived_problems(led) == []
        reconcile_and_track(led, EARLY)
        assert _derived_problems(led) == []
    res = verify_all(led)
    assert res.ok, res.problems
