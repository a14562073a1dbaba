"""Black-box, hostile-input tests of bank statement import (camt.053 and MT940).

Written only from docs/FORMAT.md §9 (ingest semantics, especially §9.6 bank statements)
and §10 (exit codes), docs/INTERCHANGE.md (finance.statement, bank statements,
``STATEMENT_BALANCE_BREAK``), docs/adr/0013-bank-statements.md, README.md, the ``--help``
texts of ``bfa ingest`` and ``bfa balance``, and public knowledge of ISO 20022 camt.053
(001.02-001.08: ``Amt`` is an ``xs:decimal`` with a ``Ccy`` attribute, the sign is
``CdtDbtInd``) and SWIFT MT940 (``:61:`` amounts use a decimal comma and at most 15
characters, ``RC`` is a reversal of a credit, i.e. a debit, ``RD`` a credit). The
implementation under reconcile/, ledger/, cli/ and archive/ was not read.

Every hostile file must end in a clear outcome: appended, or refused with exit 2, a first
stderr line ``bfa: error: ...`` naming the file (further problems of a refused batch on
indented lines, FORMAT §10), no traceback, no internal error, nothing of it in the ledger
(``bfa status --json`` size unchanged) and ``bfa verify`` still clean.

The review found eleven bugs, all fixed since and asserted here: MT940 amounts written
with a decimal point or 16 digits were cut and imported (the library's reading), ``RC``
was booked as a credit, no ``payee_account`` came from ``:86:``, the library's debug dump
reached stderr, a refused later file did not name the files that stay appended, camt.053
took ``1E3`` and non-ASCII digits as amounts, ``bfa balance`` denied a statement without a
closing balance; and FORMAT §9.6 described statement ids other than the code makes (the
document was corrected: the ids of imported statements must not change). Pure parsing
cases run on SQLite only; the cases where the database matters use the ``db_url``
fixture (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
import random
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests._cli import h, invoke, ok, size

BFA = str(Path(sys.executable).with_name("bfa"))
ORIGIN = "bank.example/1"
R = "440100"
AS_OF = "2026-12-31"
ACCT = "6222000011112222"
NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.{:02d}"
BATCH = 1  # the control.ingest entry that closes every batch that appends (FORMAT.md §2.5)
FILE = 1  # the archive.bank_statement record that keeps each file read (FORMAT.md §9.6)


# ---------------------------------------------------------------------------- helpers


def verify_clean(home: Path, db: str | None = None) -> None:
    ok("verify", *h(home, db))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised SQLite home; tests copy it (``bfa init`` once per module)."""
    home = tmp_path_factory.mktemp("template") / "home"
    ok("init", *h(home), "--origin", ORIGIN)
    return home


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "home"
    shutil.copytree(template, dst)
    return dst


def pg_home(tmp_path: Path, db_url: str) -> Path:
    home = tmp_path / "home"
    ok("init", *h(home, db_url), "--origin", ORIGIN)
    return home


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def ingest(home: Path, fmt: str, *files: Path, db: str | None = None,
           extra: tuple[str, ...] = ("--fund-account", "income")) -> Result:
    return invoke("ingest", *h(home, db), "--format", fmt, "--region", R, *extra,
                  *(str(f) for f in files))


def refused(res: Result | subprocess.CompletedProcess[str], name: str) -> str:
    """Exit 2; first stderr line ``bfa: error: `` naming the file; further lines (problems
    of a refused batch, FORMAT §10) indented; no traceback or internal error."""
    rc = res.exit_code if isinstance(res, Result) else res.returncode
    assert rc == 2, (rc, res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert lines and lines[0].startswith("bfa: error: "), res.stderr[:2000]
    assert name in lines[0], res.stderr[:2000]
    assert all(line.startswith((" ", "\t")) for line in lines[1:]), res.stderr[:2000]
    assert "Traceback" not in res.stderr + res.stdout
    assert "internal error" not in res.stderr
    return lines[0]


def one_line(res: Result | subprocess.CompletedProcess[str], name: str) -> str:
    """FORMAT §10: exactly one line ``bfa: error: ...`` for a problem that is not a batch."""
    first = refused(res, name)
    assert len(res.stderr.splitlines()) == 1, res.stderr[:2000]
    return first


def refused_whole(home: Path, fmt: str, path: Path, db: str | None = None) -> str:
    """Refused (exit 2, file named), nothing written, the ledger still verifies."""
    before = size(home, db)
    first = refused(ingest(home, fmt, path, db=db), path.name)
    assert size(home, db) == before
    verify_clean(home, db)
    return first


def appended(home: Path, fmt: str, path: Path, db: str | None = None) -> int:
    """Imported (exit 0); returns the number of entries appended (the file's records and,
    when there are any, the batch's closing control.ingest entry: ``BATCH``)."""
    before = size(home, db)
    res = ingest(home, fmt, path, db=db)
    assert res.exit_code == 0, (res.exit_code, res.stdout, res.stderr)
    assert "Traceback" not in res.output
    verify_clean(home, db)
    return size(home, db) - before


def clear_outcome(home: Path, fmt: str, path: Path) -> int:
    """Either appended or refused cleanly; returns the exit code."""
    before = size(home)
    res = ingest(home, fmt, path)
    if res.exit_code == 0:
        assert "Traceback" not in res.output
    else:
        refused(res, path.name)
        assert size(home) == before
    verify_clean(home)
    return int(res.exit_code)


def show(home: Path, rid: str, db: str | None = None) -> dict[str, Any]:
    res = invoke("show", *h(home, db), "--json", rid)
    assert res.exit_code == 0, (rid, res.stdout, res.stderr)
    rec: dict[str, Any] = json.loads(res.stdout)
    return rec


def exists(home: Path, rid: str) -> bool:
    return invoke("show", *h(home), "--json", rid).exit_code == 0


def reconcile_codes(home: Path, db: str | None = None) -> list[str]:
    res = invoke("reconcile", *h(home, db), "--as-of", AS_OF, "--json")
    assert res.exit_code in (0, 1), (res.stdout, res.stderr)
    return [b["code"] for b in json.loads(res.stdout)["breaks"]]


def balance(home: Path, db: str | None = None) -> tuple[int, dict[str, Any]]:
    """``bfa balance --json`` of the income fund account: exit code and the report."""
    res = invoke("balance", *h(home, db), "--fund-account", "income", "--as-of", AS_OF,
                 "--json")
    assert res.exit_code in (0, 1), (res.stdout, res.stderr)
    out: dict[str, Any] = json.loads(res.stdout)
    return int(res.exit_code), out


def opening(home: Path, amount: str, db: str | None = None, day: str = "2026-10-01") -> None:
    """Record the agency's opening balance of the statements' account (FORMAT §9.7)."""
    res = invoke("balance", "opening", *h(home, db), "--bank-account", ACCT, "--date", day,
                 "--amount", amount)
    assert res.exit_code == 0, res.output


# ------------------------------------------------------------------------ camt.053 text


def bal(code: str, amount: str, day: str, ind: str = "CRDT", ccy: str = 'Ccy="CNY"') -> str:
    cd = f"<CdtDbtInd>{ind}</CdtDbtInd>" if ind else ""
    return (f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt {ccy}>{amount}</Amt>"
            f"{cd}<Dt><Dt>{day}</Dt></Dt></Bal>")


def ntry(amount: str = "1000.00", cd: str | None = "CRDT", day: str = "2026-10-12",
         ref: str = "BANK1", ccy: str = 'Ccy="CNY"', val: str | None = None,
         extra: str = "") -> str:
    ind = f"<CdtDbtInd>{cd}</CdtDbtInd>" if cd is not None else ""
    return (f"<Ntry><Amt {ccy}>{amount}</Amt>{ind}<Sts>BOOK</Sts>"
            f"<BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{val or day}</Dt></ValDt>"
            f"<AcctSvcrRef>{ref}</AcctSvcrRef>{extra}</Ntry>")


def stmt(sid: str = "ST-1", opening: str = "100.00", closing: str = "1100.00",
         entries: list[str] | None = None, acct_ccy: str = "CNY", bals: str | None = None,
         seq: str = "1") -> str:
    b = bals if bals is not None else (bal("OPBD", opening, "2026-10-01")
                                       + bal("CLBD", closing, "2026-10-31"))
    ents = "".join(entries if entries is not None else [ntry()])
    return (f"<Stmt><Id>{sid}</Id><ElctrncSeqNb>{seq}</ElctrncSeqNb>"
            "<CreDtTm>2026-10-31T18:00:00</CreDtTm>"
            f"<Acct><Id><Othr><Id>{ACCT}</Id></Othr></Id><Ccy>{acct_ccy}</Ccy></Acct>"
            f"{b}{ents}</Stmt>")


def camt(*stmts: str, ns: str = NS.format(2), doctype: str = "",
         prolog: str = '<?xml version="1.0" encoding="UTF-8"?>\n', header: str = "") -> str:
    body = "".join(stmts) if stmts else ""
    return (f'{prolog}{doctype}<Document xmlns="{ns}"><BkToCstmrStmt>'
            f"<GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-10-31T18:00:00</CreDtTm>{header}</GrpHdr>"
            f"{body}</BkToCstmrStmt></Document>\n")


GOOD = camt(stmt())


# -------------------------------------------------------------------------- MT940 text


def mt(ref: str = "STMT-1", seq: str | None = "1/1", opening: str | None = "C261001CNY100,00",
       closing: str | None = "C261031CNY1100,00", lines61: list[str] | None = None,
       s86: str | None = "payment", account: str | None = ACCT, nl: str = "\n") -> str:
    tags: list[tuple[str, str]] = [(":20:", ref)]
    if account is not None:
        tags.append((":25:", account))
    if seq is not None:
        tags.append((":28C:", seq))
    if opening is not None:
        tags.append((":60F:", opening))
    for line in lines61 if lines61 is not None else ["2610121012C1000,00NTRFNONREF//BANK1"]:
        tags.append((":61:", line))
        if s86 is not None:
            tags.append((":86:", s86))
    if closing is not None:
        tags.append((":62F:", closing))
    return nl.join(k + v for k, v in tags).replace("\n", nl) + nl


def statement_ids(home: Path) -> list[str]:
    """Statement ids from ``bfa balance --json`` (the latest statement of each account)."""
    res = invoke("balance", *h(home), "--fund-account", "income", "--as-of", AS_OF, "--json")
    return sorted(st["id"] for a in json.loads(res.stdout)["accounts"]
                  for st in a["statements"])


# =========================================================== camt.053: XML attacks


@pytest.fixture
def secret(tmp_path: Path) -> tuple[Path, str]:
    token = f"SECRET{random.getrandbits(64):016x}"
    path = tmp_path / "secret.txt"
    path.write_text(token)
    return path, token


def _xml_attacks(secret_uri: str) -> dict[str, str]:
    lol = ('<!DOCTYPE Document [<!ENTITY a "lollollollollollol">'
           + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'
                     for i in range(8)) + "]>")
    return {
        "billion-laughs": camt(stmt(sid="&i;"), doctype=lol),
        "quadratic-blowup": camt(stmt(sid="&a;" * 2000), doctype='<!DOCTYPE Document ['
                                 f'<!ENTITY a "{"x" * 5000}">]>'),
        "xxe-file": camt(stmt(sid="&x;"), doctype=f'<!DOCTYPE Document [<!ENTITY x SYSTEM '
                         f'"{secret_uri}">]>'),
        "xxe-etc-hostname": camt(stmt(sid="&x;"), doctype='<!DOCTYPE Document [<!ENTITY x '
                                 'SYSTEM "file:///etc/hostname">]>'),
        "xxe-parameter-entity": camt(stmt(), doctype=f'<!DOCTYPE Document [<!ENTITY % p '
                                     f'SYSTEM "{secret_uri}"> %p;]>'),
        "xxe-in-account": camt(stmt().replace(ACCT, "&x;"),
                               doctype=f'<!DOCTYPE Document [<!ENTITY x SYSTEM "{secret_uri}">]>'),
        "internal-entity-in-amount": camt(stmt(entries=[ntry(amount="&amt;")]),
                                          doctype='<!DOCTYPE Document [<!ENTITY amt "1000.00">]>'),
    }


