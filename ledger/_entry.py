"""The entry: leaf format v1, its hash, and how it chains (docs/FORMAT.md §2).

An accepted record becomes one *entry*. Its **leaf input** (the exact bytes that
are hashed, shown by ``bfa show ID --entry --raw``) is::

    offset  size  field
    0       1     format version, 0x01
    1       8     sequence number (zero-based leaf index), unsigned big-endian
    9       32    entry hash of the previous entry (32 zero bytes for entry 0)
    41      ...   RFC 8785 canonical JSON of {"record": {...}, "recorded_at": "..."}

The **entry hash** is the RFC 9162 §2.1.1 leaf hash ``SHA-256(0x00 || leaf)``,
so the hash chain and the Merkle tree share their leaves: what a checkpoint
signs and what the chain links are the same 32 bytes per entry.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from ledger._canonical import MAX_SAFE_INTEGER, canonicalize, canonicalize_plain
from ledger._errors import FormatError, InputError
from schemas import TIMESTAMP_PATTERN
from schemas import gettext as _

LEAF_VERSION = 1
HEADER_SIZE = 41
ZERO_HASH = bytes(32)
_VERSION_BYTE = bytes([LEAF_VERSION])
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger entry, decoded."""

    seq: int
    prev_hash: bytes
    record: dict[str, Any]
    recorded_at: str
    leaf: bytes
    entry_hash: bytes

    @property
    def domain(self) -> str:
        return str(self.record["type"]).split(".", 1)[0]

    @property
    def kind(self) -> str:
        return str(self.record["type"]).split(".", 1)[1]

    @property
    def record_id(self) -> str:
        return str(self.record["id"])


def entry_hash(leaf: bytes) -> bytes:
    """RFC 9162 §2.1.1 leaf hash of the leaf input: ``SHA-256(0x00 || leaf)``."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def encode_leaf(seq: int, prev_hash: bytes, record: dict[str, Any], recorded_at: str) -> bytes:
    """Leaf input bytes v1 for ``record`` appended at ``seq`` after ``prev_hash``."""
    if len(prev_hash) != 32:
        raise FormatError(f"previous hash must be 32 bytes, got {len(prev_hash)}")
    body = canonicalize_plain({"record": record, "recorded_at": recorded_at})
    return _VERSION_BYTE + seq.to_bytes(8, "big") + prev_hash + body


def leaf_record(leaf: bytes) -> dict[str, Any]:
    """The record of a stored leaf, parsed without the checks of :func:`decode_leaf`.

    For readers of rows that ``bfa verify`` vouches for (the reconciler's refresh): it
    does not re-canonicalize or re-hash. Raises :class:`FormatError` only when the body
    is not a JSON object holding a ``record`` object.
    """
    try:
        body = json.loads(leaf[HEADER_SIZE:].decode("utf-8"))  # str: no encoding sniffing
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(_("leaf body is not JSON: {reason}").format(reason=e)) from e
    record = body.get("record") if isinstance(body, dict) else None
    if not isinstance(record, dict):
        raise FormatError(_("leaf body holds no 'record' object"))
    return record


class _FloatFound(Exception):
    """Raised from inside ``json.loads``: ledger records hold no floats (FORMAT.md §1)."""


def _no_float(text: str) -> NoReturn:
    raise _FloatFound(text)


class _UnsafeInt(Exception):
    """Raised from inside ``json.loads``: an integer outside ``±(2**53 - 1)``."""


def _safe_int(text: str) -> int:
    value = int(text)
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return value
    raise _UnsafeInt(text)


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
"""A character above U+FFFF: member names holding one sort differently in UTF-16."""


def _plain(body: Any) -> bytes | None:
    try:
        return canonicalize_plain(body)
    except InputError:  # a lone surrogate: canonicalize says so
        return None


def decode_leaf(leaf: bytes) -> Entry:
    """Parse leaf input bytes v1; raises :class:`FormatError` when malformed.

    The body must be its own RFC 8785 form. A body with only BMP characters, no float
    and no integer beyond ``±(2**53 - 1)`` meets every precondition of
    :func:`~ledger._canonical.canonicalize_plain`, which then writes exactly what
    :func:`~ledger._canonical.canonicalize` would, several times faster; any other body
    (and any body that differs) is judged by :func:`~ledger._canonical.canonicalize`.

    Its messages stay English: verification problems, a bundle's verdicts and a proof's
    result quote them, and those are data (``--json``)."""
    if len(leaf) < HEADER_SIZE + 2:
        raise FormatError(f"leaf is {len(leaf)} bytes, shorter than a v1 header and body")
    if leaf[0] != LEAF_VERSION:
        raise FormatError(f"leaf format version {leaf[0]} is not supported (expected 1)")
    seq = int.from_bytes(leaf[1:9], "big")
    prev = leaf[9:HEADER_SIZE]
    raw = leaf[HEADER_SIZE:]
    safe = True  # no integer outside the I-JSON range: the fast canonical check applies
    try:
        text = raw.decode("utf-8")
        try:
            body = json.loads(text, parse_float=_no_float, parse_int=_safe_int)
        except _UnsafeInt:
            safe = False
            body = json.loads(text, parse_float=_no_float)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"leaf {seq}: body is not JSON: {e}") from e
    except _FloatFound:
        raise FormatError(f"leaf {seq}: body holds a floating-point number") from None
    if not isinstance(body, dict) or set(body) != {"record", "recorded_at"}:
        raise FormatError(f"leaf {seq}: body must hold exactly 'record' and 'recorded_at'")
    record, recorded_at = body["record"], body["recorded_at"]
    if not isinstance(record, dict):
        raise FormatError(f"leaf {seq}: 'record' is not an object")
    type_ = record.get("type")
    domain, dot, kind = type_.partition(".") if isinstance(type_, str) else ("", "", "")
    if not (domain and dot and kind):
        raise FormatError(f"leaf {seq}: record has no 'type' of the form domain.kind")
    if not isinstance(record.get("id"), str) or not record["id"]:
        raise FormatError(f"leaf {seq}: record has no 'id' string")
    if not isinstance(recorded_at, str) or _TIMESTAMP.fullmatch(recorded_at) is None:
        raise FormatError(f"leaf {seq}: 'recorded_at' is not an RFC 3339 timestamp with offset")
    if not (safe and (text.isascii() or _ASTRAL.search(text) is None)
            and _plain(body) == raw):
        try:
            canonical = canonicalize(body)
        except InputError as e:
            raise FormatError(f"leaf {seq}: body cannot be canonicalized: {e}") from e
        if canonical != raw:
            raise FormatError(f"leaf {seq}: body is not in RFC 8785 canonical form")
    return Entry(seq, prev, record, recorded_at, leaf, entry_hash(leaf))
