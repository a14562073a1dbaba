"""Index the ledger's own records (domain ``control``) by kind and ``seq``.

The access audit lists reveals, forgets and grants; the workflow's full replay reads every
``control.break`` entry. Both found them by scanning the whole ledger; a partial index
holds only the control rows, a few per day, so keeping it costs an ingest nothing.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # only if missing: tests roll the reconciler's revision back and upgrade again
    if "ix_entries_control" in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes(
            "entries")}:
        return
    where = sa.text("domain = 'control'")
    op.create_index("ix_entries_control", "entries", ["kind", "seq"],
                    postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
