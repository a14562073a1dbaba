"""Signed notes, note keys and checkpoints (ledger._note): c2sp.org/signed-note and
c2sp.org/tlog-checkpoint, checked against the specification's own example."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger._errors import FormatError, IntegrityError, SignatureError
from ledger._note import (
    Checkpoint,
    Note,
    NoteSignature,
    Signer,
    Verifier,
    key_hash,
    open_checkpoint,
    open_note,
    parse_note,
    sign_checkpoint,
    sign_note,
)

ORIGIN = "bfa.test/ledger"
SEED = bytes(range(32))
ROOT = hashlib.sha256(b"x").digest()

# Computed once with this module (Ed25519 is deterministic, RFC 8032 §5.1.6) and
# frozen here: any change to key hashing, note layout or base64 shows up as a diff.
GOLDEN_SIGNER_KEY = (
    "PRIVATE+KEY+bfa.test/ledger+ec48858a+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"
)
GOLDEN_VERIFIER_KEY = "bfa.test/ledger+ec48858a+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
GOLDEN_CHECKPOINT = (
    "bfa.test/ledger\n"
    "3\n"
    "LXEWQrcmsEQBYnyp+6wy9chTD7GQPMTbAiWHF5IaSIE=\n"
    "\n"
    "— bfa.test/ledger 7EiFiuu9ctADboo5Ib2bHsl+Hg6cEJpp477zk4OiJ/9Akmvqzw2dSpy8FD1KMvMMgNWx"
    "ehh+ti4hLzFB4KqSo6QCZQQ=\n"
)


@pytest.fixture(scope="module")
def official(vectors: Path) -> dict[str, str]:
    data: dict[str, str] = json.loads((vectors / "c2sp-signed-note.json").read_text("utf-8"))
    return data


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.from_seed(ORIGIN, SEED)


def _sig_line(signer: Signer, text: str) -> str:
    """The signature line ``signer`` adds to ``text``."""
    return sign_note(text, signer)[len(text) + 1 :]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# --- the specification's example ------------------------------------------------------


def test_official_example_verifies(official: dict[str, str]) -> None:
    verifier = Verifier.from_text(official["verifier_key"])
    assert verifier.name == "example.com/foo"
    assert verifier.key_hash == 0x530D903A
    assert verifier.to_text() == official["verifier_key"]
    assert open_note(official["signed_note"], [verifier]) == "This is an example message.\n"


def test_official_example_parses(official: dict[str, str]) -> None:
    note = parse_note(official["signed_note"])
    assert note.text == "This is an example message.\n"
    assert len(note.signatures) == 1
    sig = note.signatures[0]
    assert (sig.name, sig.key_hash, len(sig.sig)) == ("example.com/foo", 0x530D903A, 64)
    assert sig.to_line() == official["signed_note"][len(note.text) + 1 :]


def test_official_example_key_hash_is_the_spec_formula(official: dict[str, str]) -> None:
    verifier = Verifier.from_text(official["verifier_key"])
    public = base64.b64decode(official["verifier_key"].split("+", 2)[2])[1:]
    digest = hashlib.sha256(b"example.com/foo\n\x01" + public).digest()
    assert key_hash("example.com/foo", public) == int.from_bytes(digest[:4], "big")
    assert verifier.key_hash == key_hash("example.com/foo", public)


def test_official_example_tampered_text_is_refused(official: dict[str, str]) -> None:
    verifier = Verifier.from_text(official["verifier_key"])
    tampered = official["signed_note"].replace("example message", "example massage")
    with pytest.raises(SignatureError, match=r"example\.com/foo\+530d903a does not verify"):
        open_note(tampered, [verifier])


def test_official_example_other_key_same_name_is_refused(official: dict[str, str]) -> None:
    other = Signer.generate("example.com/foo").verifier()
    with pytest.raises(SignatureError, match=r"expected a signature by example\.com/foo\+"):
        open_note(official["signed_note"], [other])


# --- keys ---------------------------------------------------------------------------


def test_signer_text_round_trip() -> None:
    signer = Signer.generate("example.com/round-trip")
    text = signer.to_text()
    assert text.startswith("PRIVATE+KEY+example.com/round-trip+")
    again = Signer.from_text(text)
    assert again == signer
    assert again.to_text() == text
    assert again.verifier() == signer.verifier()


def test_verifier_text_round_trip() -> None:
    verifier = Signer.generate("example.com/round-trip").verifier()
    again = Verifier.from_text(verifier.to_text())
    assert again == verifier
    assert hash(again) == hash(verifier)
    assert again.to_text() == verifier.to_text()


def test_generated_keys_differ() -> None:
    a, b = Signer.generate("example.com/a"), Signer.generate("example.com/a")
    assert a != b
    assert a.verifier() != b.verifier()


def test_signer_repr_hides_private_key(signer: Signer) -> None:
    assert "private_key" not in repr(signer)
    assert GOLDEN_SIGNER_KEY.rsplit("+", 1)[1] not in repr(signer)


def test_sign_and_verify_raw(signer: Signer) -> None:
    sig = signer.sign(b"message")
    assert len(sig) == 64
    verifier = signer.verifier()
    assert verifier.verify(b"message", sig)
    assert not verifier.verify(b"messagf", sig)
    assert not verifier.verify(b"message", sig[:-1])
    assert not verifier.verify(b"message", bytes(64))


def test_golden_keys(signer: Signer) -> None:
    assert signer.to_text() == GOLDEN_SIGNER_KEY
    assert signer.verifier().to_text() == GOLDEN_VERIFIER_KEY
    assert Signer.from_text(GOLDEN_SIGNER_KEY) == signer


def test_key_hash_hex_is_case_insensitive_like_go() -> None:
    upper = GOLDEN_VERIFIER_KEY.replace("ec48858a", "EC48858A")
    assert Verifier.from_text(upper) == Verifier.from_text(GOLDEN_VERIFIER_KEY)


_PUB = GOLDEN_VERIFIER_KEY.split("+", 2)[2]
_PUB_RAW = base64.b64decode(_PUB)
_PUB_SHORT = _b64(_PUB_RAW[:-1])
_PUB_ALG2 = _b64(bytes([2]) + _PUB_RAW[1:])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"expected <name>\+<key hash>\+<base64 key>, got ''"),
        ("bfa.test/ledger", r"expected <name>\+<key hash>\+<base64 key>"),
        ("bfa.test/ledger+ec48858a", r"expected <name>\+<key hash>\+<base64 key>"),
        (f"+ec48858a+{_PUB}", r"verifier key name: expected a non-empty name"),
        (f"bfa test+ec48858a+{_PUB}", r"expected no spaces, '\+' or control characters"),
        (f"bfa\u00a0test+ec48858a+{_PUB}", r"expected no spaces, '\+' or control characters"),
        (f"bfa.test/ledger+ec48858+{_PUB}", r"key hash expected 8 hex digits, got 'ec48858'"),
        (f"bfa.test/ledger+ec48858g+{_PUB}", r"key hash expected 8 hex digits, got 'ec48858g'"),
        (f"bfa.test/ledger+ec48858b+{_PUB}", r"key hash expected ec48858a, got ec48858b"),
        (f"other.test/ledger+ec48858a+{_PUB}", r"other\.test/ledger: key hash expected "),
        (f"bfa.test/ledger+ec48858a+{_PUB}=", r"key: expected canonical base64"),
        (f"bfa.test/ledger+ec48858a+{_PUB[:-1]}", r"key: expected standard base64"),
        (f"bfa.test/ledger+ec48858a+{_PUB} ", r"key: expected standard base64"),
        (
            f"bfa.test/ledger+ec48858a+{_PUB_SHORT}",
            r"key expected 33 bytes \(0x01 \|\| Ed25519 key\), got 32",
        ),
        (
            f"bfa.test/ledger+ec48858a+{_PUB_ALG2}",
            r"key algorithm expected 0x01 \(Ed25519\), got 0x02",
        ),
        (GOLDEN_SIGNER_KEY, r"expected a public key, got a PRIVATE\+KEY signer key"),
    ],
)
def test_malformed_verifier_keys(text: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        Verifier.from_text(text)


_SEED_B64 = GOLDEN_SIGNER_KEY.rsplit("+", 1)[1]
_SEED_ALG0 = _b64(bytes(range(33)))
_SEED_SHORT = _b64(bytes([1]) + bytes(31))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"expected text starting with 'PRIVATE\+KEY\+'"),
        (GOLDEN_VERIFIER_KEY, r"expected text starting with 'PRIVATE\+KEY\+'"),
        ("PRIVATE+KEY+bfa.test/ledger", r"expected PRIVATE\+KEY\+<name>\+<key hash>\+<base64 key>"),
        (f"PRIVATE+KEY+bfa test+ec48858a+{_SEED_B64}", r"expected no spaces"),
        (f"PRIVATE+KEY+bfa.test/ledger+xx+{_SEED_B64}", r"key hash expected 8 hex digits"),
        (f"PRIVATE+KEY+bfa.test/ledger+00000000+{_SEED_B64}", r"key hash expected ec48858a"),
        (f"PRIVATE+KEY+bfa.test/ledger+ec48858a+{_SEED_B64[:-2]}", r"key: expected standard"),
        (
            f"PRIVATE+KEY+bfa.test/ledger+ec48858a+{_SEED_ALG0}",
            r"key algorithm expected 0x01 \(Ed25519\), got 0x00",
        ),
        (
            f"PRIVATE+KEY+bfa.test/ledger+ec48858a+{_SEED_SHORT}",
            r"key expected 33 bytes",
        ),
    ],
)
def test_malformed_signer_keys(text: str, match: str) -> None:
    with pytest.raises(FormatError, match=match) as info:
        Signer.from_text(text)
    # Private key material never reaches an error message.
    assert _SEED_B64[:-2] not in str(info.value)


def test_key_constructors_check_the_key_hash(signer: Signer) -> None:
    with pytest.raises(FormatError, match=r"signer key bfa\.test/ledger: key hash expected"):
        Signer(ORIGIN, signer.key_hash ^ 1, signer.private_key)
    with pytest.raises(FormatError, match=r"verifier key bfa\.test/ledger: key hash expected"):
        Verifier(ORIGIN, signer.key_hash ^ 1, signer.verifier().public_key)
    with pytest.raises(FormatError, match=r"seed expected 32 bytes, got 31"):
        Signer.from_seed(ORIGIN, bytes(31))
    with pytest.raises(FormatError, match=r"expected no spaces"):
        Signer.generate("two words")


# --- signed notes -------------------------------------------------------------------


def test_sign_parse_open_round_trip(signer: Signer) -> None:
    text = "first line\n\nthird line after an empty one\nünïcödé — ok\n"
    note = sign_note(text, signer)
    assert note.startswith(text + "\n— bfa.test/ledger ")
    assert note.endswith("\n")
    parsed = parse_note(note)
    assert parsed == Note(
        text, (NoteSignature(ORIGIN, signer.key_hash, signer.sign(text.encode())),)
    )
    assert open_note(note, [signer.verifier()]) == text


def test_text_ending_in_empty_line_round_trips(signer: Signer) -> None:
    text = "ends with an empty line\n\n"
    assert open_note(sign_note(text, signer), [signer.verifier()]) == text


def test_wrong_key_is_refused(signer: Signer) -> None:
    note = sign_note("hello\n", signer)
    other = Signer.generate("other.example/key").verifier()
    with pytest.raises(
        SignatureError,
        match=rf"expected a signature by other\.example/key\+{other.key_hash:08x}, "
        rf"found bfa\.test/ledger\+ec48858a$",
    ):
        open_note(note, [other])


def test_no_verifiers_is_refused(signer: Signer) -> None:
    with pytest.raises(SignatureError, match=r"expected a signature by \(no keys\)"):
        open_note(sign_note("hello\n", signer), [])


def test_tampered_text_is_refused(signer: Signer) -> None:
    note = sign_note("pay 100\n", signer)
    with pytest.raises(SignatureError, match=r"bfa\.test/ledger\+ec48858a does not verify"):
        open_note(note.replace("100", "900"), [signer.verifier()])


def test_tampered_signature_is_refused(signer: Signer) -> None:
    text = "pay 100\n"
    sig = bytearray(signer.sign(text.encode()))
    sig[10] ^= 0x01
    line = NoteSignature(ORIGIN, signer.key_hash, bytes(sig)).to_line()
    with pytest.raises(SignatureError, match=r"does not verify"):
        open_note(text + "\n" + line, [signer.verifier()])


def test_short_signature_from_known_key_is_refused(signer: Signer) -> None:
    line = NoteSignature(ORIGIN, signer.key_hash, b"\x00").to_line()
    with pytest.raises(SignatureError, match=r"does not verify"):
        open_note("x\n\n" + line, [signer.verifier()])


def test_signature_errors_are_integrity_errors(signer: Signer) -> None:
    with pytest.raises(IntegrityError):
        open_note(sign_note("a\n", signer), [Signer.generate("b").verifier()])


def test_unknown_signers_are_ignored(signer: Signer) -> None:
    text = "cosigned\n"
    note = sign_note(text, signer)
    stranger = Signer.generate("witness.example/w1")
    # Same name, other key: the (name, key hash) pair is unknown, so it is ignored.
    same_name = NoteSignature(ORIGIN, signer.key_hash ^ 0xFFFF, bytes(64)).to_line()
    # Same key hash, other name: ignored too.
    same_hash = NoteSignature("impostor.example", signer.key_hash, bytes(64)).to_line()
    garbage = NoteSignature("junk.example", 7, b"\x00").to_line()
    for extra in (_sig_line(stranger, text), same_name, same_hash, garbage):
        assert open_note(note + extra, [signer.verifier()]) == text
        assert open_note(extra_first(note, extra), [signer.verifier()]) == text
    both = note + _sig_line(stranger, text)
    assert len(parse_note(both).signatures) == 2
    assert open_note(both, [stranger.verifier()]) == text
    assert open_note(both, [stranger.verifier(), signer.verifier()]) == text


def extra_first(note: str, extra: str) -> str:
    """``note`` with the signature line ``extra`` placed before its own signature lines."""
    cut = note.rfind("\n\n") + 2
    return note[:cut] + extra + note[cut:]


def test_one_bad_known_signature_rejects_the_note(signer: Signer) -> None:
    text = "two known keys\n"
    second = Signer.generate("witness.example/w2")
    bad = NoteSignature(second.name, second.key_hash, bytes(64)).to_line()
    note = sign_note(text, signer) + bad
    with pytest.raises(SignatureError, match=r"witness\.example/w2\+[0-9a-f]{8} does not verify"):
        open_note(note, [signer.verifier(), second.verifier()])
    assert open_note(note, [signer.verifier()]) == text


_GOOD_LINE = "— bfa.test/ledger " + _b64(bytes(68)) + "\n"


@pytest.mark.parametrize(
    ("note", "match"),
    [
        ("hello\n" + _GOOD_LINE, r"expected a blank line before the signatures, found none"),
        ("hello\n\n", r"expected at least one signature line, found none"),
        ("hello\n\n" + _GOOD_LINE[:-1], r"expected a newline after the last signature line"),
        ("hello\n\n" + _GOOD_LINE.replace("—", "-"), r"line 3: expected '— <name> <signature>'"),
        ("hello\n\n" + _GOOD_LINE.replace("— ", "—"), r"line 3: expected '— <name> <signature>'"),
        ("hello\n\n— bfa.test/ledger\n", r"line 3: expected '— <name> <signature>'"),
        ("hello\n\n" + _GOOD_LINE + "trailer\n", r"line 4: expected '— <name> <signature>'"),
        ("hello\n\n" + _GOOD_LINE.replace("/ledger ", "/ledger  "), r"expected standard base64"),
        ("hello\n\n" + _GOOD_LINE.replace("=\n", "\n"), r"signature: expected standard base64"),
        ("hello\n\n" + _GOOD_LINE.replace("AAA=", "AAB="), r"signature: expected canonical"),
        ("hello\n\n— bfa.test/ledger AAAAAA==\n", r"expected at least 5 bytes .*got 4"),
        ("hello\n\n— a+b " + _b64(bytes(68)) + "\n", r"key name: expected no spaces, '\+'"),
        ("hello\n\n— \u3000x " + _b64(bytes(68)) + "\n", r"key name: expected no spaces"),
        ("hel\rlo\n\n" + _GOOD_LINE, r"line 1: expected no control characters, got U\+000D"),
        ("hello\n\n" + _GOOD_LINE.replace("\n", "\r\n"), r"got U\+000D"),
        ("hello\t\n\n" + _GOOD_LINE, r"got U\+0009"),
        ("bad \udc80\n\n" + _GOOD_LINE, r"signed note: expected valid UTF-8"),
        ("hello\n\n" + _GOOD_LINE * 101, r"expected at most 100 signatures, got 101"),
    ],
)
def test_malformed_notes(note: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        parse_note(note)


def test_sixteen_signatures_are_accepted(signer: Signer) -> None:
    text = "many witnesses\n"
    witnesses = [Signer.generate(f"witness.example/{i}") for i in range(15)]
    note = sign_note(text, signer) + "".join(_sig_line(w, text) for w in witnesses)
    assert len(parse_note(note).signatures) == 16
    assert open_note(note, [w.verifier() for w in witnesses[::3]]) == text


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"note text: expected text ending in a newline"),
        ("no newline", r"note text: expected text ending in a newline, got 'no newline'"),
        ("tab\there\n", r"note text: line 1: expected no control characters, got U\+0009"),
        ("ok\nnul\x00\n", r"note text: line 2: expected no control characters, got U\+0000"),
    ],
)
def test_sign_note_refuses_invalid_text(signer: Signer, text: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        sign_note(text, signer)


# --- checkpoints --------------------------------------------------------------------


def test_checkpoint_text_layout() -> None:
    cp = Checkpoint("example.com/behind-the-sofa", 20852163, bytes(range(32)), ("ext one",))
    assert cp.to_text() == (
        "example.com/behind-the-sofa\n20852163\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
        "ext one\n"
    )
    assert Checkpoint.parse(cp.to_text()) == cp


def test_spec_example_checkpoint_text_parses() -> None:
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    cp = Checkpoint.parse(text)
    assert (cp.origin, cp.size, len(cp.root), cp.extensions) == (
        "example.com/behind-the-sofa",
        20852163,
        32,
        (),
    )
    assert cp.to_text() == text


def test_empty_tree_checkpoint() -> None:
    empty = hashlib.sha256(b"").digest()
    cp = Checkpoint.parse(f"log.example\n0\n{_b64(empty)}\n")
    assert cp.size == 0 and cp.root == empty


_R = _b64(ROOT)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (f"o\n3\n{_R}", r"checkpoint: expected text ending in a newline"),
        ("", r"checkpoint: expected text ending in a newline"),
        ("o\n3\n", r"expected at least 3 lines \(origin, size, root\), got 2"),
        (f"\n3\n{_R}\n", r"checkpoint origin: expected a non-empty line 1"),
        (f"o\n03\n{_R}\n", r"size: expected a decimal without leading zeros .*got '03'"),
        (f"o\n00\n{_R}\n", r"size: expected a decimal without leading zeros .*got '00'"),
        (f"o\n-1\n{_R}\n", r"size: expected a decimal .*got '-1'"),
        (f"o\n+3\n{_R}\n", r"size: expected a decimal .*got '\+3'"),
        (f"o\n 3\n{_R}\n", r"size: expected a decimal .*got ' 3'"),
        (f"o\n1_0\n{_R}\n", r"size: expected a decimal .*got '1_0'"),
        (f"o\n\u0663\n{_R}\n", r"size: expected a decimal .*got '\u0663'"),
        (f"o\n\n{_R}\n", r"size: expected a decimal .*got ''"),
        (
            f"o\n18446744073709551616\n{_R}\n",
            r"size: expected a decimal .*0\.\.18446744073709551615",
        ),
        (
            "o\n3\nnot base64!\n",
            r"checkpoint root hash: expected standard base64, got 'not base64!'",
        ),
        (f"o\n3\n{_R[:-1]}\n", r"checkpoint root hash: expected standard base64"),
        (f"o\n3\n{_R[:-2]}B=\n", r"checkpoint root hash: expected canonical base64"),
        (f"o\n3\n{_b64(ROOT[:31])}\n", r"checkpoint root hash: expected 32 bytes, got 31"),
        (f"o\n3\n{_b64(ROOT + b'!')}\n", r"checkpoint root hash: expected 32 bytes, got 33"),
        ("o\n3\n\n", r"checkpoint root hash: expected 32 bytes, got 0"),
        (f"o\n3\n{_R}\n\n", r"checkpoint extension line 4: expected non-empty"),
        (f"o\n3\n{_R}\next\n\n", r"checkpoint extension line 5: expected non-empty"),
        (f"o\r\n3\n{_R}\n", r"checkpoint: line 1: expected no control characters, got U\+000D"),
    ],
)
def test_malformed_checkpoints(text: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        Checkpoint.parse(text)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", 1, ROOT), r"origin: expected one non-empty line"),
        (("a\nb", 1, ROOT), r"origin: expected one non-empty line"),
        (("o", -1, ROOT), r"size: expected an integer 0\.\."),
        (("o", 1, ROOT[:31]), r"root hash: expected 32 bytes, got 31"),
        (("o", 1, ROOT, ("",)), r"extension line: expected one non-empty line"),
        (("o", 1, ROOT, ("a\nb",)), r"extension line: expected one non-empty line"),
    ],
)
def test_checkpoint_constructor_checks(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(FormatError, match=match):
        Checkpoint(*args)  # type: ignore[arg-type]


@given(
    origin=st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=30),
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=10),
        max_size=3,
    ),
)
def test_checkpoint_text_round_trip(
    origin: str, size: int, root: bytes, extensions: list[str]
) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.parse(cp.to_text()) == cp


def test_golden_signed_checkpoint(signer: Signer) -> None:
    cp = Checkpoint(ORIGIN, 3, ROOT)
    assert sign_checkpoint(cp, signer) == GOLDEN_CHECKPOINT
    assert open_checkpoint(GOLDEN_CHECKPOINT, Verifier.from_text(GOLDEN_VERIFIER_KEY)) == cp


def test_open_checkpoint_with_origin(signer: Signer) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT, ("x-ext",)), signer)
    cp = open_checkpoint(note, signer.verifier(), origin=ORIGIN)
    assert cp == Checkpoint(ORIGIN, 3, ROOT, ("x-ext",))
    with pytest.raises(
        SignatureError,
        match=r"checkpoint origin: expected 'other\.example/log', got 'bfa\.test/ledger'",
    ):
        open_checkpoint(note, signer.verifier(), origin="other.example/log")


def test_open_checkpoint_wrong_key_and_tampering(signer: Signer) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), signer)
    with pytest.raises(SignatureError, match=r"expected a signature by bfa\.test/ledger\+"):
        open_checkpoint(note, Signer.generate(ORIGIN).verifier())
    with pytest.raises(SignatureError, match=r"does not verify"):
        open_checkpoint(note.replace("\n3\n", "\n4\n"), signer.verifier())


def test_open_checkpoint_refuses_signed_non_checkpoint(signer: Signer) -> None:
    note = sign_note("bfa.test/ledger\n03\n" + _R + "\n", signer)
    with pytest.raises(FormatError, match=r"size: expected a decimal without leading zeros"):
        open_checkpoint(note, signer.verifier())
