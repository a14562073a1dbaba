"""Break workflow working tables (``wf_*``, owned by ``reconcile/workflow/_workflow.py``).

``wf_break_state`` holds the current state of every break the reconciler has
reported (status, assignee, resolution) and a snapshot of the break itself;
``wf_break_records`` lists the interchange ids each break names (for ``bfa trace``).
They are *working* tables: the authoritative history is the ``control.break``
entries in the ledger, appended in the same transaction as every change here, and
``reconcile.replay_states`` rebuilds the states from those entries alone.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wf_break_state",
        sa.Column("break_id", sa.String(40), nullable=False),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("records", sa.Text, nullable=False),
        sa.Column("amounts", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("evidence", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("assignee", sa.String(128), nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        sa.Column("approved_by", sa.String(128), nullable=True),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("resolved_evidence", sa.String(64), nullable=True),
        sa.Column("transitions", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=True),
        sa.Column("present", sa.Boolean, nullable=False),
        sa.Column("first_seen", sa.String(40), nullable=False),
        sa.Column("last_seen", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("break_id", name="pk_wf_break_state"),
    )
    op.create_index("ix_wf_break_state_status", "wf_break_state", ["status"])
    op.create_table(
        "wf_break_records",
        sa.Column("break_id", sa.String(40), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("break_id", "record_id", name="pk_wf_break_records"),
    )
    op.create_index("ix_wf_break_records_record_id", "wf_break_records", ["record_id"])


def downgrade() -> None:
    op.drop_table("wf_break_records")
    op.drop_table("wf_break_state")
