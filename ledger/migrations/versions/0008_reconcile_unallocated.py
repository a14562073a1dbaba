"""Reconciler: a partial index of the unallocated current movements.

Every incremental run re-checks the unallocated movements that are in no stored
heuristic pair (``reconcile/matching/_incremental.py``). It found them through an index on the
boolean ``rc_movements.allocated``: thousands of index entries, each a heap fetch
scattered over the table, to keep the few that are not paired (50 ms of a nightly at
2M events, growing with the ledger, not with the night's records). The partial index
``ix_rc_movements_unallocated`` holds only the current unallocated movements' ``seq``,
so the look-up reads the index alone; it replaces ``ix_rc_movements_allocated``, which
nothing else used. The predicate is written as each dialect renders the queries'
``IS false`` tests, so both planners match it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_rc_movements_allocated", table_name="rc_movements")
    op.create_index("ix_rc_movements_unallocated", "rc_movements", ["amount_fen", "seq"],
                    postgresql_where=sa.text("allocated IS false AND superseded IS false"),
                    sqlite_where=sa.text("allocated IS 0 AND superseded IS 0"))


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
