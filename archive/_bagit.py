"""BagIt proof bundles: writing a bag and checking one offline (RFC 8493, BagIt 1.0).

This module owns the on-disk form of our proof bundles. :class:`BagWriter` lays a bag out;
:func:`read_bag` checks a bag it has no reason to trust and raises :class:`BagError` (the
bag-relative file at fault and one sentence) on the first fault it finds. Only the standard
library is used, so what the check does can be read in this one file.

The format, with the section of RFC 8493 each rule comes from:

* A bag is a base directory holding ``bagit.txt``, one or more payload manifests, the
  payload directory ``data/``, and optional tag files and tag directories (§2).
* ``bagit.txt`` is exactly two lines, ``BagIt-Version: M.N`` and
  ``Tag-File-Character-Encoding: ENCODING``, in UTF-8 without a byte-order mark (§2.1.1;
  one space after each colon, ABNF §7.1).
* Every payload file lies under ``data/`` (§2.1.2).
* A payload manifest is named ``manifest-<algorithm>.txt``; each line is a hex checksum
  (either letter case), one or more spaces or tabs, and a path relative to the base
  directory with ``/`` separators, in which CR, LF and ``%`` (and only those) are
  percent-encoded as ``%0D``, ``%0A``, ``%25``; it lists every payload file exactly once,
  never a directory, and nothing outside ``data/`` (§2.1.3).
* A tag manifest ``tagmanifest-<algorithm>.txt`` has the same line form, lists every
  payload manifest, no tag manifest and no payload file (§2.2.1).
* ``bag-info.txt`` holds ``Label: value`` lines (a single space or tab after the colon),
  continued on lines that begin with a space or tab; ``Payload-Oxum`` is
  ``OctetCount.StreamCount``, given at most once (§2.2.2).
* ``fetch.txt`` lists payload files to download (§2.2.3); other tag files are opaque and
  are checked only through the tag manifests that list them (§2.2.4).
* Text tag files end each line with CR, LF or CRLF (the last line may lack one) and, when
  the encoding is UTF-8, do not begin with a byte-order mark (§2.3).
* Algorithm names are the lowercased common name without punctuation: ``md5``, ``sha1``,
  ``sha256``, ``sha512`` (§2.4).
* A bag is complete when every required element is present, every file listed in every
  manifest is present and (1.0) every payload file is listed in every payload manifest; it
  is valid when it is complete and every checksum matches (§3).
* Nothing outside the bag may be reached through its paths (§5.1).

Where this reader is stricter than the RFC, deliberately, because a supervisor must be
able to check a bundle on a disk with no trust in us:

* ``fetch.txt`` is refused: a proof bundle carries every payload file itself.
* Tag files must be UTF-8 (§2.1.1 allows other encodings "for backwards compatibility").
* BagIt 1.0 is read, and 0.97 too, which differs in two points only: whitespace around the
  ``bag-info.txt`` colon is accepted before 1.0 (RFC 8493 §2.2.2 requires it), and a ``%``
  in a manifest path that begins none of the three escapes is a literal ``%`` before 1.0
  but an error in 1.0. Older versions are refused. Every payload file must be in every
  payload manifest in 0.97 bags as well (§3 asks this of 1.0 only).
* Only the four algorithms above are known; a manifest in any other is refused, since it
  could not be checked. ``required_algorithms`` (SHA-256 and SHA-512 for our bundles) must
  all have a payload manifest, and a tag manifest too when ``strict_tags`` is on.
* A path has one spelling only: ``data/a``, never ``./data/a``, ``data//a``, ``data/./a``
  or an md5sum ``*`` marker (§6.1.3 says such bags fail strict validation). Backslashes,
  absolute paths and ``..`` components are refused.
* Two listed paths that differ only in letter case or Unicode normalization are refused
  (§6.1.1.3 asks for a warning): on many file systems they are one file. Names are
  otherwise compared exactly, with no normalization.
* Symbolic links and special files anywhere in the bag are refused, and files are opened
  without following links, so nothing outside the bag is read (§5.1).
* With ``strict_tags`` (the default) every file outside ``data/`` except the tag manifests
  must be listed in every tag manifest, unless its path is in ``unlisted_tags_allowed``
  (a detached signature over ``tagmanifest-sha256.txt`` is such a file): "no unlisted
  file". RFC 8493 only asks tag manifests to list the payload manifests (§2.2.1).
  ``strict_tags=False`` reads by the RFC's rule.

The tag manifests themselves are covered by nothing inside the bag; a detached signature
over ``tagmanifest-sha256.txt``, checked by the caller, is what binds the bag to its maker.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import os
import re
import sqlite3
import stat
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final

__all__ = [
    "ALGORITHMS",
    "PROOF_ALGORITHMS",
    "VERSIONS",
    "Bag",
    "BagError",
    "BagSummary",
    "BagWriter",
    "FileDigests",
    "SortedNames",
    "read_bag",
]

ALGORITHMS: Final = ("md5", "sha1", "sha256", "sha512")
"""The bag checksum algorithms this module knows (RFC 8493 §2.4)."""
PROOF_ALGORITHMS: Final = ("sha256", "sha512")
"""The algorithms every proof bundle has manifests for, and the reader's default demand."""
VERSIONS: Final = ("1.0", "0.97")
"""The BagIt versions :func:`read_bag` reads."""

_HEX_LENGTH: Final = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
_CHUNK: Final = 1 << 20
_MAX_LINE: Final = 1 << 20  # characters; a longer tag-file line is refused, not buffered
_BOM: Final = b"\xef\xbb\xbf"
_NOFOLLOW: Final[int] = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK: Final[int] = getattr(os, "O_NONBLOCK", 0)

