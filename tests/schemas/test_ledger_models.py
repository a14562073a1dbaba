"""Ledger document models: valid examples and the invariants they enforce."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from schemas import (
    CheckpointView,
    ConsistencyProofView,
    EntryView,
    InclusionProofView,
    IngestReport,
    VerifyReport,
)

HEX = hashlib.sha256(b"leaf").hexdigest()
B64 = base64.b64encode(hashlib.sha256(b"node").digest()).decode()
NOTE = "bfa.example/ledger\n2\nq83bOk0=\n\n— bfa.example/ledger AAAA\n"

VALID: dict[type[BaseModel], dict[str, Any]] = {
    EntryView: {
        "seq": 0,
        "domain": "finance",
        "kind": "payment",
        "record_id": "PAY-1",
        "recorded_at": "2026-03-05T10:00:00+08:00",
        "prev_hash": "0" * 64,
        "entry_hash": HEX,
        "payload": {"type": "finance.payment", "amount": "1.00", "allocations": [{"a": None}]},
    },
    CheckpointView: {
        "origin": "bfa.example/ledger",
        "size": 2,
        "root_hash": HEX,
        "chain_head": HEX,
        "signed_note": NOTE,
        "created_at": "2026-03-05T10:00:00Z",
        "new": True,
    },
    InclusionProofView: {
        "record_id": "PAY-1",
        "domain": "finance",
        "seq": 1,
        "leaf_index": 1,
        "tree_size": 2,
        "leaf_hash": HEX,
        "hashes": [B64],
        "checkpoint": NOTE,
        "leaf": "AQ==",
        "tlog_proof": "c2sp.org/tlog-proof@v1\n",
    },
    ConsistencyProofView: {"size1": 1, "size2": 2, "root1": B64, "root2": B64, "hashes": [B64],
                           "checkpoint": NOTE},
    VerifyReport: {
        "ok": False,
        "entries_checked": 2,
        "checkpoints_checked": 1,
        "tree_size": 2,
        "start": 0,
        "derived_checked": False,
        "against": None,
        "problems": [{"seq": 1, "code": "payload-changed", "message": "entry 1: hash differs"}],
    },
    IngestReport: {
        "files": [
            {"file": "a.jsonl", "lines": 5, "appended": 3, "duplicates": 1, "rejected": 0},
            {"file": "b.jsonl", "lines": 1, "appended": 0, "duplicates": 0, "rejected": 1},
        ],
        "appended": 3,
        "duplicates": 1,
        "rejected": 1,
        "tree_size": 3,
    },
}


@pytest.mark.parametrize("model", list(VALID), ids=lambda m: m.__name__)
def test_valid_document_round_trips_through_json(model: type[BaseModel]) -> None:
    document = model.model_validate(VALID[model])
    assert model.model_validate_json(document.model_dump_json()) == document


def test_empty_ledger_checkpoint_has_no_chain_head() -> None:
    """chain_head is null exactly when the checkpoint covers no entry (FORMAT.md §5.5)."""
    empty = CheckpointView.model_validate(
        {**VALID[CheckpointView], "size": 0, "chain_head": None})
    assert empty.chain_head is None
    assert CheckpointView.model_validate(VALID[CheckpointView]).chain_head == HEX
    for size, head in ((0, HEX), (3, None)):
        with pytest.raises(ValidationError, match="chain_head is null exactly when"):
            CheckpointView.model_validate(
                {**VALID[CheckpointView], "size": size, "chain_head": head})


@pytest.mark.parametrize(
    ("model", "changes", "match"),
    [
        (EntryView, {"seq": True}, "Input should be a valid integer"),
        (EntryView, {"seq": -1}, "greater than or equal to 0"),
        (EntryView, {"prev_hash": "0" * 63}, "64 lowercase hex digits"),
        (EntryView, {"entry_hash": HEX.upper()}, "64 lowercase hex digits"),
        (EntryView, {"domain": "Finance"}, "lowercase name"),
        (EntryView, {"recorded_at": "2026-03-05T10:00:00"}, "no UTC offset"),
        (EntryView, {"extra": 1}, "Extra inputs are not permitted"),
        (CheckpointView, {"root_hash": B64}, "64 lowercase hex digits"),
        (CheckpointView, {"signed_note": ""}, "at least 1 character"),
        (InclusionProofView, {"hashes": [B64[:-2] + "=="]}, "32-byte hash in standard base64"),
        (InclusionProofView, {"hashes": [base64.b64encode(bytes(31)).decode()]}, "32-byte"),
        (InclusionProofView, {"leaf_index": 2}, "leaf_index must be less than tree_size"),
        (ConsistencyProofView, {"size1": 3}, "size1 must not exceed size2"),
        (ConsistencyProofView, {"root1": HEX}, "32-byte hash in standard base64"),
        (VerifyReport, {"ok": True}, "ok must be true exactly when problems is empty"),
        (VerifyReport, {"ok": False, "problems": []}, "ok must be true exactly when"),
        (VerifyReport, {"ok": 0}, "Input should be a valid boolean"),
        (VerifyReport, {"problems": [{"seq": None, "code": "", "message": "x"}]},
         "must be 1 to 128 characters"),
        (IngestReport, {"appended": 4}, "appended must be the sum over files"),
        (IngestReport, {"rejected": 0}, "rejected must be the sum over files"),
        (
            IngestReport,
            {"files": [{"file": "a", "lines": 1, "appended": 2, "duplicates": 1, "rejected": 1}]},
            "must not exceed lines",
        ),
    ],
)
def test_malformed_document_is_refused(
    model: type[BaseModel], changes: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValidationError, match=match):
        model.model_validate({**VALID[model], **changes})
