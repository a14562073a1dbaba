"""Verification: recompute the chain, every entry hash, every checkpoint's root and
signature, and check that derived tables agree — streaming, in flat memory.

``check_ledger`` returns a :class:`VerifyResult` (for reports); ``verify_ledger``
raises :class:`LedgerIntegrityError` naming the first bad sequence number. Both
run the same code. See docs/FORMAT.md §6 for what is checked, in which order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from ledger import _schema as s
from ledger._entry import HEADER_SIZE, LEAF_VERSION, ZERO_HASH, decode_leaf
from ledger._errors import BfaError, FormatError, IntegrityError, LedgerIntegrityError
from ledger._merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    consistency_ranges,
    inclusion_proof,
    inclusion_ranges,
    nodes_needed,
    range_hash,
    verify_consistency,
    verify_inclusion,
)
from ledger._note import Checkpoint, Verifier, open_checkpoint, parse_note
from ledger._rotation import KeyChain, key_chain
from ledger._store import Store
from schemas import gettext, language

ProgressFn = Callable[[int], None]
_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing verification found wrong; ``seq`` is the first entry concerned.

    ``message`` is English in every language: it is data (``bfa verify --json``, the
    nightly's integrity break, whose evidence digest covers it), so the errors it quotes
    are raised in English too (``schemas.language("en")``)."""

    code: str
    message: str
    seq: int | None = None


@dataclass
class VerifyResult:
    """What a verification run checked and found."""

    tree_size: int = 0
    start: int = 0
    entries_checked: int = 0
    checkpoints_checked: int = 0
    derived_checked: bool = False
    against: int | None = None
    problems: list[Problem] = field(default_factory=list)
    root: bytes | None = None
    """The root of the whole tree folded from the entry hashes the chain pass read onto
    the verified resume frontier (None when the run stopped at a problem): the only root
    a signer may sign (FORMAT.md §5.5)."""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class _Cp:
    size: int
    root: bytes
    note: str


def _load_checkpoints(
    conn: Connection, verifier: Verifier, origin: str, result: VerifyResult,
    cosigning: int | None = None,
) -> tuple[list[_Cp], KeyChain | None]:
    """§6.1: every stored checkpoint, each signed by the key in force over its tree (the
    signing key's history, §5.7, trusted through ``verifier``). ``cosigning``: the seq of
    the rotation entry whose checkpoint the caller is about to sign with both keys."""
    out: list[_Cp] = []
    try:
        with language("en"):  # quoted in the problem's message
            chain = key_chain(conn, verifier, origin)
    except IntegrityError as e:
        result.problems.append(Problem("key-rotation", str(e), None))
        return out, None
    c = s.checkpoints.c
    sizes: set[int] = set()
    for size, root, note in conn.execute(
        select(c.tree_size, c.root_hash, c.note).order_by(c.tree_size)
    ):
        size = int(size)
        sizes.add(size)
        signers = chain.signers(size)
        try:
            cp = open_checkpoint(note, signers, origin)
        except BfaError as e:
            names = " and ".join(f"{k.name}+{k.key_hash:08x}" for k in signers)
            result.problems.append(Problem(
                "checkpoint-signature",
                f"checkpoint at size {size} is not signed by the ledger key {names}: {e}",
                size))
            continue
        if cp.size != size or cp.root != bytes(root):
            result.problems.append(Problem(
                "checkpoint-row",
                f"checkpoint row at size {size} disagrees with its signed note "
                f"(note says size {cp.size})", size))
            continue
        result.checkpoints_checked += 1
        if size == 0 and cp.root != EMPTY_ROOT:  # the chain pass compares roots from size 1
            result.problems.append(Problem(
                "root-mismatch", 'checkpoint at size 0 signs a root other than SHA-256("")', None))
            continue
        out.append(_Cp(size, cp.root, note))
    for r in chain.uncosigned(sizes, cosigning=cosigning):
        result.problems.append(Problem("key-rotation", r.uncosigned, r.seq))
    return out, chain


def _note_size(note: str) -> int:
    """The size a checkpoint note states, before its signature is checked (to pick the
    key in force); :class:`FormatError` when it is no checkpoint note."""
    return Checkpoint.parse(parse_note(note).text).size


