"""An independent verifier for BFA Ledger databases and proofs, written from docs/FORMAT.md alone.

Nothing here comes from the project's own code: the only sources are ``docs/FORMAT.md``
and the public specifications it names (RFC 9162 Merkle trees and proofs, RFC 8785 JCS,
C2SP signed-note, tlog-checkpoint, tlog-proof and the tlog-witness ``add-checkpoint``
body, RFC 8493 BagIt). It imports only the Python standard library, ``cryptography``
(Ed25519; AES-256-GCM for the sealed vault of §4.4) and, for PostgreSQL, ``psycopg``. It
is meant to show that the document is exact enough to check a ledger without trusting
``bfa``.

Where each part comes from:

* FORMAT.md §1 (conventions): :func:`b64decode_strict` (canonical base64),
  :func:`jcs` and :func:`strict_json_loads` (RFC 8785 and the ledger's I-JSON limits).
* FORMAT.md §2.1-§2.3 (leaf input v1, entry hash, hash chain): :func:`entry_hash`,
  :func:`leaf_header`; FORMAT.md §2.4 / §6.5 step 1: :func:`decode_leaf`.
* FORMAT.md §3.1-§3.2 (RFC 9162 tree hash, frontier, stored nodes): :func:`node_hash`,
  :func:`mth`, :class:`CompactRange`, :func:`frontier`, :func:`fold_frontier`;
  FORMAT.md §3.3 / RFC 9162 §2.1.3.1, §2.1.4.1: :func:`inclusion_path`,
  :func:`consistency_path`; RFC 9162 §2.1.3.2, §2.1.4.2: :func:`verify_inclusion`,
  :func:`verify_consistency`.
* FORMAT.md §5.1-§5.4 (checkpoint text, signed note, key texts): :func:`parse_verifier_key`,
  :func:`key_id`, :func:`open_note`, :func:`parse_checkpoint`, :func:`open_checkpoint`.
* FORMAT.md §5.7 with §2.5 (``control.key`` ``rotate-signing`` entries; signing-key
  rotation: the chain of keys k0 … km, the key in force at a size, the co-signed checkpoint
  over each rotation): :func:`read_rotations`, :func:`signing_keys`, :class:`SigningKeys`,
  :func:`open_checkpoint_signed`.
* FORMAT.md §6 (verification algorithm) over the tables of FORMAT.md §8.1:
  :func:`verify_ledger` (§6.1 step 0 the ledger's signing keys and ``key-rotation``, §6.1
  checkpoints, §6.2 resume point, §6.3 chain pass, §6.4 auditor's checkpoint, §6.5 derived
  pass, §6.6 result) with :class:`Database`.
* FORMAT.md §7.1 (C2SP tlog-proof@v1): :func:`parse_tlog_proof`, :func:`verify_tlog_proof`.
* FORMAT.md §7.2 (consistency proof, tlog-witness body): :func:`parse_consistency_proof`,
  :func:`verify_consistency_proof`.
* FORMAT.md §12 (proof bundles, with RFC 8493 BagIt written from the RFC, §2.1 leaves,
  §2.2 entry hashes, §4.2 commitments, §5.2 notes, §5.4 keys, §7.1 tlog-proofs, §7.2
  consistency): :func:`verify_bundle`, the nine verdicts of §12.5 — except that step 9
  after its "Then" (``rules_digest``, and the re-derivation of findings in a scratch ledger
  reconciled by bfa's reconciler) is out of scope; the workflow histories, ``scope.breaks``
  and ``counts.breaks`` are checked. Where FORMAT.md §12 is read in one of several ways,
  :func:`verify_bundle`'s docstring says how.
* FORMAT.md §4.2, §4.4, §4.6 (commitments, vault rows, sealed values, vault keys, forget),
  an extra outside §6: :func:`commitment`, :func:`read_vault_key`, :func:`vault_check`,
  :func:`open_sealed`, :func:`verify_vault`.

The first draft found places where FORMAT.md §6 was silent (which seq a checkpoint
problem names, the counters of a failed run, a malformed ``meta.verified_size``, a size-0
checkpoint's root, a leaf without ``record.id``); the document now says, and this verifier
follows it. tests/interop/test_independent_verifier.py compares its reports with
``bfa verify --json``; tests/interop/test_independent_bundles.py compares the verdicts of
:func:`verify_bundle` with ``bfa bundle verify --json``.

FORMAT.md §5.7 leaves open how the rotation entries are found and what a leaf that does
not decode means there. This verifier finds them by the index columns (``domain =
'control'``, ``kind = 'key'``, the look-up §2.4 and §8.1 describe), reads ``action`` from the
strictly decoded leaf (a leaf that does not decode: ``key-rotation``, seq null), and leaves a
leaf whose ``record.type`` disagrees with the columns to the derived pass; ``bfa verify``
does the same. The offline proofs of §7.1-§7.2 are opened with the one verifier key given
(FORMAT.md says so), so a consistency proof whose two checkpoints straddle a rotation does
not verify offline with any single key.

Command line (FORMAT.md §10 exit codes: 0 good, 2 could not run / malformed input,
3 integrity failure)::

    python tests/interop/independent_verifier.py --db URL_OR_PATH --key KEYFILE
    python tests/interop/independent_verifier.py --db URL_OR_PATH --key KEYFILE --vault \
        [--vault-key HOME/keys/vault.key]
    python tests/interop/independent_verifier.py --key KEYFILE --tlog-proof P --leaf LEAF
    python tests/interop/independent_verifier.py --key KEYFILE --consistency-proof P --old NOTE
    python tests/interop/independent_verifier.py --key KEYFILE --bundle DIR [--exporter-key F]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import hashlib
import hmac
import itertools
import json
import math
import os
import re
import sqlite3
import stat
import sys
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HASH_SIZE = 32
ZERO_HASH = bytes(HASH_SIZE)
EMPTY_ROOT = hashlib.sha256(b"").digest()  # FORMAT.md §3.1: MTH({})
LEAF_VERSION = 0x01  # FORMAT.md §2.1
HEADER_SIZE = 41  # FORMAT.md §2.1: version, seq, previous entry hash
MIN_LEAF_SIZE = 43  # FORMAT.md §2.1 / §6.5 step 1: header plus "{}"
MAX_SAFE_INT = 2**53 - 1  # FORMAT.md §1 (I-JSON)
ORIGIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*(/[A-Za-z0-9._~-]+)*$")  # FORMAT.md §5.1
DECIMAL_RE = re.compile(r"^(0|[1-9][0-9]*)$")  # "decimal, no leading zeros"
TIMESTAMP_RE = re.compile(  # FORMAT.md §1: RFC 3339 with an explicit offset
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])\Z"
)
SIG_TYPE_ED25519 = 0x01  # FORMAT.md §5.4
MAX_NOTE_BYTES = 1 << 20  # FORMAT.md §5.2
VAULT_KEY_RE = re.compile(r"^[0-9a-f]{64}\n?\Z")  # FORMAT.md §4.4 / §5.4: keys/vault.key
GCM_NONCE, GCM_TAG, DATA_KEY_SIZE = 12, 16, 32  # FORMAT.md §4.4
MAX_SIGNATURES = 100  # FORMAT.md §5.2
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"  # FORMAT.md §7.1
NODE_BATCH = 500  # FORMAT.md §3.3 reads nodes "one statement per 500 nodes"; we do the same


class FormatError(ValueError):
    """Malformed input: a key text, note, checkpoint or proof that does not parse."""


class ProofError(Exception):
    """A signature or Merkle proof that parses but does not verify (FORMAT.md §7)."""


@dataclass(frozen=True)
class Problem:
    """One problem of FORMAT.md §6.6: a code, a message and the seq concerned (or None)."""

    code: str
    message: str
    seq: int | None = None

    def __str__(self) -> str:
        where = "" if self.seq is None else f" at seq {self.seq}"
        return f"{self.code}{where}: {self.message}"


class VerificationError(Exception):
    """Raised by :meth:`Report.raise_for_problems`; ``problem`` is the first one found."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass
class Report:
    """The result of :func:`verify_ledger`, shaped like FORMAT.md §6.6's ``VerifyReport``."""

    problems: list[Problem] = field(default_factory=list)
    tree_size: int = 0
    entries_checked: int = 0
    checkpoints_checked: int = 0
    start: int = 0
    derived_checked: bool = False
    against: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def raise_for_problems(self) -> None:
        if self.problems:
            raise VerificationError(self.problems[0])

    def to_json(self) -> dict[str, Any]:
        return {
            "against": self.against,
            "checkpoints_checked": self.checkpoints_checked,
            "derived_checked": self.derived_checked,
            "entries_checked": self.entries_checked,
            "ok": self.ok,
            "problems": [
                {"code": p.code, "message": p.message, "seq": p.seq} for p in self.problems
            ],
            "start": self.start,
            "tree_size": self.tree_size,
        }


# -- FORMAT.md §1: base64, JSON (RFC 8785 JCS) -----------------------------------------


def b64decode_strict(text: str, what: str = "base64") -> bytes:
    """FORMAT.md §1: standard alphabet with padding; refuse strings that do not re-encode."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise FormatError(f"{what}: not base64: {text[:40]!r}") from e
    if base64.b64encode(raw).decode("ascii") != text:
        raise FormatError(f"{what}: non-canonical base64: {text[:40]!r}")
    return raw


def _parse_decimal(text: str, what: str) -> int:
    if not DECIMAL_RE.match(text):
        raise FormatError(f"{what}: not a decimal without leading zeros: {text!r}")
    return int(text)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate member name {k!r}")
        out[k] = v
    return out


def strict_json_loads(data: bytes) -> Any:
    """FORMAT.md §1: valid UTF-8, no duplicate names, no NaN/Infinity, I-JSON integers.

    Lone surrogates are caught by :func:`jcs` (they cannot be encoded as UTF-8).
    """
    text = data.decode("utf-8")  # strict: invalid UTF-8 raises UnicodeDecodeError
    value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    _check_numbers(value)
    return value


def _has_float(value: Any) -> bool:
    """FORMAT.md §1, §6.5 step 1: ledger records hold no floating-point numbers."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float):
            return True
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _check_numbers(value: Any) -> None:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, bool) or v is None or isinstance(v, str):
            continue
        if isinstance(v, int):
            if abs(v) > MAX_SAFE_INT:
                raise ValueError(f"integer {v} is beyond ±(2^53 − 1)")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise ValueError("non-finite number")
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


_JCS_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _jcs_string(s: str) -> str:
    out = ['"']
    for ch in s:
        esc = _JCS_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise ValueError("lone surrogate in string")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _jcs_number(v: int | float) -> str:
    """ECMAScript Number::toString (RFC 8785 §3.2.2.3)."""
    if isinstance(v, int):
        if abs(v) > MAX_SAFE_INT:
            raise ValueError("integer out of I-JSON range")
        return str(v)
    if not math.isfinite(v):
        raise ValueError("non-finite number")
    if v == 0:
        return "0"
    sign = "-" if v < 0 else ""
    # shortest round-trip digits (Python's repr, like ECMAScript) as 0.<digits> × 10^n
    dec = Decimal(repr(abs(v))).normalize()
    _, dtuple, exp = dec.as_tuple()
    digits = "".join(map(str, dtuple))
    n = len(digits) + int(exp)
    k = len(digits)
    if k <= n <= 21:
        s = digits + "0" * (n - k)
    elif 0 < n <= 21:
        s = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        s = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        es = ("+" if e >= 0 else "-") + str(abs(e))
        s = digits + "e" + es if k == 1 else digits[0] + "." + digits[1:] + "e" + es
    return sign + s


def jcs(value: Any) -> bytes:
    """RFC 8785 canonical bytes of a JSON value (FORMAT.md §1)."""
    parts: list[str] = []

    def emit(v: Any) -> None:
        if v is None:
            parts.append("null")
        elif v is True:
            parts.append("true")
        elif v is False:
            parts.append("false")
        elif isinstance(v, int | float):
            parts.append(_jcs_number(v))
        elif isinstance(v, str):
            parts.append(_jcs_string(v))
        elif isinstance(v, list):
            parts.append("[")
            for i, item in enumerate(v):
                if i:
                    parts.append(",")
                emit(item)
            parts.append("]")
        elif isinstance(v, dict):
            parts.append("{")
            # members sorted by the UTF-16 code units of their names
            keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
            for i, k in enumerate(keys):
                if i:
                    parts.append(",")
                parts.append(_jcs_string(k))
                parts.append(":")
                emit(v[k])
            parts.append("}")
        else:
            raise TypeError(f"not a JSON value: {type(v).__name__}")

    emit(value)
    return "".join(parts).encode("utf-8")


# -- FORMAT.md §2: leaves, entry hashes, chain -----------------------------------------


