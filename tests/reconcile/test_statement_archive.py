"""Bank statement files are archived (issue 18, item 3; FORMAT.md §9.6, INTERCHANGE §12).

Every file ``bfa ingest --format camt053|mt940`` reads is kept in the voucher store as an
``archive.bank_statement`` record (retention ``10y``) in the same atomic batch as the
statement's records, referring to the ``finance.statement`` records and the movements the
file made or confirmed; its bytes get the 四性 check (camt.053 as ``application/xml``,
MT940 as ``text/plain``). Re-importing the same bytes is a no-op; a refused file leaves
neither entries nor a stored file. Both backends (``db_url``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from archive import FileStore, Intake, check_file, sample_pdf
from ledger import BatchRefusedError, Ledger
from reconcile import ingest_statement
from schemas import RECORD_TYPES, parse_record, record_payload
from tests._cli import h, invoke, jok, ok, size
from tests._vectors import vectors_dir
from tests.reconcile._blackbox import R, T, write_jsonl

ACCT = "6222000011112222"
NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


# --- helpers -----------------------------------------------------------------------------


def _bal(code: str, amount: str, day: str) -> str:
    return (f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
            f"<Amt Ccy=\"CNY\">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd>"
            f"<Dt><Dt>{day}</Dt></Dt></Bal>")


def camt(path: Path, sid: str, opening: str, closing: str,
         entries: list[tuple[str, str, str]], seq: str = "7",
         day: str = "2026-11-20") -> Path:
    """A one-statement camt.053.001.08 file; ``entries``: (AcctSvcrRef, CRDT/DBIT, amount)."""
    ntry = "".join(
        f"<Ntry><Amt Ccy=\"CNY\">{amt}</Amt><CdtDbtInd>{cd}</CdtDbtInd>"
        f"<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{day}</Dt></BookgDt>"
        f"<ValDt><Dt>{day}</Dt></ValDt><AcctSvcrRef>{ref}</AcctSvcrRef></Ntry>"
        for ref, cd, amt in entries)
    path.write_text(
        f"<?xml version=\"1.0\"?><Document xmlns=\"{NS}\"><BkToCstmrStmt><GrpHdr>"
        f"<MsgId>M</MsgId><CreDtTm>2026-11-21T08:00:00+08:00</CreDtTm></GrpHdr><Stmt>"
        f"<Id>{sid}</Id><ElctrncSeqNb>{seq}</ElctrncSeqNb>"
        f"<Acct><Id><Othr><Id>{ACCT}</Id></Othr></Id><Ccy>CNY</Ccy></Acct>"
        f"{_bal('OPBD', opening, day)}{_bal('CLBD', closing, day)}{ntry}</Stmt>"
        "</BkToCstmrStmt></Document>", encoding="utf-8")
    return path


def cny_vector(name: str, out: Path) -> Path:
    """A third-party statement vector with its EUR made CNY (only CNY is imported)."""
    data = (vectors_dir() / "bank" / name).read_bytes().replace(b"EUR", b"CNY")
    dst = out / Path(name).name
    dst.write_bytes(data)
    return dst


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def kept_id(path: Path, account: str, label: str) -> str:
    """The documented id of a statement file's record (FORMAT.md §9.6)."""
    return f"BS-{account}-{label}-{sha(path)[:12]}"


def home_of(tmp: Path, db: str) -> Path:
    home = tmp / "home"
    ok("init", *h(home, db), "--origin", "statements.example/ledger")
    return home


def ingest(home: Path, db: str, fmt: str, *files: Path, code: int = 0) -> Any:
    return jok("ingest", *h(home, db), "--format", fmt, "--region", R,
               "--fund-account", "income", *(str(f) for f in files), code=code)


def show(home: Path, db: str, rid: str) -> dict[str, Any]:
    res: dict[str, Any] = jok("show", *h(home, db), rid)
    return res


def stored(home: Path) -> set[str]:
    """The names (SHA-256) of the files in the home's voucher store."""
    root = home / "archive" / "sha256"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()


