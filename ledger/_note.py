"""Signed notes (c2sp.org/signed-note) with Ed25519 keys, and tlog checkpoints in them.

This module owns three text formats and nothing else:

- **Keys** in the text forms of Go's ``golang.org/x/mod/sumdb/note``: a signer key
  ``PRIVATE+KEY+<name>+<key hash>+<base64(0x01 || 32-byte seed)>`` and a verifier
  key ``<name>+<key hash>+<base64(0x01 || 32-byte public key)>``, where the key
  hash is 8 hex digits of the key ID defined in signed-note §"Ed25519 signatures".
- **Signed notes** (signed-note §"Format", §"Signatures"): a text ending in a
  newline, a blank line, then one or more lines ``— <name> <base64(key ID || sig)>``.
- **Checkpoints** (c2sp.org/tlog-checkpoint §"Note text"): origin, tree size, root
  hash, optional extension lines, carried as the text of a signed note.

Malformed input raises :class:`FormatError`; a note without a valid signature by
an expected key raises :class:`SignatureError`. Messages never echo private keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger._errors import FormatError, SignatureError

# signed-note §"Signature types": 0x01 is Ed25519.
ALG_ED25519 = 0x01
ED25519_KEY_SIZE = 32
ED25519_SIG_SIZE = 64
# signed-note §"Format": em dash (U+2014), space, key name, space, base64, newline.
SIG_PREFIX = "\u2014 "
# signed-note §"Format": verifiers SHOULD bound a note; MUST accept at least 16 signatures.
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 100
# tlog-checkpoint §"Note text": the root is an RFC 6962 SHA-256 tree hash.
HASH_SIZE = 32
MAX_TREE_SIZE = (1 << 64) - 1

_PRIVATE_PREFIX = "PRIVATE+KEY+"
_KEY_HASH_RE = re.compile(r"[0-9a-fA-F]{8}")
_DECIMAL_RE = re.compile(r"0|[1-9][0-9]{0,19}")


def _show(value: str, limit: int = 60) -> str:
    """``repr`` of ``value`` cut to ``limit`` characters, for one-line messages."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _b64decode(text: str, what: str, *, secret: bool = False) -> bytes:
    """Decode standard, padded base64 (RFC 4648 §4), refusing non-canonical spellings.

    With ``secret`` the offending text is not echoed in the message.
    """
    got = "" if secret else f", got {_show(text)}"
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise FormatError(f"{what}: expected standard base64{got}") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise FormatError(f"{what}: expected canonical base64{got}")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _is_unicode_space(ch: str) -> bool:
    # Python's notion of whitespace covers Unicode category Zs and the line/paragraph
    # separators; control characters are refused separately.
    return ch.isspace() or ch in "\u2028\u2029"


def check_key_name(name: str, what: str = "key name") -> None:
    """Raise FormatError unless ``name`` is a valid key name (signed-note §"Format").

    Key names are non-empty valid UTF-8 without Unicode spaces or ``+``; control
    characters are refused too since a note may not contain them.
    """
    if not name:
        raise FormatError(f"{what}: expected a non-empty name, got ''")
    _check_utf8(name, what)
    for ch in name:
        if _is_unicode_space(ch) or ch == "+" or ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise FormatError(
                f"{what}: expected no spaces, '+' or control characters, got {_show(name)}"
            )


def _check_utf8(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError(f"{what}: expected valid UTF-8, got {_show(text)}") from None


def _check_note_chars(text: str, what: str) -> None:
    """signed-note §"Format": valid UTF-8, no control characters below U+0020 but newline."""
    _check_utf8(text, what)
    for lineno, line in enumerate(text.split("\n"), start=1):
        for ch in line:
            if ord(ch) < 0x20:
                raise FormatError(
                    f"{what}: line {lineno}: expected no control characters, got U+{ord(ch):04X}"
                )


def key_hash(name: str, public_key: bytes) -> int:
    """The Ed25519 key ID (signed-note §"Ed25519 signatures").

    ``SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]`` as a big-endian uint32.
    """
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key
    ).digest()
    return int.from_bytes(digest[:4], "big")


def _public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes_raw()


