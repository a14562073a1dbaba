"""Agencies' own rules as SQL: what a rule is, the sandbox it runs in, and its breaks.

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

The sandbox, per backend (FORMAT.md §8.6):

- **PostgreSQL**: the query runs through ``bfa_rule_rows`` (revision 0019), a ``SECURITY
  DEFINER`` function owned by the rules role ``bfa_rules_<database>``, which holds
  ``SELECT`` on the views alone. Inside a savepoint of the run's transaction the session
  sets ``transaction_read_only`` and ``statement_timeout``; the savepoint is rolled back
  after the rule, whatever it did, and session-level advisory locks it took are released.
  Inside such a function PostgreSQL refuses ``SET ROLE``, so the rule cannot take the
  session's own, stronger roles.
- **SQLite**: the run's connection gets an authorizer that allows ``SELECT``, reads of the
  views' columns and, through a view, exactly the table columns the view reads (learnt by
  preparing each view), recursive CTEs and the functions of :data:`SQLITE_FUNCTIONS`, and
  denies everything else (writes, ``PRAGMA``, ``ATTACH``, transactions, any other table:
  the entries, the vault, the schema); a progress handler stops it at its time limit and
  the longest text or blob it may build is 1 MB. All three are removed afterwards.

A rule refused at run time (it writes, reads elsewhere, runs too long, returns columns
other than those above, or more than :data:`MAX_ROWS` rows) stops the run with an
:class:`SqlRuleError` naming the rule (exit 2): the run's transaction is rolled back, so
nothing of it is written.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from ledger import RULE_VIEWS, ConfigError, InputError, control_records
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

SQLITE_FUNCTIONS = frozenset({
    "abs", "avg", "char", "coalesce", "concat", "concat_ws", "count", "cume_dist", "date",
    "datetime", "dense_rank", "first_value", "format", "glob", "group_concat", "hex",
    "ifnull", "iif", "instr", "julianday", "lag", "last_value", "lead", "length", "like",
    "lower", "ltrim", "max", "min", "nth_value", "ntile", "nullif", "percent_rank", "printf",
    "quote", "rank", "replace", "round", "row_number", "rtrim", "sign", "strftime",
    "string_agg", "substr", "substring", "sum", "time", "total", "trim", "typeof", "unicode",
    "unixepoch", "upper",
})
"""Functions a rule may call on SQLite (scalar, aggregate, window); any other is refused."""

MAX_TEXT = 1_000_000
"""SQLite: the longest text or blob a rule may build (``SQLITE_LIMIT_LENGTH``)."""


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


_COMMENT = re.compile(r"\s+|--[^\n]*(\n|$)|/\*.*?\*/", re.S)


def query_problem(query: str) -> str | None:
    """Why ``query`` cannot be a rule's query (checked when the file is read), or None: it
    must be one ``SELECT`` (``WITH … SELECT``) statement. What it reads is decided when it
    runs, by the sandbox."""
    body = query.strip().rstrip(";").rstrip()
    pos = 0
    while m := _COMMENT.match(body, pos):
        if m.end() == pos:
            break
        pos = m.end()
    first = re.match(r"[A-Za-z]+", body[pos:])
    if first is None or first.group(0).upper() not in ("SELECT", "WITH"):
        return _("it must be one SELECT statement (or WITH … SELECT)")
    if "\x00" in body:
        return _("it holds a NUL character")
    return None


def query_text(rule: SqlRule) -> str:
    """The query as it is run: without a trailing semicolon."""
    return rule.query.strip().rstrip(";").rstrip()


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
        if conn.dialect.name == "postgresql":
            columns, rows = _pg_rows(conn, rule)
        else:
            columns, rows = _sqlite_rows(conn, rule)
        out += _breaks(rule, columns, rows)
    return out


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


# -- PostgreSQL ------------------------------------------------------------------------------

_ROW_MARK = "bfa_row_"


def _pg_rows(conn: Connection, rule: SqlRule) -> tuple[list[str], list[dict[str, Any]]]:
    there = conn.exec_driver_sql(
        "SELECT to_regprocedure('public.bfa_rule_rows(text, integer)') IS NOT NULL").scalar()
    if not there:
        raise ConfigError(_("SQL rule {code}: this database has no rules role yet; the owner "
                            "of the ledger tables runs 'bfa db grant' (or 'bfa init' as a role "
                            "that may create roles) to make it").format(code=rule.code))
    sp = conn.begin_nested()
    try:
        conn.exec_driver_sql("SET LOCAL transaction_read_only = on")
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(rule.timeout_ms)}")
        got = conn.execute(text("SELECT r FROM public.bfa_rule_rows(:q, :n) AS r"),
                           {"q": query_text(rule), "n": MAX_ROWS + 1}).scalars().all()
        conn.exec_driver_sql("SELECT pg_advisory_unlock_all()")
    except DBAPIError as e:
        sp.rollback()
        raise _refused(rule, _pg_reason(rule, e)) from e
    sp.rollback()  # undoes the settings above, and anything the rule might have done
    columns: list[str] = []
    rows: list[dict[str, Any]] = []
    for r in got:
        if not isinstance(r, dict):
            continue
        columns = [k for k in r if k != _ROW_MARK]
        if r.get(_ROW_MARK) is True:
            rows.append({k: v for k, v in r.items() if k != _ROW_MARK})
    return columns, rows


def _pg_reason(rule: SqlRule, e: DBAPIError) -> str:
    state = getattr(e.orig, "sqlstate", None)
    diag = getattr(e.orig, "diag", None)
    detail = str(getattr(diag, "message_primary", None) or e.orig).strip().splitlines()[0]
    if state == "57014":
        return _("it ran longer than its time limit of {ms} ms").format(ms=rule.timeout_ms)
    if state == "25006" or (state == "0A000" and "data-modifying" in detail):
        return _("it tries to write ({error})").format(error=detail)
    if state == "42601" and query_problem(rule.query) is not None:  # not a SELECT at all
        return query_problem(rule.query) or detail
    if state == "42501":
        return _("it reaches beyond the rule views ({error})").format(error=detail)
    return _("the database refused it ({error})").format(error=detail)


# -- SQLite ----------------------------------------------------------------------------------

_ACTIONS = {
    sqlite3.SQLITE_INSERT: "INSERT", sqlite3.SQLITE_UPDATE: "UPDATE",
    sqlite3.SQLITE_DELETE: "DELETE", sqlite3.SQLITE_PRAGMA: "PRAGMA",
    sqlite3.SQLITE_ATTACH: "ATTACH", sqlite3.SQLITE_DETACH: "DETACH",
    sqlite3.SQLITE_TRANSACTION: "a transaction", sqlite3.SQLITE_SAVEPOINT: "a savepoint",
}


@dataclass
class _Sandbox:
    """The SQLite authorizer and progress handler of one rule."""

    reads: frozenset[tuple[str, str, str]]
    """``(table, column, view)``: what preparing each view reads."""
    deadline: float
    denied: str | None = None
    timed_out: bool = False
    learnt: set[tuple[str, str, str]] = field(default_factory=set)

    def authorize(self, action: int, a: str | None, b: str | None, db: str | None,
                  inner: str | None) -> int:
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ and db == "main":
            if a in RULE_VIEWS:  # a view's own column (``inner``: the CTE reading it)
                return sqlite3.SQLITE_OK
            if inner is not None and (a or "", b or "", inner) in self.reads:
                return sqlite3.SQLITE_OK
            self._deny(_("it reads {table}, which is not a rule view").format(table=a))
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION and (b or "").lower() in SQLITE_FUNCTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            self._deny(_("it calls the function {name}, which rules may not use").format(
                name=b))
        elif action == sqlite3.SQLITE_READ and db not in (None, "main"):
            self._deny(_("it reads {table} of another database").format(table=a))
        elif action == sqlite3.SQLITE_READ:
            self._deny(_("it reads {table}, which is not a rule view").format(table=a))
        elif a in ("sqlite_master", "sqlite_temp_master"):  # a virtual table's set-up
            self._deny(_("it uses a table-valued function or virtual table, which rules may "
                         "not"))
        elif action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE):
            self._deny(_("it tries to write ({what} {table})").format(
                what=_ACTIONS[action], table=a))
        else:
            self._deny(_("it uses {what}, which rules may not").format(
                what=_ACTIONS.get(action, f"action {action}")))
        return sqlite3.SQLITE_DENY

    def _deny(self, why: str) -> None:
        if self.denied is None:
            self.denied = why

    def tick(self) -> int:
        if time.monotonic() > self.deadline:
            self.timed_out = True
            return 1
        return 0

    def learn(self, action: int, a: str | None, b: str | None, db: str | None,
              inner: str | None) -> int:
        if action == sqlite3.SQLITE_READ and inner is not None:
            self.learnt.add((a or "", b or "", inner))
        return sqlite3.SQLITE_OK


def _raw(conn: Connection) -> sqlite3.Connection:
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    return raw


@contextmanager
def _sandboxed(raw: sqlite3.Connection, box: _Sandbox) -> Iterator[None]:
    raw.set_authorizer(box.authorize)
    raw.set_progress_handler(box.tick, 1000)
    old = raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_TEXT)
    try:
        yield
    finally:
        raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, old)
        raw.set_progress_handler(None, 0)
        raw.set_authorizer(None)


def view_reads(raw: sqlite3.Connection) -> frozenset[tuple[str, str, str]]:
    """What reading each rule view reads, as SQLite's authorizer reports it."""
    box = _Sandbox(frozenset(), 0.0)
    raw.set_authorizer(box.learn)
    try:
        for name in RULE_VIEWS:
            raw.execute(f"SELECT * FROM {name} LIMIT 0").close()
    finally:
        raw.set_authorizer(None)
    return frozenset(x for x in box.learnt if x[2] in RULE_VIEWS)


def _sqlite_rows(conn: Connection, rule: SqlRule) -> tuple[list[str], list[dict[str, Any]]]:
    raw = _raw(conn)
    box = _Sandbox(view_reads(raw), time.monotonic() + rule.timeout_ms / 1000)
    try:
        with _sandboxed(raw, box):
            cur = raw.execute(query_text(rule))
            try:
                columns = [str(d[0]) for d in cur.description or ()]
                got = cur.fetchmany(MAX_ROWS + 1)
            finally:
                cur.close()
    except (sqlite3.Error, sqlite3.Warning) as e:
        if box.timed_out:
            reason = _("it ran longer than its time limit of {ms} ms").format(
                ms=rule.timeout_ms)
        elif box.denied is not None:
            reason = box.denied
        else:
            reason = _("the database refused it ({error})").format(error=e)
        raise _refused(rule, reason) from e
    return columns, [dict(zip(columns, r, strict=True)) for r in got]


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
    "SQLITE_FUNCTIONS",
    "SqlRule",
    "SqlRuleError",
    "query_problem",
    "recorded_severity",
    "run_sql_rules",
    "view_reads",
]
