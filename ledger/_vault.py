"""The vault's encryption at rest (FORMAT.md §4.4): clear personal values sealed with
AES-256-GCM under a data key of their *holder* (the person, or the record when it names
no person), each data key wrapped by the **vault key**, which lives in the home
(``keys/vault.key``), never in the database.

A database dump therefore holds ciphertext and wrapped keys only. ``bfa forget`` deletes
the person's wrapped data key with their rows: a backup taken before still has the rows,
but nothing can open them any more (crypto-shredding). Associated data binds each
ciphertext to its place — a value to its domain, record and field, a data key to its
holder — so an insider who moves ciphertexts between rows gets a refusal, not another
person's value. A wrong vault key is told from the right one by a check value kept in
``meta`` (:func:`vault_check`) before anything is sealed or opened with it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection

from ledger import _schema as s
from ledger._errors import IntegrityError
from ledger._store import Store
from schemas import gettext as _

VAULT_CHECK_KEY = "vault_check"
"""``meta`` key of the vault key's check value."""
KEY_BYTES = 32
NONCE_BYTES = 12
_VALUE_AAD = b"bfa-vault-value/v1\x00"
_KEY_AAD = b"bfa-vault-key/v1\x00"
_CHECK_MSG = b"bfa-vault-check/v1"
_CACHE_LIMIT = 100_000
"""Data keys kept open per transaction before the cache starts over (bounded memory)."""

VAULT_KEY_COLUMNS = ("holder", "wrapped")


def vault_check(key: bytes) -> str:
    """16 hex digits of HMAC-SHA256(key, ``"bfa-vault-check/v1"``): tells a wrong vault key
    from the right one and helps nobody find it."""
    return hmac.new(key, _CHECK_MSG, hashlib.sha256).hexdigest()[:16]


def holder_of(domain: str, record_id: str, subject: str | None) -> str:
    """Whose data key seals a value: the person's party pseudonym (``subject``), else the
    record itself (``record:<domain>:<id>``)."""
    return subject if subject else f"record:{domain}:{record_id}"


def _value_aad(domain: str, record_id: str, field: str) -> bytes:
    return _VALUE_AAD + f"{domain}\x00{record_id}\x00{field}".encode()


class VaultKey:
    """The vault key: wraps and unwraps data keys."""

    __slots__ = ("_aead", "check")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("the vault key must be 32 bytes")
        self._aead = AESGCM(key)
        self.check = vault_check(key)

    def wrap(self, holder: str, data_key: bytes, nonce: bytes | None = None) -> bytes:
        """``nonce || AES-256-GCM(vault key, nonce, data key, "bfa-vault-key/v1" 0x00 holder)``."""
        n = os.urandom(NONCE_BYTES) if nonce is None else nonce
        return n + self._aead.encrypt(n, data_key, _KEY_AAD + holder.encode())

    def unwrap(self, holder: str, wrapped: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:],
                                      _KEY_AAD + holder.encode())
        except (InvalidTag, ValueError) as e:
            raise IntegrityError(
                _("the vault's data key of {holder} does not open under this vault key: it "
                  "was changed or moved in the database").format(holder=holder)) from e


def seal_value(data_key: AESGCM, nonce: bytes, domain: str, record_id: str, field: str,
               clear: str) -> bytes:
    """``nonce || AES-256-GCM(data key, nonce, clear, AAD)`` with AAD
    ``"bfa-vault-value/v1" 0x00 domain 0x00 record_id 0x00 field``."""
    return nonce + data_key.encrypt(nonce, clear.encode(), _value_aad(domain, record_id, field))


def open_value(data_key: AESGCM, sealed: bytes, domain: str, record_id: str, field: str) -> str:
    """The clear value of a sealed one; :class:`IntegrityError` if it does not open here."""
    try:
        return data_key.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:],
                                _value_aad(domain, record_id, field)).decode()
    except (InvalidTag, ValueError, UnicodeDecodeError) as e:
        raise IntegrityError(
            _("the vault's sealed {field} of {domain} record {record} does not open with its "
              "holder's data key: it was changed or moved in the database; nothing was "
              "revealed").format(field=field, domain=domain, record=repr(record_id))) from e


