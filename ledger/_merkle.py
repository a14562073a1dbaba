"""The ledger's Merkle tree: RFC 9162 hashing, proofs and verification, storage-agnostic.

This module owns the SHA-256 Merkle tree of RFC 9162 (Certificate Transparency 2.0):

- §2.1.1 Merkle Tree Hash (MTH): :func:`leaf_hash`, :func:`node_hash`,
  :func:`root_from_leaf_hashes`;
- §2.1.3.1 / §2.1.4.1 generating inclusion and consistency proofs: which leaf ranges
  a proof is made of (:func:`inclusion_ranges`, :func:`consistency_ranges`), which
  stored tree nodes those ranges need (:func:`nodes_needed`) and the proofs themselves
  (:func:`inclusion_proof`, :func:`consistency_proof`);
- §2.1.3.2 / §2.1.4.2 verifying them: :func:`verify_inclusion`,
  :func:`verify_consistency`;
- :class:`CompactRange`, an incremental appender over leaves ``[0, n)`` used to stream
  millions of entries and to emit the tree nodes an append completes.

Node addressing. A *complete subtree* ``(level, index)`` is the perfect binary tree over
the leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 is a leaf hash. A store
keeps those hashes (they never change once complete), and every proof is computed from
them: any range a proof needs starts on a boundary aligned to its largest power-of-two
block, so its MTH is a right fold of the complete subtrees that cover it.

Nothing here touches storage: callers pass a ``Mapping[(level, index), bytes]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from hashlib import sha256

from ledger._errors import FormatError, MerkleProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "CompactRange",
    "InclusionChecker",
    "consistency_proof",
    "consistency_ranges",
    "inclusion_path_length",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "nodes_needed",
    "range_hash",
    "root_from_consistency",
    "root_from_inclusion",
    "root_from_leaf_hashes",
    "subtree_decomposition",
    "verify_consistency",
    "verify_inclusion",
]

LEAF_PREFIX = b"\x00"
"""Domain-separation byte before a leaf's data (RFC 9162 §2.1.1)."""

NODE_PREFIX = b"\x01"
"""Domain-separation byte before two child hashes (RFC 9162 §2.1.1)."""

HASH_SIZE = 32
"""Bytes in a SHA-256 digest; every hash in a proof must have exactly this length."""

EMPTY_ROOT = sha256(b"").digest()
"""MTH of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1)."""

Node = tuple[int, int]
"""A complete subtree ``(level, index)``."""

Range = tuple[int, int]
"""A half-open leaf range ``[start, end)``."""


