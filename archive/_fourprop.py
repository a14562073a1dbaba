"""四性检测: the four-property check of one stored electronic voucher file, by its content.

This module owns the check that DA/T 70-2018 (文书类电子档案检测一般要求) and DA/T 94-2022
(电子会计档案管理规范) ask of an electronic record when it is captured and kept, applied
to one voucher file:

- **authenticity** (真实性): is the record what it claims to be? Signatures are found and
  reported as a note ("signature present, not verified" / "no signature"); verifying the
  SM2 signature value itself is not built yet, and a missing signature is not a failure.
- **integrity** (完整性): is the content complete and unaltered? A PDF must end with
  ``%%EOF``; in an OFD package (GB/T 33190-2016, 数字签名) every part a signature
  lists must be present and its digest (``CheckValue``, SM3 or SHA-256) must match the
  part's bytes; images must not be cut short.
- **usability** (可用性): can the record be read? The format is identified from the bytes
  (magic numbers and structure), never from the record's declared media type, and must
  agree with it; the file must parse (pypdf, defusedxml, zipfile). Plain text has no magic
  number: a file declared ``text/plain`` that no magic number identifies is text when all
  of it decodes as UTF-8 (ASCII included) or GB18030 and it holds no NUL byte.
- **security** (安全性): is the record free of what makes reading it unsafe? No PDF
  JavaScript or Launch action, no encryption, no DTD or entity declarations in XML, no
  ZIP entry that escapes the package, nor a ZIP that inflates beyond a fixed bound.

The entry point is :func:`check_file`. It never raises on bad content: a corrupt or
hostile file yields :class:`Finding` s in a :class:`CheckResult`, and a file that cannot
be read (``OSError``) yields the finding ``unreadable``. Memory stays bounded: format
sniffing reads a few KiB, PDF raw scans and OFD digests read in chunks, XML is parsed
as a stream, and ZIP parts are read only up to their declared sizes, whose sum is capped.
:meth:`CheckResult.to_json` gives a plain, stable dict (no floats, timestamps or local
paths) fit for a ledger control entry.

OFD paths (``ST_Loc``) are resolved as GB/T 33190 says: absolute from the package root
when they start with ``/``, else relative to the directory of the file that holds them;
when that names no part, the same path from the package root is tried, since producers
write both.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import hmac
import io
import os
import posixpath
import re
import stat
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final, Literal
from xml.etree.ElementTree import Element, ParseError

from defusedxml import (  # type: ignore[import-untyped]
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)
from defusedxml.ElementTree import iterparse  # type: ignore[import-untyped]
from pypdf import PasswordType, PdfReader
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject, PdfObject

__all__ = [
    "CHECK_VERSION",
    "PROPERTIES",
    "CheckResult",
    "Finding",
    "Format",
    "Property",
    "check_file",
]

Property = Literal["authenticity", "integrity", "usability", "security"]
"""The four properties (四性) of DA/T 70 / DA/T 94, in their customary order."""

PROPERTIES: Final[tuple[Property, ...]] = ("authenticity", "integrity", "usability", "security")

Format = Literal["pdf", "ofd", "xml", "png", "jpeg", "tiff", "gif", "text", "zip", "unknown"]
"""A content format as identified from the bytes (``zip``: a ZIP that is not an OFD;
``text``: plain text, only looked for when the record declares ``text/plain``)."""

CHECK_VERSION: Final = 2
"""Version of this check's rules and of :meth:`CheckResult.to_json`'s shape."""

NOTE_SIGNED: Final = "signature present, not verified"
NOTE_UNSIGNED: Final = "no signature"

# --- limits -----------------------------------------------------------------------------

HEAD_BYTES: Final = 8192
"""Bytes read from the start of the file to identify its format."""
TAIL_BYTES: Final = 1024
"""Bytes at the end searched for an end marker (PDF ``%%EOF``, PNG ``IEND``, JPEG EOI)."""
MAX_PARSE_BYTES: Final = 256 * 1024 * 1024
"""Largest PDF handed to pypdf (which keeps much of it in memory)."""
MAX_PDF_OBJECTS: Final = 200_000
"""Most PDF objects inspected for actions and signatures."""
MAX_ZIP_ENTRIES: Final = 10_000
"""Most entries a ZIP container may have."""
MAX_ZIP_TOTAL: Final = 512 * 1024 * 1024
"""Largest sum of the declared uncompressed sizes of a ZIP's entries (zip-bomb guard)."""
MAX_XML_PART: Final = 32 * 1024 * 1024
"""Largest XML part of an OFD package parsed."""
MAX_LISTED: Final = 20
"""Most findings listed per (property, code); the rest are counted in one more finding."""
MAX_DEPTH: Final = 64
"""Deepest nesting of direct PDF objects followed."""

