"""Rule views: what an agency's own SQL rules may read (docs/RULE-VIEWS.md, FORMAT.md §8.6).

Creates the read-only views ``bfa_v_records``, ``bfa_v_events``, ``bfa_v_movements``,
``bfa_v_allocations``, ``bfa_v_vouchers``, ``bfa_v_voucher_refs`` and
``bfa_v_person_events`` over the current rows of the derived tables (pseudonyms only; the
vault and the entries are never read). On PostgreSQL, when the migrating role may create
roles (a superuser, or ``CREATEROLE``), it also creates the rules role
``bfa_rules_<database>`` with ``SELECT`` on these views alone and the function
``bfa_rule_rows`` that runs a rule as that role; otherwise ``bfa db grant`` does it. The
derived tables keep their rows: nothing needs deriving again.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from ledger._duties import duty_tag
from ledger._rule_views import rules_role_sql, view_ddl

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for stmt in view_ddl():
        op.execute(stmt)
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    may = bind.exec_driver_sql(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user").scalar()
    if may:
        tag = duty_tag(str(bind.exec_driver_sql("SELECT current_database()").scalar_one()))
        for stmt in rules_role_sql(tag):
            op.execute(stmt)


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
