"""Sample voucher files for the demo, the benchmarks and the tests: small, valid documents.

:func:`sample_pdf` writes a one-page PDF 1.4 (ISO 32000-1 §7.5: header, body of
indirect objects, cross-reference table with exact byte offsets, trailer, ``%%EOF``)
showing one line of ASCII text, so that every sample voucher passes the 四性 check as a
real one would and differs from every other by its text.
"""

from __future__ import annotations


def _pdf_string(text: str) -> str:
    """``text`` as a PDF literal string (ISO 32000-1 §7.3.4.2), ASCII only."""
    safe = text.encode("ascii", "replace").decode()
    return "(" + safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def sample_pdf(text: str) -> bytes:
    """A valid one-page PDF that shows ``text`` (non-ASCII characters become ``?``)."""
    content = f"BT /F1 12 Tf 20 50 Td {_pdf_string(text)} Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 420 100] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)
