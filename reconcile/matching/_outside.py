"""What a run judges by besides the derived record tables: the compared death lists and
the regions the ledger holds.

Both are read afresh by every run (FORMAT.md §2.5, INTERCHANGE §12.3): the death lists from
their ``control.compare`` entries, each checked against its leaf
(:func:`reconcile.lists.comparisons`), into a work table of each person's date of death;
the regions from ``rc_records`` (or the rules' ``transfer_regions``). An incremental run
also learns what changed since the last run's watermark: the persons of lists compared
since, and the regions whose first record came since. Nothing here is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import BigInteger, Column, Integer, String, Table, select

from reconcile.lists import deaths
from reconcile.matching import _tables as t
from reconcile.matching._match import Work
from reconcile.matching._rules import Rules

_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Outside:
    """The run's death list and regions (see the module docstring)."""

    deaths: Table
    """``person`` (party pseudonym), ``day`` (epoch day of the earliest date of death any
    list gives), ``month`` (its ``YYYY-MM``), ``next_month``: the first month no benefit is
    due for; ``source`` and ``entry``: the list that gives it (its first entry)."""
    new_dead: Table
    """``person``: those on a list compared at or after the watermark (incremental runs)."""
    regions: Callable[[], tuple[str, ...]]
    """Regions where the other side of a transfer is looked for (read when first asked:
    one scan of ``rc_records``, which a run with no transfer to judge skips)."""
    newly_held: tuple[str, ...]
    """Of them, those held only since the watermark (incremental runs)."""


def _next_month(d: date) -> str:
    first = d.replace(day=1) + timedelta(days=32)
    return first.strftime("%Y-%m")


def outside(work: Work, checked: int | None, rules: Rules) -> Outside:
    """Read the death lists and the regions; ``checked``: the watermark of an incremental
    run (what came at or after it is new), None for a full one."""
    conn = work.conn
    earliest, fresh = deaths(conn, checked)
    dead = work.table("bfa_deaths", [Column("person", String(40), primary_key=True),
                                     Column("day", Integer), Column("month", String(7)),
                                     Column("next_month", String(7)),
                                     Column("source", String(128)),
                                     Column("entry", BigInteger)], None)
    rows = [{"person": p, "day": (d - _EPOCH).days, "month": d.strftime("%Y-%m"),
             "next_month": _next_month(d), "source": source, "entry": entry}
            for p, (d, source, entry) in sorted(earliest.items())]
    for i in range(0, len(rows), 5000):
        conn.execute(dead.insert(), rows[i:i + 5000])
    work.analyze(dead)
    new_dead = work.table("bfa_new_dead", [Column("person", String(40), primary_key=True)], None)
    if fresh:
        people = sorted(fresh)
        for i in range(0, len(people), 5000):
            conn.execute(new_dead.insert(), [{"person": p} for p in people[i:i + 5000]])
    work.analyze(new_dead)
    r = t.records.c
    newly: tuple[str, ...] = ()
    if rules.transfer_regions:
        named = rules.transfer_regions
        return Outside(dead, new_dead, lambda: named, newly)
    if checked is not None:  # regions of the new records the ledger held none of before
        # (a probe per region: it stops at the first older record of a region it holds)
        recent = sorted(str(x) for x in conn.execute(
            select(r.region).where(r.seq >= checked).distinct()).scalars())
        newly = tuple(g for g in recent if conn.execute(
            select(r.seq).where(r.region == g, r.seq < checked).limit(1)).first() is None)
    known: list[tuple[str, ...]] = []

    def regions() -> tuple[str, ...]:
        if not known:
            known.append(tuple(sorted(str(x) for x in conn.execute(
                select(r.region).distinct()).scalars())))
        return known[0]

    return Outside(dead, new_dead, regions, newly)


__all__ = ["Outside", "outside"]