def stored_bytes(home: Path, digest: str) -> bytes:
    return (home / "archive" / "sha256" / digest[:2] / digest).read_bytes()


def collection(rid: str, ref: str, amount: str) -> dict[str, Any]:
    return {"type": "finance.collection", "id": rid, "region": R, "occurred_at": T,
            "amount": amount, "value_date": "2026-11-20", "bank_ref": ref,
            "fund_account": "income"}


# --- camt.053 and MT940 via the CLI -------------------------------------------------------


def test_camt053_file_is_kept_in_the_statement_batch(tmp_path: Path, db_url: str) -> None:
    home = home_of(tmp_path, db_url)
    f = camt(tmp_path / "stmt.xml", "ST-1", "100.00", "150.00",
             [("R1", "CRDT", "80.00"), ("R2", "DBIT", "30.00"), ("R0", "CRDT", "0.00")])
    rep = ingest(home, db_url, "camt053", f)
    # statement, two movements (a zero entry makes none), the file's record
    assert rep["appended"] == 4 and rep["files"][0]["lines"] == 4
    assert rep["voucher_defects"] == []
    assert size(home, db_url) == 4 + 1  # and the batch's control.ingest entry
    rid = kept_id(f, ACCT, "7")
    rec = show(home, db_url, rid)
    assert rec == {
        "type": "archive.bank_statement", "id": rid, "region": R,
        "occurred_at": "2026-11-20T00:00:00+08:00", "source": "bank-statement/camt053",
        "sha256": sha(f), "media_type": "application/xml", "size": f.stat().st_size,
        "file": "stmt.xml", "refs": ["ST-1", "ST-1/R1", "ST-1/R2"], "retention": "10y",
    }
    assert stored(home) == {sha(f)} and stored_bytes(home, sha(f)) == f.read_bytes()
    (res,) = jok("archive", "check", *h(home, db_url), rid)["results"]
    assert res["ok"] and res["format"] == "xml" and res["kind"] == "bank_statement"
    audit = jok("archive", "audit", *h(home, db_url))
    assert audit["changed"] == audit["missing"] == audit["untracked"] == []


def test_mt940_files_are_kept_as_plain_text(tmp_path: Path, db_url: str) -> None:
    """ING's vector (UTF-8 with non-ASCII text) and a GB18030 one: ``text/plain`` passes."""
    home = home_of(tmp_path, db_url)
    ing = cny_vector("mt940/jejik/ing.sta", tmp_path)
    assert any(b > 0x7F for b in ing.read_bytes())
    rep = ingest(home, db_url, "mt940", ing)
    assert rep["voucher_defects"] == []
    rec = show(home, db_url, kept_id(ing, "0001234567", "000"))
    assert rec["media_type"] == "text/plain" and rec["source"] == "bank-statement/mt940"
    assert rec["refs"][0] == "MPBZ/000" and len(rec["refs"]) == 8  # statement, 7 movements
    gb = tmp_path / "gb.sta"
    gb.write_bytes(f":20:GB-1\n:25:{ACCT}\n:28C:3/1\n:60F:C261001CNY0,00\n"
                   ":61:2610121012C50,00NTRFNONREF//GB1\n:86:社保费收入 养老\n"
                   ":62F:C261031CNY50,00\n".encode("gb18030"))
    rep = ingest(home, db_url, "mt940", gb)
    assert rep["appended"] == 3 and rep["voucher_defects"] == []
    rid = kept_id(gb, ACCT, "3/1")
    assert show(home, db_url, rid)["refs"] == ["GB-1/3.1", "GB-1/3.1/GB1"]
    (res,) = jok("archive", "check", *h(home, db_url), rid)["results"]
    assert res["ok"] and res["format"] == "text"


