"""Opening balances of bank accounts (FORMAT.md §2.5, §9.7).

``control.opening`` records the agency's book balance of a bank account at the start of a
day (``bfa balance opening``): the book side of the 银行存款余额调节表 starts from it. No
table: the reconciliation reads the control entries. On PostgreSQL the duty trigger is
replaced so that ``control.opening`` and ``control.withdrawal`` (a mis-imported
statement withdrawn, §9.8) need the ``officer`` duty.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from ledger._duties import ENTRY_DUTY_SQL

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for stmt in ENTRY_DUTY_SQL:
            op.execute(stmt)


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
