"""Alembic migrations of the ledger schema (run by ``bfa init`` and on open)."""
