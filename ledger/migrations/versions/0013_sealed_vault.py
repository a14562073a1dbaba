"""The vault encrypted at rest (FORMAT.md §4.4): ``vault_keys`` holds each holder's data
key wrapped by the vault key, ``vault.sealed`` the AES-256-GCM ciphertext of a value, and
``vault.clear_value`` becomes nullable. Rows already in the vault keep their clear value
until ``bfa init`` (run again, with the home's keys) seals them: a migration runs without
keys, so it cannot encrypt. Created only when missing.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "vault_keys" not in inspector.get_table_names():
        op.create_table(
            "vault_keys",
            sa.Column("holder", sa.String(200), nullable=False),
            sa.Column("wrapped", sa.LargeBinary, nullable=False),
            sa.PrimaryKeyConstraint("holder", name="pk_vault_keys"),
        )
    if "sealed" not in {c["name"] for c in inspector.get_columns("vault")}:
        with op.batch_alter_table("vault") as batch:  # SQLite rebuilds the table here
            batch.add_column(sa.Column("sealed", sa.LargeBinary, nullable=True))
            batch.alter_column("clear_value", existing_type=sa.Text, nullable=True)


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
