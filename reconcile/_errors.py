"""The reconciler's own errors; every other error it raises is one of the ledger's
(``ledger.InputError``, ``ledger.IntegrityError`` …), mapped to exit codes by the CLI."""

from __future__ import annotations

from ledger import BfaError


class NightlyLockedError(BfaError):
    """Another nightly run holds the lock (exit 2)."""


__all__ = ["NightlyLockedError"]
