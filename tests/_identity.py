"""Several officers on one test machine: the label a test passes (``--user`` / ``BFA_USER``)
stands for the identity of the person acting.

In production the acting identity is authenticated (a PostgreSQL role, an operating-system
account, ledger._identity); a test suite running as one account cannot have one per
officer. :func:`install` makes ``Ledger.actor(label)`` take a given label as the identity
(and the real identity when no label is given, or when the ledger is on PostgreSQL under
a role of its own: the database checks that identity itself). tests/conftest.py installs
it for every test not marked ``real_identity``; processes a test starts get it from
``tests/_hooks/sitecustomize.py`` when their environment says ``BFA_TEST_LABEL_IS_IDENTITY=1``
(:func:`spawn_env`). Nothing of it ships with bfa.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

HOOKS = Path(__file__).resolve().parent / "_hooks"


def install(patch: Any = None) -> None:
    """Make a label the identity; ``patch`` is pytest's monkeypatch (else set for good)."""
    from ledger import Actor, Ledger, check_user

    real = Ledger.actor

    def actor(self: Ledger, label: str | None = None) -> Actor:
        if label is None or not label.strip() or _own_role(self):
            return real(self, label)
        return Actor(check_user(label, "label (--user, BFA_USER)"), None)

    if patch is not None:
        patch.setattr(Ledger, "actor", actor)
    else:
        Ledger.actor = actor  # type: ignore[method-assign]


def _own_role(led: Any) -> bool:
    """Whether ``led`` connects to PostgreSQL as a role that is not a superuser: a person's
    own role, whose identity the database checks (FORMAT.md §8.3), so no stand-in."""
    if led.store.dialect != "postgresql":
        return False
    from sqlalchemy import text

    with led.store.engine.connect() as conn:
        return not conn.execute(text(
            "SELECT rolsuper FROM pg_roles WHERE rolname = session_user")).scalar_one()


def spawn_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a ``bfa`` process a test starts, with labels standing for identities."""
    path = os.pathsep.join(p for p in (str(HOOKS), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, "BFA_TEST_LABEL_IS_IDENTITY": "1"}
