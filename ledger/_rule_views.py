"""The rule views: what an agency's own SQL rules may read, and the PostgreSQL role they run as.

This module owns the stable, read-only views over the reconciler's derived tables
(``bfa_v_*``, revision ``0019``, docs/RULE-VIEWS.md) and, on PostgreSQL, the statements
that make the rules' sandbox (:func:`rules_role_sql`): a NOLOGIN role
``bfa_rules_<database>`` that holds ``SELECT`` on these views and nothing else, and the
function ``bfa_rule_rows(query, n)`` owned by that role, ``SECURITY DEFINER``, that runs a
rule's query and returns its rows as JSON. No login role is a member of the rules role:
a session reaches it only through the function, inside which PostgreSQL refuses ``SET
ROLE`` (a rule cannot switch to the session's own, stronger roles).

Each view selects documented columns of the *current* records only (a correction's
latest version; withdrawn records never), with pseudonyms where a record holds personal
data (the vault is never joined) and flags as integers 0/1, so that one query reads the
same on SQLite and PostgreSQL. A view's columns only ever grow: a rule written against
them keeps working (FORMAT.md §8.6).

It also owns the sandbox a rule's query runs in (:func:`run_rule_query`; what the rule
means, its columns and breaks, is the reconciler's, ``reconcile/matching/_custom.py``):

- **PostgreSQL**: the query runs through ``bfa_rule_rows``. Inside a savepoint of the
  caller's transaction the session sets ``transaction_read_only`` and
  ``statement_timeout``; the savepoint is rolled back after the query, whatever it did,
  and session-level advisory locks it took are released.
- **SQLite**: the caller's connection gets an authorizer that allows ``SELECT``, reads of
  the views' columns and, through a view, exactly the table columns the view reads
  (learnt by preparing each view: a CTE named like a view is reported as the view),
  recursive CTEs and the functions of :data:`SQLITE_FUNCTIONS`, and denies everything
  else (writes, ``PRAGMA``, ``ATTACH``, transactions, any other table: the entries, the
  vault, the schema); a progress handler stops it at its time limit and the longest
  text or blob it may build is :data:`MAX_TEXT`. All three are removed afterwards.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from ledger._errors import ConfigError, InputError
from schemas import gettext as _

RULE_VIEWS: dict[str, str] = {
    "bfa_v_records": (
        "SELECT r.record_id, r.domain, r.kind, r.region, r.occurred_at, r.occurred_day, "
        "r.corrects FROM rc_records r WHERE NOT r.superseded"),
    "bfa_v_events": (
        "SELECT e.record_id, e.kind, e.region, e.amount_fen, e.due_day, e.party, e.person, "
        "e.account, e.insurance, e.period, e.benefit, e.other_region, r.occurred_at, "
        "r.occurred_day FROM rc_events e JOIN rc_records r ON r.seq = e.seq "
        "WHERE NOT e.superseded"),
    "bfa_v_movements": (
        "SELECT m.record_id, m.kind, r.region, m.settles, m.amount_fen, m.value_day, "
        "m.value_month, m.bank_ref, m.payer, m.payee_account, m.fund_account, "
        "m.from_account, m.to_account, m.to_region, m.returns, "
        "CASE WHEN m.allocated THEN 1 ELSE 0 END AS allocated, m.allocated_fen, "
        "r.occurred_at, r.occurred_day FROM rc_movements m JOIN rc_records r ON r.seq = m.seq "
        "WHERE NOT m.superseded"),
    "bfa_v_allocations": (
        "SELECT a.movement_id, a.pos, a.event_id, a.amount_fen, a.kind, a.value_day "
        "FROM rc_allocations a WHERE NOT a.superseded"),
    "bfa_v_vouchers": (
        "SELECT v.record_id, v.kind, r.region, v.amount_fen, v.n_refs, r.occurred_at, "
        "r.occurred_day FROM rc_vouchers v JOIN rc_records r ON r.seq = v.seq "
        "WHERE NOT v.superseded"),
    "bfa_v_voucher_refs": (
        "SELECT x.voucher_id, x.ref_id FROM rc_voucher_refs x "
        "JOIN rc_vouchers v ON v.seq = x.voucher_seq WHERE NOT v.superseded"),
    "bfa_v_person_events": (
        "SELECT p.record_id, p.kind, p.region, p.person, p.insurance, p.account, p.period, "
        "p.effective_day, p.amount_fen, p.occurred_day FROM rc_person_events p "
        "WHERE NOT p.superseded"),
}
"""View name -> its ``SELECT`` (the same text on both backends)."""


def view_ddl() -> list[str]:
    """``CREATE VIEW`` of every rule view, each after dropping an older one."""
    out: list[str] = []
    for name, body in RULE_VIEWS.items():
        out += [f"DROP VIEW IF EXISTS {name}", f"CREATE VIEW {name} AS {body}"]
    return out


def rules_role(tag: str) -> str:
    """The rules role of the database whose duty tag is ``tag``
    (:func:`ledger._duties.duty_tag`): ``bfa_rules_<tag>``."""
    return f"bfa_rules_{tag}"


RULE_ROWS_FUNCTION = "bfa_rule_rows"
"""The function a rule runs through (PostgreSQL)."""

_FUNCTION = r"""
CREATE OR REPLACE FUNCTION public.bfa_rule_rows(q text, n integer) RETURNS SETOF jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE c refcursor;
BEGIN
  -- the query on its own must be exactly one complete SELECT (a cursor takes no other),
  -- so that no text of it can close the wrapping below and start a statement of its own
  OPEN c FOR EXECUTE q;
  CLOSE c;
  -- wrapped: a row of NULLs (bfa_row_ NULL) when the query returns none, so that the
  -- caller learns its columns either way
  RETURN QUERY EXECUTE 'SELECT pg_catalog.to_jsonb(x) FROM (SELECT r.* FROM (SELECT 1) '
    || 'AS bfa_one LEFT JOIN LATERAL (SELECT q.*, true AS bfa_row_ FROM (' || q
    || E'\n) AS q) AS r ON true LIMIT ' || n::text || ') AS x';
