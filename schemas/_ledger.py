"""Models of the documents the ledger hands out: entries, checkpoints, proofs, reports.

This module owns the shape of the ledger's JSON output (``--json``) and of its exported
JSON Schemas. The models are views: the ledger builds them from its own state and dumps
them; they check the invariants a reader relies on (hash encodings, counts that add up,
``ok`` agreeing with ``problems``) but compute nothing.

Digests of ledger entries and checkpoint roots are hex; Merkle proof hashes are standard
base64 of 32 bytes, as in C2SP tlog proofs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue, Strict, model_validator
from pydantic_core import PydanticCustomError

from schemas._base import FrozenModel
from schemas._types import (
    Base64Hash,
    Count,
    Name,
    RecordId,
    Sha256Hex,
    ShortText,
    Timestamp,
)

__all__ = [
    "CheckpointView",
    "ConsistencyProofView",
    "EntryView",
    "FileIngestReport",
    "InclusionProofView",
    "IngestReport",
    "Problem",
    "StatusView",
    "VerifierKeyView",
    "VerifyReport",
]

_Hashes = Annotated[tuple[Base64Hash, ...], Strict(False)]
_NonEmptyText = Annotated[str, Field(min_length=1)]


class EntryView(FrozenModel):
    """One ledger entry: a record as appended, chained to the entry before it."""

    seq: Count
    """Position of the entry in the ledger."""
    domain: Name
    """``business``, ``finance``, ``archive`` (or a domain of the ledger's own events)."""
    kind: Name
    """Record kind within the domain, e.g. ``benefit_payment``."""
    record_id: RecordId
    recorded_at: Timestamp
    """When the ledger appended the entry."""
    prev_hash: Sha256Hex
    """``entry_hash`` of the previous entry."""
    entry_hash: Sha256Hex
    payload: dict[str, JsonValue]
    """The record's JSON object as stored (personal fields as the ledger stores them)."""


class CheckpointView(FrozenModel):
    """A signed checkpoint of the ledger's Merkle tree (C2SP signed note)."""

    origin: ShortText
    """The log's origin line."""
    size: Count
    """Tree size: number of entries covered."""
    root_hash: Sha256Hex
    """Merkle tree root (RFC 9162 §2.1.1)."""
    chain_head: Sha256Hex | None
    """``entry_hash`` of the last covered entry; null for the empty ledger."""
    signed_note: _NonEmptyText
    """The checkpoint as a C2SP signed note: body, blank line, signature lines."""
    created_at: Timestamp
    new: bool
    """False when an existing checkpoint already covered the ledger and was returned."""

    @model_validator(mode="after")
    def _chain_head_iff_entries(self) -> CheckpointView:
        if (self.chain_head is None) != (self.size == 0):
            raise PydanticCustomError(
                "chain_head_mismatch",
                "chain_head is null exactly when the checkpoint covers no entry (size 0)")
        return self


class StatusView(FrozenModel):
    """The ledger at a glance, as ``bfa status --json`` prints it (it only reads)."""

    origin: ShortText
    """The log's origin line."""
    database: _NonEmptyText
    """Database URL, password hidden."""
    size: Count
    """Entries in the ledger."""
    chain_head: Sha256Hex | None
    """``entry_hash`` of the last entry; null for the empty ledger."""
    checkpoint_size: Count | None
    """Tree size of the latest signed checkpoint; null before the first."""
    checkpoint_root: Sha256Hex | None
    """Its Merkle root (RFC 9162 §2.1.1)."""
    checkpoint_created_at: Timestamp | None
    """When it was signed."""
    unsigned: Count
    """Entries after the latest checkpoint: not yet provable (``bfa checkpoint``)."""
    verified_size: Count | None
    """The largest checkpoint a clean ``bfa verify`` covered; where the next
    ``bfa verify --since-checkpoint`` starts. Null when none has, or when the stored
    value is not a number (FORMAT.md §6.2)."""
    identity: ShortText
    """Who acts: the database role (PostgreSQL) or operating-system account (SQLite)."""
    duties: tuple[ShortText, ...]
    """What that identity may do (FORMAT.md §8.3): ``["owner"]`` for the ledger tables'
    owner, else the duties its role holds (PostgreSQL); every duty on SQLite."""


class VerifierKeyView(FrozenModel):
    """The ledger's checkpoint verifier key, as ``bfa key export --json`` prints it."""

    origin: ShortText
    """The log's origin line (also the key name)."""
    verifier_key: _NonEmptyText
    """C2SP signed-note verifier key: ``name+hash+base64(0x01 || Ed25519 public key)``."""


class InclusionProofView(FrozenModel):
    """Proof that one entry is in the tree a checkpoint commits to (RFC 9162 §2.1.3)."""

    record_id: RecordId
    domain: Name
    seq: Count
    """The entry's position in the ledger."""
    leaf_index: Count
    """The entry's leaf index in the Merkle tree."""
    tree_size: Count
    leaf_hash: Sha256Hex
    hashes: _Hashes
    """Audit path, leaf to root; directions follow from ``leaf_index`` and ``tree_size``."""
    checkpoint: _NonEmptyText
    """The signed note of the checkpoint the proof is against."""
    leaf: _NonEmptyText
    """Base64 of the entry's leaf input bytes (FORMAT.md §2); SHA-256(0x00 || leaf) = leaf_hash."""
    tlog_proof: _NonEmptyText
    """The same proof as C2SP ``tlog-proof@v1`` text."""

    @model_validator(mode="after")
    def _leaf_in_tree(self) -> InclusionProofView:
        if self.leaf_index >= self.tree_size:
            raise PydanticCustomError("leaf_outside_tree", "leaf_index must be less than tree_size")
        return self


class ConsistencyProofView(FrozenModel):
    """Proof that the tree of size ``size2`` extends that of ``size1`` (RFC 9162 §2.1.4)."""

    size1: Count
    size2: Count
    root1: Base64Hash
    root2: Base64Hash
    hashes: _Hashes
    checkpoint: _NonEmptyText
    """The signed checkpoint of size ``size2``."""

    @model_validator(mode="after")
    def _sizes_ordered(self) -> ConsistencyProofView:
        if self.size1 > self.size2:
            raise PydanticCustomError("sizes_unordered", "size1 must not exceed size2")
        return self


class Problem(FrozenModel):
    """One thing verification found wrong."""

    seq: Count | None
    """Entry the problem is at; null when it concerns no single entry."""
    code: ShortText
    """Machine-readable code (FORMAT.md §6), e.g. ``payload-changed``."""
    message: _NonEmptyText
    """What was expected, what was found, and where."""


class VerifyReport(FrozenModel):
    """Result of verifying the ledger: hash chain, Merkle tree and checkpoints."""

    ok: bool
    """True exactly when ``problems`` is empty."""
    entries_checked: Count
    checkpoints_checked: Count
    tree_size: Count
    start: Count
    """First entry checked (after the last verified checkpoint with ``--since-checkpoint``)."""
    derived_checked: bool
    """Whether the derived-table pass ran and agreed."""
    against: Count | None
    """Size of the auditor's checkpoint given with ``--against``, if any."""
    problems: Annotated[tuple[Problem, ...], Strict(False)]

    @model_validator(mode="after")
    def _ok_iff_no_problems(self) -> VerifyReport:
        if self.ok == bool(self.problems):
            raise PydanticCustomError(
                "ok_mismatch", "ok must be true exactly when problems is empty"
            )
        return self


class StatementImport(FrozenModel):
    """What a bank-statement file did (FORMAT.md §9.6): its booked entries, those that
    confirmed a movement of the same amount, the movements it made, and those whose
    reference belongs to movements of other amounts (``AMOUNT_MISMATCH``)."""

    statements: Count
    entries: Count
    confirmed: Count
    new: Count
    mismatched: Count


class FileIngestReport(FrozenModel):
    """What ingest did with one input file."""

    file: _NonEmptyText
    """The file as named on the command line."""
    lines: Count
    """Lines read (blank lines included)."""
    appended: Count
    duplicates: Count
    """Records already in the ledger with identical content (no-ops)."""
    rejected: Count
    statement: StatementImport | None = None
    """Bank statements only (``--format camt053|mt940``)."""

    @model_validator(mode="after")
    def _within_lines(self) -> FileIngestReport:
        if self.appended + self.duplicates + self.rejected > self.lines:
            raise PydanticCustomError(
                "counts_exceed_lines",
                "appended + duplicates + rejected must not exceed lines",
            )
        return self


class VoucherDefect(FrozenModel):
    """One finding of the 四性 check on a voucher an ingest appended (FORMAT.md §11.2)."""

    record: _NonEmptyText
    property: Literal["authenticity", "integrity", "usability", "security", "retention"]
    code: _NonEmptyText
    detail: _NonEmptyText
    part: str | None = None
    """The part of an OFD package at fault, e.g. ``Doc_0/Document.xml``."""


class IngestReport(FrozenModel):
    """What one ingest run did; the totals are the sums over ``files``."""

    files: Annotated[tuple[FileIngestReport, ...], Strict(False)]
    appended: Count
    duplicates: Count
    rejected: Count
    tree_size: Count
    """Ledger size after the run."""
    voucher_defects: Annotated[tuple[VoucherDefect, ...], Strict(False)] = ()
    """Findings of the 四性 check on the vouchers appended (each voucher with one is a
    ``VOUCHER_DEFECT`` break at the next reconciliation); stderr names them too."""

    @model_validator(mode="after")
    def _totals_add_up(self) -> IngestReport:
        for total in ("appended", "duplicates", "rejected"):
            if getattr(self, total) != sum(getattr(f, total) for f in self.files):
                raise PydanticCustomError(
                    "total_mismatch", "{total} must be the sum over files", {"total": total}
                )
        return self
