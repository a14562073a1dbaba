"""Files bfa writes: who may read them, and writes nobody can redirect (FORMAT.md §5.4).

A home is **private** by default: its directories are ``0700`` and every file bfa writes
in it or for it (database, keys, configuration, voucher files, reject files, reports,
locks, temporary files) is ``0600``. A home created with ``bfa init --group NAME`` is
**shared** by that operating-system group: directories ``2770`` (setgid, so what is
created inside belongs to the group) and files ``0660``. :class:`Perms` says which; the
home's ``config.json`` records the group.

Writes that replace a file go through :func:`write_atomic`: a new temporary file created
exclusively (``O_CREAT | O_EXCL``, which also refuses a planted symbolic link) in the
target's directory, written, synced, renamed over the target. Files written in place
(:func:`open_text`: reject files) are opened with ``O_NOFOLLOW``.

Key files are read only when nobody else could have replaced them
(:func:`check_private_file`): owned by the user running bfa (in a shared home, or by the
home's group), granting nothing to others, and reached through directories that only
root, that user (or, in a shared home, its group) may write, symbolic links resolved.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ledger._errors import ConfigError
from schemas import N_
from schemas import gettext as _


@dataclass(frozen=True, slots=True)
class Perms:
    """The modes of a home's directories and files, and its group (None: private)."""

    group: str | None = None
    gid: int | None = None

    @property
    def dir_mode(self) -> int:
        return 0o700 if self.gid is None else 0o2770

    @property
    def file_mode(self) -> int:
        return 0o600 if self.gid is None else 0o660

    @property
    def umask(self) -> int:
        return 0o077 if self.gid is None else 0o007


PRIVATE = Perms()


def perms_for(group: str | None) -> Perms:
    """The permissions of a home shared by ``group`` (None: private); the group must
    exist, and the user running bfa must belong to it."""
    if not group:
        return PRIVATE
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError as e:
        raise ConfigError(_("there is no operating-system group {group} (create it with "
                            "groupadd, and add the officers to it)").format(
            group=repr(group))) from e
    if gid not in os.getgroups() and gid != os.getegid() and os.geteuid() != 0:
        raise ConfigError(_("you are not a member of group {group}; ask an administrator to "
                            "add you (usermod -aG), then log in again").format(
            group=repr(group)))
    return Perms(group, gid)


def apply_umask(perms: Perms) -> None:
    """Make every file this process creates from now on as private as the home."""
    os.umask(perms.umask)


def make_dir(path: Path, perms: Perms, *, under: Path | None = None) -> None:
    """Create ``path`` (and missing parents) with the home's directory mode and group.

    ``under``: the directory that bfa does not own (a home, a report directory someone
    chose): every component of ``path`` below it must be a real directory, never a
    symbolic link someone planted to send what bfa writes elsewhere (:class:`ConfigError`)."""
    missing = [p for p in (path, *path.parents) if not p.exists() and not p.is_symlink()]
    for p in reversed(missing):
        with contextlib.suppress(FileExistsError):
            p.mkdir(mode=perms.dir_mode)
        fix_mode(p, perms, directory=True)
    if under is not None:
        base = under.absolute()
        for p in [path.absolute(), *path.absolute().parents]:
            if p == base or base not in p.parents:
                break
            if p.is_symlink() or not p.is_dir():
                raise ConfigError(_("{path}: is a symbolic link or not a directory; bfa "
                                    "writes only into directories it made (remove it)").format(
                    path=p))


def fix_mode(path: Path, perms: Perms, *, directory: bool = False,
             read_only: bool = False) -> None:
    """Give an existing file or directory (not followed if a link) the home's mode and
    group (``read_only``: without write bits, a stored voucher file); only what the
    running user owns can be changed."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid():
        return
    if perms.gid is not None and st.st_gid != perms.gid:
        os.chown(path, -1, perms.gid, follow_symlinks=False)
    os.chmod(path, perms.dir_mode if directory
             else perms.file_mode & ~0o222 if read_only else perms.file_mode)


def write_atomic(path: Path, data: str | bytes, perms: Perms = PRIVATE) -> None:
    """Replace ``path`` with ``data`` whole or not at all: an exclusively created temporary
    file in the same directory (never a planted link), synced, then renamed over ``path``
    (a link at ``path`` itself is replaced, not followed)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if perms.gid is not None:
            os.fchown(fd, -1, perms.gid)
        os.fchmod(fd, perms.file_mode)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def open_text(path: Path, perms: Perms = PRIVATE, *, append: bool = False) -> IO[str]:
    """``path`` opened to write text (emptied first unless ``append``), created with the
    home's file mode, and given it when it already exists and is ours; a symbolic link at
    ``path`` is refused (``O_NOFOLLOW``), so nobody can point the write elsewhere."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags, perms.file_mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ConfigError(_("{path}: is a symbolic link; give the file itself").format(
                path=path)) from e
        raise
    try:
        st = os.fstat(fd)
        if st.st_uid == os.geteuid():
            if perms.gid is not None and st.st_gid != perms.gid:
                os.fchown(fd, -1, perms.gid)
            os.fchmod(fd, perms.file_mode)
        return os.fdopen(fd, "a" if append else "w", encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        raise


def create_private(path: Path, perms: Perms = PRIVATE) -> None:
    """Create an empty file with the home's mode if it does not exist (e.g. the SQLite
    database, whose journal files SQLite then creates with the same mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, perms.file_mode)
    except FileExistsError:
        return
    try:
        if perms.gid is not None:
            os.fchown(fd, -1, perms.gid)
        os.fchmod(fd, perms.file_mode)
    finally:
        os.close(fd)


