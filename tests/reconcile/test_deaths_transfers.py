"""Entitlement rules of INTERCHANGE v1.1 that read outside lists, certifications and
transfers: ``PAYMENT_AFTER_DEATH``, ``DEATH_NOT_RECORDED``, ``CERTIFICATION_OVERDUE``,
``TRANSFER_UNMATCHED``. Each is shown firing beside the near miss that must stay quiet
(the month of death itself, a funeral grant, a termination on time, a certification or an
approval start within the window, a transfer met on the other side, a region the ledger
does not hold, a transfer still inside its window). Both backends; incremental runs equal
full ones in ``test_incremental``."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

import schemas
from ledger import InputError, Ledger
from reconcile import Report, compare_list, load_rules, render_text, run_reconcile
from tests.reconcile import _scenarios as sc

CODES = ("PAYMENT_AFTER_DEATH", "DEATH_NOT_RECORDED", "CERTIFICATION_OVERDUE",
         "TRANSFER_UNMATCHED")
A, B, C = sc.REGION, "440300", "320100"


def _deaths(led: Ledger, tmp_path: Path, *pairs: tuple[int, str], name: str = "d.csv") -> None:
    path = tmp_path / name
    path.write_text("".join(f"{sc.person(who)},{day}\n" for who, day in pairs),
                    encoding="utf-8")
    compare_list(led, path, source="civil-affairs", today=date(2027, 3, 1))


def _found(report: Report) -> list[tuple[str, tuple[str, ...], str, str, str]]:
    return sorted((b.code, b.records, b.field, b.amount_at_risk, b.severity)
                  for b in report.breaks if b.code in CODES)


def _payment(i: int, who: int, period: str, amount: str = "3456.78",
             benefit: str | None = None) -> dict[str, Any]:
    rec = sc.payment_event(i, amount, who=who, period=period)
    if benefit is not None:
        rec["benefit"] = benefit
    return rec


def test_payments_after_a_death_on_a_compared_list(led: Ledger, tmp_path: Path) -> None:
    sc.ingest(led, tmp_path, [
        sc.approval("BA-1", sc.ACCOUNT, who=1),
        sc.termination("TE-1", "2026-11-01", who=1),
        _payment(1, 1, "2026-10"),  # the month of death is paid
        _payment(2, 1, "2026-11"),  # after it: also after the termination
        _payment(3, 1, "2026-11", "5000.00", benefit="funeral_grant"),  # lawful
        sc.approval("BA-2", sc.ACCOUNT, who=2),
        _payment(4, 2, "2026-11"),  # person 2 is alive
    ])
    assert _found(run_reconcile(led, sc.AS_OF)) == []
    _deaths(led, tmp_path, (1, "2026-10-15"), (1, "2026-10-20"), (9, "2026-01-01"))
    report = run_reconcile(led, sc.AS_OF)
    assert _found(report) == [
        ("PAYMENT_AFTER_DEATH", ("BP-2",), "period", "3456.78", "high")]
    b = next(b for b in report.breaks if b.code == "PAYMENT_AFTER_DEATH")
    assert "2026-10-15 as the date of death" in b.message
    # judged as of a day before the death: the list was not true yet
    assert _found(run_reconcile(led, date(2026, 10, 14))) == []


def test_deaths_not_recorded(led: Ledger, tmp_path: Path) -> None:
    sc.ingest(led, tmp_path, [
        sc.approval("BA-1", sc.ACCOUNT, who=1),  # no termination at all
        sc.approval("BA-2", sc.ACCOUNT, who=2),
        sc.termination("TE-2", "2026-11-01", who=2),  # from the month after: on time
        sc.approval("BA-3", sc.ACCOUNT, who=3),
        sc.termination("TE-3", "2026-10-20", who=3),  # mid-month: from November
        sc.approval("BA-4", sc.ACCOUNT, who=4),
        sc.termination("TE-4", "2027-01-01", who=4),  # too late: November still in force
        {**sc.approval("BA-5", sc.ACCOUNT, who=5), "insurance": "work_injury"},
        sc.approval("BA-5b", sc.ACCOUNT, who=5),
        sc.termination("TE-5", "2026-11-01", who=5),  # pension only: work injury goes on
        sc.approval("BA-6", sc.ACCOUNT, who=6),  # alive
    ])
    _deaths(led, tmp_path, *((who, "2026-10-15") for who in (1, 2, 3, 4, 5)))
    report = run_reconcile(led, sc.AS_OF)
    assert _found(report) == [
        ("DEATH_NOT_RECORDED", ("BA-1",), "person_id", "0.00", "high"),
        ("DEATH_NOT_RECORDED", ("BA-4",), "person_id", "0.00", "high"),
        ("DEATH_NOT_RECORDED", ("BA-5",), "person_id", "0.00", "high")]
    b = next(b for b in report.breaks if b.records == ("BA-5",))
    assert "(work_injury)" in b.message and "no termination ends the benefit" in b.message
    assert "the death list from civil-affairs (entry " in b.message
    with schemas.language("zh_CN"):
        assert "（工伤保险）" in b.text()


def _certification(cid: str, who: int, on: str, region: str = A) -> dict[str, Any]:
    return {"type": "business.certification", "id": cid, "region": region,
            "occurred_at": f"{on}T09:00:00+08:00", "person_id": sc.person(who),
            "insurance": "pension", "method": "face", "certified_on": on}


def test_certification_overdue(led: Ledger, tmp_path: Path) -> None:
    sc.ingest(led, tmp_path, [
        sc.approval("BA-1", sc.ACCOUNT, start="2024-01", who=1),
        _certification("CE-1", 1, "2025-11-10"),
        _payment(1, 1, "2026-10"),  # 11 months after the certification: covered
        _payment(2, 1, "2026-11"),  # 12 months: overdue
        sc.approval("BA-2", sc.ACCOUNT, start="2026-06", who=2),
        _payment(3, 2, "2026-11"),  # the benefit started 5 months before: covered
        sc.approval("BA-3", sc.ACCOUNT, start="2024-01", who=3),
        _payment(4, 3, "2026-11"),  # never certified
        _payment(5, 3, "2026-11", "800.00", benefit="back_pay"),  # one-off: not judged
        {**_payment(6, 3, "2026-11"), "insurance": "work_injury"},  # not a certified one
    ])
    report = run_reconcile(led, sc.AS_OF)
    assert _found(report) == [
        ("CERTIFICATION_OVERDUE", ("BP-2",), "period", "3456.78", "medium"),
        ("CERTIFICATION_OVERDUE", ("BP-4",), "period", "3456.78", "medium")]
    texts = {b.records[0]: b.message for b in report.breaks
             if b.code == "CERTIFICATION_OVERDUE"}
    assert "the last certification was in 2025-11" in texts["BP-2"]
    assert "no certification is on file" in texts["BP-4"]
    longer = run_reconcile(led, sc.AS_OF, {"certification_months": 13})
    assert [b.records for b in longer.breaks if b.code == "CERTIFICATION_OVERDUE"] == [
        ("BP-4",)]


def test_certification_only_where_certifications_are_held(led: Ledger,
                                                          tmp_path: Path) -> None:
    """A region whose business system sends no certification is not judged; the first
    certification there makes every pension payment judged."""
    sc.ingest(led, tmp_path, [sc.approval("BA-1", sc.ACCOUNT, start="2024-01", who=1),
                              _payment(1, 1, "2026-11"),
                              _certification("CE-9", 9, "2026-01-05", region=B)])
    assert _found(run_reconcile(led, sc.AS_OF)) == []
    sc.ingest(led, tmp_path, [_certification("CE-8", 8, "2026-01-05")], "first")
    assert [b.records for b in run_reconcile(led, sc.AS_OF).breaks
            if b.code == "CERTIFICATION_OVERDUE"] == [("BP-1",)]


def _movement(mid: str, event: str, to_region: str, amount: str = "5000.00") -> dict[str, Any]:
    return {"type": "finance.transfer", "id": mid, "region": A, "occurred_at": sc.T,
            "amount": amount, "value_date": "2026-10-05", "bank_ref": f"REF-{mid}",
            "payee_account": sc.ACCOUNT, "fund_account": "expenditure",
            "to_region": to_region, "allocations": [{"event": event, "amount": amount}]}


def test_transfers_without_their_other_side(led: Ledger, tmp_path: Path) -> None:
    sc.ingest(led, tmp_path, [
        {**sc.approval("BA-B", sc.ACCOUNT, who=9), "region": B},  # the ledger holds B
        sc.transfer("TO-1", "out", A, B, "2026-10-01", who=1),
        sc.transfer("TI-1", "in", B, A, "2026-10-20", who=1),  # met: quiet
        sc.transfer("TO-2", "out", A, B, "2026-10-01", who=2),  # no money moved: medium
        sc.transfer("TO-3", "out", A, B, "2026-10-01", who=3),
        _movement("MV-3", "TO-3", B),  # money left: high
        sc.transfer("TI-4", "in", B, A, "2026-10-01", who=4),  # money came from nowhere
        sc.transfer("TO-5", "out", A, C, "2026-10-01", who=5),  # C is not held: quiet
        sc.transfer("TO-6", "out", A, B, "2027-02-01", who=6),  # inside its window
        sc.transfer("TO-7", "out", A, B, "2026-10-01", who=7),
        sc.transfer("TI-7", "in", B, A, "2026-10-02", who=7, amount="4000.00"),  # differs
        sc.transfer("TO-8", "out", A, B, "2026-10-01", who=8),
        sc.transfer("TI-8", "in", B, A, "2026-10-02", who=8),
        _movement("MV-8", "TO-8", C),  # the money went to another region than the record's
    ])
    report = run_reconcile(led, sc.AS_OF)
    assert _found(report) == [
        ("TRANSFER_UNMATCHED", ("MV-8", "TO-8"), "to_region", "5000.00", "high"),
        ("TRANSFER_UNMATCHED", ("TI-4",), "region", "5000.00", "high"),
        ("TRANSFER_UNMATCHED", ("TI-7",), "region", "4000.00", "high"),
        ("TRANSFER_UNMATCHED", ("TO-2",), "region", "0.00", "medium"),
        ("TRANSFER_UNMATCHED", ("TO-3",), "region", "5000.00", "high"),
        ("TRANSFER_UNMATCHED", ("TO-7",), "region", "0.00", "medium")]
    assert [(e.code, e.records) for e in report.expected if e.code in CODES] == [
        ("TRANSFER_UNMATCHED", ("TO-6",))]
    # the summary has a row per code and severity
    rows = [line.split()[:3] for line in render_text(report).splitlines()
            if line.startswith("TRANSFER_UNMATCHED")]
    assert rows == [["TRANSFER_UNMATCHED", "high", "4"], ["TRANSFER_UNMATCHED", "medium", "2"]]
    # only the regions the rules name
    named = run_reconcile(led, sc.AS_OF, {"transfer_regions": (A,)})
    assert [b.records for b in named.breaks if b.code == "TRANSFER_UNMATCHED"] == [
        ("MV-8", "TO-8"), ("TI-4",), ("TI-7",)]


def test_a_medium_transfer_break_still_needs_four_eyes(led: Ledger, tmp_path: Path) -> None:
    """The severity a break shows may be lower than its code's (no money moved), but four
    eyes follow the code: the workflow's stored severity is not trusted (FORMAT.md §8.3)."""
    from reconcile import apply_states, get_break, resolve_break

    sc.ingest(led, tmp_path, [{**sc.approval("BA-B", sc.ACCOUNT, who=9), "region": B},
                              sc.transfer("TO-2", "out", A, B, "2026-10-01", who=2)])
    report = run_reconcile(led, sc.AS_OF)
    (b,) = [b for b in report.breaks if b.code == "TRANSFER_UNMATCHED"]
    assert b.severity == "medium"
    apply_states(led, report)
    assert get_break(led, b.id).severity == "medium"
    s = resolve_break(led, b.id, "alice", "other", "transfer_in found in the other system")
    assert s.status == "pending_approval"


def test_rules_file_keys(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[entitlement]\ncertification_months = 24\ncertified_insurances = '
                    '["pension", "work_injury"]\ntransfer_regions = ["440300", "110000"]\n',
                    encoding="utf-8")
    r = load_rules(path)
    assert (r.certification_months, r.certified_insurances, r.transfer_regions) == (
        24, ("pension", "work_injury"), ("110000", "440300"))
    for bad, key in (("certification_months = 0", "certification_months"),
                     ('certified_insurances = ["life"]', "certified_insurances"),
                     ('transfer_regions = ["11000"]', "transfer_regions"),
                     ('transfer_regions = ["110000", "110000"]', "transfer_regions")):
        path.write_text(f"[entitlement]\n{bad}\n", encoding="utf-8")
        with pytest.raises(InputError, match=rf"entitlement\.{key}"):
            load_rules(path)