def test_multi_statement_vector_refers_to_every_statement(tmp_path: Path,
                                                          db_url: str) -> None:
    home = home_of(tmp_path, db_url)
    f = cny_vector("camt053/camt053.v2.multi.statement.xml", tmp_path)
    assert ingest(home, db_url, "camt053", f)["appended"] == 5
    rec = show(home, db_url, kept_id(f, "NL26VAYB8060476890", "12312"))
    assert rec["refs"] == ["253CNYNL26VAYB8060476890", "254CNYNL26VAYB8060476890",
                           "253CNYNL26VAYB8060476890/1", "254CNYNL26VAYB8060476890/1"]
    # the latest statement's closing date
    assert rec["occurred_at"] == "2014-12-31T00:00:00+08:00"


# --- re-import, confirmation ------------------------------------------------------------


def test_reimport_is_a_no_op_under_any_name(tmp_path: Path, db_url: str) -> None:
    home = home_of(tmp_path, db_url)
    f = camt(tmp_path / "s.xml", "ST-1", "0.00", "80.00", [("R1", "CRDT", "80.00")])
    ingest(home, db_url, "camt053", f)
    before = size(home, db_url)
    again = ingest(home, db_url, "camt053", f)
    assert (again["appended"], again["duplicates"]) == (0, 2)  # statement + file record
    copy = tmp_path / "copy-of-s.xml"
    copy.write_bytes(f.read_bytes())
    assert ingest(home, db_url, "camt053", copy)["appended"] == 0
    assert size(home, db_url) == before
    assert show(home, db_url, kept_id(f, ACCT, "7"))["file"] == "s.xml"


def test_reimport_stays_a_no_op_when_what_it_confirms_changed(tmp_path: Path,
                                                              db_url: str) -> None:
    """The file record is sent again as the ledger holds it: a movement the finance system
    sent later with the same bank reference changes nothing about the file's record."""
    home = home_of(tmp_path, db_url)
    f = camt(tmp_path / "s.xml", "ST-1", "0.00", "80.00", [("R1", "CRDT", "80.00")])
    ingest(home, db_url, "camt053", f)
    d = tmp_path / "books"
    d.mkdir()
    jok("ingest", *h(home, db_url), str(write_jsonl(d / "f.jsonl",
                                                    [collection("COL-1", "R1", "80.00")])))
    before = size(home, db_url)
    again = ingest(home, db_url, "camt053", f)
    assert again["appended"] == 0 and again["rejected"] == 0
    assert size(home, db_url) == before
    assert show(home, db_url, kept_id(f, ACCT, "7"))["refs"] == ["ST-1", "ST-1/R1"]


def test_confirmed_movements_are_referred_to(tmp_path: Path, db_url: str) -> None:
    home = home_of(tmp_path, db_url)
    d = tmp_path / "books"
    d.mkdir()
    jok("ingest", *h(home, db_url), str(write_jsonl(d / "f.jsonl", [
        collection("COL-1", "R1", "80.00"), collection("COL-2", "R2", "55.00")])))
    f = camt(tmp_path / "s.xml", "ST-1", "0.00", "235.10",
             [("R1", "CRDT", "80.00"), ("R2", "CRDT", "55.10"), ("R3", "CRDT", "100.00")])
    assert ingest(home, db_url, "camt053", f)["appended"] == 3  # statement, R3, the file
    rec = show(home, db_url, kept_id(f, ACCT, "7"))
    assert rec["refs"] == ["ST-1", "COL-1", "COL-2", "ST-1/R3"]  # COL-2 differs: still named


def test_a_file_imported_before_it_was_kept_is_kept_now(led: Ledger, tmp_path: Path) -> None:
    """Without a voucher store (the library's default) nothing is kept; the same file
    through ``bfa ingest`` adds only its record."""
    f = camt(tmp_path / "s.xml", "ST-1", "0.00", "80.00", [("R1", "CRDT", "80.00")])
    assert ingest_statement(led, f, "camt053", R, "income").appended == 2
    store = FileStore(led.home.archive_dir, led.home.perms)
    rep = ingest_statement(led, f, "camt053", R, "income", vouchers=Intake(store))
    assert (rep.appended, rep.duplicates) == (1, 1)
    assert store.has(sha(f))


