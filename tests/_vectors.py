"""Where the third-party test vectors live: ``tests/vectors`` (sources and licences in its
README); ``BFA_VECTORS`` may point at another copy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "vectors"


def vectors_dir() -> Path:
    """The vectors folder (``BFA_VECTORS`` overrides); skip nothing: fail loudly."""
    env = os.environ.get("BFA_VECTORS")
    path = Path(env) if env else HERE
    if not path.is_dir():
        pytest.fail(f"third-party vectors not found at {path}", pytrace=False)
    return path