@pytest.mark.parametrize("name", ["billion-laughs", "quadratic-blowup", "xxe-file",
                                  "xxe-etc-hostname", "xxe-parameter-entity", "xxe-in-account",
                                  "internal-entity-in-amount"])
def test_camt_entity_tricks_are_refused(home: Path, tmp_path: Path, secret: tuple[Path, str],
                                        name: str) -> None:
    """ADR 0013 / README: defusedxml refuses entity tricks; nothing of the file imported."""
    path, token = secret
    xml = _xml_attacks(path.as_uri())[name]
    f = write(tmp_path / "stmt.xml", xml)
    t0 = time.monotonic()
    res = ingest(home, "camt053", f)
    assert time.monotonic() - t0 < 20
    refused(res, f.name)
    assert size(home) == 0
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    for leaked in (token, *([hostname] if len(hostname) > 3 else [])):
        assert leaked not in res.output
    verify_clean(home)


def test_xxe_content_never_reaches_the_ledger_on_postgresql_either(
        tmp_path: Path, db_url: str, secret: tuple[Path, str]) -> None:
    path, token = secret
    home = pg_home(tmp_path, db_url)
    f = write(tmp_path / "xxe.xml", _xml_attacks(path.as_uri())["xxe-file"])
    res = ingest(home, "camt053", f, db=db_url)
    refused(res, f.name)
    assert token not in res.output
    assert size(home, db_url) == 0
    verify_clean(home, db_url)


