"""Duties on PostgreSQL: a statement trigger checks every inserted control entry.

Table rights cannot tell an approval from an assignment (both append a ``control.break``
entry), nor stop a role from appending a control entry in someone else's name. The
trigger ``entries_duty`` (AFTER INSERT, once per statement, over the statement's new
rows) lets the tables' owner do anything and otherwise requires the ``officer`` duty for
records, and for each control entry that its ``user`` is the session's role and that the
role holds the duty its kind needs (``ledger/_duties.py``, FORMAT.md §8.3). Records are
checked by their ``domain`` column only, without parsing their leaves, so an ingest pays
one scan of its new rows; a row whose column disagrees with its leaf is one no control
logic reads as a control entry (they look control entries up by that column and check
the leaf), and a full ``bfa verify`` reports it. SQLite has no roles: nothing to install.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

from ledger._duties import ENTRY_DUTY_SQL

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for stmt in ENTRY_DUTY_SQL:
        op.execute(stmt)


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