_CHUNK: Final = 1024 * 1024

# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One failed requirement: which property, a stable reason code, a sentence for
    people, and (for a package such as OFD) the part it concerns, as a path inside the
    package without a leading ``/``."""

    property: Property
    code: str
    detail: str
    part: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"code": self.code, "detail": self.detail, "part": self.part,
                "property": self.property}


def _finding_key(f: Finding) -> tuple[int, str, str, str]:
    return (PROPERTIES.index(f.property), f.code, f.part or "", f.detail)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of :func:`check_file`: the format found in the content, the findings
    (sorted by property, code, part), and per-property notes that are not failures (such
    as ``"signature present, not verified"``)."""

    format: Format
    findings: tuple[Finding, ...]
    notes: Mapping[Property, str] = field(default_factory=dict, hash=False)

    @property
    def ok(self) -> bool:
        """True when no property has a finding."""
        return not self.findings

    def passed(self, prop: Property) -> bool:
        """True when ``prop`` has no finding."""
        return not any(f.property == prop for f in self.findings)

    def findings_for(self, prop: Property) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.property == prop)

    def to_json(self) -> dict[str, object]:
        """A plain dict of str, bool, int, None, lists and dicts; same input, same dict."""
        return {
            "findings": [f.to_json() for f in sorted(self.findings, key=_finding_key)],
            "format": self.format,
            "ok": self.ok,
            "properties": {
                p: {"note": self.notes.get(p), "ok": self.passed(p)} for p in sorted(PROPERTIES)
            },
            "version": CHECK_VERSION,
        }


class _Collector:
    """Findings and notes as they are found: one finding per (property, code, part), at
    most :data:`MAX_LISTED` per (property, code)."""

    def __init__(self) -> None:
        self._items: dict[tuple[Property, str, str | None], Finding] = {}
        self._listed: Counter[tuple[Property, str]] = Counter()
        self._unlisted: Counter[tuple[Property, str]] = Counter()
        self.notes: dict[Property, str] = {}

    def add(self, prop: Property, code: str, detail: str, part: str | None = None) -> None:
        key = (prop, code, part)
        if key in self._items:
            return
        if self._listed[(prop, code)] >= MAX_LISTED:
            self._unlisted[(prop, code)] += 1
            return
        self._listed[(prop, code)] += 1
        self._items[key] = Finding(prop, code, detail, part)

    def result(self, fmt: Format) -> CheckResult:
        findings = list(self._items.values())
        for (prop, code), n in self._unlisted.items():
            findings.append(Finding(prop, code, f"{n} more findings of this kind are not listed."))
        findings.sort(key=_finding_key)
        return CheckResult(fmt, tuple(findings), dict(self.notes))


def _why(exc: BaseException) -> str:
    """An exception as a short, single-line text (type and message)."""
    text = " ".join(str(exc).split())
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- media types ------------------------------------------------------------------------

_MEDIA_FORMATS: Final[Mapping[str, Format]] = {
    "application/pdf": "pdf",
    "application/ofd": "ofd",
    "application/xml": "xml",
    "text/xml": "xml",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/tiff": "tiff",
    "image/gif": "gif",
    "text/plain": "text",
}
"""Declared media type (lower case) → the one content format it allows. Other types
(``+xml`` ones such as SVG or XHTML, which may carry scripts, ``image/jpg``, ``application/
octet-stream``, ``application/zip``...) are findings: not an archival format known here."""

_LABELS: Final[Mapping[Format, str]] = {
    "pdf": "a PDF document",
    "ofd": "an OFD package",
    "xml": "an XML document",
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "tiff": "a TIFF image",
    "gif": "a GIF image",
    "text": "plain text",
    "zip": "a ZIP archive without OFD.xml (not an OFD package)",
    "unknown": "of no recognised format",
}


def _allowed_format(media_type: str) -> Format | None:
    return _MEDIA_FORMATS.get(media_type.strip().lower())