_VERSION_LINE: Final = re.compile(r"BagIt-Version: ([0-9]+\.[0-9]+)")
_ENCODING_LINE: Final = re.compile(r"Tag-File-Character-Encoding: (\S+)")
_MANIFEST_NAME: Final = re.compile(r"manifest-([^/]*)\.txt", re.DOTALL)
_TAGMANIFEST_NAME: Final = re.compile(r"tagmanifest-([^/]*)\.txt", re.DOTALL)
_MANIFEST_LINE: Final = re.compile(r"([0-9A-Fa-f]+)[ \t]+(.+)", re.DOTALL)
_ESCAPE: Final = re.compile(r"%(?:25|0[AaDd])")
_UNESCAPED: Final = {"%25": "%", "%0a": "\n", "%0d": "\r"}
# bag-info.txt: a label neither starting nor ending with whitespace, no colon in it
_LABEL: Final = r"(?P<label>[^:\s](?:[^:]*[^:\s])?)"
_INFO_LINE: Final = re.compile(_LABEL + r":[ \t](?P<value>.*)", re.DOTALL)
_INFO_LINE_OLD: Final = re.compile(_LABEL + r"[ \t]*:[ \t]*(?P<value>.*)", re.DOTALL)
_OXUM: Final = re.compile(r"([0-9]+)\.([0-9]+)")
_RESERVED_TAGS: Final = frozenset({"bagit.txt", "bag-info.txt", "fetch.txt"})


class BagError(Exception):
    """A bag failed a check: ``file`` is the bag-relative path at fault (None when the fault
    is the bag's as a whole), ``reason`` one English sentence saying what is wrong."""

    def __init__(self, file: str | None, reason: str) -> None:
        super().__init__(file, reason)
        self.file = file
        self.reason = reason

    def __str__(self) -> str:
        return self.reason if self.file is None else f"{self.file}: {self.reason}"


@dataclass(frozen=True)
class FileDigests:
    """What :class:`BagWriter` wrote for one file: its size and lowercase hex digests."""

    size: int
    sha256: str
    sha512: str


@dataclass(frozen=True)
class BagSummary:
    """What :meth:`BagWriter.finish` wrote. The tag manifests are read back from the bag
    when asked for (a bag of a million proofs has large ones): ``tag_files`` are the
    bag-relative paths they list; ``tagmanifest_sha256`` is that file's exact content
    (the bytes a detached signature covers)."""

    root: Path
    payload_count: int
    payload_octets: int
    payload_oxum: str
    tag_count: int
    bag_info: bytes

    @property
    def tagmanifest_sha256(self) -> bytes:
        return (self.root / "tagmanifest-sha256.txt").read_bytes()

    @property
    def tagmanifest_sha512(self) -> bytes:
        return (self.root / "tagmanifest-sha512.txt").read_bytes()

    @property
    def tag_files(self) -> tuple[str, ...]:
        lines = self.tagmanifest_sha256.decode("utf-8").splitlines()
        return tuple(_decode(line.split("  ", 1)[1], "tagmanifest-sha256.txt", n, "1.0")
                     for n, line in enumerate(lines, 1))


@dataclass(frozen=True)
class Bag:
    """A bag :func:`read_bag` found valid.

    ``info`` maps each ``bag-info.txt`` label, as written, to its values in file order
    (labels are case-insensitive by RFC 8493 §2.2.2: see :meth:`values`). ``payload`` and
    ``tags`` map bag-relative paths (``data/...`` for the payload) to ``{algorithm:
    lowercase hex}`` as the payload and tag manifests give them; ``tag_files`` is every file
    outside ``data/``, iterated sorted, whether listed or not."""

    root: Path
    version: str
    encoding: str
    info: dict[str, list[str]]
    payload: Mapping[str, Mapping[str, str]]
    tags: Mapping[str, Mapping[str, str]]
    tag_files: SortedNames
    payload_octets: int
    payload_count: int

    def values(self, label: str) -> list[str]:
        """Every value of ``label`` in ``bag-info.txt``, matching labels case-insensitively."""
        key = label.casefold()
        return [v for k, vs in self.info.items() if k.casefold() == key for v in vs]


# --- writing ---------------------------------------------------------------------------------