END $fn$
"""


def rules_role_sql(tag: str) -> list[str]:
    """Statements (PostgreSQL) that create the rules role of the database tagged ``tag`` if
    missing, leave it exactly ``SELECT`` on the rule views, and (re)create
    ``bfa_rule_rows`` owned by it. Run by the owner (or a superuser) with the right to
    create roles: by revision 0019 when it can, and by every ``bfa db grant``. The owner
    is a member of the rules role only while it hands the function over; ``EXECUTE`` is
    the owner's and the officer's and service duties' (those that exist)."""
    role = rules_role(tag)
    r = f'"{role}"'
    views = ", ".join(RULE_VIEWS)
    return [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
        f"THEN CREATE ROLE {r} NOLOGIN; END IF; EXCEPTION WHEN duplicate_object OR "
        "unique_violation THEN NULL; END $$",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {r}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {r}",
        f"GRANT USAGE ON SCHEMA public TO {r}",
        f"GRANT SELECT ON {views} TO {r}",
        # the owner becomes a member for the hand-over only (a superuser needs not)
        "DO $$ BEGIN IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
        f"THEN EXECUTE 'GRANT {r} TO ' || quote_ident(current_user); END IF; END $$",
        f"GRANT CREATE ON SCHEMA public TO {r}",
        _FUNCTION,
        f"ALTER FUNCTION public.bfa_rule_rows(text, integer) OWNER TO {r}",
        f"REVOKE CREATE ON SCHEMA public FROM {r}",
        "REVOKE ALL ON FUNCTION public.bfa_rule_rows(text, integer) FROM PUBLIC",
        "DO $$ BEGIN EXECUTE 'GRANT EXECUTE ON FUNCTION public.bfa_rule_rows(text, integer) "
        "TO ' || quote_ident(current_user); END $$",
        "DO $$ DECLARE d text; BEGIN FOREACH d IN ARRAY ARRAY['officer', 'service'] LOOP "
        f"IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'bfa_' || d || '_{tag}') THEN "
        "EXECUTE 'GRANT EXECUTE ON FUNCTION public.bfa_rule_rows(text, integer) TO ' || "
        f"quote_ident('bfa_' || d || '_{tag}'); END IF; END LOOP; END $$",
        "DO $$ BEGIN IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
        f"THEN EXECUTE 'REVOKE {r} FROM ' || quote_ident(current_user); END IF; END $$",
    ]