def _check_media_type(fmt: Format, media_type: str, c: _Collector, opened: bool) -> None:
    """``opened``: False for a ZIP that could not be opened or was refused, whose lack of
    an ``OFD.xml`` is then unknown."""
    if fmt == "unknown":
        c.add("usability", "unknown_format",
              "The content is of no format this check recognises (PDF, OFD, XML, PNG, JPEG, "
              f"TIFF, GIF); the record declares {media_type!r}.")
        return
    allowed = _allowed_format(media_type)
    if allowed is None:
        c.add("usability", "media_type_unsupported",
              f"The record declares {media_type!r}, which is not an archival format this "
              f"check knows; the content is {_LABELS[fmt]}.")
    elif fmt == "zip" and allowed == "ofd":
        if opened:
            c.add("usability", "ofd_no_root",
                  "The ZIP container has no OFD.xml at its root, so it is not an OFD "
                  "package (GB/T 33190).")
    elif fmt != allowed:
        c.add("usability", "media_type_mismatch",
              f"The content is {_LABELS[fmt]} but the record declares {media_type!r}.")


# --- format identification --------------------------------------------------------------

_XML_START = re.compile(r"[ \t\r\n]*<(?:\?xml|!--|!DOCTYPE|[A-Za-z_:]|[^\x00-\x7f])")


