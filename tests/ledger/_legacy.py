"""Ledgers as earlier versions of bfa wrote them, for the tests of what upgrades them."""

from __future__ import annotations

import pytest

from ledger import Ledger


def write_as_before_sealing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make this bfa write the vault as one from before revision 0013 did: clear values,
    no data keys (the old layout has no place for them)."""
    from ledger import _append
    from ledger._vault import Keyring, VaultKey

    monkeypatch.setattr(_append, "VAULT_COLUMNS", (*_append.VAULT_COLUMNS[:5], "clear_value"))
    monkeypatch.setattr(Keyring, "seal_rows", lambda self, conn, rows: list(rows))
    monkeypatch.setattr(Ledger, "seal_vault", lambda self, progress=None: 0)
    monkeypatch.setattr(Ledger, "vault_key", lambda self: VaultKey(bytes(32)))
    monkeypatch.setattr(Ledger, "secret", lambda self: self.home.secret())
