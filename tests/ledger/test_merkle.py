"""RFC 9162 Merkle tree: third-party vectors, proof generation and verification, CompactRange.

Vectors are read from ``tests/vectors`` (sources and licences in its README):

- ``rfc6962-tlog.json``: roots, inclusion and consistency paths over 70 leaves
  (computed with Go's ``golang.org/x/mod/sumdb/tlog``);
- ``transparency-dev-merkle/testdata/{inclusion,consistency}``: verifier cases, exactly
  the ``wantErr: false`` ones must be accepted.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger._errors import FormatError, MerkleProofError
from ledger._merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    LEAF_PREFIX,
    NODE_PREFIX,
    CompactRange,
    InclusionChecker,
    consistency_proof,
    consistency_ranges,
    inclusion_path_length,
    inclusion_proof,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    nodes_needed,
    range_hash,
    root_from_consistency,
    root_from_inclusion,
    root_from_leaf_hashes,
    subtree_decomposition,
    verify_consistency,
    verify_inclusion,
)
from tests._vectors import vectors_dir

Nodes = dict[tuple[int, int], bytes]

TD_DIR = "transparency-dev-merkle/testdata"


def _build_nodes(leaf_hashes: list[bytes]) -> Nodes:
    """Every complete subtree of the tree over ``leaf_hashes``, via CompactRange."""
    nodes: Nodes = {}
    cr = CompactRange()
    for i, h in enumerate(leaf_hashes):
        nodes[(0, i)] = h
        for level, index, value in cr.append(h):
            nodes[(level, index)] = value
    return nodes


# ----------------------------------------------------------------- rfc6962-tlog.json


@pytest.fixture(scope="module")
def tlog(vectors: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((vectors / "rfc6962-tlog.json").read_text("utf-8"))
    return data


@pytest.fixture(scope="module")
def tlog_leaf_hashes(tlog: dict[str, Any]) -> list[bytes]:
    return [bytes.fromhex(h) for h in tlog["leaf_hashes_hex"]]


@pytest.fixture(scope="module")
def tlog_nodes(tlog_leaf_hashes: list[bytes]) -> Nodes:
    return _build_nodes(tlog_leaf_hashes)


def test_constants() -> None:
    assert LEAF_PREFIX == b"\x00"
    assert NODE_PREFIX == b"\x01"
    assert HASH_SIZE == 32
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_leaf_hashes_match_vectors(tlog: dict[str, Any]) -> None:
    assert len(tlog["leaves_hex"]) == 70
    for data_hex, want in zip(tlog["leaves_hex"], tlog["leaf_hashes_hex"], strict=True):
        assert leaf_hash(bytes.fromhex(data_hex)).hex() == want


def test_roots_for_every_size(
    tlog: dict[str, Any], tlog_leaf_hashes: list[bytes], tlog_nodes: Nodes
) -> None:
    roots = [bytes.fromhex(r) for r in tlog["roots_hex_by_size"]]
    assert len(roots) == 71
    assert roots[0] == EMPTY_ROOT
    cr = CompactRange()
    assert cr.root() == EMPTY_ROOT
    for size in range(71):
        assert root_from_leaf_hashes(tlog_leaf_hashes[:size]) == roots[size], size
        assert range_hash(0, size, tlog_nodes) == roots[size], size
        assert cr.size == size
        assert cr.root() == roots[size], size
        assert CompactRange(size, cr.frontier).root() == roots[size]
        if size < 70:
            cr.append(tlog_leaf_hashes[size])


def test_compact_range_emits_complete_subtrees(tlog_leaf_hashes: list[bytes]) -> None:
    cr = CompactRange()
    emitted: set[tuple[int, int]] = set()
    for i, h in enumerate(tlog_leaf_hashes):
        done = cr.append(h)
        levels = [level for level, _, _ in done]
        assert levels == list(range(1, len(done) + 1))  # lowest first, one per carry
        for level, index, value in done:
            lo, hi = index << level, (index + 1) << level
            assert hi == i + 1  # an append completes only subtrees ending at the new leaf
            assert value == root_from_leaf_hashes(tlog_leaf_hashes[lo:hi])
            assert (level, index) not in emitted
            emitted.add((level, index))
        assert [
            root_from_leaf_hashes(tlog_leaf_hashes[lv_i[1] << lv_i[0] : (lv_i[1] + 1) << lv_i[0]])
            for lv_i in CompactRange.frontier_nodes(i + 1)
        ] == cr.frontier
    # every complete subtree of 70 leaves at level >= 1 was emitted exactly once
    want = {(lv, ix) for lv in range(1, 7) for ix in range(70 >> lv)}
    assert emitted == want


def test_inclusion_vectors(
    tlog: dict[str, Any], tlog_leaf_hashes: list[bytes], tlog_nodes: Nodes
) -> None:
    roots = [bytes.fromhex(r) for r in tlog["roots_hex_by_size"]]
    cases = tlog["inclusion"]
    assert len(cases) == 541
    for case in cases:
        size, index = case["tree_size"], case["index"]
        want = [bytes.fromhex(p) for p in case["path"]]
        ranges = inclusion_ranges(index, size)
        assert {n for n in nodes_needed(ranges)} <= tlog_nodes.keys()
        assert inclusion_proof(index, size, tlog_nodes) == want, (index, size)
        verify_inclusion(tlog_leaf_hashes[index], index, size, want, roots[size])
        assert root_from_inclusion(tlog_leaf_hashes[index], index, size, want) == roots[size]


def test_consistency_vectors(tlog: dict[str, Any], tlog_nodes: Nodes) -> None:
    roots = [bytes.fromhex(r) for r in tlog["roots_hex_by_size"]]
    cases = tlog["consistency"]
    assert len(cases) == 627
    for case in cases:
        size1, size2 = case["size1"], case["size2"]
        want = [bytes.fromhex(p) for p in case["path"]]
        assert consistency_proof(size1, size2, tlog_nodes) == want, (size1, size2)
        verify_consistency(size1, size2, roots[size1], roots[size2], want)
        if size1 < size2:
            assert root_from_consistency(size1, size2, roots[size1], want) == roots[size2]


def test_every_proof_of_70_leaves(
    tlog: dict[str, Any], tlog_leaf_hashes: list[bytes], tlog_nodes: Nodes
) -> None:
    """Beyond the vector subset: every (index, size) and (size1, size2) up to 70."""
    roots = [bytes.fromhex(r) for r in tlog["roots_hex_by_size"]]
    for size in range(1, 71):
        for index in range(size):
            proof = inclusion_proof(index, size, tlog_nodes)
            verify_inclusion(tlog_leaf_hashes[index], index, size, proof, roots[size])
        for size1 in range(1, size + 1):
            proof = consistency_proof(size1, size, tlog_nodes)
            verify_consistency(size1, size, roots[size1], roots[size], proof)


# ------------------------------------------------------------- transparency-dev/merkle


def _td_cases(kind: str) -> list[str]:
    base = vectors_dir() / TD_DIR
    return sorted(p.relative_to(base).as_posix() for p in (base / kind).rglob("*.json"))


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "", validate=True)


def _b64_list(values: list[str] | None) -> list[bytes]:
    return [_b64(v) for v in values or []]


INCLUSION_CASES = _td_cases("inclusion")
CONSISTENCY_CASES = _td_cases("consistency")


def test_transparency_dev_case_counts() -> None:
    assert len(INCLUSION_CASES) + len(CONSISTENCY_CASES) == 196


@pytest.mark.parametrize("rel", INCLUSION_CASES, ids=INCLUSION_CASES)
def test_transparency_dev_inclusion(vectors: Path, rel: str) -> None:
    case = json.loads((vectors / TD_DIR / rel).read_text("utf-8"))
    args = (
        _b64(case["leafHash"]),
        case["leafIdx"],
        case["treeSize"],
        _b64_list(case["proof"]),
        _b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises((MerkleProofError, FormatError)):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("rel", CONSISTENCY_CASES, ids=CONSISTENCY_CASES)
def test_transparency_dev_consistency(vectors: Path, rel: str) -> None:
    case = json.loads((vectors / TD_DIR / rel).read_text("utf-8"))
    args = (
        case["size1"],
        case["size2"],
        _b64(case["root1"]),
        _b64(case["root2"]),
        _b64_list(case["proof"]),
    )
    if case["wantErr"]:
        with pytest.raises((MerkleProofError, FormatError)):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


# ------------------------------------------------------------------ unit behaviour


def test_hash_functions() -> None:
    assert leaf_hash(b"") == sha256(b"\x00").digest()
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) == sha256(b"\x01" + a + b).digest()
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    assert root_from_leaf_hashes([a]) == a
    assert root_from_leaf_hashes([a, b]) == node_hash(a, b)


def test_subtree_decomposition() -> None:
    assert subtree_decomposition(0, 0) == []
    assert subtree_decomposition(0, 1) == [(0, 0)]
    assert subtree_decomposition(0, 70) == [(6, 0), (2, 16), (1, 34)]
    assert subtree_decomposition(4, 10) == [(2, 1), (1, 4)]
    # general greedy (unaligned start): growing then shrinking blocks
    assert subtree_decomposition(3, 13) == [(0, 3), (2, 1), (2, 2), (0, 12)]
    assert CompactRange.frontier_nodes(13) == [(3, 0), (2, 2), (0, 12)]
    for start in range(40):
        for end in range(start, 80):
            covered: list[int] = []
            for level, index in subtree_decomposition(start, end):
                covered.extend(range(index << level, (index + 1) << level))
            assert covered == list(range(start, end))
    with pytest.raises(ValueError):
        subtree_decomposition(5, 4)
    with pytest.raises(ValueError):
        subtree_decomposition(-1, 4)


def test_range_hash_refuses_unaligned_and_missing(tlog_nodes: Nodes) -> None:
    with pytest.raises(ValueError, match="not aligned"):
        range_hash(3, 13, tlog_nodes)
    with pytest.raises(ValueError):
        range_hash(5, 5, tlog_nodes)
    assert range_hash(0, 0, {}) == EMPTY_ROOT
    with pytest.raises(KeyError, match="not available"):
        range_hash(0, 3, {(1, 0): EMPTY_ROOT})


def test_range_functions_refuse_bad_arguments() -> None:
    for index, size in [(0, 0), (-1, 5), (5, 5), (6, 5)]:
        with pytest.raises(ValueError):
            inclusion_ranges(index, size)
    for size1, size2 in [(0, 0), (0, 5), (6, 5), (-1, 3)]:
        with pytest.raises(ValueError):
            consistency_ranges(size1, size2)
    assert consistency_ranges(5, 5) == []
    assert inclusion_ranges(0, 1) == []


def test_ranges_are_aligned_and_sized() -> None:
    for size in range(1, 130):
        for index in range(size):
            ranges = inclusion_ranges(index, size)
            for start, end in ranges:
                assert start % (1 << ((end - start).bit_length() - 1)) == 0
            assert len(ranges) == len(set(ranges))
        for size1 in range(1, size + 1):
            for start, end in consistency_ranges(size1, size):
                assert start % (1 << ((end - start).bit_length() - 1)) == 0


def test_verify_inclusion_refuses_malformed(tlog_leaf_hashes: list[bytes]) -> None:
    leaves = tlog_leaf_hashes[:8]
    nodes = _build_nodes(leaves)
    root = root_from_leaf_hashes(leaves)
    proof = inclusion_proof(3, 8, nodes)
    verify_inclusion(leaves[3], 3, 8, proof, root)
    with pytest.raises(FormatError, match="root hash must be 32 bytes, got 31"):
        verify_inclusion(leaves[3], 3, 8, proof, root[:31])
    with pytest.raises(FormatError, match="leaf hash"):
        verify_inclusion(leaves[3] + b"\x00", 3, 8, proof, root)
    with pytest.raises(FormatError, match="proof hash #1"):
        verify_inclusion(leaves[3], 3, 8, [proof[0], proof[1][:-1], proof[2]], root)
    with pytest.raises(MerkleProofError, match="expected 3 hashes, got 4"):
        verify_inclusion(leaves[3], 3, 8, [*proof, proof[0]], root)
    with pytest.raises(MerkleProofError, match="expected 3 hashes, got 2"):
        verify_inclusion(leaves[3], 3, 8, proof[:2], root)
    with pytest.raises(MerkleProofError, match="outside"):
        verify_inclusion(leaves[3], 8, 8, proof, root)
    with pytest.raises(MerkleProofError, match="outside"):
        verify_inclusion(leaves[3], -1, 8, proof, root)
    with pytest.raises(MerkleProofError, match="does not match the root"):
        verify_inclusion(leaves[4], 3, 8, proof, root)


def test_verify_consistency_refuses_malformed(tlog_leaf_hashes: list[bytes]) -> None:
    nodes = _build_nodes(tlog_leaf_hashes[:7])
    r3 = root_from_leaf_hashes(tlog_leaf_hashes[:3])
    r7 = root_from_leaf_hashes(tlog_leaf_hashes[:7])
    proof = consistency_proof(3, 7, nodes)
    verify_consistency(3, 7, r3, r7, proof)
    verify_consistency(7, 7, r7, r7, [])
    with pytest.raises(MerkleProofError, match="non-empty"):
        verify_consistency(0, 7, EMPTY_ROOT, r7, [])
    with pytest.raises(MerkleProofError, match="non-empty"):
        verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(MerkleProofError, match="larger"):
        verify_consistency(7, 3, r7, r3, proof)
    with pytest.raises(MerkleProofError, match="expected 0 hashes, got 1"):
        verify_consistency(7, 7, r7, r7, [r7])
    with pytest.raises(MerkleProofError, match="different roots"):
        verify_consistency(7, 7, r7, r3, [])
    with pytest.raises(FormatError, match="new root hash"):
        verify_consistency(3, 7, r3, r7[:-1], proof)
    with pytest.raises(FormatError, match="old root hash"):
        verify_consistency(3, 7, r3 + b"\x00", r7, proof)
    with pytest.raises(FormatError, match="proof hash #0"):
        verify_consistency(3, 7, r3, r7, [b"", *proof[1:]])
    with pytest.raises(MerkleProofError, match="hashes, got 0"):
        verify_consistency(3, 7, r3, r7, [])
    with pytest.raises(MerkleProofError, match="old root"):
        verify_consistency(3, 7, r7, r7, proof)
    with pytest.raises(MerkleProofError, match="new root"):
        verify_consistency(3, 7, r3, r3, proof)


def test_compact_range_refuses_bad_state() -> None:
    h = leaf_hash(b"x")
    with pytest.raises(FormatError, match="expected 2 frontier hashes, got 1"):
        CompactRange(3, [h])
    with pytest.raises(FormatError, match="must be 32 bytes"):
        CompactRange(1, [h[:5]])
    with pytest.raises(ValueError):
        CompactRange(-1)
    cr = CompactRange()
    with pytest.raises(FormatError, match="got 3"):
        cr.append(b"abc")
    assert cr.size == 0
    assert repr(CompactRange(1, [h])) == "CompactRange(size=1)"


# ---------------------------------------------------------------- property tests

MAX_SIZE = 300


@cache
def _leaves() -> tuple[bytes, ...]:
    return tuple(leaf_hash(i.to_bytes(4, "big")) for i in range(MAX_SIZE))


@cache
def _nodes() -> Nodes:
    return _build_nodes(list(_leaves()))


@cache
def _root(size: int) -> bytes:
    return root_from_leaf_hashes(_leaves()[:size])


def _flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@st.composite
def _index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(0, size - 1)), size


@st.composite
def _two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    size2 = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(1, size2)), size2


@settings(max_examples=150, deadline=None)
@given(_index_and_size(), st.integers(0, 10_000), st.integers(0, HASH_SIZE * 8 - 1))
def test_inclusion_property(case: tuple[int, int], which: int, bit: int) -> None:
    index, size = case
    leaf, root = _leaves()[index], _root(size)
    ranges = inclusion_ranges(index, size)
    proof = inclusion_proof(index, size, {n: _nodes()[n] for n in nodes_needed(ranges)})
    verify_inclusion(leaf, index, size, proof, root)
    # flipping any bit of the leaf, the root or one proof hash must fail
    targets = len(proof) + 2
    t = which % targets
    if t == 0:
        args = (_flip(leaf, bit), proof, root)
    elif t == 1:
        args = (leaf, proof, _flip(root, bit))
    else:
        bad = list(proof)
        bad[t - 2] = _flip(bad[t - 2], bit)
        args = (leaf, bad, root)
    with pytest.raises(MerkleProofError):
        verify_inclusion(args[0], index, size, args[1], args[2])


@settings(max_examples=150, deadline=None)
@given(_two_sizes(), st.integers(0, 10_000), st.integers(0, HASH_SIZE * 8 - 1))
def test_consistency_property(case: tuple[int, int], which: int, bit: int) -> None:
    size1, size2 = case
    root1, root2 = _root(size1), _root(size2)
    ranges = consistency_ranges(size1, size2)
    proof = consistency_proof(size1, size2, {n: _nodes()[n] for n in nodes_needed(ranges)})
    verify_consistency(size1, size2, root1, root2, proof)
    targets = len(proof) + 2
    t = which % targets
    if t == 0:
        args = (_flip(root1, bit), root2, proof)
    elif t == 1:
        args = (root1, _flip(root2, bit), proof)
    else:
        bad = list(proof)
        bad[t - 2] = _flip(bad[t - 2], bit)
        args = (root1, root2, bad)
    with pytest.raises(MerkleProofError):
        verify_consistency(size1, size2, *args)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, MAX_SIZE), st.integers(0, 40))
def test_compact_range_resume_property(start: int, more: int) -> None:
    leaves = _leaves()
    end = min(start + more, MAX_SIZE)
    frontier = [_nodes()[n] for n in CompactRange.frontier_nodes(start)]
    cr = CompactRange(start, frontier)
    assert cr.root() == _root(start)
    for i in range(start, end):
        for level, index, value in cr.append(leaves[i]):
            assert _nodes()[(level, index)] == value
    assert cr.size == end
    assert cr.root() == _root(end)
    assert cr.frontier == [_nodes()[n] for n in CompactRange.frontier_nodes(end)]


# ------------------------------------------------------------ many proofs, one tree


def test_inclusion_path_length_is_the_ranges_count() -> None:
    for size in range(1, 300):
        for index in range(size):
            assert inclusion_path_length(index, size) == len(inclusion_ranges(index, size))


def _verdict(check: Any, *args: Any) -> str | None:
    try:
        check(*args)
    except (MerkleProofError, FormatError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def test_inclusion_checker_agrees_with_verify_inclusion_on_every_proof_and_tamper(
    tlog: dict[str, Any], tlog_leaf_hashes: list[bytes], tlog_nodes: Nodes
) -> None:
    """The checker remembers the previous accepted proof's fold: every proof of every
    size up to 70, in order and backwards, each followed by tampered copies (a flipped
    hash at each position, one hash too many or too few, another leaf, the wrong index),
    gets exactly the verdict and message verify_inclusion gives it alone."""
    roots = [bytes.fromhex(r) for r in tlog["roots_hex_by_size"]]
    for size in range(1, 71):
        root = roots[size]
        for order in (range(size), range(size - 1, -1, -1)):
            checker = InclusionChecker(size, root)
            for index in order:
                leaf = tlog_leaf_hashes[index]
                proof = inclusion_proof(index, size, tlog_nodes)
                cases: list[tuple[bytes, int, list[bytes]]] = [(leaf, index, proof)]
                cases += [(leaf, index, [*proof[:k], _flip(proof[k], 3), *proof[k + 1:]])
                          for k in range(len(proof))]
                cases += [(leaf, index, [*proof, leaf]), (leaf, index, proof[1:]),
                          (_flip(leaf, 0), index, proof), (leaf, (index + 1) % size, proof),
                          (leaf, index, proof)]
                for leaf_, index_, proof_ in cases:
                    want = _verdict(verify_inclusion, leaf_, index_, size, proof_, root)
                    assert _verdict(checker.verify, leaf_, index_, proof_) == want
                    if (leaf_, index_) == (leaf, index) and proof_ is proof:
                        assert want is None


@settings(max_examples=150, deadline=None)
@given(st.integers(1, MAX_SIZE), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 40),
                                                     st.integers(0, HASH_SIZE * 8 - 1)),
                                           min_size=1, max_size=30))
def test_inclusion_checker_property(size: int, steps: list[tuple[int, int, int]]) -> None:
    """Random sequences of proofs into one tree, some tampered at a random hash: the
    checker's verdict is verify_inclusion's, whatever came before."""
    root = _root(size)
    checker = InclusionChecker(size, root)
    for pick, tamper, bit in steps:
        index = pick % size
        proof = inclusion_proof(index, size, {n: _nodes()[n] for n in
                                              nodes_needed(inclusion_ranges(index, size))})
        if proof and tamper < len(proof):
            proof[tamper] = _flip(proof[tamper], bit)
        leaf = _leaves()[index]
        assert (_verdict(checker.verify, leaf, index, proof)
                == _verdict(verify_inclusion, leaf, index, size, proof, root))