def _check_key_hash(name: str, value: int, public_key: bytes, what: str) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise FormatError(f"{what} {name}: expected a 32-bit key hash, got {value}")
    expected = key_hash(name, public_key)
    if value != expected:
        raise FormatError(f"{what} {name}: key hash expected {expected:08x}, got {value:08x}")


def _parse_key_hash(text: str, what: str) -> int:
    if not _KEY_HASH_RE.fullmatch(text):
        raise FormatError(f"{what}: key hash expected 8 hex digits, got {_show(text)}")
    return int(text, 16)


def _parse_key_bytes(text: str, what: str, *, secret: bool = False) -> bytes:
    raw = _b64decode(text, f"{what}: key", secret=secret)
    if len(raw) != 1 + ED25519_KEY_SIZE:
        raise FormatError(
            f"{what}: key expected {1 + ED25519_KEY_SIZE} bytes (0x01 || Ed25519 key), "
            f"got {len(raw)}"
        )
    if raw[0] != ALG_ED25519:
        raise FormatError(
            f"{what}: key algorithm expected 0x{ALG_ED25519:02x} (Ed25519), got 0x{raw[0]:02x}"
        )
    return raw[1:]


@dataclass(frozen=True, slots=True, eq=False)
class Signer:
    """An Ed25519 note signing key with its name and key hash.

    Two signers are equal when name, key hash and private key all match.
    """

    name: str
    key_hash: int
    private_key: Ed25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        check_key_name(self.name, "signer key name")
        _check_key_hash(
            self.name, self.key_hash, _public_bytes(self.private_key.public_key()), "signer key"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Signer):
            return NotImplemented
        return (
            self.name == other.name
            and self.key_hash == other.key_hash
            and hmac.compare_digest(self._seed(), other._seed())
        )

    def __hash__(self) -> int:
        return hash((self.name, self.key_hash))

    def _seed(self) -> bytes:
        return self.private_key.private_bytes_raw()

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        """The signer for a 32-byte Ed25519 seed (RFC 8032 private key)."""
        if len(seed) != ED25519_KEY_SIZE:
            raise FormatError(
                f"signer key {name}: seed expected {ED25519_KEY_SIZE} bytes, got {len(seed)}"
            )
        check_key_name(name, "signer key name")
        private_key = Ed25519PrivateKey.from_private_bytes(seed)
        return cls(name, key_hash(name, _public_bytes(private_key.public_key())), private_key)

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A fresh random key named ``name``."""
        check_key_name(name, "signer key name")
        return cls.from_seed(name, Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def from_text(cls, text: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>`` (Go sumdb/note)."""
        what = "signer key"
        if not text.startswith(_PRIVATE_PREFIX):
            raise FormatError(f"{what}: expected text starting with 'PRIVATE+KEY+'")
        # The base64 key may itself contain '+', names may not: split at most twice.
        parts = text[len(_PRIVATE_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise FormatError(f"{what}: expected PRIVATE+KEY+<name>+<key hash>+<base64 key>")
        name, hash_text, key_text = parts
        check_key_name(name, f"{what} name")
        value = _parse_key_hash(hash_text, f"{what} {name}")
        # Never echo private key material in a message.
        raw = _parse_key_bytes(key_text, f"{what} {name}", secret=True)
        private_key = Ed25519PrivateKey.from_private_bytes(raw)
        return cls(name, value, private_key)

    def to_text(self) -> str:
        """The Go sumdb/note signer key text. Secret: store it like a password."""
        encoded = _b64encode(bytes([ALG_ED25519]) + self._seed())
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_hash:08x}+{encoded}"

    def verifier(self) -> Verifier:
        """The matching public verifier key."""
        return Verifier(self.name, self.key_hash, self.private_key.public_key())

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (RFC 8032, deterministic)."""
        return self.private_key.sign(message)


@dataclass(frozen=True, slots=True)
class Verifier:
    """An Ed25519 note verifier key with its name and key hash."""

    name: str
    key_hash: int
    public_key: Ed25519PublicKey = field(hash=False)

    def __post_init__(self) -> None:
        check_key_name(self.name, "verifier key name")
        _check_key_hash(self.name, self.key_hash, _public_bytes(self.public_key), "verifier key")

    @classmethod
    def from_text(cls, text: str) -> Verifier:
        """Parse ``<name>+<hash>+<base64(0x01 || public key)>`` (Go sumdb/note)."""
        what = "verifier key"
        if text.startswith(_PRIVATE_PREFIX):
            raise FormatError(f"{what}: expected a public key, got a PRIVATE+KEY signer key")
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise FormatError(f"{what}: expected <name>+<key hash>+<base64 key>, got {_show(text)}")
        name, hash_text, key_text = parts
        check_key_name(name, f"{what} name")
        value = _parse_key_hash(hash_text, f"{what} {name}")
        raw = _parse_key_bytes(key_text, f"{what} {name}")
        try:
            public_key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise FormatError(f"{what} {name}: expected a valid Ed25519 public key") from None
        return cls(name, value, public_key)

    def to_text(self) -> str:
        """The Go sumdb/note verifier key text."""
        encoded = _b64encode(bytes([ALG_ED25519]) + _public_bytes(self.public_key))
        return f"{self.name}+{self.key_hash:08x}+{encoded}"

    def verify(self, message: bytes, sig: bytes) -> bool:
        """Whether ``sig`` is this key's Ed25519 signature of ``message``."""
        if len(sig) != ED25519_SIG_SIZE:
            return False
        try:
            self.public_key.verify(sig, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, key hash (key ID) and the signature bytes."""

    name: str
    key_hash: int
    sig: bytes

    def to_line(self) -> str:
        """``— <name> <base64(key ID || sig)>\\n`` (signed-note §"Signatures")."""
        encoded = _b64encode(self.key_hash.to_bytes(4, "big") + self.sig)
        return f"{SIG_PREFIX}{self.name} {encoded}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed, *unverified* signed note: its text and its signature lines."""

    text: str
    signatures: tuple[NoteSignature, ...]


def _check_text(text: str, what: str = "note text") -> None:
    """signed-note §"Format": the text ends in a newline and has no control characters."""
    if not text.endswith("\n"):
        raise FormatError(f"{what}: expected text ending in a newline, got {_show(text[-20:])}")
    _check_note_chars(text, what)
    if len(text.encode("utf-8")) > MAX_NOTE_BYTES:
        raise FormatError(f"{what}: expected at most {MAX_NOTE_BYTES} bytes")


def sign_note(text: str, signer: Signer, *more: Signer) -> str:
    """``text`` followed by a blank line and a signature line of ``signer`` (and of each
    of ``more``, in that order: a checkpoint over a signing-key rotation, FORMAT.md §5.7)."""
    _check_text(text)
    lines = [NoteSignature(k.name, k.key_hash, k.sign(text.encode("utf-8"))).to_line()
             for k in (signer, *more)]
    return text + "\n" + "".join(lines)


def _parse_signature_line(line: str, lineno: int) -> NoteSignature:
    what = f"signed note: signature line {lineno}"
    if not line.startswith(SIG_PREFIX):
        raise FormatError(f"{what}: expected '— <name> <signature>', got {_show(line)}")
    name, space, encoded = line[len(SIG_PREFIX) :].partition(" ")
    if not space:
        raise FormatError(f"{what}: expected '— <name> <signature>', got {_show(line)}")
    check_key_name(name, f"{what}: key name")
    raw = _b64decode(encoded, f"{what}: signature")
    if len(raw) < 5:
        raise FormatError(
            f"{what}: signature expected at least 5 bytes (key ID and signature), got {len(raw)}"
        )
    return NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def parse_note(note: str) -> Note:
    """Split a signed note into text and signature lines, without verifying anything.

    signed-note §"Format": the text is separated from the signatures by the *last*
    empty line; every line after it is a signature line, and the note ends in a newline.
    """
    if len(note.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise FormatError(f"signed note: expected at most {MAX_NOTE_BYTES} bytes")
    _check_note_chars(note, "signed note")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise FormatError("signed note: expected a blank line before the signatures, found none")
    text, block = note[: cut + 1], note[cut + 2 :]
    if not block:
        raise FormatError("signed note: expected at least one signature line, found none")
    if not block.endswith("\n"):
        raise FormatError("signed note: expected a newline after the last signature line")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise FormatError(
            f"signed note: expected at most {MAX_SIGNATURES} signatures, got {len(lines)}"
        )
    first = text.count("\n") + 2
    sigs = tuple(_parse_signature_line(line, first + i) for i, line in enumerate(lines))
    return Note(text, sigs)


def open_note(note: str, verifiers: Sequence[Verifier]) -> str:
    """The note's text once a known key's signature on it verifies.

    signed-note §"Signatures": lines whose (name, key ID) match no verifier are
    ignored; a known key's line that fails to verify rejects the whole note; and
    at least one known key must have signed.
    """
    parsed = parse_note(note)
    known = {(v.name, v.key_hash): v for v in verifiers}
    message = parsed.text.encode("utf-8")
    verified = False
    for sig in parsed.signatures:
        verifier = known.get((sig.name, sig.key_hash))
        if verifier is None:
            continue
        if not verifier.verify(message, sig.sig):
            raise SignatureError(
                f"signed note: signature by {sig.name}+{sig.key_hash:08x} does not verify"
            )
        verified = True
    if not verified:
        expected = ", ".join(f"{v.name}+{v.key_hash:08x}" for v in verifiers) or "(no keys)"
        found = ", ".join(f"{s.name}+{s.key_hash:08x}" for s in parsed.signatures)
        raise SignatureError(f"signed note: expected a signature by {expected}, found {found}")
    return parsed.text


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A transparency log checkpoint (tlog-checkpoint §"Note text")."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise FormatError(
                f"checkpoint origin: expected one non-empty line, got {_show(self.origin)}"
            )
        _check_note_chars(self.origin, "checkpoint origin")
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise FormatError(
                f"checkpoint size: expected an integer 0..{MAX_TREE_SIZE}, got {self.size!r}"
            )
        if len(self.root) != HASH_SIZE:
            raise FormatError(
                f"checkpoint root hash: expected {HASH_SIZE} bytes, got {len(self.root)}"
            )
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise FormatError(
                    f"checkpoint extension line: expected one non-empty line, got {_show(ext)}"
                )
            _check_note_chars(ext, "checkpoint extension line")

    def to_text(self) -> str:
        """The note text: origin, size, base64 root, extension lines, each ending in newline."""
        lines = [self.origin, str(self.size), _b64encode(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text strictly (tlog-checkpoint §"Note text")."""
        if not text.endswith("\n"):
            raise FormatError(
                f"checkpoint: expected text ending in a newline, got {_show(text[-20:])}"
            )
        _check_note_chars(text, "checkpoint")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise FormatError(
                f"checkpoint: expected at least 3 lines (origin, size, root), got {len(lines)}"
            )
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise FormatError("checkpoint origin: expected a non-empty line 1, got ''")
        if not _DECIMAL_RE.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
            raise FormatError(
                "checkpoint size: expected a decimal without leading zeros "
                f"in 0..{MAX_TREE_SIZE}, got {_show(size_text)}"
            )
        root = _b64decode(root_text, "checkpoint root hash")
        if len(root) != HASH_SIZE:
            raise FormatError(f"checkpoint root hash: expected {HASH_SIZE} bytes, got {len(root)}")
        for i, ext in enumerate(extensions, start=4):
            if not ext:
                raise FormatError(f"checkpoint extension line {i}: expected non-empty, got ''")
        return cls(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(cp: Checkpoint, signer: Signer, *more: Signer) -> str:
    """The signed note carrying ``cp``, signed by ``signer`` (and ``more``)."""
    return sign_note(cp.to_text(), signer, *more)


def open_checkpoint(note: str, verifier: Verifier | Sequence[Verifier],
                    origin: str | None = None) -> Checkpoint:
    """Verify ``verifier``'s signature on ``note`` (given several keys, each one's), then
    parse its text as a checkpoint.

    With ``origin``, the checkpoint must be for that log: a validly signed
    checkpoint of another log raises :class:`SignatureError`.
    """
    keys = [verifier] if isinstance(verifier, Verifier) else list(verifier)
    if not keys:
        raise SignatureError("signed note: no key to check it with")
    text = ""
    for key in keys:  # each must have signed: open_note asks for at least one of those given
        text = open_note(note, [key])
    cp = Checkpoint.parse(text)
    if origin is not None and cp.origin != origin:
        raise SignatureError(f"checkpoint origin: expected {_show(origin)}, got {_show(cp.origin)}")
    return cp
