"""Archive: voucher files kept with fixity (content-addressed store).

Example::

    from archive import FileStore
    store = FileStore(home.archive_dir)
    store.put(Path("slip.pdf"), sha256_hex, size)   # raises VoucherMismatch
"""

from archive._demo import generate_month, run_demo
from archive._store import FileStore

__all__ = ["FileStore", "generate_month", "run_demo"]
