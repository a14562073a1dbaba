"""Where the third-party test vectors live: ``../shared/vectors`` beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def vectors_dir() -> Path:
    """The shared vectors folder (``BFA_VECTORS`` overrides); skip nothing: fail loudly."""
    env = os.environ.get("BFA_VECTORS")
    path = Path(env) if env else ROOT.parent / "shared" / "vectors"
    if not path.is_dir():
        pytest.fail(f"third-party vectors not found at {path}; set BFA_VECTORS", pytrace=False)
    return path
