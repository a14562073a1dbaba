"""Bank statements into the ledger, on both backends: mapping, idempotency, CNY only,
confirmation of existing movements, STATEMENT_BALANCE_BREAK, AMOUNT_MISMATCH, book vs bank."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger import InputError, Ledger
from reconcile.bank import (
    bank_reconciliation,
    record_opening,
    statement_breaks,
    statement_records,
)
from reconcile.matching._refresh import refresh
from tests._records import REGION, collection
from tests._vectors import vectors_dir

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


def _bal(code: str, amount: str, day: str) -> str:
    ind = "DBIT" if amount.startswith("-") else "CRDT"
    return (f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
            f"<Amt Ccy=\"CNY\">{amount.lstrip('-')}</Amt><CdtDbtInd>{ind}</CdtDbtInd>"
            f"<Dt><Dt>{day}</Dt></Dt></Bal>")


def camt(path: Path, sid: str, opening: str, closing: str, entries: list[tuple[str, str, str]],
         ccy: str = "CNY", day: str = "2026-11-20") -> Path:
    ntry = "".join(
        f"<Ntry><Amt Ccy=\"{ccy}\">{amt}</Amt><CdtDbtInd>{cd}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>"
        f"<BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt>"
        f"<AcctSvcrRef>{ref}</AcctSvcrRef>"
        "<NtryDtls><TxDtls><RltdPties><Dbtr><Pty><Id><OrgId><Othr><Id>91440100MA12345678</Id>"
        "</Othr></OrgId></Id></Pty></Dbtr></RltdPties></TxDtls></NtryDtls></Ntry>"
        for ref, cd, amt in entries)
    path.write_text(
        f"<?xml version=\"1.0\"?><Document xmlns=\"{NS}\"><BkToCstmrStmt><GrpHdr><MsgId>M</MsgId>"
        f"</GrpHdr><Stmt><Id>{sid}</Id><ElctrncSeqNb>{sid[-1]}</ElctrncSeqNb>"
        f"<Acct><Id><Othr><Id>6222000011112222</Id></Othr></Id><Ccy>{ccy}</Ccy></Acct>"
        f"{_bal('OPBD', opening, day)}{_bal('CLBD', closing, day)}{ntry}</Stmt>"
        "</BkToCstmrStmt></Document>", encoding="utf-8")
    return path


def _import(led: Ledger, path: Path, fa: str | None = "income") -> list[dict[str, Any]]:
    recs = statement_records(led, path, "camt053", REGION, fa)
    led.ingest_records(recs, str(path))
    return recs


def _breaks(led: Ledger) -> list[Any]:
    refresh(led.store)
    with led.store.reader() as conn:
        return statement_breaks(conn, None, date(2026, 12, 31))


def test_import_maps_entries_and_is_idempotent(led: Ledger, tmp_path: Path) -> None:
    f = camt(tmp_path / "s1.xml", "STMT-1", "100.00", "150.00",
             [("R1", "CRDT", "80.00"), ("R2", "DBIT", "30.00")])
    recs = _import(led, f)
    by_id = {r["id"]: r for r in recs}
    assert set(by_id) == {"STMT-1", "STMT-1/R1", "STMT-1/R2"}
    assert by_id["STMT-1/R1"]["type"] == "finance.collection"
    assert by_id["STMT-1/R1"]["payer_id"] == "91440100MA12345678"
    assert by_id["STMT-1/R2"]["type"] == "finance.payment"
    assert by_id["STMT-1/R2"]["amount"] == "30.00"
    assert by_id["STMT-1"]["closing_balance"] == "150.00"
    size = led.size()
    again = statement_records(led, f, "camt053", REGION, "income")
    assert [r["id"] for r in again] == ["STMT-1"]
    led.ingest_records(again, str(f))
    assert led.size() == size
    assert _breaks(led) == []


def test_existing_movement_is_confirmed_and_other_amount_is_a_mismatch(
        led: Ledger, tmp_path: Path) -> None:
    led.ingest_records([collection(1, "80.00"), collection(2, "55.00")], "books")
    f = camt(tmp_path / "s.xml", "STMT-1", "0.00", "135.10",
             [("REF1", "CRDT", "80.00"), ("REF2", "CRDT", "55.10")])
    recs = _import(led, f)
    assert [r["id"] for r in recs] == ["STMT-1"]  # both confirm existing movements
    codes = [(b.code, b.records) for b in _breaks(led)]
    assert codes == [("AMOUNT_MISMATCH", ("COL-2", "STMT-1"))]


def test_balance_and_chain_breaks(led: Ledger, tmp_path: Path) -> None:
    _import(led, camt(tmp_path / "a.xml", "STMT-1", "100.00", "180.00", [("A1", "CRDT", "80.00")]))
    _import(led, camt(tmp_path / "b.xml", "STMT-2", "180.00", "170.00", [("B1", "DBIT", "10.00")],
                      day="2026-11-21"))
    assert _breaks(led) == []
    _import(led, camt(tmp_path / "c.xml", "STMT-3", "171.00", "160.00", [("C1", "DBIT", "10.00")],
                      day="2026-11-22"))
    found = sorted((b.code, b.field, b.records) for b in _breaks(led))
    assert found == [("STATEMENT_BALANCE_BREAK", "closing_balance", ("STMT-3",)),
                     ("STATEMENT_BALANCE_BREAK", "opening_balance", ("STMT-3", "STMT-2"))]


def test_statement_entries_are_bank_side_items_until_booked(led: Ledger,
                                                             tmp_path: Path) -> None:
    """FORMAT §9.7: movements a statement import made are the bank's, not booked."""
    record_opening(led, "6222000011112222", date(2026, 11, 1), 10_000)
    _import(led, camt(tmp_path / "a.xml", "STMT-1", "100.00", "150.00",
                      [("A1", "CRDT", "80.00"), ("A2", "DBIT", "30.00")]))
    (a,) = bank_reconciliation(led, date(2026, 12, 31)).accounts
    assert (a.bank, a.book) == (15_000, 10_000)
    assert [i.record for i in a.items["bank_credit"]] == ["STMT-1#1"]
    assert [i.record for i in a.items["bank_debit"]] == ["STMT-1#2"]
    assert a.adjusted_bank == a.adjusted_book == 15_000 and a.balanced
    in_transit = {**collection(9, "20.00"), "fund_account": "income", "value_date": "2026-11-25"}
    led.ingest_records([in_transit], "books")
    (a,) = bank_reconciliation(led, date(2026, 12, 31)).accounts
    assert a.book == 12_000 and [i.record for i in a.items["book_credit"]] == ["COL-9"]
    assert a.adjusted_bank == a.adjusted_book == 17_000 and a.balanced


