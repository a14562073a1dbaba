"""Reconciliation of the business, finance and archive domains (INTERCHANGE "consistency").

The package owns the derived ``rc_*`` tables (``_tables``), their incremental refresh
from ledger entries (``_refresh``), the set-based matching SQL (``_match``), the rules
(``_rules``: defaults and the TOML rules file, :func:`load_rules`) and the report
(``_report``). It detects ``UNSETTLED_EVENT``, ``AMOUNT_MISMATCH`` (events, movements
and vouchers), ``LATE_SETTLEMENT``, ``MISSING_VOUCHER``, ``ORPHAN_MOVEMENT``,
``AMBIGUOUS_MATCH`` and the domain rules ``DUPLICATE_PAYMENT``,
``PAYMENT_AFTER_TERMINATION``, ``PAYEE_MISMATCH``, ``RETURNED_PAYMENT`` and
``ACCOUNT_RULE_VIOLATION``; bank statements add ``STATEMENT_BALANCE_BREAK``
(``_bank``); the nightly run adds ``LEDGER_INTEGRITY`` (:func:`integrity_break`).
The break workflow (``_workflow``), tracing (``_trace``), the nightly run (``_nightly``)
and the report renderers (``_render``) are re-exported here.

Example::

    from datetime import date
    from ledger import Ledger
    from reconcile import run_reconcile

    led = Ledger.open(home=".bfa")
    report = run_reconcile(led, as_of=date(2026, 12, 31))
    print(report.summary.by_code, report.summary.amount_at_risk)
    json_ready = report.to_json()   # {"run", "summary", "breaks", "expected"}
"""

from reconcile._bank import book_vs_bank
from reconcile._errors import NightlyLockedError
from reconcile._import import StatementFormat, ingest_statement, ingest_statements
from reconcile._nightly import LOCK_MAX_AGE, NightlyResult, run_nightly
from reconcile._refresh import Deriver, refresh
from reconcile._render import render_csv, render_html, render_json, render_text
from reconcile._report import (
    SEVERITY,
    Break,
    Expected,
    Report,
    RunInfo,
    Summary,
    break_id,
    integrity_break,
)
from reconcile._rules import DEFAULT_RULES, Rules, load_rules
from reconcile._run import reconcile_and_track, run_reconcile, today
from reconcile._trace import Trace, trace
from reconcile._verify import verify_all
from reconcile._workflow import (
    REASONS,
    STATUSES,
    BreakState,
    apply_states,
    approve_break,
    assign_break,
    history,
    list_breaks,
    reopen_break,
    resolve_break,
)

__all__ = [
    "DEFAULT_RULES",
    "LOCK_MAX_AGE",
    "REASONS",
    "SEVERITY",
    "STATUSES",
    "Break",
    "BreakState",
    "Deriver",
    "Expected",
    "NightlyLockedError",
    "NightlyResult",
    "Report",
    "Rules",
    "RunInfo",
    "StatementFormat",
    "Summary",
    "Trace",
    "apply_states",
    "approve_break",
    "assign_break",
    "book_vs_bank",
    "break_id",
    "history",
    "ingest_statement",
    "ingest_statements",
    "integrity_break",
    "list_breaks",
    "load_rules",
    "reconcile_and_track",
    "refresh",
    "render_csv",
    "render_html",
    "render_json",
    "render_text",
    "reopen_break",
    "resolve_break",
    "run_nightly",
    "run_reconcile",
    "today",
    "trace",
    "verify_all",
]
