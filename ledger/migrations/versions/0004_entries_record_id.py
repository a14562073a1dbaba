"""Index entries by record id alone: ``bfa show``, ``prove`` and ``trace`` look records up
by id without knowing the domain, and the unique (domain, record_id) index cannot serve
that. Without it a lookup scans the ledger (measured: 41 ms on PostgreSQL, 235 ms on
SQLite at 1M entries).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_entries_record_id", "entries", ["record_id"])


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
