"""Archive: voucher files kept with fixity (content-addressed store).

Example::

    from archive import FileStore
    store = FileStore(home.archive_dir)
    store.put(Path("slip.pdf"), sha256_hex, size)   # raises VoucherMismatchError
"""

from archive._audit import AuditResult, FileProblem, Restored, audit, restore
from archive._samples import sample_pdf
from archive._store import FileStore

__all__ = ["AuditResult", "FileProblem", "FileStore", "Restored", "audit", "restore", "sample_pdf"]
