"""Reconciler's derived tables (``rc_*``, owned by ``reconcile/matching/_tables.py``).

They hold what ``reconcile`` decodes from ledger entries (records and their current
version, business events, fund movements, allocations, vouchers and their refs, benefit
approvals and terminations) so that matching runs as set-based SQL. They are not
ledger tables: no append-only triggers, and they can be emptied and rebuilt from the
entries at any time (the watermark is ``meta`` key ``reconcile_seq``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rc_records",
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("domain", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("region", sa.String(6), nullable=False),
        sa.Column("occurred_at", sa.String(40), nullable=False),
        sa.Column("occurred_day", sa.Integer, nullable=False),
        sa.Column("corrects", sa.String(128), nullable=True),
        sa.Column("superseded", sa.Boolean, nullable=False),
        sa.Column("current_id", sa.String(128), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_rc_records"),
        sa.UniqueConstraint("domain", "record_id", name="uq_rc_records_domain_record_id"),
    )
    op.create_index("ix_rc_records_record_id", "rc_records", ["record_id"])
    op.create_index("ix_rc_records_domain_corrects", "rc_records", ["domain", "corrects"])
    op.create_table(
        "rc_events",
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("due_day", sa.Integer, nullable=True),
        sa.Column("anchor_day", sa.Integer, nullable=False),
        sa.Column("party", sa.String(40), nullable=True),
        sa.Column("person", sa.String(40), nullable=True),
        sa.Column("account", sa.String(40), nullable=True),
        sa.Column("insurance", sa.String(16), nullable=True),
        sa.Column("period", sa.String(7), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_rc_events"),
    )
    op.create_index("ix_rc_events_record_id", "rc_events", ["record_id"])
    op.create_index("ix_rc_events_kind_amount_fen", "rc_events", ["kind", "amount_fen"])
    op.create_table(
        "rc_movements",
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("settles", sa.String(48), nullable=True),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("value_day", sa.Integer, nullable=False),
        sa.Column("value_month", sa.String(7), nullable=False),
        sa.Column("bank_ref", sa.String(128), nullable=False),
        sa.Column("payer", sa.String(40), nullable=True),
        sa.Column("payee_account", sa.String(40), nullable=True),
        sa.Column("fund_account", sa.String(16), nullable=True),
        sa.Column("from_account", sa.String(16), nullable=True),
        sa.Column("to_account", sa.String(16), nullable=True),
        sa.Column("returns", sa.String(128), nullable=True),
        sa.Column("allocated", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_rc_movements"),
    )
    op.create_index("ix_rc_movements_record_id", "rc_movements", ["record_id"])
    op.create_table(
        "rc_allocations",
        sa.Column("movement_seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("pos", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("movement_id", sa.String(128), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("movement_seq", "pos", name="pk_rc_allocations"),
    )
    op.create_index("ix_rc_allocations_event_id", "rc_allocations", ["event_id"])
    op.create_table(
        "rc_vouchers",
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_rc_vouchers"),
    )
    op.create_table(
        "rc_voucher_refs",
        sa.Column("voucher_seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("ref_id", sa.String(128), nullable=False),
        sa.Column("voucher_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("voucher_seq", "ref_id", name="pk_rc_voucher_refs"),
    )
    op.create_index("ix_rc_voucher_refs_ref_id", "rc_voucher_refs", ["ref_id"])
    op.create_table(
        "rc_person_events",
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("person", sa.String(40), nullable=False),
        sa.Column("insurance", sa.String(16), nullable=False),
        sa.Column("account", sa.String(40), nullable=True),
        sa.Column("period", sa.String(7), nullable=True),
        sa.Column("effective_day", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_rc_person_events"),
    )
    op.create_index("ix_rc_person_events_person", "rc_person_events", ["person"])


def downgrade() -> None:
    # Derived tables only (the ledger tables of 0001 are never downgraded).
    for t in ("rc_person_events", "rc_voucher_refs", "rc_vouchers", "rc_allocations",
              "rc_movements", "rc_events", "rc_records"):
        op.drop_table(t)
    op.execute("DELETE FROM meta WHERE key = 'reconcile_seq'")