def entry_hash(leaf: bytes) -> bytes:
    """FORMAT.md §2.2: SHA-256(0x00 || leaf input), also the RFC 9162 leaf hash."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def leaf_header(leaf: bytes) -> tuple[int, int, bytes]:
    """FORMAT.md §2.1: (version, seq, previous entry hash) of a leaf of at least 41 bytes."""
    if len(leaf) < HEADER_SIZE:
        raise FormatError(f"leaf of {len(leaf)} bytes is shorter than its 41-byte header")
    return leaf[0], int.from_bytes(leaf[1:9], "big"), bytes(leaf[9:41])


def decode_leaf(leaf: bytes) -> tuple[dict[str, Any], Any]:
    """FORMAT.md §2.1, §6.5 step 1: strict decoding of a v1 leaf; returns (record, recorded_at).

    Raises :class:`FormatError` with the reason when the leaf is not a canonical v1 leaf.
    """
    if len(leaf) < MIN_LEAF_SIZE:
        raise FormatError(f"leaf of {len(leaf)} bytes is shorter than 43")
    if leaf[0] != LEAF_VERSION:
        raise FormatError(f"unknown leaf format version 0x{leaf[0]:02x}")
    body = bytes(leaf[HEADER_SIZE:])
    try:
        obj = strict_json_loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise FormatError(f"leaf body is not strict JSON: {e}") from e
    if not isinstance(obj, dict) or set(obj) != {"record", "recorded_at"}:
        raise FormatError("leaf body must be an object with exactly 'record' and 'recorded_at'")
    record = obj["record"]
    if not isinstance(record, dict):
        raise FormatError("'record' is not an object")
    rtype = record.get("type")
    domain, dot, kind = rtype.partition(".") if isinstance(rtype, str) else ("", "", "")
    if not (domain and dot and kind):
        raise FormatError("record.type is not a string '<domain>.<kind>', both parts non-empty")
    if not isinstance(record.get("id"), str) or not record["id"]:
        raise FormatError("record.id is not a non-empty string")
    recorded_at = obj["recorded_at"]
    if not isinstance(recorded_at, str) or not TIMESTAMP_RE.match(recorded_at):
        raise FormatError("recorded_at is not an RFC 3339 timestamp with an offset")
    if _has_float(obj):
        raise FormatError("leaf body holds a floating-point number")
    try:
        canonical = jcs(obj)
    except ValueError as e:
        raise FormatError(f"leaf body has a value JCS refuses: {e}") from e
    if canonical != body:
        raise FormatError("leaf body is not in RFC 8785 canonical form")
    return record, recorded_at


# -- FORMAT.md §3: RFC 9162 Merkle tree -------------------------------------------------


def node_hash(left: bytes, right: bytes) -> bytes:
    """FORMAT.md §3.1: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_pow2_below(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def mth(leaf_hashes: Sequence[bytes]) -> bytes:
    """FORMAT.md §3.1: MTH over leaves given by their leaf hashes (= entry hashes)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _largest_pow2_below(n)
    return node_hash(mth(leaf_hashes[:k]), mth(leaf_hashes[k:]))


def fold_frontier(hashes: Sequence[bytes]) -> bytes:
    """FORMAT.md §3.2: the right fold of the frontier hashes, largest subtree first."""
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for h in reversed(hashes[:-1]):
        root = node_hash(h, root)
    return root


def frontier(size: int) -> list[tuple[int, int]]:
    """FORMAT.md §3.2: the complete subtrees (level, index) of a tree of ``size``, left first."""
    out = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, start >> level))
            start += 1 << level
    return out


class CompactRange:
    """FORMAT.md §3.2: the tree state (frontier) kept while appending entry hashes."""

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        self.size = size
        self._stack: list[tuple[int, bytes]] = [
            (level, h) for (level, _), h in zip(frontier(size), hashes, strict=True)
        ]

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Append a leaf; return the complete subtrees (level ≥ 1, idx, hash) it completed."""
        self._stack.append((0, leaf_hash))
        self.size += 1
        made = []
        while len(self._stack) >= 2 and self._stack[-1][0] == self._stack[-2][0]:
            level, right = self._stack.pop()
            _, left = self._stack.pop()
            h = node_hash(left, right)
            self._stack.append((level + 1, h))
            made.append((level + 1, (self.size >> (level + 1)) - 1, h))
        return made

    def root(self) -> bytes:
        return fold_frontier([h for _, h in self._stack])

    def hashes(self) -> list[bytes]:
        """The frontier's hashes, largest subtree first."""
        return [h for _, h in self._stack]


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``path`` lead from leaf ``index`` to ``root`` of ``size``?"""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def inclusion_path_length(index: int, size: int) -> int:
    """The number of hashes RFC 9162 §2.1.3.1 gives for (``index``, ``size``)."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + bin(index >> inner).count("1")


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2 for 0 < size1 < size2 (callers handle size1 = size2)."""
    if not 0 < size1 < size2 or not path:
        return False
    proof = list(path)
    if size1 & (size1 - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        proof.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0


def range_hash(start: int, end: int, node: Callable[[int, int], bytes]) -> bytes:
    """MTH of the leaves [start, end) from complete subtrees ``node(level, idx)`` (§3.2, §3.3)."""
    n = end - start
    if n & (n - 1) == 0 and start % n == 0:
        level = n.bit_length() - 1
        return node(level, start >> level)
    k = _largest_pow2_below(n)
    return node_hash(range_hash(start, start + k, node), range_hash(start + k, end, node))


def inclusion_path(index: int, size: int, node: Callable[[int, int], bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]) out of complete subtrees (§3.3)."""
    out: list[bytes] = []

    def path(m: int, start: int, end: int) -> None:
        n = end - start
        if n == 1:
            return
        k = _largest_pow2_below(n)
        if m < k:
            path(m, start, start + k)
            out.append(range_hash(start + k, end, node))
        else:
            path(m - k, start + k, end)
            out.append(range_hash(start, start + k, node))

    path(index, 0, size)
    return out


def consistency_path(m: int, size: int, node: Callable[[int, int], bytes]) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[0:size]) = SUBPROOF(m, D[0:size], true) (§3.3)."""
    out: list[bytes] = []

    def sub(m: int, start: int, end: int, b: bool) -> None:
        n = end - start
        if m == n:
            if not b:
                out.append(range_hash(start, end, node))
            return
        k = _largest_pow2_below(n)
        if m <= k:
            sub(m, start, start + k, b)
            out.append(range_hash(start + k, end, node))
        else:
            sub(m - k, start + k, end, False)
            out.append(range_hash(start, start + k, node))

    if 0 < m < size:
        sub(m, 0, size, True)
    return out


# -- FORMAT.md §5: key texts, signed notes, checkpoints ---------------------------------


@dataclass(frozen=True)
class VerifierKey:
    """FORMAT.md §5.4: ``<name>+<key ID hex>+<base64(0x01 || Ed25519 public key)>``."""

    name: str
    key_id: bytes
    public_key: bytes

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def key_id(name: str, public_key: bytes) -> bytes:
    """FORMAT.md §5.2: first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key)."""
    return hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([SIG_TYPE_ED25519]) + public_key
    ).digest()[:4]


def _valid_key_name(name: str) -> bool:
    # signed-note: non-empty, no Unicode spaces, no plus signs.
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def parse_verifier_key(text: str) -> VerifierKey:
    """FORMAT.md §5.4: parse a verifier key text (what ``bfa key export`` prints)."""
    text = text.strip()
    parts = text.split("+", 2)  # the base64 part may itself contain '+'
    if len(parts) != 3:
        raise FormatError("verifier key: expected <name>+<key ID>+<base64 key>")
    name, hexid, b64 = parts
    if not _valid_key_name(name):
        raise FormatError(f"verifier key: bad key name {name!r}")
    if not re.fullmatch(r"[0-9a-fA-F]{8}", hexid):
        raise FormatError("verifier key: key ID must be 8 hex digits")
    raw = b64decode_strict(b64, "verifier key")
    if len(raw) != 33 or raw[0] != SIG_TYPE_ED25519:
        raise FormatError("verifier key: not 0x01 followed by a 32-byte Ed25519 public key")
    pub = raw[1:]
    kid = key_id(name, pub)
    if kid != bytes.fromhex(hexid):
        raise FormatError("verifier key: the key ID does not match the key")
    return VerifierKey(name, kid, pub)


def open_note(note: str, keys: Sequence[VerifierKey]) -> str:
    """FORMAT.md §5.2 (c2sp.org/signed-note): verify a signed note, return its text.

    Raises :class:`FormatError` for a malformed note and :class:`ProofError` when no
    trusted key signed it or a trusted key's signature does not verify.
    """
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise FormatError("note larger than 1 MiB")
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise FormatError("note contains control characters other than newline")
    if not note.endswith("\n"):
        raise FormatError("note does not end in a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise FormatError("note has no empty line before its signatures")
    text, sigs = note[: cut + 1], note[cut + 2 :]
    lines = sigs.split("\n")[:-1]
    if not lines:
        raise FormatError("note has no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise FormatError("note has more than 100 signature lines")
    message = text.encode("utf-8")
    trusted = 0
    for line in lines:
        if not line.startswith("— "):
            raise FormatError(f"not a signature line: {line[:60]!r}")
        name, sep, b64 = line[2:].partition(" ")
        if not sep or not _valid_key_name(name) or " " in b64:
            raise FormatError(f"malformed signature line: {line[:60]!r}")
        raw = b64decode_strict(b64, "signature")
        if len(raw) < 5:
            raise FormatError("signature shorter than key ID plus one byte")
        kid, sig = raw[:4], raw[4:]
        for key in keys:
            if key.name == name and key.key_id == kid:
                if len(sig) != 64 or not key.verify(sig, message):
                    raise ProofError(f"signature by trusted key {name} does not verify")
                trusted += 1
    if trusted == 0:
        raise ProofError("note is not signed by the trusted key (unknown key name or key ID)")
    return text


@dataclass(frozen=True)
class Checkpoint:
    """FORMAT.md §5.1: origin, tree size and root hash of a tlog-checkpoint text."""

    origin: str
    size: int
    root: bytes
    note: str


def parse_checkpoint(text: str, note: str = "") -> Checkpoint:
    """FORMAT.md §5.1: three lines (origin, decimal size, base64 root), extensions ignored."""
    if not text.endswith("\n"):
        raise FormatError("checkpoint text does not end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise FormatError("checkpoint text has fewer than three lines")
    origin, size_s, root_s, *ext = lines
    if not ORIGIN_RE.match(origin):
        raise FormatError(f"checkpoint origin {origin!r} is not a valid origin")
    size = _parse_decimal(size_s, "checkpoint size")
    root = b64decode_strict(root_s, "checkpoint root")
    if len(root) != HASH_SIZE:
        raise FormatError("checkpoint root is not 32 bytes")
    if any(not line for line in ext):
        raise FormatError("empty extension line in checkpoint")
    return Checkpoint(origin, size, root, note)


def open_checkpoint(note: str, key: VerifierKey, origin: str | None = None) -> Checkpoint:
    """FORMAT.md §5.2, §6.1 step 1: verify the note, parse it, require the origin."""
    cp = parse_checkpoint(open_note(note, [key]), note)
    want = key.name if origin is None else origin
    if cp.origin != want:
        raise ProofError(f"checkpoint origin {cp.origin!r} is not the ledger's {want!r}")
    return cp


# -- FORMAT.md §5.7: signing-key rotation ------------------------------------------------

ROTATE_SIGNING = "rotate-signing"  # FORMAT.md §2.5: the control.key action of §5.7


class KeyRotationError(Exception):
    """FORMAT.md §5.7 / §6.1 step 0: the signing key's history is broken (``key-rotation``)."""


@dataclass(frozen=True)
class Rotation:
    """One ``control.key`` entry with ``action`` ``"rotate-signing"`` (FORMAT.md §2.5, §5.7)."""

    seq: int
    old_key: VerifierKey
    new_key: VerifierKey


@dataclass(frozen=True)
class SigningKeys:
    """FORMAT.md §5.7: the ledger's signing keys ``k0 … km`` and the rotations between them.

    ``keys[i]`` is ``ki``; ``rotations[i - 1]`` is ``Ri`` (it retires ``k(i−1)`` for ``ki``).
    """

    keys: tuple[VerifierKey, ...]
    rotations: tuple[Rotation, ...]

    def index_in_force(self, size: int) -> int:
        """``i`` of the key in force over a tree of ``size``: rotation entries with seq < size."""
        return bisect.bisect_left([r.seq for r in self.rotations], size)

    def in_force(self, size: int) -> VerifierKey:
        return self.keys[self.index_in_force(size)]

    def signers(self, size: int) -> list[VerifierKey]:
        """The keys that must all have signed the checkpoint of ``size`` (FORMAT.md §5.7):
        ``k(i−1)`` and ``ki`` for the checkpoint of size ``Ri.seq + 1``, else the key in force."""
        i = self.index_in_force(size)
        if i and self.rotations[i - 1].seq + 1 == size:
            return [self.keys[i - 1], self.keys[i]]
        return [self.keys[i]]


def _rotation_key(value: Any, origin: str, what: str) -> VerifierKey:
    """FORMAT.md §5.7: ``old_key`` / ``new_key`` must be a verifier key text (§5.4) named by
    the origin. The member is taken exactly (no surrounding whitespace dropped)."""
    if not isinstance(value, str) or value != value.strip():
        raise KeyRotationError(f"{what} is not a verifier key text")
    try:
        key = parse_verifier_key(value)
    except FormatError as e:
        raise KeyRotationError(f"{what} is not a verifier key text: {e}") from e
    if key.name != origin:
        raise KeyRotationError(f"{what} is named {key.name!r}, not the origin {origin!r}")
    return key


def read_rotations(db: Database, origin: str) -> list[Rotation]:
    """FORMAT.md §5.7: the ``control.key`` entries whose ``action`` is ``"rotate-signing"``, in
    ``seq`` order, each decoded from its leaf (§2.1).

    The entries are found through the index columns ``domain = 'control'``, ``kind =
    'key'`` (FORMAT.md §2.4: the columns repeat the type "for lookups"; §8.1
    ``ix_entries_control``), and ``action`` is read from the strictly decoded leaf (§6.5 step
    1). A leaf that does not decode is a malformed rotation entry (:class:`KeyRotationError`).
    A leaf whose ``record.type`` disagrees with the columns is not judged here: the derived
    pass reports it (§6.5 step 2), as ``bfa verify`` does. FORMAT.md §5.7 says neither; see
    the module docstring.
    """
    out: list[Rotation] = []
    for seq, leaf in db.stream(
        "SELECT seq, leaf FROM entries WHERE domain = 'control' AND kind = 'key' ORDER BY seq"
    ):
        seq = int(seq)
        try:
            record, _ = decode_leaf(bytes(leaf))
        except FormatError as e:
            raise KeyRotationError(f"control.key entry {seq} does not decode: {e}") from e
        if record.get("action") != ROTATE_SIGNING:
            continue
        old = _rotation_key(record.get("old_key"), origin, f"rotation entry {seq}: old_key")
        new = _rotation_key(record.get("new_key"), origin, f"rotation entry {seq}: new_key")
        if old.key_id == new.key_id:
            raise KeyRotationError(f"rotation entry {seq}: old_key and new_key have one key ID")
        out.append(Rotation(seq, old, new))
    return out


