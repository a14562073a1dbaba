"""Entitlement rules (INTERCHANGE v1.1 and §12.3 of the project's reference):
``PAYMENT_WITHOUT_APPROVAL``, ``OVERPAYMENT``, ``CONTRIBUTION_WITHOUT_ENROLMENT``,
``DUPLICATE_ENROLMENT``. Each is shown firing and, beside it,
the near miss that must stay quiet: an approval in force, a re-approval after a
termination, a one-off grant, a payment within tolerance, an enrolment in force, a region
whose business system sends no approvals or enrolments. Both backends; incremental runs
equal full ones in ``test_incremental``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ledger import InputError, Ledger
from reconcile import Report, load_rules, run_reconcile
from tests.reconcile import _scenarios as sc

ENTITLEMENT = ("PAYMENT_WITHOUT_APPROVAL", "OVERPAYMENT", "CONTRIBUTION_WITHOUT_ENROLMENT",
               "DUPLICATE_ENROLMENT")
A, B = sc.REGION, "440300"


def _found(led: Ledger, tmp_path: Path, records: list[dict[str, Any]],
           rules: Any = None) -> list[tuple[str, str, str, str]]:
    sc.ingest(led, tmp_path, records)
    report: Report = run_reconcile(led, sc.AS_OF, rules)
    return sorted((b.code, b.records[0], b.field, b.amount_at_risk) for b in report.breaks
                  if b.code in ENTITLEMENT)


def _payment(i: int, amount: str = "3456.78", *, who: int, period: str = "2026-11",
             benefit: str | None = None) -> dict[str, Any]:
    rec = sc.payment_event(i, amount, who=who, period=period)
    if benefit is not None:
        rec["benefit"] = benefit
    return rec


def _assessment(aid: str, who: int, period: str = "2026-11") -> dict[str, Any]:
    return {**sc.assessment(aid, "400.00"), "person_id": sc.person(who), "period": period}


def test_payments_without_an_approval_in_force(led: Ledger, tmp_path: Path) -> None:
    found = _found(led, tmp_path, [
        sc.approval("BA-1", sc.ACCOUNT, start="2026-01", who=1),
        _payment(1, who=1),  # in force: quiet
        _payment(2, who=2),  # nobody approved person 2
        sc.approval("BA-3", sc.ACCOUNT, start="2026-12", who=3),
        _payment(3, who=3),  # approved only from December
        sc.approval("BA-4", sc.ACCOUNT, start="2026-01", who=4),
        sc.termination("TE-4", "2026-10-01", who=4),
        _payment(4, who=4),  # the termination ended the approval in October
        sc.approval("BA-5", sc.ACCOUNT, start="2026-01", who=5),
        sc.termination("TE-5", "2026-03-01", who=5),
        sc.approval("BA-5b", sc.ACCOUNT, start="2026-06", who=5),
        _payment(5, who=5),  # approved again after the termination: quiet
    ])
    assert found == [
        ("PAYMENT_WITHOUT_APPROVAL", "BP-2", "period", "3456.78"),
        ("PAYMENT_WITHOUT_APPROVAL", "BP-3", "period", "3456.78"),
        ("PAYMENT_WITHOUT_APPROVAL", "BP-4", "period", "3456.78"),
    ]


def test_one_off_benefits_need_an_approval_but_not_one_in_force(
        led: Ledger, tmp_path: Path) -> None:
    found = _found(led, tmp_path, [
        sc.approval("BA-1", sc.ACCOUNT, start="2026-01", who=1),
        sc.termination("TE-1", "2026-10-01", who=1),
        _payment(1, "5000.00", who=1, benefit="funeral_grant"),  # after the death: lawful
        _payment(2, "800.00", who=2, benefit="back_pay"),  # person 2 was never approved
        _payment(3, "900.00", who=1, benefit="basic_pension"),  # recurring: none in force
    ])
    assert found == [
        ("PAYMENT_WITHOUT_APPROVAL", "BP-2", "benefit", "800.00"),
        ("PAYMENT_WITHOUT_APPROVAL", "BP-3", "period", "900.00"),
    ]


def test_only_where_the_business_system_sends_approvals(led: Ledger, tmp_path: Path) -> None:
    """A region and insurance of which the ledger holds no approval are not judged (every
    payment would be a finding); the first approval there makes every payment judged."""
    other = {**sc.approval("BA-9", sc.ACCOUNT, who=9), "insurance": "medical"}
    assert _found(led, tmp_path, [_payment(2, who=2), other]) == []
    sc.ingest(led, tmp_path, [sc.approval("BA-1", sc.ACCOUNT, who=1)], "first")
    report = run_reconcile(led, sc.AS_OF)
    assert [(b.code, b.records) for b in report.breaks if b.code in ENTITLEMENT] == [
        ("PAYMENT_WITHOUT_APPROVAL", ("BP-2",))]


def test_overpayment_above_the_approved_monthly_amount(led: Ledger, tmp_path: Path) -> None:
    approved = {**sc.approval("BA-1", sc.ACCOUNT, who=1), "monthly_amount": "1000.00"}
    later = {**sc.approval("BA-1b", sc.ACCOUNT, start="2026-11", who=1),
             "monthly_amount": "1200.00"}
    found = _found(led, tmp_path, [
        approved, later,
        _payment(1, "9000.00", who=1),  # November: 1,200.00 in force (the latest start)
        _payment(2, "1000.00", who=1, period="2026-10"),  # October: 1,000.00, two payments
        _payment(3, "500.00", who=1, period="2026-10"),
        _payment(4, "5000.00", who=1, period="2026-09", benefit="back_pay"),  # one-off
    ])
    assert found == [
        ("OVERPAYMENT", "BP-1", "amount", "7800.00"),
        ("OVERPAYMENT", "BP-2", "amount", "500.00"),
    ]
    report = run_reconcile(led, sc.AS_OF)
    over = next(b for b in report.breaks if b.code == "OVERPAYMENT" and "BP-1" in b.records)
    assert over.records == ("BP-1", "BA-1b") and over.severity == "high"
    assert dict(over.amounts) == {"paid": "9000.00", "approved": "1200.00"}
    assert "allows 1,200.00 a month" in over.text()


def test_overpayment_within_tolerance_is_quiet(led: Ledger, tmp_path: Path) -> None:
    approved = {**sc.approval("BA-1", sc.ACCOUNT, who=1), "monthly_amount": "1000.00"}
    records = [approved, _payment(1, "1000.40", who=1)]
    assert _found(led, tmp_path, records, {"tolerance_fen": 50}) == []
    assert run_reconcile(led, sc.AS_OF).summary.by_code.get("OVERPAYMENT") == 1


def test_assessments_without_an_enrolment(led: Ledger, tmp_path: Path) -> None:
    found = _found(led, tmp_path, [
        sc.enrollment("EN-1", "2026-11-15", who=1),
        _assessment("CA-A1", 1),  # enrolled in November: quiet
        _assessment("CA-A2", 1, period="2026-10"),  # before the enrolment
        _assessment("CA-A3", 3),  # never enrolled
        sc.enrollment("EN-4", "2026-01-01", who=4),
        sc.termination("TE-4", "2026-06-01", who=4),
        _assessment("CA-A4", 4),  # terminated in June
        {**sc.enrollment("EN-5", "2026-01-01", who=5), "insurance": "medical"},
        _assessment("CA-A5", 5),  # enrolled in another insurance
    ])
    assert found == [
        ("CONTRIBUTION_WITHOUT_ENROLMENT", f"CA-A{i}", "person_id", "400.00")
        for i in (2, 3, 4, 5)]
    report = run_reconcile(led, sc.AS_OF)
    assert {b.severity for b in report.breaks if b.code in ENTITLEMENT} == {"medium"}


def test_rules_file_names_the_one_off_benefits(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[entitlement]\none_off_benefits = ["funeral_grant", "lump_sum"]\n',
                    encoding="utf-8")
    assert load_rules(path).one_off_benefits == ("funeral_grant", "lump_sum")
    for bad in ('"funeral_grant"', '["a", "a"]', '[" a"]', "[1]"):
        path.write_text(f"[entitlement]\none_off_benefits = {bad}\n", encoding="utf-8")
        with pytest.raises(InputError, match=r"entitlement\.one_off_benefits"):
            load_rules(path)
    path.write_text("[entitlement]\nother = 1\n", encoding="utf-8")
    with pytest.raises(InputError, match="entitlement"):
        load_rules(path)


def _enrolled(eid: str, region: str, effective: str, who: int) -> dict[str, Any]:
    return {**sc.enrollment(eid, effective, who=who), "region": region}


def test_enrolled_in_two_regions_at_once(led: Ledger, tmp_path: Path) -> None:
    found = _found(led, tmp_path, [
        _enrolled("EN-1A", A, "2026-01-01", 1), _enrolled("EN-1B", B, "2026-06-01", 1),
        # a transfer out of A into B twenty days after the second enrolment: explained
        _enrolled("EN-2A", A, "2026-01-01", 2), _enrolled("EN-2B", B, "2026-06-01", 2),
        sc.transfer("TO-2", "out", A, B, "2026-06-20", who=2),
        # ... or a transfer in, recorded by B, ten days before it
        _enrolled("EN-3A", A, "2026-01-01", 3), _enrolled("EN-3B", B, "2026-06-01", 3),
        sc.transfer("TI-3", "in", B, A, "2026-05-22", who=3),
        # the first enrolment ended by a termination in A before the second
        _enrolled("EN-4A", A, "2026-01-01", 4), _enrolled("EN-4B", B, "2026-06-01", 4),
        {**sc.termination("TE-4", "2026-05-01", who=4), "region": A},
        # a transfer far from the second enrolment explains nothing (the window: 90 days)
        _enrolled("EN-5A", A, "2026-01-01", 5), _enrolled("EN-5B", B, "2026-06-01", 5),
        sc.transfer("TO-5", "out", A, B, "2026-11-20", who=5),
        # one region, two enrolments: no finding
        _enrolled("EN-6A", A, "2026-01-01", 6), _enrolled("EN-6a", A, "2026-06-01", 6),
    ])
    assert found == [("DUPLICATE_ENROLMENT", "EN-1B", "region", "0.00"),
                     ("DUPLICATE_ENROLMENT", "EN-5B", "region", "0.00")]
    report = run_reconcile(led, sc.AS_OF)
    b = next(b for b in report.breaks if b.code == "DUPLICATE_ENROLMENT")
    assert b.records == ("EN-1B", "EN-1A") and b.severity == "medium"
    assert "no transfer between the two regions within 90 days" in b.message


def test_a_recent_second_enrolment_is_expected(led: Ledger, tmp_path: Path) -> None:
    sc.ingest(led, tmp_path, [_enrolled("EN-1A", A, "2026-01-01", 1),
                              _enrolled("EN-1B", B, "2027-02-01", 1)])
    report = run_reconcile(led, sc.AS_OF)  # 28 days after it: a transfer may still come
    assert [e.code for e in report.expected] == ["DUPLICATE_ENROLMENT"]
    assert not [b for b in report.breaks if b.code == "DUPLICATE_ENROLMENT"]
    later = run_reconcile(led, sc.AS_OF, {"transfer_days": 10})
    assert [b.records for b in later.breaks if b.code == "DUPLICATE_ENROLMENT"] == [
        ("EN-1B", "EN-1A")]


def test_a_re_approval_after_a_termination_is_not_a_payment_after_it(
        led: Ledger, tmp_path: Path) -> None:
    """Review: the two rules agree on a re-approval (INTERCHANGE §12.3): payments after it
    are neither without an approval nor after the termination; those between are both."""
    sc.ingest(led, tmp_path, [
        sc.approval("BA-3", sc.ACCOUNT, start="2026-01", who=3),
        sc.termination("TE-3", "2026-02-01", who=3),
        sc.approval("BA-3b", sc.ACCOUNT, start="2026-06", who=3),
        _payment(31, who=3, period="2026-07"), _payment(32, who=3, period="2026-04")])
    report = run_reconcile(led, sc.AS_OF)
    assert sorted((b.code, b.records[0]) for b in report.breaks
                  if b.code in (*ENTITLEMENT, "PAYMENT_AFTER_TERMINATION")) == [
        ("PAYMENT_AFTER_TERMINATION", "BP-32"), ("PAYMENT_WITHOUT_APPROVAL", "BP-32")]
