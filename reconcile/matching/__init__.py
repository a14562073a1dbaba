"""Matching: the derived ``rc_*`` tables, their refresh from the entries, the set-based
matching SQL, incremental runs with stored findings and their ``control.reconcile``
records, the rules, and the run that judges findings by date (``run_reconcile``).

Internal to ``reconcile``: other packages use what ``reconcile/__init__`` exports. This
file imports nothing, so that the subpackages can import each other's modules."""
