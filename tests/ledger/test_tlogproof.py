"""tlog-proof@v1 text (ledger._tlogproof): exact marshalling, strict parsing, and the
verify path with a stand-in inclusion verifier (ledger._merkle is tested elsewhere)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

import pytest

from ledger._errors import FormatError, MerkleProofError, SignatureError
from ledger._note import Checkpoint, Signer, sign_checkpoint, sign_note
from ledger._tlogproof import TLogProof, verify_tlog_proof

LOG = "example.com/fancylog"
SIGNER = Signer.from_seed(LOG, bytes(range(32)))

# The inclusion proof and checkpoint body of the example in c2sp.org/tlog-proof; the
# spec elides its signatures ("hI2DJw[...]"), so the note here is signed by SIGNER.
SPEC_EXTRA = "YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ"
SPEC_HASHES = (
    "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=",
    "B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=",
    "EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=",
    "RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=",
    "AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=",
)
SPEC_ROOT = "sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08="
SPEC_CHECKPOINT = sign_checkpoint(Checkpoint(LOG, 109482, base64.b64decode(SPEC_ROOT)), SIGNER)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def leaf(data: bytes) -> bytes:
    """RFC 6962 §2.1 leaf hash."""
    return hashlib.sha256(b"\x00" + data).digest()


def node(left: bytes, right: bytes) -> bytes:
    """RFC 6962 §2.1 interior node hash."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class FakeInclusion:
    """A stand-in ``verify_inclusion`` that knows trees of one and two leaves only."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, int, int, tuple[bytes, ...], bytes]] = []

    def __call__(
        self, leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
    ) -> None:
        self.calls.append((leaf_hash, index, size, tuple(proof), root))
        if size == 1 and index == 0 and not proof:
            ok = leaf_hash == root
        elif size == 2 and index in (0, 1) and len(proof) == 1:
            pair = (leaf_hash, proof[0]) if index == 0 else (proof[0], leaf_hash)
            ok = node(*pair) == root
        else:
            ok = False
        if not ok:
            raise MerkleProofError(f"inclusion proof for leaf {index} of {size} does not verify")


def _checkpoint(size: int, root: bytes, signer: Signer = SIGNER) -> str:
    return sign_checkpoint(Checkpoint(signer.name, size, root), signer)


# --- marshal and parse --------------------------------------------------------------


def test_spec_example_shape_parses_and_marshals_back() -> None:
    text = (
        "c2sp.org/tlog-proof@v1\n"
        f"extra {SPEC_EXTRA}\n"
        "index 73894\n" + "".join(h + "\n" for h in SPEC_HASHES) + "\n" + SPEC_CHECKPOINT
    )
    proof = TLogProof.parse(text)
    assert proof.index == 73894
    assert proof.hashes == tuple(base64.b64decode(h) for h in SPEC_HASHES)
    assert proof.extra == base64.b64decode(SPEC_EXTRA)
    assert proof.extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    assert proof.checkpoint == SPEC_CHECKPOINT
    assert proof.marshal() == text


def test_marshal_layout_without_extra() -> None:
    hashes = (bytes(32), bytes(range(32)))
    proof = TLogProof(5, hashes, SPEC_CHECKPOINT)
    assert proof.marshal() == (
        "c2sp.org/tlog-proof@v1\n"
        "index 5\n"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
        "\n" + SPEC_CHECKPOINT
    )
    assert TLogProof.parse(proof.marshal()) == proof


def test_round_trip_with_extra() -> None:
    proof = TLogProof(1, (leaf(b"a"),), SPEC_CHECKPOINT, extra=b"\x00context\xff")
    text = proof.marshal()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra AGNvbnRleHT/\nindex 1\n")
    assert TLogProof.parse(text) == proof


def test_round_trip_empty_extra_and_empty_proof() -> None:
    proof = TLogProof(0, (), SPEC_CHECKPOINT, extra=b"")
    text = proof.marshal()
    assert text == "c2sp.org/tlog-proof@v1\nextra \nindex 0\n\n" + SPEC_CHECKPOINT
    assert TLogProof.parse(text) == proof
    bare = TLogProof(0, (), SPEC_CHECKPOINT)
    assert bare.marshal() == "c2sp.org/tlog-proof@v1\nindex 0\n\n" + SPEC_CHECKPOINT
    assert TLogProof.parse(bare.marshal()) == bare


def test_round_trip_cosigned_checkpoint() -> None:
    text = Checkpoint(LOG, 109482, base64.b64decode(SPEC_ROOT)).to_text()
    witness = Signer.generate("witness1.example")
    cosigned = SPEC_CHECKPOINT + sign_note(text, witness)[len(text) + 1 :]
    proof = TLogProof(73894, (), cosigned)
    assert TLogProof.parse(proof.marshal()).checkpoint == cosigned


_H = _b64(leaf(b"a"))
_HEAD = "c2sp.org/tlog-proof@v1\n"
_CP = SPEC_CHECKPOINT


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"tlog proof line 1: expected header ending in a newline, got end of text"),
        ("c2sp.org/tlog-proof@v1", r"line 1: expected header ending in a newline"),
        (
            "c2sp.org/tlog-proof@v2\nindex 0\n\n" + _CP,
            r"line 1: expected 'c2sp\.org/tlog-proof@v1', got 'c2sp\.org/tlog-proof@v2'",
        ),
        ("\n" + _HEAD + "index 0\n\n" + _CP, r"line 1: expected 'c2sp\.org/tlog-proof@v1', got ''"),
        ("c2sp.org/tlog-proof@v1\r\nindex 0\n\n" + _CP, r"line 1: expected 'c2sp\.org/tlog-pr"),
        (_HEAD, r"line 2: expected index line ending in a newline, got end of text"),
        (_HEAD + "\n" + _CP, r"line 2: expected 'index <N>', got ''"),
        (_HEAD + "index 0", r"line 2: expected index line ending in a newline"),
        (_HEAD + "Index 0\n\n" + _CP, r"line 2: expected 'index <N>', got 'Index 0'"),
        (_HEAD + "index\n\n" + _CP, r"line 2: expected 'index <N>', got 'index'"),
        (_HEAD + "index 01\n\n" + _CP, r"line 2: index expected a decimal without leading zeros"),
        (_HEAD + "index 00\n\n" + _CP, r"index expected a decimal .*got '00'"),
        (_HEAD + "index -1\n\n" + _CP, r"index expected a decimal .*got '-1'"),
        (_HEAD + "index +1\n\n" + _CP, r"index expected a decimal .*got '\+1'"),
        (_HEAD + "index  1\n\n" + _CP, r"index expected a decimal .*got ' 1'"),
        (_HEAD + "index 1 \n\n" + _CP, r"index expected a decimal .*got '1 '"),
        (_HEAD + "index 0x1\n\n" + _CP, r"index expected a decimal .*got '0x1'"),
        (_HEAD + "index \u0661\n\n" + _CP, r"index expected a decimal .*got '\u0661'"),
        (_HEAD + "index 18446744073709551616\n\n" + _CP, r"0\.\.18446744073709551615, got"),
        (_HEAD + "extra !!\nindex 0\n\n" + _CP, r"line 2 extra: expected standard base64"),
        (_HEAD + "extra AA\nindex 0\n\n" + _CP, r"line 2 extra: expected standard base64"),
        (_HEAD + "extra AB==\nindex 0\n\n" + _CP, r"line 2 extra: expected canonical base64"),
        (_HEAD + "extra AA==\n\n" + _CP, r"line 3: expected 'index <N>', got ''"),
        (_HEAD + "index 0\nextra AA==\n\n" + _CP, r"line 3: hash: expected standard base64"),
        (_HEAD + "index 0\n" + _H, r"line 3: expected empty line before the checkpoint ending"),
        (_HEAD + "index 0\n" + _H + "\n", r"line 4: expected empty line before the checkpoint"),
        (_HEAD + "index 0\n", r"line 3: expected empty line before the checkpoint ending in"),
        (_HEAD + "index 0\n\n", r"expected a checkpoint after the empty line, got none"),
        (_HEAD + "index 0\n" + _H[:-1] + "\n\n" + _CP, r"line 3: hash: expected standard"),
        (_HEAD + "index 0\n" + _H + " \n\n" + _CP, r"line 3: hash: expected standard base64"),
        (
            _HEAD + "index 0\n" + _b64(bytes(31)) + "\n\n" + _CP,
            r"line 3: hash: expected 32 bytes, got 31",
        ),
        (
            _HEAD + "index 0\n" + _H + "\n" + _b64(bytes(33)) + "\n\n" + _CP,
            r"line 4: hash: expected 32 bytes, got 33",
        ),
        (
            _HEAD + "index 0\n" + _H[:-2] + "B=\n\n" + _CP,
            r"line 3: hash: expected canonical base64",
        ),
        (
            _HEAD + "index 0\n" + (_H + "\n") * 65 + "\n" + _CP,
            r"tlog proof: expected at most 64 hashes, got 65",
        ),
        (
            _HEAD + "index 0\n\n" + Checkpoint(LOG, 1, bytes(32)).to_text(),
            r"tlog proof checkpoint: signed note: expected a blank line before the signatures",
        ),
        (
            _HEAD + "index 0\n\n" + _CP[:-1],
            r"tlog proof checkpoint: signed note: expected a newline after the last signature",
        ),
        (
            _HEAD + "index 0\n\n\n" + _CP,
            r"tlog proof checkpoint: checkpoint origin: expected a non-empty line 1",
        ),
        (
            _HEAD + "index 0\n\n" + sign_note("just text\n", SIGNER),
            r"tlog proof checkpoint: checkpoint: expected at least 3 lines",
        ),
        (
            _HEAD + "index 0\n\n" + _CP.replace("\n109482\n", "\n0109482\n"),
            r"tlog proof checkpoint: checkpoint size: expected a decimal without leading zeros",
        ),
    ],
)
def test_malformed_proofs(text: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        TLogProof.parse(text)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((-1, (), _CP), r"tlog proof index: expected an integer 0\.\.18446744073709551615, got -1"),
        ((2**64, (), _CP), r"tlog proof index: expected an integer"),
        ((0, (bytes(32), bytes(31)), _CP), r"tlog proof hash 2: expected 32 bytes, got 31"),
        ((0, (bytes(32),) * 65, _CP), r"expected at most 64 hashes, got 65"),
        ((0, (), "not a note\n"), r"tlog proof checkpoint: signed note: expected a blank line"),
    ],
)
def test_constructor_checks(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(FormatError, match=match):
        TLogProof(*args)  # type: ignore[arg-type]


# --- verify -------------------------------------------------------------------------


def test_verify_one_leaf_tree() -> None:
    leaf_hash = leaf(b"only entry")
    proof = TLogProof(0, (), _checkpoint(1, leaf_hash))
    fake = FakeInclusion()
    cp = verify_tlog_proof(proof, leaf_hash, SIGNER.verifier(), fake, origin=LOG)
    assert cp == Checkpoint(LOG, 1, leaf_hash)
    assert fake.calls == [(leaf_hash, 0, 1, (), leaf_hash)]


@pytest.mark.parametrize("index", [0, 1])
def test_verify_two_leaf_tree(index: int) -> None:
    leaves = (leaf(b"entry 0"), leaf(b"entry 1"))
    root = node(*leaves)
    proof = TLogProof(index, (leaves[1 - index],), _checkpoint(2, root))
    fake = FakeInclusion()
    parsed = TLogProof.parse(proof.marshal())
    cp = verify_tlog_proof(parsed, leaves[index], SIGNER.verifier(), fake)
    assert (cp.size, cp.root) == (2, root)
    assert fake.calls == [(leaves[index], index, 2, (leaves[1 - index],), root)]


def test_verify_wrong_leaf_raises_from_inclusion_verifier() -> None:
    leaves = (leaf(b"entry 0"), leaf(b"entry 1"))
    proof = TLogProof(0, (leaves[1],), _checkpoint(2, node(*leaves)))
    with pytest.raises(MerkleProofError, match=r"inclusion proof for leaf 0 of 2 does not verify"):
        verify_tlog_proof(proof, leaf(b"forged"), SIGNER.verifier(), FakeInclusion())
    swapped = TLogProof(1, (leaves[1],), proof.checkpoint)
    with pytest.raises(MerkleProofError):
        verify_tlog_proof(swapped, leaves[0], SIGNER.verifier(), FakeInclusion())


def test_verify_checks_the_signature_before_inclusion() -> None:
    leaf_hash = leaf(b"only entry")
    proof = TLogProof(0, (), _checkpoint(1, leaf_hash))
    fake = FakeInclusion()
    stranger = Signer.generate(LOG).verifier()
    with pytest.raises(SignatureError, match=r"expected a signature by example\.com/fancylog\+"):
        verify_tlog_proof(proof, leaf_hash, stranger, fake)
    tampered = TLogProof(0, (), proof.checkpoint.replace("\n1\n", "\n2\n"))
    with pytest.raises(SignatureError, match=r"does not verify"):
        verify_tlog_proof(tampered, leaf_hash, SIGNER.verifier(), fake)
    assert fake.calls == []


def test_verify_checks_the_origin() -> None:
    leaf_hash = leaf(b"only entry")
    proof = TLogProof(0, (), _checkpoint(1, leaf_hash))
    fake = FakeInclusion()
    with pytest.raises(
        SignatureError, match=r"origin: expected 'other\.example/log', got 'example\.com/fancylog'"
    ):
        verify_tlog_proof(proof, leaf_hash, SIGNER.verifier(), fake, origin="other.example/log")
    assert fake.calls == []


def test_verify_ignores_extra_data() -> None:
    leaf_hash = leaf(b"only entry")
    proof = TLogProof(0, (), _checkpoint(1, leaf_hash), extra=b"unauthenticated")
    assert verify_tlog_proof(proof, leaf_hash, SIGNER.verifier(), FakeInclusion()).size == 1
