"""The voucher file store: content-addressed files under ``<home>/archive``.

A voucher file is kept at ``sha256/<2 hex>/<64 hex>``. It is copied through a
temporary file while hashed, and moved into place only when its SHA-256 and size
equal what its record says; the rename is atomic, so a killed ingest never leaves
a half-written voucher under its final name.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from ledger import PRIVATE, Perms, VoucherMismatchError, make_dir


class FileStore:
    """Keeps voucher files by content hash; implements ``ledger.VoucherStore``."""

    def __init__(self, root: Path, perms: Perms = PRIVATE) -> None:
        self.root = root
        self.perms = perms

    def path_of(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def put(self, source: Path, sha256: str, size: int) -> Path | None:
        """Copy ``source`` in if it matches ``sha256`` and ``size``; else raise. Returns
        the stored file when this call created it, None when it was there already.

        Only a regular file is read (a FIFO or device would block or never end), and
        never more than ``size + 1`` bytes of it."""
        target = self.path_of(sha256)
        existed = target.is_file()
        src = _open_regular(source)
        make_dir(target.parent, self.perms, under=self.root.parent)
        h = hashlib.sha256()
        n = 0
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            if self.perms.gid is not None:
                os.fchown(fd, -1, self.perms.gid)
            os.fchmod(fd, self.perms.file_mode & ~0o222)  # stored files are read-only
            with src, os.fdopen(fd, "wb") as out:
                while n <= size and (chunk := src.read(min(_CHUNK, size + 1 - n))):
                    h.update(chunk)
                    n += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if n != size:
                has = f"{n} bytes" if n <= size else f"more than {size} bytes"
                raise VoucherMismatchError(
                    "size", f"voucher file {source} has {has}, the record says {size}")
            if h.hexdigest() != sha256:
                raise VoucherMismatchError(
                    "sha256", f"voucher file {source} hashes to {h.hexdigest()}, "
                    f"the record says {sha256}")
            os.replace(tmp, target)
            tmp = ""
        finally:
            if tmp:
                os.unlink(tmp)
        return None if existed else target


_CHUNK = 1 << 20


def _open_regular(source: Path) -> BinaryIO:
    """``source`` opened for reading if it is a regular file; else :class:`VoucherMismatchError`.

    Opened without blocking (a FIFO without a writer would wait forever), then checked
    with ``fstat`` on the open descriptor, so what is checked is what is read."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError as e:
        raise VoucherMismatchError("file", f"voucher file {source} does not exist") from e
    except OSError as e:
        raise VoucherMismatchError("file", f"voucher file {source}: {e.strerror}") from e
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise VoucherMismatchError("file", f"voucher file {source} is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
