"""Archive: voucher files kept with fixity, checked for 四性, and proof bundles.

Example::

    from archive import FileStore, Intake, audit
    store = FileStore(led.home.archive_dir)
    led.ingest(["month.jsonl"], Intake(store))   # stores and checks every voucher file
    result = audit(led, store)                    # re-hashes the store; control.fixity
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
from archive._samples import sample_pdf
from archive._store import FileStore

__all__ = [
    "MINIMUM_RETENTION",
    "AuditResult",
    "BundleReport",
    "CheckReport",
    "CheckResult",
    "ExportResult",
    "FileProblem",
    "FileStore",
    "Finding",
    "Intake",
    "ProofResult",
    "RecordCheck",
    "Restored",
    "Scope",
    "Verdict",
    "audit",
    "check_file",
    "check_record",
    "check_vouchers",
    "export_bundle",
    "exporter_signer",
    "restore",
    "sample_pdf",
    "verify_bundle",
    "verify_proof",
]
