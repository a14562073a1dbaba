"""``run_reconcile``: refresh the derived tables, run the matching SQL, judge by date.

The SQL (:mod:`reconcile._match`) returns only rows that are not in order; here each
row is judged against the run's date and the :class:`~reconcile._rules.Rules`:
still inside its window, it is *expected*; past it, it is a :class:`Break`.
Amounts that cannot be right whatever happens later (an event allocated more than
its amount, a movement whose allocations do not add up, an ambiguous match, a late
settlement) are breaks at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from ledger import Ledger
from reconcile._match import Matcher
from reconcile._refresh import refresh
from reconcile._report import Break, Expected, Report, RunInfo
from reconcile._rules import Rules
from reconcile._units import day_date, epoch_day, money

TZ = ZoneInfo("Asia/Shanghai")


def today() -> date:
    """Today in Asia/Shanghai (the default as-of date)."""
    return datetime.now(TZ).date()


def run_reconcile(
    ledger: Ledger, as_of: date | None = None, rules: Rules | Mapping[str, Any] | None = None
) -> Report:
    """Reconcile the ledger as of a date.

    Args:
        ledger: an open ledger (schema revision 0002 or later).
        as_of: the date to judge windows by; default today in Asia/Shanghai.
        rules: a :class:`Rules` or a dict of overrides of :data:`DEFAULT_RULES`.

    Returns:
        The :class:`Report`; ``report.clean`` is true when there are no breaks.
    """
    started = datetime.now(TZ)
    as_of = as_of or started.date()
    rules = rules if isinstance(rules, Rules) else Rules.from_mapping(rules)
    decoded, size = refresh(ledger.store)
    judge = _Judge(epoch_day(as_of), rules)
    with ledger.store.reader() as conn:
        _collect(conn, Matcher(rules), judge)
    run = RunInfo(
        as_of=as_of.isoformat(), started_at=started.isoformat(timespec="seconds"),
        finished_at=datetime.now(TZ).isoformat(timespec="seconds"), ledger_size=size,
        decoded=decoded, backend=ledger.store.dialect, rules=rules.model_dump())
    return Report.build(run, judge.breaks, judge.expected)


class _Judge:
    """Collects breaks and expected items, deciding by window end versus the as-of day."""

    def __init__(self, as_of_day: int, rules: Rules) -> None:
        self.as_of_day = as_of_day
        self.rules = rules
        self.breaks: list[Break] = []
        self.expected: list[Expected] = []

    def windowed(self, until_day: int, code: str, records: tuple[str, ...],
                 amounts: dict[str, int], field: str, message: str, at_risk: int) -> None:
        if self.as_of_day <= until_day:
            until = day_date(until_day).isoformat()
            self.expected.append(Expected(
                code=code, records=records, amounts={k: money(v) for k, v in amounts.items()},
                field=field, until=until, message=f"{message} (window until {until})"))
        else:
            self.breaks.append(Break.make(code, records, amounts, field, message, at_risk))


def _ids(joined: str | None) -> tuple[str, ...]:
    return tuple(sorted(set(joined.split(",")))) if joined else ()


def _collect(conn: Connection, m: Matcher, j: _Judge) -> None:
    r = j.rules
    for rid, kind, amount, anchor, due, total, last_day, movs in m.event_findings(conn):
        records = (rid, *_ids(movs))
        amounts = {"event": amount, "allocated": total}
        if total == 0:
            j.windowed(anchor + r.settlement_days, "UNSETTLED_EVENT", (rid,), {"event": amount},
                       "amount", f"{kind} {rid} of {money(amount)} has no movement settling it",
                       amount)
        elif total < amount:
            j.windowed(anchor + r.settlement_days, "AMOUNT_MISMATCH", records, amounts, "amount",
                       f"allocated {money(total)}, event {money(amount)}", amount - total)
        elif total > amount:
            j.breaks.append(Break.make(
                "AMOUNT_MISMATCH", records, amounts, "amount",
                f"allocated {money(total)}, event {money(amount)}", total - amount))
        elif due is not None and last_day is not None:
            j.breaks.append(Break.make(
                "LATE_SETTLEMENT", records, {"event": amount}, "value_date",
                f"{kind} {rid} due {day_date(due)} was settled on {day_date(last_day)}, "
                f"{last_day - due} days later (allowed {r.late_days})"))
    for rid, amount, allocated in m.movement_mismatches(conn):
        j.breaks.append(Break.make(
            "AMOUNT_MISMATCH", (rid,), {"movement": amount, "allocated": allocated},
            "allocations", f"allocations add up to {money(allocated)}, movement "
            f"{money(amount)}", abs(amount - allocated)))
    for rid, kind, amount, value_day, allocated in m.orphans(conn):
        why = ("its allocations name no event in the ledger" if allocated
               else "it is unallocated and matches no event")
        j.windowed(value_day + r.orphan_days, "ORPHAN_MOVEMENT", (rid,), {"movement": amount},
                   "allocations", f"{kind} {rid} of {money(amount)}: {why}", amount)
    for rid, amount, events in m.ambiguous(conn):
        cands = _ids(events)
        j.breaks.append(Break.make(
            "AMBIGUOUS_MATCH", (rid, *cands), {"movement": amount}, "allocations",
            f"unallocated {rid} of {money(amount)} matches {len(cands)} events equally well: "
            f"{', '.join(cands[:10])}{' ...' if len(cands) > 10 else ''}", amount))
    for rid, domain, kind, required, occurred_day in m.missing_vouchers(conn):
        j.windowed(occurred_day + r.voucher_days, "MISSING_VOUCHER", (rid,), {}, "refs",
                   f"{domain}.{kind} {rid} has no {required}", 0)