def _stream(store: Store, conn: Connection, start: int,
            end: int | None = None) -> Iterator[tuple[int, bytes, bytes]]:
    """Entries from ``start`` (up to ``end``, excluded) in order, the fastest raw way
    each backend offers.

    PostgreSQL: binary ``COPY ... TO STDOUT`` in the caller's snapshot; SQLite: a
    plain cursor. Both stream: memory does not grow with the ledger. While a COPY runs
    the connection answers no other statement: a caller that must query between rows
    streams bounded ranges (:func:`_chunks`).
    """
    raw = conn.connection.driver_connection
    assert raw is not None
    bound = "" if end is None else f" AND seq < {int(end)}"
    sql = (f"SELECT seq, leaf, entry_hash FROM entries WHERE seq >= {int(start)}{bound} "
           "ORDER BY seq")
    if store.dialect == "postgresql":
        with raw.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "bytea", "bytea"])
            yield from cp.rows()
    else:
        cur = raw.execute(sql)
        try:
            while rows := cur.fetchmany(_BATCH):
                yield from rows
        finally:
            cur.close()


def _chunks(store: Store, conn: Connection, start: int, end: int,
            compare: Callable[[], bool]) -> Iterator[tuple[int, bytes, bytes]]:
    """Entries ``start … end − 1`` streamed in ranges of :data:`_BATCH` sequence numbers,
    calling ``compare`` after each range (when no COPY is running); stops early when it
    returns False."""
    for lo in range(start, end, _BATCH):
        yield from _stream(store, conn, lo, min(lo + _BATCH, end))
        if not compare():
            return


def _chain_pass(
    store: Store,
    conn: Connection,
    start: int,
    crange: CompactRange,
    prev: bytes,
    cps: list[_Cp],
    result: VerifyResult,
    against: Checkpoint | None,
    progress: ProgressFn | None,
    check_nodes: bool,
    end: int,
) -> bytes | None:
    """Stream entries from ``start``; returns the root at ``against.size`` if asked.

    ``check_nodes``: compare every stored tree node the streamed entries complete with
    the one recomputed from them (FORMAT.md §6.3 step 6; a full run with the derived
    pass compares them there instead); entries are then streamed up to ``end`` (the
    size the table gives) in bounded ranges, the comparisons between them."""
    sha256 = hashlib.sha256
    version = bytes([LEAF_VERSION])
    min_len = HEADER_SIZE + 2  # the header and at least "{}" (FORMAT.md §2.1)
    want = {cp.size: cp for cp in cps if cp.size > start}
    against_root = None
    if against is not None and against.size == start:
        against_root = crange.root()
    expect = start
    tick = 0
    append = crange.append
    pending: dict[tuple[int, int], bytes] = {}
    compared = True

    def compare() -> bool:
        nonlocal pending, compared
        if pending:
            compared = _compare_nodes(store, conn, pending, result, run=True)
            pending = {}
        return compared

    rows = (_chunks(store, conn, start, end, compare) if check_nodes
            else _stream(store, conn, start))
    for seq, leaf, stored in rows:
        leaf = bytes(leaf)
        if seq != expect:
            result.problems.append(Problem(
                "entry-missing", f"entry {expect} is missing (the next stored entry is {seq})",
                expect))
            return None
        if leaf[:1] != version or len(leaf) < min_len:
            result.problems.append(Problem(
                "leaf-format", f"entry {seq}: leaf is not in format v{LEAF_VERSION}", seq))
            return None
        if int.from_bytes(leaf[1:9], "big") != seq:
            result.problems.append(Problem(
                "reordered", f"entry {seq}: its leaf says it is entry "
                f"{int.from_bytes(leaf[1:9], 'big')} (entries reordered or renumbered)", seq))
            return None
        h = sha256(b"\x00" + leaf).digest()
        if h != bytes(stored):
            result.problems.append(Problem(
                "payload-changed", f"entry {seq}: payload changed (its hash is {h.hex()[:16]}…, "
                f"the stored entry hash is {bytes(stored).hex()[:16]}…)", seq))
            return None
        if leaf[9:HEADER_SIZE] != prev:
            result.problems.append(Problem(
                "chain-broken", f"entry {seq}: does not chain to entry {seq - 1} "
                "(an entry was inserted, removed or reordered before it)", seq))
            return None
        prev = h
        done = append(h)
        if check_nodes and done:
            for level, idx, node in done:
                pending[(level, idx)] = node
        expect += 1
        result.entries_checked += 1
        cp = want.get(expect)
        if cp is not None and crange.root() != cp.root:
            result.problems.append(Problem(
                "root-mismatch", f"Merkle root at size {expect} differs from the signed "
                f"checkpoint (history before entry {expect} was rewritten)", expect - 1))
            return None
        if against is not None and against.size == expect:
            against_root = crange.root()
        tick += 1
        if progress is not None and tick == _BATCH:
            progress(tick)
            tick = 0
    if progress is not None and tick:
        progress(tick)
    if not compare():
        return None
    result.tree_size = expect
    for cp in cps:
        if cp.size > expect:
            result.problems.append(Problem(
                "truncated", f"tail truncated: a signed checkpoint covers {cp.size} entries "
                f"but the ledger holds {expect}", expect))
            break
    return against_root


