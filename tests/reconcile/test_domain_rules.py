"""Domain rules (issue 3, item 4) on both backends: each code injected and its clean near
miss; returned payments; fund account purposes and monthly netting; voucher amounts;
heuristic matches that never double-count; evidence digests; integrity breaks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger import Ledger
from reconcile import Break, Report, integrity_break, run_reconcile
from tests.reconcile import _scenarios as sc

Scenario = Callable[[Path, bool], list[dict[str, Any]]]
OTHER_ACCOUNT = "6222020200199999999"


def av(dir: Path, vid: str, refs: list[str]) -> dict[str, Any]:
    return sc.voucher(dir, "accounting_voucher", vid, refs)


# -- one scenario per code: (inject, clean) ------------------------------------------

def duplicate(dir: Path, clean: bool) -> list[dict[str, Any]]:
    # BP-2 pays person 1 (as BP-1 does); clean: for another period
    return sc.with_vouchers(dir, [
        sc.payment_event(2, who=1, period="2026-10" if clean else "2026-11"),
        sc.payment("PAY-2", allocations=[("BP-2", "3456.78")]),
    ], "x")


def after_termination(dir: Path, clean: bool) -> list[dict[str, Any]]:
    # benefit for 2026-11; terminated from 2026-10-15 (November no longer covered);
    # clean: terminated 2026-11-15 (November still paid)
    return [sc.termination("TERM-1", "2026-11-15" if clean else "2026-10-15")]


def payee(dir: Path, clean: bool) -> list[dict[str, Any]]:
    return [sc.approval("APR-1", sc.ACCOUNT if clean else OTHER_ACCOUNT),
            sc.voucher(dir, "approval_document", "AD-1", ["APR-1"])]


def returned(dir: Path, clean: bool) -> list[dict[str, Any]]:
    recs = [sc.ret("RET-1", "PAY-1", [("BP-1", "3456.78")])]
    if clean:  # paid again later
        again = sc.payment("PAY-1R", allocations=[("BP-1", "3456.78")])
        again["value_date"] = "2026-11-28"
        recs.append(again)
    return sc.with_vouchers(dir, recs, "x")


def account_rule(dir: Path, clean: bool) -> list[dict[str, Any]]:
    # a benefit paid from the income account; clean: from the expenditure account
    pay = sc.payment("PAY-2", allocations=[("BP-2", "3456.78")])
    pay["fund_account"] = "expenditure" if clean else "income"
    # keep the income account netted in both variants: this case is about purpose
    top_up = sc.collection("COL-2", "3456.78", allocations=None, fund_account="income",
                           payer=sc.OTHER_EMPLOYER)
    extra = [sc.payment_event(2), pay]
    if not clean:
        extra.append(top_up)
        extra.append(sc.assessment("CA-2", "3456.78", employer=sc.OTHER_EMPLOYER))
    return sc.with_vouchers(dir, extra, "x")


def netting(dir: Path, clean: bool) -> list[dict[str, Any]]:
    recs = [sc.assessment("CA-2", "500.00"),
            sc.collection("COL-2", "500.00", allocations=[("CA-2", "500.00")],
                          fund_account="income")]
    if clean:
        recs.append(sc.sweep("SW-2", "500.00"))
    return sc.with_vouchers(dir, recs, "x")


def voucher_amount(dir: Path, clean: bool) -> list[dict[str, Any]]:
    # a fiscal receipt printed for the assessment it evidences; injected: 10 yuan off
    return [sc.voucher(dir, "fiscal_receipt", "FR-9", ["CA-1"],
                       amount="1000.00" if clean else "990.00")]


CASES: dict[str, tuple[Scenario, list[tuple[str, ...]]]] = {
    "DUPLICATE_PAYMENT": (duplicate, [("BP-1", "BP-2")]),
    "PAYMENT_AFTER_TERMINATION": (after_termination, [("BP-1", "TERM-1")]),
    "PAYEE_MISMATCH": (payee, [("BP-1", "APR-1")]),
    "RETURNED_PAYMENT": (returned, [("BP-1", "RET-1")]),
    "ACCOUNT_RULE_VIOLATION": (account_rule, [("PAY-2",)]),
}


def reconcile(led: Ledger, tmp_path: Path, extra: list[dict[str, Any]],
              as_of: date = sc.AS_OF) -> Report:
    sc.ingest(led, tmp_path, sc.base(tmp_path) + extra)
    return run_reconcile(led, as_of)


def found(report: Report, code: str) -> list[Break]:
    return [b for b in report.breaks if b.code == code]


@pytest.mark.parametrize("code", list(CASES))
def test_code_injected(led: Ledger, tmp_path: Path, code: str) -> None:
    scenario, recs = CASES[code]
    report = reconcile(led, tmp_path, scenario(tmp_path, False))
    assert [b.records for b in found(report, code)] == recs, report.breaks
    assert report.codes() == {code: len(recs)}, report.breaks


@pytest.mark.parametrize("code", list(CASES))
def test_near_miss_is_clean(led: Ledger, tmp_path: Path, code: str) -> None:
    scenario, _ = CASES[code]
    report = reconcile(led, tmp_path, scenario(tmp_path, True))
    assert report.clean, report.breaks


def test_severities_and_amounts(led: Ledger, tmp_path: Path) -> None:
    extra = duplicate(tmp_path, False) + after_termination(tmp_path, False) + payee(
        tmp_path, False)
    report = reconcile(led, tmp_path, extra)
    got = {b.code: (b.severity, b.amount_at_risk, b.field) for b in report.breaks}
    assert got == {
        "DUPLICATE_PAYMENT": ("high", "3456.78", "period"),
        # BP-1 and BP-2 are both for person 1, 2026-11, after the termination
        "PAYMENT_AFTER_TERMINATION": ("high", "3456.78", "period"),
        "PAYEE_MISMATCH": ("high", "3456.78", "account"),
        # the termination ends the approval too: no approval is in force for them either
        "PAYMENT_WITHOUT_APPROVAL": ("high", "3456.78", "period"),
    }
    assert len(found(report, "PAYMENT_AFTER_TERMINATION")) == 2
    assert len(found(report, "PAYMENT_WITHOUT_APPROVAL")) == 2
    assert len(found(report, "PAYEE_MISMATCH")) == 2


# -- duplicates and corrections --------------------------------------------------------

def test_corrected_payment_is_not_a_duplicate(led: Ledger, tmp_path: Path) -> None:
    fix = sc.payment_event(1)
    fix["id"], fix["corrects"] = "BP-1-C", "BP-1"
    report = reconcile(led, tmp_path, [fix])
    assert report.clean, report.breaks


# -- terminations ------------------------------------------------------------------------

@pytest.mark.parametrize(("effective", "insurance", "breaks"), [
    ("2026-11-01", "pension", 1),  # in force from the 1st: November not covered
    ("2026-10-31", "all", 1),
    ("2026-11-02", "all", 0),
    ("2026-10-15", "medical", 0),  # another insurance
])
def test_termination_boundaries(led: Ledger, tmp_path: Path, effective: str, insurance: str,
                                breaks: int) -> None:
    report = reconcile(led, tmp_path, [sc.termination("TERM-1", effective, insurance)])
    assert len(found(report, "PAYMENT_AFTER_TERMINATION")) == breaks, report.breaks
    assert len(report.breaks) == breaks


# -- payee ---------------------------------------------------------------------------------

def test_payee_compares_with_the_approval_in_force(led: Ledger, tmp_path: Path) -> None:
    extra = [sc.approval("APR-1", OTHER_ACCOUNT, "2025-01"),
             sc.approval("APR-2", sc.ACCOUNT, "2026-06"),
             sc.approval("APR-3", OTHER_ACCOUNT, "2027-01"),
             sc.voucher(tmp_path, "approval_document", "AD-1", ["APR-1", "APR-2", "APR-3"])]
    assert reconcile(led, tmp_path, extra).clean


# -- returned payments -------------------------------------------------------------------

def test_returned_payment_is_open_until_paid_again(led: Ledger, tmp_path: Path) -> None:
    first = reconcile(led, tmp_path, returned(tmp_path, False))
    (b,) = first.breaks
    assert (b.severity, b.amounts, b.amount_at_risk, b.field) == (
        "medium", {"event": "3456.78", "returned": "3456.78", "settled": "0.00"}, "3456.78",
        "returns")
    again = sc.payment("PAY-1R", allocations=[("BP-1", "3456.78")])
    sc.ingest(led, tmp_path, sc.with_vouchers(tmp_path, [again], "y"), "again")
    assert run_reconcile(led, sc.AS_OF).clean


def test_partial_return(led: Ledger, tmp_path: Path) -> None:
    report = reconcile(led, tmp_path, sc.with_vouchers(tmp_path, [
        sc.ret("RET-1", "PAY-1", [("BP-1", "1000.00")], amount="1000.00")], "x"))
    (b,) = report.breaks
    assert (b.code, b.amount_at_risk) == ("RETURNED_PAYMENT", "1000.00")


# -- fund accounts -------------------------------------------------------------------------

@pytest.mark.parametrize(("frm", "to", "field"), [
    ("income", "expenditure", "to_account"),
    ("income", "fiscal_special", None),
    ("fiscal_special", "expenditure", None),
])
def test_sweeps(led: Ledger, tmp_path: Path, frm: str, to: str, field: str | None) -> None:
    # the base collection is swept by SW-1; a second collection is swept by SW-2 (or,
    # from fiscal_special, the income account is swept by the base alone)
    extra: list[dict[str, Any]] = [sc.sweep("SW-2", "10.00", from_account=frm, to_account=to)]
    if frm == "income":
        extra += [sc.assessment("CA-2", "10.00"),
                  sc.collection("COL-2", "10.00", allocations=[("CA-2", "10.00")],
                                fund_account="income")]
    report = reconcile(led, tmp_path, sc.with_vouchers(tmp_path, extra, "x"))
    assert [(b.records, b.field) for b in report.breaks] == (
        [] if field is None else [(("SW-2",), field)])


def test_expenditure_receives_only_from_fiscal_special(led: Ledger, tmp_path: Path) -> None:
    extra = [sc.assessment("CA-2", "10.00"),
             sc.collection("COL-2", "10.00", allocations=[("CA-2", "10.00")],
                           fund_account="expenditure")]
    report = reconcile(led, tmp_path, sc.with_vouchers(tmp_path, extra, "x"))
    assert [(b.code, b.records, b.field) for b in report.breaks] == [
        ("ACCOUNT_RULE_VIOLATION", ("COL-2",), "fund_account")]


def test_income_account_nets_to_zero_each_month(led: Ledger, tmp_path: Path) -> None:
    report = reconcile(led, tmp_path, netting(tmp_path, False))
    (b,) = report.breaks
    assert (b.code, b.records, b.field, b.amounts, b.amount_at_risk) == (
        "ACCOUNT_RULE_VIOLATION", (), "fund_account",
        {"in": "1500.00", "out": "1000.00", "net": "500.00"}, "500.00")
    assert b.message.startswith("income account 2026-11:")
    # inside the month it is expected, not a break
    inside = run_reconcile(led, date(2026, 11, 30))
    assert not found(inside, "ACCOUNT_RULE_VIOLATION")
    assert [x.until for x in inside.expected if x.code == "ACCOUNT_RULE_VIOLATION"] == [
        "2026-11-30"]
    # more money in the same month: the same break (same id), other evidence
    sc.ingest(led, tmp_path, sc.with_vouchers(tmp_path, [
        sc.assessment("CA-3", "1.00"),
        sc.collection("COL-3", "1.00", allocations=[("CA-3", "1.00")], fund_account="income")],
        "y"), "more")
    later = run_reconcile(led, sc.AS_OF)
    (b2,) = [x for x in later.breaks if x.field == "fund_account"]
    assert b2.id == b.id and b2.evidence != b.evidence


def test_netting_clean(led: Ledger, tmp_path: Path) -> None:
    assert reconcile(led, tmp_path, netting(tmp_path, True)).clean


# -- voucher amounts -------------------------------------------------------------------------

def test_voucher_amount_mismatch(led: Ledger, tmp_path: Path) -> None:
    report = reconcile(led, tmp_path, voucher_amount(tmp_path, False))
    (b,) = report.breaks
    assert (b.code, b.records, b.field, b.amounts, b.amount_at_risk, b.severity) == (
        "AMOUNT_MISMATCH", ("FR-9", "CA-1"), "amount",
        {"voucher": "990.00", "evidenced": "1000.00"}, "10.00", "medium")
    assert b.message == "voucher FR-9 says 990.00, the business records it evidences add up " \
        "to 1000.00"


def test_voucher_amount_clean(led: Ledger, tmp_path: Path) -> None:
    assert reconcile(led, tmp_path, voucher_amount(tmp_path, True)).clean


def test_voucher_naming_event_and_its_payment(led: Ledger, tmp_path: Path) -> None:
    # a bank slip for BP-1 and PAY-1: the same money once per domain
    slip = sc.voucher(tmp_path, "bank_slip", "BS-9", ["BP-1", "PAY-1"], amount="3456.78")
    assert reconcile(led, tmp_path, [slip]).clean


def test_voucher_amount_follows_corrections(led: Ledger, tmp_path: Path) -> None:
    fix = sc.assessment("CA-1-C", "990.00")
    fix["corrects"] = "CA-1"
    receipt = sc.voucher(tmp_path, "fiscal_receipt", "FR-9", ["CA-1"], amount="990.00")
    report = reconcile(led, tmp_path, [fix, receipt])
    # the receipt now agrees with the current version; the collection over-settles it
    assert [b.records for b in report.breaks if b.records[0] == "FR-9"] == []
    assert [b.code for b in report.breaks] == ["AMOUNT_MISMATCH"]


@pytest.mark.parametrize(("amount", "flagged"), [("1000.00", False), ("2000.00", True)])
def test_voucher_naming_two_versions_counts_the_record_once(led: Ledger, tmp_path: Path,
                                                            amount: str, flagged: bool) -> None:
    fix = sc.assessment("CA-1-C", "1000.00")
    fix["corrects"] = "CA-1"
    receipt = sc.voucher(tmp_path, "fiscal_receipt", "FR-9", ["CA-1", "CA-1-C"], amount=amount)
    report = reconcile(led, tmp_path, [fix, receipt])
    mine = [b for b in report.breaks if b.records[0] == "FR-9"]
    assert [(b.amounts, b.records) for b in mine] == (
        [({"voucher": "2000.00", "evidenced": "1000.00"}, ("FR-9", "CA-1-C"))] if flagged else [])


# -- heuristic matches never double-count --------------------------------------------------

def test_two_movements_for_one_event_are_ambiguous(led: Ledger, tmp_path: Path) -> None:
    extra = sc.with_vouchers(tmp_path, [
        sc.assessment("CA-9", "777.00", employer=sc.OTHER_EMPLOYER),
        sc.collection("COL-9a", "777.00", allocations=None, payer=sc.OTHER_EMPLOYER),
        sc.collection("COL-9b", "777.00", allocations=None, payer=sc.OTHER_EMPLOYER),
    ], "x")
    report = reconcile(led, tmp_path, extra)
    assert sorted((b.code, b.records) for b in report.breaks) == [
        ("AMBIGUOUS_MATCH", ("COL-9a", "CA-9")), ("AMBIGUOUS_MATCH", ("COL-9b", "CA-9")),
        ("UNSETTLED_EVENT", ("CA-9",))]
    assert "another unallocated movement" in report.breaks[0].message


def test_match_takes_only_the_open_amount(led: Ledger, tmp_path: Path) -> None:
    # CA-9 is 777.00, 700.00 allocated; an unallocated 777.00 would over-settle it
    base = [sc.assessment("CA-9", "777.00", employer=sc.OTHER_EMPLOYER),
            sc.collection("COL-9", "700.00", allocations=[("CA-9", "700.00")],
                          payer=sc.OTHER_EMPLOYER)]
    full = sc.collection("COL-9x", "777.00", allocations=None, payer=sc.OTHER_EMPLOYER)
    report = reconcile(led, tmp_path, sc.with_vouchers(tmp_path, [*base, full], "x"))
    assert sorted((b.code, b.records) for b in report.breaks) == [
        ("AMOUNT_MISMATCH", ("CA-9", "COL-9")), ("ORPHAN_MOVEMENT", ("COL-9x",))]
    rest = sc.collection("COL-9y", "77.00", allocations=None, payer=sc.OTHER_EMPLOYER)
    sc.ingest(led, tmp_path, sc.with_vouchers(tmp_path, [rest], "y"), "rest")
    again = run_reconcile(led, sc.AS_OF)
    assert [(b.code, b.records) for b in again.breaks] == [("ORPHAN_MOVEMENT", ("COL-9x",))]


def test_match_is_recomputed_not_accumulated(led: Ledger, tmp_path: Path) -> None:
    # run 1 matches COL-9 to CA-9; run 2 (a second candidate event arrived) reports the
    # ambiguity and counts COL-9 for neither event; run 3 repeats run 2 exactly
    first = reconcile(led, tmp_path, sc.orphan(tmp_path, True))
    assert first.clean
    sc.ingest(led, tmp_path, [sc.assessment("CA-9b", "777.00", employer=sc.OTHER_EMPLOYER,
                                            due="2026-11-20")], "more")
    second = run_reconcile(led, sc.AS_OF)
    third = run_reconcile(led, sc.AS_OF)
    assert sorted((b.code, b.records) for b in second.breaks) == [
        ("AMBIGUOUS_MATCH", ("COL-9", "CA-9", "CA-9b")), ("MISSING_VOUCHER", ("CA-9b",)),
        ("UNSETTLED_EVENT", ("CA-9",)), ("UNSETTLED_EVENT", ("CA-9b",))]
    assert [(b.id, b.evidence) for b in second.breaks] == [
        (b.id, b.evidence) for b in third.breaks]


# -- evidence and integrity ------------------------------------------------------------------

def test_evidence_is_stable_and_follows_the_records(led: Ledger, tmp_path: Path) -> None:
    one = reconcile(led, tmp_path, duplicate(tmp_path, False))
    two = run_reconcile(led, sc.AS_OF)
    assert [b.evidence for b in one.breaks] == [b.evidence for b in two.breaks]
    assert all(len(b.evidence) == 64 for b in one.breaks)


def test_integrity_break() -> None:
    b = integrity_break("hash chain broken at entry 7", 7)
    assert (b.code, b.severity, b.records, b.field, b.amount_at_risk) == (
        "LEDGER_INTEGRITY", "high", (), "entry", "0.00")
    assert b.id == integrity_break("another message", 7).id != integrity_break("x", 8).id
    assert b.evidence != integrity_break("another message", 7).evidence
    assert integrity_break("bad signature", None).field == "ledger"
