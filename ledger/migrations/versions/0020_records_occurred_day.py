"""Reconciler: an index on ``rc_records.occurred_day`` (the as-of cut-off, FORMAT.md §10.2).

Every run counts the current records that occurred after its as-of day, and a nightly run
did it by reading every derived record (a third of a second at three million records, a
fixed cost of every night). With this index the count reads only the records after the
day. The derived tables keep their rows: nothing needs deriving again.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS ix_rc_records_occurred_day "
               "ON rc_records (occurred_day)")


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