def _derived_pass(store: Store, conn: Connection, result: VerifyResult) -> None:
    """Entries' columns agree with their leaves; stored tree nodes agree with leaves."""
    crange = CompactRange()
    if store.dialect == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # node lookups: PK only
    e = s.entries.c
    q = select(e.seq, e.domain, e.kind, e.record_id, e.leaf).order_by(e.seq)
    rows = conn.execution_options(stream_results=True, yield_per=_BATCH).execute(q)
    pending: dict[tuple[int, int], bytes] = {}
    batches = _Batches()
    for seq, domain, kind, rid, leaf in rows:
        try:
            entry = decode_leaf(bytes(leaf))
        except BfaError as err:
            result.problems.append(Problem("leaf-format", f"entry {seq}: {err}", seq))
            return
        if (entry.domain, entry.kind, entry.record_id) != (domain, kind, rid):
            result.problems.append(Problem(
                "derived-mismatch", f"entry {seq}: columns say {domain}.{kind} {rid!r}, the leaf "
                f"says {entry.domain}.{entry.kind} {entry.record_id!r}", seq))
            return
        batches.see(seq, entry.domain, entry.kind, entry.record)
        for level, idx, h in crange.append(entry.entry_hash):
            pending[(level, idx)] = h
        if len(pending) >= _BATCH:
            if not _compare_nodes(store, conn, pending, result):
                return
            pending = {}
    if pending and not _compare_nodes(store, conn, pending, result):
        return
    n = crange.size
    expected_nodes = n - bin(n).count("1")
    stored = conn.execute(select(func.count()).select_from(s.tree_nodes)).scalar_one()
    if stored != expected_nodes:
        result.problems.append(Problem(
            "derived-mismatch", f"tree_nodes holds {stored} nodes, a tree of {n} entries has "
            f"{expected_nodes}", None))
        return
    uncovered = batches.first_uncovered()
    if uncovered is not None:
        result.problems.append(Problem(
            "ingest-unrecorded", f"entry {uncovered}: a record no control.ingest entry covers, "
            "after batches were recorded: it was appended outside 'bfa ingest'", uncovered))
        return
    result.derived_checked = True


class _Batches:
    """FORMAT.md §6.5 step 4: every record after the first recorded batch lies in the range
    of a ``control.ingest`` entry (§2.5)."""

    def __init__(self) -> None:
        self.recorded = False
        self.open_first: int | None = None
        self.found: int | None = None

    def see(self, seq: int, domain: str, kind: str, record: dict[str, Any]) -> None:
        if domain != "control":
            if self.open_first is None:
                self.open_first = seq
            return
        if kind != "ingest":
            return
        first = record.get("first")
        first = first if isinstance(first, int) and not isinstance(first, bool) else None
        if (self.recorded and self.open_first is not None and self.found is None
                and (first is None or self.open_first < first)):
            self.found = self.open_first
        self.recorded = True
        self.open_first = None

    def first_uncovered(self) -> int | None:
        if self.found is None and self.recorded and self.open_first is not None:
            return self.open_first
        return self.found


def _compare_nodes(
    store: Store, conn: Connection, want: dict[tuple[int, int], bytes], result: VerifyResult,
    *, run: bool = False,
) -> bool:
    """Stored nodes against the recomputed ones; ``run``: they are the nodes a run of
    consecutive entries completed, read by one range scan per level instead of by key."""
    if run:
        spans: dict[int, tuple[int, int]] = {}
        for level, idx in want:
            lo, hi = spans.get(level, (idx, idx + 1))
            spans[level] = (min(lo, idx), max(hi, idx + 1))
        got = store.nodes_in_ranges(conn, spans)
    else:
        got = store.get_nodes(conn, want.keys())
    for key, h in sorted(want.items()):
        if got.get(key) != h:
            level, idx = key
            first = idx << level
            result.problems.append(Problem(
                "derived-mismatch", f"stored tree node (level {level}, index {idx}) over entries "
                f"{first}..{first + (1 << level) - 1} does not match the entries", first))
            return False
    return True