def signing_keys(rotations: Sequence[Rotation], trusted: VerifierKey) -> SigningKeys:
    """FORMAT.md §5.7: the chain ``k0 = R1.old_key``, ``ki = Ri.new_key`` (with no rotation the
    trusted key alone); each ``R(i+1).old_key`` must be ``Ri.new_key``, and the trusted key
    must be one of the chain's. Raises :class:`KeyRotationError`."""
    if not rotations:
        return SigningKeys((trusted,), ())
    keys = [rotations[0].old_key, rotations[0].new_key]
    for prev, rot in itertools.pairwise(rotations):
        if rot.old_key != prev.new_key:
            raise KeyRotationError(
                f"rotation entry {rot.seq} retires a key that is not the one rotation entry "
                f"{prev.seq} brought in"
            )
        keys.append(rot.new_key)
    if trusted not in keys:
        raise KeyRotationError("the verifier key is none of the ledger's signing keys")
    return SigningKeys(tuple(keys), tuple(rotations))


def _note_size(note: str) -> int:
    """The tree size a (not yet verified) checkpoint note states: FORMAT.md §6.1 opens an
    auditor's note "with the key in force at the size the note states"."""
    cut = note.rfind("\n\n")
    if cut < 0:
        raise FormatError("note has no empty line before its signatures")
    return parse_checkpoint(note[: cut + 1]).size


def open_checkpoint_signed(
    note: str, keys: Sequence[VerifierKey], origin: str | None = None
) -> Checkpoint:
    """FORMAT.md §5.2, §5.7, §6.1 step 1: open the note with each of ``keys`` in turn (every one
    must have signed it; lines of other keys are ignored), parse it, require the origin."""
    cp: Checkpoint | None = None
    for key in keys:
        cp = open_checkpoint(note, key, origin)
    if cp is None:
        raise ValueError("no key to open the note with")
    return cp


# -- FORMAT.md §7: proofs ---------------------------------------------------------------


@dataclass(frozen=True)
class TLogProof:
    """FORMAT.md §7.1: a parsed c2sp.org/tlog-proof@v1."""

    extra: bytes | None
    index: int
    hashes: list[bytes]
    checkpoint_note: str


def _split_proof_head(text: str) -> tuple[list[str], str]:
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise FormatError("proof has no empty line before the checkpoint")
    return head.split("\n"), note


def _parse_hashes(lines: Iterable[str]) -> list[bytes]:
    out = []
    for line in lines:
        h = b64decode_strict(line, "proof hash")
        if len(h) != HASH_SIZE:
            raise FormatError("proof hash is not 32 bytes")
        out.append(h)
    return out


def parse_tlog_proof(text: str) -> TLogProof:
    """FORMAT.md §7.1 step 1."""
    lines, note = _split_proof_head(text)
    if lines[0] != TLOG_PROOF_HEADER:
        raise FormatError(f"first line is not {TLOG_PROOF_HEADER!r}")
    i = 1
    extra = None
    if i < len(lines) and lines[i].startswith("extra "):
        extra = b64decode_strict(lines[i][len("extra ") :], "extra")
        i += 1
    if i >= len(lines) or not lines[i].startswith("index "):
        raise FormatError("missing 'index' line")
    index = _parse_decimal(lines[i][len("index ") :], "index")
    return TLogProof(extra, index, _parse_hashes(lines[i + 1 :]), note)


@dataclass(frozen=True)
class InclusionResult:
    index: int
    tree_size: int
    root: bytes
    leaf_hash: bytes
    record: dict[str, Any]


def verify_tlog_proof(
    text: str, leaf: bytes | None, vkey_text: str, origin: str | None = None
) -> InclusionResult:
    """FORMAT.md §7.1 "Verifying an inclusion proof offline", steps 1-5.

    ``leaf`` is the leaf input (``bfa show ID --entry --raw``); when given it must equal
    the proof's ``extra``. Raises :class:`FormatError` or :class:`ProofError`.
    """
    key = parse_verifier_key(vkey_text)
    proof = parse_tlog_proof(text)
    cp = open_checkpoint(proof.checkpoint_note, key, origin)
    if proof.extra is None and leaf is None:
        raise FormatError("no leaf: the proof has no 'extra' line and none was given")
    if leaf is not None and proof.extra is not None and bytes(leaf) != proof.extra:
        raise ProofError("the proof's 'extra' line is not the given leaf input")
    data = bytes(leaf if leaf is not None else proof.extra)  # type: ignore[arg-type]
    h = entry_hash(data)
    if len(data) < HEADER_SIZE or data[0] != LEAF_VERSION:
        raise ProofError("the leaf is not a format v1 leaf")
    if int.from_bytes(data[1:9], "big") != proof.index:
        raise ProofError(
            f"the leaf's own seq {int.from_bytes(data[1:9], 'big')} "
            f"is not the proof's index {proof.index}"
        )
    if proof.index >= cp.size:
        raise ProofError(f"index {proof.index} is not below the tree size {cp.size}")
    want = inclusion_path_length(proof.index, cp.size)
    if len(proof.hashes) != want:
        raise ProofError(f"audit path has {len(proof.hashes)} hashes, expected {want}")
    if not verify_inclusion(proof.index, cp.size, h, proof.hashes, cp.root):
        raise ProofError(
            f"audit path of index {proof.index} does not lead to the signed root of size {cp.size}"
        )
    try:
        record, _ = decode_leaf(data)
    except FormatError as e:
        raise ProofError(f"included leaf does not decode: {e}") from e
    return InclusionResult(proof.index, cp.size, cp.root, h, record)


@dataclass(frozen=True)
class ConsistencyProofText:
    """FORMAT.md §7.2: a parsed tlog-witness ``add-checkpoint`` body."""

    old: int
    hashes: list[bytes]
    checkpoint_note: str


def parse_consistency_proof(text: str) -> ConsistencyProofText:
    lines, note = _split_proof_head(text)
    if not lines[0].startswith("old "):
        raise FormatError("first line is not 'old <size>'")
    old = _parse_decimal(lines[0][len("old ") :], "old size")
    return ConsistencyProofText(old, _parse_hashes(lines[1:]), note)


def verify_consistency_proof(
    text: str, old_note: str, vkey_text: str, origin: str | None = None
) -> tuple[Checkpoint, Checkpoint]:
    """FORMAT.md §7.2 "Verifying offline": the new checkpoint extends the auditor's old one.

    Returns (old checkpoint, new checkpoint); raises :class:`FormatError`/:class:`ProofError`.
    """
    key = parse_verifier_key(vkey_text)
    proof = parse_consistency_proof(text)
    old = open_checkpoint(old_note, key, origin)
    new = open_checkpoint(proof.checkpoint_note, key, origin)
    if old.origin != new.origin:
        raise ProofError("the two checkpoints name different origins")
    if old.size != proof.old:
        raise ProofError(f"the proof is from size {proof.old}, the old checkpoint has {old.size}")
    if old.size == 0:
        raise ProofError("a consistency proof needs 0 < OLD (FORMAT.md §7.2)")
    if old.size == new.size:
        if proof.hashes or old.root != new.root:
            raise ProofError("equal sizes need no hashes and equal roots")
        return old, new
    if old.size > new.size:
        raise ProofError(f"old size {old.size} is larger than new size {new.size}")
    if not verify_consistency(old.size, new.size, old.root, new.root, proof.hashes):
        raise ProofError(f"no valid consistency from size {old.size} to {new.size}")
    return old, new


# -- FORMAT.md §8.1: the tables -------------------------------------------------------------


class Database:
    """Read access to ``entries``, ``tree_nodes``, ``checkpoints``, ``meta`` (FORMAT.md §8.1).

    One read transaction for the whole run (FORMAT.md §6: a consistent snapshot). Pass an
    existing DB-API connection as ``conn`` (``sqlite3`` or ``psycopg``) to read in its
    transaction instead.
    """

    def __init__(self, target: str | None = None, conn: Any = None) -> None:
        self._own = conn is None
        if conn is not None:
            self.conn = conn
            self.pg = type(conn).__module__.startswith("psycopg")
        elif target is None:
            raise ValueError("give a database URL/path or a connection")
        elif target.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            import psycopg

            url = target.replace("postgresql+psycopg://", "postgresql://", 1)
            self.conn = psycopg.connect(url, autocommit=False)
            self.conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self.conn.read_only = True
            self.pg = True
        else:
            path = target[len("sqlite:///") :] if target.startswith("sqlite:///") else target
            uri = "file:" + urllib.parse.quote(path) + "?mode=ro"
            self.conn = sqlite3.connect(uri, uri=True, isolation_level=None)
            self.conn.execute("BEGIN")
            self.pg = False
        self.ph = "%s" if self.pg else "?"
        self._cursors = 0

    def close(self) -> None:
        if self._own:
            if self.pg:
                self.conn.rollback()
            else:
                self.conn.execute("ROLLBACK")
            self.conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            return list(cur.fetchall())
        finally:
            cur.close()

    def checkpoints(self) -> list[tuple[int, bytes, str]]:
        return [
            (int(s), bytes(r), n)
            for s, r, n in self._all(
                "SELECT tree_size, root_hash, note FROM checkpoints ORDER BY tree_size"
            )
        ]

    def meta(self, key: str) -> str | None:
        rows = self._all(f'SELECT value FROM meta WHERE "key" = {self.ph}', (key,))
        return rows[0][0] if rows else None

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows of ``sql`` one by one (a server-side cursor on PostgreSQL)."""
        if self.pg:
            self._cursors += 1
            cur = self.conn.cursor(name=f"independent_verifier_{self._cursors}")
            cur.itersize = 2000
        else:
            cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            yield from cur
        finally:
            cur.close()

    def entries(self, start: int) -> Iterator[tuple[int, bytes, bytes, str, str, str]]:
        """Stream (seq, leaf, entry_hash, domain, kind, record_id) in seq order from ``start``."""
        for seq, leaf, eh, domain, kind, rid in self.stream(
            f"SELECT seq, leaf, entry_hash, domain, kind, record_id FROM entries "
            f"WHERE seq >= {self.ph} ORDER BY seq",
            (start,),
        ):
            yield int(seq), bytes(leaf), bytes(eh), domain, kind, rid

    def entry_hash_at(self, seq: int) -> bytes | None:
        rows = self._all(f"SELECT entry_hash FROM entries WHERE seq = {self.ph}", (seq,))
        return bytes(rows[0][0]) if rows else None

    def nodes(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Stored complete subtrees (FORMAT.md §3.2): level 0 from entries, ≥ 1 from tree_nodes."""
        by_level: dict[int, list[int]] = {}
        for level, idx in keys:
            by_level.setdefault(level, []).append(idx)
        out: dict[tuple[int, int], bytes] = {}
        for level, idxs in by_level.items():
            for i in range(0, len(idxs), NODE_BATCH):
                chunk = idxs[i : i + NODE_BATCH]
                marks = ",".join([self.ph] * len(chunk))
                if level == 0:
                    sql = f"SELECT seq, entry_hash FROM entries WHERE seq IN ({marks})"
                    params: list[int] = chunk
                else:
                    sql = (
                        f"SELECT idx, hash FROM tree_nodes WHERE level = {self.ph} "
                        f"AND idx IN ({marks})"
                    )
                    params = [level, *chunk]
                for idx, h in self._all(sql, params):
                    out[(level, int(idx))] = bytes(h)
        return out

    def head(self) -> int:
        """The highest seq + 1 (0 when empty)."""
        top = self._all("SELECT MAX(seq) FROM entries")[0][0]
        return 0 if top is None else int(top) + 1

    def tree_node_count(self) -> int:
        return int(self._all("SELECT COUNT(*) FROM tree_nodes")[0][0])

    def node_beyond(self, size: int) -> bool:
        """FORMAT.md §6.3 step 8: a row with level < 1 or idx < 0, or whose leaves
        [idx·2^level, (idx+1)·2^level) reach past ``size``."""
        if self._all("SELECT 1 FROM tree_nodes WHERE level < 1 OR idx < 0 LIMIT 1"):
            return True
        for level, idx in self._all("SELECT level, MAX(idx) FROM tree_nodes GROUP BY level"):
            if (int(idx) + 1) << int(level) > size:
                return True
        return False


class _MissingNode(Exception):
    def __init__(self, level: int, idx: int) -> None:
        super().__init__(f"stored node ({level}, {idx}) is missing")
        self.level, self.idx = level, idx


def _stored_node_reader(db: Database) -> Callable[[int, int], bytes]:
    cache: dict[tuple[int, int], bytes] = {}

    def node(level: int, idx: int) -> bytes:
        if (level, idx) not in cache:
            cache.update(db.nodes([(level, idx)]))
        if (level, idx) not in cache:
            raise _MissingNode(level, idx)
        return cache[(level, idx)]

    return node


# -- FORMAT.md §6: the verification algorithm -------------------------------------------------