def test_external_dtd_is_never_fetched(home: Path, tmp_path: Path) -> None:
    """An external DTD (subset or entity) must not make the importer open a connection."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    hits: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            hits.append(1)
            conn.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        for i, doctype in enumerate([
                f'<!DOCTYPE Document SYSTEM "http://127.0.0.1:{port}/camt.dtd">',
                f'<!DOCTYPE Document [<!ENTITY % r SYSTEM "http://127.0.0.1:{port}/p"> %r;]>',
                f'<!DOCTYPE Document [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/x">]>']):
            f = write(tmp_path / f"dtd{i}.xml", camt(stmt(sid="&x;" if i == 2 else f"ST-{i}"),
                                                     doctype=doctype))
            refused_whole(home, "camt053", f)  # any DTD is refused (FORMAT §9.6)
        time.sleep(0.3)
    finally:
        stop.set()
        th.join(2)
        srv.close()
    assert hits == []


def test_internal_dtd_without_entities_is_refused(home: Path, tmp_path: Path) -> None:
    """ADR 0013 / FORMAT §9.6: a document with any DTD is refused (camt.053 has none)."""
    f = write(tmp_path / "dtd.xml", camt(stmt(), doctype="<!DOCTYPE Document>"))
    refused_whole(home, "camt053", f)


@pytest.mark.parametrize("kind", ["huge-text-node", "deep-nesting", "many-attributes",
                                  "many-statements"])
def test_camt_big_or_deep_documents_finish_quickly(home: Path, tmp_path: Path,
                                                   kind: str) -> None:
    xml = {
        "huge-text-node": camt(stmt(), header="<AddtlInf>" + "x" * 8_000_000 + "</AddtlInf>"),
        "deep-nesting": camt(stmt(), header="<a>" * 50_000 + "</a>" * 50_000),
        "many-attributes": camt(stmt(), header="<a " + " ".join(
            f'a{i}="v"' for i in range(50_000)) + "/>"),
        "many-statements": camt(*(stmt(f"S{i}", entries=[ntry(ref=f"R{i}")])
                                  for i in range(500))),
    }[kind]
    f = write(tmp_path / "big.xml", xml)
    t0 = time.monotonic()
    assert clear_outcome(home, "camt053", f) == 0  # each is a valid statement file
    assert time.monotonic() - t0 < 30
    if kind == "many-statements":
        assert size(home) == 1000 + FILE + BATCH


# =================================================== camt.053: document kind, encoding


@pytest.mark.parametrize("ns", [
    "urn:iso:std:iso:20022:tech:xsd:camt.052.001.02",
    "urn:iso:std:iso:20022:tech:xsd:camt.054.001.02",
    "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03",
    NS.format(1), NS.format(9), NS.format(2).replace("camt.053", "camt.O53"),
    "", "urn:example:not-iso"])
def test_camt_other_documents_and_versions_are_refused(home: Path, tmp_path: Path,
                                                       ns: str) -> None:
    """FORMAT §9.6: camt.053 versions 001.02-001.08 only."""
    f = write(tmp_path / "other.xml", camt(stmt(), ns=ns))
    one_line(ingest(home, "camt053", f), f.name)
    assert size(home) == 0


@pytest.mark.parametrize("version", range(2, 9))
def test_camt_supported_versions_import(home: Path, tmp_path: Path, version: int) -> None:
    f = write(tmp_path / "v.xml", camt(stmt(), ns=NS.format(version)))
    assert appended(home, "camt053", f) == 2 + FILE + BATCH
    assert show(home, "ST-1")["closing_balance"] == "1100.00"


@pytest.mark.parametrize("enc", ["bom-utf8", "utf16", "utf16-bom-no-decl", "latin1-declared"])
def test_camt_legal_xml_encodings_import(home: Path, tmp_path: Path, enc: str) -> None:
    """XML 1.0 §4.3.3: a UTF-8 BOM, UTF-16 and a declared encoding are all well-formed."""
    data = {
        "bom-utf8": b"\xef\xbb\xbf" + GOOD.encode(),
        "utf16": camt(stmt(), prolog='<?xml version="1.0" encoding="UTF-16"?>\n'
                      ).encode("utf-16"),
        "utf16-bom-no-decl": camt(stmt(), prolog="").encode("utf-16"),
        "latin1-declared": camt(stmt(sid="ST-\xe91"),
                                prolog='<?xml version="1.0" encoding="ISO-8859-1"?>\n'
                                ).encode("latin-1"),
    }[enc]
    f = write(tmp_path / "enc.xml", data)
    assert appended(home, "camt053", f) == 2 + FILE + BATCH


@pytest.mark.parametrize("kind", ["latin1-bytes-in-utf8", "truncated", "empty", "not-xml",
                                  "nul-byte", "jsonl", "mt940", "two-roots"])
def test_camt_malformed_documents_are_refused(home: Path, tmp_path: Path, kind: str) -> None:
    data: bytes = {
        "latin1-bytes-in-utf8": GOOD.replace("ST-1", "ST-\xe9").encode("latin-1"),
        "truncated": GOOD.encode()[: len(GOOD) // 2],
        "empty": b"",
        "not-xml": b"hello, bank\n",
        "nul-byte": GOOD.replace("ST-1", "ST-\x001").encode(),
        "jsonl": json.dumps({"type": "finance.collection", "id": "C1", "region": R,
                             "occurred_at": "2026-10-10T09:00:00+08:00", "amount": "1.00",
                             "value_date": "2026-10-10", "bank_ref": "R1"}).encode() + b"\n",
        "mt940": mt().encode(),
        "two-roots": (GOOD + GOOD.split("\n", 1)[1]).encode(),
    }[kind]
    f = write(tmp_path / "bad.xml", data)
    one_line(ingest(home, "camt053", f), f.name)
    assert size(home) == 0
    verify_clean(home)


def test_camt_zero_statements_is_refused(home: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "zero.xml", camt())
    refused_whole(home, "camt053", f)


def test_camt_two_statements_in_one_document(home: Path, tmp_path: Path) -> None:
    """FORMAT §9.6: one finance.statement per statement, then the movements."""
    f = write(tmp_path / "two.xml", camt(
        stmt("ST-1"), stmt("ST-2", opening="1100.00", closing="2100.00",
                           entries=[ntry(ref="BANK2", day="2026-11-12")])))
    assert appended(home, "camt053", f) == 4 + FILE + BATCH
    assert show(home, "ST-1")["type"] == "finance.statement"
    assert show(home, "ST-2")["opening_balance"] == "1100.00"
    assert show(home, "ST-1/BANK1")["type"] == "finance.collection"
    assert show(home, "ST-2/BANK2")["amount"] == "1000.00"


def test_camt_repeated_statement_id_in_one_file_gets_a_suffix(home: Path,
                                                              tmp_path: Path) -> None:
    """FORMAT §9.6: '-<n>' appended when a file repeats an id."""
    f = write(tmp_path / "rep.xml", camt(
        stmt("ST-1"), stmt("ST-1", opening="1100.00", closing="2100.00",
                           entries=[ntry(ref="BANK2")])))
    assert appended(home, "camt053", f) == 4 + FILE + BATCH
    assert show(home, "ST-1-2")["opening_balance"] == "1100.00"


@pytest.mark.parametrize("fmt", ["camt053", "mt940"])
def test_statement_id_keeps_only_allowed_characters(home: Path, tmp_path: Path,
                                                    fmt: str) -> None:
    text = camt(stmt(sid="ST#1\u00e9")) if fmt == "camt053" else mt(ref="ST#1\u00e9")
    assert appended(home, fmt, write(tmp_path / "id.dat", text)) == 2 + FILE + BATCH
    (sid,) = statement_ids(home)
    assert all(c.isascii() and (c.isalnum() or c in "._:/-") for c in sid), sid


@pytest.mark.parametrize("fmt", ["camt053", "mt940"])
@pytest.mark.parametrize("raw,expected", [("A  B", "A-B"), ("ST#1\u00e9", "ST-1"),
                                          ("#x/y:z.", "x/y:z.")])
def test_statement_id_runs_of_bad_characters_become_one_dash(
        home: Path, tmp_path: Path, fmt: str, raw: str, expected: str) -> None:
    """FORMAT §9.6 (as corrected after this review: it said each character, the code has
    always made each run one dash and dropped dashes at either end)."""
    text = camt(stmt(sid=raw)) if fmt == "camt053" else mt(ref=raw)
    assert appended(home, fmt, write(tmp_path / "id.dat", text)) == 2 + FILE + BATCH
    (sid,) = statement_ids(home)
    assert sid == expected if fmt == "camt053" else sid.startswith(expected + "/")


@pytest.mark.parametrize("fmt", ["camt053", "mt940"])
@pytest.mark.parametrize("raw", ["---", "\u00e9", "#"])
def test_statement_id_that_comes_out_empty_is_refused(
        home: Path, tmp_path: Path, fmt: str, raw: str) -> None:
    text = camt(stmt(sid=raw)) if fmt == "camt053" else mt(ref=raw)
    refused_whole(home, fmt, write(tmp_path / "id.dat", text))


def test_camt_entry_ids_and_bank_refs_follow_the_documented_fallbacks(
        home: Path, tmp_path: Path) -> None:
    """FORMAT §9.6: AcctSvcrRef, else NtryRef, else the position; '/<pos>' on a repeat."""
    def e(acct: str | None, nref: str | None) -> str:
        x = f"<NtryRef>{nref}</NtryRef>" if nref else ""
        a = f"<AcctSvcrRef>{acct}</AcctSvcrRef>" if acct else ""
        return (f'<Ntry>{x}<Amt Ccy="CNY">10.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
                f"<Sts>BOOK</Sts><BookgDt><Dt>2026-10-12</Dt></BookgDt>{a}</Ntry>")
    f = write(tmp_path / "refs.xml", camt(stmt(entries=[e("R1", "N0"), e("R1", None),
                                                        e(None, "N1"), e(None, None)],
                                               closing="140.00")))
    assert appended(home, "camt053", f) == 5 + FILE + BATCH
    assert show(home, "ST-1/R1")["bank_ref"] == "R1"
    assert show(home, "ST-1/R1/2")["bank_ref"] == "R1"
    assert show(home, "ST-1/N1")["bank_ref"] == "N1"
    assert show(home, "ST-1/4")["bank_ref"] == "ST-1/4"
    assert show(home, "ST-1/4")["value_date"] == "2026-10-12"  # booking date fallback


def test_camt_party_fields_are_pseudonymised(home: Path, tmp_path: Path) -> None:
    """INTERCHANGE mapping of payer_id / payee_account; README: never in clear."""
    payer = "91440100MA12345678"
    payee = "6222020200112233445"
    dbtr = ("<NtryDtls><TxDtls><RltdPties><Dbtr><Id><OrgId><Othr><Id>" + payer +
            "</Id></Othr></OrgId></Id></Dbtr></RltdPties></TxDtls></NtryDtls>")
    cdtr = ("<NtryDtls><TxDtls><RltdPties><CdtrAcct><Id><Othr><Id>" + payee +
            "</Id></Othr></Id></CdtrAcct></RltdPties></TxDtls></NtryDtls>")
    f = write(tmp_path / "p.xml", camt(stmt(closing="150.00", entries=[
        ntry("100.00", ref="IN1", extra=dbtr), ntry("50.00", "DBIT", ref="OUT1", extra=cdtr)])))
    assert appended(home, "camt053", f) == 3 + FILE + BATCH
    col, pay = show(home, "ST-1/IN1"), show(home, "ST-1/OUT1")
    assert col["type"] == "finance.collection" and pay["type"] == "finance.payment"
    assert col.get("payer_id") and col["payer_id"] != payer
    assert pay.get("payee_account") and pay["payee_account"] != payee


# ============================================================== camt.053: money


@pytest.mark.parametrize("where", ["entry", "opening", "closing"])
def test_camt_digit_beyond_the_fen_is_refused_naming_statement_and_entry(
        home: Path, tmp_path: Path, where: str) -> None:
    """FORMAT §9.6 / ADR 0013: refused with the file, statement and entry named."""
    amt = {"entry": ("1000.001", "100.00", "1100.00"), "opening": ("1000.00", "100.001",
           "1100.00"), "closing": ("1000.00", "100.00", "1100.009")}[where]
    f = write(tmp_path / "fen.xml", camt(stmt(entries=[ntry(amt[0])], opening=amt[1],
                                              closing=amt[2])))
    first = refused_whole(home, "camt053", f)
    assert "ST-1" in first
    if where == "entry":
        assert "entry 1" in first or "entry" in first


def test_camt_zeros_beyond_the_fen_are_fine(home: Path, tmp_path: Path) -> None:
    """FORMAT §9.6 refuses only a *non-zero* digit beyond the fen."""
    f = write(tmp_path / "z.xml", camt(stmt(entries=[ntry("1000.00000")],
                                            closing="1100.000")))
    assert appended(home, "camt053", f) == 2 + FILE + BATCH
    assert show(home, "ST-1/BANK1")["amount"] == "1000.00"
    assert show(home, "ST-1")["closing_balance"] == "1100.00"


@pytest.mark.parametrize("amount", ["-1000.00", "NaN", "Infinity", "-5", "1000,00",
                                    "1,000.00", "1 000.00", "", "0x3e8", "1000.00CNY"])
def test_camt_malformed_amounts_are_refused(home: Path, tmp_path: Path, amount: str) -> None:
    """camt Amt is an unsigned xs:decimal; FORMAT §9.6 entry amounts are unsigned."""
    f = write(tmp_path / "amt.xml", camt(stmt(entries=[ntry(amount)])))
    first = refused_whole(home, "camt053", f)
    assert "ST-1" in first


@pytest.mark.parametrize("amount", ["1E3", "1.0e+3", "1_000.00", "\uff11\uff10\uff10\uff10.00",
                                    "\u0661\u0660\u0660\u0660.00"])
def test_camt_non_xsd_decimal_amounts_are_refused(home: Path, tmp_path: Path,
                                                  amount: str) -> None:
    f = write(tmp_path / "amt.xml", camt(stmt(entries=[ntry(amount)])))
    refused_whole(home, "camt053", f)


@pytest.mark.parametrize("amount", ["+1000.00", " 1000.00 ", "1000", "1000.5"])
def test_camt_valid_xsd_decimal_forms_are_read_exactly(home: Path, tmp_path: Path,
                                                       amount: str) -> None:
    """xs:decimal allows a leading '+', surrounding whitespace and fewer fraction digits."""
    exact = "1000.50" if amount == "1000.5" else "1000.00"
    f = write(tmp_path / "amt.xml", camt(stmt(entries=[ntry(amount)],
                                              closing=f"{100 + float(exact):.2f}")))
    assert appended(home, "camt053", f) == 2 + FILE + BATCH
    assert show(home, "ST-1/BANK1")["amount"] == exact


def test_camt_more_than_15_integer_digits_is_refused(home: Path, tmp_path: Path) -> None:
    """INTERCHANGE money: at most 999999999999999.99; the problem names line and field."""
    f = write(tmp_path / "big.xml", camt(stmt(entries=[ntry("1234567890123456.00")],
                                              opening="0.00", closing="1234567890123456.00")))
    first = refused_whole(home, "camt053", f)
    assert f"{f.name}:" in first


@pytest.mark.parametrize("where", ["entry", "balance"])
def test_camt_28_digit_amounts_are_refused_on_their_field(home: Path, tmp_path: Path,
                                                          where: str) -> None:
    """The insider review: a 28-digit amount was an internal error (decimal arithmetic
    beyond its precision); now one line naming the statement and the limit."""
    big = "1234567890123456789012345678.00"
    s = (stmt(entries=[ntry(big)], opening="0.00", closing=big) if where == "entry"
         else stmt(entries=[], opening=big, closing=big))
    first = refused_whole(home, "camt053", write(tmp_path / "huge.xml", camt(s)))
    assert "more than 15 integer digits" in first and "ST-1" in first


def test_mt940_long_reference_is_refused_not_cut(home: Path, tmp_path: Path) -> None:
    """The insider review: a :20: of 300 characters was silently cut to 16 (two files
    could then share statement ids); SWIFT allows 16x."""
    first = refused_whole(home, "mt940", write(tmp_path / "long.sta", mt(ref="R" * 300)))
    assert ":20: transaction reference" in first and "300 characters long" in first


def test_camt_largest_amount_imports(home: Path, tmp_path: Path) -> None:
    big = "999999999999999.99"
    f = write(tmp_path / "max.xml", camt(stmt(entries=[ntry(big)], opening="0.00",
                                              closing=big)))
    assert appended(home, "camt053", f) == 2 + FILE + BATCH
    assert show(home, "ST-1/BANK1")["amount"] == big


@pytest.mark.parametrize("where", ["entry", "account", "opening", "closing", "lowercase",
                                   "missing-ccy"])
def test_camt_currency_other_than_cny_is_refused(home: Path, tmp_path: Path,
                                                 where: str) -> None:
    """FORMAT §9.6: account, balance or entry not CNY refuses the whole file."""
    s = {
        "entry": stmt(entries=[ntry(), ntry("5.00", ref="B2", ccy='Ccy="EUR"')],
                      closing="1105.00"),
        "account": stmt(acct_ccy="USD"),
        "opening": stmt(bals=bal("OPBD", "100.00", "2026-10-01", ccy='Ccy="USD"')
                        + bal("CLBD", "1100.00", "2026-10-31")),
        "closing": stmt(bals=bal("OPBD", "100.00", "2026-10-01")
                        + bal("CLBD", "1100.00", "2026-10-31", ccy='Ccy="HKD"')),
        "lowercase": stmt(entries=[ntry(ccy='Ccy="cny"')]),
        "missing-ccy": stmt(entries=[ntry(ccy="")]),
    }[where]
    f = write(tmp_path / "ccy.xml", camt(s))
    first = refused_whole(home, "camt053", f)
    assert "ST-1" in first


@pytest.mark.parametrize("ind", [None, "", "XXXX", "crdt", "CRDTDBIT"])
def test_camt_bad_credit_debit_indicator_is_refused(home: Path, tmp_path: Path,
                                                    ind: str | None) -> None:
    f = write(tmp_path / "cd.xml", camt(stmt(entries=[ntry(cd=ind)])))
    first = refused_whole(home, "camt053", f)
    assert "ST-1" in first


def test_camt_balance_without_indicator_is_refused(home: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "cd.xml", camt(stmt(bals=bal("OPBD", "100.00", "2026-10-01", ind="")
                                             + bal("CLBD", "1100.00", "2026-10-31"))))
    refused_whole(home, "camt053", f)


def test_camt_debit_balance_is_negative_and_debit_entry_is_a_payment(home: Path,
                                                                    tmp_path: Path) -> None:
    """FORMAT §9.6: balances are signed (overdrawn is negative); a debit is a payment."""
    f = write(tmp_path / "od.xml", camt(stmt(entries=[ntry("300.00", "DBIT")], bals=(
        bal("OPBD", "100.00", "2026-10-01") + bal("CLBD", "200.00", "2026-10-31", "DBIT")))))
    assert appended(home, "camt053", f) == 2 + FILE + BATCH
    st = show(home, "ST-1")
    assert st["closing_balance"] == "-200.00" and st["entries_net"] == "-300.00"
    assert st["entries"][0]["direction"] == "debit" and st["entries"][0]["amount"] == "300.00"
    assert show(home, "ST-1/BANK1")["type"] == "finance.payment"


@pytest.mark.parametrize("where", ["entry-booking", "entry-value", "opening", "closing",
                                   "month-13", "not-a-date"])
def test_camt_impossible_dates_are_refused(home: Path, tmp_path: Path, where: str) -> None:
    s = {
        "entry-booking": stmt(entries=[ntry(day="2026-02-30", val="2026-02-27")]),
        "entry-value": stmt(entries=[ntry(val="2026-02-30")]),
        "opening": stmt(bals=bal("OPBD", "100.00", "2026-02-30")
                        + bal("CLBD", "1100.00", "2026-10-31")),
        "closing": stmt(bals=bal("OPBD", "100.00", "2026-10-01")
                        + bal("CLBD", "1100.00", "2026-04-31")),
        "month-13": stmt(entries=[ntry(day="2026-13-01")]),
        "not-a-date": stmt(entries=[ntry(day="yesterday")]),
    }[where]
    f = write(tmp_path / "date.xml", camt(s))
    first = refused_whole(home, "camt053", f)
    assert "ST-1" in first


def test_camt_pending_entries_are_not_movements(home: Path, tmp_path: Path) -> None:
    """FORMAT §9.6: entries lists *booked* entries; movements per booked entry."""
    pdng = ntry("7.00", ref="P1").replace("<Sts>BOOK</Sts>", "<Sts>PDNG</Sts>")
    f = write(tmp_path / "p.xml", camt(stmt(entries=[ntry(), pdng])))
    assert appended(home, "camt053", f) == 2 + FILE + BATCH
    assert show(home, "ST-1")["entry_count"] == 1
    assert not exists(home, "ST-1/P1")


def test_camt_zero_amount_entry_makes_no_movement(home: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "z.xml", camt(stmt(entries=[ntry(), ntry("0.00", ref="Z")])))
    assert appended(home, "camt053", f) == 2 + FILE + BATCH
    assert not exists(home, "ST-1/Z")


def test_camt_statement_without_entries(home: Path, tmp_path: Path) -> None:
    """FORMAT §9.6: 'entries' omitted when empty; the statement record alone."""
    f = write(tmp_path / "e.xml", camt(stmt(entries=[], closing="100.00")))
    assert appended(home, "camt053", f) == 1 + FILE + BATCH
    st = show(home, "ST-1")
    assert "entries" not in st and st["entry_count"] == 0 and st["entries_net"] == "0.00"


def test_camt_missing_closing_balance_has_a_clear_outcome(home: Path, tmp_path: Path) -> None:
    """FORMAT §9.6 allows it (occurred_at falls back to the opening's date)."""
    f = write(tmp_path / "nc.xml", camt(stmt(bals=bal("OPBD", "100.00", "2026-10-01"))))
    assert clear_outcome(home, "camt053", f) == 0
    st = show(home, "ST-1")
    assert "closing_balance" not in st
    assert st["occurred_at"] == "2026-10-01T00:00:00+08:00"
    assert balance(home)[0] == 1  # nothing to compare the books with


def test_balance_does_not_deny_an_imported_statement_without_closing(home: Path,
                                                                    tmp_path: Path) -> None:
    f = write(tmp_path / "nc.xml", camt(stmt(bals=bal("OPBD", "100.00", "2026-10-01"))))
    assert appended(home, "camt053", f) == 2 + FILE + BATCH
    res = invoke("balance", *h(home), "--fund-account", "income", "--as-of", AS_OF)
    assert res.exit_code == 1
    assert "no bank statement" not in res.output


# ============================================ balances that do not add up: import + break


def test_statement_that_does_not_add_up_imports_and_is_a_break(tmp_path: Path,
                                                               db_url: str) -> None:
    """INTERCHANGE: still imported and reported as STATEMENT_BALANCE_BREAK."""
    home = pg_home(tmp_path, db_url)
    f = write(tmp_path / "nb.xml", camt(stmt(closing="5.00")))
    assert appended(home, "camt053", f, db=db_url) == 2 + FILE + BATCH
    assert "STATEMENT_BALANCE_BREAK" in reconcile_codes(home, db_url)
    opening(home, "100.00", db_url)
    code, bal_ = balance(home, db_url)
    assert code == 1 and bal_["balanced"] is False
    (acct,) = bal_["accounts"]
    assert (acct["bank_balance"], acct["book_balance"]) == ("5.00", "100.00")
    # the statement's entry is the bank's, not booked by the agency: 银行已收企业未收
    assert acct["items"]["bank_credit"]["total"] == "1000.00"
    assert (acct["adjusted_bank"], acct["adjusted_book"]) == ("5.00", "1100.00")
    assert acct["difference"] == "-1095.00"


def test_statements_that_do_not_chain_are_a_break(tmp_path: Path, db_url: str) -> None:
    """FORMAT §9.6: consecutive statements of one account that do not chain."""
    home = pg_home(tmp_path, db_url)
    f1 = write(tmp_path / "a.xml", camt(stmt("ST-1")))
    f2 = write(tmp_path / "b.xml", camt(stmt("ST-2", opening="999.00", closing="1999.00",
                                             seq="2", entries=[ntry(ref="B2")]).replace(
        "2026-10-01", "2026-11-01").replace("2026-10-31", "2026-11-30")))
    assert appended(home, "camt053", f1, db=db_url) == 2 + FILE + BATCH
    assert "STATEMENT_BALANCE_BREAK" not in reconcile_codes(home, db_url)
    assert appended(home, "camt053", f2, db=db_url) == 2 + FILE + BATCH
    assert "STATEMENT_BALANCE_BREAK" in reconcile_codes(home, db_url)


def test_balanced_statement_balances(tmp_path: Path, db_url: str) -> None:
    home = pg_home(tmp_path, db_url)
    f = write(tmp_path / "ok.xml", camt(stmt(opening="0.00", closing="1000.00")))
    assert appended(home, "camt053", f, db=db_url) == 2 + FILE + BATCH
    assert "STATEMENT_BALANCE_BREAK" not in reconcile_codes(home, db_url)
    assert balance(home, db_url)[0] == 1  # no opening balance recorded yet
    opening(home, "0.00", db_url)
    code, bal_ = balance(home, db_url)
    assert code == 0 and bal_["balanced"] is True


# =================================================================== re-import, conflict


def test_reimport_is_a_no_op_and_other_content_is_a_conflict(tmp_path: Path,
                                                             db_url: str) -> None:
    """FORMAT §9.2 / §9.6: identical re-send is a no-op; same id, other content: conflict."""
    home = pg_home(tmp_path, db_url)
    f = write(tmp_path / "s.xml", GOOD)
    assert appended(home, "camt053", f, db=db_url) == 2 + FILE + BATCH
    res = invoke("ingest", *h(home, db_url), "--format", "camt053", "--region", R,
                 "--fund-account", "income", "--json", str(f))
    assert res.exit_code == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["appended"] == 0 and rep["rejected"] == 0
    assert size(home, db_url) == 2 + FILE + BATCH
    other = write(tmp_path / "other.xml", camt(stmt(closing="1200.00",
                                                    entries=[ntry("1100.00")])))
    first = refused_whole(home, "camt053", other, db=db_url)
    assert "id" in first and "ST-1" in first
    assert size(home, db_url) == 2 + FILE + BATCH


def test_mt940_reimport_is_a_no_op(tmp_path: Path, db_url: str) -> None:
    home = pg_home(tmp_path, db_url)
    f = write(tmp_path / "s.sta", mt())
    assert appended(home, "mt940", f, db=db_url) == 2 + FILE + BATCH
    assert appended(home, "mt940", f, db=db_url) == 0
    # the same statement with CRLF line ends is the same statement (only the file, other
    # bytes, is kept too)
    crlf = write(tmp_path / "s-crlf.sta", mt(nl="\r\n"))
    assert appended(home, "mt940", crlf, db=db_url) == FILE + BATCH


def test_same_file_under_another_region_is_a_conflict_not_a_duplicate(home: Path,
                                                                     tmp_path: Path) -> None:
    f = write(tmp_path / "s.xml", GOOD)
    assert appended(home, "camt053", f) == 2 + FILE + BATCH
    before = size(home)
    res = invoke("ingest", *h(home), "--format", "camt053", "--region", "110100",
                 "--fund-account", "income", str(f))
    refused(res, f.name)
    assert size(home) == before


# ===================================================================== MT940 parsing


@pytest.mark.parametrize("missing", ["20", "25"])
def test_mt940_missing_reference_or_account_is_refused(home: Path, tmp_path: Path,
                                                       missing: str) -> None:
    text = mt(ref="") if missing == "20" else mt(account=None)
    if missing == "20":
        text = text.replace(":20:\n", "")
    f = write(tmp_path / "m.sta", text)
    one_line(ingest(home, "mt940", f), f.name)
    assert size(home) == 0


@pytest.mark.parametrize("missing", ["28C", "60F", "62F"])
def test_mt940_missing_optional_per_docs_tags_has_a_clear_outcome(home: Path, tmp_path: Path,
                                                                  missing: str) -> None:
    """SWIFT makes :28C:/:60a:/:62a: mandatory; FORMAT §9.6 treats them as optional
    ('sequence … if present', occurred_at fallbacks). Either way: a clear outcome."""
    text = mt(seq=None if missing == "28C" else "1/1",
              opening=None if missing == "60F" else "C261001CNY100,00",
              closing=None if missing == "62F" else "C261031CNY1100,00")
    f = write(tmp_path / "m.sta", text)
    assert clear_outcome(home, "mt940", f) == 0  # imported: the fallbacks of FORMAT §9.6


def test_mt940_statement_ids_per_message(home: Path, tmp_path: Path) -> None:
    """FORMAT §9.6: one statement per :20: message, then the movements."""
    two = mt() + mt(ref="STMT-2", seq="2/1", opening="C261031CNY1100,00", account="6222999",
                    closing="C261130CNY2100,00",
                    lines61=["2611121112C1000,00NTRFNONREF//BANK2"])
    f = write(tmp_path / "two.sta", two)
    assert appended(home, "mt940", f) == 4 + FILE + BATCH
    assert len(statement_ids(home)) == 2


def test_mt940_statement_id_is_reference_number_dot_sequence(home: Path, tmp_path: Path) -> None:
    """FORMAT §9.6: :20:STMT-1 with :28C:1/1 gives STMT-1/1.1 (the review read the first
    wording, ':20:' + '/' + ':28C:', as STMT-1/1/1; the document now says which)."""
    f = write(tmp_path / "m.sta", mt())
    assert appended(home, "mt940", f) == 2 + FILE + BATCH
    assert statement_ids(home) == ["STMT-1/1.1"]


def test_mt940_repeated_message_id_gets_a_suffix(home: Path, tmp_path: Path) -> None:
    """FORMAT §9.6: '-<n>' appended when a file repeats an id."""
    f = write(tmp_path / "rep.sta", mt() + mt(opening="C261031CNY1100,00", account="6222999",
                                              closing="C261130CNY2100,00",
                                              lines61=["2611121112C1000,00NTRFNONREF//B2"]))
    assert appended(home, "mt940", f) == 4 + FILE + BATCH
    ids = statement_ids(home)
    assert len(ids) == 2 and ids[1] == ids[0] + "-2"


@pytest.mark.parametrize("mark,direction", [("C", "credit"), ("D", "debit"),
                                            ("RD", "credit"),
                                            ("RC", "debit")])
def test_mt940_debit_credit_marks(home: Path, tmp_path: Path, mark: str,
                                  direction: str) -> None:
    closing = "C261031CNY1100,00" if direction == "credit" else "D261031CNY900,00"
    f = write(tmp_path / "m.sta", mt(lines61=[f"2610121012{mark}1000,00NTRFNONREF//BANK1"],
                                     closing=closing))
    assert appended(home, "mt940", f) == 2 + FILE + BATCH
    (sid,) = statement_ids(home)
    st = show(home, sid)
    assert st["entries"][0]["direction"] == direction
    assert st["entries"][0]["amount"] == "1000.00"
    kind = "finance.collection" if direction == "credit" else "finance.payment"
    assert show(home, f"{sid}/BANK1")["type"] == kind
    assert "STATEMENT_BALANCE_BREAK" not in reconcile_codes(home)


@pytest.mark.parametrize("line61", [
    "2610121012X1000,00NTRFNONREF//BANK1",  # no D/C mark
    "hello world",
    "2613401012C1000,00NTRFNONREF//BANK1",  # month 13
    "2610321012C1000,00NTRFNONREF//BANK1",  # 32 October
    "2610121012C1,000,00NTRFNONREF//BANK1",  # two commas
])
def test_mt940_malformed_61_is_refused(home: Path, tmp_path: Path, line61: str) -> None:
    f = write(tmp_path / "m.sta", mt(lines61=[line61]))
    refused_whole(home, "mt940", f)


@pytest.mark.parametrize("line61", ["2610121012X1000,00NTRFNONREF//BANK1", "hello world"])
def test_mt940_malformed_61_is_one_clean_line(home: Path, tmp_path: Path, line61: str) -> None:
    f = write(tmp_path / "m.sta", mt(lines61=[line61]))
    res = _run_bfa("ingest", "--home", str(home), "--format", "mt940", "--region", R, str(f))
    first = one_line(res, f.name)
    assert "object at 0x" not in first


def test_mt940_three_decimals_are_refused(home: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "m.sta", mt(lines61=["2610121012C1000,001NTRFNONREF//BANK1"]))
    first = refused_whole(home, "mt940", f)
    assert "STMT-1" in first and "entry" in first


@pytest.mark.parametrize("where", ["61", "62F"])
def test_mt940_decimal_point_is_not_silently_truncated(home: Path, tmp_path: Path,
                                                       where: str) -> None:
    text = (mt(lines61=["2610121012C1000.55NTRFNONREF//BANK1"], closing="C261031CNY1100,55")
            if where == "61" else mt(closing="C261031CNY1100.50"))
    f = write(tmp_path / "m.sta", text)
    # SWIFT writes a decimal comma: a point is not read as one, nor cut off, but refused
    assert "is not in SWIFT's format" in refused_whole(home, "mt940", f)


def test_mt940_amount_beyond_15_digits_is_refused(home: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "m.sta", mt(lines61=["2610121012C1234567890123456,00NTRFNONREF//B1"],
                                     opening="C261001CNY0,00", closing="C261031CNY0,00"))
    refused_whole(home, "mt940", f)


def test_mt940_balance_beyond_15_digits_is_refused(home: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "m.sta", mt(opening="C261001CNY1234567890123456,00"))
    refused_whole(home, "mt940", f)


@pytest.mark.parametrize("line61", ["2602301012C1000,00NTRFNONREF//BANK1",
                                    "2602281302C1000,00NTRFNONREF//BANK1"])
def test_mt940_impossible_61_dates_are_refused(home: Path, tmp_path: Path, line61: str) -> None:
    """FORMAT §9.6: a :61: value date of 30 February (or an entry date of month 13) is
    refused; the library alone read it as 28 February, moving the money's date."""
    f = write(tmp_path / "m.sta", mt(lines61=[line61]))
    assert "is not a date" in refused_whole(home, "mt940", f)


@pytest.mark.parametrize("where", ["60F", "62F"])
def test_mt940_impossible_balance_date_is_refused(home: Path, tmp_path: Path,
                                                  where: str) -> None:
    text = mt(opening="C261032CNY100,00") if where == "60F" else mt(closing="C261131CNY1100,00")
    refused_whole(home, "mt940", write(tmp_path / "m.sta", text))


@pytest.mark.parametrize("where", ["60F", "62F"])
def test_mt940_other_currency_is_refused(home: Path, tmp_path: Path, where: str) -> None:
    text = (mt(opening="C261001EUR100,00") if where == "60F"
            else mt(closing="C261031USD1100,00"))
    first = refused_whole(home, "mt940", write(tmp_path / "m.sta", text))
    assert "STMT-1" in first


def test_mt940_multiline_86_and_crlf_give_the_same_records(home: Path, template: Path,
                                                           tmp_path: Path) -> None:
    narrative = "line one\nline two /with slash\n:not-a-tag\nline four"
    lf = write(tmp_path / "lf.sta", mt(s86=narrative))
    crlf = write(tmp_path / "crlf.sta", mt(s86=narrative, nl="\r\n"))
    assert appended(home, "mt940", lf) == 2 + FILE + BATCH
    (sid,) = statement_ids(home)
    other = tmp_path / "other"
    shutil.copytree(template, other)
    assert appended(other, "mt940", crlf) == 2 + FILE + BATCH
    assert statement_ids(other) == [sid]
    for rid in (sid, f"{sid}/BANK1"):
        assert show(home, rid) == show(other, rid)


@pytest.mark.parametrize("nl", ["\n", "\r\n"])
def test_mt940_swift_block_wrappers(home: Path, template: Path, tmp_path: Path,
                                    nl: str) -> None:
    wrapped = ("{1:F01BANKCNBJAXXX0000000000}{2:O9401200261031BANKCNBJAXXX00000000002610311200N}"
               "{4:" + nl + mt(nl=nl) + "-}")
    f = write(tmp_path / "w.sta", wrapped)
    assert appended(home, "mt940", f) == 2 + FILE + BATCH
    plain = tmp_path / "plain"
    shutil.copytree(template, plain)
    assert appended(plain, "mt940", write(tmp_path / "p.sta", mt())) == 2 + FILE + BATCH
    (sid,) = statement_ids(home)
    assert show(home, sid) == show(plain, sid)


@pytest.mark.parametrize("tail", ["garbage garbage\n", "-}\n{garbage", "\x00\x01\x02\n"])
def test_mt940_trailing_garbage_has_a_clear_outcome(home: Path, tmp_path: Path,
                                                    tail: str) -> None:
    f = write(tmp_path / "t.sta", mt() + tail)
    assert clear_outcome(home, "mt940", f) == 0  # text after the last message is ignored
    (sid,) = statement_ids(home)
    st = show(home, sid)
    assert st["closing_balance"] == "1100.00" and st["entries_net"] == "1000.00"


@pytest.mark.parametrize("kind", ["utf8-86", "latin1-86", "utf8-20", "latin1-20", "gbk-86"])
def test_mt940_non_ascii_content(home: Path, tmp_path: Path, kind: str) -> None:
    """Non-ASCII text: a clear outcome; a statement id keeps only [A-Za-z0-9._:/-]."""
    data = {
        "utf8-86": mt(s86="付款 张三").encode(),
        "latin1-86": mt(s86="caf\xe9").encode("latin-1"),
        "utf8-20": mt(ref="STMT-\u00e91").encode(),
        "latin1-20": mt(ref="STMT-\xe91").encode("latin-1"),
        "gbk-86": mt(s86="付款 张三").encode("gbk"),
    }[kind]
    f = write(tmp_path / "n.sta", data)
    assert clear_outcome(home, "mt940", f) == 0
    for sid in statement_ids(home):
        assert all(c.isascii() and (c.isalnum() or c in "._:/-") for c in sid), sid
        assert sid.startswith("STMT-")


@pytest.mark.parametrize("s86", [
    "166?00SEPA-UEBERWEISUNG?20EREF+NOTPROVIDED?21SVWZ+Rente?22IBAN+DE89370400440532013000"
    "?30COBADEFFXXX?31DE89370400440532013000?32Max Muster",
    "/CNTP/DE89370400440532013000/COBADEFFXXX/Max Muster///REMI/USTD//Rente/",
])
def test_mt940_payee_account_from_86(home: Path, tmp_path: Path, s86: str) -> None:
    f = write(tmp_path / "p.sta", mt(lines61=["2610121012D1000,00NTRFNONREF//BANK1"],
                                     closing="D261031CNY900,00", s86=s86))
    assert appended(home, "mt940", f) == 2 + FILE + BATCH
    (sid,) = statement_ids(home)
    pay = show(home, f"{sid}/BANK1")
    assert pay["type"] == "finance.payment"
    assert pay.get("payee_account"), pay
    assert "DE89370400440532013000" not in json.dumps(pay)  # pseudonymised


def test_mt940_customer_reference_is_the_fallback_bank_ref(home: Path, tmp_path: Path) -> None:
    """FORMAT §9.6: bank reference after '//' else the customer reference (unless NONREF)."""
    f = write(tmp_path / "c.sta", mt(lines61=["2610121012C1000,00NTRFCUST1"]))
    assert appended(home, "mt940", f) == 2 + FILE + BATCH
    (sid,) = statement_ids(home)
    assert show(home, f"{sid}/CUST1")["bank_ref"] == "CUST1"


@pytest.mark.parametrize("data", [b"", b"\n\n  \r\n", b"\xef\xbb\xbf", b"hello\n",
                                  b":20:\n", b"{1:F01}{4:\n-}"])
def test_mt940_empty_or_not_a_statement_is_refused(home: Path, tmp_path: Path,
                                                   data: bytes) -> None:
    f = write(tmp_path / "e.sta", data)
    one_line(ingest(home, "mt940", f), f.name)
    assert size(home) == 0


def test_mt940_json_lines_and_camt_are_refused(home: Path, tmp_path: Path) -> None:
    jl = write(tmp_path / "f.jsonl", json.dumps({
        "type": "finance.collection", "id": "C1", "region": R,
        "occurred_at": "2026-10-10T09:00:00+08:00", "amount": "1.00",
        "value_date": "2026-10-10", "bank_ref": "R1"}) + "\n")
    one_line(ingest(home, "mt940", jl), jl.name)
    x = write(tmp_path / "s.xml", GOOD)
    one_line(ingest(home, "mt940", x), x.name)
    # and a bank file given as JSON Lines (the default format) is refused too
    refused(invoke("ingest", *h(home), str(write(tmp_path / "m.sta", mt()))), "m.sta")
    assert size(home) == 0


# ======================================================= garbage: quick, bounded memory


def _run_bfa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BFA, *args], capture_output=True, text=True, errors="replace",
                          timeout=60, check=False,
                          env={"PATH": "/usr/bin:/bin", "BFA_USER": "tester"})


