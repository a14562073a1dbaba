"""Fixtures of the reconciliation tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url


@pytest.fixture
def other_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """A second fresh database on the same backend."""
    if not db_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'full.db'}"
        return
    url = make_url(db_url)
    name = f"bfa_test_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            # the rules role revision 0019 made for that database (roles are the server's)
            conn.execute(f'DROP ROLE IF EXISTS "bfa_rules_{name}"')
