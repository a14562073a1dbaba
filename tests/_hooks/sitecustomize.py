"""Loaded by processes the test suite starts (tests/_identity.spawn_env): labels stand for
identities, as in the test process itself. Not part of bfa."""

import os

if os.environ.get("BFA_TEST_LABEL_IS_IDENTITY") == "1":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests._identity import install

    install()
