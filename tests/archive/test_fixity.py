"""Fixity audit and restore (FORMAT.md §11.1): ``bfa archive audit``, ``restore``, the
nightly's rotating sample and ``FIXITY_FAILURE``, on both backends, through the CLI."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests._cli import h, invoke, jok, ok
from tests.reconcile._blackbox import assessment, voucher, write_jsonl

AS_OF = "2026-11-30"


def _ledger(tmp: Path, db: str, n: int = 6) -> tuple[Path, list[dict[str, Any]]]:
    home = tmp / "home"
    ok("init", *h(home, db), "--origin", "fixity.example/ledger")
    d = tmp / "in"
    d.mkdir()
    recs: list[dict[str, Any]] = [assessment("CA-1")]
    recs += [voucher(d, "fiscal_receipt", f"FR-{i}", ["CA-1"]) for i in range(n)]
    ok("ingest", str(write_jsonl(d / "batch.jsonl", recs)), *h(home, db))
    return home, recs[1:]


def _stored(home: Path) -> list[Path]:
    return sorted(p for p in (home / "archive" / "sha256").rglob("*") if p.is_file())


def _damage(path: Path, how: str) -> None:
    path.chmod(0o600)
    if how == "delete":
        path.unlink()
    else:
        path.write_bytes(b"changed")


def _fixity_codes(home: Path, db: str) -> list[dict[str, Any]]:
    res = invoke("reconcile", *h(home, db), "--as-of", AS_OF, "--json")
    assert res.exit_code in (0, 1), res.output
    return [b for b in json.loads(res.stdout)["breaks"] if b["code"] == "FIXITY_FAILURE"]


def test_stored_files_are_read_only(tmp_path: Path, db_url: str) -> None:
    home, _ = _ledger(tmp_path, db_url, 2)
    for p in _stored(home):
        assert stat.S_IMODE(p.stat().st_mode) & 0o222 == 0, oct(p.stat().st_mode)


def test_clean_audit_is_recorded(tmp_path: Path, db_url: str) -> None:
    home, vouchers = _ledger(tmp_path, db_url)
    out = jok("archive", "audit", *h(home, db_url))
    assert out["problems"] == 0 and out["files"] == len(vouchers)
    assert out["scope"] == {"start": 0, "length": 2**32, "percent": "100"}
    assert out["id"] == "fixity-1"
    entry = jok("show", *h(home, db_url), "fixity-1", "--entry")
    assert entry["payload"]["type"] == "control.fixity"
    assert entry["payload"]["action"] == "audit" and entry["payload"]["files"] == len(vouchers)
    assert "every file audited is intact" in ok("archive", "audit", *h(home, db_url)).stdout


def test_changed_missing_untracked_and_breaks(tmp_path: Path, db_url: str) -> None:
    home, vouchers = _ledger(tmp_path, db_url)
    files = _stored(home)
    _damage(files[0], "delete")
    _damage(files[1], "corrupt")
    stray = files[2].parent / ("0" * 64)
    stray.write_bytes(b"planted")
    (home / "archive" / "sha256" / "junk").write_bytes(b"x")
    out = jok("archive", "audit", *h(home, db_url), code=1)
    assert [p["sha256"] for p in out["missing"]] == [files[0].name]
    assert [p["sha256"] for p in out["changed"]] == [files[1].name]
    assert "hashes to" in out["changed"][0]["detail"]
    # a name in the wrong folder is untracked as folder/name (no record is filed there)
    assert sorted(out["untracked"]) == sorted([f"{stray.parent.name}/{'0' * 64}", "junk"])
    breaks = _fixity_codes(home, db_url)
    assert len(breaks) == 2 and {b["severity"] for b in breaks} == {"high"}
    by_file = {b["records"][0]: b for b in breaks}
    missing_id = next(v["id"] for v in vouchers if v["sha256"] == files[0].name)
    assert "is missing from the archive store" in by_file[missing_id]["message"]
    # restore: the originals (the ingest's inputs) go back; the breaks clear
    originals = {v["sha256"]: tmp_path / "in" / v["file"] for v in vouchers}
    res = jok("archive", "restore", *h(home, db_url), str(originals[files[0].name]),
              str(originals[files[1].name]))
    assert [r["restored"] for r in res] == [True, True]
    assert _fixity_codes(home, db_url) == []
    again = jok("archive", "restore", *h(home, db_url), str(originals[files[0].name]))
    assert again[0]["restored"] is False and again[0]["id"] is None


def test_restore_refuses_bytes_no_record_names(tmp_path: Path, db_url: str) -> None:
    home, _ = _ledger(tmp_path, db_url, 1)
    other = tmp_path / "other.pdf"
    other.write_bytes(b"not a voucher of this ledger")
    res = invoke("archive", "restore", *h(home, db_url), str(other))
    assert res.exit_code == 2 and "no voucher record names a file with these bytes" in res.stderr
    assert "Traceback" not in res.output


def test_samples_sweep_the_whole_store(tmp_path: Path, db_url: str) -> None:
    """Four samples of 25 % find every damaged file once, and a fifth starts over."""
    home, vouchers = _ledger(tmp_path, db_url, 12)
    for p in _stored(home):
        _damage(p, "corrupt")
    seen: list[str] = []
    ends = []
    for _ in range(4):
        out = jok("archive", "audit", *h(home, db_url), "--sample", "25", code=(0, 1))
        seen += [p["sha256"] for p in out["changed"]]
        ends.append((out["scope"]["start"] + out["scope"]["length"]) % 2**32)
    assert sorted(seen) == sorted({v["sha256"] for v in vouchers})
    assert len(_fixity_codes(home, db_url)) == len({v["sha256"] for v in vouchers})
    fifth = jok("archive", "audit", *h(home, db_url), "--sample", "25", code=(0, 1))
    assert fifth["scope"]["start"] == ends[-1]


def _change_rows(db_url: str) -> None:
    """What an insider with the application role may do: edit the working table."""
    sql = "UPDATE ar_files SET size = size + 1"
    if db_url.startswith("sqlite"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as c:
            c.execute(sql)
    else:
        with psycopg.connect(db_url) as c:
            c.execute(sql)


def test_a_changed_ar_files_row_is_an_integrity_failure(tmp_path: Path, db_url: str) -> None:
    home, _ = _ledger(tmp_path, db_url, 3)
    ok("archive", "audit", *h(home, db_url))
    _change_rows(db_url)
    res = invoke("archive", "audit", *h(home, db_url), "--sample", "100")
    assert res.exit_code == 0  # a full audit rebuilds the table from the entries
    _change_rows(db_url)
    res = invoke("archive", "audit", *h(home, db_url), "--sample", "99.9")
    assert res.exit_code == 3, res.output
    assert "ar_files row of entry" in res.stderr


def test_nightly_audits_a_rotating_sample(tmp_path: Path, db_url: str) -> None:
    home, _ = _ledger(tmp_path, db_url, 8)
    damaged = _stored(home)[0]
    _damage(damaged, "corrupt")
    reports = tmp_path / "reports"
    found = []
    for night in range(2):
        res = invoke("nightly", *h(home, db_url), "--report-dir", str(reports), "--as-of",
                     f"2026-11-{28 + night}", "--fixity-days", "2")
        assert res.exit_code in (0, 1), res.output
        assert "fixity audit fixity-" in res.stdout
        doc = json.loads((reports / "latest.json").read_text())
        assert doc["archive"]["scope"]["length"] == 2**31
        found += [p["sha256"] for p in doc["archive"]["changed"]]
    assert found == [damaged.name]
    doc = json.loads((reports / "latest.json").read_text())
    assert doc["exit_code"] == 1
    assert doc["summary"]["by_code"].get("FIXITY_FAILURE") == 1


def test_an_unreadable_store_is_reported_and_the_night_goes_on(
        tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service account may lack rights on the shared store: the nightly says so in its
    report (exit 1) and still reconciles and signs."""
    import archive._audit

    home, _ = _ledger(tmp_path, db_url, 2)

    def refused(*_a: object, **_k: object) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(archive._audit, "_stored", refused)
    reports = tmp_path / "reports"
    res = invoke("nightly", *h(home, db_url), "--report-dir", str(reports), "--as-of",
                 "2026-11-30", "--fixity-days", "1")
    assert res.exit_code == 1, res.output
    doc = json.loads((reports / "latest.json").read_text())
    assert "could not be audited: Permission denied" in doc["archive"]["error"]
    assert doc["checkpoint"] is not None and "could not be audited" in res.stdout