# --------------------------------------------------------------------------- hashing


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one leaf (RFC 9162 §2.1.1)."""
    return sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node (RFC 9162 §2.1.1).

    The inputs are not length-checked here (hot path); verifiers check them up front.
    """
    return sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes by the recursive definition of RFC 9162 §2.1.1.

    A plain reference implementation for tests and small trees; use
    :class:`CompactRange` to hash long streams.
    """

    def mth(lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 1:
            return hashes[lo]
        k = _split(n)
        return node_hash(mth(lo, lo + k), mth(lo + k, hi))

    if not hashes:
        return EMPTY_ROOT
    return mth(0, len(hashes))


# ------------------------------------------------------------------ node addressing


def subtree_decomposition(start: int, end: int) -> list[Node]:
    """The complete subtrees, left to right, that exactly cover the leaves ``[start, end)``.

    Greedy from the left: at each position take the largest aligned power-of-two block
    that still fits. For ``start == 0`` these are the bits of ``end`` from high to low.
    """
    if not 0 <= start <= end:
        raise ValueError(f"leaf range [{start}, {end}) is not a valid range")
    out: list[Node] = []
    pos = start
    while pos < end:
        size = 1 << ((end - pos).bit_length() - 1)
        if pos:
            align = pos & -pos
            if align < size:
                size = align
        level = size.bit_length() - 1
        out.append((level, pos >> level))
        pos += size
    return out


def range_hash(start: int, end: int, nodes: Mapping[Node, bytes]) -> bytes:
    """MTH of the leaves ``[start, end)`` from the stored hashes of its decomposition.

    Valid when ``start`` is a multiple of the largest power of two not above
    ``end - start`` (true of every range :func:`inclusion_ranges` and
    :func:`consistency_ranges` produce); raises :class:`ValueError` otherwise and
    :class:`KeyError` naming the first node missing from ``nodes``.
    """
    n = end - start
    if n <= 0:
        if n == 0 and start == 0:
            return EMPTY_ROOT
        raise ValueError(f"leaf range [{start}, {end}) is empty or reversed")
    top = 1 << (n.bit_length() - 1)
    if start % top:
        raise ValueError(
            f"leaf range [{start}, {end}) is not aligned: start must be a multiple of {top}"
        )
    parts = subtree_decomposition(start, end)
    try:
        h = nodes[parts[-1]]
        for node in reversed(parts[:-1]):
            h = node_hash(nodes[node], h)
    except KeyError as exc:
        raise KeyError(f"tree node (level, index) = {exc.args[0]} is not available") from None
    return h


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """Leaf ranges whose MTHs form the inclusion path of leaf ``index`` (RFC 9162 §2.1.3.1).

    In proof order: the leaf's sibling first, the root's other child last.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    top_down: list[Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            top_down.append((mid, hi))
            hi = mid
        else:
            top_down.append((lo, mid))
            lo = mid
    top_down.reverse()
    return top_down


def consistency_ranges(size1: int, size2: int) -> list[Range]:
    """Leaf ranges whose MTHs form the consistency proof ``size1 -> size2``.

    RFC 9162 §2.1.4.1: ``SUBPROOF(size1, D[0:size2], true)``, in proof order. Empty when
    the sizes are equal. Raises :class:`ValueError` unless ``0 < size1 <= size2``.
    """
    if not 0 < size1 <= size2:
        raise ValueError(
            f"no consistency proof from size {size1} to size {size2}: need 0 < size1 <= size2"
        )
    top_down: list[Range] = []
    lo, hi = 0, size2
    whole = True  # the SUBPROOF flag: is [lo, size1) the whole old tree?
    while size1 < hi:
        mid = lo + _split(hi - lo)
        if size1 <= mid:
            top_down.append((mid, hi))
            hi = mid
        else:
            top_down.append((lo, mid))
            lo = mid
            whole = False
    top_down.reverse()
    if not whole:
        top_down.insert(0, (lo, hi))
    return top_down


def nodes_needed(ranges: Iterable[Range]) -> set[Node]:
    """Every complete subtree the given ranges decompose into: fetch them in one query."""
    out: set[Node] = set()
    for start, end in ranges:
        out.update(subtree_decomposition(start, end))
    return out


def inclusion_proof(index: int, size: int, nodes: Mapping[Node, bytes]) -> list[bytes]:
    """The RFC 9162 §2.1.3.1 inclusion proof for leaf ``index`` in a tree of ``size``.

    ``nodes`` must hold at least ``nodes_needed(inclusion_ranges(index, size))``.
    """
    return [range_hash(s, e, nodes) for s, e in inclusion_ranges(index, size)]


def consistency_proof(size1: int, size2: int, nodes: Mapping[Node, bytes]) -> list[bytes]:
    """The RFC 9162 §2.1.4.1 consistency proof from ``size1`` to ``size2``.

    ``nodes`` must hold at least ``nodes_needed(consistency_ranges(size1, size2))``.
    """
    return [range_hash(s, e, nodes) for s, e in consistency_ranges(size1, size2)]


# --------------------------------------------------------------------- verification


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise FormatError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    for i, p in enumerate(proof):
        if len(p) != HASH_SIZE:
            raise FormatError(f"proof hash #{i} must be {HASH_SIZE} bytes, got {len(p)}")


def _check_inclusion_input(leaf_hash: bytes, index: int, size: int,
                           proof: Sequence[bytes]) -> None:
    """What an inclusion proof must be before it is folded (RFC 9162 §2.1.3.2, step 1): 32-byte
    hashes, the index inside the tree, as many hashes as the path from it has."""
    _check_hash("leaf hash", leaf_hash)
    _check_proof_hashes(proof)
    if not 0 <= index < size:
        raise MerkleProofError(
            f"inclusion proof: leaf index {index} is outside a tree of size {size}"
        )
    _check_path_length(index, size, proof)


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof implies (RFC 9162 §2.1.3.2, steps 1-4).

    Left and right are derived from ``index`` and ``size`` alone. Raises
    :class:`FormatError` for a hash that is not 32 bytes and :class:`MerkleProofError`
    when the index is outside the tree or the proof has the wrong number of hashes.
    """
    _check_inclusion_input(leaf_hash, index, size, proof)
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:  # pragma: no cover - excluded by the length check above
            raise MerkleProofError("inclusion proof is longer than the tree is deep")
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
    if sn != 0:  # pragma: no cover - excluded by the length check above
        raise MerkleProofError("inclusion proof is shorter than the tree is deep")
    return r


def inclusion_path_length(index: int, size: int) -> int:
    """``len(inclusion_ranges(index, size))`` without building them: the levels below the
    node where the paths to leaf ``index`` and to the last leaf part, plus one hash for
    each left sibling above it (RFC 9162 §2.1.3.1). ``0 <= index < size``."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _check_path_length(index: int, size: int, proof: Sequence[bytes]) -> None:
    expected = inclusion_path_length(index, size)
    if len(proof) != expected:
        raise MerkleProofError(
            f"inclusion proof for leaf {index} in a tree of size {size}: "
            f"expected {expected} hashes, got {len(proof)}"
        )


class InclusionChecker:
    """:func:`verify_inclusion` of many proofs into one tree, each proof checked as
    strictly, the proofs of neighbouring leaves faster.

    Folding a proof (RFC 9162 §2.1.3.2) is a function of its state before a step (the
    two indexes and the hash so far) and the hashes left; so when a proof reaches,
    before some step, the very state the previous accepted proof had before the step
    where as many hashes were left, and those hashes are the same bytes, its fold ends
    where that one's ended: at the root. Two neighbouring leaves meet a couple of levels
    up, so a run of consecutive leaves (a bundle's entries) costs about two hashes a
    proof instead of one per level. Nothing is skipped that could change the outcome:
    every proof's hashes, index and length are checked, and it is folded until its state
    and what is left are those of a proof that reached the root."""

    def __init__(self, size: int, root: bytes) -> None:
        _check_hash("root hash", root)
        self.size, self.root = size, root
        self._path: Sequence[bytes] = ()
        self._states: list[tuple[int, int, bytes]] = []
        """The previous accepted proof's state before each of its steps."""

    def verify(self, leaf_hash: bytes, index: int, proof: Sequence[bytes]) -> None:
        """As :func:`verify_inclusion` into this checker's tree."""
        size = self.size
        _check_inclusion_input(leaf_hash, index, size, proof)
        prev, prev_states = self._path, self._states
        n, shift = len(proof), len(prev) - len(proof)
        same = n  # proof[same:] == prev[same + shift:]
        while same > 0 and same + shift > 0 and proof[same - 1] == prev[same - 1 + shift]:
            same -= 1
        states: list[tuple[int, int, bytes]] = []
        fn, sn, r = index, size - 1, leaf_hash
        for k, p in enumerate(proof):
            state = (fn, sn, r)
            if k >= same and prev_states[k + shift] == state:
                self._path, self._states = proof, states + prev_states[k + shift:]
                return
            states.append(state)
            if fn & 1 or fn == sn:
                r = sha256(NODE_PREFIX + p + r).digest()
                if not fn & 1:
                    while fn and not fn & 1:
                        fn >>= 1
                        sn >>= 1
            else:
                r = sha256(NODE_PREFIX + r + p).digest()
            fn >>= 1
            sn >>= 1
        if sn != 0:  # pragma: no cover - excluded by the length check above
            raise MerkleProofError("inclusion proof is shorter than the tree is deep")
        if r != self.root:
            raise MerkleProofError(
                f"inclusion proof for leaf {index} in a tree of size {size} does not match "
                f"the root: expected {self.root.hex()}, computed {r.hex()}"
            )
        states.append((fn, sn, r))
        self._path, self._states = proof, states


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf ``index`` with hash ``leaf_hash`` is in the tree with ``root``.

    RFC 9162 §2.1.3.2. Raises :class:`MerkleProofError` if it is not, and
    :class:`FormatError` for any hash (leaf, proof or root) that is not 32 bytes.
    """
    _check_hash("root hash", root)
    computed = root_from_inclusion(leaf_hash, index, size, proof)
    if computed != root:
        raise MerkleProofError(
            f"inclusion proof for leaf {index} in a tree of size {size} does not match the "
            f"root: expected {root.hex()}, computed {computed.hex()}"
        )


def root_from_consistency(size1: int, size2: int, root1: bytes, proof: Sequence[bytes]) -> bytes:
    """The new root a consistency proof implies, once it reproduces ``root1``.

    RFC 9162 §2.1.4.2 for ``0 < size1 < size2``. Raises :class:`MerkleProofError` if the
    sizes are not in that order, the proof has the wrong length or does not rebuild
    ``root1``; :class:`FormatError` for a hash that is not 32 bytes.
    """
    _check_hash("old root hash", root1)
    _check_proof_hashes(proof)
    if not 0 < size1 < size2:
        raise MerkleProofError(
            f"consistency proof: expected 0 < size1 < size2, got {size1} and {size2}"
        )
    expected = len(consistency_ranges(size1, size2))
    if len(proof) != expected:
        raise MerkleProofError(
            f"consistency proof from size {size1} to {size2}: "
            f"expected {expected} hashes, got {len(proof)}"
        )
    path: Sequence[bytes] = proof
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: the old root is a node
        path = [root1, *proof]
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:  # pragma: no cover - excluded by the length check above
            raise MerkleProofError("consistency proof is longer than the tree is deep")
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
    if sn != 0:  # pragma: no cover - excluded by the length check above
        raise MerkleProofError("consistency proof is shorter than the tree is deep")
    if fr != root1:
        raise MerkleProofError(
            f"consistency proof from size {size1} to {size2} does not rebuild the old root: "
            f"expected {root1.hex()}, computed {fr.hex()}"
        )
    return sr


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``(size2, root2)`` extends the tree ``(size1, root1)``.

    RFC 9162 §2.1.4.2. ``size1 == 0`` is always refused (a proof from the empty tree
    proves nothing); ``size1 > size2`` is refused; equal sizes need an empty proof and
    equal roots. Raises :class:`MerkleProofError`, or :class:`FormatError` for a hash that
    is not 32 bytes.

    With equal sizes only root equality is checked, not hash length, as the
    transparency-dev vectors (``sizes-are-equal-one-and-proof-is-empty``) require.
    """
    if size1 <= 0:
        raise MerkleProofError(
            f"consistency proof from size {size1}: expected the old tree to be non-empty"
        )
    if size1 > size2:
        raise MerkleProofError(
            f"consistency proof: the old size {size1} is larger than the new size {size2}"
        )
    if size1 == size2:
        if proof:
            raise MerkleProofError(
                f"consistency proof between equal sizes {size1}: "
                f"expected 0 hashes, got {len(proof)}"
            )
        if root1 != root2:
            raise MerkleProofError(
                f"trees of equal size {size1} have different roots: {root1.hex()} and {root2.hex()}"
            )
        return
    _check_hash("new root hash", root2)
    computed = root_from_consistency(size1, size2, root1, proof)
    if computed != root2:
        raise MerkleProofError(
            f"consistency proof from size {size1} to {size2} does not match the new root: "
            f"expected {root2.hex()}, computed {computed.hex()}"
        )


# ---------------------------------------------------------------------- compact range


class CompactRange:
    """The complete-subtree frontier of leaves ``[0, size)``: append leaves, get the root.

    ``frontier`` holds the hashes of :meth:`frontier_nodes` (``size``'s bits, largest
    subtree first). Appending is a binary-counter carry: each carry completes one node,
    and :meth:`append` returns those nodes so a store can persist them.
    """

    __slots__ = ("_frontier", "_size")

    def __init__(self, size: int = 0, frontier: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise ValueError(f"compact range size must be >= 0, got {size}")
        want = size.bit_count()
        if len(frontier) != want:
            raise FormatError(
                f"compact range of size {size}: expected {want} frontier hashes, "
                f"got {len(frontier)}"
            )
        for i, h in enumerate(frontier):
            if len(h) != HASH_SIZE:
                raise FormatError(
                    f"compact range frontier hash #{i} must be {HASH_SIZE} bytes, got {len(h)}"
                )
        self._size = size
        self._frontier: list[bytes] = [bytes(h) for h in frontier]

    @staticmethod
    def frontier_nodes(size: int) -> list[Node]:
        """The complete subtrees whose hashes make up the frontier of ``[0, size)``."""
        return subtree_decomposition(0, size)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def frontier(self) -> list[bytes]:
        """A copy of the frontier hashes, largest subtree first."""
        return list(self._frontier)

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return the nodes ``(level, index, hash)`` it completed.

        Only nodes at level >= 1 are returned (the leaf itself is level 0), lowest first.
        """
        if len(leaf_hash) != HASH_SIZE:
            raise FormatError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf_hash)}")
        n = self._size
        self._size = n + 1
        frontier = self._frontier
        if not n & 1:
            frontier.append(leaf_hash)
            return []
        done: list[tuple[int, int, bytes]] = []
        h = leaf_hash
        level = 0
        while n & 1:
            h = sha256(NODE_PREFIX + frontier.pop() + h).digest()
            n >>= 1
            level += 1
            done.append((level, n, h))
        frontier.append(h)
        return done

    def root(self) -> bytes:
        """MTH of the leaves appended so far (:data:`EMPTY_ROOT` when there are none)."""
        frontier = self._frontier
        if not frontier:
            return EMPTY_ROOT
        h = frontier[-1]
        for i in range(len(frontier) - 2, -1, -1):
            h = sha256(NODE_PREFIX + frontier[i] + h).digest()
        return h

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size})"
