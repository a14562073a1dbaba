"""Ledger core: canonical bytes, hash chain, Merkle tree, checkpoints, proofs, storage.

Example::

    from ledger import Ledger
    led = Ledger.open(home=".bfa")
    led.ingest(["month.jsonl"], vouchers=None)
    cp = led.checkpoint()               # signed C2SP checkpoint
    entry, proof = led.prove("BP-1")    # C2SP tlog-proof@v1
    result = led.verify()               # VerifyResult; .ok, .problems
"""

from ledger._access import ACCESS_KINDS, AccessEvent
from ledger._append import SHANGHAI, local_time, now_rfc3339
from ledger._canonical import canonicalize, loads_strict
from ledger._control import (
    Ingested,
    append_control,
    checked_entry,
    control_records,
    ingested_by,
    latest_numbered,
    read_entries,
)
from ledger._duties import DUTIES, DUTY_TEXT, Duty, duty_tag, held_duties
from ledger._entry import Entry, decode_leaf, encode_leaf, entry_hash, leaf_record
from ledger._errors import (
    BatchRefusedError,
    BfaError,
    ConfigError,
    DutyError,
    FormatError,
    InputError,
    IntegrityError,
    LedgerIntegrityError,
    LocatedInputError,
    MerkleProofError,
    NotCoveredError,
    NotFoundError,
    SignatureError,
    VoucherMismatchError,
    printable,
)
from ledger._export import (
    Disclosed,
    disclose,
    entries_by_seq,
    insert_entries,
    latest_signed,
    party_pseudonym,
    party_pseudonyms,
    prove_entries,
    scratch_ledger,
)
from ledger._files import (
    PRIVATE,
    Perms,
    apply_umask,
    make_dir,
    open_text,
    write_atomic,
)
from ledger._home import (
    BankAccount,
    Home,
    check_bank_account,
    join_home,
    resolve_home,
    set_bank_account,
    set_home_language,
)
from ledger._identity import Actor
from ledger._ingest import FileReport, ProgressFn, VoucherStore
from ledger._keys import KeySet, key_paths, open_backup, restore_keys
from ledger._ledger import (
    CheckpointInfo,
    ConsistencyProof,
    Ledger,
    check_note,
    check_user,
    current_verifier_key,
    entry_view,
    note_files_before,
)
from ledger._merkle import InclusionChecker, verify_consistency, verify_inclusion
from ledger._note import Checkpoint, Signer, Verifier, open_checkpoint, open_note, sign_note
from ledger._privacy import commitment
from ledger._proposed import ProposedFile, ProposedLine, Reread
from ledger._rule_views import (
    RULE_ROWS_FUNCTION,
    RULE_VIEWS,
    RuleRefusedError,
    RuleRows,
    query_problem,
    rules_role,
    run_rule_query,
)
from ledger._schema import NAMING, checkpoints, entries
from ledger._store import SQLITE_BUSY_SECONDS, Store
from ledger._tlogproof import TLogProof, verify_tlog_proof
from ledger._verify import Problem, VerifyResult

__all__ = [
    "ACCESS_KINDS",
    "DUTIES",
    "DUTY_TEXT",
    "NAMING",
    "PRIVATE",
    "RULE_ROWS_FUNCTION",
    "RULE_VIEWS",
    "SHANGHAI",
    "SQLITE_BUSY_SECONDS",
    "AccessEvent",
    "Actor",
    "BankAccount",
    "BatchRefusedError",
    "BfaError",
    "Checkpoint",
    "CheckpointInfo",
    "ConfigError",
    "ConsistencyProof",
    "Disclosed",
    "Duty",
    "DutyError",
    "Entry",
    "FileReport",
    "FormatError",
    "Home",
    "InclusionChecker",
    "Ingested",
    "InputError",
    "IntegrityError",
    "KeySet",
    "Ledger",
    "LedgerIntegrityError",
    "LocatedInputError",
    "MerkleProofError",
    "NotCoveredError",
    "NotFoundError",
    "Perms",
    "Problem",
    "ProgressFn",
    "ProposedFile",
    "ProposedLine",
    "Reread",
    "RuleRefusedError",
    "RuleRows",
    "SignatureError",
    "Signer",
    "Store",
    "TLogProof",
    "Verifier",
    "VerifyResult",
    "VoucherMismatchError",
    "VoucherStore",
    "append_control",
    "apply_umask",
    "canonicalize",
    "check_bank_account",
    "check_note",
    "check_user",
    "checked_entry",
    "checkpoints",
    "commitment",
    "control_records",
    "current_verifier_key",
    "decode_leaf",
    "disclose",
    "duty_tag",
    "encode_leaf",
    "entries",
    "entries_by_seq",
    "entry_hash",
    "entry_view",
    "held_duties",
    "ingested_by",
    "insert_entries",
    "join_home",
    "key_paths",
    "latest_numbered",
    "latest_signed",
    "leaf_record",
    "loads_strict",
    "local_time",
    "make_dir",
    "note_files_before",
    "now_rfc3339",
    "open_backup",
    "open_checkpoint",
    "open_note",
    "open_text",
    "party_pseudonym",
    "party_pseudonyms",
    "printable",
    "prove_entries",
    "query_problem",
    "read_entries",
    "resolve_home",
    "restore_keys",
    "rules_role",
    "run_rule_query",
    "scratch_ledger",
    "set_bank_account",
    "set_home_language",
    "sign_note",
    "verify_consistency",
    "verify_inclusion",
    "verify_tlog_proof",
    "write_atomic",
]