@pytest.mark.parametrize("fmt,kind", [("camt053", "random"), ("mt940", "random"),
                                      ("mt940", "lines"), ("mt940", "huge-86"),
                                      ("camt053", "xml-ish")])
def test_five_megabytes_of_garbage_is_refused_quickly(home: Path, tmp_path: Path, fmt: str,
                                                      kind: str) -> None:
    rnd = random.Random(7)
    data = {
        "random": rnd.randbytes(5_000_000),
        "lines": b"ABC DEF 123,45\n" * 340_000,
        "huge-86": b":20:X\n:86:" + b"y" * 5_000_000 + b"\n",
        "xml-ish": b"<a>" + b"<b>x</b>" * 600_000,
    }[kind]
    f = write(tmp_path / "garbage.dat", data)
    t0 = time.monotonic()
    res = _run_bfa("ingest", "--home", str(home), "--format", fmt, "--region", R, str(f))
    assert time.monotonic() - t0 < 30
    refused(res, f.name)
    assert len(res.stderr) < 100_000
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 1_500_000  # KiB
    assert size(home) == 0


def test_five_megabytes_of_broken_61_lines_is_one_line(home: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "g.sta", (":20:" + "x" * 100 + "\n:61:" + "9" * 1000 + "\n") * 4_500)
    res = _run_bfa("ingest", "--home", str(home), "--format", "mt940", "--region", R, str(f))
    one_line(res, f.name)
    assert size(home) == 0


