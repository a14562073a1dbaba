"""Agencies' own rules as SQL: what a rule is, running it, and the breaks it finds.

This module owns :class:`SqlRule` (one ``[[sql_rules]]`` table of a rules file; the file
is read by :mod:`reconcile.matching._rules`), :func:`run_sql_rules`, which runs each rule
read-only over the rule views (``bfa_v_*``, docs/RULE-VIEWS.md) and turns its rows into
:class:`~reconcile.reports._report.Break` s, and :func:`recorded_severity`, the severity
the workflow's four-eyes rule takes for a rule's code (ADR 0036).

A rule's query returns one row per finding: ``record_id`` (required, the record at
fault), and optionally ``related_ids`` (other record ids, comma-separated), ``amount_fen``
(integer fen: the amount at risk), ``field`` (the interchange field at fault, default
``record``) and ``detail`` (a short text for the message). Any other column, or a missing
``record_id``, refuses the rule.

The query runs in the ledger's sandbox (``ledger.run_rule_query``, FORMAT.md §8.6): on
PostgreSQL through ``bfa_rule_rows``, a ``SECURITY DEFINER`` function owned by the rules
role ``bfa_rules_<database>``, which holds ``SELECT`` on the views alone, read-only and
with a statement timeout; on SQLite under an authorizer that allows the views alone and a
progress handler for the time limit.

A rule refused at run time (it writes, reads elsewhere, runs too long, returns columns
other than those above, or more than :data:`MAX_ROWS` rows) stops the run with an
:class:`SqlRuleError` naming the rule (exit 2): the run's transaction is rolled back, so
nothing of it is written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from ledger import (
    ConfigError,
    InputError,
    RuleRefusedError,
    Store,
    control_records,
    query_problem,
    run_rule_query,
)
from reconcile.matching import _tables as t
from reconcile.matching._state import rules_record_problem
from reconcile.reports._report import Break, Severity, msg
from schemas import N_
from schemas import gettext as _

CUSTOM_PREFIX = "CUSTOM_"
"""Every code of an agency's own rule starts so: it never meets a built-in code, today's
or a later version's."""

CODE_PATTERN = re.compile(r"CUSTOM_[A-Z0-9_]{1,33}")
"""A rule's code: the prefix, then 1 to 33 capitals, digits or underscores (40 at most,
as ``wf_break_state.code`` holds)."""

MAX_ROWS = 20_000
"""Findings one rule may return; more refuses the rule (a query that is too broad)."""

DEFAULT_TIMEOUT_MS = 10_000
MAX_TIMEOUT_MS = 600_000

COLUMNS = ("record_id", "related_ids", "amount_fen", "field", "detail")
"""The columns a rule's query may return; ``record_id`` is required."""

class SqlRule(BaseModel):
    """One rule of an agency's own, as its rules file defines it."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    code: str = Field(pattern=CODE_PATTERN.pattern)
    severity: Literal["high", "medium", "low"]
    description: str = Field(min_length=1, max_length=200)
    query: str = Field(min_length=1, max_length=20_000)
    timeout_ms: int = Field(default=DEFAULT_TIMEOUT_MS, ge=1, le=MAX_TIMEOUT_MS)


class SqlRuleError(InputError):
    """A rule of an agency's own was refused at run time; the run stopped (exit 2)."""


# -- running -------------------------------------------------------------------------------

def run_sql_rules(conn: Connection, rules: Sequence[SqlRule]) -> list[Break]:
    """The breaks of every rule, run in turn on the run's connection (inside its
    transaction).

    Raises:
        SqlRuleError: a rule was refused (the message names it and says why).
        ConfigError: PostgreSQL without the rules role's function (``bfa db grant``).
    """
    out: list[Break] = []
    for rule in rules:
        try:
            got = run_rule_query(conn, rule.query, rule.timeout_ms, MAX_ROWS)
        except RuleRefusedError as e:
            raise _refused(rule, e.reason) from e
        except ConfigError as e:
            raise ConfigError(_("SQL rule {code}: {error}").format(code=rule.code, error=e)
                              ) from e
        found = _breaks(rule, got.columns, got.rows)
        _known(conn, rule, found)
        out += found
    return out


def _known(conn: Connection, rule: SqlRule, found: Sequence[Break]) -> None:
    """Every record a rule's finding names must be one the ledger holds (a finding about no
    record could be neither traced nor exported to a supervisor)."""
    ids = sorted({r for b in found for r in b.records})
    r = t.records.c
    held = {str(x[0]) for x in Store.select_by_ids(conn, r.record_id, ids, (r.record_id,))}
    missing = [i for i in ids if i not in held]
    if missing:
        raise _refused(rule, _("it names {record}, which is no record of the ledger").format(
            record=repr(missing[0])))


