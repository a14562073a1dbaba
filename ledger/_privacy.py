"""Personal data: keyed pseudonyms, salted commitments and the vault rows (FORMAT.md §4).

Fields named in :data:`schemas.PERSONAL_FIELDS` never enter a hashed payload in
clear. Each is replaced by a **pseudonym** and backed by a **commitment**:

- ``pseudonym = "ps1:" + hex(HMAC-SHA256(secret, "bfa-pseudonym/v1" 0x00 class 0x00 value))[:32]``
  where ``class`` is ``party`` for person, payer and employer identifiers (so a
  ``payer_id`` compares equal to the ``employer_id`` or ``person_id`` it names),
  ``account`` for bank accounts and ``name`` for personal names;
- ``commitment = hex(SHA-256("bfa-commit/v1" 0x00 salt value))`` with a fresh
  16-byte random salt per record and field, listed under the payload key
  ``"_commitments"``.

The clear value and the salt live only in the vault table. Erasing them
(``bfa forget``) leaves pseudonyms and commitments that no longer open: the
ledger still verifies, the person can no longer be read from it.
``employer_id`` is not personal data and stays in clear; its party pseudonym is
added as ``"employer_party"`` so that joins with ``payer_id`` stay possible.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from typing import Any, NamedTuple

from ledger._errors import InputError
from schemas import PERSONAL_FIELDS as _PERSONAL
from schemas import gettext as _

PSEUDONYM_PREFIX = "ps1:"
_FIELD_CLASS = {
    "person_id": b"party",
    "payer_id": b"party",
    "employer_id": b"party",
    "account": b"account",
    "payee_account": b"account",
    "name": b"name",
}
PERSONAL_FIELDS = tuple(sorted(_PERSONAL))
SUBJECT_FIELDS = ("person_id", "payer_id")


def personal_fields(fields: Iterable[str], option: str) -> set[str]:
    """``fields`` (given with ``option``, ``--fields`` or ``--disclose``) as a set, or
    :class:`InputError` when it is empty or names a field that is not personal."""
    wanted = set(fields)
    unknown = sorted(wanted - set(PERSONAL_FIELDS))
    if unknown or not wanted:
        personal = ", ".join(PERSONAL_FIELDS)
        raise InputError(
            _("{option}: {fields}; personal fields are {personal}").format(
                option=option, fields=", ".join(unknown), personal=personal) if unknown else
            _("{option}: none given; personal fields are {personal}").format(
                option=option, personal=personal))
    return wanted


class VaultRow(NamedTuple):
    """A clear value and the salt that opens its commitment."""

    field: str
    subject: str | None
    salt: bytes
    clear: str


_RANDOM_BLOCK = 64 * 1024
"""Bytes drawn from ``os.urandom`` at once for salts."""
_CACHE_LIMIT = 100_000
"""Pseudonyms remembered per class before the cache starts over (bounded memory)."""


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) under one key, its padded key states hashed once.

    The same function as ``hmac.digest(key, msg, "sha256")``, which sets the key up
    again on every call: ingest computes one or two MACs per record, and with OpenSSL 3
    that set-up costs more than the MAC itself (1.8 µs against 0.8 µs here).
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:  # RFC 2104 §2: a key longer than the block is hashed first
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __call__(self, msg: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(msg)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


SECRET_CHECK_KEY = "secret_check"
"""``meta`` key of the ledger secret's check value (:func:`secret_check`)."""


def secret_check(secret: bytes) -> str:
    """The check value of a ledger secret: 16 hex digits of HMAC-SHA256(K,
    ``"bfa-key-check/v1"``). It tells a wrong key from the right one and reveals nothing
    that helps to find the key (FORMAT.md §4.1)."""
    return hmac.new(secret, b"bfa-key-check/v1", hashlib.sha256).hexdigest()[:16]


class Pseudonymizer:
    """Replaces personal fields with pseudonyms under one ledger secret."""

    __slots__ = ("_caches", "_mac", "_random", "_used")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the ledger secret must be at least 32 bytes")
        self._mac = HmacSha256(secret)
        self._random = b""
        self._used = 0
        # one cache per class, keyed by the clear value: the same person recurs across
        # records (assessment, collection, payment), so most look-ups hit
        self._caches: dict[bytes, dict[str, str]] = {c: {} for c in set(_FIELD_CLASS.values())}

    def pseudonym(self, field: str, value: str) -> str:
        """The keyed pseudonym of ``value`` for the class of ``field``."""
        cls = _FIELD_CLASS[field]
        cache = self._caches[cls]
        found = cache.get(value)
        if found is not None:
            return found
        mac = self._mac(b"bfa-pseudonym/v1\x00" + cls + b"\x00" + value.encode())
        result = PSEUDONYM_PREFIX + mac[:16].hex()
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[value] = result
        return result

    def _salts(self, n: int) -> bytes:
        """``16 * n`` fresh random bytes from the operating system's generator.

        Drawn 64 KiB at a time: one system call per ~4,000 salts, not per record (each
        call also releases the GIL, which the ingest's writer thread then holds for a
        while)."""
        size = 16 * n
        if self._used + size > len(self._random):
            self._random = os.urandom(max(_RANDOM_BLOCK, size))
            self._used = 0
        start = self._used
        self._used = start + size
        return self._random[start : start + size]

    def content_digest(self, canonical_record: bytes) -> bytes:
        """Keyed digest of a record as received, to tell a re-send from a conflict:
        ``HMAC-SHA256(secret, "bfa-content/v1" 0x00 canonical_record)``."""
        return self._mac(_CONTENT_PREFIX + canonical_record)

    def protect(self, record: dict[str, Any]) -> tuple[dict[str, Any], list[VaultRow]]:
        """Split ``record`` into a payload safe to hash and the vault rows it needs."""
        present = [f for f in PERSONAL_FIELDS if f in record]
        employer = record.get("employer_id")
        if not present and employer is None:
            return record, []
        pseudonym = self.pseudonym
        payload = dict(record)
        rows: list[VaultRow] = []
        subject = None
        for f in SUBJECT_FIELDS:
            if f in record:
                subject = pseudonym("person_id", str(record[f]))
                break
        if present:
            salts = self._salts(len(present))
            commitments: dict[str, str] = {}
            for i, f in enumerate(present):
                clear = str(record[f])
                salt = salts[16 * i : 16 * i + 16]
                payload[f] = pseudonym(f, clear)
                commitments[f] = commitment(salt, clear)
                rows.append(VaultRow(f, subject, salt, clear))
            payload["_commitments"] = commitments
        if employer is not None:
            payload["employer_party"] = pseudonym("employer_id", str(employer))
        return payload, rows


_COMMIT_PREFIX = b"bfa-commit/v1\x00"
_CONTENT_PREFIX = b"bfa-content/v1\x00"


def commitment(salt: bytes, clear: str) -> str:
    """Salted commitment to a clear value (hex SHA-256)."""
    return hashlib.sha256(_COMMIT_PREFIX + salt + clear.encode()).hexdigest()