# ================================================================================ options


@pytest.mark.parametrize("given", [("--fund-account", "income"), ("--region", R), ()],
                         ids=["no-region", "no-fund-account", "neither"])
def test_an_unmapped_account_needs_both_options(home: Path, tmp_path: Path,
                                                given: tuple[str, ...]) -> None:
    """FORMAT §9.6: an account the home does not map, without both options, is refused
    (exit 2) before anything is written, naming the command that maps it."""
    f = write(tmp_path / "s.xml", GOOD)
    for fmt in ("camt053", "mt940"):
        g = write(tmp_path / "s.sta", mt()) if fmt == "mt940" else f
        res = invoke("ingest", *h(home), "--format", fmt, *given, str(g))
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert f"bfa bank-account set {ACCT}" in res.stderr, res.stderr
        assert "nothing was imported" in res.stderr
    assert size(home) == 0


def test_a_mapped_account_needs_no_option(home: Path, tmp_path: Path) -> None:
    """FORMAT §5.4, §9.6: statements are read through the home's map of bank accounts;
    an option may repeat the map, never contradict it."""
    res = invoke("bank-account", "set", *h(home), ACCT, "--fund-account", "expenditure",
                 "--region", "440300")
    assert res.exit_code == 0, res.output
    listed = json.loads(invoke("bank-account", "list", *h(home), "--json").stdout)
    assert listed == [{"number": ACCT, "fund_account": "expenditure", "region": "440300"}]
    f = write(tmp_path / "s.xml", GOOD)
    res = invoke("ingest", *h(home), "--format", "camt053", "--fund-account", "income",
                 str(f))
    assert res.exit_code == 2 and "maps the account to expenditure" in res.stderr
    assert size(home) == 0
    res = invoke("ingest", *h(home), "--format", "camt053", str(f))
    assert res.exit_code == 0, res.stderr
    st = show(home, "ST-1")
    assert (st["fund_account"], st["region"]) == ("expenditure", "440300")
    assert "1 statement(s), 1 entries: 0 confirmed a movement already in the ledger, 1 new" \
        in res.stdout
    res = invoke("ingest", *h(home), "--format", "camt053", str(f), "--json")
    assert json.loads(res.stdout)["files"][0]["statement"] == {
        "statements": 1, "entries": 1, "confirmed": 1, "new": 0, "mismatched": 0}
    for bad in (["NO-SUCH", "--fund-account", "income", "--region", "4401"],
                [" ", "--fund-account", "income", "--region", "440100"]):
        res = invoke("bank-account", "set", *h(home), *bad)
        assert res.exit_code == 2 and res.stderr.startswith("bfa: error: "), res.output
    assert invoke("bank-account", "remove", *h(home), ACCT).exit_code == 0
    assert invoke("bank-account", "remove", *h(home), ACCT).exit_code == 2
    assert "no bank account mapped" in invoke("bank-account", "list", *h(home)).stdout


