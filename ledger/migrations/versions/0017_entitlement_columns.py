"""Reconciler: what the entitlement rules compare (INTERCHANGE v1.1, FORMAT.md §8.3).

``rc_events`` gains ``benefit`` (a benefit payment's ``benefit``: NULL is the recurring
benefit), ``other_region`` (a transfer's ``to_region`` or ``from_region``) and ``region``;
``rc_person_events`` gains ``amount_fen`` (an approval's ``monthly_amount``), ``region``
and ``occurred_day``, and holds enrolments and certifications beside approvals and terminations.

The ``rc_*`` tables are derived: this revision empties them and sets the watermark to 0,
so the next run decodes the ledger again from the start and re-checks everything (it
keeps no stored finding, FORMAT.md §2.5). Owned by ``reconcile/matching/_tables.py``. On
PostgreSQL the duty trigger is replaced so that ``control.rules`` (the rules a run used,
§2.5) needs the ``officer`` or ``service`` duty, as ``control.reconcile`` does.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger._duties import ENTRY_DUTY_SQL

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_RC_TABLES = ("rc_records", "rc_events", "rc_movements", "rc_allocations", "rc_vouchers",
              "rc_voucher_refs", "rc_person_events", "rc_findings", "rc_open", "rc_dirty",
              "rc_month_sums", "rc_matched")


def upgrade() -> None:
    for name in _RC_TABLES:
        op.execute(f"DELETE FROM {name}")
    op.execute("UPDATE meta SET value = '0' WHERE key IN ('reconcile_seq', "
               "'reconcile_records')")
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("rc_events")}
    if "benefit" not in columns:
        op.add_column("rc_events", sa.Column("benefit", sa.String(128), nullable=True))
        op.add_column("rc_events", sa.Column("other_region", sa.String(6), nullable=True))
        op.add_column("rc_events", sa.Column("region", sa.String(6), nullable=True))
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("rc_person_events")}
    if "amount_fen" not in columns:
        op.add_column("rc_person_events", sa.Column("amount_fen", sa.BigInteger,
                                                    nullable=True))
        op.add_column("rc_person_events", sa.Column("region", sa.String(6), nullable=True))
        op.add_column("rc_person_events", sa.Column("occurred_day", sa.Integer,
                                                    nullable=True))
    if op.get_bind().dialect.name == "postgresql":  # control.rules: officer or service
        for stmt in ENTRY_DUTY_SQL:
            op.execute(stmt)


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