class _DerivedChecker:
    """FORMAT.md §6.5: leaf decoding, index columns, stored tree nodes (in batches)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.pending: dict[tuple[int, int], bytes] = {}
        self.problem: Problem | None = None
        # step 4: records after the first control.ingest that no batch covers
        self.batches_seen = False
        self.uncovered_from: int | None = None
        self.unrecorded: int | None = None

    def entry(self, seq: int, leaf: bytes, domain: str, kind: str, record_id: str) -> None:
        if self.problem is not None:
            return
        try:
            record, _ = decode_leaf(leaf)
        except FormatError as e:
            self.problem = Problem("leaf-format", str(e), seq)
            return
        rdomain, _, rkind = record["type"].partition(".")
        rid = record.get("id")
        if (domain, kind, record_id) != (rdomain, rkind, rid):
            self.problem = Problem(
                "derived-mismatch",
                f"index columns ({domain!r}, {kind!r}, {record_id!r}) differ from the leaf's "
                f"record type {record['type']!r} and id {rid!r}",
                seq,
            )
            return
        if rdomain != "control":
            if self.uncovered_from is None:
                self.uncovered_from = seq
        elif rkind == "ingest":
            first = record.get("first")
            if type(first) is not int:
                first = None
            if (self.batches_seen and self.uncovered_from is not None
                    and self.unrecorded is None
                    and (first is None or self.uncovered_from < first)):
                self.unrecorded = self.uncovered_from
            self.batches_seen = True
            self.uncovered_from = None

    def first_unrecorded(self) -> int | None:
        if self.unrecorded is None and self.batches_seen:
            return self.uncovered_from
        return self.unrecorded

    def nodes(self, made: Iterable[tuple[int, int, bytes]]) -> None:
        if self.problem is not None:
            return
        for level, idx, h in made:
            self.pending[(level, idx)] = h
        if len(self.pending) >= 4 * NODE_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.problem is not None or not self.pending:
            self.pending.clear()
            return
        stored = self.db.nodes(self.pending)
        bad = [(lv, ix) for (lv, ix), h in self.pending.items() if stored.get((lv, ix)) != h]
        self.pending.clear()
        if bad:
            level, idx = min(bad, key=lambda k: k[1] << k[0])
            self.problem = Problem(
                "derived-mismatch",
                f"stored tree node ({level}, {idx}) is missing or differs "
                f"from the hash recomputed from the entries",
                idx << level,
            )


RESUMED_BATCH = 10_000
"""FORMAT.md §6.3 step 6: entries between two comparisons of stored nodes (resumed run)."""


def _first_stored_node_differing(db: Database, made: dict[tuple[int, int], bytes]
                                 ) -> Problem | None:
    """§6.3 step 6: the first stored node, in (level, index) order, that differs."""
    stored = db.nodes(made)
    for (level, idx), h in sorted(made.items()):
        if stored.get((level, idx)) != h:
            return Problem("derived-mismatch",
                           f"stored tree node ({level}, {idx}) differs from the entries",
                           idx << level)
    return None


def verify_ledger(
    db: Database | str,
    vkey_text: str,
    *,
    origin: str | None = None,
    against: str | None = None,
    since_checkpoint: bool = False,
    skip_derived: bool = False,
) -> Report:
    """FORMAT.md §6: check a ledger's tables with the verifier key; never writes.

    ``db`` is a :class:`Database` or a SQLite path / ``sqlite:///`` / ``postgresql://`` URL.
    ``vkey_text`` may be any of the ledger's signing keys ``k0 … km`` (FORMAT.md §5.7: an
    auditor's copy from any time); every checkpoint is opened with the key in force at its
    size, the one over a rotation entry with both keys (§6.1 steps 0-1).
    ``origin`` defaults to the key's name (FORMAT.md §5.1: the origin is also the key name).
    ``against`` is an auditor's signed checkpoint note (§6.4). Returns a :class:`Report`;
    its first problem names the first bad seq.
    """
    if isinstance(db, str):
        with Database(db) as opened:
            return verify_ledger(
                opened,
                vkey_text,
                origin=origin,
                against=against,
                since_checkpoint=since_checkpoint,
                skip_derived=skip_derived,
            )
    key = parse_verifier_key(vkey_text)
    origin = key.name if origin is None else origin
    report = Report()

    # §6.1 checkpoints: all rows, every problem reported, then stop if any. §6.6: tree_size
    # is the ledger's head (highest seq + 1); checkpoints_checked counts rows passing steps 1-2.
    report.tree_size = db.head()
    # §6.1 step 0 (§5.7): the ledger's signing keys k0 … km from the rotation entries; the
    # verifier key must be one of them. Step 0 names no seq and stops the run.
    try:
        chain = signing_keys(read_rotations(db, origin), key)
    except KeyRotationError as e:
        report.problems.append(Problem("key-rotation", str(e), None))
        return report
    rows = db.checkpoints()
    signed: dict[int, bytes] = {}
    for size, root, note in rows:
        try:
            # step 1: the key in force at the row's size; both keys over a rotation entry
            cp = open_checkpoint_signed(note, chain.signers(size), origin)
        except (FormatError, ProofError) as e:
            # FORMAT.md §6.1: the seq of a checkpoint problem is the row's tree_size.
            report.problems.append(
                Problem("checkpoint-signature", f"checkpoint of size {size}: {e}", size)
            )
            continue
        if cp.size != size or cp.root != root:
            report.problems.append(
                Problem(
                    "checkpoint-row",
                    f"checkpoint row of size {size} (root {root.hex()}) differs "
                    f"from its signed note (size {cp.size}, root {cp.root.hex()})",
                    size,
                )
            )
            continue
        report.checkpoints_checked += 1
        if size == 0 and root != EMPTY_ROOT:  # §6.1 step 3 (§5.1)
            report.problems.append(
                Problem("root-mismatch", 'checkpoint of size 0 does not sign SHA-256("")', None)
            )
            continue
        signed[size] = root
    # §6.1, after the rows (§5.7): every rotation needs its checkpoint of size seq + 1.
    stored_sizes = {size for size, _, _ in rows}
    for rot in chain.rotations:
        if rot.seq + 1 not in stored_sizes:
            report.problems.append(
                Problem(
                    "key-rotation",
                    f"the signing-key rotation at seq {rot.seq} has no checkpoint of size "
                    f"{rot.seq + 1} signed by both keys",
                    rot.seq,
                )
            )
    if report.problems:
        return report
    auditor: Checkpoint | None = None
    if against is not None:
        try:
            # "the same way": the key(s) the note's own size calls for (§5.7)
            auditor = open_checkpoint_signed(against, chain.signers(_note_size(against)), origin)
        except (FormatError, ProofError) as e:
            report.problems.append(Problem("against-signature", str(e), None))
            return report
        report.against = auditor.size

    # §6.2 resume point.
    start, prev, tree = 0, ZERO_HASH, CompactRange()
    if since_checkpoint:
        # FORMAT.md §6.2: 0 if absent or not a string of 1 to 19 ASCII digits.
        v_text = db.meta("verified_size") or ""
        digits = v_text.isascii() and v_text.isdigit() and len(v_text) <= 19
        verified = int(v_text) if digits else 0
        candidates = [s for s in signed if 0 < s <= verified]
        s_size = max(candidates, default=0)
        if auditor is not None and auditor.size < s_size:
            s_size = 0
        if s_size:
            resumed = _resume(db, s_size, signed[s_size], report)
            if resumed is None:
                return report
            start, prev, tree = s_size, resumed[0], resumed[1]
    report.start = start
    derived = None if since_checkpoint or skip_derived else _DerivedChecker(db)
    # §6.3 step 6: a resumed run compares the nodes the new entries complete, after every
    # 10,000 entries from the start and at the end
    resumed: dict[tuple[int, int], bytes] | None = {} if since_checkpoint else None

    # §6.3 chain pass.
    roots_at: dict[int, bytes] = {}
    if auditor is not None and auditor.size == start:
        roots_at[start] = tree.root()
    expected = start
    for seq, leaf, stored_hash, domain, kind, record_id in db.entries(start):
        problem = _check_entry(seq, expected, leaf, stored_hash, prev)
        if problem is not None:
            report.problems.append(problem)
            return report
        report.entries_checked += 1  # steps 1-5 passed (`bfa verify` counts it from here)
        made = tree.append(stored_hash)
        if seq + 1 in signed and tree.root() != signed[seq + 1]:
            report.problems.append(
                Problem(
                    "root-mismatch",
                    f"the root recomputed at size {seq + 1} differs from the signed checkpoint's",
                    seq,
                )
            )
            return report
        if auditor is not None and auditor.size == seq + 1:
            roots_at[seq + 1] = tree.root()
        if derived is not None:
            derived.entry(seq, leaf, domain, kind, record_id)
            derived.nodes(made)
        if resumed is not None:
            resumed.update({(level, idx): h for level, idx, h in made})
            if (seq + 1 - start) % RESUMED_BATCH == 0:
                problem = _first_stored_node_differing(db, resumed)
                resumed.clear()
                if problem is not None:
                    report.problems.append(problem)
                    return report
        prev = stored_hash
        expected = seq + 1
    if resumed:
        problem = _first_stored_node_differing(db, resumed)
        if problem is not None:
            report.problems.append(problem)
            return report
    n = expected
    report.tree_size = n
    larger = [s for s in signed if s > n]
    if larger:
        report.problems.append(
            Problem(
                "truncated",
                f"checkpoint of size {max(larger)} covers more entries than the ledger's {n}",
                n,
            )
        )
        return report

    # §6.3 step 8: without the derived pass, the stored frontier and no node beyond the tree
    if derived is None:
        keys = frontier(n)
        stored = db.nodes(keys)
        for (level, idx), h in zip(keys, tree.hashes(), strict=True):
            if stored.get((level, idx)) != h:
                report.problems.append(Problem(
                    "derived-mismatch", f"stored frontier node ({level}, {idx}) differs",
                    idx << level))
                return report
        if db.node_beyond(n):
            report.problems.append(Problem(
                "derived-mismatch", f"tree_nodes holds a row beyond a tree of {n}", None))
            return report

    # §6.4 auditor's checkpoint.
    if auditor is not None:
        m = auditor.size
        if m > n:
            report.problems.append(
                Problem(
                    "truncated",
                    f"the auditor's checkpoint of size {m} covers more entries than the "
                    f"ledger's {n}",
                    n,
                )
            )
            return report
        root_m = EMPTY_ROOT if m == 0 else roots_at.get(m)
        if root_m != auditor.root:
            report.problems.append(
                Problem(
                    "fork",
                    f"the first {m} entries do not hash to the auditor's root",
                    m - 1 if m else None,
                )
            )
            return report
        if 0 < m < n:
            try:
                path = consistency_path(m, n, _stored_node_reader(db))
                ok = verify_consistency(m, n, auditor.root, tree.root(), path)
            except _MissingNode:
                ok = False
            if not ok:
                # seq: FORMAT.md §6.4 does not say; `bfa verify` names the auditor's size.
                report.problems.append(
                    Problem(
                        "consistency",
                        f"no valid consistency proof from size {m} to {n} can be "
                        f"built from stored nodes",
                        m,
                    )
                )
                return report

    # §6.5 derived pass (full runs only).
    if derived is not None:
        derived.flush()
        if derived.problem is not None:
            report.problems.append(derived.problem)
            return report
        count = db.tree_node_count()
        want = n - bin(n).count("1")
        if count != want:
            report.problems.append(
                Problem(
                    "derived-mismatch",
                    f"tree_nodes holds {count} rows, a tree of {n} needs {want}",
                    None,
                )
            )
            return report
        unrecorded = derived.first_unrecorded()
        if unrecorded is not None:
            report.problems.append(Problem(
                "ingest-unrecorded", "a record no control.ingest covers", unrecorded))
            return report
        report.derived_checked = True
    return report


def _check_entry(
    seq: int, expected: int, leaf: bytes, stored_hash: bytes, prev: bytes
) -> Problem | None:
    """FORMAT.md §6.3 steps 1-5 for one row."""
    if seq != expected:
        return Problem("entry-missing", f"expected seq {expected}, found {seq}", expected)
    if len(leaf) < MIN_LEAF_SIZE or leaf[0] != LEAF_VERSION:
        return Problem("leaf-format", "leaf is not format v1 (version byte or length)", seq)
    _, own_seq, back = leaf_header(leaf)
    if own_seq != seq:
        return Problem("reordered", f"leaf carries seq {own_seq}", seq)
    if entry_hash(leaf) != stored_hash:
        return Problem("payload-changed", "SHA-256(0x00 || leaf) is not the stored entry hash", seq)
    if back != prev:
        return Problem("chain-broken", "leaf does not link to the previous entry hash", seq)
    return None


def _resume(
    db: Database, size: int, signed_root: bytes, report: Report
) -> tuple[bytes, CompactRange] | None:
    """FORMAT.md §6.2 steps 2-5: the stored frontier of ``size`` and the chain head."""
    keys = frontier(size)
    stored = db.nodes(keys)
    if any(k not in stored for k in keys):
        report.problems.append(
            Problem("derived-mismatch", f"frontier nodes of size {size} are missing", None)
        )
        return None
    hashes = [stored[k] for k in keys]
    if fold_frontier(hashes) != signed_root:
        report.problems.append(
            Problem(
                "root-mismatch",
                f"stored frontier of size {size} does not fold to the signed root",
                size - 1,
            )
        )
        return None
    last = db.entry_hash_at(size - 1)
    try:
        path = inclusion_path(size - 1, size, _stored_node_reader(db))
    except _MissingNode:
        path = None
    if (
        last is None
        or path is None
        or not verify_inclusion(size - 1, size, last, path, signed_root)
    ):
        report.problems.append(
            Problem(
                "chain-broken",
                f"entry {size - 1} is not the one the checkpoint of size {size} signed",
                size - 1,
            )
        )
        return None
    return last, CompactRange(size, hashes)


# -- FORMAT.md §4: the vault against the leaves (an extra, not part of §6) ----------------


def commitment(salt: bytes, value: str) -> str:
    """FORMAT.md §4.2: hex SHA-256("bfa-commit/v1" || 0x00 || salt || value)."""
    return hashlib.sha256(b"bfa-commit/v1\x00" + salt + value.encode("utf-8")).hexdigest()


def read_vault_key(path: str) -> bytes:
    """FORMAT.md §4.4 / §5.4: ``keys/vault.key`` holds 64 lowercase hex digits and a newline.

    (A missing final newline is accepted; anything else is a :class:`FormatError`.)
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not VAULT_KEY_RE.match(text):
        raise FormatError(f"{path}: a vault key is 64 lowercase hex digits and a newline")
    return bytes.fromhex(text[:64])


