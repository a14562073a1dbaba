"""The 四性 check at ingest and on demand (FORMAT.md §11.2): ``control.voucher_check``
entries, ``VOUCHER_DEFECT`` breaks, retention minimums, on both backends via the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from tests._cli import h, invoke, jok, ok
from tests._vectors import vectors_dir
from tests.reconcile._blackbox import R, T, assessment, write_jsonl

AS_OF = "2026-11-30"


def _voucher(d: Path, vid: str, src: Path | bytes, media: str, kind: str = "fiscal_receipt",
             retention: str = "30y") -> dict[str, Any]:
    body = src if isinstance(src, bytes) else src.read_bytes()
    name = f"{vid}.bin"
    (d / name).write_bytes(body)
    return {"type": f"archive.{kind}", "id": vid, "region": R, "occurred_at": T,
            "sha256": hashlib.sha256(body).hexdigest(), "media_type": media,
            "size": len(body), "file": name, "refs": ["CA-1"], "retention": retention}


def _home(tmp: Path, db: str) -> tuple[Path, Path]:
    home = tmp / "home"
    ok("init", *h(home, db), "--origin", "check.example/ledger")
    d = tmp / "in"
    d.mkdir()
    return home, d


def _ingest(home: Path, db: str, d: Path, recs: list[dict[str, Any]], code: int) -> Any:
    return jok("ingest", str(write_jsonl(d / f"b{len(list(d.iterdir()))}.jsonl", recs)),
               *h(home, db), code=code)


def _defects(home: Path, db: str) -> list[dict[str, Any]]:
    res = invoke("reconcile", *h(home, db), "--as-of", AS_OF, "--json")
    assert res.exit_code in (0, 1), res.output
    return [b for b in json.loads(res.stdout)["breaks"] if b["code"] == "VOUCHER_DEFECT"]


def test_ofd_vectors_at_ingest(tmp_path: Path, db_url: str) -> None:
    """The intact e-invoice passes; the edited one fails on integrity naming Document.xml,
    is still appended (never lost), named by the ingest and is one VOUCHER_DEFECT break."""
    home, d = _home(tmp_path, db_url)
    ofd = vectors_dir() / "ofd"
    good = _ingest(home, db_url, d, [
        assessment("CA-1"),
        _voucher(d, "FR-GOOD", ofd / "e-invoice-signed-intact.ofd", "application/ofd")], 0)
    assert good["voucher_defects"] == [] and good["appended"] == 2
    bad = _ingest(home, db_url, d, [
        _voucher(d, "FR-EDIT", ofd / "e-invoice-signed-document-edited.ofd",
                 "application/ofd")], 0)
    assert bad["appended"] == 1
    assert [(x["record"], x["property"], x["code"]) for x in bad["voucher_defects"]] == [
        ("FR-EDIT", "integrity", "ofd_digest_mismatch")]
    assert bad["voucher_defects"][0]["part"].endswith("Document.xml")
    (brk,) = _defects(home, db_url)
    assert brk["records"] == ["FR-EDIT"] and brk["field"] == "integrity"
    assert "Document.xml" in brk["message"] and brk["severity"] == "medium"
    shown = jok("archive", "check", *h(home, db_url), "FR-GOOD")
    (res,) = shown["results"]
    assert res["ok"] and res["format"] == "ofd"
    assert res["notes"]["authenticity"] == "signature present, not verified"


def test_media_type_and_retention_findings(tmp_path: Path, db_url: str) -> None:
    home, d = _home(tmp_path, db_url)
    from archive import sample_pdf

    out = _ingest(home, db_url, d, [
        assessment("CA-1"),
        _voucher(d, "FR-PDF-AS-OFD", sample_pdf("a"), "application/ofd"),
        _voucher(d, "FR-10Y", sample_pdf("b"), "application/pdf", retention="10y"),
        _voucher(d, "AF-30Y", sample_pdf("c"), "application/pdf", kind="application_form"),
        _voucher(d, "FR-OK", sample_pdf("d"), "application/pdf")], 0)
    got = {(x["record"], x["property"], x["code"]) for x in out["voucher_defects"]}
    assert got == {("FR-PDF-AS-OFD", "usability", "media_type_mismatch"),
                   ("FR-10Y", "retention", "retention_below_minimum"),
                   ("AF-30Y", "retention", "retention_below_minimum")}
    fields = {b["records"][0]: b["field"] for b in _defects(home, db_url)}
    assert fields == {"FR-PDF-AS-OFD": "usability", "FR-10Y": "retention",
                      "AF-30Y": "retention"}
    res = invoke("ingest", str(write_jsonl(d / "again.jsonl", [
        _voucher(d, "FR-JS", sample_pdf("e").replace(b"/Type /Catalog",
                                                     b"/Type /Catalog /OpenAction << /S "
                                                     b"/JavaScript /JS (app.alert(1)) >>"),
                 "application/pdf")])), *h(home, db_url))
    assert res.exit_code == 0 and "FR-JS: security:" in res.stderr, res.output


def test_check_on_demand_records_and_clears(tmp_path: Path, db_url: str) -> None:
    """A file unreadable when checked fails (usability); put back, a check clears it."""
    from archive import sample_pdf

    home, d = _home(tmp_path, db_url)
    rec = _voucher(d, "FR-1", sample_pdf("x"), "application/pdf")
    _ingest(home, db_url, d, [assessment("CA-1"), rec], 0)
    stored = next(p for p in (home / "archive" / "sha256").rglob("*") if p.is_file())
    keep = tmp_path / "keep.pdf"
    shutil.copy(stored, keep)
    stored.chmod(0o600)
    stored.unlink()
    out = jok("archive", "check", *h(home, db_url), code=1)
    assert out["failed"] == 1 and out["results"][0]["record"] == "FR-1"
    assert [b["records"] for b in _defects(home, db_url)] == [["FR-1"]]
    entry = jok("show", *h(home, db_url), out["id"], "--entry")["payload"]
    assert entry["type"] == "control.voucher_check"
    assert entry["voucher_check"]["checked"] == 1
    assert [f["record"] for f in entry["voucher_check"]["failed"]] == ["FR-1"]
    ok("archive", "restore", *h(home, db_url), str(keep))
    again = jok("archive", "check", *h(home, db_url), "FR-1")
    assert again["cleared"] == ["FR-1"] and again["failed"] == 0
    assert _defects(home, db_url) == []
    res = invoke("archive", "check", *h(home, db_url), "NOPE")
    assert res.exit_code == 2 and "no voucher record 'NOPE'" in res.stderr


def test_a_corrected_voucher_drops_its_defect(tmp_path: Path, db_url: str) -> None:
    from archive import sample_pdf

    home, d = _home(tmp_path, db_url)
    _ingest(home, db_url, d, [assessment("CA-1"),
                              _voucher(d, "FR-1", sample_pdf("x"), "application/pdf",
                                       retention="10y")], 0)
    assert len(_defects(home, db_url)) == 1
    fixed = {**_voucher(d, "FR-1b", sample_pdf("x"), "application/pdf"), "corrects": "FR-1"}
    _ingest(home, db_url, d, [fixed], 0)
    assert _defects(home, db_url) == []