class Keyring:
    """Data keys of one writer or reader transaction: found in ``vault_keys`` and opened
    with the vault key, or (when ``create``) made for holders that have none yet."""

    __slots__ = ("_forgets", "_made", "_open", "store", "vault_key")

    def __init__(self, store: Store, vault_key: VaultKey) -> None:
        self.store = store
        self.vault_key = vault_key
        self._open: dict[str, AESGCM] = {}
        self._made: set[str] = set()
        self._forgets: dict[str, int] | None = None

    def load(self, conn: Connection, holders: Iterable[str], *, create: bool) -> dict[str, AESGCM]:
        """The data keys of ``holders``; holders without one get a new key (written in
        ``conn``'s transaction) when ``create``, else are left out."""
        wanted = set(holders)
        missing = sorted(wanted - self._open.keys())
        if len(self._open) + len(missing) > _CACHE_LIMIT:
            self._open.clear()
            missing = sorted(wanted)
        if missing:
            k = s.vault_keys.c
            found = []
            for holder, wrapped in self.store.select_by_ids(conn, k.holder, missing,
                                                            (k.holder, k.wrapped)):
                if not isinstance(wrapped, bytes | bytearray | memoryview):
                    raise IntegrityError(_("vault_keys.wrapped of {holder} is not bytes: the "
                                           "vault was changed outside bfa").format(
                        holder=holder))
                self._open[str(holder)] = AESGCM(self.vault_key.unwrap(str(holder),
                                                                       bytes(wrapped)))
                found.append(str(holder))
            if create and found:
                self._refuse_replanted(conn, found)
            if create:
                new = [h for h in missing if h not in self._open]
                if new:
                    raw = os.urandom((KEY_BYTES + NONCE_BYTES) * len(new))
                    rows = []
                    for i, holder in enumerate(new):
                        at = i * (KEY_BYTES + NONCE_BYTES)
                        dk = raw[at:at + KEY_BYTES]
                        nonce = raw[at + KEY_BYTES:at + KEY_BYTES + NONCE_BYTES]
                        rows.append((holder, self.vault_key.wrap(holder, dk, nonce)))
                        self._open[holder] = AESGCM(dk)
                        self._made.add(holder)
                    self.store.copy_rows(conn, "vault_keys", VAULT_KEY_COLUMNS, rows)
        return {h: self._open[h] for h in wanted if h in self._open}

    def _refuse_replanted(self, conn: Connection, holders: list[str]) -> None:
        """A writer about to seal under a data key it found: the key must not be one that
        ``bfa forget`` destroyed and someone put back (FORMAT.md §4.6). A person's key
        found after the person's last ``control.forget`` was made by an ingest after it,
        which sealed a value of a record after the forget; with no such value the key is
        older than the forget and is refused (exit 3, nothing ingested)."""
        from sqlalchemy import and_, func, select

        from ledger._control import control_records

        if self._forgets is None:
            self._forgets = {}
            for seq, rec in control_records(conn, "forget"):
                if isinstance(rec.get("subject"), str):
                    self._forgets[str(rec["subject"])] = seq
        v, e = s.vault.c, s.entries.c
        for holder in holders:
            forgot = self._forgets.get(holder)
            if forgot is None or holder in self._made:
                continue
            latest = conn.execute(
                select(func.max(e.seq)).select_from(s.vault.join(
                    s.entries, and_(e.record_id == v.record_id, e.domain == v.domain)))
                .where(v.subject == holder)).scalar()
            if latest is None or int(latest) < forgot:
                raise IntegrityError(
                    _("the vault holds a data key for {holder}, whose person was forgotten at "
                      "entry {seq}, and no value sealed after that forget: the key was put "
                      "back from an older copy of the database; nothing was ingested (run "
                      "'bfa verify' and ask the ledger's owner)").format(
                        holder=holder, seq=forgot))

    def seal_rows(self, conn: Connection, rows: Sequence[tuple[Any, ...]]
                  ) -> list[tuple[Any, ...]]:
        """Vault rows ``(domain, record_id, field, subject, salt, clear)`` as stored:
        ``(domain, record_id, field, subject, salt, sealed)``."""
        if not rows:
            return []
        holders = [holder_of(r[0], r[1], r[3]) for r in rows]
        keys = self.load(conn, set(holders), create=True)
        nonces = os.urandom(NONCE_BYTES * len(rows))
        out: list[tuple[Any, ...]] = []
        append = out.append
        # seal_value, inlined: this loop runs once per personal field ingested
        for i, (domain, rid, fld, subject, salt, clear) in enumerate(rows):
            at = i * NONCE_BYTES
            nonce = nonces[at:at + NONCE_BYTES]
            aad = _VALUE_AAD + f"{domain}\x00{rid}\x00{fld}".encode()
            append((domain, rid, fld, subject, salt,
                    nonce + keys[holders[i]].encrypt(nonce, clear.encode(), aad)))
        return out


__all__ = [
    "KEY_BYTES",
    "VAULT_CHECK_KEY",
    "Keyring",
    "VaultKey",
    "holder_of",
    "open_value",
    "seal_value",
    "vault_check",
]
