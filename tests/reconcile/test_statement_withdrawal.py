"""A mis-imported statement is withdrawn (红冲) with four eyes and imported again
(FORMAT.md §9.8), on both backends."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger import Ledger
from reconcile import approve_withdrawal, bank_reconciliation, record_opening, request_withdrawal
from reconcile.matching._refresh import refresh
from tests._cli import h, invoke
from tests._records import REGION
from tests.reconcile.test_bank_statement import ACCOUNT, BOOKS, NOVEMBER, camt


def _ingest(ledger_home: dict[str, Any], path: Path, *opts: str, user: str = "alice") -> Any:
    res = invoke("ingest", *h(Path(ledger_home["home"]), ledger_home["db"]), "--format",
                 "camt053", *opts, str(path), user=user)
    return res


def _current(led: Ledger, rid: str) -> list[str]:
    """The current versions among ``rid`` and its corrections (the reconciler's view)."""
    from sqlalchemy import select

    from reconcile.matching import _tables as t

    refresh(led.store)
    r = t.records
    with led.store.reader() as conn:
        return sorted(str(x) for x in conn.execute(select(r.c.record_id).where(
            r.c.domain == "finance", r.c.superseded.is_(False),
            r.c.record_id.like(f"{rid}%"))).scalars())


def test_mis_imported_statement_is_withdrawn_and_imported_again(
        led: Ledger, ledger_home: dict[str, Any], tmp_path: Path) -> None:
    home = [*h(Path(ledger_home["home"]), ledger_home["db"])]
    record_opening(led, ACCOUNT, date(2026, 11, 1), 1_000_000)
    led.ingest_records(BOOKS, "books")
    nov = camt(tmp_path / "nov.xml", "ST-11", ("10000.00", "2026-11-01"),
               ("13007.34", "2026-11-30"), NOVEMBER)
    # the mistake: the income account's statement imported as the expenditure account's
    res = _ingest(ledger_home, nov, "--fund-account", "expenditure", "--region", REGION)
    assert res.exit_code == 0, res.output
    (wrong,) = bank_reconciliation(led, date(2026, 11, 30)).accounts
    assert wrong.fund_account == "expenditure"  # COL-A's deposit is not ours there:
    assert "ST-11#1" in [i.record for i in wrong.items["bank_credit"]]
    # importing it right is a conflict: the ledger never forgets the first import
    res = _ingest(ledger_home, nov, "--fund-account", "income", "--region", REGION)
    assert res.exit_code == 2 and "withdraw it first" in res.stderr
    # alice asks, alice may not approve, bob approves
    res = invoke("statement", "withdraw", *home, "ST-11", "--reason",
                 "imported as expenditure; the account is the income account", "--json",
                 user="alice")
    assert res.exit_code == 0, res.output
    req = json.loads(res.stdout)
    assert req["status"] == "requested" and req["records"] == [
        "finance:ST-11", "finance:ST-11/FEE1", "finance:ST-11/INT1"]
    res = invoke("statement", "approve", *home, req["id"], user="alice")
    assert res.exit_code == 2 and "four-eyes" in res.stderr
    res = invoke("statement", "approve", *home, req["id"], "--json", user="bob")
    assert res.exit_code == 0, res.output
    done = json.loads(res.stdout)
    assert done["approved_by"] == "bob" and sorted(done["withdrawn"]) == [
        "ST-11/FEE1:W", "ST-11/INT1:W", "ST-11:W"]
    assert _current(led, "ST-11") == []  # nothing of it counts any more
    assert bank_reconciliation(led, date(2026, 11, 30)).accounts == []
    listed = json.loads(invoke("statement", "withdrawals", *home, "--json").stdout)
    assert [(w["id"], w["status"], w["approved_by"]) for w in listed] == [
        (req["id"], "approved", "bob")]
    res = invoke("statement", "approve", *home, req["id"], user="carol")
    assert res.exit_code == 2 and "already" in res.stderr
    # the corrected import: same statement and movement ids, new versions
    res = _ingest(ledger_home, nov, "--fund-account", "income", "--region", REGION)
    assert res.exit_code == 0, res.output
    assert _current(led, "ST-11") == ["ST-11/FEE1:W:R", "ST-11/INT1:W:R", "ST-11:W:R"]
    (right,) = bank_reconciliation(led, date(2026, 11, 30)).accounts
    assert right.fund_account == "income" and right.balanced
    assert [i.record for i in right.items["bank_credit"]] == ["ST-11:W:R#3"]
    assert invoke("verify", *home).exit_code == 0


def test_a_file_may_not_withdraw(led: Ledger, ledger_home: dict[str, Any],
                                 tmp_path: Path) -> None:
    led.ingest_records(BOOKS, "books")
    line = {**BOOKS[0], "id": "COL-A:W", "corrects": "COL-A",
            "withdrawn": {"request": "WD-x", "reason": "r", "requested_by": "mallory"}}
    f = tmp_path / "w.jsonl"
    f.write_text(json.dumps(line) + "\n", "utf-8")
    res = invoke("ingest", *h(Path(ledger_home["home"]), ledger_home["db"]), str(f))
    assert res.exit_code == 2 and "withdrawn" in res.stderr and "statement approve" in res.stderr


def test_requests_are_checked(led: Ledger, tmp_path: Path) -> None:
    from ledger import InputError

    with pytest.raises(InputError, match="no bank statement"):
        request_withdrawal(led, "NOPE", "why", "alice")
    led.ingest_records(BOOKS, "books")
    with pytest.raises(InputError, match=r"not a bank statement|no bank statement"):
        request_withdrawal(led, "COL-A", "why", "alice")
    nov = camt(tmp_path / "nov.xml", "ST-11", ("10000.00", "2026-11-01"),
               ("13007.34", "2026-11-30"), NOVEMBER)
    from reconcile.bank import statement_records

    led.ingest_records(statement_records(led, nov, "camt053", REGION, "income"), "nov")
    req = request_withdrawal(led, "ST-11", "wrong month", "alice")
    with pytest.raises(InputError, match="waits for approval"):
        request_withdrawal(led, "ST-11", "again", "bob")
    with pytest.raises(InputError, match="no withdrawal request"):
        approve_withdrawal(led, "WD-nope", "bob")
    approve_withdrawal(led, req.id, "bob")
    with pytest.raises(InputError, match="withdrawn already"):
        request_withdrawal(led, "ST-11", "again", "carol")


def test_a_withdrawal_outside_the_four_eyes_is_a_break(led: Ledger, tmp_path: Path) -> None:
    """An insider with the library (or the application's role) appends withdrawals itself:
    the reconciler reports each one that no other identity's request covers."""
    from reconcile import run_reconcile
    from reconcile.bank import statement_records

    led.ingest_records(BOOKS, "books", label="alice")
    nov = camt(tmp_path / "nov.xml", "ST-11", ("10000.00", "2026-11-01"),
               ("13007.34", "2026-11-30"), NOVEMBER)
    led.ingest_records(statement_records(led, nov, "camt053", REGION, "income"), "nov")
    forged = {**BOOKS[0], "id": "COL-A:W", "corrects": "COL-A",
              "withdrawn": {"request": "WD-forged", "reason": "r", "requested_by": "bob"}}
    led.ingest_records([forged], "insider", label="mallory", withdrawals=True)
    req = request_withdrawal(led, "ST-11", "wrong", "mallory")
    from ledger import read_entries
    from reconcile.bank._withdraw import _reversal

    with led.store.reader() as conn:
        rec = read_entries(led.store, conn, "finance", ["ST-11"])["ST-11"].record
    led.ingest_records([_reversal(rec, req)], "self-approved", label="mallory",
                       withdrawals=True)
    sod = sorted((b.records, b.message.split(": ", 1)[1][:30])
                 for b in run_reconcile(led, date(2026, 12, 31)).breaks
                 if b.code == "SOD_CONFLICT")
    assert sod == [(("COL-A:W",), "no withdrawal request of that "),
                   (("ST-11:W",), "mallory asked for the withdraw")]


def test_a_statement_changes_only_by_withdrawal(led: Ledger, ledger_home: dict[str, Any],
                                                tmp_path: Path) -> None:
    """The review's first finding: a JSON Lines correction of a statement (or of a
    movement its import made) would rewrite what the bank said with one pair of eyes."""
    from reconcile.bank import statement_records

    nov = camt(tmp_path / "nov.xml", "ST-11", ("10000.00", "2026-11-01"),
               ("13007.34", "2026-11-30"), NOVEMBER)
    recs = statement_records(led, nov, "camt053", REGION, "income")
    led.ingest_records(recs, "nov", bank_records=True)
    st = next(r for r in recs if r["type"] == "finance.statement")
    mv = next(r for r in recs if r["id"] == "ST-11/INT1")
    f = tmp_path / "fix.jsonl"
    for forged in ({**st, "id": "ST-11-fix", "corrects": "ST-11", "closing_balance": "1.00"},
                   {**mv, "id": "ST-11/INT1-fix", "corrects": "ST-11/INT1"}):
        f.write_text(json.dumps(forged) + "\n", "utf-8")
        res = invoke("ingest", *h(Path(ledger_home["home"]), ledger_home["db"]), str(f))
        assert res.exit_code == 2 and "bfa statement withdraw" in res.stderr, res.output
    # the same statement imported with other options: the message says how
    res = _ingest(ledger_home, nov, "--fund-account", "expenditure", "--region", REGION)
    assert res.exit_code == 2 and "withdraw it first" in res.stderr, res.output


def test_withdrawing_a_reimported_statement_takes_its_movements_too(
        led: Ledger, tmp_path: Path) -> None:
    """The review's second finding: the statement's current id (ST-11:W:R) names the chain,
    whose movements are named after the first id."""
    from reconcile.bank import statement_records

    nov = camt(tmp_path / "nov.xml", "ST-11", ("10000.00", "2026-11-01"),
               ("13007.34", "2026-11-30"), NOVEMBER)
    led.ingest_records(statement_records(led, nov, "camt053", REGION, "income"), "nov",
                       bank_records=True)
    approve_withdrawal(led, request_withdrawal(led, "ST-11", "first", "alice").id, "bob")
    led.ingest_records(statement_records(led, nov, "camt053", REGION, "income"), "again",
                       bank_records=True)
    req = request_withdrawal(led, "ST-11:W:R", "second", "alice")
    assert sorted(req.records) == [
        "finance:ST-11/FEE1:W:R", "finance:ST-11/INT1:W:R", "finance:ST-11/RA:W:R",
        "finance:ST-11/RB:W:R", "finance:ST-11:W:R"]


def test_a_waiting_request_can_be_cancelled(led: Ledger, ledger_home: dict[str, Any],
                                            tmp_path: Path) -> None:
    from reconcile.bank import statement_records

    nov = camt(tmp_path / "nov.xml", "ST-11", ("10000.00", "2026-11-01"),
               ("13007.34", "2026-11-30"), NOVEMBER)
    led.ingest_records(statement_records(led, nov, "camt053", REGION, "income"), "nov",
                       bank_records=True)
    home = [*h(Path(ledger_home["home"]), ledger_home["db"])]
    req = request_withdrawal(led, "ST-11", "wrong month", "alice")
    res = invoke("statement", "cancel", *home, req.id, "--reason", "it was right",
                 user="bob")
    assert res.exit_code == 0 and "cancelled by bob" in res.stdout, res.output
    res = invoke("statement", "approve", *home, req.id, user="carol")
    assert res.exit_code == 2 and "cancelled by bob" in res.stderr
    res = invoke("statement", "withdrawals", *home)
    assert "cancelled by bob" in res.stdout and "+08:00" in res.stdout
    again = request_withdrawal(led, "ST-11", "now it is wrong", "alice")  # not blocked
    assert again.status == "requested"