# --- nothing half-written -----------------------------------------------------------------


def test_a_refused_statement_file_leaves_no_stored_file(tmp_path: Path, db_url: str) -> None:
    home = home_of(tmp_path, db_url)
    good = camt(tmp_path / "good.xml", "ST-1", "0.00", "80.00", [("R1", "CRDT", "80.00")])
    ingest(home, db_url, "camt053", good)
    before, files = size(home, db_url), stored(home)
    # the same statement id with other content: a conflict, the whole file is refused
    bad = camt(tmp_path / "bad.xml", "ST-1", "0.00", "90.00", [("R1", "CRDT", "90.00")])
    res = invoke("ingest", *h(home, db_url), "--format", "camt053", "--region", R,
                 "--fund-account", "income", str(bad))
    assert res.exit_code == 2 and "bad.xml" in res.stderr and "Traceback" not in res.output
    assert size(home, db_url) == before and stored(home) == files
    # several files: the first stays appended and kept, the refused one leaves nothing
    first = camt(tmp_path / "first.xml", "ST-2", "80.00", "90.00", [("R2", "CRDT", "10.00")],
                 seq="8", day="2026-11-21")
    res = invoke("ingest", *h(home, db_url), "--format", "camt053", "--region", R,
                 "--fund-account", "income", str(first), str(bad))
    assert res.exit_code == 2 and "first.xml (3 appended" in res.stderr
    assert stored(home) == files | {sha(first)}
    ok("verify", *h(home, db_url))


class _Recording:
    """A voucher store that remembers the files it created."""

    def __init__(self, store: FileStore) -> None:
        self.store = store
        self.made: list[Path] = []

    def put(self, source: Path, sha256: str, size: int) -> Path | None:
        made = self.store.put(source, sha256, size)
        if made is not None:
            self.made.append(made)
        return made


def test_a_refused_batch_removes_the_file_it_stored(led: Ledger, tmp_path: Path) -> None:
    good = camt(tmp_path / "good.xml", "ST-1", "0.00", "80.00", [("R1", "CRDT", "80.00")])
    ingest_statement(led, good, "camt053", R, "income", vouchers=FileStore(tmp_path / "st"))
    bad = camt(tmp_path / "bad.xml", "ST-1", "0.00", "90.00", [("R1", "CRDT", "90.00")])
    spy = _Recording(FileStore(tmp_path / "st"))
    before = led.size()
    with pytest.raises(BatchRefusedError, match="conflict"):
        ingest_statement(led, bad, "camt053", R, "income", vouchers=spy)
    assert [p.name for p in spy.made] == [sha(bad)]  # copied in while the batch ran,
    assert not spy.made[0].exists()  # and taken back with it
    assert led.size() == before and spy.store.has(sha(good))


class _ChangedAfterReading:
    """A voucher store whose source file changes between the read and the copy."""

    def __init__(self, store: FileStore, path: Path) -> None:
        self.store, self.path = store, path

    def put(self, source: Path, sha256: str, size: int) -> Path | None:
        self.path.write_bytes(self.path.read_bytes().replace(b"80.00", b"88.00"))
        return self.store.put(source, sha256, size)


def test_a_file_changed_after_it_was_read_is_refused(led: Ledger, tmp_path: Path) -> None:
    """What is parsed is what is kept: the store checks the bytes it copies."""
    f = camt(tmp_path / "s.xml", "ST-1", "0.00", "80.00", [("R1", "CRDT", "80.00")])
    store = FileStore(tmp_path / "store")
    before = led.size()
    with pytest.raises(BatchRefusedError) as err:
        ingest_statement(led, f, "camt053", R, "income",
                         vouchers=_ChangedAfterReading(store, f))
    assert "sha256" in str(err.value.problems[0])
    assert led.size() == before
    assert not any(p.is_file() for p in (tmp_path / "store").rglob("*"))


# --- names -----------------------------------------------------------------------------


