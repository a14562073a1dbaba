"""The archive's working table and its control entries (FORMAT.md §2.5, §8.1, §11).

``ar_files`` lists every voucher record's file by its SHA-256 (one row per archive
entry: ``seq``, record id, kind, hash, size), so that a fixity audit can take a slice of
the hash space (``bfa nightly``'s rotating sample) in one index range and merge it with
the store's sorted directory listing. It is a *working* table: ``bfa archive audit``
rebuilds it from the entries for a full audit and checks every row it uses against its
entry's leaf. On PostgreSQL the duty trigger is replaced so that the archive's control
entries need their duties: ``control.fixity`` and ``control.voucher_check`` the ``officer``
or ``service`` duty, ``control.hold`` and ``control.appraisal`` the ``officer`` duty,
``control.disposal`` the ``officer`` duty (a ``signoff`` also ``approver``).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger._duties import ENTRY_DUTY_SQL

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "ar_files" not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(
            "ar_files",
            sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
            sa.Column("record_id", sa.String(128), nullable=False),
            sa.Column("kind", sa.String(48), nullable=False),
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.Column("size", sa.BigInteger, nullable=False),
            sa.PrimaryKeyConstraint("seq", name="pk_ar_files"),
        )
        op.create_index("ix_ar_files_sha256", "ar_files", ["sha256"])
    if op.get_bind().dialect.name == "postgresql":
        for stmt in ENTRY_DUTY_SQL:
            op.execute(stmt)


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
