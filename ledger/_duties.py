"""Duties: who may do what to the ledger, and the PostgreSQL grants that enforce it.

A *duty* is a post of the internal control (FORMAT.md §8.3): an **officer** ingests
records and works breaks; an **approver** approves resolutions (four-eyes); an
**auditor** reads everything but clear personal data; a **privacy** officer reveals,
forgets and discloses personal data; the **service** account runs the nightly and signs
checkpoints. On PostgreSQL each duty is a group role ``bfa_<duty>`` (NOLOGIN) holding
exactly the table rights the duty needs, and each person's login role is made a member
of the duties they hold (``bfa db grant ROLE --duty D``). Table rights alone cannot tell
an approval from an assignment (both append a ``control.break`` entry), so a statement
trigger on ``entries`` (revision 0012, :data:`ENTRY_DUTY_SQL`) checks what each inserted
control entry is, and that its ``user`` is the session's role. SQLite has no roles: there
the operating-system account that may write the file holds every duty.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

from sqlalchemy import Connection, text

from ledger._errors import ConfigError

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


def duty_role(duty: Duty) -> str:
    """The group role of ``duty``: ``bfa_<duty>``."""
    return f"bfa_{duty}"


def _quoted(duty: Duty) -> str:
    return '"' + duty_role(duty) + '"'


def check_role_name(role: str) -> str:
    """``role`` if it is letters, digits and underscores (it is quoted into SQL)."""
    if not role or not role.replace("_", "").isalnum() or not role.isascii():
        raise ConfigError(f"role name {role!r} must be letters, digits and underscores")
    return role


def _duty_rights(duty: Duty, working: Sequence[str]) -> list[str]:
    """The table rights of ``duty``'s group role, beyond reading (FORMAT.md §8.3)."""
    r = f'"{duty_role(duty)}"'
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


def duty_sql(working: Sequence[str]) -> list[str]:
    """Statements that create the five duty roles if missing and give each exactly its
    rights: everything the role held is revoked first, then reading (every table but the
    vault) and the duty's own rights are granted. Run on every ``db grant``, so a table
    a migration added is covered from then on."""
    out: list[str] = []
    for duty in DUTIES:
        name = duty_role(duty)
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
            *_duty_rights(duty, working),
        ]
    return out


def grant_sql(role: str, duties: Sequence[Duty], working: Sequence[str]) -> list[str]:
    """The statements of ``bfa db grant ROLE --duty D…``: the duty roles brought up to
    date (:func:`duty_sql`), then everything ``role`` held itself revoked (rights granted
    by hand included) and ``role`` made a member of exactly the duties named."""
    if not duties:
        raise ConfigError("name at least one duty: --duty " + "|".join(DUTIES))
    unknown = sorted(set(duties) - set(DUTIES))
    if unknown:
        raise ConfigError(f"unknown duty {unknown[0]!r}; duties are: {', '.join(DUTIES)}")
    r = f'"{check_role_name(role)}"'
    return [
        *duty_sql(working),
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {r}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {r}",
        f"REVOKE ALL ON SCHEMA public FROM {r}",
        f"REVOKE {', '.join(_quoted(d) for d in DUTIES)} FROM {r}",
        f"GRANT {', '.join(_quoted(d) for d in DUTIES if d in duties)} TO {r}",
    ]


def held_duties(conn: Connection) -> tuple[str, ...]:
    """What the connection's role may do: ``("owner",)`` for the ledger tables' owner (or
    a superuser), else the duties it holds, in the order of :data:`DUTIES`. SQLite has no
    roles: whoever may write the file holds every duty."""
    if conn.dialect.name != "postgresql":
        return DUTIES
    owner = conn.execute(text(
        "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class "
        "WHERE oid = 'entries'::regclass")).scalar_one()
    if owner:
        return ("owner",)
    names = set(conn.execute(text(
        "SELECT rolname FROM pg_roles WHERE rolname = ANY(:names) "
        "AND pg_has_role(current_user, oid, 'USAGE')"),
        {"names": [duty_role(d) for d in DUTIES]}).scalars())
    return tuple(d for d in DUTIES if duty_role(d) in names)


ENTRY_DUTY_SQL = (
    # FORMAT.md §8.3: the duty a control entry needs, and whose name it must carry
    """
CREATE OR REPLACE FUNCTION bfa_has_duty(duties text[]) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE d text;
BEGIN
  FOREACH d IN ARRAY duties LOOP
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'bfa_' || d)
       AND pg_has_role(current_user, 'bfa_' || d, 'USAGE') THEN
      RETURN true;
    END IF;
  END LOOP;
  RETURN false;
END $$
""",
    """
CREATE OR REPLACE FUNCTION bfa_entry_duty() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  rec jsonb;
  need text[];
BEGIN
  -- the tables' owner (and a superuser) may do anything: it could drop this trigger
  IF pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID),
                 'USAGE') THEN
    RETURN NULL;
  END IF;
  IF EXISTS (SELECT FROM new_entries WHERE domain <> 'control')
     AND NOT bfa_has_duty(ARRAY['officer']) THEN
    RAISE EXCEPTION 'bfa: appending records needs the officer duty; role % does not hold it',
      current_user USING ERRCODE = 'insufficient_privilege';
  END IF;
  FOR r IN SELECT seq, kind, leaf FROM new_entries WHERE domain = 'control' LOOP
    rec := convert_from(substring(r.leaf FROM 42), 'UTF8')::jsonb -> 'record';
    IF rec ->> 'user' IS DISTINCT FROM session_user THEN
      RAISE EXCEPTION 'bfa: control entry % names user %, but the session is %',
        r.seq, rec ->> 'user', session_user USING ERRCODE = 'insufficient_privilege';
    END IF;
    need := CASE
      WHEN r.kind = 'ingest' THEN ARRAY['officer']
      WHEN r.kind = 'break' AND rec ->> 'action' = 'approve' THEN ARRAY['approver']
      WHEN r.kind = 'break' THEN ARRAY['officer', 'service']
      WHEN r.kind = 'reconcile' THEN ARRAY['officer', 'service']
      WHEN r.kind IN ('reveal', 'forget', 'disclose', 'compare') THEN ARRAY['privacy']
      ELSE ARRAY[]::text[]
    END;
    IF NOT bfa_has_duty(need) THEN
      RAISE EXCEPTION 'bfa: control.% needs %; role % does not hold it',
        r.kind || coalesce(' ' || (rec ->> 'action'), ''),
        CASE WHEN cardinality(need) = 0 THEN 'the ledger tables'' owner'
             ELSE 'the ' || array_to_string(need, ' or ') || ' duty' END,
        current_user USING ERRCODE = 'insufficient_privilege';
    END IF;
  END LOOP;
  RETURN NULL;
END $$
""",
    "DROP TRIGGER IF EXISTS entries_duty ON entries",
    "CREATE TRIGGER entries_duty AFTER INSERT ON entries REFERENCING NEW TABLE AS "
    "new_entries FOR EACH STATEMENT EXECUTE FUNCTION bfa_entry_duty()",
)
"""Revision 0012 (PostgreSQL): the statement trigger checking control entries' duties."""


__all__ = [
    "DUTIES",
    "DUTY_TEXT",
    "ENTRY_DUTY_SQL",
    "Duty",
    "check_role_name",
    "duty_role",
    "duty_sql",
    "grant_sql",
    "held_duties",
]
