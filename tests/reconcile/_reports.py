"""A hand-built report for the renderer tests: breaks of four ages, Chinese and hostile
text, one expected item."""

from __future__ import annotations

from reconcile.reports._report import Break, Expected, Report, RunInfo

HOSTILE = '</script><script>alert(1)</script><img src=x onerror="document.title=\'pwned\'">'
FORMULA_ID = '=HYPERLINK("http://evil.example","x")'


class DatedBreak(Break):
    """A break as later steps extend it: an event date (aging) and a workflow status."""

    occurred_on: str | None = None
    status: str | None = None


def _brk(code: str, records: tuple[str, ...], amounts: dict[str, int], message: str,
         at_risk: int, occurred_on: str | None = None, status: str | None = None,
         field: str = "amount") -> Break:
    b = Break.make(code, records, amounts, field, message, at_risk)
    return DatedBreak(**b.model_dump(exclude={"status"}), at_risk_fen=b.at_risk_fen,
                      occurred_on=occurred_on, status=status)


def run_info(as_of: str = "2027-03-01") -> RunInfo:
    return RunInfo(as_of=as_of, started_at=f"{as_of}T02:00:00+08:00",
                   finished_at=f"{as_of}T02:00:04+08:00", ledger_size=4321, decoded=21,
                   backend="sqlite", rules={"tolerance_fen": 0})


def sample_report(status: bool = False) -> Report:
    """Five breaks of four ages (and one undated), Chinese and hostile text, one expected."""
    st = (lambda s: s) if status else (lambda s: None)
    breaks = [
        _brk("ORPHAN_MOVEMENT", ("COL-9",), {"movement": 77700},
             "collection COL-9 of 777.00 matches no event", 77700, "2026-11-12", st("open")),
        _brk("AMOUNT_MISMATCH", ("BP-2", "PAY-2"), {"event": 345678, "allocated": 345668},
             "allocated 3456.68, event 3456.78 (待遇退票, 张三)", 10, "2027-02-10",
             st("resolved")),
        _brk("MISSING_VOUCHER", (FORMULA_ID,), {"event": 100000}, HOSTILE, 0, None,
             st("open"), field="refs"),
        _brk("UNSETTLED_EVENT", ("CA-3",), {"event": 123456780, "allocated": 0},
             'unsettled, "quoted", comma, and\nnewline', 123456780, "2026-12-20", st("open")),
        _brk("LATE_SETTLEMENT", ("CA-4", "COL-4"), {"event": 5000}, "settled 3 days late", 0,
             "2026-12-15", st("assigned")),
    ]
    expected = [Expected(code="UNSETTLED_EVENT", records=("BP-5",), amounts={"event": "10.00"},
                         field="allocations", until="2027-03-20",
                         message="BP-5 not yet paid (window until 2027-03-20)")]
    return Report.build(run_info(), breaks, expected)


def clean_report() -> Report:
    return Report.build(run_info(), [], [])
