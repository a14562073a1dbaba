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
"""

from __future__ import annotations

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
BEGIN
  -- one SELECT, wrapped: a row of NULLs (bfa_row_ NULL) when the query returns none, so
  -- that the caller learns its columns either way
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


__all__ = ["RULE_ROWS_FUNCTION", "RULE_VIEWS", "rules_role", "rules_role_sql", "view_ddl"]