def check_ledger(
    store: Store,
    verifier: Verifier,
    origin: str,
    *,
    since_checkpoint: bool = False,
    derived: bool = True,
    against: str | None = None,
    progress: ProgressFn | None = None,
    conn: Connection | None = None,
    cosigning: int | None = None,
) -> VerifyResult:
    """Verify the ledger and report every check's outcome (never raises on bad data).

    ``against`` that is not a checkpoint note at all raises :class:`FormatError`
    (the wrong file was given: nothing could be checked against it); a well-formed
    one that is not signed by this ledger's key is reported (``against-signature``).

    Runs in its own read snapshot, or on ``conn`` when given (a writer checks
    exactly what it is about to sign). ``cosigning``: the seq of a signing-key rotation
    entry the caller appended in ``conn`` and is about to cover with the checkpoint both
    keys sign (not yet a missing checkpoint).
    """
    if conn is not None:
        return _check(store, conn, verifier, origin, since_checkpoint, derived, against, progress,
                      cosigning)
    with store.reader() as reader:
        return _check(store, reader, verifier, origin, since_checkpoint, derived, against,
                      progress, cosigning)


def _check(
    store: Store,
    conn: Connection,
    verifier: Verifier,
    origin: str,
    since_checkpoint: bool,
    derived: bool,
    against: str | None,
    progress: ProgressFn | None,
    cosigning: int | None = None,
) -> VerifyResult:
    result = VerifyResult()
    total, _ = store.head(conn)
    result.tree_size = total
    cps, chain = _load_checkpoints(conn, verifier, origin, result, cosigning)
    if result.problems or chain is None:
        return result
    against_cp: Checkpoint | None = None
    if against is not None:
        try:
            against_cp = open_checkpoint(against, chain.signers(_note_size(against)), origin)
        except FormatError as e:  # not a checkpoint at all: the wrong file, not tampering
            raise FormatError(gettext("the auditor's checkpoint is not a signed checkpoint "
                                      "note: {reason}").format(reason=e)) from e
        except BfaError as e:
            result.problems.append(Problem(
                "against-signature", f"the auditor's checkpoint does not verify: {e}"))
            return result
        result.against = against_cp.size
    start, crange, prev = 0, CompactRange(), ZERO_HASH
    if since_checkpoint:
        start, crange, prev = _resume_point(store, conn, cps, result)
        if result.problems:
            return result
        if against_cp is not None and against_cp.size < start:
            start, crange, prev = 0, CompactRange(), ZERO_HASH
    result.start = start
    derived_pass = derived and not since_checkpoint
    # the resumed check (nightly, and before every signature) compares the nodes the new
    # entries complete; a full run does so in its derived pass (skipped: --skip-derived)
    root_at = _chain_pass(store, conn, start, crange, prev, cps, result, against_cp, progress,
                          check_nodes=since_checkpoint, end=total)
    if result.problems:
        return result
    if not derived_pass:
        _check_frontier(store, conn, crange, result)
        if result.problems:
            return result
    result.root = crange.root()
    if against_cp is not None:
        _check_against(store, conn, against_cp, root_at, crange, result)
        if result.problems:
            return result
    if derived_pass:
        _derived_pass(store, conn, result)
    return result


def _check_frontier(store: Store, conn: Connection, crange: CompactRange,
                    result: VerifyResult) -> None:
    """The stored frontier of the tree (what a writer folds, §3.2) must be the one the
    chain pass recomputed, and no stored node may lie beyond the tree: a run without the
    derived pass compares these instead of counting every stored node (FORMAT.md §6.3)."""
    n = crange.size
    keys = CompactRange.frontier_nodes(n)
    stored = store.get_nodes(conn, keys)
    for key, h in zip(keys, crange.frontier, strict=True):
        if stored.get(key) != h:
            level, idx = key
            first = idx << level
            result.problems.append(Problem(
                "derived-mismatch", f"stored tree node (level {level}, index {idx}) at the edge "
                f"of the tree does not match entries {first}..{first + (1 << level) - 1}", first))
            return
    beyond = store.node_beyond(conn, n)
    if beyond is not None:
        level, idx = beyond
        result.problems.append(Problem(
            "derived-mismatch", f"tree_nodes holds node (level {level}, index {idx}), beyond a "
            f"tree of {n} entries", None))


