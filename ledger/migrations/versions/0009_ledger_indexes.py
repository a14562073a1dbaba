"""Leaner indexes on the two tables every ingest writes most: ``entries`` and ``vault``.

``entries`` had a unique ``(domain, record_id)`` and an index on ``record_id``: two
B-trees keyed by the record id. The unique constraint now leads with the id,
``(record_id, domain)``, and serves the look-ups by id alone too (``show``, ``prove``,
``trace``); ``ix_entries_record_id`` is dropped (as migration 0007 did for
``rc_records``).

``vault`` loses its serial ``id`` (nothing reads it): its key is ``(domain, record_id,
field)``, which was already unique, so one B-tree and a sequence call per row go. On
PostgreSQL ``ix_vault_subject`` becomes a hash index: ``bfa forget`` only asks for one
subject, and the subject is a keyed pseudonym, random by design, so each insert into a
B-tree touched a random leaf page. SQLite has no hash index and keeps the B-tree.

Measured by bulk-loading 1M entries and 1.4M vault rows into each layout (PostgreSQL 15,
same run): entries 6.5–7.1 s instead of 9.3–11.6 s; vault 8.0–8.3 s instead of
13.3–15.1 s (bench/README.md).

SQLite rebuilds both tables; the rebuilt ``entries`` gets its append-only triggers
again (the rebuild drops them with the old table).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    # Each table is changed only if it still has the old layout, so that a database
    # whose ledger tables already have the new one (tests that roll back only the
    # reconciler's tables to an older revision) upgrades too.
    inspector = sa.inspect(bind)
    uniques = {u["name"] for u in inspector.get_unique_constraints("entries")}
    if "uq_entries_domain_record_id" in uniques:
        with op.batch_alter_table("entries") as batch:  # SQLite rebuilds the table here
            batch.create_unique_constraint("uq_entries_record_id_domain",
                                           ["record_id", "domain"])
            batch.drop_constraint("uq_entries_domain_record_id", type_="unique")
        op.drop_index("ix_entries_record_id", table_name="entries")
        if sqlite:  # the rebuild dropped them with the old table (docs/FORMAT.md §8.2)
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER entries_no_{verb.lower()} BEFORE {verb} ON entries "
                    f"BEGIN SELECT RAISE(ABORT, 'bfa: {verb} on entries refused: "
                    "ledger tables are append-only'); END"
                )
    if "id" in {c["name"] for c in inspector.get_columns("vault")}:
        op.drop_index("ix_vault_subject", table_name="vault")
        with op.batch_alter_table("vault") as batch:
            batch.drop_constraint("pk_vault", type_="primary")
            batch.drop_column("id")
            batch.drop_constraint("uq_vault_domain_record_id_field", type_="unique")
            batch.create_primary_key("pk_vault", ["domain", "record_id", "field"])
        op.create_index("ix_vault_subject", "vault", ["subject"], postgresql_using="hash")


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: history is append-only")
