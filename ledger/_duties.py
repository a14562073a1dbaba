"""Duties: who may do what to the ledger, and the PostgreSQL grants that enforce it.

A *duty* is a post of the internal control (FORMAT.md §8.3): an **officer** ingests
records and works breaks; an **approver** approves resolutions (four-eyes); an
**auditor** reads everything but clear personal data; a **privacy** officer reveals,
forgets and discloses personal data; the **service** account runs the nightly and signs
checkpoints. On PostgreSQL each duty is a group role ``bfa_<duty>_<database>`` (NOLOGIN;
roles belong to the whole server, so each ledger's database has its own, :func:`duty_role`)
holding exactly the table rights the duty needs, and each person's login role is made a
member of the duties they hold (``bfa db grant ROLE --duty D``). Table rights alone cannot tell
an approval from an assignment (both append a ``control.break`` entry), so a statement
trigger on ``entries`` (revision 0012, :data:`ENTRY_DUTY_SQL`) checks what each inserted
control entry is, and that its ``user`` is the session's role. SQLite has no roles: there
the operating-system account that may write the file holds every duty.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Literal, get_args

from sqlalchemy import Connection, text

from ledger._errors import ConfigError
from ledger._rule_views import rules_role_sql
from schemas import gettext as _

Duty = Literal["officer", "approver", "auditor", "privacy", "service"]
DUTIES: tuple[Duty, ...] = get_args(Duty)

DUTY_TEXT: dict[Duty, str] = {
    "officer": "ingests records, reconciles and works breaks (assign, resolve, reopen)",
    "approver": "approves resolved breaks (four-eyes)",
    "auditor": "reads and verifies everything except clear personal data",
    "privacy": "reveals, forgets and discloses personal data",
    "service": "runs the nightly: verifies, reconciles and signs checkpoints",
}
"""What each duty is for, as ``bfa db grant --help`` and refusals say it."""

LEDGER_TABLES = ("entries", "tree_nodes", "checkpoints")


def duty_tag(database: str) -> str:
    """What names a database in its duty roles: its name when that is 1–40 of
    ``a-z0-9_``, else ``h`` and 12 hex digits of the MD5 of its UTF-8 name (the SQL
    function ``bfa_duty_role`` computes the same, FORMAT.md §8.3)."""
    if re.fullmatch(r"[a-z0-9_]{1,40}", database):
        return database
    return "h" + hashlib.md5(database.encode()).hexdigest()[:12]


def duty_role(duty: Duty, database: str) -> str:
    """The group role of ``duty`` in the ledger database ``database``:
    ``bfa_<duty>_<tag>``. Roles belong to the whole server; privileges and the trigger
    belong to one database, so each database needs group roles of its own, or a duty
    granted in one ledger would hold in every other on the server."""
    return f"bfa_{duty}_{duty_tag(database)}"


def is_duty_role(role: str) -> bool:
    """Whether ``role`` looks like any ledger's duty role, or its rules role (revision
    0019; a rule would run with the duties granted to it): never granted to directly."""
    return any(role.startswith(f"bfa_{d}_") for d in (*DUTIES, "rules"))


def check_role_name(role: str) -> str:
    """``role`` if it is letters, digits and underscores (it is quoted into SQL)."""
    if not role or not role.replace("_", "").isalnum() or not role.isascii():
        raise ConfigError(_("role name {role} must be letters, digits and underscores").format(
            role=repr(role)))
    return role


def _duty_rights(duty: Duty, working: Sequence[str], database: str) -> list[str]:
    """The table rights of ``duty``'s group role, beyond reading (FORMAT.md §8.3)."""
    r = f'"{duty_role(duty, database)}"'
    tables = ", ".join(working)
    append = f"GRANT INSERT ON entries, tree_nodes TO {r}"
    work = [f"GRANT INSERT, UPDATE, DELETE ON {tables} TO {r}"] if working else []
    meta = f"GRANT INSERT, UPDATE ON meta TO {r}"
    if duty == "officer":
        # a data key is looked up before a new one is made for a person (FORMAT.md §4.4)
        return [append, f"GRANT INSERT ON vault TO {r}",
                f"GRANT SELECT, INSERT ON vault_keys TO {r}", meta, *work]
    if duty == "approver":
        wf = [t for t in working if t.startswith("wf_")]
        return [append, *([f"GRANT INSERT, UPDATE ON {', '.join(wf)} TO {r}"] if wf else [])]
    if duty == "privacy":
        return [append, f"GRANT SELECT, DELETE ON vault, vault_keys TO {r}"]
    if duty == "service":
        return [append, f"GRANT INSERT ON checkpoints TO {r}", meta, *work]
    return []  # auditor: reads only