# -- running a rule's query in the sandbox ---------------------------------------------------

class RuleRefusedError(InputError):
    """A rule's query was refused by the sandbox; ``reason`` says why (translated)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RuleRows:
    """What a rule's query returned: its column names (as the database names them) and
    its rows (at most ``n`` + 1 of them, as :func:`run_rule_query` was asked)."""

    columns: list[str]
    rows: list[dict[str, Any]]


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
    if _SHADOW.search(body):
        return _("it defines a common table expression named like a rule view (bfa_v_…); "
                 "name it otherwise")
    if _ROW_MARK in body.lower():
        return _("it names {name}, which bfa keeps for itself").format(name=_ROW_MARK)
    return None


_SHADOW = re.compile(r"""["`\[]?\bbfa_v_\w*["`\]]?\s*(\([^()]*\))?\s*as\s*(not\s+)?"""
                     r"""(materialized\s*)?\(""", re.I)
"""A CTE named like a view (``WITH bfa_v_events AS (…)``): on SQLite it would read the
derived tables through the view's own rights, superseded rows included."""


def run_rule_query(conn: Connection, query: str, timeout_ms: int, n: int) -> RuleRows:
    """Run one rule's query in the sandbox of the connection's backend (module docstring),
    inside the caller's transaction, leaving the connection as it was.

    Args:
        conn: the run's connection (its writer transaction).
        query: one ``SELECT`` over the rule views; a trailing ``;`` is dropped.
        timeout_ms: the time limit.
        n: rows wanted; at most ``n + 1`` are read (so the caller can tell "too many").

    Raises:
        RuleRefusedError: the query writes, reads beyond the views, runs too long, or the
            database refuses it otherwise.
        ConfigError: PostgreSQL without ``bfa_rule_rows`` (``bfa db grant`` makes it).
    """
    text_ = query.strip().rstrip(";").rstrip()
    why = query_problem(text_)  # checked when the file was read; a rule built otherwise too
    if why is not None:
        raise RuleRefusedError(why)
    if conn.dialect.name == "postgresql":
        return _pg_rows(conn, text_, timeout_ms, n)
    return _sqlite_rows(conn, text_, timeout_ms, n)


def _too_long(timeout_ms: int) -> str:
    return _("it ran longer than its time limit of {ms} ms").format(ms=timeout_ms)


# -- PostgreSQL ------------------------------------------------------------------------------

_ROW_MARK = "bfa_row_"


def _pg_rows(conn: Connection, query: str, timeout_ms: int, n: int) -> RuleRows:
    there = conn.exec_driver_sql(
        "SELECT to_regprocedure('public.bfa_rule_rows(text, integer)') IS NOT NULL").scalar()
    if not there:
        raise ConfigError(_("this database has no rules role yet, which SQL rules run as; the "
                            "owner of the ledger tables runs 'bfa db grant' (or 'bfa init' as a "
                            "role that may create roles) to make it"))
    sp = conn.begin_nested()
    try:
        conn.exec_driver_sql("SET LOCAL transaction_read_only = on")
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
        got = conn.execute(text("SELECT r FROM public.bfa_rule_rows(:q, :n) AS r"),
                           {"q": query, "n": n + 1}).scalars().all()
        conn.exec_driver_sql("SELECT pg_advisory_unlock_all()")
    except DBAPIError as e:
        sp.rollback()
        raise RuleRefusedError(_pg_reason(query, timeout_ms, e)) from e
    sp.rollback()  # undoes the settings above, and anything the query might have done
    columns: list[str] = []
    rows: list[dict[str, Any]] = []
    for r in got:
        if not isinstance(r, dict):
            continue
        columns = [k for k in r if k != _ROW_MARK]
        if r.get(_ROW_MARK) is True:
            rows.append({k: v for k, v in r.items() if k != _ROW_MARK})
    return RuleRows(columns, rows)


def _pg_reason(query: str, timeout_ms: int, e: DBAPIError) -> str:
    state = getattr(e.orig, "sqlstate", None)
    diag = getattr(e.orig, "diag", None)
    detail = str(getattr(diag, "message_primary", None) or e.orig).strip().splitlines()[0]
    if state == "57014":
        return _too_long(timeout_ms)
    if state == "42601" and query_problem(query) is not None:  # not a SELECT at all
        return query_problem(query) or detail
    if state == "42P11":  # a cursor refused it: several statements, or not a SELECT
        return _("it must be one SELECT statement (or WITH … SELECT)") + f" ({detail})"
    if state == "25006" or (state == "0A000" and ("data-modifying" in detail
                                                  or "non-volatile" in detail)):
        return _("it tries to write ({error})").format(error=detail)
    if state == "42501":
        return _("it reaches beyond the rule views ({error})").format(error=detail)
    return _("the database refused it ({error})").format(error=detail)


# -- SQLite ----------------------------------------------------------------------------------

SQLITE_FUNCTIONS = frozenset({
    "abs", "avg", "char", "coalesce", "concat", "concat_ws", "count", "cume_dist", "date",
    "datetime", "dense_rank", "first_value", "glob", "group_concat", "hex",
    "ifnull", "iif", "instr", "julianday", "lag", "last_value", "lead", "length", "like",
    "lower", "ltrim", "max", "min", "nth_value", "ntile", "nullif", "percent_rank",
    "quote", "rank", "replace", "round", "row_number", "rtrim", "sign", "strftime",
    "string_agg", "substr", "substring", "sum", "time", "total", "trim", "typeof", "unicode",
    "unixepoch", "upper",
})
"""Functions a rule may call on SQLite (scalar, aggregate, date, window); any other is
refused. Not ``printf``/``format``: one call can build a string of any width inside one
step, where the time limit cannot stop it."""

MAX_TEXT = 1_000_000
"""SQLite: the longest text or blob a rule may build (``SQLITE_LIMIT_LENGTH``)."""

MAX_PATTERN = 200
"""SQLite: the longest LIKE or GLOB pattern (``SQLITE_LIMIT_LIKE_PATTERN_LENGTH``)."""

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
    # a LIKE or GLOB pattern is matched inside one call, where the time limit cannot stop
    # it: its length is capped (SQLite's own limit is 50,000)
    old_like = raw.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, MAX_PATTERN)
    try:
        yield
    finally:
        raw.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, old_like)
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


def _sqlite_rows(conn: Connection, query: str, timeout_ms: int, n: int) -> RuleRows:
    raw = _raw(conn)
    box = _Sandbox(view_reads(raw), time.monotonic() + timeout_ms / 1000)
    try:
        with _sandboxed(raw, box):
            cur = raw.execute(query)
            try:
                columns = [str(d[0]) for d in cur.description or ()]
                got = cur.fetchmany(n + 1)
            finally:
                cur.close()
    except (sqlite3.Error, sqlite3.Warning) as e:
        if box.timed_out:
            reason = _too_long(timeout_ms)
        elif box.denied is not None:
            reason = box.denied
        else:
            reason = _("the database refused it ({error})").format(error=e)
        raise RuleRefusedError(reason) from e
    return RuleRows(columns, [dict(zip(columns, r, strict=True)) for r in got])


__all__ = [
    "RULE_ROWS_FUNCTION",
    "RULE_VIEWS",
    "SQLITE_FUNCTIONS",
    "RuleRefusedError",
    "RuleRows",
    "query_problem",
    "rules_role",
    "rules_role_sql",
    "run_rule_query",
    "view_ddl",
    "view_reads",
]
