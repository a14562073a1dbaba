"""The voucher file store: content-addressed files under ``<home>/archive``.

A voucher file is kept at ``sha256/<2 hex>/<64 hex>``. It is copied through a
temporary file while hashed, and moved into place only when its SHA-256 and size
equal what its record says; the rename is atomic, so a killed ingest never leaves
a half-written voucher under its final name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from ledger import VoucherMismatch


class FileStore:
    """Keeps voucher files by content hash; implements ``ledger.VoucherStore``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def put(self, source: Path, sha256: str, size: int) -> None:
        """Copy ``source`` in if it matches ``sha256`` and ``size``; else raise."""
        target = self.path_of(sha256)
        try:
            src = source.open("rb")
        except FileNotFoundError as e:
            raise VoucherMismatch("file", f"voucher file {source} does not exist") from e
        except OSError as e:
            raise VoucherMismatch("file", f"voucher file {source}: {e.strerror}") from e
        target.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        n = 0
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with src, os.fdopen(fd, "wb") as out:
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    n += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if n != size:
                raise VoucherMismatch(
                    "size", f"voucher file {source} has {n} bytes, the record says {size}")
            if h.hexdigest() != sha256:
                raise VoucherMismatch(
                    "sha256", f"voucher file {source} hashes to {h.hexdigest()}, "
                    f"the record says {sha256}")
            os.replace(tmp, target)
            tmp = ""
        finally:
            if tmp:
                os.unlink(tmp)