@pytest.mark.parametrize("region", ["44010", "4401000", "abcdef", "\uff14\uff14\uff10\uff11"
                                    "\uff10\uff10", "\u0664\u0664\u0660\u0661\u0660\u0660",
                                    "440100\n", " 440100", ""])
def test_bad_region_codes_are_refused(home: Path, tmp_path: Path, region: str) -> None:
    """INTERCHANGE: region is 6 digits; nothing of the file appended."""
    f = write(tmp_path / "s.xml", GOOD)
    res = invoke("ingest", *h(home), "--format", "camt053", "--region", region,
                 "--fund-account", "income", str(f))
    assert res.exit_code == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.output and "internal error" not in res.output
    assert res.stderr.startswith(("bfa: error: ", "Usage: "))
    assert size(home) == 0


def test_bad_fund_account_is_a_usage_error(home: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "s.xml", GOOD)
    res = invoke("ingest", *h(home), "--format", "camt053", "--region", R,
                 "--fund-account", "savings", str(f))
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert size(home) == 0


def test_reject_file_is_refused_for_bank_statements(home: Path, tmp_path: Path) -> None:
    """FORMAT §9.6: --reject-file is refused (usage error, exit 2)."""
    f = write(tmp_path / "s.xml", GOOD)
    rej = tmp_path / "rej.jsonl"
    rej.write_text("keep\n")
    res = invoke("ingest", *h(home), "--format", "camt053", "--region", R,
                 "--reject-file", str(rej), str(f))
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert size(home) == 0
    assert rej.read_text() == "keep\n"


