"""``bfa ingest --format camt053``: a statement becomes unallocated movements, idempotently."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from cli import bfa

CAMT = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
 <BkToCstmrStmt>
  <GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-11-21T08:00:00+08:00</CreDtTm></GrpHdr>
  <Stmt>
   <Id>STMT-2026-11-20</Id>
   <CreDtTm>2026-11-21T08:00:00+08:00</CreDtTm>
   <Acct><Id><Othr><Id>44001234567890</Id></Othr></Id><Ccy>CNY</Ccy></Acct>
   <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">1000.00</Amt>
    <CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-20</Dt></Dt></Bal>
   <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">1100.00</Amt>
    <CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-20</Dt></Dt></Bal>
   <Ntry>
    <Amt Ccy="CNY">100.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
    <BookgDt><Dt>2026-11-20</Dt></BookgDt><ValDt><Dt>2026-11-20</Dt></ValDt>
    <AcctSvcrRef>BANKREF-1</AcctSvcrRef>
   </Ntry>
  </Stmt>
 </BkToCstmrStmt>
</Document>
"""


def test_ingest_camt053_via_cli(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "stmt.xml"
    path.write_text(CAMT, encoding="utf-8")
    env = {"BFA_HOME": ledger_home["home"], "BFA_DATABASE_URL": ledger_home["db"]}
    args = ["ingest", "--format", "camt053", "--region", "440100", "--fund-account", "income",
            str(path), "--json"]
    first = CliRunner().invoke(bfa, args, env=env)
    assert first.exit_code == 0, first.output
    # statement + one collection + the archive.bank_statement record keeping the file
    assert json.loads(first.output)["files"][0]["appended"] == 3
    again = CliRunner().invoke(bfa, args, env=env)
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["files"][0]["appended"] == 0  # idempotent
    show = CliRunner().invoke(bfa, ["show", "STMT-2026-11-20/BANKREF-1", "--json"], env=env)
    assert show.exit_code == 0, show.output
    assert json.loads(show.output)["type"] == "finance.collection"


def test_ingest_statement_needs_region(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    """FORMAT §9.6: an account the home does not map needs --region (and --fund-account)."""
    path = tmp_path / "stmt.xml"
    path.write_text(CAMT, encoding="utf-8")
    env = {"BFA_HOME": ledger_home["home"], "BFA_DATABASE_URL": ledger_home["db"]}
    res = CliRunner().invoke(bfa, ["ingest", "--format", "camt053", "--fund-account",
                                   "income", str(path)], env=env)
    assert res.exit_code == 2 and "--region" in res.output and "bank-account set" in res.output


def test_a_statement_from_standard_input_is_a_usage_error(
        ledger_home: dict[str, Any]) -> None:
    """FORMAT.md §9.6: statements are read from files; '-' is not taken for a file named '-'."""
    env = {"BFA_HOME": ledger_home["home"], "BFA_DATABASE_URL": ledger_home["db"],
           "BFA_DEBUG": ""}
    res = CliRunner().invoke(bfa, ["ingest", "--format", "mt940", "--region", "440100", "-"],
                             env=env, input=":20:X\n")
    assert res.exit_code == 2 and "standard input" in res.output