def check_private_file(path: Path, what: str, perms: Perms) -> None:
    """Refuse a key file that someone other than its user (or the shared home's group)
    could read or replace (see the module docstring); :class:`ConfigError` names the
    file or directory and what to run."""
    try:
        st = path.stat()
    except FileNotFoundError as e:
        raise ConfigError(key_file_text(what, "missing", path=path)) from e
    except OSError as e:
        raise ConfigError(key_file_text(what, "unreadable", path=path,
                                        error=e.strerror or e)) from e
    me = os.geteuid()
    group_ok = perms.gid is not None and st.st_gid == perms.gid
    if st.st_uid != me and not group_ok:
        raise ConfigError(key_file_text(what, "owner", path=path, uid=st.st_uid, me=me))
    allowed = stat.S_IRGRP | stat.S_IWGRP if group_ok else 0
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO) & ~allowed:
        fix = "chmod 660" if group_ok else "chmod 600"
        raise ConfigError(key_file_text(what, "loose", path=path, fix=fix))
    for folder in _directories_on_the_way(path):
        _check_dir(folder, what, perms, me)


def _directories_on_the_way(path: Path) -> list[Path]:
    """Every directory whose contents decide where ``path`` leads: the parents of each
    component, following every symbolic link on the way (a link's own directory too)."""
    out: dict[Path, None] = {}
    todo = Path(os.path.abspath(path))
    for _hop in range(40):  # as the kernel, give up on a loop of links
        parts = todo.parts
        cur = Path(parts[0])
        for i, part in enumerate(parts[1:], 1):
            nxt = cur / part
            out[cur] = None
            if nxt.is_symlink():
                target = Path(os.readlink(nxt))
                rest = Path(*parts[i + 1:]) if i + 1 < len(parts) else Path()
                todo = Path(os.path.abspath((target if target.is_absolute() else cur / target)
                                            / rest))
                break
            cur = nxt
        else:
            return list(out)
    raise ConfigError(_("{path}: too many symbolic links on the way").format(path=path))


def _check_dir(folder: Path, what: str, perms: Perms, me: int) -> None:
    try:
        st = folder.stat()
    except OSError as e:
        raise ConfigError(key_file_text(what, "folder_unreadable", folder=folder,
                                        error=e.strerror or e)) from e
    sticky = bool(st.st_mode & stat.S_ISVTX)  # others may not replace what is ours there
    group_write = bool(st.st_mode & stat.S_IWGRP) and not (
        perms.gid is not None and st.st_gid == perms.gid)
    if (st.st_mode & stat.S_IWOTH or group_write) and not sticky:
        raise ConfigError(key_file_text(what, "folder_writable", folder=folder))
    if st.st_uid not in (0, me) and not sticky:
        raise ConfigError(key_file_text(what, "folder_owner", folder=folder, uid=st.st_uid))


def key_file_text(what: str, which: str, **fields: object) -> str:
    """The message ``which`` (``"missing"``, ``"unreadable"``, …) about a key file holding
    the ``what`` (``"signing key"``, …), with ``fields``: a whole sentence for each key,
    in the reader's language; a key without its own sentences is named in English."""
    own = _KEY_FILE_TEXTS.get(what, {}).get(which)
    if own is not None:
        return _(own).format(**fields)
    return _KEY_FILE_GENERIC[which].format(what=what, **fields)


_KEY_FILE_GENERIC = {
    "missing": "{path}: no {what}; run 'bfa init' first",
    "unreadable": "{path}: cannot read the {what}: {error}",
    "owner": "{path}: the {what} belongs to user {uid}, not to you ({me}); only its owner's "
             "key may be used",
    "loose": "{path}: the {what} grants access to group or others; run: {fix} {path}",
    "folder_unreadable": "{folder}: cannot read the {what}'s directory: {error}",
    "folder_writable": "{folder}: a directory on the way to the {what} is writable by group "
                       "or others, who could replace the key; run: chmod go-w {folder}",
    "folder_owner": "{folder}: a directory on the way to the {what} belongs to user {uid}, "
                    "who could replace the key; keep keys in a directory of your own",
    "not_text": "{path}: the {what} is not text (not a key file)",
}
"""The messages of :func:`key_file_text`, for a key named in ``{what}``."""

