"""The house rules a reader can check with grep: what differs between SQLite and PostgreSQL
lives behind the store (``ledger/_store.py``: :meth:`ledger.Store.traits` and its
helpers), so the reconciler, the archive and the command line never branch on the
backend's name (issue 17: "dialect-specific SQL lives behind the store")."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BRANCH = re.compile(r"""dialect(\.name)?\s*[!=]=|==\s*["'](postgresql|sqlite)["']""")


def test_only_the_store_branches_on_the_backend() -> None:
    found = []
    for package in ("reconcile", "archive", "cli"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if BRANCH.search(line.split("#", 1)[0]):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "branches on the backend outside ledger/_store.py:\n" + "\n".join(found)