def test_odd_file_names_and_symbolic_links(tmp_path: Path, db_url: str) -> None:
    """``file`` is the name as given, made a valid path (U+FFFD for what cannot be kept);
    the store gets the file that was read, whatever the name or a link."""
    home = home_of(tmp_path, db_url)
    raw = os.fsdecode(b"stmt\xff\\x.xml")
    f = camt(tmp_path / raw, "ST-1", "0.00", "80.00", [("R1", "CRDT", "80.00")])
    rep = ingest(home, db_url, "camt053", f)
    assert rep["files"][0]["file"].endswith("stmt\\xff\\x.xml")
    assert show(home, db_url, kept_id(f, ACCT, "7"))["file"] == "stmt\ufffd\ufffdx.xml"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = camt(elsewhere / "real.xml", "ST-2", "80.00", "90.00", [("R2", "CRDT", "10.00")],
                  seq="8", day="2026-11-21")
    link = tmp_path / "link.xml"
    link.symlink_to(target)
    ingest(home, db_url, "camt053", link)
    assert show(home, db_url, kept_id(target, ACCT, "8"))["file"] == "link.xml"
    assert stored_bytes(home, sha(target)) == target.read_bytes()


def test_a_missing_second_file_names_the_files_that_stay(tmp_path: Path, db_url: str) -> None:
    home = home_of(tmp_path, db_url)
    good = camt(tmp_path / "good.xml", "ST-1", "0.00", "80.00", [("R1", "CRDT", "80.00")])
    res = invoke("ingest", *h(home, db_url), "--format", "camt053", "--region", R,
                 "--fund-account", "income", str(good), str(tmp_path / "nope.xml"))
    assert res.exit_code == 2
    assert "nope.xml: cannot open" in res.stderr and "good.xml (3 appended" in res.stderr


# --- the kinds and the 四性 check of text --------------------------------------------------


@pytest.mark.parametrize("kind", ["bank_statement", "reconciliation_statement"])
def test_v11_kinds_are_accepted_from_json_lines(tmp_path: Path, db_url: str,
                                                kind: str) -> None:
    home = home_of(tmp_path, db_url)
    body = sample_pdf(kind)
    (tmp_path / "v.pdf").write_bytes(body)
    rec = {"type": f"archive.{kind}", "id": f"X-{kind}", "region": R, "occurred_at": T,
           "sha256": hashlib.sha256(body).hexdigest(), "media_type": "application/pdf",
           "size": len(body), "file": "v.pdf", "refs": ["ST-1"], "retention": "10y"}
    assert type(parse_record(rec)) is RECORD_TYPES[f"archive.{kind}"]
    assert record_payload(parse_record(rec)) == rec
    out = jok("ingest", *h(home, db_url), str(write_jsonl(tmp_path / "a.jsonl", [rec])))
    assert out["appended"] == 1 and out["voucher_defects"] == []
    assert show(home, db_url, f"X-{kind}") == rec


@pytest.mark.parametrize(("data", "media_type", "fmt", "code"), [
    (b":20:S\r\n:25:1\r\n", "text/plain", "text", None),
    ("对账单 余额\n".encode("gb18030"), "text/plain", "text", None),
    ("对账单\n".encode(), "TEXT/PLAIN", "text", None),
    (b"a\x00b\n", "text/plain", "unknown", "unknown_format"),
    (b"", "text/plain", "unknown", "unknown_format"),
    (b"\xff\xff\xff", "text/plain", "unknown", "unknown_format"),
    (b"<a/>", "text/plain", "xml", "media_type_mismatch"),
    (b":20:S\n", "application/pdf", "unknown", "unknown_format"),  # as before
])
def test_plain_text_in_the_four_property_check(tmp_path: Path, data: bytes, media_type: str,
                                               fmt: str, code: str | None) -> None:
    path = tmp_path / "f"
    path.write_bytes(data)
    result = check_file(path, media_type)
    assert result.format == fmt
    assert [f.code for f in result.findings] == ([code] if code else [])
