"""Reconciler: heuristic matches kept between runs (``rc_matched``).

An incremental run used to re-check every open event and every unallocated movement,
each night, because heuristic matches were not stored: a ledger fed by bank
statements (whose entries arrive unallocated and settle by the heuristic match) grew
that set without bound. ``rc_matched`` holds the matches of the last run, one row per
pair (a movement and an event are in at most one pair each); an incremental run
re-checks a pair only when one of its two items, or a possible new candidate of
either, is in its scope (``reconcile/matching/_incremental.py``, docs/FORMAT.md §8.1). Owned by
``reconcile/matching/_tables.py``.

The table starts empty, so this revision removes the ``reconcile_checked`` mark:
the next run is a full one and fills it. It also drops three indexes no statement
reads any more (``rc_records.current_seq``, ``rc_events.record_id``,
``rc_events (kind, amount_fen)``): every refresh paid for them; and makes
``ix_rc_records_domain_corrects`` partial (``corrects IS NOT NULL``: only corrections
are in it).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rc_matched",
        sa.Column("m_seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("e_seq", sa.BigInteger, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("m_seq", name="pk_rc_matched"),
        sa.UniqueConstraint("e_seq", name="uq_rc_matched_e_seq"),
    )
    op.execute("DELETE FROM meta WHERE key = 'reconcile_checked'")
    op.drop_index("ix_rc_records_current_seq", table_name="rc_records")
    op.drop_index("ix_rc_events_record_id", table_name="rc_events")
    op.drop_index("ix_rc_events_kind_amount_fen", table_name="rc_events")
    op.drop_index("ix_rc_records_domain_corrects", table_name="rc_records")
    op.create_index("ix_rc_records_domain_corrects", "rc_records", ["domain", "corrects"],
                    postgresql_where=sa.text("corrects IS NOT NULL"),
                    sqlite_where=sa.text("corrects IS NOT NULL"))


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