def _looks_like_xml(head: bytes) -> bool:
    if head.startswith(b"\xef\xbb\xbf"):
        text = head[3:].decode("latin-1")
    elif head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head[: len(head) // 2 * 2].decode("utf-16", errors="ignore")
    elif head.startswith(b"<\x00"):
        text = head[: len(head) // 2 * 2].decode("utf-16-le", errors="ignore")
    elif head.startswith(b"\x00<"):
        text = head[: len(head) // 2 * 2].decode("utf-16-be", errors="ignore")
    else:
        text = head.decode("latin-1")
    return _XML_START.match(text) is not None


def _sniff(head: bytes) -> Format:
    """The format by magic bytes; ``zip`` stands for OFD until the package is opened."""
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "tiff"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if _looks_like_xml(head):
        return "xml"
    if b"%PDF-" in head[:1024]:  # readers accept junk before it (PDF Reference 1.7, app. H)
        return "pdf"
    return "unknown"


_TEXT_CODECS: Final = ("utf-8", "gb18030")
"""Encodings plain text may be in (UTF-8 covers ASCII)."""


def _decodes(decoder: codecs.IncrementalDecoder, data: bytes, final: bool = False) -> bool:
    try:
        decoder.decode(data, final)
    except UnicodeDecodeError:
        return False
    return True


def _is_text(fh: BinaryIO) -> bool:
    """The whole file is plain text: at least one byte, no NUL, and all of it UTF-8 or
    GB18030 (read in chunks)."""
    fh.seek(0)
    decoders = [codecs.getincrementaldecoder(name)() for name in _TEXT_CODECS]
    empty = True
    while chunk := fh.read(_CHUNK):
        empty = False
        if b"\x00" in chunk:
            return False
        decoders = [d for d in decoders if _decodes(d, chunk)]
        if not decoders:
            return False
    return not empty and any(_decodes(d, b"", final=True) for d in decoders)


def _tail(fh: BinaryIO, size: int, n: int = TAIL_BYTES) -> bytes:
    fh.seek(max(0, size - n))
    return fh.read(n)


# --- XML --------------------------------------------------------------------------------

_XmlVerdict = tuple[Property, str, str]


def _parse_xml(
    source: BinaryIO, keep: bool, on_start: Callable[[Element], None] | None = None
) -> tuple[Element | None, _XmlVerdict | None]:
    """Parse with defusedxml, DTDs forbidden. Returns the root (when ``keep``; else the
    tree is dropped as it is read, so memory stays small) or the reason it was refused.
    ``on_start`` sees each element as it opens (its tag and attributes only)."""
    start = source.tell()
    try:
        root: Element | None = None
        depth = 0
        for event, elem in iterparse(source, events=("start", "end"), forbid_dtd=True,
                                     forbid_entities=True, forbid_external=True):
            if event == "start":
                if root is None:
                    root = elem
                depth += 1
                if on_start is not None:
                    on_start(elem)
            else:
                depth -= 1
                if not keep and depth == 1 and root is not None:
                    root.clear()
        return root, None
    except DTDForbidden as exc:
        return None, _classify_dtd(source, start, exc)
    except (EntitiesForbidden, ExternalReferenceForbidden) as exc:  # not reached with DTDs out
        return None, ("security", "xml_entity", f"The XML declares entities ({_why(exc)}).")
    except ParseError as exc:
        return None, ("usability", "xml_malformed", f"The XML is not well-formed ({exc}).")
    except Exception as exc:  # expat and codec errors on hostile input
        return None, ("usability", "xml_malformed", f"The XML cannot be parsed ({_why(exc)}).")


def _classify_dtd(source: BinaryIO, start: int, first: DTDForbidden) -> _XmlVerdict:
    """Say what the refused DTD does: a second pass allows the DTD itself but still
    forbids entity declarations and external references (defusedxml)."""
    if first.sysid or first.pubid:
        return ("security", "xml_external_entity",
                "The XML's document type declaration refers to an external DTD.")
    try:
        source.seek(start)
        for _ in iterparse(source, events=("end",), forbid_dtd=False, forbid_entities=True,
                           forbid_external=True):
            pass
    except EntitiesForbidden as exc:
        name = str(exc.name)[:64]
        if exc.sysid or exc.pubid:
            return ("security", "xml_external_entity",
                    f"The XML declares the external entity {name!r} in its DTD.")
        return ("security", "xml_entity", f"The XML declares the entity {name!r} in its DTD.")
    except ExternalReferenceForbidden:
        return ("security", "xml_external_entity",
                "The XML's document type declaration refers to an external resource.")
    except Exception:
        pass  # the DTD finding below stands on its own
    return ("security", "xml_dtd",
            "The XML carries a document type declaration (DOCTYPE), which an archived "
            "voucher must not have.")


_XMLDSIG_SIGNATURE: Final = "{http://www.w3.org/2000/09/xmldsig#}Signature"


def _check_xml(fh: BinaryIO, c: _Collector) -> None:
    signed = False

    def look(elem: Element) -> None:
        nonlocal signed
        signed = signed or elem.tag == _XMLDSIG_SIGNATURE

    fh.seek(0)
    _root, verdict = _parse_xml(fh, keep=False, on_start=look)
    if verdict is not None:
        c.add(*verdict)
    c.notes["authenticity"] = NOTE_SIGNED if signed else NOTE_UNSIGNED


# --- images -----------------------------------------------------------------------------


def _check_image(fmt: Format, fh: BinaryIO, size: int, head: bytes, c: _Collector) -> None:
    tail = _tail(fh, size)
    cut = False
    if fmt == "png":
        cut = b"IEND" not in tail
    elif fmt == "jpeg":
        cut = b"\xff\xd9" not in tail
    elif fmt == "gif":
        cut = not tail.rstrip(b"\x00").endswith(b";")
    elif fmt == "tiff" and head[2:4] in (b"*\x00", b"\x00*"):
        order: Literal["little", "big"] = "little" if head.startswith(b"II") else "big"
        ifd = int.from_bytes(head[4:8], order)
        cut = len(head) < 8 or not 8 <= ifd < size
    if cut:
        c.add("integrity", "image_truncated",
              f"The {fmt.upper()} image lacks its end marker or points past its end: it "
              "looks truncated.")


# --- PDF --------------------------------------------------------------------------------

_PDF_HEADER = re.compile(rb"%PDF-[0-9]\.[0-9]")
_PDF_TOKEN = re.compile(rb"/(JavaScript|JS|Launch|ByteRange)(?=[\x00\t\n\x0c\r ()<>\[\]{}/%])")


def _scan_pdf_bytes(fh: BinaryIO) -> set[str]:
    """Names found in the raw bytes (outside compressed streams), read in chunks."""
    found: set[str] = set()
    fh.seek(0)
    carry = b""
    while True:
        chunk = fh.read(_CHUNK)
        if not chunk:
            break
        buf = carry + chunk
        found.update(m.group(1).decode("ascii") for m in _PDF_TOKEN.finditer(buf))
        carry = buf[-16:]
    found.update(m.group(1).decode("ascii") for m in _PDF_TOKEN.finditer(carry + b" "))
    return found


class _PdfFacts:
    def __init__(self) -> None:
        self.javascript: set[tuple[int, int]] = set()
        self.launch: set[tuple[int, int]] = set()
        self.signature = False
        self.truncated = False

    def visit(self, obj: PdfObject, where: tuple[int, int], depth: int = 0) -> None:
        """Look at one object and the direct objects inside it (indirect ones are
        visited on their own)."""
        if depth > MAX_DEPTH:
            return
        if isinstance(obj, DictionaryObject):
            if "/JS" in obj or "/JavaScript" in obj:
                self.javascript.add(where)
            action = dict.get(obj, "/S")
            if isinstance(action, NameObject):
                if action == "/JavaScript":
                    self.javascript.add(where)
                elif action == "/Launch":
                    self.launch.add(where)
            kind = dict.get(obj, "/Type")
            if "/ByteRange" in obj or (isinstance(kind, NameObject) and kind == "/Sig"):
                self.signature = True  # a signature dictionary, not an empty /FT /Sig field
            children: Iterator[PdfObject] = iter(dict.values(obj))
        elif isinstance(obj, ArrayObject):
            children = iter(obj)
        else:
            return
        for child in children:
            if isinstance(child, (DictionaryObject, ArrayObject)):
                self.visit(child, where, depth + 1)


def _walk_pdf(reader: PdfReader, facts: _PdfFacts) -> None:
    refs: list[tuple[int, int]] = []
    for gen, table in reader.xref.items():
        refs.extend((int(idnum), int(gen)) for idnum in table)
    refs.extend((int(idnum), 0) for idnum in reader.xref_objStm)
    refs = sorted(set(refs))
    if len(refs) > MAX_PDF_OBJECTS:
        facts.truncated = True
        refs = refs[:MAX_PDF_OBJECTS]
    for idnum, gen in refs:
        try:
            obj = reader.get_object(IndirectObject(idnum, gen, reader))
        except Exception:
            continue  # one broken object must not stop the scan
        if obj is not None:
            facts.visit(obj, (idnum, gen))
    root = reader.trailer.get("/Root")
    if isinstance(root, IndirectObject):
        try:
            catalog = root.get_object()
        except Exception:
            catalog = None
        if catalog is not None:
            facts.visit(catalog, (root.idnum, root.generation))


def _objects(refs: set[tuple[int, int]]) -> str:
    shown = sorted(refs)[:5]
    text = ", ".join(f"{i} {g}" for i, g in shown)
    more = len(refs) - len(shown)
    noun = "object" if len(refs) == 1 else "objects"
    return f"{noun} {text}" + (f" and {more} more" if more else "")


def _check_pdf(fh: BinaryIO, size: int, head: bytes, c: _Collector) -> None:
    if not head.startswith(b"%PDF-") or not _PDF_HEADER.match(head):
        at = head.find(b"%PDF-")
        c.add("usability", "pdf_bad_header",
              f"The PDF header starts at byte {at}, not at the start of the file."
              if at > 0 else "The PDF header is not of the form %PDF-x.y.")
    if b"%%EOF" not in _tail(fh, size):
        c.add("integrity", "pdf_no_eof",
              f"There is no %%EOF marker in the last {TAIL_BYTES} bytes: the PDF looks "
              "truncated.")
    raw = _scan_pdf_bytes(fh)
    facts = _PdfFacts()
    if size > MAX_PARSE_BYTES:
        c.add("usability", "too_large",
              f"The PDF is larger than {MAX_PARSE_BYTES} bytes and was not parsed.")
    else:
        fh.seek(0)
        try:
            reader = PdfReader(fh, strict=False)
            opened = True
            if reader.is_encrypted:
                opened = reader.decrypt("") != PasswordType.NOT_DECRYPTED
                c.add("security", "pdf_encrypted",
                      "The PDF is encrypted" + (" (it opens without a password)." if opened
                                                else " and needs a password to open."))
                if not opened:
                    c.add("usability", "pdf_needs_password",
                          "The PDF cannot be opened without a password.")
            if opened:
                _walk_pdf(reader, facts)
        except Exception as exc:
            c.add("usability", "pdf_unparsable", f"pypdf cannot parse the PDF ({_why(exc)}).")
    if facts.javascript or {"JavaScript", "JS"} & raw:
        where = _objects(facts.javascript) if facts.javascript else "the file's bytes"
        c.add("security", "pdf_javascript", f"The PDF contains JavaScript ({where}).")
    if facts.launch or "Launch" in raw:
        where = _objects(facts.launch) if facts.launch else "the file's bytes"
        c.add("security", "pdf_launch",
              f"The PDF contains a Launch action, which starts another program ({where}).")
    if facts.truncated:
        c.add("security", "pdf_scan_incomplete",
              f"The PDF has more than {MAX_PDF_OBJECTS} objects; only the first were "
              "searched for actions.")
    signed = facts.signature or "ByteRange" in raw
    c.notes["authenticity"] = NOTE_SIGNED if signed else NOTE_UNSIGNED


# --- OFD (GB/T 33190-2016) --------------------------------------------------------------

_OFD_ROOT: Final = "OFD.xml"

_DIGESTS: Final[Mapping[str, str]] = {
    "1.2.156.10197.1.401": "sm3",
    "sm3": "sm3",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "sha256": "sha256",
    "sha-256": "sha256",
}
"""``References/@CheckMethod`` (OID or name, case-insensitive) → hashlib name."""


class _Unreadable(Exception):
    """A ZIP entry could not be read back (bad CRC, unsupported method, truncated...)."""


def _unsafe_name(name: str) -> bool:
    n = name.replace("\\", "/")
    return (
        n.startswith("/")
        or re.match(r"[A-Za-z]:", n) is not None
        or ".." in n.split("/")
        or "\x00" in n
    )


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(el: Element, name: str) -> list[Element]:
    return [child for child in el if _local(child.tag) == name]


def _child_text(el: Element, name: str) -> str | None:
    for child in _children(el, name):
        text = (child.text or "").strip()
        if text:
            return text
    return None


def _resolve(ref: str, base_dir: str) -> str | None:
    """An ``ST_Loc`` as a package path (no leading ``/``), or None when it leaves the
    package or is empty."""
    r = ref.strip().replace("\\", "/")
    if not r:
        return None
    joined = r.lstrip("/") if r.startswith("/") else posixpath.join(base_dir, r)
    norm = posixpath.normpath(joined)
    if norm in ("", ".", "..") or norm.startswith(("../", "/")):
        return None
    return norm


class _Package:
    """An opened OFD package: its entries by normalised path, read within limits."""

    def __init__(self, zf: zipfile.ZipFile, c: _Collector) -> None:
        self.zf = zf
        self.c = c
        self.parts: dict[str, zipfile.ZipInfo] = {}
        for info in zf.infolist():
            if info.is_dir() or _unsafe_name(info.filename):
                continue
            self.parts[posixpath.normpath(info.filename.replace("\\", "/"))] = info
        self.signed = False
        self.checked = 0
        self.algorithms: set[str] = set()

    def find(self, ref: str, base_dir: str) -> tuple[str | None, str]:
        """(the part a reference names, or None; the path to name in a finding)."""
        candidates = [p for p in (_resolve(ref, base_dir), _resolve(ref, "")) if p]
        for path in candidates:
            if path in self.parts:
                return path, path
        return None, candidates[0] if candidates else ref.strip()

    def _chunks(self, path: str) -> Iterator[bytes]:
        info = self.parts[path]
        if info.flag_bits & 0x1:
            raise _Unreadable("the entry is encrypted")
        try:
            with self.zf.open(info) as stream:
                while chunk := stream.read(_CHUNK):
                    yield chunk
        except Exception as exc:
            raise _Unreadable(_why(exc)) from exc

    def digest(self, path: str, algorithm: str) -> bytes | None:
        h = hashlib.new(algorithm)
        try:
            for chunk in self._chunks(path):
                h.update(chunk)
        except _Unreadable as exc:
            self._unreadable(path, str(exc))
            return None
        return h.digest()

    def xml(self, path: str, keep: bool = True) -> Element | None:
        """Parse one XML part; findings for a refused or oversized part carry its path."""
        if self.parts[path].file_size > MAX_XML_PART:
            self.c.add("usability", "too_large",
                       f"The XML part is larger than {MAX_XML_PART} bytes and was not parsed.",
                       path)
            return None
        try:
            data = b"".join(self._chunks(path))
        except _Unreadable as exc:
            self._unreadable(path, str(exc))
            return None
        root, verdict = _parse_xml(io.BytesIO(data), keep)
        if verdict is not None:
            self.c.add(*verdict, path)
            return None
        return root

    def _unreadable(self, path: str, why: str) -> None:
        self.c.add("integrity", "zip_entry_corrupt",
                   f"The part cannot be read back intact ({why}).", path)

    def missing(self, path: str, referrer: str) -> None:
        self.c.add("integrity", "ofd_part_missing",
                   f"{path}, referenced by {referrer}, is not in the package.", path)


def _check_zip(fh: BinaryIO, c: _Collector) -> tuple[Format, bool]:
    """The container checks, then the OFD checks when there is an ``OFD.xml``. Returns
    the format and whether the container could be opened and was not refused."""
    fh.seek(0)
    try:
        zf = zipfile.ZipFile(fh)
        infos = zf.infolist()
    except Exception as exc:
        c.add("usability", "zip_corrupt", f"The ZIP container cannot be opened ({_why(exc)}).")
        return "zip", False
    with zf:
        if len(infos) > MAX_ZIP_ENTRIES:
            c.add("security", "zip_too_large",
                  f"The ZIP container has {len(infos)} entries, more than {MAX_ZIP_ENTRIES}.")
            return "zip", False
        total = sum(info.file_size for info in infos)
        if total > MAX_ZIP_TOTAL:
            c.add("security", "zip_too_large",
                  f"The ZIP entries would inflate to {total} bytes, more than {MAX_ZIP_TOTAL}.")
            return "zip", False
        seen: Counter[str] = Counter()
        for info in infos:
            name = info.filename
            seen[name] += 1
            if _unsafe_name(name):
                c.add("security", "zip_unsafe_path",
                      "The ZIP entry's name is absolute or climbs out of the package with "
                      "'..'.", name)
            elif seen[name] == 2:
                c.add("security", "zip_duplicate_entry",
                      "The ZIP holds two entries of this name; readers may differ in which "
                      "one they show.", name)
            if info.flag_bits & 0x1:
                c.add("security", "zip_encrypted", "The ZIP entry is encrypted.", name)
        if _OFD_ROOT not in {info.filename for info in infos}:
            return "zip", True  # the media type check says what is wrong with that
        _check_ofd(_Package(zf, c), c)
    return "ofd", True


def _check_ofd(pkg: _Package, c: _Collector) -> None:
    for path in sorted(pkg.parts):
        if path.lower().endswith(".xml") and path != _OFD_ROOT:
            pkg.xml(path, keep=False)
    root = pkg.xml(_OFD_ROOT)
    if root is None:
        c.notes["authenticity"] = "not examined: OFD.xml cannot be parsed"
        return
    if _local(root.tag) != "OFD":
        c.add("usability", "ofd_malformed",
              f"The root element of OFD.xml is {_local(root.tag)!r}, not 'OFD'.", _OFD_ROOT)
    bodies = _children(root, "DocBody")
    if not bodies:
        c.add("usability", "ofd_malformed", "OFD.xml has no DocBody.", _OFD_ROOT)
    for body in bodies:
        doc_root = _child_text(body, "DocRoot")
        if doc_root is None:
            c.add("usability", "ofd_malformed", "A DocBody in OFD.xml has no DocRoot.",
                  _OFD_ROOT)
        else:
            found, shown = pkg.find(doc_root, "")
            if found is None:
                pkg.missing(shown, _OFD_ROOT)
        signatures = _child_text(body, "Signatures")
        if signatures is not None:
            pkg.signed = True  # declared, even if the list turns out unreadable
            _check_signatures(pkg, signatures, c)
    c.notes["authenticity"] = NOTE_SIGNED if pkg.signed else NOTE_UNSIGNED
    if pkg.checked:
        algos = ", ".join(sorted(a.upper() for a in pkg.algorithms))
        c.notes["integrity"] = f"digests of {pkg.checked} signed parts checked ({algos})"
    elif not pkg.signed:
        c.notes["integrity"] = "no signature, so no part digests to check"


def _check_signatures(pkg: _Package, ref: str, c: _Collector) -> None:
    """``Signatures.xml``: the list of signatures (GB/T 33190, 数字签名)."""
    path, shown = pkg.find(ref, "")
    if path is None:
        pkg.missing(shown, _OFD_ROOT)
        return
    listing = pkg.xml(path)
    if listing is None:
        return
    base = posixpath.dirname(path)
    for entry in _children(listing, "Signature"):
        loc = entry.get("BaseLoc", "").strip()
        if not loc:
            c.add("integrity", "ofd_bad_signature",
                  "A Signature entry has no BaseLoc, so its signature cannot be found.", path)
            continue
        sig_path, sig_shown = pkg.find(loc, base)
        if sig_path is None:
            pkg.missing(sig_shown, path)
            continue
        _check_signature(pkg, sig_path, c)


def _check_signature(pkg: _Package, path: str, c: _Collector) -> None:
    """``Signature.xml``: each ``Reference``'s ``CheckValue`` against the part it names
    (GB/T 33190, 签名描述文件)."""
    sig = pkg.xml(path)
    if sig is None:
        return
    base = posixpath.dirname(path)
    signed_value = _child_text(sig, "SignedValue")
    if signed_value is not None:
        found, shown = pkg.find(signed_value, base)
        if found is None:
            pkg.missing(shown, path)
    references = [refs for info in _children(sig, "SignedInfo")
                  for refs in _children(info, "References")]
    if not any(_children(refs, "Reference") for refs in references):
        c.add("integrity", "ofd_bad_signature", "The signature lists no signed parts.", path)
        return
    for refs in references:
        _check_references(pkg, path, refs, c)


def _check_references(pkg: _Package, path: str, refs: Element, c: _Collector) -> None:
    base = posixpath.dirname(path)
    method = (refs.get("CheckMethod") or "").strip()
    algorithm = _DIGESTS.get(method.lower())
    if algorithm is None:
        c.add("integrity", "ofd_digest_unsupported",
              f"The signature's digest method {method!r} is not SM3 or SHA-256, so its "
              "digests cannot be checked." if method else
              "The signature names no digest method (CheckMethod), so its digests cannot "
              "be checked.", path)
        return
    for ref in _children(refs, "Reference"):
        file_ref = (ref.get("FileRef") or "").strip()
        check_value = "".join((_child_text(ref, "CheckValue") or "").split())
        if not file_ref or not check_value:
            c.add("integrity", "ofd_bad_signature",
                  "A Reference lacks its FileRef or its CheckValue.", path)
            continue
        try:
            expected = base64.b64decode(check_value, validate=True)
        except (binascii.Error, ValueError):
            c.add("integrity", "ofd_bad_signature",
                  f"The CheckValue for {file_ref} is not base64.", path)
            continue
        part, shown = pkg.find(file_ref, base)
        if part is None:
            pkg.missing(shown, path)
            continue
        actual = pkg.digest(part, algorithm)
        if actual is None:
            continue
        pkg.checked += 1
        pkg.algorithms.add(algorithm)
        if not hmac.compare_digest(actual, expected):
            c.add("integrity", "ofd_digest_mismatch",
                  f"The {algorithm.upper()} digest of {part} does not match the CheckValue in "
                  f"{path}: the part changed after it was signed.", part)


# --- entry point ------------------------------------------------------------------------


def check_file(path: Path, media_type: str) -> CheckResult:
    """Run the four-property check on the file at ``path``, whose record declares
    ``media_type``. Never raises for the file's content; an unreadable file is the
    finding ``unreadable``."""
    c = _Collector()
    fmt: Format = "unknown"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        c.add("usability", "unreadable",
              f"The file cannot be opened ({exc.strerror or type(exc).__name__}).")
        return c.result(fmt)
    try:
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                c.add("usability", "unreadable", "The path is not a regular file.")
                return c.result(fmt)
            head = fh.read(HEAD_BYTES)
            fmt = _sniff(head)
            opened = True
            if fmt == "pdf":
                _check_pdf(fh, st.st_size, head, c)
            elif fmt == "zip":
                fmt, opened = _check_zip(fh, c)
            elif fmt == "xml":
                _check_xml(fh, c)
            elif fmt in ("png", "jpeg", "gif", "tiff"):
                _check_image(fmt, fh, st.st_size, head, c)
            elif fmt == "unknown" and _allowed_format(media_type) == "text" and _is_text(fh):
                fmt = "text"
            _check_media_type(fmt, media_type, c, opened)
            c.notes.setdefault("authenticity", NOTE_UNSIGNED)
    except OSError as exc:
        c.add("usability", "unreadable",
              f"The file cannot be read ({exc.strerror or type(exc).__name__}).")
    return c.result(fmt)