_KEY_FILE_TEXTS: dict[str, dict[str, str]] = {
    "signing key": {
        "missing": N_("{path}: no signing key; run 'bfa init' first"),
        "unreadable": N_("{path}: cannot read the signing key: {error}"),
        "owner": N_(
            "{path}: the signing key belongs to user {uid}, not to you ({me}); only its "
            "owner's key may be used"),
        "loose": N_("{path}: the signing key grants access to group or others; run: {fix} {path}"),
        "folder_unreadable": N_("{folder}: cannot read the signing key's directory: {error}"),
        "folder_writable": N_(
            "{folder}: a directory on the way to the signing key is writable by group or "
            "others, who could replace the key; run: chmod go-w {folder}"),
        "folder_owner": N_(
            "{folder}: a directory on the way to the signing key belongs to user {uid}, who "
            "could replace the key; keep keys in a directory of your own"),
        "not_text": N_("{path}: the signing key is not text (not a key file)"),
    },
    "verifier key": {
        "missing": N_("{path}: no verifier key; run 'bfa init' first"),
        "unreadable": N_("{path}: cannot read the verifier key: {error}"),
        "owner": N_(
            "{path}: the verifier key belongs to user {uid}, not to you ({me}); only its "
            "owner's key may be used"),
        "loose": N_("{path}: the verifier key grants access to group or others; run: {fix} {path}"),
        "folder_unreadable": N_("{folder}: cannot read the verifier key's directory: {error}"),
        "folder_writable": N_(
            "{folder}: a directory on the way to the verifier key is writable by group or "
            "others, who could replace the key; run: chmod go-w {folder}"),
        "folder_owner": N_(
            "{folder}: a directory on the way to the verifier key belongs to user {uid}, who "
            "could replace the key; keep keys in a directory of your own"),
        "not_text": N_("{path}: the verifier key is not text (not a key file)"),
    },
    "vault key": {
        "missing": N_("{path}: no vault key; run 'bfa init' first"),
        "unreadable": N_("{path}: cannot read the vault key: {error}"),
        "owner": N_(
            "{path}: the vault key belongs to user {uid}, not to you ({me}); only its owner's "
            "key may be used"),
        "loose": N_("{path}: the vault key grants access to group or others; run: {fix} {path}"),
        "folder_unreadable": N_("{folder}: cannot read the vault key's directory: {error}"),
        "folder_writable": N_(
            "{folder}: a directory on the way to the vault key is writable by group or others, "
            "who could replace the key; run: chmod go-w {folder}"),
        "folder_owner": N_(
            "{folder}: a directory on the way to the vault key belongs to user {uid}, who "
            "could replace the key; keep keys in a directory of your own"),
        "not_text": N_("{path}: the vault key is not text (not a key file)"),
    },
    "ledger secret": {
        "missing": N_("{path}: no ledger secret; run 'bfa init' first"),
        "unreadable": N_("{path}: cannot read the ledger secret: {error}"),
        "owner": N_(
            "{path}: the ledger secret belongs to user {uid}, not to you ({me}); only its "
            "owner's key may be used"),
        "loose": N_(
            "{path}: the ledger secret grants access to group or others; run: {fix} {path}"),
        "folder_unreadable": N_("{folder}: cannot read the ledger secret's directory: {error}"),
        "folder_writable": N_(
            "{folder}: a directory on the way to the ledger secret is writable by group or "
            "others, who could replace the key; run: chmod go-w {folder}"),
        "folder_owner": N_(
            "{folder}: a directory on the way to the ledger secret belongs to user {uid}, who "
            "could replace the key; keep keys in a directory of your own"),
        "not_text": N_("{path}: the ledger secret is not text (not a key file)"),
    },
    "secret key": {
        "missing": N_("{path}: no secret key; run 'bfa init' first"),
        "unreadable": N_("{path}: cannot read the secret key: {error}"),
        "owner": N_(
            "{path}: the secret key belongs to user {uid}, not to you ({me}); only its owner's "
            "key may be used"),
        "loose": N_("{path}: the secret key grants access to group or others; run: {fix} {path}"),
        "folder_unreadable": N_("{folder}: cannot read the secret key's directory: {error}"),
        "folder_writable": N_(
            "{folder}: a directory on the way to the secret key is writable by group or "
            "others, who could replace the key; run: chmod go-w {folder}"),
        "folder_owner": N_(
            "{folder}: a directory on the way to the secret key belongs to user {uid}, who "
            "could replace the key; keep keys in a directory of your own"),
        "not_text": N_("{path}: the secret key is not text (not a key file)"),
    },
}
"""The messages of :func:`key_file_text` for each key bfa reads, whole (a language may
not put the key's name where English does)."""


__all__ = ["PRIVATE", "Perms", "apply_umask", "check_private_file", "create_private",
           "fix_mode", "key_file_text", "make_dir", "open_text", "perms_for", "write_atomic"]