def vault_check(vault_key: bytes) -> str:
    """FORMAT.md §4.4: ``meta.vault_check``, the first 16 hex digits of
    HMAC-SHA256(vault key, "bfa-vault-check/v1")."""
    return hmac.new(vault_key, b"bfa-vault-check/v1", hashlib.sha256).hexdigest()[:16]


def vault_holder(subject: str | None, domain: str, record_id: str) -> str:
    """FORMAT.md §4.4: the holder is ``subject``, or ``record:<domain>:<record_id>``."""
    return subject if subject is not None else f"record:{domain}:{record_id}"


def _gcm_open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """FORMAT.md §4.4: ``nonce (12) || ciphertext || tag (16)`` under AES-256-GCM; raises
    :class:`InvalidTag` when it does not open (a wrong key, data or associated data)."""
    if len(blob) < GCM_NONCE + GCM_TAG:
        raise InvalidTag
    return AESGCM(key).decrypt(blob[:GCM_NONCE], blob[GCM_NONCE:], aad)


def unwrap_data_key(vault_key: bytes, holder: str, wrapped: bytes) -> bytes:
    """FORMAT.md §4.4: a ``vault_keys.wrapped`` opened with the vault key; associated data
    ``"bfa-vault-key/v1" || 0x00 || holder``. Raises :class:`InvalidTag`."""
    data_key = _gcm_open(vault_key, wrapped, b"bfa-vault-key/v1\x00" + holder.encode("utf-8"))
    if len(data_key) != DATA_KEY_SIZE:
        raise InvalidTag
    return data_key


def open_sealed(data_key: bytes, domain: str, record_id: str, fld: str, sealed: bytes) -> str:
    """FORMAT.md §4.4: a ``vault.sealed`` opened with its holder's data key; associated data
    ``"bfa-vault-value/v1" || 0x00 || domain || 0x00 || record_id || 0x00 || field``; the
    plaintext is the clear value's UTF-8. Raises :class:`InvalidTag` (also for bytes that
    open but are not UTF-8)."""
    aad = "\x00".join(("bfa-vault-value/v1", domain, record_id, fld)).encode("utf-8")
    plain = _gcm_open(data_key, sealed, aad)
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidTag from None


def verify_vault(db: Database | str, vault_key: bytes | None = None) -> list[Problem]:
    """FORMAT.md §4.2, §4.4, §4.6: the vault and vault_keys tables against the leaves.

    Not part of `bfa verify` (FORMAT.md §6.5 lists the vault under "Not checked"), but
    §4.2 says anyone with the salt can check a clear value against its commitment, and
    §4.4 says how a sealed value is opened. For each vault row:

    * its entry exists (``vault-orphan``);
    * exactly one of ``clear_value`` (a row written before sealing) and ``sealed`` is set
      (``vault-layout``; such a row's commitment is not checked);
    * a sealed row's holder (``subject``, else ``record:<domain>:<record_id>``) has a
      ``vault_keys`` row (``vault-no-data-key``);
    * with ``vault_key`` (32 bytes): the holder's data key unwraps and the sealed value
      opens, each with its associated data (``vault-sealed``: a wrong key, a value or data
      key moved to another row or changed);
    * the salt and the clear value (opened, or a legacy ``clear_value``) open the leaf's
      ``_commitments[field]`` (``vault-commitment``);
    * ``subject`` is the leaf's ``person_id`` pseudonym, else its ``payer_id``, else NULL
      (``vault-subject``);
    * no ``control.forget`` appended after the record names that subject
      (``vault-not-forgotten``).

    Without ``vault_key`` a sealed value cannot be opened: its ``vault-sealed`` and
    ``vault-commitment`` checks are skipped; every other check runs (legacy rows' commitments
    included). With it, ``meta.vault_check``, when present, must be the key's check value
    (else :class:`FormatError`: not this ledger's vault key, as ``bfa`` refuses it, §4.4).

    Then each ``vault_keys`` row whose holder is the ``subject`` of a ``control.forget``
    (which deletes it, §4.6) must be used by a vault row of a record appended after that
    subject's last forget (a new ingest makes a new key, §4.4), else
    ``vault-key-not-forgotten`` at the forget's seq. (FORMAT.md gives a ``vault_keys`` row
    no time: a key that survived a forget and was reused by a later ingest cannot be told
    from a new one.)

    Problems are in the order of the record's ``seq`` (a row's own problems first), then
    those of ``vault_keys`` in the order of the holder.
    """
    if isinstance(db, str):
        with Database(db) as opened:
            return verify_vault(opened, vault_key)
    if vault_key is not None:
        if len(vault_key) != DATA_KEY_SIZE:
            raise FormatError("a vault key is 32 bytes")
        stored = db.meta("vault_check")
        if stored is not None and stored != vault_check(vault_key):
            raise FormatError(
                f"not this ledger's vault key: meta.vault_check is {stored!r}, "
                f"the key's check value is {vault_check(vault_key)!r} (FORMAT.md §4.4)"
            )
    forgets: dict[str, int] = {}  # subject -> seq of its last control.forget
    for seq, leaf in db.stream(
        "SELECT seq, leaf FROM entries WHERE domain = 'control' AND kind = 'forget' ORDER BY seq"
    ):
        try:
            record, _ = decode_leaf(bytes(leaf))
        except FormatError:
            continue  # verify_ledger reports it (leaf-format)
        forgets[str(record.get("subject"))] = int(seq)
    used_after_forget: set[str] = set()  # forgotten subjects with a vault row appended later
    data_keys: dict[tuple[str, bytes], bytes | None] = {}  # (holder, wrapped) -> data key
    problems: list[Problem] = []
    rows = db.stream(
        "SELECT e.seq, e.leaf, v.domain, v.record_id, v.field, v.subject, v.salt, "
        "v.clear_value, v.sealed, k.wrapped FROM vault v "
        "LEFT JOIN entries e ON e.domain = v.domain AND e.record_id = v.record_id "
        "LEFT JOIN vault_keys k ON k.holder = "
        "COALESCE(v.subject, 'record:' || v.domain || ':' || v.record_id) "
        "ORDER BY e.seq, v.field"
    )
    for seq, leaf, domain, record_id, fld, subject, salt, clear, sealed, wrapped in rows:
        where = f"vault row ({domain}, {record_id}, {fld})"
        value: str | None = None  # the clear value whose commitment is checked
        if (clear is None) == (sealed is None):
            which = "both clear_value and sealed" if clear is not None else "neither value"
            problems.append(Problem("vault-layout", f"{where} holds {which}", _seq(seq)))
        elif clear is not None:
            value = clear  # written before revision 0013 (FORMAT.md §4.4)
        else:
            holder = vault_holder(subject, domain, record_id)
            if wrapped is None:
                problems.append(
                    Problem(
                        "vault-no-data-key",
                        f"{where} is sealed but its holder {holder!r} has no vault_keys row",
                        _seq(seq),
                    )
                )
            elif vault_key is not None:
                data_key = _data_key(data_keys, vault_key, holder, bytes(wrapped))
                value, why = _open_row(data_key, holder, domain, record_id, fld, bytes(sealed))
                if why:
                    problems.append(Problem("vault-sealed", f"{where}: {why}", _seq(seq)))
        if seq is None:
            problems.append(Problem("vault-orphan", f"{where} names no entry", None))
            continue
        seq = int(seq)
        try:
            record, _ = decode_leaf(bytes(leaf))
        except FormatError as e:
            problems.append(Problem("leaf-format", f"{where}: its leaf does not decode: {e}", seq))
            continue
        if value is not None and record.get("_commitments", {}).get(fld) != commitment(
            bytes(salt), value
        ):
            problems.append(
                Problem("vault-commitment", f"{where} does not open the leaf's commitment", seq)
            )
        want = record.get("person_id", record.get("payer_id"))
        if subject != want:
            problems.append(
                Problem(
                    "vault-subject",
                    f"{where} has subject {subject!r}, the leaf's party pseudonym is {want!r}",
                    seq,
                )
            )
        if subject is not None and subject in forgets:
            if forgets[subject] > seq:
                problems.append(
                    Problem(
                        "vault-not-forgotten",
                        f"{where} outlived a control.forget of its subject",
                        seq,
                    )
                )
            else:
                used_after_forget.add(subject)
    for (holder,) in db.stream("SELECT holder FROM vault_keys ORDER BY holder"):
        if holder in forgets and holder not in used_after_forget:
            problems.append(
                Problem(
                    "vault-key-not-forgotten",
                    f"vault_keys row of {holder!r} outlived its control.forget, and no vault "
                    "row of a later record uses it",
                    forgets[holder],
                )
            )
    return problems


def _seq(seq: Any) -> int | None:
    return None if seq is None else int(seq)


def _data_key(
    cache: dict[tuple[str, bytes], bytes | None], vault_key: bytes, holder: str, wrapped: bytes
) -> bytes | None:
    """The holder's data key unwrapped (FORMAT.md §4.4), None when it does not open."""
    if (holder, wrapped) not in cache:
        if len(cache) >= 100_000:
            cache.clear()
        try:
            cache[(holder, wrapped)] = unwrap_data_key(vault_key, holder, wrapped)
        except InvalidTag:
            cache[(holder, wrapped)] = None
    return cache[(holder, wrapped)]


def _open_row(
    data_key: bytes | None, holder: str, domain: str, record_id: str, fld: str, sealed: bytes
) -> tuple[str | None, str]:
    """Open one sealed row (FORMAT.md §4.4): (clear value, "") or (None, why it did not)."""
    if data_key is None:
        return None, f"the data key of its holder {holder!r} does not open with the vault key"
    try:
        return open_sealed(data_key, domain, record_id, fld, sealed), ""
    except InvalidTag:
        return None, f"the sealed value does not open with the data key of {holder!r}"


# -- FORMAT.md §12: proof bundles (BagIt, RFC 8493) ---------------------------------------

BUNDLE_FORMAT = "bfa-bundle/1"  # FORMAT.md §12.1, §12.3
BUNDLE_CHECKS = (  # FORMAT.md §12.5, in order
    "bag", "signature", "checkpoint", "entries", "vouchers", "disclosures", "closure",
    "consistency", "findings",
)
# FORMAT.md §12.5 step 1: bagit.txt declares BagIt-Version 1.0 (0.97 also accepted) and
# Tag-File-Character-Encoding UTF-8 (RFC 8493 §2.1.1), two lines, each ending in LF, CR LF
# or CR. The encoding's name is matched without regard to letter case (IANA character set
# names make no distinction between upper and lower case).
BAG_DECLARATION_RE = re.compile(
    r"BagIt-Version: (1\.0|0\.97)(?:\r\n|\r|\n)"
    r"Tag-File-Character-Encoding: (?i:UTF-8)(?:\r\n|\r|\n)"
)
BAG_ALGORITHMS = ("sha256", "sha512")  # FORMAT.md §12: both, payload and tag manifests
BUNDLE_SIG = "bundle.sig"  # FORMAT.md §12.4: the one file no manifest lists
ENTRY_ROLES = ("scope", "closure", "history")  # FORMAT.md §12.1, §12.2
# FORMAT.md §12.1: the files of a bundle; §12.5 step 1 "no file but those of §12.1"
LAYOUT_FILES = frozenset({
    "bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt",
    "tagmanifest-sha256.txt", "tagmanifest-sha512.txt", BUNDLE_SIG, "index.html",
    "bfa/bundle.json", "bfa/entries.jsonl", "bfa/vouchers.jsonl", "bfa/checkpoint.note",
    "bfa/since.note", "bfa/consistency.txt", "bfa/findings.json", "bfa/disclosures.jsonl",
    "bfa/verifier.key", "bfa/exporter.key",
})
LAYOUT_RE = re.compile(  # §12.1: <seq> decimal without leading zeros, <sha256> lowercase hex
    r"data/entries/(?:0|[1-9][0-9]*)\.leaf|data/vouchers/[0-9a-f]{64}"
    r"|bfa/proofs/(?:0|[1-9][0-9]*)\.tlog-proof"
)
MANIFEST_RE = re.compile(r"^(tag)?manifest-([a-z0-9]+)\.txt$")  # RFC 8493 §2.1.3, §2.2.1
MANIFEST_LINE_RE = re.compile(r"^([0-9A-Fa-f]+)[ \t]+(\S.*)$")  # RFC 8493 §2.1.3
OXUM_RE = re.compile(r"^([0-9]+)\.([0-9]+)$")  # RFC 8493 §2.2.2
WORKFLOW_OPEN = "open"  # FORMAT.md §2.5 control.break status; §12.5 step 9
READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Verdict:
    """One verdict of FORMAT.md §12.5: ``ok`` True (ok), False (FAIL) or None (``-``)."""

    check: str
    ok: bool | None
    detail: str
    file: str | None = None
    entry: int | None = None

    def __str__(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "-   "}[self.ok]
        where = f" [{self.file}{'' if self.entry is None else f', entry {self.entry}'}]"
        return f"{mark} {self.check:<12} {self.detail}{where if self.file else ''}"


class _BundleFail(Exception):
    """A check's failure: what is wrong, the file and, where there is one, the entry."""

    def __init__(self, detail: str, file: str | None = None, entry: int | None = None) -> None:
        super().__init__(detail)
        self.detail, self.file, self.entry = detail, file, entry


class _Skip(Exception):
    """Nothing to check: the verdict is ``-`` (None)."""


