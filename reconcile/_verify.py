"""``bfa verify`` beyond the entries: the reconciler's and the workflow's stored state.

:func:`verify_all` runs the ledger's own verification (FORMAT.md §6.1–§6.6) and, when
that passes, checks the state other commands believe (§6.7): the stored findings against
the digest the last reconciliation recorded (``findings-mismatch``); the matching state
against its digest there and, in a full run, every row of the derived tables against the
entries (``derived-mismatch``, :mod:`reconcile.matching._derived`); and every break's
workflow row against its ``control.break`` entries (``workflow-mismatch``); and every
``control.rules`` record against the digest it states (``rules-mismatch``).
"""

from __future__ import annotations

from ledger import Ledger, Problem, ProgressFn, VerifyResult
from reconcile.matching._derived import check_all
from reconcile.matching._state import check_findings, check_rules_records, check_state
from reconcile.workflow._workflow import check_workflow

MAX_STATE_PROBLEMS = 100
"""Workflow disagreements listed one by one; more are summed up in one more problem."""


def verify_all(ledger: Ledger, *, since_checkpoint: bool = False, derived: bool = True,
               against: str | None = None, progress: ProgressFn | None = None) -> VerifyResult:
    """Verify the ledger, then the derived state (see the module docstring).

    A full run replays every ``control.break`` entry (a deleted row is found too) and
    checks every row of the derived tables; a ``--since-checkpoint`` run checks each
    workflow row against its own entries by id, and no derived row."""
    result = ledger.verify(since_checkpoint=since_checkpoint, derived=derived,
                           against=against, progress=progress)
    if not result.ok:
        return result
    with ledger.store.reader() as conn:
        why = check_findings(ledger.store, conn)
        state = check_state(ledger.store, conn)
        rules = check_rules_records(conn)
        # every row of the derived tables: a full run only (--skip-derived skips it too)
        rows = check_all(ledger.store, conn) if derived and not since_checkpoint else None
    if why is not None:
        result.problems.append(Problem("findings-mismatch", why, None))
    if state is not None:
        result.problems.append(Problem("derived-mismatch", state, None))
    result.problems += [Problem("rules-mismatch", why, seq) for seq, why in rules]
    if rows is not None:
        result.problems += [Problem("derived-mismatch", m.message(), m.seq)
                            for m in rows.mismatches]
        if rows.more:
            result.problems.append(Problem("derived-mismatch", rows.messages()[-1], None))
    disagreements = check_workflow(ledger, full=not since_checkpoint)
    for _bid, msg in disagreements[:MAX_STATE_PROBLEMS]:
        result.problems.append(Problem("workflow-mismatch", msg, None))
    if len(disagreements) > MAX_STATE_PROBLEMS:
        result.problems.append(Problem(
            "workflow-mismatch", f"… and {len(disagreements) - MAX_STATE_PROBLEMS} more breaks "
            "whose workflow rows differ from their control.break entries", None))
    return result


__all__ = ["verify_all"]
