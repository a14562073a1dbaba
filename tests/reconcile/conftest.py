"""Fixtures of the reconciliation tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Dropper, create_database


@pytest.fixture
def other_url(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[str]:
    """A second fresh database on the same backend."""
    if not db_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'full.db'}"
        return
    dropper: Dropper = request.getfixturevalue("pg_dropper")
    name, url = create_database(dropper.admin)
    try:
        yield url
    finally:
        dropper.drop(name)
