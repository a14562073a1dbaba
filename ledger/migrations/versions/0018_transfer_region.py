"""Reconciler: a transfer movement's ``to_region`` (TRANSFER_UNMATCHED, FORMAT.md §8.3).

``rc_movements`` gains ``to_region`` (a ``finance.transfer``'s ``to_region``, else NULL), so
that a transfer movement whose region disagrees with its ``transfer_out`` is found. The
``rc_*`` tables are derived: this revision empties them and sets the watermark to 0, so the
next run decodes the ledger again and re-checks everything (FORMAT.md §2.5). On PostgreSQL
the duty trigger is replaced so that ``control.precheck`` (a payment batch checked before
it is sent) needs the ``officer`` duty.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger._duties import ENTRY_DUTY_SQL

revision = "0018"
down_revision = "0017"
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
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("rc_movements")}
    if "to_region" not in columns:
        op.add_column("rc_movements", sa.Column("to_region", sa.String(6), nullable=True))
    if op.get_bind().dialect.name == "postgresql":  # control.precheck: officer
        for stmt in ENTRY_DUTY_SQL:
            op.execute(stmt)


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
