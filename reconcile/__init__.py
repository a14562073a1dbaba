"""Reconciliation of the business, finance and archive domains (INTERCHANGE "consistency").

The package owns the derived ``rc_*`` tables (``_tables``), their incremental refresh
from ledger entries (``_refresh``), the set-based matching SQL (``_match``), the rules
(``_rules``) and the report (``_report``). Step 1 of issue 3 detects
``UNSETTLED_EVENT``, ``AMOUNT_MISMATCH`` (events and movements), ``LATE_SETTLEMENT``,
``MISSING_VOUCHER``, ``ORPHAN_MOVEMENT`` and ``AMBIGUOUS_MATCH``.

Example::

    from datetime import date
    from ledger import Ledger
    from reconcile import run_reconcile

    led = Ledger.open(home=".bfa")
    report = run_reconcile(led, as_of=date(2026, 12, 31))
    print(report.summary.by_code, report.summary.amount_at_risk)
    json_ready = report.to_json()   # {"run", "summary", "breaks", "expected"}
"""

from reconcile._refresh import refresh
from reconcile._report import SEVERITY, Break, Expected, Report, RunInfo, Summary, break_id
from reconcile._rules import DEFAULT_RULES, Rules
from reconcile._run import run_reconcile, today

__all__ = [
    "DEFAULT_RULES",
    "SEVERITY",
    "Break",
    "Expected",
    "Report",
    "Rules",
    "RunInfo",
    "Summary",
    "break_id",
    "refresh",
    "run_reconcile",
    "today",
]