class BagWriter:
    """Writes a BagIt 1.0 bag at ``root``, which must not exist or be an empty directory.

    Add payload and tag files, then call :meth:`finish` (or leave a ``with`` block without
    an exception, which finishes with no labels of the caller's). The tag manifests are
    written last: a writer abandoned before :meth:`finish` leaves a directory
    :func:`read_bag` refuses. Files written after :meth:`finish` are in no tag manifest;
    the reader accepts them only when named in ``unlisted_tags_allowed``.
    """

    def __init__(self, root: Path) -> None:
        try:
            st = root.lstat()
        except FileNotFoundError:
            root.mkdir(parents=True)
        else:
            if not stat.S_ISDIR(st.st_mode):
                raise FileExistsError(f"{root} exists and is not a directory")
            with os.scandir(root) as entries:
                if next(entries, None) is not None:
                    raise FileExistsError(f"{root} is not empty; a bag is written only into "
                                          "a new or empty directory")
        (root / "data").mkdir()
        self.root = root
        self._base = os.fspath(root)
        self._made: set[str] = set()
        """Directories this writer made (a bag has few)."""
        self._payload = _Written()
        self._tags = _Written()
        self._summary: BagSummary | None = None

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None and self._summary is None:
            self.finish()

    @property
    def summary(self) -> BagSummary:
        """What :meth:`finish` wrote; RuntimeError before it ran."""
        if self._summary is None:
            raise RuntimeError("the bag is not finished yet")
        return self._summary

    def add_payload(self, relpath: str, data: bytes | Path) -> FileDigests:
        """Write payload file ``data/<relpath>`` from bytes or from a regular file, hashed with
        SHA-256 and SHA-512 in the same pass as it is copied (in 1 MiB chunks)."""
        self._check_open()
        rel = _check_relpath(relpath, "payload")
        return self._add("data/" + rel, rel, data, self._payload)

    def add_tag(self, relpath: str, data: bytes | Path) -> FileDigests:
        """Write tag file ``<relpath>`` (outside ``data/``, not a name RFC 8493 reserves) from
        bytes or from a regular file; the tag manifests will list it."""
        self._check_open()
        rel = _check_relpath(relpath, "tag")
        first = _fold(rel.split("/", 1)[0])
        if first == "data":
            raise ValueError(f"tag path {relpath!r} is inside data/, where payload files go")
        if first in _RESERVED_TAGS or first.startswith(("manifest-", "tagmanifest-")):
            raise ValueError(f"tag path {relpath!r} uses a name RFC 8493 reserves")
        return self._add(rel, rel, data, self._tags)

    def _add(self, path: str, rel: str, data: bytes | Path, files: _Written) -> FileDigests:
        """Claim ``rel`` in ``files``' namespace, write bag-relative ``path`` and record it
        (a source file is opened, and checked to be a regular file, before the claim)."""
        if isinstance(data, Path):
            with _open_source(data) as source:
                files.claim(rel)
                digests = self._write(path, source, files, rel)
        else:
            files.claim(rel)
            digests = self._write(path, bytes(data), files, rel)
        files.put(path, digests)
        return digests

    def finish(self, info: Mapping[str, str | Sequence[str]] | None = None) -> BagSummary:
        """Write ``bagit.txt``, ``bag-info.txt`` (the labels of ``info`` in order, one line a
        value, then ``Bagging-Date`` unless given and ``Payload-Oxum``), the payload
        manifests and, last, the tag manifests; return what was written."""
        self._check_open()
        octets = self._payload.octets
        oxum = f"{octets}.{self._payload.count}"
        lines: list[str] = []
        labels: set[str] = set()
        for label, given in (info or {}).items():
            _check_label(label)
            values = [given] if isinstance(given, str) else list(given)
            if not values:
                raise ValueError(f"bag-info label {label!r} has no value")
            for value in values:
                _check_value(label, value)
                lines.append(f"{label}: {value}")
            labels.add(label.casefold())
        if "payload-oxum" in labels:
            raise ValueError("Payload-Oxum is computed by the writer, not given")
        if "bagging-date" not in labels:
            today = datetime.datetime.now(datetime.UTC).date().isoformat()
            lines.append(f"Bagging-Date: {today}")
        lines.append(f"Payload-Oxum: {oxum}")
        bag_info = "".join(line + "\n" for line in lines).encode("utf-8")
        tags = self._tags
        tags.put("bagit.txt", self._put("bagit.txt", [
            "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"]))
        tags.put("bag-info.txt", self._put("bag-info.txt", [bag_info.decode("utf-8")]))
        for alg in PROOF_ALGORITHMS:
            name = f"manifest-{alg}.txt"
            tags.put(name, self._put(name, _manifest(self._payload, alg)))
        for alg in PROOF_ALGORITHMS:
            self._put(f"tagmanifest-{alg}.txt", _manifest(tags, alg))
        self._summary = BagSummary(
            root=self.root, payload_count=self._payload.count, payload_octets=octets,
            payload_oxum=oxum, tag_count=tags.count, bag_info=bag_info)
        self._payload.close()
        tags.close()
        return self._summary

    def _check_open(self) -> None:
        if self._summary is not None:
            raise RuntimeError("the bag is finished; nothing more can be added to it")

    def _put(self, name: str, lines: Iterable[str]) -> FileDigests:
        """Write top-level tag file ``name`` from its lines (UTF-8), hashing as it goes."""
        sha256, sha512, size = hashlib.sha256(), hashlib.sha512(), 0
        def write(batch: list[str]) -> None:
            nonlocal size
            chunk = "".join(batch).encode("utf-8")
            sha256.update(chunk)
            sha512.update(chunk)
            out.write(chunk)
            size += len(chunk)

        with open(self.root / name, "xb") as out:
            batch: list[str] = []
            for line in lines:
                batch.append(line)
                if len(batch) >= 4096:
                    write(batch)
                    batch = []
            write(batch)
        return FileDigests(size, sha256.hexdigest(), sha512.hexdigest())

    def _write(self, path: str, source: bytes | BinaryIO, names: _Written,
               rel: str) -> FileDigests:
        """Write bag-relative ``path`` from ``source``, hashing as it goes; on failure take the
        partial file and the name back."""
        # text paths, not pathlib's: it interns every part, so a million proofs' names
        # would stay in memory after their files are written
        target = os.path.join(self._base, *path.split("/"))
        try:
            parent = os.path.dirname(target)
            if parent not in self._made:
                os.makedirs(parent, exist_ok=True)
                self._made.add(parent)
            with open(target, "xb") as out:
                if isinstance(source, bytes):
                    out.write(source)
                    return _digests(source)
                sha256, sha512, size = hashlib.sha256(), hashlib.sha512(), 0
                while chunk := source.read(_CHUNK):
                    sha256.update(chunk)
                    sha512.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                return FileDigests(size, sha256.hexdigest(), sha512.hexdigest())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
            names.release(rel)
            raise


def _check_relpath(relpath: object, kind: str) -> str:
    """``relpath`` if it is a plain relative POSIX path (no empty, ``.`` or ``..`` component,
    no backslash, no control character, no leading whitespace); else ValueError."""
    if not isinstance(relpath, str) or not relpath:
        raise ValueError(f"a {kind} path must be a non-empty string, not {relpath!r}")
    why = None
    if relpath.startswith("/"):
        why = "is absolute"
    elif "\\" in relpath:
        why = "contains a backslash"
    elif any(unicodedata.category(c) == "Cc" for c in relpath):
        why = "contains a control character"
    elif relpath[0].isspace():
        why = "begins with whitespace, which a manifest line cannot carry"
    elif any(0xD800 <= ord(c) <= 0xDFFF for c in relpath):
        why = "is not valid Unicode"
    elif any(part in ("", ".", "..") for part in relpath.split("/")):
        why = "has an empty, '.' or '..' component"
    if why is not None:
        raise ValueError(f"{kind} path {relpath!r} {why}")
    return relpath


def _check_label(label: object) -> None:
    if (not isinstance(label, str) or not label or ":" in label or label != label.strip()
            or any(unicodedata.category(c) == "Cc" for c in label)):
        raise ValueError(f"bag-info label {label!r} must be non-empty text without a colon, a "
                         "control character or whitespace at either end")


