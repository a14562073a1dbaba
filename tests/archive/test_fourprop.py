"""四性检测 of one voucher file (archive/_fourprop.py): the OFD vectors of ofdrw (signed
and intact, signed with Document.xml edited, unsigned), PDFs written with pypdf or by hand
(JavaScript, Launch, encryption, truncation, names hidden in a compressed object stream),
XML with DTD tricks, image magic, hostile ZIPs and media type mismatches. Every failing
case names the property, the reason code and, in a package, the part."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from pypdf import PdfWriter
from pypdf.actions import JavaScript
from pypdf.generic import DictionaryObject, NameObject, TextStringObject

from archive import _fourprop
from archive._fourprop import CheckResult, Finding, check_file
from tests._vectors import vectors_dir

OFD = "application/ofd"
PDF = "application/pdf"
XML = "application/xml"


def _ofd(name: str) -> Path:
    return vectors_dir() / "ofd" / name


def _codes(result: CheckResult) -> set[tuple[str, str, str | None]]:
    return {(f.property, f.code, f.part) for f in result.findings}


def _only(result: CheckResult, prop: str, code: str, part: str | None = None) -> Finding:
    """The result has exactly one finding, of this property, code and part."""
    assert _codes(result) == {(prop, code, part)}, result.findings
    assert not result.ok and not result.passed(prop)  # type: ignore[arg-type]
    return result.findings[0]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- OFD vectors ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["e-invoice-signed-intact.ofd", "digital-sign-intact.ofd"])
def test_signed_intact_ofd_passes_with_signature_noted(name: str) -> None:
    result = check_file(_ofd(name), OFD)
    assert result.format == "ofd" and result.ok and result.findings == ()
    assert result.notes["authenticity"] == "signature present, not verified"
    assert "(SM3)" in result.notes["integrity"]


def test_edited_document_fails_integrity_naming_the_part() -> None:
    result = check_file(_ofd("e-invoice-signed-document-edited.ofd"), OFD)
    found = _only(result, "integrity", "ofd_digest_mismatch", "Doc_0/Document.xml")
    assert "Doc_0/Document.xml" in found.detail and "SM3" in found.detail
    assert result.passed("authenticity") and result.passed("security")
    assert result.notes["authenticity"] == "signature present, not verified"


def test_unsigned_ofd_passes_integrity_without_signature() -> None:
    result = check_file(_ofd("helloworld-unsigned.ofd"), OFD)
    assert result.format == "ofd" and result.ok
    assert result.notes["authenticity"] == "no signature"


def test_ofd_declared_as_pdf_is_a_media_type_mismatch() -> None:
    found = _only(check_file(_ofd("helloworld-unsigned.ofd"), PDF),
                  "usability", "media_type_mismatch")
    assert "OFD" in found.detail and "application/pdf" in found.detail


# --- OFD packages built from the vectors ------------------------------------------------


def _repack(
    tmp_path: Path,
    source: str,
    change: Callable[[str, bytes], bytes | None] = lambda _name, data: data,
    extra: dict[str, bytes] | None = None,
) -> Path:
    """A copy of an OFD vector; ``change`` may rewrite or (returning None) drop entries."""
    out = io.BytesIO()
    with zipfile.ZipFile(_ofd(source)) as zin, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return _write(tmp_path, "x.ofd", out.getvalue())


def test_missing_signed_part_fails_integrity(tmp_path: Path) -> None:
    path = _repack(tmp_path, "e-invoice-signed-intact.ofd",
                   lambda name, data: None if name == "Doc_0/Res/qr.png" else data)
    found = _only(check_file(path, OFD), "integrity", "ofd_part_missing", "Doc_0/Res/qr.png")
    assert "Doc_0/Signs/Sign_0/Signature.xml" in found.detail


def test_missing_signature_file_fails_integrity(tmp_path: Path) -> None:
    sig = "Doc_0/Signs/Sign_0/Signature.xml"
    path = _repack(tmp_path, "digital-sign-intact.ofd",
                   lambda name, data: None if name == sig else data)
    result = check_file(path, OFD)
    _only(result, "integrity", "ofd_part_missing", sig)
    assert result.notes["authenticity"] == "signature present, not verified"


def test_unsupported_digest_method_is_an_integrity_finding(tmp_path: Path) -> None:
    sig = "Doc_0/Signs/Sign_0/Signature.xml"
    path = _repack(tmp_path, "digital-sign-intact.ofd",
                   lambda name, data: data.replace(b'CheckMethod="SM3"', b'CheckMethod="MD2"')
                   if name == sig else data)
    _only(check_file(path, OFD), "integrity", "ofd_digest_unsupported", sig)


def test_sha256_check_values_are_checked(tmp_path: Path) -> None:
    """A signature whose References use SHA-256 (by OID), made from the SM3 one."""
    sig = "Doc_0/Signs/Sign_0/Signature.xml"
    with zipfile.ZipFile(_ofd("digital-sign-intact.ofd")) as z:
        parts = {n: z.read(n) for n in z.namelist()}

    def sha256_refs(name: str, data: bytes) -> bytes:
        if name != sig:
            return data
        def value(m: re.Match[bytes]) -> bytes:
            digest = hashlib.sha256(parts[m.group(1).decode()[1:]]).digest()
            return m.group(0).split(b"<ofd:CheckValue>")[0] + b"<ofd:CheckValue>" + \
                base64.b64encode(digest) + b"</ofd:CheckValue>"
        data = data.replace(b'CheckMethod="SM3"', b'CheckMethod="2.16.840.1.101.3.4.2.1"')
        return re.sub(rb'FileRef="([^"]+)"><ofd:CheckValue>[^<]*</ofd:CheckValue>', value, data)

    result = check_file(_repack(tmp_path, "digital-sign-intact.ofd", sha256_refs), OFD)
    assert result.ok and result.notes["integrity"] == "digests of 4 signed parts checked (SHA256)"


def test_dtd_in_an_ofd_part_is_a_security_finding(tmp_path: Path) -> None:
    doctype = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]>'
    path = _repack(tmp_path, "helloworld-unsigned.ofd",
                   lambda name, data: doctype + data.split(b"?>", 1)[1]
                   if name == "Doc_0/PublicRes.xml" else data)
    _only(check_file(path, OFD), "security", "xml_entity", "Doc_0/PublicRes.xml")


def test_zip_entry_climbing_out_is_a_security_finding(tmp_path: Path) -> None:
    path = _repack(tmp_path, "helloworld-unsigned.ofd", extra={"../evil": b"x"})
    _only(check_file(path, OFD), "security", "zip_unsafe_path", "../evil")


def test_absolute_zip_entry_is_a_security_finding(tmp_path: Path) -> None:
    path = _repack(tmp_path, "helloworld-unsigned.ofd", extra={"/etc/cron.d/x": b"x"})
    _only(check_file(path, OFD), "security", "zip_unsafe_path", "/etc/cron.d/x")


def test_zip_inflating_past_the_limit_is_refused(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fourprop, "MAX_ZIP_TOTAL", 1000)
    result = check_file(_ofd("helloworld-unsigned.ofd"), OFD)
    _only(result, "security", "zip_too_large")


def test_corrupt_compressed_part_is_an_integrity_finding(tmp_path: Path) -> None:
    data = bytearray(_ofd("helloworld-unsigned.ofd").read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo("Doc_0/Document.xml")
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:
                                                       info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.compress_size // 2] ^= 0xFF
    path = _write(tmp_path, "x.ofd", bytes(data))
    result = check_file(path, OFD)
    assert ("integrity", "zip_entry_corrupt", "Doc_0/Document.xml") in _codes(result)
    assert {f.property for f in result.findings} == {"integrity"}


def test_zip_without_ofd_xml(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("Doc_0/Document.xml", "<a/>")
    path = _write(tmp_path, "x.ofd", out.getvalue())
    result = check_file(path, OFD)
    assert result.format == "zip"
    _only(result, "usability", "ofd_no_root")
    _only(check_file(path, PDF), "usability", "media_type_mismatch")


def test_broken_zip_is_a_usability_finding(tmp_path: Path) -> None:
    data = _ofd("helloworld-unsigned.ofd").read_bytes()[:200]
    _only(check_file(_write(tmp_path, "x.ofd", data), OFD), "usability", "zip_corrupt")


# --- PDF --------------------------------------------------------------------------------


def _pdf(tmp_path: Path, build: Callable[[PdfWriter], None] = lambda _w: None) -> Path:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    build(writer)
    out = io.BytesIO()
    writer.write(out)
    return _write(tmp_path, "x.pdf", out.getvalue())


def test_clean_pdf_passes(tmp_path: Path) -> None:
    result = check_file(_pdf(tmp_path), PDF)
    assert result.format == "pdf" and result.ok
    assert result.notes["authenticity"] == "no signature"


def test_pdf_with_javascript(tmp_path: Path) -> None:
    path = _pdf(tmp_path, lambda w: w.add_open_action(JavaScript("app.alert('hi');")))
    _only(check_file(path, PDF), "security", "pdf_javascript")


def test_pdf_with_launch_open_action(tmp_path: Path) -> None:
    def launch(w: PdfWriter) -> None:
        w.root_object[NameObject("/OpenAction")] = DictionaryObject({
            NameObject("/S"): NameObject("/Launch"),
            NameObject("/F"): TextStringObject("calc.exe"),
        })
    _only(check_file(_pdf(tmp_path, launch), PDF), "security", "pdf_launch")


def test_encrypted_pdf_needing_a_password(tmp_path: Path) -> None:
    result = check_file(_pdf(tmp_path, lambda w: w.encrypt("user", "owner")), PDF)
    assert _codes(result) == {("security", "pdf_encrypted", None),
                              ("usability", "pdf_needs_password", None)}


def test_encrypted_pdf_opening_without_password(tmp_path: Path) -> None:
    path = _pdf(tmp_path, lambda w: w.encrypt("", "owner", algorithm="AES-128"))
    _only(check_file(path, PDF), "security", "pdf_encrypted")


def test_truncated_pdf(tmp_path: Path) -> None:
    data = _pdf(tmp_path).read_bytes()
    result = check_file(_write(tmp_path, "cut.pdf", data[: data.rindex(b"%%EOF")]), PDF)
    assert ("integrity", "pdf_no_eof", None) in _codes(result)
    assert {f.property for f in result.findings} <= {"integrity", "usability"}


def test_pdf_with_junk_before_its_header(tmp_path: Path) -> None:
    data = b"JUNK\n" + _pdf(tmp_path).read_bytes()
    found = _only(check_file(_write(tmp_path, "y.pdf", data), PDF), "usability", "pdf_bad_header")
    assert "byte 5" in found.detail


def test_pdf_that_does_not_parse(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.pdf", b"%PDF-1.7\n garbage \n%%EOF\n")
    _only(check_file(path, PDF), "usability", "pdf_unparsable")


def test_pdf_declared_as_ofd_is_a_media_type_mismatch(tmp_path: Path) -> None:
    found = _only(check_file(_pdf(tmp_path), OFD), "usability", "media_type_mismatch")
    assert "PDF" in found.detail and "application/ofd" in found.detail


def _handmade_pdf(catalog_extra: bytes, objects: dict[int, bytes],
                  compressed: dict[int, bytes] | None = None) -> bytes:
    """A PDF 1.5 file with a cross-reference stream: objects 1 (catalog) and 2 (pages),
    ``objects`` as plain objects, ``compressed`` inside one FlateDecode object stream."""
    plain = {1: b"<< /Type /Catalog /Pages 2 0 R " + catalog_extra + b" >>",
             2: b"<< /Type /Pages /Kids [] /Count 0 >>", **objects}
    compressed = compressed or {}
    stm_num = max([*plain, *compressed]) + 1
    if compressed:
        body, offsets = b"", []
        for obj in compressed.values():
            offsets.append(len(body))
            body += obj + b" "
        header = b" ".join(b"%d %d" % (n, o) for n, o in zip(compressed, offsets, strict=True))
        raw = header + b" " + body
        data = zlib.compress(raw)
        plain[stm_num] = (b"<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>"
                          b"\nstream\n" % (len(compressed), len(header) + 1, len(data))
                          + data + b"\nendstream")
    xref_num = max([*plain, *compressed]) + 1
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    where: dict[int, int] = {}
    for num in sorted(plain):
        where[num] = len(out)
        out += b"%d 0 obj\n" % num + plain[num] + b"\nendobj\n"
    where[xref_num] = len(out)
    rows = b""
    for num in range(xref_num + 1):
        if num in where:
            rows += struct.pack(">BIH", 1, where[num], 0)
        elif num in compressed:
            rows += struct.pack(">BIH", 2, stm_num, list(compressed).index(num))
        else:
            rows += struct.pack(">BIH", 0, 0, 65535)
    out += (b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Length %d >>\nstream\n"
            % (xref_num, xref_num + 1, len(rows)) + rows + b"\nendstream\nendobj\n")
    out += b"startxref\n%d\n%%%%EOF\n" % where[xref_num]
    return bytes(out)


def test_handmade_pdf_is_clean(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.pdf", _handmade_pdf(b"", {}, {3: b"<< /Foo /Bar >>"}))
    assert check_file(path, PDF).ok


@pytest.mark.parametrize(("action", "code"), [
    (b"<< /S /Launch /F (calc.exe) >>", "pdf_launch"),
    (b"<< /S /JavaScript /JS (app.alert(1)) >>", "pdf_javascript"),
])
def test_action_inside_a_compressed_object_stream(tmp_path: Path, action: bytes,
                                                  code: str) -> None:
    """The raw bytes do not show it: only parsing the object stream finds it."""
    data = _handmade_pdf(b"/OpenAction 3 0 R", {}, {3: action})
    assert b"Launch" not in data and b"JavaScript" not in data
    found = _only(check_file(_write(tmp_path, "x.pdf", data), PDF), "security", code)
    assert "object 3 0" in found.detail


def test_action_name_written_with_hex_escapes(tmp_path: Path) -> None:
    data = _handmade_pdf(b"/OpenAction 3 0 R", {3: b"<< /S /L#61unch /F (calc.exe) >>"})
    _only(check_file(_write(tmp_path, "x.pdf", data), PDF), "security", "pdf_launch")


def test_annotation_javascript_action(tmp_path: Path) -> None:
    data = _handmade_pdf(b"", {3: b"<< /Type /Annot /Subtype /Link "
                                  b"/A << /S /JavaScript /JS 4 0 R >> >>",
                               4: b"(app.launchURL('x'))"})
    _only(check_file(_write(tmp_path, "x.pdf", data), PDF), "security", "pdf_javascript")


def test_signed_pdf_notes_an_unverified_signature(tmp_path: Path) -> None:
    data = _handmade_pdf(b"/AcroForm << /Fields [3 0 R] /SigFlags 3 >>", {
        3: b"<< /FT /Sig /T (Signature1) /V 4 0 R >>",
        4: b"<< /Type /Sig /Filter /Adobe.PPKLite /ByteRange [0 10 20 30] /Contents <00> >>",
    })
    result = check_file(_write(tmp_path, "x.pdf", data), PDF)
    assert result.ok and result.notes["authenticity"] == "signature present, not verified"


# --- XML --------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b'<?xml version="1.0" encoding="UTF-8"?>\n<receipt><amount>1.00</amount></receipt>',
    b"\xef\xbb\xbf  \n<receipt/>",
    '<?xml version="1.0" encoding="UTF-16"?><票据>一</票据>'.encode("utf-16"),
])
def test_clean_xml_passes(tmp_path: Path, data: bytes) -> None:
    result = check_file(_write(tmp_path, "x.xml", data), XML)
    assert result.format == "xml" and result.ok


def test_media_types_are_case_insensitive(tmp_path: Path) -> None:
    assert check_file(_write(tmp_path, "x.xml", b"<a/>"), "TEXT/XML").ok


def test_svg_is_not_an_archival_xml_type(tmp_path: Path) -> None:
    _only(check_file(_write(tmp_path, "x.svg", b"<svg/>"), "image/svg+xml"),
          "usability", "media_type_unsupported")


def test_xml_signature_is_noted(tmp_path: Path) -> None:
    data = (b'<receipt><Signature xmlns="http://www.w3.org/2000/09/xmldsig#">'
            b"<SignedInfo/></Signature></receipt>")
    result = check_file(_write(tmp_path, "x.xml", data), XML)
    assert result.ok and result.notes["authenticity"] == "signature present, not verified"


def test_malformed_xml(tmp_path: Path) -> None:
    found = _only(check_file(_write(tmp_path, "x.xml", b"<a><b></a>"), XML),
                  "usability", "xml_malformed")
    assert "line 1" in found.detail


@pytest.mark.parametrize(("data", "code"), [
    (b"<!DOCTYPE a><a/>", "xml_dtd"),
    (b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>', "xml_entity"),
    (b'<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>',
     "xml_external_entity"),
    (b'<!DOCTYPE a SYSTEM "http://example.invalid/a.dtd"><a/>', "xml_external_entity"),
    (b'<!DOCTYPE a [<!ENTITY a "aa"><!ENTITY b "&a;&a;">]><a>&b;</a>', "xml_entity"),
])
def test_xml_dtd_and_entities_are_security_findings(tmp_path: Path, data: bytes,
                                                    code: str) -> None:
    _only(check_file(_write(tmp_path, "x.xml", data), XML), "security", code)


# --- images, unknown content, unreadable files ------------------------------------------

PNG = (b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17
       + b"\x00\x00\x00\x00IEND\xaeB`\x82")
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32 + b"\xff\xd9"
TIFF = b"II*\x00\x08\x00\x00\x00" + b"\x00\x00" + b"\x00" * 4
GIF = b"GIF89a" + b"\x00" * 16 + b";"


@pytest.mark.parametrize(("data", "media_type", "fmt"), [
    (PNG, "image/png", "png"),
    (JPEG, "image/jpeg", "jpeg"),
    (TIFF, "image/tiff", "tiff"),
    (GIF, "image/gif", "gif"),
])
def test_images_by_magic(tmp_path: Path, data: bytes, media_type: str, fmt: str) -> None:
    result = check_file(_write(tmp_path, "img", data), media_type)
    assert result.format == fmt and result.ok


def test_truncated_png(tmp_path: Path) -> None:
    _only(check_file(_write(tmp_path, "img", PNG[:-12]), "image/png"),
          "integrity", "image_truncated")


def test_png_declared_as_jpeg(tmp_path: Path) -> None:
    found = _only(check_file(_write(tmp_path, "img", PNG), "image/jpeg"),
                  "usability", "media_type_mismatch")
    assert "PNG" in found.detail and "image/jpeg" in found.detail


def test_unknown_bytes(tmp_path: Path) -> None:
    result = check_file(_write(tmp_path, "x.bin", b"\x00\x01garbage" * 10), PDF)
    assert result.format == "unknown"
    _only(result, "usability", "unknown_format")


def test_empty_file_is_unknown(tmp_path: Path) -> None:
    _only(check_file(_write(tmp_path, "x", b""), PDF), "usability", "unknown_format")


def test_undeclarable_media_type(tmp_path: Path) -> None:
    _only(check_file(_pdf(tmp_path), "application/octet-stream"),
          "usability", "media_type_unsupported")


def test_missing_file_and_directory_are_unreadable(tmp_path: Path) -> None:
    _only(check_file(tmp_path / "absent.pdf", PDF), "usability", "unreadable")
    _only(check_file(tmp_path, PDF), "usability", "unreadable")


# --- the stored form --------------------------------------------------------------------


def test_to_json_is_plain_sorted_and_stable(tmp_path: Path) -> None:
    path = _repack(tmp_path, "e-invoice-signed-document-edited.ofd", extra={"../evil": b"x"})
    first = check_file(path, PDF).to_json()
    again = check_file(path, PDF).to_json()
    assert first == again
    text = json.dumps(first, sort_keys=True, ensure_ascii=False)
    assert str(tmp_path) not in text and "." not in str(first["version"])
    assert first["ok"] is False and first["format"] == "ofd" and first["version"] == 2
    assert list(first["properties"]) == sorted(first["properties"])  # type: ignore[call-overload]
    findings = first["findings"]
    assert isinstance(findings, list)
    assert [(f["property"], f["code"], f["part"]) for f in findings] == [
        ("integrity", "ofd_digest_mismatch", "Doc_0/Document.xml"),
        ("usability", "media_type_mismatch", None),
        ("security", "zip_unsafe_path", "../evil"),
    ]
    assert all(sorted(f) == ["code", "detail", "part", "property"] for f in findings)

    def plain(value: object) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, (str, bool, int))

    assert plain(first)


def test_many_findings_of_one_kind_are_capped(tmp_path: Path) -> None:
    extra = {f"../evil{i}": b"x" for i in range(_fourprop.MAX_LISTED + 5)}
    result = check_file(_repack(tmp_path, "helloworld-unsigned.ofd", extra=extra), OFD)
    assert len(result.findings) == _fourprop.MAX_LISTED + 1
    assert {f.code for f in result.findings} == {"zip_unsafe_path"}
    assert [f.part for f in result.findings if f.part is None] == [None]
    assert "5 more findings of this kind are not listed." in {f.detail for f in result.findings}