def _path_spelling(path: str) -> str | None:
    """FORMAT.md §12.5 step 1: one spelling per path; the reason it is not, or None."""
    if not path:
        return "an empty path"
    if "\\" in path:
        return "a backslash"
    if path.startswith("/"):
        return "an absolute path"
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "an empty, '.' or '..' path segment"
    return None


def _fold(path: str) -> str:
    """Paths "differing only in case or Unicode normalisation" fold to one key."""
    return unicodedata.normalize("NFC", path).casefold()


def _bag_walk(root: Path) -> dict[str, int]:
    """Every regular file of the bag, relative path -> size; no links or special files."""
    out: dict[str, int] = {}
    folded: dict[str, str] = {}
    stack = [("", root)]
    while stack:
        rel_dir, directory = stack.pop()
        with os.scandir(directory) as it:
            for de in it:
                rel = f"{rel_dir}{de.name}"
                st = os.lstat(de.path)
                if stat.S_ISLNK(st.st_mode):
                    raise _BundleFail("a symbolic link (a bag holds only files)", rel)
                why = _path_spelling(rel)
                if why:
                    raise _BundleFail(f"the path has {why}", rel)
                key = _fold(rel)
                if key in folded:
                    raise _BundleFail(
                        f"differs from {folded[key]!r} only in case or Unicode normalisation", rel
                    )
                folded[key] = rel
                if stat.S_ISDIR(st.st_mode):
                    stack.append((rel + "/", Path(de.path)))
                elif stat.S_ISREG(st.st_mode):
                    out[rel] = st.st_size
                else:
                    raise _BundleFail("a special file (a bag holds only files)", rel)
    return out


def _digests(path: Path, algorithms: Iterable[str]) -> dict[str, str]:
    hs = {a: hashlib.new(a) for a in algorithms}
    with path.open("rb") as f:
        while chunk := f.read(READ_CHUNK):
            for h in hs.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hs.items()}


def _tag_lines(data: bytes, name: str) -> list[str]:
    """The lines of a BagIt tag file (RFC 8493 §2.1.3, §2.2.2: UTF-8, each line ended by
    LF, CR or CRLF; a last line without one is taken as it is)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _BundleFail("not UTF-8 text", name) from e
    lines = re.split(r"\r\n|\r|\n", text)
    return lines[:-1] if lines[-1] == "" else lines


def _jsonl_lines(data: bytes, name: str) -> list[str]:
    """FORMAT.md §12: one JSON object per LF-ended line (a CR before the LF is JSON
    whitespace)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _BundleFail("not UTF-8 text", name) from e
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def _percent_decode(path: str) -> str:
    """RFC 8493 §2.1.3 (BagIt 1.0): CR, LF and '%' (only those) are percent-encoded."""
    return re.sub(
        r"%(0[Dd]|0[Aa]|25)", lambda m: {"0d": "\r", "0a": "\n", "25": "%"}[m[1].lower()], path
    )


def _read_manifest(root: Path, name: str, algorithm: str, version: str) -> dict[str, str]:
    """RFC 8493 §2.1.3 / §2.2.1: ``<hex>  <path>`` lines; path -> lowercase hex digest."""
    size = hashlib.new(algorithm).digest_size * 2
    out: dict[str, str] = {}
    folded: set[str] = set()
    for line in _tag_lines((root / name).read_bytes(), name):
        m = MANIFEST_LINE_RE.match(line)
        if not m:
            raise _BundleFail(f"not a '<checksum> <path>' line: {line[:60]!r}", name)
        digest, path = m[1].lower(), m[2]
        if version == "1.0":
            if re.search(r"%(?!0[DdAa]|25)", path):
                raise _BundleFail(
                    f"a '%' that begins none of %25, %0A, %0D: {path[:60]!r}", name)
            path = _percent_decode(path)
        if len(digest) != size:
            raise _BundleFail(f"a {algorithm} checksum of {len(digest)} hex digits", name)
        why = _path_spelling(path)
        if why:
            raise _BundleFail(f"lists a path with {why}: {path[:60]!r}", name)
        if path in out or _fold(path) in folded:
            raise _BundleFail(f"lists {path!r} twice (or in two spellings)", name)
        out[path] = digest
        folded.add(_fold(path))
    return out


def _bag_info(root: Path) -> list[tuple[str, str]]:
    """RFC 8493 §2.2.2: a label, ':', one space or tab, the value; continuation lines are
    indented. Absent: no elements (the file is optional in RFC 8493, see verify_bundle)."""
    name = "bag-info.txt"
    if not (root / name).is_file():
        return []
    out: list[tuple[str, str]] = []
    for line in _tag_lines((root / name).read_bytes(), name):
        if line[:1] in (" ", "\t"):
            if not out:
                raise _BundleFail("a continuation line before any label", name)
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip(" \t"))
            continue
        label, colon, value = line.partition(":")
        if not colon or not label or label != label.strip() or value[:1] not in (" ", "\t"):
            raise _BundleFail(f"not a 'Label: value' line: {line[:60]!r}", name)
        out.append((label, value[1:]))
    return out


def _check_bag(root: Path) -> tuple[str, dict[str, int]]:
    """FORMAT.md §12.5 step 1 (RFC 8493 §3, stricter); returns (detail, payload sizes)."""
    files = _bag_walk(root)
    declaration = (root / "bagit.txt").read_bytes() if "bagit.txt" in files else None
    if declaration is None:
        raise _BundleFail("missing: not a bag", "bagit.txt")
    try:
        m = BAG_DECLARATION_RE.fullmatch(declaration.decode("utf-8"))
    except UnicodeDecodeError:
        m = None
    if m is None:
        raise _BundleFail(
            "not the two lines 'BagIt-Version: 1.0' (or 0.97) and "
            "'Tag-File-Character-Encoding: UTF-8', each ended by LF, CR LF or CR", "bagit.txt"
        )
    version = m[1]
    if "fetch.txt" in files:
        raise _BundleFail("a bundle carries every payload file itself: no fetch.txt", "fetch.txt")
    for rel in sorted(files):
        if rel not in LAYOUT_FILES and not LAYOUT_RE.fullmatch(rel):
            raise _BundleFail("not a file of the bundle's layout (FORMAT.md §12.1)", rel)
    manifests: dict[str, str] = {}
    tagmanifests: dict[str, str] = {}
    for rel in files:
        m = MANIFEST_RE.match(rel)
        if m:
            (tagmanifests if m[1] else manifests)[m[2]] = rel
    for alg in BAG_ALGORITHMS:
        for kind, have in (("manifest", manifests), ("tagmanifest", tagmanifests)):
            if alg not in have:
                raise _BundleFail("missing", f"{kind}-{alg}.txt")
    payload = {p: s for p, s in files.items() if p.startswith("data/")}
    tags = {p for p in files if not p.startswith("data/")} - set(tagmanifests.values())
    tags.discard(BUNDLE_SIG)
    listed: list[tuple[str, dict[str, str], str]] = []
    for alg, name in sorted(manifests.items()):
        entries = _read_manifest(root, name, alg, version)
        for path in entries:
            if not path.startswith("data/"):
                raise _BundleFail(f"lists {path!r}, which is not a payload file", name)
        for path in payload:
            if path not in entries:
                raise _BundleFail(f"not listed in {name}", path)
        listed.append((alg, entries, name))
    for alg, name in sorted(tagmanifests.items()):
        entries = _read_manifest(root, name, alg, version)
        for path in entries:
            if path.startswith("data/") or path in tagmanifests.values():
                raise _BundleFail(f"lists {path!r}, which is not a tag file it may list", name)
            if path == BUNDLE_SIG:
                raise _BundleFail("lists bundle.sig, which no manifest lists", name)
        for path in sorted(tags):
            if path not in entries:
                raise _BundleFail(f"not listed in {name}", path)
        listed.append((alg, entries, name))
    wanted: dict[str, set[str]] = {}
    for alg, entries, _ in listed:
        for path in entries:
            wanted.setdefault(path, set()).add(alg)
    for path, algs in sorted(wanted.items()):
        if path not in files:
            lister = next(n for _, e, n in listed if path in e)
            raise _BundleFail(f"listed in {lister} but missing", path)
        got = _digests(root / path, algs)
        for alg, entries, name in listed:
            if path in entries and entries[path] != got[alg]:
                raise _BundleFail(f"does not match its {alg} checksum in {name}", path)
    # RFC 8493 §2.2.2: reserved element names are case-insensitive; Payload-Oxum is given
    # at most once and, when given, must be right
    oxum = [v for k, v in _bag_info(root) if k.lower() == "payload-oxum"]
    octets, streams = sum(payload.values()), len(payload)
    if len(oxum) > 1:
        raise _BundleFail("Payload-Oxum more than once", "bag-info.txt")
    if oxum:
        m = OXUM_RE.match(oxum[0])
        if not m:
            raise _BundleFail(f"Payload-Oxum {oxum[0]!r} is not '<octets>.<files>'",
                              "bag-info.txt")
        if (int(m[1]), int(m[2])) != (octets, streams):
            raise _BundleFail(
                f"Payload-Oxum {oxum[0]} but the payload is {octets}.{streams}", "bag-info.txt"
            )
    return f"{streams} payload file(s), {octets} bytes, all listed", payload


def _json_file(root: Path, name: str) -> Any:
    try:
        return strict_json_loads((root / name).read_bytes())
    except OSError as e:
        raise _BundleFail(f"cannot read: {e.strerror or e}", name) from e
    except (UnicodeDecodeError, ValueError) as e:
        raise _BundleFail(f"not JSON: {e}", name) from e


def _jsonl_file(root: Path, name: str) -> list[Any]:
    try:
        data = (root / name).read_bytes()
    except OSError as e:
        raise _BundleFail(f"cannot read: {e.strerror or e}", name) from e
    out = []
    for i, line in enumerate(_jsonl_lines(data, name), 1):
        try:
            out.append(strict_json_loads(line.encode("utf-8")))
        except ValueError as e:
            raise _BundleFail(f"line {i} is not JSON: {e}", name) from e
    return out


def _text_file(root: Path, name: str) -> str:
    try:
        return (root / name).read_bytes().decode("utf-8")
    except OSError as e:
        raise _BundleFail(f"cannot read: {e.strerror or e}", name) from e
    except UnicodeDecodeError as e:
        raise _BundleFail("not UTF-8 text", name) from e


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class _BundleEntry:
    """A line of ``bfa/entries.jsonl`` whose leaf and proof checked out (FORMAT.md §12.5 4)."""

    seq: int
    domain: str
    kind: str
    id: str
    role: str
    record: dict[str, Any]


@dataclass
class _BundleState:
    root: Path
    claims: dict[str, Any] = field(default_factory=dict)
    checkpoint: Checkpoint | None = None
    checkpoint_note: str = ""
    entries: list[_BundleEntry] = field(default_factory=list)
    payload: dict[str, int] = field(default_factory=dict)


def _check_count(st: _BundleState, member: str, n: int) -> None:
    """FORMAT.md §12.3 ``counts``: each member a JSON integer, the number §12.3 defines."""
    counts = st.claims.get("counts")
    value = counts.get(member) if isinstance(counts, dict) else None
    if not _int(value) or value != n:
        raise _BundleFail(f"counts.{member} is {value!r}, not {n}", "bfa/bundle.json")


def _check_bag_and_claims(st: _BundleState) -> str:
    detail, st.payload = _check_bag(st.root)
    claims = _json_file(st.root, "bfa/bundle.json")
    if not isinstance(claims, dict) or claims.get("format") != BUNDLE_FORMAT:
        raise _BundleFail(f"'format' is not {BUNDLE_FORMAT!r}", "bfa/bundle.json")
    st.claims = claims
    return detail


def _check_signature(st: _BundleState, exporter_key_text: str | None) -> str:
    """FORMAT.md §12.5 step 2 (§12.4, §5.2)."""
    if not (st.root / BUNDLE_SIG).is_file():
        raise _BundleFail("missing: the bundle is not signed", BUNDLE_SIG)
    try:
        key = parse_verifier_key(_text_file(st.root, "bfa/exporter.key"))
    except FormatError as e:
        raise _BundleFail(f"not a verifier key: {e}", "bfa/exporter.key") from e
    if exporter_key_text is not None and parse_verifier_key(exporter_key_text) != key:
        raise _BundleFail("is not the exporter key given", "bfa/exporter.key")
    try:
        text = open_note(_text_file(st.root, BUNDLE_SIG), [key])
    except (FormatError, ProofError) as e:
        raise _BundleFail(f"does not open with the exporter key {key.name}: {e}", BUNDLE_SIG) from e
    bundle_id = st.claims.get("id")
    if not isinstance(bundle_id, str) or any(ord(c) < 0x20 for c in bundle_id):
        raise _BundleFail("'id' is not a one-line text", "bfa/bundle.json")
    # §12.4: four LF-ended lines; the text of a note is compared as it stands (its UTF-8
    # bytes): open_note already refused a CR anywhere in the note (§5.2)
    want = [BUNDLE_FORMAT, bundle_id]
    for alg in BAG_ALGORITHMS:  # §12.4: the tag manifests' digests, not their text
        name = f"tagmanifest-{alg}.txt"
        try:
            raw = (st.root / name).read_bytes()
        except OSError as e:
            raise _BundleFail(f"cannot read: {e.strerror or e}", name) from e
        want.append(f"{name} {alg} {hashlib.new(alg, raw).hexdigest()}")
    if text.encode("utf-8") != "".join(line + "\n" for line in want).encode("utf-8"):
        raise _BundleFail("the signed text is not the four lines of bfa-bundle/1, the bundle "
                          "id and its tag manifests' digests", BUNDLE_SIG)
    return f"bundle {bundle_id} and its tag manifests signed by exporter key {key.name}"


