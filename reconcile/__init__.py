"""Reconciliation of the business, finance and archive domains (INTERCHANGE "consistency").

Four rooms, each a subpackage, and this door:

- ``matching/``: the derived ``rc_*`` tables (``_tables``), their refresh from ledger
  entries (``_refresh``), the set-based matching SQL (``_match``), incremental runs with
  stored findings (``_incremental``) and the run's ``control.reconcile`` record
  (``_state``), the rules (``_rules``: defaults and the TOML rules file) and the run that
  judges findings by date (``_run``: :func:`run_reconcile`). It detects
  ``UNSETTLED_EVENT``, ``AMOUNT_MISMATCH``, ``LATE_SETTLEMENT``, ``MISSING_VOUCHER``,
  ``ORPHAN_MOVEMENT``, ``AMBIGUOUS_MATCH``, ``DUPLICATE_PAYMENT``,
  ``PAYMENT_AFTER_TERMINATION``, ``PAYEE_MISMATCH``, ``RETURNED_PAYMENT`` and
  ``ACCOUNT_RULE_VIOLATION``;
- ``bank/``: camt.053 and MT940 statements, their import and ``STATEMENT_BALANCE_BREAK``;
- ``workflow/``: the break workflow (``control.break`` entries, the ``wf_*`` tables) and
  the trail of a record (``trace``);
- ``reports/``: breaks and reports (``LEDGER_INTEGRITY`` among them), their renderings,
  the breaks per insurance and region (``fund_view``, ``--by``) and the nightly run.

Other packages import only what this module exports; import-linter holds them to it.

Example::

    from datetime import date
    from ledger import Ledger
    from reconcile import run_reconcile

    led = Ledger.open(home=".bfa")
    report = run_reconcile(led, as_of=date(2026, 12, 31))
    print(report.summary.by_code, report.summary.amount_at_risk)
    json_ready = report.to_json()   # {"run", "summary", "breaks", "expected"}
"""

from reconcile._errors import NightlyLockedError
from reconcile._verify import verify_all
from reconcile.bank import (
    ITEM_KINDS,
    ITEM_NAMES,
    LABELS,
    AccountReconciliation,
    BankReconciliation,
    archive_statements,
    bank_reconciliation,
    parse_yuan,
    record_opening,
    statement_accounts,
    statement_csv,
)
from reconcile.bank._import import StatementFormat, ingest_statement, ingest_statements
from reconcile.bank._withdraw import (
    Approved,
    WithdrawalRequest,
    approve_withdrawal,
    cancel_withdrawal,
    request_withdrawal,
    withdrawals,
)
from reconcile.lists import (
    COMPARE_KINDS,
    Compared,
    Comparison,
    compare_list,
    comparisons,
    death_list,
)
from reconcile.matching._archive import (
    PROPERTIES,
    SPACE,
    Defect,
    FixityFailure,
    defect_state,
    fixity_state,
    fold_defects,
    hash_key,
    in_scope,
)
from reconcile.matching._custom import SqlRule, SqlRuleError
from reconcile.matching._incremental import rules_digest
from reconcile.matching._precheck import (
    HOLD_BREAK,
    HOLD_REASONS,
    HOLD_TEXT,
    Held,
    PrecheckResult,
    precheck,
)
from reconcile.matching._refresh import Deriver, refresh
from reconcile.matching._rules import DEFAULT_RULES, RULESET_VERSION, Rules, load_rules
from reconcile.matching._run import (
    derive_breaks,
    reconcile_and_track,
    run_reconcile,
    run_tracked,
    stream_report,
    today,
)
from reconcile.matching._scope import (
    ids_naming,
    matched_with,
    seqs_of_ids,
    seqs_of_month,
    seqs_of_party,
    unindexed_business,
    vouchers_naming,
)
from reconcile.reports._funds import GROUP_KEYS, FundGroup, FundView, fund_view, parse_by
from reconcile.reports._labels import code_label, label
from reconcile.reports._nightly import DERIVED_DAYS, LOCK_MAX_AGE, NightlyResult, run_nightly
from reconcile.reports._render import (
    render_bank_html,
    render_csv,
    render_fund_csv,
    render_html,
    render_json,
    render_text,
)
from reconcile.reports._report import (
    SEVERITY,
    Break,
    Expected,
    Msg,
    Report,
    RunInfo,
    Summary,
    break_id,
    integrity_break,
    msg,
    render_message,
)
from reconcile.workflow._trace import Trace, trace
from reconcile.workflow._workflow import (
    REASONS,
    STATUSES,
    BreakState,
    Transition,
    apply_states,
    approve_break,
    assign_break,
    get_break,
    histories,
    history,
    list_breaks,
    reconciled,
    reopen_break,
    resolve_break,
)

__all__ = [
    "COMPARE_KINDS",
    "DEFAULT_RULES",
    "DERIVED_DAYS",
    "GROUP_KEYS",
    "HOLD_BREAK",
    "HOLD_REASONS",
    "HOLD_TEXT",
    "ITEM_KINDS",
    "ITEM_NAMES",
    "LABELS",
    "LOCK_MAX_AGE",
    "PROPERTIES",
    "REASONS",
    "RULESET_VERSION",
    "SEVERITY",
    "SPACE",
    "STATUSES",
    "AccountReconciliation",
    "Approved",
    "BankReconciliation",
    "Break",
    "BreakState",
    "Compared",
    "Comparison",
    "Defect",
    "Deriver",
    "Expected",
    "FixityFailure",
    "FundGroup",
    "FundView",
    "Held",
    "Msg",
    "NightlyLockedError",
    "NightlyResult",
    "PrecheckResult",
    "Report",
    "Rules",
    "RunInfo",
    "SqlRule",
    "SqlRuleError",
    "StatementFormat",
    "Summary",
    "Trace",
    "Transition",
    "WithdrawalRequest",
    "apply_states",
    "approve_break",
    "approve_withdrawal",
    "archive_statements",
    "assign_break",
    "bank_reconciliation",
    "break_id",
    "cancel_withdrawal",
    "code_label",
    "compare_list",
    "comparisons",
    "death_list",
    "defect_state",
    "derive_breaks",
    "fixity_state",
    "fold_defects",
    "fund_view",
    "get_break",
    "hash_key",
    "histories",
    "history",
    "ids_naming",
    "in_scope",
    "ingest_statement",
    "ingest_statements",
    "integrity_break",
    "label",
    "list_breaks",
    "load_rules",
    "matched_with",
    "msg",
    "parse_by",
    "parse_yuan",
    "precheck",
    "reconcile_and_track",
    "reconciled",
    "record_opening",
    "refresh",
    "render_bank_html",
    "render_csv",
    "render_fund_csv",
    "render_html",
    "render_json",
    "render_message",
    "render_text",
    "reopen_break",
    "request_withdrawal",
    "resolve_break",
    "rules_digest",
    "run_nightly",
    "run_reconcile",
    "run_tracked",
    "seqs_of_ids",
    "seqs_of_month",
    "seqs_of_party",
    "statement_accounts",
    "statement_csv",
    "stream_report",
    "today",
    "trace",
    "unindexed_business",
    "verify_all",
    "vouchers_naming",
    "withdrawals",
]
