"""Archive: voucher files kept with fixity, checked for 四性, retained, held and disposed of,
and proof bundles.

Example::

    from archive import FileStore, Intake, audit
    store = FileStore(led.home.archive_dir)
    led.ingest(["month.jsonl"], Intake(store))   # stores and checks every voucher file
    result = audit(led, store)                    # re-hashes the store; control.fixity
    due = vouchers_due(led)                       # retention ended: held, break or due
"""

from archive._audit import AuditResult, FileProblem, Restored, audit, restore
from archive._bundle import ExportResult, Scope, export_bundle, exporter_signer
from archive._bundle_verify import BundleReport, ProofResult, Verdict, verify_bundle, verify_proof
from archive._fourprop import CheckResult, Finding, check_file
from archive._inspect import (
    MINIMUM_RETENTION,
    CheckReport,
    Intake,
    RecordCheck,
    check_record,
    check_vouchers,
)
from archive._retention import (
    POSTS,
    Appraisal,
    Disposal,
    DisposalList,
    DueRecord,
    DueReport,
    Hold,
    HoldResult,
    ListResult,
    Signoff,
    Voucher,
    appraise,
    disposal_list,
    dispose,
    disposed_files,
    due_on,
    list_csv,
    make_disposal_list,
    place_hold,
    release_hold,
    retention_of,
    sign_off,
    vouchers_due,
    years_kept,
)
from archive._samples import sample_pdf
from archive._store import FileStore

__all__ = [
    "MINIMUM_RETENTION",
    "POSTS",
    "Appraisal",
    "AuditResult",
    "BundleReport",
    "CheckReport",
    "CheckResult",
    "Disposal",
    "DisposalList",
    "DueRecord",
    "DueReport",
    "ExportResult",
    "FileProblem",
    "FileStore",
    "Finding",
    "Hold",
    "HoldResult",
    "Intake",
    "ListResult",
    "ProofResult",
    "RecordCheck",
    "Restored",
    "Scope",
    "Signoff",
    "Verdict",
    "Voucher",
    "appraise",
    "audit",
    "check_file",
    "check_record",
    "check_vouchers",
    "disposal_list",
    "dispose",
    "disposed_files",
    "due_on",
    "export_bundle",
    "exporter_signer",
    "list_csv",
    "make_disposal_list",
    "place_hold",
    "release_hold",
    "restore",
    "retention_of",
    "sample_pdf",
    "sign_off",
    "verify_bundle",
    "verify_proof",
    "vouchers_due",
    "years_kept",
]