def _resume_point(
    store: Store, conn: Connection, cps: list[_Cp], result: VerifyResult
) -> tuple[int, CompactRange, bytes]:
    """Start after the last checkpoint a previous run verified, trusting only its signature."""
    verified = verified_size(store, conn) or 0
    usable = [cp for cp in cps if 0 < cp.size <= verified]
    if not usable:
        return 0, CompactRange(), ZERO_HASH
    cp = usable[-1]
    keys = CompactRange.frontier_nodes(cp.size)
    nodes = store.get_nodes(conn, keys)
    if any(k not in nodes for k in keys):
        result.problems.append(Problem(
            "derived-mismatch", f"tree nodes at the edge of checkpoint {cp.size} are missing",
            cp.size))
        return 0, CompactRange(), ZERO_HASH
    crange = CompactRange(cp.size, [nodes[k] for k in keys])
    if crange.root() != cp.root:
        result.problems.append(Problem(
            "root-mismatch", f"stored tree nodes do not give the signed root at size {cp.size}; "
            "run a full 'bfa verify'", cp.size - 1))
        return 0, CompactRange(), ZERO_HASH
    last = cp.size - 1
    need = nodes_needed(inclusion_ranges(last, cp.size)) | {(0, last)}
    got = store.get_nodes(conn, need)
    try:
        verify_inclusion(got[(0, last)], last, cp.size,
                         inclusion_proof(last, cp.size, got), cp.root)
    except (KeyError, IntegrityError):
        result.problems.append(Problem(
            "chain-broken", f"entry {last} is not the one signed at size {cp.size}", last))
        return 0, CompactRange(), ZERO_HASH
    return cp.size, crange, got[(0, last)]


def _check_against(
    store: Store,
    conn: Connection,
    cp: Checkpoint,
    root_at: bytes | None,
    crange: CompactRange,
    result: VerifyResult,
) -> None:
    if cp.size > result.tree_size:
        result.problems.append(Problem(
            "truncated", f"the auditor's checkpoint covers {cp.size} entries, the ledger holds "
            f"only {result.tree_size}: history was truncated", result.tree_size))
        return
    if root_at != cp.root:
        result.problems.append(Problem(
            "fork", f"the ledger's first {cp.size} entries do not hash to the auditor's "
            "checkpoint root: history was rewritten (and possibly re-signed)",
            cp.size - 1 if cp.size else None))
        return
    n = result.tree_size
    if cp.size == 0 or cp.size == n:
        return
    nodes = store.get_nodes(conn, nodes_needed(consistency_ranges(cp.size, n)))
    try:
        proof = consistency_proof(cp.size, n, nodes)
        verify_consistency(cp.size, n, cp.root, crange.root(), proof)
    except (KeyError, IntegrityError) as e:
        result.problems.append(Problem(
            "consistency", f"no valid consistency proof from {cp.size} to {n}: {e}", cp.size))


def verify_ledger(store: Store, verifier: Verifier, origin: str, **kw: object) -> VerifyResult:
    """Like :func:`check_ledger` but raises :class:`LedgerIntegrityError` on the first problem."""
    result = check_ledger(store, verifier, origin, **kw)  # type: ignore[arg-type]
    if result.problems:
        raise LedgerIntegrityError(result.problems[0])
    return result


def verified_size(store: Store, conn: Connection) -> int | None:
    """The size of the last checkpoint a clean run verified (``meta.verified_size``).

    ``None`` when absent or not a decimal number: the application role may write
    ``meta``, so a value that does not parse only means "nothing verified yet" and the
    next ``--since-checkpoint`` run checks from entry 0 (FORMAT.md §6.2).
    """
    raw = store.get_meta(conn, "verified_size")
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        return None
    return int(raw)


def record_verified(store: Store, result: VerifyResult) -> None:
    """Remember the largest checkpoint a clean run covered, for ``--since-checkpoint``."""
    if not result.ok:
        return
    with store.writer() as conn:
        if not (store.may(conn, "INSERT", "meta") and store.may(conn, "UPDATE", "meta")):
            return  # a reading duty (an auditor) verifies and records nothing (§8.3)
        c = s.checkpoints.c
        size = conn.execute(
            select(func.max(c.tree_size)).where(c.tree_size <= result.tree_size)
        ).scalar()
        if size:
            store.set_meta(conn, "verified_size", str(int(size)))


__all__ = ["Problem", "VerifyResult", "check_ledger", "range_hash", "verify_ledger"]