def _check_checkpoint(st: _BundleState, key: VerifierKey) -> str:
    """FORMAT.md §12.5 step 3."""
    name = "bfa/checkpoint.note"
    claims = st.claims
    origin, claimed = claims.get("origin"), claims.get("checkpoint")
    if not isinstance(origin, str) or not isinstance(claimed, dict):
        raise _BundleFail("no 'origin' or 'checkpoint' claim", "bfa/bundle.json")
    st.checkpoint_note = _text_file(st.root, name)
    try:
        cp = open_checkpoint(st.checkpoint_note, key, origin)
    except (FormatError, ProofError) as e:
        raise _BundleFail(f"does not open with the verifier key for {origin}: {e}", name) from e
    root_b64 = base64.b64encode(cp.root).decode("ascii")
    size = claimed.get("size")
    if not _int(size) or size != cp.size or claimed.get("root") != root_b64:
        raise _BundleFail(
            f"size {cp.size}, root {root_b64}: not what bfa/bundle.json states", name
        )
    st.checkpoint = cp
    return f"size {cp.size}, signed by {key.name}"


def _check_entries(st: _BundleState) -> str:
    """FORMAT.md §12.5 step 4 (§2.1, §2.2, §7.1)."""
    name = "bfa/entries.jsonl"
    cp = st.checkpoint
    assert cp is not None
    seqs: set[int] = set()
    names: set[tuple[str, str]] = set()
    roles = dict.fromkeys(ENTRY_ROLES, 0)
    for line in _jsonl_file(st.root, name):
        if not isinstance(line, dict):
            raise _BundleFail("a line is not a JSON object", name)
        seq, role = line.get("seq"), line.get("role")
        if not _int(seq) or seq < 0:
            raise _BundleFail(f"'seq' {seq!r} is not an integer", name)
        if role not in ENTRY_ROLES:
            raise _BundleFail(f"'role' {role!r} is none of {ENTRY_ROLES}", name, seq)
        domain, kind, rid, hexhash = (line.get(k) for k in ("domain", "kind", "id", "hash"))
        if not all(isinstance(v, str) for v in (domain, kind, rid, hexhash)):
            raise _BundleFail("'domain', 'kind', 'id' and 'hash' must be strings", name, seq)
        if seq in seqs:
            raise _BundleFail(f"seq {seq} twice", name, seq)
        if (domain, rid) in names:
            raise _BundleFail(f"record {domain}:{rid} twice", name, seq)
        seqs.add(seq)
        names.add((domain, rid))
        leaf_name = f"data/entries/{seq}.leaf"
        try:
            leaf = (st.root / leaf_name).read_bytes()
        except OSError as e:
            raise _BundleFail(f"cannot read: {e.strerror or e}", leaf_name, seq) from e
        try:
            record, _ = decode_leaf(leaf)
        except FormatError as e:
            raise _BundleFail(f"does not decode: {e}", leaf_name, seq) from e
        if leaf_header(leaf)[1] != seq:
            raise _BundleFail(f"is the leaf of entry {leaf_header(leaf)[1]}", leaf_name, seq)
        if record.get("type") != f"{domain}.{kind}" or record.get("id") != rid:
            raise _BundleFail(
                f"holds {record.get('type')} {record.get('id')}, not {domain}.{kind} {rid}",
                leaf_name, seq,
            )
        h = entry_hash(leaf)
        if h.hex() != hexhash:
            raise _BundleFail("the entry hash is not the line's 'hash'", leaf_name, seq)
        proof_name = f"bfa/proofs/{seq}.tlog-proof"
        try:
            proof = parse_tlog_proof(_text_file(st.root, proof_name))
        except FormatError as e:
            raise _BundleFail(f"does not parse: {e}", proof_name, seq) from e
        if proof.index != seq:
            raise _BundleFail(f"'index' is {proof.index}", proof_name, seq)
        if proof.extra != leaf:
            raise _BundleFail("'extra' is not the entry's leaf", proof_name, seq)
        if proof.checkpoint_note != st.checkpoint_note:
            raise _BundleFail("its checkpoint is not bfa/checkpoint.note", proof_name, seq)
        if (
            seq >= cp.size
            or len(proof.hashes) != inclusion_path_length(seq, cp.size)
            or not verify_inclusion(seq, cp.size, h, proof.hashes, cp.root)
        ):
            raise _BundleFail(
                f"the audit path does not lead to the root of size {cp.size}", proof_name, seq
            )
        roles[role] += 1
        st.entries.append(_BundleEntry(seq, domain, kind, rid, role, record))
    leaves = [p for p in st.payload if p.startswith("data/entries/")]
    if len(leaves) != len(st.entries):
        raise _BundleFail(
            f"{len(leaves)} leaf file(s) under data/entries/ for {len(st.entries)} line(s)", name
        )
    _check_count(st, "entries", len(st.entries))
    _check_count(st, "scoped", roles["scope"])
    by_role = ", ".join(f"{n} {r}" for r, n in sorted(roles.items()) if n)
    return f"{len(st.entries)} entries proven into the checkpoint of size {cp.size} ({by_role})"


def _check_vouchers(st: _BundleState) -> str:
    """FORMAT.md §12.5 step 5."""
    files = {p[len("data/vouchers/"):]: s for p, s in st.payload.items()
             if p.startswith("data/vouchers/")}
    naming: dict[str, list[str]] = {}
    for e in sorted(st.entries, key=lambda e: e.seq):
        if e.domain != "archive":
            continue
        digest, size = e.record.get("sha256"), e.record.get("size")
        fname = f"data/vouchers/{digest}"
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise _BundleFail("the voucher record has no lowercase hex 'sha256'",
                              f"data/entries/{e.seq}.leaf", e.seq)
        if digest not in files:
            raise _BundleFail("missing: the voucher file of an archive entry", fname, e.seq)
        if _digests(st.root / fname, ["sha256"])["sha256"] != digest:
            raise _BundleFail("does not hash to its name", fname, e.seq)
        if files[digest] != size:
            raise _BundleFail(f"{files[digest]} bytes, the record says {size!r}", fname, e.seq)
        ids = naming.setdefault(digest, [])
        if e.id not in ids:
            ids.append(e.id)
    for digest in sorted(files):
        if digest not in naming:
            raise _BundleFail("no archive entry of the bundle names it", f"data/vouchers/{digest}")
    name = "bfa/vouchers.jsonl"  # FORMAT.md §12.1: always there (empty without vouchers)
    if not (st.root / name).is_file():
        raise _BundleFail("missing", name)
    lines = _jsonl_file(st.root, name)
    seen: set[str] = set()
    for line in lines:
        if not isinstance(line, dict):
            raise _BundleFail("a line is not a JSON object", name)
        digest, size, records = line.get("sha256"), line.get("size"), line.get("records")
        if not isinstance(digest, str) or not _int(size) or not isinstance(records, list):
            raise _BundleFail("a line without 'sha256' (text), 'size' (an integer) and "
                              "'records' (a list)", name)
        if digest not in naming:
            raise _BundleFail(f"lists {digest!r}, not a voucher file of the bundle", name)
        if digest in seen:
            raise _BundleFail(f"lists {digest} twice", name)
        seen.add(digest)
        if size != files[digest]:
            raise _BundleFail(f"size {size} for {digest}, the file has {files[digest]} bytes",
                              name)
        if records != naming[digest]:
            raise _BundleFail(
                f"lists {records!r} for {digest}, the voucher entries naming it "
                f"are {naming[digest]!r}", name)
    if seen != set(naming):
        raise _BundleFail(f"lists {len(seen)} of the {len(naming)} voucher files", name)
    _check_count(st, "vouchers", len(files))
    if not naming:
        raise _Skip("no voucher records")
    return f"{len(naming)} voucher file(s) match their records"


def _check_disclosures(st: _BundleState) -> str:
    """FORMAT.md §12.5 step 6 (§4.2, §12.4)."""
    name = "bfa/disclosures.jsonl"
    disclosure = st.claims.get("disclosure")
    stated = disclosure is not None
    exists = (st.root / name).exists()
    if stated != exists:
        raise _BundleFail(
            "exists, but bfa/bundle.json states no disclosure" if exists
            else "missing, but bfa/bundle.json states a disclosure", name)
    if not exists:
        _check_count(st, "disclosed", 0)
        raise _Skip("none (personal data only as pseudonyms)")
    fields = disclosure.get("fields") if isinstance(disclosure, dict) else None
    if not isinstance(fields, list):
        raise _BundleFail("'disclosure' without a list of 'fields'", "bfa/bundle.json")
    by_seq = {e.seq: e for e in st.entries}
    n = 0
    for line in _jsonl_file(st.root, name):
        if not isinstance(line, dict):
            raise _BundleFail("a line is not a JSON object", name)
        seq = line.get("seq")
        e = by_seq.get(seq) if _int(seq) else None
        if e is None:
            raise _BundleFail(f"discloses entry {seq!r}, which is not an entry of the bundle",
                              name, seq if _int(seq) else None)
        if (line.get("domain"), line.get("id")) != (e.domain, e.id):
            raise _BundleFail(
                f"discloses {line.get('domain')}:{line.get('id')} as entry {seq}, which is "
                f"{e.domain}:{e.id}", name, seq)
        fld, value, salt_hex = line.get("field"), line.get("value"), line.get("salt")
        if not isinstance(fld, str) or fld not in fields:
            raise _BundleFail(f"discloses {fld!r}, which is not one of disclosure.fields "
                              f"{fields!r}", name, seq)
        if not isinstance(value, str) or not isinstance(salt_hex, str) or not re.fullmatch(
            r"(?:[0-9a-f]{2})+", salt_hex
        ):
            raise _BundleFail("'value' and 'salt' (hex) must be strings", name, seq)
        commitments = e.record.get("_commitments")
        want = commitments.get(fld) if isinstance(commitments, dict) and isinstance(
            fld, str) else None
        if want is None:
            raise _BundleFail(f"the entry has no commitment for {fld!r}", name, seq)
        if commitment(bytes.fromhex(salt_hex), value) != want:
            raise _BundleFail(f"the value of {fld} does not open its commitment", name, seq)
        n += 1
    _check_count(st, "disclosed", n)
    return f"{n} disclosed value(s) open their commitments"


def _named_ids(record: dict[str, Any]) -> list[str]:
    """FORMAT.md §12.5 step 7: the ids a payload names (``allocations[].event``, ``refs``,
    ``corrects``, ``returns``)."""
    out: list[str] = []
    allocations = record.get("allocations")
    if isinstance(allocations, list):
        out += [a["event"] for a in allocations
                if isinstance(a, dict) and isinstance(a.get("event"), str)]
    refs = record.get("refs")
    if isinstance(refs, list):
        out += [r for r in refs if isinstance(r, str)]
    out += [record[k] for k in ("corrects", "returns") if isinstance(record.get(k), str)]
    return out


def _scope_claim(st: _BundleState, member: str) -> list[Any]:
    """``scope.<member>`` of ``bfa/bundle.json`` (§12.3: an array)."""
    scope = st.claims.get("scope")
    value = scope.get(member) if isinstance(scope, dict) else None
    if not isinstance(value, list):
        raise _BundleFail(f"scope.{member} is not an array", "bfa/bundle.json")
    return value


def _check_closure(st: _BundleState) -> str:
    """FORMAT.md §12.5 step 7."""
    scoped = {e.id for e in st.entries if e.role == "scope"}
    for rid in _scope_claim(st, "records"):
        if not isinstance(rid, str) or rid not in scoped:
            raise _BundleFail(f"scope.records names {rid!r}, which is the id of no scope entry",
                              "bfa/bundle.json")
    ids = {e.id for e in st.entries}
    links = 0
    for e in sorted(st.entries, key=lambda e: e.seq):
        if e.role != "scope":
            continue
        for rid in _named_ids(e.record):
            if rid not in ids:
                raise _BundleFail(
                    f"{e.domain}:{e.id} names {rid}, which is not in the bundle",
                    "bfa/entries.jsonl", e.seq)
            links += 1
    return f"{links} link(s) of the scoped records are in the bundle"


def _check_consistency(st: _BundleState, key: VerifierKey) -> str:
    """FORMAT.md §12.5 step 8 (§7.2)."""
    since = st.claims.get("since")
    if since is None:
        for name in ("bfa/since.note", "bfa/consistency.txt"):
            if (st.root / name).exists():
                raise _BundleFail("there, but bfa/bundle.json states no since checkpoint", name)
        raise _Skip("no since checkpoint")
    if not isinstance(since, dict) or not _int(since.get("size")):
        raise _BundleFail("'since' is neither null nor {\"size\": M}", "bfa/bundle.json")
    origin = st.claims.get("origin")
    cp = st.checkpoint
    assert cp is not None and isinstance(origin, str)
    try:
        old = open_checkpoint(_text_file(st.root, "bfa/since.note"), key, origin)
    except (FormatError, ProofError) as e:
        raise _BundleFail(f"does not open with the verifier key for {origin}: {e}",
                          "bfa/since.note") from e
    name = "bfa/consistency.txt"
    try:
        proof = parse_consistency_proof(_text_file(st.root, name))
    except FormatError as e:
        raise _BundleFail(f"does not parse: {e}", name) from e
    if proof.old != old.size:
        raise _BundleFail(f"'old {proof.old}', bfa/since.note has size {old.size}", name)
    if since["size"] != proof.old:
        raise _BundleFail(f"since.size is {since['size']}, the since checkpoint's size "
                          f"{proof.old}", "bfa/bundle.json")
    if proof.checkpoint_note != st.checkpoint_note:
        raise _BundleFail("its checkpoint is not bfa/checkpoint.note", name)
    if old.size == cp.size:
        if proof.hashes or old.root != cp.root:
            raise _BundleFail("equal sizes need no hashes and equal roots", name)
    elif not 0 < old.size < cp.size or not verify_consistency(
        old.size, cp.size, old.root, cp.root, proof.hashes
    ):
        raise _BundleFail(f"no consistency from size {old.size} to {cp.size}", name)
    return f"size {cp.size} extends the supervisor's size {old.size}"