def duty_sql(working: Sequence[str], database: str) -> list[str]:
    """Statements that create the five duty roles if missing and give each exactly its
    rights: everything the role held is revoked first, then reading (every table but the
    vault) and the duty's own rights are granted. Run on every ``db grant``, so a table
    a migration added is covered from then on. Creating objects in the schema is taken
    from everyone (PostgreSQL before 15 let any role create there): no role but the owner
    may add a function or table the ledger's triggers could meet. Last, the rules role and
    its function are brought up to date (:func:`ledger._rule_views.rules_role_sql`)."""
    out: list[str] = ["REVOKE CREATE ON SCHEMA public FROM PUBLIC"]
    for duty in DUTIES:
        name = duty_role(duty, database)
        r = f'"{name}"'
        out += [
            # created once; two sessions racing to create it both end with it existing
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') "
            f"THEN CREATE ROLE {r} NOLOGIN; END IF; EXCEPTION WHEN duplicate_object OR "
            "unique_violation THEN NULL; END $$",
            f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {r}",
            f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {r}",
            f"GRANT USAGE ON SCHEMA public TO {r}",
            f"GRANT SELECT ON {', '.join((*LEDGER_TABLES, 'meta', 'alembic_version'))} TO {r}",
            *([f"GRANT SELECT ON {', '.join(working)} TO {r}"] if working else []),
            *_duty_rights(duty, working, database),
        ]
    # the role agencies' own SQL rules run as: SELECT on the rule views alone (revision 0019)
    return out + rules_role_sql(duty_tag(database))


def grant_sql(role: str, duties: Sequence[Duty], working: Sequence[str],
              database: str) -> list[str]:
    """The statements of ``bfa db grant ROLE --duty D…``: the duty roles brought up to
    date (:func:`duty_sql`), then everything ``role`` held itself revoked (rights granted
    by hand included) and ``role`` made a member of exactly the duties named."""
    if not duties:
        raise ConfigError(_("name at least one duty: --duty {duties}").format(
            duties="|".join(DUTIES)))
    unknown = sorted(set(duties) - set(DUTIES))
    if unknown:
        raise ConfigError(_("unknown duty {duty}; duties are: {duties}").format(
            duty=repr(unknown[0]), duties=", ".join(DUTIES)))
    r = f'"{check_role_name(role)}"'
    quoted = {d: '"' + duty_role(d, database) + '"' for d in DUTIES}
    return [
        *duty_sql(working, database),
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {r}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {r}",
        f"REVOKE ALL ON SCHEMA public FROM {r}",
        f"REVOKE {', '.join(quoted[d] for d in DUTIES)} FROM {r}",
        f"GRANT {', '.join(quoted[d] for d in DUTIES if d in duties)} TO {r}",
    ]


def held_duties(conn: Connection) -> tuple[str, ...]:
    """What the connection's role may do: ``("owner",)`` for the ledger tables' owner (or
    a superuser), else the duties it holds, in the order of :data:`DUTIES`. SQLite has no
    roles: whoever may write the file holds every duty."""
    return role_duties(conn, None)


