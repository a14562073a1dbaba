"""The 银行存款余额调节表 (FORMAT.md §9.7) against statements worked out by hand.

One bank account (income fund account) with an opening balance of 10,000.00 recorded for
the start of 2026-11-01. The agency books in November:

=========  =========  ========  =====  ============================================
movement   kind       amount    ref    on the bank's November statement?
=========  =========  ========  =====  ============================================
COL-A      collection 5,000.00  RA     yes, 11-05
PAY-B      payment    2,000.00  RB     yes, 11-10
COL-C      collection 3,000.00  RC     no: 企业已收银行未收 (deposit in transit)
PAY-D      payment    1,200.00  RD     no: 企业已付银行未付 (payment not yet cleared)
=========  =========  ========  =====  ============================================

The bank also credited interest 12.34 (INT1, 11-21) and charged a fee of 5.00 (FEE1,
11-25), which the agency has not booked: 银行已收企业未收 and 银行已付企业未付. The
statement opens at 10,000.00 and closes at 10,000 + 5,000 − 2,000 + 12.34 − 5.00 =
13,007.34. Books: 10,000 + 5,000 − 2,000 + 3,000 − 1,200 = 14,800.00. Adjusted bank:
13,007.34 + 3,000 − 1,200 = 14,807.34; adjusted book: 14,800 + 12.34 − 5.00 = 14,807.34.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger import InputError, Ledger
from reconcile.bank import (
    bank_reconciliation,
    parse_yuan,
    record_opening,
    statement_csv,
    statement_records,
)
from tests._cli import h, invoke
from tests._records import REGION

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
ACCOUNT = "6222000011112222"


def _bal(code: str, amount: str, day: str) -> str:
    ind = "DBIT" if amount.startswith("-") else "CRDT"
    return (f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
            f"<Amt Ccy=\"CNY\">{amount.lstrip('-')}</Amt><CdtDbtInd>{ind}</CdtDbtInd>"
            f"<Dt><Dt>{day}</Dt></Dt></Bal>")


def camt(path: Path, sid: str, opening: tuple[str, str], closing: tuple[str, str],
         lines: list[tuple[str, str, str, str]]) -> Path:
    """A camt.053 statement; ``lines`` are ``(ref, CRDT|DBIT, amount, day)``."""
    ntry = "".join(
        f"<Ntry><Amt Ccy=\"CNY\">{amt}</Amt><CdtDbtInd>{cd}</CdtDbtInd><Sts><Cd>BOOK</Cd>"
        f"</Sts><BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt>"
        f"<AcctSvcrRef>{ref}</AcctSvcrRef></Ntry>" for ref, cd, amt, day in lines)
    path.write_text(
        f"<?xml version=\"1.0\"?><Document xmlns=\"{NS}\"><BkToCstmrStmt><GrpHdr><MsgId>M"
        f"</MsgId></GrpHdr><Stmt><Id>{sid}</Id><ElctrncSeqNb>{sid[-1]}</ElctrncSeqNb>"
        f"<Acct><Id><Othr><Id>{ACCOUNT}</Id></Othr></Id><Ccy>CNY</Ccy></Acct>"
        f"{_bal('OPBD', *opening)}{_bal('CLBD', *closing)}{ntry}</Stmt>"
        "</BkToCstmrStmt></Document>", encoding="utf-8")
    return path


def movement(kind: str, rid: str, amount: str, ref: str, day: str,
             fund: str = "income") -> dict[str, Any]:
    return {"type": f"finance.{kind}", "id": rid, "region": REGION,
            "occurred_at": f"{day}T10:00:00+08:00", "amount": amount, "value_date": day,
            "bank_ref": ref, "fund_account": fund}


BOOKS = [movement("collection", "COL-A", "5000.00", "RA", "2026-11-05"),
         movement("payment", "PAY-B", "2000.00", "RB", "2026-11-10"),
         movement("collection", "COL-C", "3000.00", "RC", "2026-11-29"),
         movement("payment", "PAY-D", "1200.00", "RD", "2026-11-30")]
NOVEMBER = [("RA", "CRDT", "5000.00", "2026-11-05"), ("RB", "DBIT", "2000.00", "2026-11-10"),
            ("INT1", "CRDT", "12.34", "2026-11-21"), ("FEE1", "DBIT", "5.00", "2026-11-25")]


def _import(led: Ledger, path: Path, fund: str | None = "income") -> None:
    led.ingest_records(statement_records(led, path, "camt053", REGION, fund), str(path))


def _month(led: Ledger, tmp: Path, lines: list[tuple[str, str, str, str]] = NOVEMBER,
           closing: str = "13007.34", books: list[dict[str, Any]] = BOOKS) -> None:
    record_opening(led, ACCOUNT, date(2026, 11, 1), parse_yuan("10000.00"))
    led.ingest_records(books, "books")
    _import(led, camt(tmp / "nov.xml", "ST-11", ("10000.00", "2026-11-01"),
                      (closing, "2026-11-30"), lines))


def _ids(items: list[Any]) -> list[str]:
    return [i.record for i in items]


def test_hand_worked_month_balances(led: Ledger, tmp_path: Path) -> None:
    _month(led, tmp_path)
    rep = bank_reconciliation(led, date(2026, 11, 30))
    (a,) = rep.accounts
    assert (a.bank_account, a.fund_account, a.region) == (ACCOUNT, "income", REGION)
    assert (a.bank, a.book) == (1_300_734, 1_480_000)
    assert _ids(a.items["book_credit"]) == ["COL-C"]
    assert _ids(a.items["book_debit"]) == ["PAY-D"]
    assert _ids(a.items["bank_credit"]) == ["ST-11#3"]  # the interest
    assert _ids(a.items["bank_debit"]) == ["ST-11#4"]  # the fee
    assert a.adjusted_bank == a.adjusted_book == 1_480_734
    assert a.difference == 0 and a.unexplained == [] and a.balanced and rep.balanced
    js = rep.to_json()
    # the kind is the key machines use; the name is in the reader's language (English here)
    assert js["accounts"][0]["items"]["bank_credit"]["name"] == "bank credits not yet booked"
    assert js["accounts"][0]["adjusted_bank"] == "14807.34"
    assert js["fund_accounts"]["income"]["difference"] == "0.00"


def test_an_unbooked_fee_settles_nothing_of_ours(led: Ledger, tmp_path: Path) -> None:
    """Interest and fees known only from the statement stay bank-side items: booking them
    later (another reference would not do; the bank's does) clears them."""
    _month(led, tmp_path)
    led.ingest_records([movement("payment", "FEE-BOOKED", "5.00", "FEE1", "2026-11-30"),
                        movement("collection", "INT-BOOKED", "12.34", "INT1", "2026-11-30")],
                       "books")
    (a,) = bank_reconciliation(led, date(2026, 11, 30)).accounts
    assert a.items["bank_credit"] == [] and a.items["bank_debit"] == []
    assert a.book == 1_480_734 and a.balanced


def test_transposition_is_unexplained_and_says_by_how_much(
        led: Ledger, ledger_home: dict[str, Any], tmp_path: Path) -> None:
    """PAY-B booked 2,000.00, the bank paid 2,000.27: no side cancels the other out."""
    lines = [*NOVEMBER[:1], ("RB", "DBIT", "2000.27", "2026-11-10"), *NOVEMBER[2:]]
    _month(led, tmp_path, lines, closing="13007.07")
    (a,) = bank_reconciliation(led, date(2026, 11, 30)).accounts
    assert [(u.record, u.amount, u.book_amount, u.movement) for u in a.unexplained] == [
        ("ST-11#2", 200_027, 200_000, "PAY-B")]
    assert a.difference == -27 and not a.balanced
    res = invoke("balance", *h_of(ledger_home), "--as-of", "2026-11-30")
    assert res.exit_code == 1, res.output
    assert "NOT balanced" in res.stdout and "-¥0.27" in res.stdout
    assert "2,000.27" in res.stdout


def test_each_kind_of_item_in_transit_alone(led: Ledger, tmp_path: Path) -> None:
    """Leaving one line off the statement (and the closing balance as the bank would
    have it) moves exactly that line to the book side."""
    lines = [ln for ln in NOVEMBER if ln[0] != "RA"]
    _month(led, tmp_path, lines, closing="8007.34")
    (a,) = bank_reconciliation(led, date(2026, 11, 30)).accounts
    assert _ids(a.items["book_credit"]) == ["COL-A", "COL-C"] and a.balanced


def test_december_is_not_judged_in_november(led: Ledger, tmp_path: Path) -> None:
    _month(led, tmp_path)
    led.ingest_records([movement("collection", "COL-DEC", "50.00", "RX", "2026-12-02")], "b")
    _import(led, camt(tmp_path / "dec.xml", "ST-12", ("13007.34", "2026-12-01"),
                      ("13057.34", "2026-12-31"), [("RX", "CRDT", "50.00", "2026-12-02")]))
    nov = bank_reconciliation(led, date(2026, 11, 30)).accounts[0]
    assert [st.id for st in nov.statements] == ["ST-11"]
    assert nov.book == 1_480_000 and nov.balanced
    dec = bank_reconciliation(led, date(2026, 12, 31)).accounts[0]
    assert [st.id for st in dec.statements] == ["ST-12"]
    assert dec.book == 1_485_000 and dec.bank == 1_305_734 and dec.balanced


def test_problems_are_not_balanced(led: Ledger, tmp_path: Path) -> None:
    assert not bank_reconciliation(led, date(2026, 11, 30)).balanced  # nothing at all
    led.ingest_records(BOOKS, "books")
    _import(led, camt(tmp_path / "nov.xml", "ST-11", ("10000.00", "2026-11-01"),
                      ("13007.34", "2026-11-30"), NOVEMBER))
    (a,) = bank_reconciliation(led, date(2026, 11, 30)).accounts
    assert a.problem is not None and "bfa balance opening" in a.problem and not a.balanced
    record_opening(led, ACCOUNT, date(2026, 12, 1), 0)  # after the day: not used
    (a,) = bank_reconciliation(led, date(2026, 11, 30)).accounts
    assert a.openings == () and a.bank == 1_300_734 and a.book is None
    assert a.to_json()["difference"] is None
    (a,) = bank_reconciliation(led, date(2026, 10, 31)).accounts
    assert a.problem is not None and "no statement" in a.problem


def test_statement_without_fund_account_is_a_problem(led: Ledger, tmp_path: Path) -> None:
    """Statements imported before accounts were mapped may name no fund account."""
    record_opening(led, ACCOUNT, date(2026, 11, 1), 1_000_000)
    recs = statement_records(led, camt(tmp_path / "nov.xml", "ST-11", ("10000.00",
                             "2026-11-01"), ("13007.34", "2026-11-30"), NOVEMBER),
                             "camt053", REGION, "income")
    led.ingest_records([{k: v for k, v in r.items() if k != "fund_account"} for r in recs],
                       "old import")
    (a,) = bank_reconciliation(led, date(2026, 11, 30)).accounts
    assert a.problem is not None and "--fund-account" in a.problem and not a.balanced


@pytest.mark.parametrize("text,fen", [("1234.56", 123456), ("-20", -2000),
                                      ("1,234.5", 123450), ("0", 0), ("0.07", 7),
                                      ("12,345,678.90", 1234567890), (" 1.00 ", 100)])
def test_amounts_typed_by_an_officer(text: str, fen: int) -> None:
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("text", ["1.234", "abc", "1e3x", "NaN", "1" * 16, "1e3", "1e-2",
                                  "1_000", "+1.00", "01.00", "１.００", "٣.٠٠", "9e999999999",
                                  "1,00", "1,0000.00", "", "-", ".5", "Infinity"])
def test_amounts_refused(text: str) -> None:
    with pytest.raises(InputError, match="--amount"):
        parse_yuan(text)


def h_of(ledger_home: dict[str, Any]) -> list[str]:
    return h(Path(ledger_home["home"]), ledger_home["db"])


def test_cli_opening_and_statement(led: Ledger, ledger_home: dict[str, Any],
                                   tmp_path: Path) -> None:
    home = h_of(ledger_home)
    res = invoke("balance", "opening", *home, "--bank-account", ACCOUNT, "--date",
                 "2026-11-01", "--amount", "10,000.00", "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert (got["amount"], got["date"], got["bank_account"]) == ("10000.00", "2026-11-01",
                                                                 ACCOUNT)
    led.ingest_records(BOOKS, "books")
    _import(led, camt(tmp_path / "nov.xml", "ST-11", ("10000.00", "2026-11-01"),
                      ("13007.34", "2026-11-30"), NOVEMBER))
    res = invoke("balance", *home, "--period", "2026-11")
    assert res.exit_code == 0, res.output
    assert "¥14,807.34" in res.stdout and "bank credits not yet booked" in res.stdout
    assert res.stdout.rstrip().endswith("balanced")
    assert max(_cols(line) for line in res.stdout.splitlines()) <= 80, res.stdout
    res = invoke("balance", *home, "--as-of", "2026-11-30", "--csv")
    assert res.exit_code == 0 and res.stdout.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(res.stdout[1:])))
    assert [r["line"] for r in rows] == [
        "bank_balance", "book_credit", "book_debit", "adjusted_bank", "book_balance",
        "bank_credit", "bank_debit", "adjusted_book", "difference"]
    assert rows[3]["amount"] == rows[7]["amount"] == "14807.34"
    page = tmp_path / "调节表.html"
    res = invoke("balance", *home, "--period", "2026-11", "--html", str(page), "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["balanced"] is True, res.output
    assert '<html lang="en">' in page.read_text("utf-8")  # the page is in the CLI's language
    assert "14,807.34" in page.read_text("utf-8")
    res = invoke("balance", *home, "--fund-account", "expenditure", "--as-of", "2026-11-30")
    assert res.exit_code == 1 and "no bank statement" in res.stdout
    res = invoke("balance", "opening", *home, "--bank-account", ACCOUNT, "--date",
                 "2026-11-01", "--amount", "1.001")
    assert res.exit_code == 2 and "exact to the fen" in res.output


def _cols(line: str) -> int:
    from cli._render import width

    return width(line)


def test_statement_is_archived_once_and_checked(led: Ledger, ledger_home: dict[str, Any],
                                                tmp_path: Path) -> None:
    """Issue 18 item 3: the monthly statement is kept as archive.reconciliation_statement."""
    _month(led, tmp_path)
    home = h_of(ledger_home)
    res = invoke("balance", "archive", *home, "--period", "2026-11", "--json")
    assert res.exit_code == 0, res.output
    (kept,) = json.loads(res.stdout)["accounts"]
    assert kept["appended"] is True and kept["balanced"] is True
    rid = kept["record_id"]
    assert rid.startswith(f"RS-{ACCOUNT}-2026-11-30-")
    rec = json.loads(invoke("show", *home, rid, "--json").stdout)
    rec = rec.get("record", rec)
    assert rec["type"] == "archive.reconciliation_statement" and rec["retention"] == "10y"
    assert rec["media_type"] == "text/plain" and rec["refs"] == ["ST-11", "COL-C", "PAY-D"]
    again = invoke("balance", "archive", *home, "--period", "2026-11")
    assert again.exit_code == 0 and "already archived" in again.stdout, again.output
    audit = invoke("archive", "audit", *home, "--json")
    assert audit.exit_code == 0, audit.output
    check = invoke("archive", "check", *home, rid)
    assert check.exit_code == 0, check.output
    store = Path(ledger_home["home"]) / "archive"
    kept_file = next(p for p in store.rglob("*") if (p.is_file() and p.name.startswith(
        rec["sha256"][:8])) or p.name == rec["sha256"])
    assert kept_file.read_bytes().decode("utf-8").startswith("\ufeffbank_account,")
    nothing = invoke("balance", "archive", *home, "--period", "2026-10")
    assert nothing.exit_code == 1 and "not archived" in nothing.stdout, nothing.output


def test_nightly_reports_the_bank_side(led: Ledger, ledger_home: dict[str, Any],
                                       tmp_path: Path) -> None:
    lines = [*NOVEMBER[:1], ("RB", "DBIT", "2000.27", "2026-11-10"), *NOVEMBER[2:]]
    _month(led, tmp_path, lines, closing="13007.07")
    out = tmp_path / "reports"
    res = invoke("nightly", *h_of(ledger_home), "--report-dir", str(out), "--as-of",
                 "2026-11-30", user=None)
    assert res.exit_code == 1, res.output
    assert "bank: 1 account(s), 1 not balanced" in res.output
    night = json.loads((out / "latest" / "nightly.json").read_text("utf-8"))
    assert night["bank"] == {"balanced": False, "accounts": 1, "not_balanced": [
        {"bank_account": ACCOUNT, "difference": "-0.27", "problem": None}]}
    bank = json.loads((out / "latest" / "bank.json").read_text("utf-8"))
    assert bank["accounts"][0]["unexplained"][0]["movement"] == "PAY-B"
    assert (out / "latest" / "bank.csv").read_text("utf-8").startswith("\ufeff")
    page = (out / "latest" / "report.html").read_text("utf-8")
    assert "Bank reconciliation statement as of 2026-11-30" in page
    assert f"size {night['checkpoint']}, root" in page
    assert night["checkpoint_root"] in page


def test_a_corrected_statement_keeps_its_movements_the_banks(led: Ledger,
                                                            tmp_path: Path) -> None:
    """The review's first finding: after a correction of the statement record, the
    movements its import made (named after the statement as imported) stayed the bank's."""
    lines = [*NOVEMBER[:1], ("RB", "DBIT", "2000.27", "2026-11-10"), *NOVEMBER[2:]]
    _month(led, tmp_path, lines, closing="13007.07")
    recs = statement_records(led, tmp_path / "nov.xml", "camt053", REGION, "income")
    st = next(r for r in recs if r["type"] == "finance.statement")
    led.ingest_records([{**st, "id": "ST-11-R", "corrects": "ST-11"}], "correction",
                       bank_records=True)  # as a ledger before FORMAT §9.8 might hold
    (a,) = bank_reconciliation(led, date(2026, 11, 30)).accounts
    assert [s.id for s in a.statements] == ["ST-11-R"]
    assert a.book == 1_480_000 and _ids(a.items["bank_credit"]) == ["ST-11-R#3"]
    assert a.difference == -27 and len(a.unexplained) == 1 and not a.balanced


def test_booking_days_are_shanghai_days(led: Ledger, tmp_path: Path) -> None:
    """17:00 UTC on 30 November is 01:00 on 1 December in Shanghai."""
    _month(led, tmp_path)
    late = {**movement("payment", "PAY-TZ", "100.00", "RTZ", "2026-11-30"),
            "occurred_at": "2026-11-30T17:00:00Z"}
    led.ingest_records([late], "books")
    (nov,) = bank_reconciliation(led, date(2026, 11, 30)).accounts
    assert nov.book == 1_480_000 and nov.balanced
    (dec,) = bank_reconciliation(led, date(2026, 12, 1)).accounts
    assert [(i.record, i.day) for i in dec.items["book_debit"]][-1] == ("PAY-TZ", "2026-12-01")


def test_csv_cells_excel_would_misread(led: Ledger, tmp_path: Path) -> None:
    """Formulas stay text ('), account numbers keep every digit (a leading tab)."""
    _month(led, tmp_path, books=[*BOOKS, movement("collection", "COL-X", "1.00",
                                                  '=HYPERLINK("http://x","y")', "2026-11-30")])
    rows = list(csv.reader(io.StringIO(statement_csv(
        bank_reconciliation(led, date(2026, 11, 30)))[1:])))
    assert rows[1][0] == "\t" + ACCOUNT
    refs = [r[6] for r in rows[1:]]
    assert "'=HYPERLINK(\"http://x\",\"y\")" in refs
    assert not any(c.startswith(("=", "+", "@")) for r in rows for c in r)


def test_csv_in_the_readers_language_and_archived_in_none(led: Ledger, tmp_path: Path) -> None:
    """The CSV's header and names are the reader's; ``line`` is the machine's key. The
    archived statement is the same bytes whatever the language (its hash is in the
    ledger: archived again, it is a duplicate), with the names it always had."""
    import schemas

    _month(led, tmp_path)
    rep = bank_reconciliation(led, date(2026, 11, 30))
    rows = list(csv.reader(io.StringIO(statement_csv(rep)[1:])))
    assert rows[0][:5] == ["bank_account", "fund_account", "as_of", "line", "name"]
    assert [r[4] for r in rows if r[3] in ("bank_balance", "bank_credit", "difference")] == [
        "balance per bank statement", "bank credits not yet booked", "difference"]
    archived = statement_csv(rep, archived=True)
    with schemas.language("zh_CN"):
        assert statement_csv(rep, archived=True) == archived
        zh = statement_csv(rep)
    assert archived.startswith("\ufeffbank_account,fund_account,")
    assert ",bank_credit,银行已收企业未收," in archived and ",difference,差额," in archived
    # the same rows and numbers in either language
    assert [(r[3], r[-1]) for r in csv.reader(io.StringIO(zh[1:]))][1:] == [
        (r[3], r[-1]) for r in rows[1:]]


def test_two_accounts_of_one_fund_account_are_reconciled_together(
        led: Ledger, tmp_path: Path) -> None:
    """Movements name a fund account, not a bank account: two income accounts in one
    region are one statement; openings for different days cannot be added up."""
    other = "6222000099998888"
    _month(led, tmp_path)
    path = camt(tmp_path / "b.xml", "SB-11", ("500.00", "2026-11-01"), ("800.00", "2026-11-30"),
                [("RZ", "CRDT", "300.00", "2026-11-12")])
    path.write_text(path.read_text("utf-8").replace(ACCOUNT, other), "utf-8")
    _import(led, path)
    led.ingest_records([movement("collection", "COL-Z", "300.00", "RZ", "2026-11-12")], "b")
    record_opening(led, other, date(2026, 11, 2), 50_000)
    (a,) = bank_reconciliation(led, date(2026, 11, 30)).accounts
    assert a.bank_accounts == tuple(sorted((ACCOUNT, other)))
    assert a.problem is not None and "different days" in a.problem
    record_opening(led, ACCOUNT, date(2026, 11, 2), 1_000_000)  # nothing moved on the 1st
    (a,) = bank_reconciliation(led, date(2026, 11, 30)).accounts
    assert a.problem is None and a.bank == 1_300_734 + 80_000
    assert a.book == 1_480_000 + 80_000 and a.balanced
    assert [s.id for s in a.statements] == ["ST-11", "SB-11"]


def test_account_numbers_that_cannot_be_shown_are_refused(led: Ledger, tmp_path: Path) -> None:
    path = camt(tmp_path / "odd.xml", "ST-9", ("0.00", "2026-11-01"), ("0.00", "2026-11-30"),
                [])
    path.write_text(path.read_text("utf-8").replace(ACCOUNT, "ACC&#x2028;X"), "utf-8")
    with pytest.raises(InputError, match="printable"):
        statement_records(led, path, "camt053", REGION, "income")


@pytest.mark.parametrize("period", ["26-11", "2026-1", "2026-11 ", "２０２６-１１", "2026-13",
                                    "0000-01", "2026/11"])
def test_periods_are_months(ledger_home: dict[str, Any], period: str) -> None:
    for cmd in (["balance"], ["balance", "archive"]):
        res = invoke(*cmd, *h_of(ledger_home), "--period", period)
        assert res.exit_code == 2 and "YYYY-MM" in res.stderr, res.output


def test_an_account_number_with_a_slash_is_archived(led: Ledger, ledger_home: dict[str, Any],
                                                    tmp_path: Path) -> None:
    odd = "44/01:23"
    record_opening(led, odd, date(2026, 11, 1), 0)
    path = camt(tmp_path / "s.xml", "ST-S", ("0.00", "2026-11-01"), ("10.00", "2026-11-30"),
                [("RS1", "CRDT", "10.00", "2026-11-03")])
    path.write_text(path.read_text("utf-8").replace(ACCOUNT, odd), "utf-8")
    _import(led, path)
    res = invoke("balance", "archive", *h_of(ledger_home), "--period", "2026-11", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["accounts"][0]["appended"] is True
