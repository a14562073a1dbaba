"""Database tables, one SQLAlchemy Core schema for SQLite and PostgreSQL.

Ledger tables (append-only, guarded by triggers): ``entries``, ``tree_nodes``,
``checkpoints``. Working tables: ``meta`` (settings and verification state) and
``vault`` (personal data, sealed; rows are deleted by ``bfa forget``) and ``vault_keys``
(the wrapped data keys that open them; ``bfa forget`` deletes a person's).
The migration scripts under ``ledger/migrations`` create exactly these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
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
    # leads with the id: it also serves look-ups by id alone (migration 0009)
    UniqueConstraint("record_id", "domain"),
    # the ledger's own records by kind, in order: few rows (migration 0010)
    Index("ix_entries_control", "kind", "seq",
          postgresql_where=text("domain = 'control'"), sqlite_where=text("domain = 'control'")),
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
    Column("domain", String(16), primary_key=True),
    Column("record_id", String(128), primary_key=True),
    Column("field", String(32), primary_key=True),
    Column("subject", String(40), nullable=True),
    Column("salt", LargeBinary, nullable=False),
    # a row written before the vault was encrypted (revision 0013) holds its value in
    # clear until 'bfa init' seals it; every other row has only ``sealed``
    Column("clear_value", Text, nullable=True),
    Column("sealed", LargeBinary, nullable=True),
    # forget asks for one subject, a random-looking pseudonym: a hash index on
    # PostgreSQL (SQLite has none and keeps a B-tree); migration 0009
    Index("ix_vault_subject", "subject", postgresql_using="hash"),
)

vault_keys = Table(
    # one data key per holder (a person's party pseudonym, or ``record:<domain>:<id>``),
    # wrapped by the vault key (ledger/_vault.py); forget deletes the person's row
    "vault_keys",
    metadata,
    Column("holder", String(200), primary_key=True),
    Column("wrapped", LargeBinary, nullable=False),
)