def _check_findings_history(st: _BundleState) -> str:
    """FORMAT.md §12.5 step 9 up to "Then": the workflow histories, ``scope.breaks`` and
    ``counts.breaks`` (the re-derivation, and ``rules_digest``, are left out: see
    :func:`verify_bundle`)."""
    name = "bfa/findings.json"
    findings = _json_file(st.root, name)
    if not isinstance(findings, dict):
        raise _BundleFail("not a JSON object", name)
    by_seq = {e.seq: e for e in st.entries}
    # the control.break entries of the bundle, by the break they are a transition of
    transitions: dict[Any, list[_BundleEntry]] = {}
    for e in sorted(st.entries, key=lambda e: e.seq):
        if (e.domain, e.kind) == ("control", "break") and isinstance(e.record.get("break"), str):
            transitions.setdefault(e.record["break"], []).append(e)
    ids: set[str] = set()
    n = checked = 0
    for part in ("breaks", "not_reported"):
        items = findings.get(part)
        if not isinstance(items, list):
            raise _BundleFail(f"{part!r} is not an array", name)
        for item in items:
            if not isinstance(item, dict):
                raise _BundleFail(f"an item of {part!r} is not an object", name)
            bid = item.get("id")
            if isinstance(bid, str):
                ids.add(bid)
            workflow = item.get("workflow")
            if workflow is None:
                continue
            history = workflow.get("history") if isinstance(workflow, dict) else None
            if not isinstance(history, list):
                raise _BundleFail(f"{bid}: workflow without a 'history' array", name)
            status = workflow.get("status")
            last = None
            for i, seq in enumerate(history, 1):
                e = by_seq.get(seq) if _int(seq) else None
                if e is None or (e.domain, e.kind) != ("control", "break") or e.record.get(
                    "break"
                ) != bid:
                    raise _BundleFail(
                        f"{bid}: history entry {seq!r} is not a control.break entry of the "
                        "bundle for that break", name, seq if _int(seq) else None)
                if e.id != f"{bid}/{i}":
                    raise _BundleFail(
                        f"{bid}: history item {i} is entry {seq}, transition {e.id}, not "
                        f"{bid}/{i}", name, seq)
                last = e
                checked += 1
            if last is None and status != WORKFLOW_OPEN:
                raise _BundleFail(
                    f"{bid}: status {status!r} with an empty history: no control.break entry "
                    "behind it", name)
            if last is not None and last.record.get("status") != status:
                raise _BundleFail(
                    f"{bid}: status {status!r}, its last control.break entry says "
                    f"{last.record.get('status')!r}", name, last.seq)
            listed = set(history)
            left_out = [e for e in (transitions.get(bid, []) if isinstance(bid, str) else [])
                        if e.seq not in listed]
            if left_out:
                raise _BundleFail(
                    f"{bid}: the bundle's transition {left_out[0].id} is not in its history",
                    name, left_out[0].seq)
            n += 1
    for bid in _scope_claim(st, "breaks"):
        if not isinstance(bid, str) or bid not in ids:
            raise _BundleFail(f"scope.breaks names {bid!r}, which is in neither 'breaks' nor "
                              f"'not_reported' of {name}", "bfa/bundle.json")
    _check_count(st, "breaks", len(findings["breaks"]))
    return (f"{len(findings['breaks'])} finding(s), {len(findings['not_reported'])} not "
            f"reported; {n} workflow(s) with {checked} transition(s) in order (re-derivation "
            "by reconciliation is out of this verifier's scope)")


def verify_bundle(
    directory: str | os.PathLike[str],
    verifier_key_text: str,
    exporter_key_text: str | None = None,
) -> list[Verdict]:
    """FORMAT.md §12.5: the nine verdicts of a proof bundle, in order.

    ``verifier_key_text`` is the ledger's verifier key (§5.4, from the agency, not from the
    bundle); ``exporter_key_text``, when given, must be the key in ``bfa/exporter.key``.
    Each check gives ok (True), FAIL (False) or ``-`` (None: nothing to check, or not run
    because one of the first four failed). Raises :class:`FormatError` when it cannot run
    (no such directory, a key text that is not a verifier key: exit 2 of §12.5).

    How FORMAT.md §12 is read where it leaves room (tests/interop/test_independent_bundles.py
    pins each reading against ``bfa bundle verify``):

    * **bag** — RFC 8493 written from the RFC (no ``bagit`` package). ``bagit.txt``: the two
      lines ``BagIt-Version: 1.0`` (or ``0.97``) and ``Tag-File-Character-Encoding: UTF-8``,
      each ended by LF, CR LF or CR (mixed too), a last line without its line end refused,
      the encoding's name in any letter case (IANA character set names are), nothing else
      (no byte-order mark, no other spacing). Manifest and ``bag-info.txt`` lines may end in
      LF, CR or CRLF and hex digits may be upper case (RFC 8493 §2.1.3, §2.2.2: §12.5's
      "stricter" list does not name them). In a 1.0 manifest a ``%`` must begin ``%25``,
      ``%0A`` or ``%0D``. ``bag-info.txt`` and ``Payload-Oxum`` are optional as in RFC 8493:
      "``Payload-Oxum`` right" is read as "right when given" (at most once, its label in any
      case, one space or tab after the colon). The layout of §12.1: its named files, and
      ``data/entries/<seq>.leaf``, ``bfa/proofs/<seq>.tlog-proof`` (``seq`` decimal, no
      leading zeros) and ``data/vouchers/<64 lowercase hex>``; a manifest of a third
      algorithm is outside it. That a proof file belongs to an entry of the bundle is left
      to step 4 (which reads the proofs of its lines, and counts only the leaves).
    * **signature**, **checkpoint**, **entries**, **consistency** — signed notes and proofs
      are read as bytes, not as text with universal newlines: a CR is a control character of
      §5.2 and fails. ``bundle.sig``'s text must be, byte for byte, ``bfa-bundle/1``, the
      bundle id (a one-line text), and the two ``tagmanifest-<alg>.txt <alg> <hex>`` lines,
      each ended by LF. A missing ``bfa/checkpoint.note``, ``bfa/since.note`` or
      ``bfa/consistency.txt`` fails its check (exit 3), it is no "could not run".
    * **counts** (§12.3) — each is checked where §12.5 names it, also when that check has
      nothing else to do (``counts.vouchers`` without vouchers, ``counts.disclosed`` without
      a disclosure); an absent or non-integer member fails like a wrong one.
    * **vouchers** — ``bfa/vouchers.jsonl`` lists each voucher entry's id once, in ``seq``
      order (§12.1 "in entry order"); the order of its lines is not checked.
    * **closure** — ``allocations[].event`` (INTERCHANGE.md §7), as §12.2 and §12.5 now
      name it; only the ``scope`` entries' payloads are followed (§12.5 step 7).
    * **consistency** — ``since.size`` is compared with ``old M`` of ``bfa/consistency.txt``
      (itself the since note's size).
    * **findings** — §12.5 step 9 up to "Then": each ``workflow.history`` item ``i``
      (counted from 1, as the ``<n>`` of a ``control.break`` id, §2.5) is the seq of the
      bundle's entry ``<break>/<i>``; the last one's ``status`` is the workflow's; a status
      other than ``open`` needs at least one; "none left out" is also read as: no
      ``control.break`` entry of the bundle for that break is missing from its history.
      ``scope.breaks`` and ``counts.breaks`` are checked. **Not checked:** ``rules_digest``
      (§12.5 checks it only "when ``ruleset`` is the verifier's own", and this verifier has
      no rule set; §2.5 defines the digest as "the JCS-like JSON of the rules'
      description", which does not say which bytes are hashed) and the re-derivation of the
      findings (loading the entries into a scratch ledger and reconciling them under
      ``rules`` needs bfa's reconciler): a bundle whose only fault is a re-derivable finding
      that does not re-derive (added, changed or missing), or a wrong ``rules_digest``,
      passes here.
    """
    root = Path(directory)
    if not root.is_dir():
        raise FormatError(f"{root}: no such directory")
    key = parse_verifier_key(verifier_key_text)
    if exporter_key_text is not None:
        parse_verifier_key(exporter_key_text)
    st = _BundleState(root)
    steps: list[tuple[str, Callable[[], str]]] = [
        ("bag", lambda: _check_bag_and_claims(st)),
        ("signature", lambda: _check_signature(st, exporter_key_text)),
        ("checkpoint", lambda: _check_checkpoint(st, key)),
        ("entries", lambda: _check_entries(st)),
        ("vouchers", lambda: _check_vouchers(st)),
        ("disclosures", lambda: _check_disclosures(st)),
        ("closure", lambda: _check_closure(st)),
        ("consistency", lambda: _check_consistency(st, key)),
        ("findings", lambda: _check_findings_history(st)),
    ]
    out: list[Verdict] = []
    stopped = False
    for i, (check, run) in enumerate(steps):
        if stopped:
            out.append(Verdict(check, None, "not checked: an earlier check failed"))
            continue
        try:
            out.append(Verdict(check, True, run()))
        except _Skip as s:
            out.append(Verdict(check, None, str(s)))
        except _BundleFail as f:
            out.append(Verdict(check, False, f.detail, f.file, f.entry))
            stopped = i < 4
        except OSError as e:
            out.append(Verdict(check, False, f"cannot read: {e}", e.filename))
            stopped = i < 4
    return out


# -- command line -------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--key", required=True, help="file with the verifier key (bfa key export)")
    ap.add_argument("--db", help="SQLite file path, sqlite:///PATH or postgresql:// URL")
    ap.add_argument("--origin", help="the ledger's origin (default: the key name)")
    ap.add_argument("--against", help="an auditor's signed checkpoint note (FORMAT.md §6.4)")
    ap.add_argument("--since-checkpoint", action="store_true", help="FORMAT.md §6.2")
    ap.add_argument("--skip-derived", action="store_true", help="skip FORMAT.md §6.5")
    ap.add_argument(
        "--vault",
        action="store_true",
        help="also check the vault against the leaves (FORMAT.md §4, not §6)",
    )
    ap.add_argument(
        "--vault-key",
        metavar="FILE",
        help="with --vault: the home's keys/vault.key (64 hex digits, FORMAT.md §4.4); "
        "without it sealed values are not opened and their commitments not checked",
    )
    ap.add_argument("--tlog-proof", help="a tlog-proof@v1 file to verify (FORMAT.md §7.1)")
    ap.add_argument("--leaf", help="with --tlog-proof: the leaf input (bfa show --entry --raw)")
    ap.add_argument("--consistency-proof", help="a consistency proof file (FORMAT.md §7.2)")
    ap.add_argument("--old", help="with --consistency-proof: the auditor's old checkpoint note")
    ap.add_argument("--bundle", metavar="DIR", help="a proof bundle to verify (FORMAT.md §12.5)")
    ap.add_argument("--exporter-key", metavar="FILE",
                    help="with --bundle: the exporter key the bundle must be signed by")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    if args.vault_key and not args.vault:
        ap.error("--vault-key needs --vault")
    try:
        with open(args.key, encoding="utf-8") as f:
            vkey = f.read()
        parse_verifier_key(vkey)
        bad = False
        if args.tlog_proof:
            with open(args.tlog_proof, encoding="utf-8") as f:
                text = f.read()
            leaf = None
            if args.leaf:
                with open(args.leaf, "rb") as fb:
                    leaf = fb.read()
            res = verify_tlog_proof(text, leaf, vkey, args.origin)
            print(f"ok inclusion index={res.index} size={res.tree_size}")
        if args.consistency_proof:
            if not args.old:
                ap.error("--consistency-proof needs --old")
            with open(args.consistency_proof, encoding="utf-8") as f:
                text = f.read()
            with open(args.old, encoding="utf-8") as f:
                old_note = f.read()
            old, new = verify_consistency_proof(text, old_note, vkey, args.origin)
            print(f"ok consistency {old.size} -> {new.size}")
        if args.bundle:
            exporter = None
            if args.exporter_key:
                with open(args.exporter_key, encoding="utf-8") as f:
                    exporter = f.read()
            verdicts = verify_bundle(args.bundle, vkey, exporter)
            if args.json:
                print(json.dumps([v.__dict__ for v in verdicts], indent=2, sort_keys=True))
            else:
                for v in verdicts:
                    print(v)
            bad = any(v.ok is False for v in verdicts)
        if args.db:
            against = None
            if args.against:
                with open(args.against, encoding="utf-8") as f:
                    against = f.read()
            report = verify_ledger(
                args.db,
                vkey,
                origin=args.origin,
                against=against,
                since_checkpoint=args.since_checkpoint,
                skip_derived=args.skip_derived,
            )
            if args.json:
                print(json.dumps(report.to_json(), indent=2, sort_keys=True))
            elif report.ok:
                print(
                    f"ok: {report.entries_checked} entries, "
                    f"{report.checkpoints_checked} checkpoints, tree size {report.tree_size}"
                )
            for p in report.problems:
                print(f"independent_verifier: {p}", file=sys.stderr)
            bad = not report.ok
            if args.vault:
                vault_key = read_vault_key(args.vault_key) if args.vault_key else None
                for p in verify_vault(args.db, vault_key):
                    print(f"independent_verifier: {p}", file=sys.stderr)
                    bad = True
        elif not (args.tlog_proof or args.consistency_proof or args.bundle):
            ap.error("give --db, --tlog-proof, --consistency-proof or --bundle")
    except ProofError as e:
        print(f"independent_verifier: integrity failure: {e}", file=sys.stderr)
        return 3
    except (FormatError, OSError, sqlite3.Error) as e:
        print(f"independent_verifier: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # e.g. psycopg.OperationalError: could not run (FORMAT.md §10)
        print(f"independent_verifier: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    return 3 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