def role_duties(conn: Connection, role: str | None) -> tuple[str, ...]:
    """:func:`held_duties` of ``role`` (None: the connection's role)."""
    if conn.dialect.name != "postgresql":
        return DUTIES
    who = {"who": role} if role is not None else {}
    subject = ":who" if role is not None else "current_user"
    owner = conn.execute(text(
        f"SELECT pg_catalog.pg_has_role({subject}, relowner, 'USAGE') FROM pg_catalog.pg_class "
        "WHERE oid = 'entries'::regclass"), who).scalar_one()
    if owner:
        return ("owner",)
    database = str(conn.execute(text("SELECT current_database()")).scalar_one())
    roles = {duty_role(d, database): d for d in DUTIES}
    names = set(conn.execute(text(
        "SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY(:names) "
        f"AND pg_catalog.pg_has_role({subject}, oid, 'USAGE')"),
        {"names": list(roles), **who}).scalars())
    return tuple(d for d in DUTIES if duty_role(d, database) in names)


ENTRY_DUTY_SQL = (
    # FORMAT.md §8.3. Every function fixes its search path (pg_catalog first, the
    # session's temporary schema last) and names catalogue objects with their schema: a
    # role could otherwise shadow pg_class with a temporary table and pass for the owner.
    """
CREATE OR REPLACE FUNCTION bfa_duty_role(d text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT 'bfa_' || d || '_' || CASE
    WHEN current_database() ~ '^[a-z0-9_]{1,40}$' THEN current_database()
    ELSE 'h' || substr(md5(current_database()), 1, 12) END
$$
""",
    """
CREATE OR REPLACE FUNCTION bfa_has_duty(duties text[]) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE d text;
BEGIN
  FOREACH d IN ARRAY duties LOOP
    IF EXISTS (SELECT FROM pg_catalog.pg_roles
               WHERE rolname = public.bfa_duty_role(d)
                 AND pg_catalog.pg_has_role(current_user, oid, 'USAGE')) THEN
      RETURN true;
    END IF;
  END LOOP;
  RETURN false;
END $$
""",
    """
CREATE OR REPLACE FUNCTION bfa_is_owner(rel oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')
  FROM pg_catalog.pg_class c WHERE c.oid = rel
$$
""",
    """
CREATE OR REPLACE FUNCTION bfa_entry_duty() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  rec jsonb;
  kind text;
  need text[];
  lo bigint;
  hi bigint;
  n bigint;
BEGIN
  -- the tables' owner (and a superuser) may do anything: it could drop this trigger
  IF public.bfa_is_owner(TG_RELID) THEN
    RETURN NULL;
  END IF;
  SELECT min(seq), max(seq), count(*) INTO lo, hi, n FROM new_entries;
  IF n = 0 THEN
    RETURN NULL;
  END IF;
  -- entries come in order, right after the last one: none planted ahead, none skipped
  IF hi - lo + 1 <> n
     OR coalesce((SELECT max(seq) FROM public.entries WHERE seq < lo), -1) <> lo - 1
     OR EXISTS (SELECT FROM public.entries WHERE seq > hi) THEN
    RAISE EXCEPTION 'bfa: entries % to % do not follow the ledger''s last entry', lo, hi
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF EXISTS (SELECT FROM new_entries WHERE domain <> 'control') THEN
    IF NOT public.bfa_has_duty(ARRAY['officer']) THEN
      RAISE EXCEPTION 'bfa: appending records needs the officer duty; role % does not hold it',
        current_user USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- a control record under another domain would escape the checks below
    SELECT seq, domain INTO r FROM new_entries WHERE domain <> 'control'
      AND position(convert_to('"type":"control.', 'UTF8') IN leaf) > 0 LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION 'bfa: entry % holds a control record under domain %', r.seq, r.domain
        USING ERRCODE = 'insufficient_privilege';
    END IF;
  END IF;
  FOR r IN SELECT seq, new_entries.kind AS col_kind, leaf FROM new_entries
           WHERE domain = 'control' LOOP
    rec := convert_from(substring(r.leaf FROM 42), 'UTF8')::jsonb -> 'record';
    -- the record's own type decides, not the index column beside it
    kind := CASE WHEN rec ->> 'type' LIKE 'control.%'
                 THEN substring(rec ->> 'type' FROM 9) END;
    IF kind IS DISTINCT FROM r.col_kind THEN
      RAISE EXCEPTION 'bfa: entry % says kind %, but its record is %', r.seq, r.col_kind,
        coalesce(rec ->> 'type', 'untyped') USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF rec ->> 'user' IS DISTINCT FROM session_user THEN
      RAISE EXCEPTION 'bfa: control entry % names user %, but the session is %',
        r.seq, rec ->> 'user', session_user USING ERRCODE = 'insufficient_privilege';
    END IF;
    need := CASE
      WHEN kind = 'ingest' THEN ARRAY['officer']
      WHEN kind = 'break' AND rec ->> 'action' = 'approve' THEN ARRAY['approver']
      -- the service account only reopens a break whose evidence changed (the nightly)
      WHEN kind = 'break' AND rec ->> 'action' = 'reopen' AND rec ? 'previous_evidence'
        THEN ARRAY['officer', 'service']
      WHEN kind = 'break' THEN ARRAY['officer']
      WHEN kind IN ('reconcile', 'rules', 'fixity', 'voucher_check')
        THEN ARRAY['officer', 'service']
      WHEN kind IN ('hold', 'appraisal', 'opening', 'withdrawal', 'precheck')
        THEN ARRAY['officer']
      WHEN kind = 'disposal' AND rec ->> 'action' = 'signoff'
        THEN ARRAY['officer', 'approver']
      WHEN kind = 'disposal' THEN ARRAY['officer']
      WHEN kind IN ('reveal', 'forget', 'disclose', 'compare') THEN ARRAY['privacy']
      ELSE ARRAY[]::text[]
    END;
    IF NOT public.bfa_has_duty(need) THEN
      RAISE EXCEPTION 'bfa: control.% needs %; role % does not hold it',
        kind || coalesce(' ' || (rec ->> 'action'), ''),
        CASE WHEN cardinality(need) = 0 THEN 'the ledger tables'' owner'
             ELSE 'the ' || array_to_string(need, ' or ') || ' duty' END,
        current_user USING ERRCODE = 'insufficient_privilege';
    END IF;
  END LOOP;
  RETURN NULL;
END $$
""",
    """
CREATE OR REPLACE FUNCTION bfa_node_duty() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
  IF public.bfa_is_owner(TG_RELID) THEN
    RETURN NULL;
  END IF;
  -- a node may only cover entries the ledger holds: one planted ahead would block every
  -- later append (tree_nodes is append-only)
  SELECT level, idx INTO r FROM new_nodes
   WHERE (idx + 1)::numeric * power(2::numeric, level)
         > coalesce((SELECT max(seq) FROM public.entries), -1) + 1
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'bfa: tree node (%, %) covers entries the ledger does not hold',
      r.level, r.idx USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NULL;
END $$
""",
    "DROP TRIGGER IF EXISTS entries_duty ON entries",
    "CREATE TRIGGER entries_duty AFTER INSERT ON entries REFERENCING NEW TABLE AS "
    "new_entries FOR EACH STATEMENT EXECUTE FUNCTION bfa_entry_duty()",
    "DROP TRIGGER IF EXISTS tree_nodes_duty ON tree_nodes",
    "CREATE TRIGGER tree_nodes_duty AFTER INSERT ON tree_nodes REFERENCING NEW TABLE AS "
    "new_nodes FOR EACH STATEMENT EXECUTE FUNCTION bfa_node_duty()",
)
"""Revision 0012 (PostgreSQL): the statement triggers checking what a role with a duty
appends (FORMAT.md §8.3)."""


__all__ = [
    "DUTIES",
    "DUTY_TEXT",
    "ENTRY_DUTY_SQL",
    "Duty",
    "check_role_name",
    "duty_role",
    "duty_sql",
    "duty_tag",
    "grant_sql",
    "held_duties",
    "is_duty_role",
    "role_duties",
]
