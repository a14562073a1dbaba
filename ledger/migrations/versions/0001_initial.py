"""Initial ledger schema v1: entries, tree nodes, checkpoints, vault, meta, and the
triggers that make the ledger tables append-only on both backends.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

LEDGER_TABLES = ("entries", "tree_nodes", "checkpoints")


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_meta"),
    )
    op.create_table(
        "entries",
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("domain", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("leaf", sa.LargeBinary, nullable=False),
        sa.Column("entry_hash", sa.LargeBinary, nullable=False),
        sa.Column("content_digest", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_entries"),
        sa.UniqueConstraint("domain", "record_id", name="uq_entries_domain_record_id"),
    )
    op.create_table(
        "tree_nodes",
        sa.Column("level", sa.SmallInteger, autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name="pk_tree_nodes"),
    )
    op.create_table(
        "checkpoints",
        sa.Column("tree_size", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name="pk_checkpoints"),
    )
    op.create_table(
        "vault",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("domain", sa.String(16), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("field", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(40), nullable=True),
        sa.Column("salt", sa.LargeBinary, nullable=False),
        sa.Column("clear_value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vault"),
        sa.UniqueConstraint("domain", "record_id", "field", name="uq_vault_domain_record_id_field"),
    )
    op.create_index("ix_vault_subject", "vault", ["subject"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION bfa_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              RAISE EXCEPTION 'bfa: % on % refused: ledger tables are append-only',
                TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
            END $$
            """
        )
        for t in LEDGER_TABLES:
            op.execute(
                f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                "FOR EACH ROW EXECUTE FUNCTION bfa_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                "FOR EACH STATEMENT EXECUTE FUNCTION bfa_refuse_change()"
            )
    else:
        for t in LEDGER_TABLES:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {t}_no_{verb.lower()} BEFORE {verb} ON {t} BEGIN "
                    f"SELECT RAISE(ABORT, 'bfa: {verb} on {t} refused: "
                    "ledger tables are append-only'); END"
                )


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