def test_missing_file_is_one_line(home: Path, tmp_path: Path) -> None:
    one_line(ingest(home, "camt053", tmp_path / "nope.xml"), "nope.xml")


def test_several_files_second_bad_keeps_the_first_and_skips_the_rest(
        tmp_path: Path, db_url: str) -> None:
    """FORMAT §9.1: files before the refused one stay appended, files after are not read."""
    home = pg_home(tmp_path, db_url)
    good = write(tmp_path / "good.xml", GOOD)
    bad = write(tmp_path / "bad.xml", GOOD[:200])
    later = write(tmp_path / "later.xml", camt(stmt("ST-9", entries=[ntry(ref="B9")])))
    res = invoke("ingest", *h(home, db_url), "--format", "camt053", "--region", R,
                 "--fund-account", "income", "--json", str(good), str(bad), str(later))
    refused(res, "bad.xml")
    assert res.stdout == ""  # --json: nothing on standard output in that case
    assert size(home, db_url) == 2 + FILE + BATCH
    assert show(home, "ST-1", db_url)["type"] == "finance.statement"
    assert invoke("show", *h(home, db_url), "ST-9").exit_code != 0
    verify_clean(home, db_url)


@pytest.mark.parametrize("second", ["malformed", "missing", "conflict"])
def test_several_files_error_names_the_files_that_stay_appended(home: Path, tmp_path: Path,
                                                                 second: str) -> None:
    good = write(tmp_path / "good.xml", GOOD)
    bad = {
        "malformed": write(tmp_path / "bad.xml", GOOD[:200]),
        "missing": tmp_path / "bad.xml",
        "conflict": write(tmp_path / "bad.xml", camt(stmt(closing="9.00"))),
    }[second]
    res = ingest(home, "camt053", good, bad)
    assert res.exit_code == 2
    assert "the files before it stay appended" in res.stderr
    assert "good.xml (3 appended" in res.stderr


