"""Database tables, one SQLAlchemy Core schema for SQLite and PostgreSQL.

Ledger tables (append-only, guarded by triggers): ``entries``, ``tree_nodes``,
``checkpoints``. Working tables: ``meta`` (settings and verification state) and
``vault`` (clear personal data; rows are deleted by ``bfa forget``).
The migration scripts under ``ledger/migrations`` create exactly these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

LEDGER_TABLES = ("entries", "tree_nodes", "checkpoints")

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

entries = Table(
    "entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("domain", String(16), nullable=False),
    Column("kind", String(48), nullable=False),
    Column("record_id", String(128), nullable=False),
    Column("leaf", LargeBinary, nullable=False),
    Column("entry_hash", LargeBinary, nullable=False),
    Column("content_digest", LargeBinary, nullable=True),
    UniqueConstraint("domain", "record_id"),
    Index("ix_entries_record_id", "record_id"),
)

tree_nodes = Table(
    "tree_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
)

vault = Table(
    "vault",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("domain", String(16), nullable=False),
    Column("record_id", String(128), nullable=False),
    Column("field", String(32), nullable=False),
    Column("subject", String(40), nullable=True),
    Column("salt", LargeBinary, nullable=False),
    Column("clear_value", Text, nullable=False),
    UniqueConstraint("domain", "record_id", "field"),
    Index("ix_vault_subject", "subject"),
)
