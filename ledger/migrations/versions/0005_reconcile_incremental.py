"""Reconciler: integer version links and the state of incremental runs.

Adds columns that let matching join integers instead of following correction chains
by id: ``rc_records.current_seq`` (the ``seq`` of a record's latest version),
``rc_allocations.event_seq`` (the current version of the event an allocation names),
``rc_voucher_refs.business_seq`` / ``finance_seq`` (the same for a voucher's refs),
``rc_movements.allocated_fen`` (the sum of a movement's own allocations), the
movement's kind, value day and status on its allocations, ``rc_vouchers.n_refs``, and
a copy of ``superseded`` on the per-kind tables; indexes the lookups an incremental run
makes; and creates ``rc_findings`` (rows each matching statement returned, per root
item), ``rc_open`` (events still open), ``rc_dirty`` (records whose version status
changed since the last run) and ``rc_month_sums`` (income account sums per month).
Owned by ``reconcile/matching/_tables.py``.

The ``rc_*`` tables are derived: this revision empties them and removes the
``reconcile_seq`` watermark, so the next run decodes the ledger again from the start.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_DERIVED = ("rc_records", "rc_events", "rc_movements", "rc_allocations", "rc_vouchers",
            "rc_voucher_refs", "rc_person_events")


def upgrade() -> None:
    for name in _DERIVED:
        op.execute(f"DELETE FROM {name}")
    op.execute("DELETE FROM meta WHERE key IN ('reconcile_seq', 'reconcile_checked', "
               "'reconcile_rules', 'reconcile_records')")
    op.add_column("rc_records", sa.Column("current_seq", sa.BigInteger, nullable=False,
                                          server_default="0"))
    for name in ("rc_events", "rc_movements", "rc_vouchers", "rc_person_events"):
        op.add_column(name, sa.Column("superseded", sa.Boolean, nullable=False,
                                      server_default=sa.false()))
    op.add_column("rc_movements", sa.Column("allocated_fen", sa.BigInteger, nullable=False,
                                            server_default="0"))
    op.add_column("rc_allocations", sa.Column("event_seq", sa.BigInteger, nullable=True))
    op.create_index("ix_rc_allocations_event_seq", "rc_allocations", ["event_seq"])
    op.add_column("rc_vouchers", sa.Column("n_refs", sa.Integer, nullable=False,
                                           server_default="0"))
    op.add_column("rc_allocations", sa.Column("kind", sa.String(48), nullable=False,
                                              server_default=""))
    op.add_column("rc_allocations", sa.Column("value_day", sa.Integer, nullable=False,
                                              server_default="0"))
    op.add_column("rc_allocations", sa.Column("superseded", sa.Boolean, nullable=False,
                                              server_default=sa.false()))
    for col in ("business_seq", "finance_seq"):
        op.add_column("rc_voucher_refs", sa.Column(col, sa.BigInteger, nullable=True))
        op.create_index(f"ix_rc_voucher_refs_{col}", "rc_voucher_refs", [col])
    op.create_index("ix_rc_records_current_seq", "rc_records", ["current_seq"])
    op.create_index("ix_rc_records_domain_current_id", "rc_records", ["domain", "current_id"])
    op.create_index("ix_rc_events_person", "rc_events", ["person"])
    op.create_index("ix_rc_movements_allocated", "rc_movements", ["allocated"])
    op.create_table(
        "rc_findings",
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("root", sa.String(200), nullable=False),
        sa.Column("pos", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("row", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("rule", "root", "pos", name="pk_rc_findings"),
    )
    op.create_table(
        "rc_open",
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_rc_open"),
    )
    op.create_table(
        "rc_dirty",
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("was_current", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_rc_dirty"),
    )
    op.create_table(
        "rc_month_sums",
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("in_fen", sa.BigInteger, nullable=False),
        sa.Column("out_fen", sa.BigInteger, nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("month", name="pk_rc_month_sums"),
    )


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