def test_mixed_formats_in_one_command_second_file_wrong_format(home: Path,
                                                               tmp_path: Path) -> None:
    """A camt.053 file then an MT940 file under --format camt053: the second is refused."""
    good = write(tmp_path / "good.xml", GOOD)
    sta = write(tmp_path / "m.sta", mt())
    res = ingest(home, "camt053", good, sta)
    refused(res, "m.sta")
    assert size(home) == 2 + FILE + BATCH
    verify_clean(home)


@pytest.mark.parametrize("number", ["６２２２", "62 22", "账户1"])
def test_bank_account_numbers_are_ascii(home: Path, number: str) -> None:
    res = invoke("bank-account", "set", *h(home), number, "--fund-account", "income",
                 "--region", "440100")
    assert res.exit_code == 2 and "ASCII" in res.stderr, res.output


def test_a_changed_mapping_warns(home: Path) -> None:
    args = ["bank-account", "set", *h(home), ACCT, "--region", "440100", "--fund-account"]
    assert invoke(*args, "income").exit_code == 0
    res = invoke(*args, "expenditure")
    assert res.exit_code == 0 and "warning: it was income" in res.stderr


@pytest.mark.parametrize("banks", ["null", '{" 6222": {"fund_account": "income", '
                                           '"region": "440100"}}'])
def test_a_hand_edited_map_is_checked(home: Path, banks: str) -> None:
    cfg = home / "config.json"
    doc = json.loads(cfg.read_text("utf-8"))
    cfg.write_text(json.dumps(doc)[:-1] + f', "bank_accounts": {banks}}}', "utf-8")
    res = invoke("bank-account", "list", *h(home))
    assert res.exit_code == 2 and "config.json" in res.stderr, res.output
