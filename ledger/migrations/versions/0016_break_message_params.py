"""``wf_break_state.message_params``: a break's message as a template and its values.

Break messages are rendered in the reader's language (FORMAT.md §8.1, ADR 0031): the
row keeps, beside the English ``message``, the JSON object ``{"template": ...,
"params": {...}}`` it was made from. Rows written before this revision have NULL and
are shown in English until the next reconciliation rewrites them.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("wf_break_state")}
    if "message_params" not in columns:
        op.add_column("wf_break_state", sa.Column("message_params", sa.Text, nullable=True))


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