def _refused(rule: SqlRule, reason: str) -> SqlRuleError:
    return SqlRuleError(_("SQL rule {code} ({description}) was refused: {reason}; the run "
                          "stopped and wrote nothing").format(
        code=rule.code, description=rule.description, reason=reason))


def _breaks(rule: SqlRule, columns: list[str], rows: list[dict[str, Any]]) -> list[Break]:
    names = [c.lower() for c in columns]
    if "record_id" not in names:
        raise _refused(rule, _("its query returns no record_id column (columns: {columns})")
                       .format(columns=", ".join(columns) or "-"))
    extra = [c for c in columns if c.lower() not in COLUMNS]
    if extra or len(set(names)) != len(names):
        raise _refused(rule, _("its query returns the columns {columns}; allowed are {allowed}, "
                               "each once").format(columns=", ".join(columns),
                                                   allowed=", ".join(COLUMNS)))
    if len(rows) > MAX_ROWS:
        raise _refused(rule, _("its query returns more than {n} rows").format(n=MAX_ROWS))
    return [_break(rule, {k.lower(): v for k, v in row.items()}, i + 1)
            for i, row in enumerate(rows)]


def _text(rule: SqlRule, row: dict[str, Any], name: str, n: int, most: int) -> str | None:
    v = row.get(name)
    if v is None:
        return None
    if not isinstance(v, str) or not 0 < len(v) <= most or not v.isprintable():
        raise _refused(rule, _("row {n}: {column} must be a text of 1 to {most} printable "
                               "characters, not {value}").format(
            n=n, column=name, most=most, value=repr(v)[:80]))
    return v


def _break(rule: SqlRule, row: dict[str, Any], n: int) -> Break:
    rid = _text(rule, row, "record_id", n, 128)
    if rid is None:
        raise _refused(rule, _("row {n}: record_id is empty").format(n=n))
    related = _text(rule, row, "related_ids", n, 4000)
    others = sorted({x.strip() for x in (related or "").split(",") if x.strip()} - {rid})
    if any(len(x) > 128 for x in others):
        raise _refused(rule, _("row {n}: related_ids names an id longer than 128 characters")
                       .format(n=n))
    amount = row.get("amount_fen")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)
                               or abs(amount) >= 10**17):
        raise _refused(rule, _("row {n}: amount_fen must be a whole number of fen, not {value}")
                       .format(n=n, value=repr(amount)[:80]))
    fld = _text(rule, row, "field", n, 64) or "record"
    detail = _text(rule, row, "detail", n, 500)
    message = (msg(N_("{description} (record {record}): {detail}"),
                   description=rule.description, record=rid, detail=detail)
               if detail is not None else
               msg(N_("{description} (record {record})"), description=rule.description,
                   record=rid))
    amounts = {} if amount is None else {"amount": amount}
    return Break.make(rule.code, (rid, *others), amounts, fld, message,
                      0 if amount is None else abs(amount), severity=rule.severity)


# -- severity for the workflow -----------------------------------------------------------------

_RANK: dict[str, int] = {"low": 0, "medium": 1, "high": 2}


def recorded_severity(conn: Connection, code: str) -> Severity:
    """The severity of an agency's own rule's code for four-eyes: the *highest* that any
    ``control.rules`` record of the ledger gives it (``high`` when none does). The rules
    file decides it and the ledger records it (FORMAT.md §2.5); a later file may raise it
    but never lower it: an officer who edits the file cannot spare a break the second
    person (ADR 0036). Records bfa did not write are ignored (``bfa verify`` names them)."""
    best: Severity | None = None
    for seq, record in control_records(conn, "rules"):
        if rules_record_problem(seq, record) is not None:
            continue
        for r in (record.get("rules") or {}).get("sql_rules") or ():
            if isinstance(r, dict) and r.get("code") == code and r.get("severity") in _RANK:
                sev: Severity = r["severity"]
                if best is None or _RANK[sev] > _RANK[best]:
                    best = sev
    return best or "high"


__all__ = [
    "CODE_PATTERN",
    "COLUMNS",
    "CUSTOM_PREFIX",
    "MAX_ROWS",
    "SqlRule",
    "SqlRuleError",
    "query_problem",
    "recorded_severity",
    "run_sql_rules",
]
