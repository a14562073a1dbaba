"""Rules file (issue 3, item 2): the example loads to the defaults; bad files are refused
naming file and key; tolerance, per-kind windows, requirements and the matching window
change what the reconciler reports (both backends)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ledger import Ledger
from ledger._errors import InputError
from reconcile import DEFAULT_RULES, RULESET_VERSION, Rules, load_rules, run_reconcile
from tests.reconcile import _scenarios as sc

EXAMPLE = Path(__file__).resolve().parents[2] / "reconcile" / "rules.example.toml"


def rules_file(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "rules.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_example_is_the_defaults() -> None:
    assert load_rules(EXAMPLE) == Rules() == Rules.from_mapping(DEFAULT_RULES)


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_rules(rules_file(tmp_path, "")) == Rules()


def test_values_are_read(tmp_path: Path) -> None:
    r = load_rules(rules_file(tmp_path, """
[tolerance]
absolute = "0.50"
percent = 0.05
[matching]
days_before = 10
[windows]
orphan_days = 7
[finance]
vouchers = ["accounting_voucher", "bank_slip"]
[kinds.benefit_payment]
settlement_days = 5
vouchers = []
[kinds.transfer_in]
movements = ["collection"]
[kinds.contribution_assessment]
movements = []
"""))
    assert (r.tolerance_fen, r.tolerance_ppm, r.match_days_before, r.match_days_after) == (
        50, 500, 10, 30)
    assert r.orphan_days == 7 and r.finance_vouchers == ("accounting_voucher", "bank_slip")
    assert r.settlement_for("benefit_payment") == 5 and r.settlement_for("refund") == 30
    assert r.kinds["benefit_payment"].movements == ("payment",)
    assert r.kinds["benefit_payment"].vouchers == ()
    assert r.settles()["collection"] == "transfer_in"
    assert r.within(50, 100) and r.within(51, 102_000) and not r.within(51, 101_999)


@pytest.mark.parametrize(("text", "key", "says"), [
    ("[tolerances]\n", "'tolerances'", "unknown key"),
    ("[tolerance]\nabsolut = \"1.00\"\n", "'tolerance.absolut'", "unknown key"),
    ("[tolerance]\nabsolute = 1\n", "'tolerance.absolute'", "money string"),
    ("[tolerance]\nabsolute = \"-1.00\"\n", "'tolerance.absolute'", "non-negative"),
    ("[tolerance]\nabsolute = \"0.005\"\n", "'tolerance.absolute'", "exact to the fen"),
    ("[tolerance]\npercent = \"abc\"\n", "'tolerance.percent'", "not a number"),
    ("[tolerance]\npercent = 101\n", "'tolerance.percent'", "between 0 and 100"),
    ("[tolerance]\npercent = 0.00001\n", "'tolerance.percent'", "4 decimals"),
    ("[matching]\ndays_after = -1\n", "'matching.days_after'", "whole number of days"),
    ("[matching]\ndays_after = 1.5\n", "'matching.days_after'", "whole number of days"),
    ("[windows]\nsettlement_days = true\n", "'windows.settlement_days'", "whole number"),
    ("windows = 3\n", "'windows'", "must be a table"),
    ("[kinds.pension]\n", "'kinds.pension'", "unknown key"),
    ("[kinds.refund]\nvoucher = []\n", "'kinds.refund.voucher'", "unknown key"),
    ("[kinds.refund]\nvouchers = [\"receipt\"]\n", "'kinds.refund.vouchers'", "unknown kind"),
    ("[kinds.refund]\nmovements = \"refund\"\n", "'kinds.refund.movements'", "list of strings"),
    ("[kinds.refund]\nmovements = [\"sweep\"]\n", "'kinds.refund.movements'", "unknown kind"),
    ("[kinds.enrollment]\nmovements = [\"collection\"]\n", "'kinds.enrollment.movements'",
     "carries no amount"),
    ("[kinds.refund]\nmovements = [\"collection\"]\n", "'kinds.refund.movements'",
     "already settles"),
    ("[finance]\nvouchers = [\"bank_slip\", \"bank_slip\"]\n", "'finance.vouchers'", "twice"),
])
def test_bad_values_name_file_and_key(tmp_path: Path, text: str, key: str, says: str) -> None:
    path = rules_file(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_rules(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: rules key {key}:"), msg
    assert says in msg, msg


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the rules file"):
        load_rules(tmp_path / "nope.toml")
    path = rules_file(tmp_path, "[tolerance\n")
    with pytest.raises(InputError, match=f"^{path}: not valid TOML"):
        load_rules(path)


# -- the rules change the findings (both backends) ----------------------------------------

def test_tolerance_settles_small_differences(led: Ledger, tmp_path: Path) -> None:
    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.mismatch(tmp_path, False))
    assert run_reconcile(led, sc.AS_OF).codes() == {"AMOUNT_MISMATCH": 2}
    loose = load_rules(rules_file(tmp_path, '[tolerance]\nabsolute = "0.10"\n'))
    assert run_reconcile(led, sc.AS_OF, loose).clean
    tight = load_rules(rules_file(tmp_path, '[tolerance]\nabsolute = "0.09"\n'))
    assert run_reconcile(led, sc.AS_OF, tight).codes() == {"AMOUNT_MISMATCH": 2}
    # 0.10 of 3456.78 is 0.0029 %: 0.003 % is enough, 0.002 % is not
    pct = load_rules(rules_file(tmp_path, "[tolerance]\npercent = 0.003\n"))
    assert run_reconcile(led, sc.AS_OF, pct).clean
    pct2 = load_rules(rules_file(tmp_path, "[tolerance]\npercent = 0.002\n"))
    assert not run_reconcile(led, sc.AS_OF, pct2).clean


def test_tolerance_applies_to_voucher_amounts(led: Ledger, tmp_path: Path) -> None:
    receipt = sc.voucher(tmp_path, "fiscal_receipt", "FR-9", ["CA-1"], amount="999.99")
    sc.ingest(led, tmp_path, [*sc.base(tmp_path), receipt])
    assert run_reconcile(led, sc.AS_OF).codes() == {"AMOUNT_MISMATCH": 1}
    loose = load_rules(rules_file(tmp_path, '[tolerance]\nabsolute = "0.01"\n'))
    assert run_reconcile(led, sc.AS_OF, loose).clean


def test_settlement_window_per_kind(led: Ledger, tmp_path: Path) -> None:
    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.unsettled(tmp_path, False))
    as_of = date(2026, 12, 1)  # BP-2 occurred 2026-11-20
    assert run_reconcile(led, as_of).clean
    short = load_rules(rules_file(tmp_path, "[kinds.benefit_payment]\nsettlement_days = 5\n"))
    assert run_reconcile(led, as_of, short).codes() == {"UNSETTLED_EVENT": 1}


def test_requirements_come_from_the_rules(led: Ledger, tmp_path: Path) -> None:
    sc.ingest(led, tmp_path, sc.base(tmp_path) + sc.missing_voucher(tmp_path, False))
    assert run_reconcile(led, sc.AS_OF).codes() == {"MISSING_VOUCHER": 1}
    none = load_rules(rules_file(tmp_path, "[kinds.contribution_assessment]\nvouchers = []\n"))
    assert run_reconcile(led, sc.AS_OF, none).clean
    both = load_rules(rules_file(
        tmp_path, '[kinds.contribution_assessment]\nvouchers = ["fiscal_receipt", "bank_slip"]\n'))
    report = run_reconcile(led, sc.AS_OF, both)
    msgs = sorted(b.message for b in report.breaks)
    assert msgs == ["business.contribution_assessment CA-1 has no bank_slip",
                    "business.contribution_assessment CA-2 has no bank_slip, fiscal_receipt"]
    # nothing settles assessments any more: their collections are not orphans either,
    # and assessments are not checked for settlement
    free = load_rules(rules_file(tmp_path, "[kinds.contribution_assessment]\nmovements = []\n"))
    assert run_reconcile(led, sc.AS_OF, free).codes() == {"MISSING_VOUCHER": 1}


def test_matching_window_from_the_rules(led: Ledger, tmp_path: Path) -> None:
    extra = sc.with_vouchers(tmp_path, [
        sc.assessment("CA-9", "777.00", employer=sc.OTHER_EMPLOYER),
        sc.collection("COL-9", "777.00", allocations=None, payer=sc.OTHER_EMPLOYER,
                      value_date="2026-12-16"),  # due 2026-11-15 + 31 days
    ], "x")
    sc.ingest(led, tmp_path, sc.base(tmp_path) + extra)
    assert run_reconcile(led, sc.AS_OF).codes() == {"ORPHAN_MOVEMENT": 1, "UNSETTLED_EVENT": 1}
    wide = load_rules(rules_file(tmp_path, "[matching]\ndays_after = 31\n"))
    report = run_reconcile(led, sc.AS_OF, wide)
    assert report.codes() == {"LATE_SETTLEMENT": 1}  # matched, 31 days after the due date
    assert report.run.rules["match_days_after"] == 31


def test_the_rules_a_run_uses_are_recorded_in_the_ledger(led: Ledger, tmp_path: Path) -> None:
    """Issue 20 item 5: the first run under some rules appends their ``control.rules``
    record (digest and content); later runs under the same rules append none; a widened
    tolerance is a new record, and each report names the digest of its rules."""
    from ledger import control_records
    from reconcile import rules_digest

    sc.ingest(led, tmp_path, sc.base(tmp_path))

    def recorded() -> list[dict[str, object]]:
        with led.store.reader() as conn:
            return [r for _seq, r in control_records(conn, "rules")]

    first = run_reconcile(led, sc.AS_OF)
    run_reconcile(led, sc.AS_OF)
    (rec,) = recorded()
    assert first.run.rules_digest == rec["digest"] == rules_digest(Rules())
    assert rec["id"] == f"rules-{rec['digest']}" and rec["rules"] == first.run.rules
    assert rec["ruleset"] == RULESET_VERSION and rec["user"]
    wider = run_reconcile(led, sc.AS_OF, {"tolerance_fen": 500})
    assert [r["digest"] for r in recorded()] == [rec["digest"], wider.run.rules_digest]
    assert recorded()[1]["rules"]["tolerance_fen"] == 500  # type: ignore[index]
    assert led.verify().ok


def test_a_rules_record_planted_under_the_digest_is_refused(led: Ledger, tmp_path: Path) -> None:
    """An insider with the application role appends ``rules-<digest of the defaults>``
    holding a wider tolerance before the first run: the run refuses to name it (integrity
    error) and ``bfa verify`` reports ``rules-mismatch`` at its entry (FORMAT.md §6.7)."""
    from ledger import IntegrityError, append_control
    from reconcile import rules_digest, verify_all

    sc.ingest(led, tmp_path, sc.base(tmp_path))
    digest = rules_digest(Rules())
    forged = {"type": "control.rules", "id": f"rules-{digest}", "digest": digest,
              "ruleset": RULESET_VERSION,
              "rules": {**Rules().describe(), "tolerance_fen": 100_000},
              "at": "2026-12-07T10:00:00+08:00"}
    with led.store.writer() as conn:
        (seq,) = append_control(led.store, conn, [forged])
    with pytest.raises(IntegrityError, match=f"rules-{digest}"):
        run_reconcile(led, sc.AS_OF)
    problems = verify_all(led).problems
    assert [(p.code, p.seq) for p in problems] == [("rules-mismatch", seq)]
    assert "do not have the digest it states" in problems[0].message


def test_a_rules_record_for_other_rules_is_reported(led: Ledger, tmp_path: Path) -> None:
    """A record whose id names one digest and whose content is other rules that were never
    used is reported by ``bfa verify`` as well; the run under the defaults goes on."""
    from ledger import append_control
    from reconcile import verify_all

    sc.ingest(led, tmp_path, sc.base(tmp_path))
    forged = {"type": "control.rules", "id": "rules-" + "0" * 64, "digest": "0" * 64,
              "ruleset": RULESET_VERSION, "rules": Rules().describe(),
              "at": "2026-12-07T10:00:00+08:00"}
    with led.store.writer() as conn:
        (seq,) = append_control(led.store, conn, [forged])
    run_reconcile(led, sc.AS_OF)
    assert [(p.code, p.seq) for p in verify_all(led).problems] == [("rules-mismatch", seq)]