def _check_value(label: str, value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"bag-info value of {label!r} must be a string, not {value!r}")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise ValueError(f"bag-info value of {label!r} contains a line break or another "
                         "control character")


def _open_source(source: Path) -> BinaryIO:
    """``source`` opened for reading if it is a regular file (opened without blocking, so a
    FIFO cannot hang us, then checked on the open descriptor); else ValueError."""
    fd = os.open(source, os.O_RDONLY | _NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"payload source {source} is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _digests(content: bytes) -> FileDigests:
    return FileDigests(len(content), hashlib.sha256(content).hexdigest(),
                       hashlib.sha512(content).hexdigest())


def _manifest(files: _Written, alg: str) -> Iterator[str]:
    """Manifest lines ``<hex>  <path>``, sorted by path, paths percent-encoded (§2.1.3)."""
    return (f"{getattr(d, alg)}  {_encode(path)}\n" for path, d in files)


def _encode(path: str) -> str:
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _fold(path: str) -> str:
    """The form under which two names are the same file on a case-insensitive, normalizing
    file system (canonical caseless matching, in NFC)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", path).casefold())


# --- reading ---------------------------------------------------------------------------------


def read_bag(root: Path, *, unlisted_tags_allowed: frozenset[str] = frozenset(),
             on_progress: Callable[[int], None] | None = None,
             required_algorithms: Sequence[str] = PROOF_ALGORITHMS,
             strict_tags: bool = True) -> Bag:
    """Check the bag at ``root`` completely and return what it holds; raise :class:`BagError`
    on the first fault (see the module docstring for every check).

    Structure is checked first (declaration, manifests, ``bag-info.txt``, the file tree),
    then tag-file digests, then ``Payload-Oxum``, then payload digests: each file is read
    once, in 1 MiB chunks, for all the algorithms that list it. ``on_progress`` is called
    with the number of bytes hashed since its previous call. Memory grows with the manifests
    (and one directory listing at a time), never with file sizes."""
    unknown = [a for a in required_algorithms if a not in ALGORITHMS]
    if unknown:
        raise ValueError(f"unknown required algorithms {unknown}; known: {ALGORITHMS}")
    try:
        st = root.lstat()
    except OSError as e:
        raise BagError(None, f"The bag directory {root} cannot be read: {e.strerror}.") from e
    if not stat.S_ISDIR(st.st_mode):
        raise BagError(None, f"The bag {root} is not a directory.")
    version, encoding = _read_declaration(root)
    top = list(_entries(root, ""))
    payload_algs: list[str] = []
    tag_algs: list[str] = []
    has_data = False
    for name, entry in top:
        if stat.S_ISLNK(entry.st_mode):
            raise BagError(name, "is a symbolic link; a bag holds none (RFC 8493 §5.1).")
        if name == "fetch.txt":
            raise BagError(name, "lists payload to download (RFC 8493 §2.2.3), but a proof "
                           "bundle must carry every payload file itself.")
        if name == "data":
            if not stat.S_ISDIR(entry.st_mode):
                raise BagError(name, "is not a directory (RFC 8493 §2.1.2).")
            has_data = True
        for pattern, algs in ((_MANIFEST_NAME, payload_algs), (_TAGMANIFEST_NAME, tag_algs)):
            if m := pattern.fullmatch(name):
                if m[1] not in ALGORITHMS:
                    raise BagError(name, f"uses the algorithm {m[1]!r}, which this reader "
                                   f"does not know (it knows {', '.join(ALGORITHMS)}).")
                algs.append(m[1])
    if not has_data:
        raise BagError("data", "is missing; RFC 8493 §2.1.2 requires the payload directory.")
    if not payload_algs:
        raise BagError(None, "The bag has no payload manifest (RFC 8493 §2.1.3).")
    for alg in required_algorithms:
        if alg not in payload_algs:
            raise BagError(f"manifest-{alg}.txt", f"is missing; proof bundles require a "
                           f"{alg} payload manifest.")
        if strict_tags and alg not in tag_algs:
            raise BagError(f"tagmanifest-{alg}.txt", f"is missing; proof bundles require a "
                           f"{alg} tag manifest.")
    if strict_tags and not tag_algs:
        raise BagError(None, "The bag has no tag manifest, so nothing covers its tag files.")

    payload = _read_manifests(root, "manifest", payload_algs, version, same_set=True)
    tags = _read_manifests(root, "tagmanifest", tag_algs, version, same_set=strict_tags)
    for alg in tag_algs:
        for listed in (f"manifest-{a}.txt" for a in payload_algs):
            if alg not in tags.get(listed, {}):
                raise BagError(f"tagmanifest-{alg}.txt", f"does not list {listed}; every tag "
                               "manifest must list every payload manifest (RFC 8493 §2.2.1).")
    info = _read_info(root, version) if any(n == "bag-info.txt" for n, _ in top) else {}
    oxum = _payload_oxum(info)

    for listed_paths, manifests in ((payload, "the payload manifests"),
                                    (tags, "a tag manifest")):
        for path in listed_paths:
            _expect_file(root, path, manifests)
    octets = count = 0
    tag_files = SortedNames()
    for name, entry in top:
        if name == "data":
            for path, size in _walk(root, "data"):
                if path not in payload:
                    raise BagError(path, "is a payload file that no payload manifest lists "
                                   "(RFC 8493 §3).")
                octets += size
                count += 1
        elif stat.S_ISDIR(entry.st_mode):
            for path, _ in _walk(root, name):
                tag_files.add(path)
        elif stat.S_ISREG(entry.st_mode):
            tag_files.add(name)
        else:
            raise BagError(name, "is neither a regular file nor a directory.")
    if strict_tags:
        for path in tag_files:
            if (path not in tags and path not in unlisted_tags_allowed
                    and not _TAGMANIFEST_NAME.fullmatch(path)):
                raise BagError(path, "is listed in no tag manifest, and a proof bundle holds "
                               "no unlisted file.")

    hasher = _Hasher(root, on_progress)
    for path, digests in tags.ordered():
        hasher.verify(path, digests, "tagmanifest")
    if oxum is not None and oxum != (octets, count):
        raise BagError("bag-info.txt", f"gives Payload-Oxum {oxum[0]}.{oxum[1]}, but the "
                       f"payload holds {octets} octets in {count} files (RFC 8493 §2.2.2).")
    hashed = sum(hasher.verify(path, digests, "manifest") for path, digests in payload.ordered())
    if hashed != octets:
        raise BagError("data", "changed while it was being read.")
    return Bag(root=root, version=version, encoding=encoding, info=info, payload=payload,
               tags=tags, tag_files=tag_files, payload_octets=octets, payload_count=count)


def _read_declaration(root: Path) -> tuple[str, str]:
    """Version and encoding from ``bagit.txt`` (RFC 8493 §2.1.1)."""
    name = "bagit.txt"
    lines: list[str] = []
    for n, line in _lines(root, name):
        if n > 2:
            raise BagError(name, "has more than the two lines RFC 8493 §2.1.1 allows.")
        lines.append(line)
    if len(lines) != 2:
        raise BagError(name, "does not have the two lines RFC 8493 §2.1.1 requires.")
    version = _VERSION_LINE.fullmatch(lines[0])
    if version is None:
        raise BagError(name, "line 1 is not 'BagIt-Version: M.N' (RFC 8493 §2.1.1).")
    if version[1] not in VERSIONS:
        raise BagError(name, f"declares BagIt version {version[1]}; this reader reads "
                       f"versions {' and '.join(VERSIONS)} only.")
    encoding = _ENCODING_LINE.fullmatch(lines[1])
    if encoding is None:
        raise BagError(name, "line 2 is not 'Tag-File-Character-Encoding: ENCODING' "
                       "(RFC 8493 §2.1.1).")
    if encoding[1].upper() != "UTF-8":
        raise BagError(name, f"declares the tag-file encoding {encoding[1]}, and proof "
                       "bundles are read in UTF-8 only.")
    return version[1], encoding[1]


class _Spilled:
    """What :class:`Manifest` and :class:`SortedNames` share: a temporary SQLite file they
    move into past :data:`SPILL` items (no journal, no fsync: it is thrown away), deleted
    when closed or collected."""

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def _open_spill(self, *ddl: str) -> sqlite3.Connection:
        self._dir = tempfile.TemporaryDirectory(prefix="bfa-bag-")
        db = sqlite3.connect(os.path.join(self._dir.name, "spill.db"))
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        for statement in ddl:
            db.execute(statement)
        self._db = db
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


class _Written(_Spilled):
    """The files :class:`BagWriter` wrote in one namespace (payload or tags): the names
    claimed and each file's size and digests, iterated in path order (code points). Names
    are compared as a case-insensitive, normalizing file system compares them (the reader
    refuses such collisions). Held in memory while few; past :data:`WRITER_SPILL` files
    in a temporary SQLite file, so that writing a bag of a million proofs keeps memory
    flat."""

    def __init__(self) -> None:
        super().__init__()
        self._claimed: dict[str, str] = {}
        """Folded spelling: the name as claimed."""
        self._dirs: set[str] = set()
        self._files: dict[str, FileDigests] = {}
        self.count = 0
        self.octets = 0

    def claim(self, rel: str) -> None:
        """Take ``rel`` (ValueError when it, a folded spelling of it, or a directory or
        file in its way, is taken already)."""
        key = _fold(rel)
        other = self._claimant(key)
        if other is not None:
            same = "" if other == rel else (
                f" as {other!r} (the same name up to letter case or Unicode normalization)")
            raise ValueError(f"{rel!r} is in the bag already{same}")
        if self._is_dir(key):
            raise ValueError(f"{rel!r} is a directory of the bag already")
        parts = key.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts))]
        for prefix in prefixes:
            other = self._claimant(prefix)
            if other is not None:
                raise ValueError(f"{rel!r} needs a directory where the file {other!r} is")
        if self._db is None:
            self._dirs.update(prefixes)
            self._claimed[key] = rel
        else:
            self._db.executemany("INSERT OR IGNORE INTO d VALUES (?)", ((p,) for p in prefixes))
            self._db.execute("INSERT INTO f VALUES (?, ?)", (key, rel))

    def _claimant(self, key: str) -> str | None:
        """The name claimed with folded spelling ``key``, if any."""
        if self._db is None:
            return self._claimed.get(key)
        row = self._db.execute("SELECT rel FROM f WHERE fold = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _is_dir(self, key: str) -> bool:
        if self._db is None:
            return key in self._dirs
        return self._db.execute("SELECT 1 FROM d WHERE fold = ?", (key,)).fetchone() is not None

    def release(self, rel: str) -> None:
        """Give back a name whose file could not be written."""
        if self._db is None:
            self._claimed.pop(_fold(rel), None)
        else:
            self._db.execute("DELETE FROM f WHERE fold = ?", (_fold(rel),))

    def put(self, path: str, digests: FileDigests) -> None:
        """Record what was written at bag-relative ``path``."""
        self.count += 1
        self.octets += digests.size
        if self._db is None:
            self._files[path] = digests
            if len(self._files) > WRITER_SPILL:
                self._spill()
            return
        self._db.execute("INSERT INTO w VALUES (?, ?, ?, ?)",
                         (path, digests.size, digests.sha256, digests.sha512))

    def _spill(self) -> None:
        db = self._open_spill("CREATE TABLE f (fold TEXT PRIMARY KEY, rel TEXT NOT NULL)",
                              "CREATE TABLE d (fold TEXT PRIMARY KEY)",
                              "CREATE TABLE w (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                              "sha256 TEXT NOT NULL, sha512 TEXT NOT NULL)")
        db.executemany("INSERT INTO f VALUES (?, ?)", self._claimed.items())
        db.executemany("INSERT INTO d VALUES (?)", ((x,) for x in self._dirs))
        db.executemany("INSERT INTO w VALUES (?, ?, ?, ?)",
                       ((p, d.size, d.sha256, d.sha512) for p, d in self._files.items()))
        self._claimed, self._dirs, self._files = {}, set(), {}

    def __iter__(self) -> Iterator[tuple[str, FileDigests]]:
        if self._db is None:
            yield from sorted(self._files.items())
            return
        # TEXT compares as its UTF-8 bytes, which sort as their code points do
        for path, size, sha256, sha512 in self._db.execute(
                "SELECT path, size, sha256, sha512 FROM w ORDER BY path"):
            yield str(path), FileDigests(int(size), str(sha256), str(sha512))


class Manifest(_Spilled, Mapping[str, Mapping[str, str]]):
    """``{path: {alg: hex}}`` of a bag's manifests, iterated in path order (code points).

    Held in memory while small; past :data:`SPILL` paths it moves into a temporary SQLite
    file (deleted when closed or collected), so that checking a bag of millions of files
    keeps memory flat. Also remembers each path's folded spelling (:func:`_fold`)."""

    def __init__(self) -> None:
        super().__init__()
        self._mem: dict[str, dict[str, str]] = {}
        self._folded: dict[str, str] = {}

    def _spill(self) -> sqlite3.Connection:
        cols = ", ".join(f"{a} TEXT" for a in ALGORITHMS)
        db = self._open_spill(f"CREATE TABLE m (path TEXT PRIMARY KEY, {cols})",
                              "CREATE TABLE f (fold TEXT PRIMARY KEY, path TEXT NOT NULL)")
        for path, entry in self._mem.items():
            self._insert(db, path, entry)
        db.executemany("INSERT INTO f VALUES (?, ?)", self._folded.items())
        self._mem, self._folded = {}, {}
        return db

    @staticmethod
    def _insert(db: sqlite3.Connection, path: str, entry: Mapping[str, str]) -> None:
        db.execute(f"INSERT INTO m (path, {', '.join(ALGORITHMS)}) VALUES (?, ?, ?, ?, ?)",
                   (path, *(entry.get(a) for a in ALGORITHMS)))

    def record(self, path: str, alg: str, digest: str, *, first: bool, may_add: bool
               ) -> tuple[str, str]:
        """Record ``path``'s ``alg`` digest, one manifest line. Returns ``(status, other)``:
        status ``"twice"`` (the path has an ``alg`` digest already), ``"absent"`` (a new
        path where ``may_add`` is false) or ``"ok"``; ``other`` is the path first listed
        with the same folded spelling (``path`` itself unless two spellings collide, and
        then nothing is recorded). ``first``: this is the first manifest read (one
        statement per line in a spilled manifest)."""
        if self._db is None:
            entry = self._mem.get(path)
            if entry is not None:
                if alg in entry:
                    return "twice", path
                entry[alg] = digest
                return "ok", path
            if not may_add:
                return "absent", path
            other = self._folded.setdefault(_fold(path), path)
            if other == path:
                self._mem[path] = {alg: digest}
                if len(self._mem) > SPILL:
                    self._spill()
            return "ok", other
        db = self._db
        if not first:
            if db.execute(f"UPDATE m SET {alg} = ? WHERE path = ? AND {alg} IS NULL",
                          (digest, path)).rowcount:
                return "ok", path
            if path in self:
                return "twice", path
            if not may_add:
                return "absent", path
        key = _fold(path)
        if db.execute("INSERT OR IGNORE INTO f VALUES (?, ?)", (key, path)).rowcount == 0:
            row = db.execute("SELECT path FROM f WHERE fold = ?", (key,)).fetchone()
            other = str(row[0])
            if other != path:
                return "ok", other
            return "twice", path  # listed before under this very spelling
        self._insert(db, path, {alg: digest})
        return "ok", path

    def ordered(self) -> Iterator[tuple[str, Mapping[str, str]]]:
        """``(path, {alg: hex})`` in path order, read in one pass."""
        if self._db is None:
            for path in sorted(self._mem):
                yield path, self._mem[path]
            return
        for row in self._db.execute(f"SELECT path, {', '.join(ALGORITHMS)} FROM m "
                                    "ORDER BY path"):
            yield str(row[0]), {a: v for a, v in zip(ALGORITHMS, row[1:], strict=True)
                                if v is not None}

    def lacking(self, alg: str) -> str | None:
        """A path without an ``alg`` digest, or None."""
        if self._db is None:
            return next((p for p, e in self._mem.items() if alg not in e), None)
        row = self._db.execute(f"SELECT path FROM m WHERE {alg} IS NULL LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def __getitem__(self, path: str) -> Mapping[str, str]:
        if self._db is None:
            return self._mem[path]
        row = self._db.execute(f"SELECT {', '.join(ALGORITHMS)} FROM m WHERE path = ?",
                               (path,)).fetchone()
        if row is None:
            raise KeyError(path)
        return {a: v for a, v in zip(ALGORITHMS, row, strict=True) if v is not None}

    def __contains__(self, path: object) -> bool:
        if self._db is None:
            return path in self._mem
        return self._db.execute("SELECT 1 FROM m WHERE path = ?", (path,)).fetchone() \
            is not None

    def __iter__(self) -> Iterator[str]:
        if self._db is None:
            yield from sorted(self._mem)
            return
        for (path,) in self._db.execute("SELECT path FROM m ORDER BY path"):
            yield str(path)

    def __len__(self) -> int:
        if self._db is None:
            return len(self._mem)
        return int(self._db.execute("SELECT count(*) FROM m").fetchone()[0])


SPILL: Final = 20_000
"""Manifest paths held in memory before they move into a temporary SQLite file."""
WRITER_SPILL: Final = 1_000
"""Files a :class:`BagWriter` keeps in memory per namespace before the temporary SQLite
file: its look-ups cost little beside creating each file, and an export's other work
(a reconciliation, the proofs) already fills the memory a reader has to spare."""


def _read_manifests(root: Path, kind: str, algs: Sequence[str], version: str,
                    same_set: bool) -> Manifest:
    """``{path: {alg: hex}}`` from the ``<kind>-<alg>.txt`` manifests; with ``same_set``
    every manifest must list the same paths."""
    merged = Manifest()
    first: str | None = None
    for alg in sorted(algs):
        name = f"{kind}-{alg}.txt"
        listed = 0
        for n, line in _lines(root, name):
            m = _MANIFEST_LINE.fullmatch(line)
            if m is None:
                raise BagError(name, f"line {n} is not '<checksum> <path>' (RFC 8493 §2.1.3).")
            digest, path = m[1].lower(), _decode(m[2], name, n, version)
            if len(digest) != _HEX_LENGTH[alg]:
                raise BagError(name, f"line {n} has a checksum that is not {alg} in hex.")
            _check_listed(path, name, n, kind == "manifest")
            status, other = merged.record(path, alg, digest, first=first is None,
                                          may_add=not (same_set and first is not None))
            if status == "absent":
                raise BagError(name, f"lists {path!r}, which {first} does not; every "
                               "manifest must list the same files (RFC 8493 §3).")
            if status == "twice":
                raise BagError(name, f"line {n} lists {path!r} a second time.")
            if other != path:
                raise BagError(name, f"line {n} lists {path!r} and another line "
                               f"{other!r}, the same name up to letter case or Unicode "
                               "normalization.")
            listed += 1
        if first is None:
            first = name
        elif same_set and listed != len(merged):
            missing = merged.lacking(alg)
            raise BagError(name, f"does not list {missing!r}, which {first} does; every "
                           "manifest must list the same files (RFC 8493 §3).")
    return merged


def _decode(raw: str, name: str, n: int, version: str) -> str:
    """A manifest path with ``%25``, ``%0A``, ``%0D`` decoded (RFC 8493 §2.1.3). In 1.0 any
    other ``%`` is an error, since a literal ``%`` must be written ``%25``."""
    if version == "1.0" and "%" in _ESCAPE.sub("", raw):
        raise BagError(name, f"line {n} has a '%' that begins none of %25, %0A and %0D "
                       "(RFC 8493 §2.1.3).")
    return _ESCAPE.sub(lambda m: _UNESCAPED[m[0].lower()], raw)


def _check_listed(path: str, name: str, n: int, is_payload: bool) -> None:
    """Refuse a listed path that could reach outside the bag or has more than one spelling
    (RFC 8493 §2.1.3, §2.2.1, §5.1)."""
    parts = path.split("/")
    why = None
    if path.startswith("/"):
        why = "is absolute"
    elif "\\" in path:
        why = "contains a backslash"
    elif "\0" in path:
        why = "contains a NUL character"
    elif ".." in parts:
        why = "has a '..' component and so would leave the bag"
    elif any(part in ("", ".") for part in parts):
        why = "has an empty or '.' component"
    elif is_payload and (parts[0] != "data" or len(parts) < 2):
        why = "is not under data/ (RFC 8493 §2.1.3)"
    elif not is_payload and _fold(parts[0]) == "data":
        why = "is a payload file, which a tag manifest must not list (RFC 8493 §2.2.1)"
    elif not is_payload and _TAGMANIFEST_NAME.fullmatch(path):
        why = "is a tag manifest, which a tag manifest must not list (RFC 8493 §2.2.1)"
    if why is not None:
        raise BagError(name, f"line {n} lists {path!r}, which {why}.")


def _read_info(root: Path, version: str) -> dict[str, list[str]]:
    """Labels and values of ``bag-info.txt`` (RFC 8493 §2.2.2): ``Label: value`` with one
    space or tab after the colon (before 1.0, any whitespace around it); a line beginning
    with a space or tab continues the previous value, joined to it with one space."""
    name = "bag-info.txt"
    pattern = _INFO_LINE if version == "1.0" else _INFO_LINE_OLD
    info: dict[str, list[str]] = {}
    label: str | None = None
    for n, line in _lines(root, name):
        if not line.strip(" \t"):
            raise BagError(name, f"line {n} is blank.")
        if line[0] in " \t":
            if label is None:
                raise BagError(name, f"line {n} continues a value, but no label precedes it.")
            values = info[label]
            values[-1] = values[-1] + " " + line.lstrip(" \t")
            continue
        m = pattern.fullmatch(line)
        if m is None:
            raise BagError(name, f"line {n} is not 'Label: value' (RFC 8493 §2.2.2).")
        label = m["label"]
        info.setdefault(label, []).append(m["value"])
    return info


def _payload_oxum(info: Mapping[str, list[str]]) -> tuple[int, int] | None:
    values = [v for k, vs in info.items() if k.casefold() == "payload-oxum" for v in vs]
    if not values:
        return None
    if len(values) > 1:
        raise BagError("bag-info.txt", "gives Payload-Oxum more than once, which RFC 8493 "
                       "§2.2.2 forbids.")
    m = _OXUM.fullmatch(values[0])
    if m is None:
        raise BagError("bag-info.txt", f"gives Payload-Oxum {values[0]!r}, which is not "
                       "OctetCount.StreamCount (RFC 8493 §2.2.2).")
    return int(m[1]), int(m[2])


def _lines(root: Path, rel: str) -> Iterator[tuple[int, str]]:
    """``(number, line)`` for each line of text tag file ``rel``, without its ending (CR, LF
    or CRLF; the last may have none). UTF-8 only, no byte-order mark (RFC 8493 §2.3)."""
    with _open(root, rel) as raw, io.BufferedReader(raw, _CHUNK) as buffered:
        if buffered.read(len(_BOM)) == _BOM:
            raise BagError(rel, "begins with a byte-order mark, which RFC 8493 §2.1.1 and "
                           "§2.3 forbid in a UTF-8 tag file.")
        buffered.seek(0)
        n = 0
        with io.TextIOWrapper(buffered, encoding="utf-8", errors="strict",
                              newline=None) as text:
            try:
                while line := text.readline(_MAX_LINE + 1):
                    n += 1
                    line = line.removesuffix("\n")
                    if len(line) > _MAX_LINE:
                        raise BagError(rel, f"line {n} is longer than {_MAX_LINE} characters.")
                    yield n, line
            except UnicodeDecodeError:
                raise BagError(rel, f"is not valid UTF-8 (at line {n + 1}).") from None


def _open(root: Path, rel: str) -> io.FileIO:
    """Bag file ``rel`` opened for reading without following a symbolic link and without
    blocking (a FIFO never opens for reading), checked on the open descriptor to be a
    regular file."""
    path = os.path.join(root, rel)
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    except FileNotFoundError:
        raise BagError(rel, "is missing.") from None
    except OSError as e:
        if os.path.islink(path):
            raise BagError(rel, "is a symbolic link; a bag holds none (RFC 8493 §5.1).") from e
        raise BagError(rel, f"cannot be read: {e.strerror}.") from e
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BagError(rel, "is not a regular file.")
        os.set_blocking(fd, True)
        return io.FileIO(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _expect_file(root: Path, rel: str, listed_in: str) -> None:
    """Refuse a listed path that is missing or not a regular file (RFC 8493 §3)."""
    try:
        st = os.lstat(os.path.join(root, rel))
    except FileNotFoundError:
        raise BagError(rel, f"is listed in {listed_in} but missing (RFC 8493 §3).") from None
    except OSError as e:
        raise BagError(rel, f"cannot be read: {e.strerror}.") from e
    if stat.S_ISLNK(st.st_mode):
        raise BagError(rel, "is a symbolic link; a bag holds none (RFC 8493 §5.1).")
    if not stat.S_ISREG(st.st_mode):
        raise BagError(rel, f"is listed in {listed_in} but is not a regular file.")


class SortedNames(_Spilled):
    """Names (file names, bag paths) iterated in code-point order, however many: held in
    a list while few, past :data:`SPILL` in a temporary SQLite file, so that a directory of
    a million proofs is listed with flat memory. Names are kept as their file-system
    bytes there (:func:`os.fsencode`), so a name that is not UTF-8 comes back as it was."""

    def __init__(self) -> None:
        super().__init__()
        self._mem: list[str] = []
        self._n = 0

    def add(self, name: str) -> None:
        self._n += 1
        if self._db is None:
            self._mem.append(name)
            if len(self._mem) > SPILL:
                db = self._open_spill("CREATE TABLE n (name BLOB NOT NULL)")
                db.executemany("INSERT INTO n VALUES (?)", ((os.fsencode(x),) for x in self._mem))
                self._mem = []
            return
        self._db.execute("INSERT INTO n VALUES (?)", (os.fsencode(name),))

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[str]:
        if self._db is None:
            self._mem.sort()
            yield from self._mem
            return
        # a BLOB sorts by its bytes, and UTF-8 bytes sort as their code points do
        for (raw,) in self._db.execute("SELECT name FROM n ORDER BY name"):
            yield os.fsdecode(raw)


def _entries(root: Path, rel: str) -> Iterator[tuple[str, os.stat_result]]:
    """Name and ``lstat`` of each entry of bag directory ``rel``, sorted by name (the names
    alone are held while listing, spilled to disk past :data:`SPILL`)."""
    where = os.path.join(root, rel) if rel else str(root)
    names = SortedNames()
    try:
        with os.scandir(where) as it:
            for entry in it:
                names.add(entry.name)
    except OSError as e:
        names.close()
        raise BagError(rel or None, f"cannot be listed: {e.strerror}.") from e
    try:
        for name in names:
            path = f"{rel}/{name}" if rel else name
            if any(0xD800 <= ord(c) <= 0xDFFF for c in name):
                shown = path.encode("utf-8", "surrogateescape").decode("utf-8",
                                                                       "backslashreplace")
                raise BagError(shown, "has a name that is not valid UTF-8.")
            try:
                yield name, os.lstat(os.path.join(where, name))
            except OSError as e:
                raise BagError(path, f"cannot be read: {e.strerror}.") from e
    finally:
        names.close()


def _walk(root: Path, top: str) -> Iterator[tuple[str, int]]:
    """``(path, size)`` of every file under bag directory ``top``; a symbolic link or special
    file anywhere is refused (RFC 8493 §5.1). Iterative, so any depth is walked."""
    pending = [top]
    while pending:
        rel = pending.pop()
        subdirs = []
        for name, st in _entries(root, rel):
            path = f"{rel}/{name}"
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(path)
            elif stat.S_ISREG(st.st_mode):
                yield path, st.st_size
            elif stat.S_ISLNK(st.st_mode):
                raise BagError(path, "is a symbolic link; a bag holds none (RFC 8493 §5.1).")
            else:
                raise BagError(path, "is neither a regular file nor a directory.")
        pending.extend(reversed(subdirs))


class _Hasher:
    """Reads bag files once each, in 1 MiB chunks through one buffer, for every algorithm
    that lists them, and compares the digests."""

    def __init__(self, root: Path, on_progress: Callable[[int], None] | None) -> None:
        self.root = root
        self.on_progress = on_progress
        self.buffer = bytearray(_CHUNK)

    def verify(self, rel: str, expected: Mapping[str, str], kind: str) -> int:
        """Hash ``rel`` and compare with ``expected`` (``{alg: hex}``); return its size."""
        hashes = {alg: hashlib.new(alg, usedforsecurity=alg in PROOF_ALGORITHMS)
                  for alg in sorted(expected)}
        view = memoryview(self.buffer)
        size = 0
        with _open(self.root, rel) as f:
            while k := f.readinto(view):
                chunk = view[:k]
                for h in hashes.values():
                    h.update(chunk)
                size += k
                if self.on_progress is not None:
                    self.on_progress(k)
        for alg, h in hashes.items():
            if h.hexdigest() != expected[alg]:
                raise BagError(rel, f"does not match its {alg} checksum in {kind}-{alg}.txt.")
        return size
