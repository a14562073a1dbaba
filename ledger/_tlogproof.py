"""Transparency log proofs (c2sp.org/tlog-proof@v1): parse, marshal and verify.

This module owns the text format of an offline-verifiable proof that an entry is
in a log (tlog-proof §"Format")::

    c2sp.org/tlog-proof@v1
    extra <base64 opaque data>          (optional, unauthenticated)
    index <decimal, no leading zeros>
    <base64 SHA-256 hash>               (zero or more: the RFC 6962 §2.1.1 audit path)

    <signed checkpoint note, verbatim>

It does not compute Merkle hashes: :func:`verify_tlog_proof` opens the checkpoint
with :mod:`ledger._note` and hands the audit path to a caller-supplied inclusion
verifier. Malformed proofs raise :class:`FormatError`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ledger._errors import FormatError
from ledger._note import (
    Checkpoint,
    Verifier,
    _b64decode,
    _b64encode,
    _show,
    open_checkpoint,
    parse_note,
)

# tlog-proof §"Format": the first line, the optional extra line and the index line.
HEADER = "c2sp.org/tlog-proof@v1"
_EXTRA_PREFIX = "extra "
_INDEX_PREFIX = "index "
HASH_SIZE = 32
# A tree of at most 2**64 - 1 leaves has audit paths of at most 64 hashes.
MAX_INDEX = (1 << 64) - 1
MAX_PROOF_HASHES = 64

_DECIMAL_RE = re.compile(r"0|[1-9][0-9]{0,19}")

InclusionVerifier = Callable[[bytes, int, int, Sequence[bytes], bytes], None]
"""``verify_inclusion(leaf_hash, index, size, proof, root)``: raises when it fails."""


@dataclass(frozen=True, slots=True)
class TLogProof:
    """A parsed tlog-proof: leaf index, audit path, signed checkpoint, optional extra data.

    ``checkpoint`` is the signed note text exactly as carried in the proof; it is
    checked for well-formedness here but its signatures are only checked by
    :func:`verify_tlog_proof`. ``extra`` is not authenticated by anything.
    """

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not 0 <= self.index <= MAX_INDEX:
            raise FormatError(
                f"tlog proof index: expected an integer 0..{MAX_INDEX}, got {self.index!r}"
            )
        if len(self.hashes) > MAX_PROOF_HASHES:
            raise FormatError(
                f"tlog proof: expected at most {MAX_PROOF_HASHES} hashes, got {len(self.hashes)}"
            )
        for i, value in enumerate(self.hashes, start=1):
            if len(value) != HASH_SIZE:
                raise FormatError(
                    f"tlog proof hash {i}: expected {HASH_SIZE} bytes, got {len(value)}"
                )
        # tlog-proof §"Format": the checkpoint is a tlog-checkpoint signed note.
        try:
            _well_formed_checkpoint(self.checkpoint)
        except FormatError as err:
            raise FormatError(f"tlog proof checkpoint: {err}") from None

    def marshal(self) -> str:
        """The proof text (tlog-proof §"Format"); :meth:`parse` inverts it exactly."""
        lines = [HEADER]
        if self.extra is not None:
            lines.append(_EXTRA_PREFIX + _b64encode(self.extra))
        lines.append(f"{_INDEX_PREFIX}{self.index}")
        lines.extend(_b64encode(value) for value in self.hashes)
        return "".join(line + "\n" for line in lines) + "\n" + self.checkpoint

    @classmethod
    def parse(cls, text: str) -> TLogProof:
        """Parse proof text strictly (tlog-proof §"Format")."""
        reader = _Lines(text)
        first = reader.next("header")
        if first != HEADER:
            raise FormatError(f"tlog proof line 1: expected {HEADER!r}, got {_show(first)}")
        line = reader.next("index line")
        extra: bytes | None = None
        if line.startswith(_EXTRA_PREFIX):
            extra = _b64decode(line[len(_EXTRA_PREFIX) :], f"tlog proof line {reader.lineno} extra")
            line = reader.next("index line")
        if not line.startswith(_INDEX_PREFIX):
            raise FormatError(
                f"tlog proof line {reader.lineno}: expected 'index <N>', got {_show(line)}"
            )
        index_text = line[len(_INDEX_PREFIX) :]
        if not _DECIMAL_RE.fullmatch(index_text) or int(index_text) > MAX_INDEX:
            raise FormatError(
                f"tlog proof line {reader.lineno}: index expected a decimal without leading "
                f"zeros in 0..{MAX_INDEX}, got {_show(index_text)}"
            )
        hashes: list[bytes] = []
        while (line := reader.next("empty line before the checkpoint")) != "":
            what = f"tlog proof line {reader.lineno}: hash"
            value = _b64decode(line, what)
            if len(value) != HASH_SIZE:
                raise FormatError(f"{what}: expected {HASH_SIZE} bytes, got {len(value)}")
            hashes.append(value)
        checkpoint = reader.rest()
        if not checkpoint:
            raise FormatError("tlog proof: expected a checkpoint after the empty line, got none")
        return cls(int(index_text), tuple(hashes), checkpoint, extra)


@functools.lru_cache(maxsize=16)
def _well_formed_checkpoint(note: str) -> None:
    """Raise :class:`FormatError` unless ``note`` is a well-formed signed checkpoint. Kept
    for the last texts checked: the proofs of a bundle all carry the same checkpoint, and
    checking it again for each took a quarter of a bundle's verification."""
    Checkpoint.parse(parse_note(note).text)


class _Lines:
    """Newline-terminated lines of a text, read one by one, with the unread remainder."""

    __slots__ = ("_pos", "_text", "lineno")

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self.lineno = 0

    def next(self, expected: str) -> str:
        end = self._text.find("\n", self._pos)
        if end < 0:
            raise FormatError(
                f"tlog proof line {self.lineno + 1}: expected {expected} ending in a newline, "
                "got end of text"
            )
        line = self._text[self._pos : end]
        self._pos = end + 1
        self.lineno += 1
        return line

    def rest(self) -> str:
        return self._text[self._pos :]


def verify_tlog_proof(
    proof: TLogProof,
    leaf_hash: bytes,
    verifier: Verifier,
    verify_inclusion: InclusionVerifier,
    origin: str | None = None,
) -> Checkpoint:
    """The proof's checkpoint, once it is signed by ``verifier`` and includes ``leaf_hash``.

    Opens the checkpoint (raising :class:`SignatureError` without a valid signature
    by ``verifier``, or for another ``origin``), then calls
    ``verify_inclusion(leaf_hash, proof.index, size, proof.hashes, root)``, which
    raises when the audit path does not lead to the checkpoint's root.
    """
    cp = open_checkpoint(proof.checkpoint, verifier, origin)
    verify_inclusion(leaf_hash, proof.index, cp.size, proof.hashes, cp.root)
    return cp