@pytest.mark.parametrize("ccy,amount,msg", [("EUR", "1.00", "only CNY"),
                                            ("CNY", "1.005", "not exact to the fen")])
def test_only_cny_to_the_fen(led: Ledger, tmp_path: Path, ccy: str, amount: str,
                             msg: str) -> None:
    f = camt(tmp_path / "x.xml", "STMT-9", "0.00", "1.00", [("X", "CRDT", amount)], ccy=ccy)
    with pytest.raises(InputError, match=f"x.xml.*{msg}"):
        statement_records(led, f, "camt053", REGION, None)


@pytest.mark.parametrize("name", ["camt053/camt053.v2.minimal.xml", "mt940/jejik/abnamro.sta"])
def test_vectors_in_other_currencies_are_refused(led: Ledger, name: str) -> None:
    path = vectors_dir() / "bank" / name
    fmt = "camt053" if name.startswith("camt") else "mt940"
    with pytest.raises(InputError, match="only CNY"):
        statement_records(led, path, fmt, REGION, None)  # type: ignore[arg-type]


def test_balance_command(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    import cli._bank_cmds  # noqa: F401 - registers `bfa balance` (until cli/__init__ does)
    from cli import bfa

    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    try:
        _import(led, camt(tmp_path / "a.xml", "STMT-1", "100.00", "150.00",
                          [("A1", "CRDT", "80.00"), ("A2", "DBIT", "30.00")]))
    finally:
        led.close()
    args = ["balance", "--home", ledger_home["home"], "--db", ledger_home["db"],
            "--fund-account", "income", "--as-of", "2026-12-31"]
    out = CliRunner().invoke(bfa, [*args, "--json"])
    assert out.exit_code == 1, out.output  # no opening balance yet
    assert json.loads(out.output)["accounts"][0]["problem"]
    out = CliRunner().invoke(bfa, ["balance", "opening", *args[1:5], "--bank-account",
                                   "6222000011112222", "--date", "2026-11-01", "--amount",
                                   "100"])
    assert out.exit_code == 0, out.output
    out = CliRunner().invoke(bfa, [*args, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["accounts"][0]["bank_balance"] == "150.00"
    text = CliRunner().invoke(bfa, args)
    assert text.exit_code == 0 and "balanced" in text.output


def test_importing_statements_reports_progress_per_file(led: Ledger, tmp_path: Path) -> None:
    """The progress bar of `bfa ingest --format` moves: each file's bytes once it is in."""
    from reconcile import ingest_statements

    files = [camt(tmp_path / f"s{i}.xml", f"STMT-{i}", "100.00", "150.00",
                  [(f"R{i}", "CRDT", "50.00")]) for i in (1, 2)]
    seen: list[int] = []
    ingest_statements(led, files, "camt053", REGION, "income", progress=seen.append)
    assert seen == [f.stat().st_size for f in files]
