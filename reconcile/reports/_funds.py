"""Per-fund views of a report (分险种核算): its breaks summarised by insurance and region.

This module owns which insurance and pooling region a break belongs to, and the summary of
each group of breaks (``bfa reconcile --by``, ``bfa nightly --by``; FORMAT.md §7.5). It
changes no break: ids, evidence and the findings' digests are what the run made them.

**The rule.** A break belongs to the insurance and region of its *first record* (the
record at fault, the first of ``records``): the region every record carries, the
insurance of a business record (each business kind states one). A fund movement, a
voucher or a bank statement states no insurance, nor does a termination of ``all``
insurances: their breaks are in the group without an insurance (``None``, shown as *no
insurance*). A break without records (``LEDGER_INTEGRITY``, an income account's month)
has neither. A record id names at most one record per domain; should it name records of
two domains, the business record's counts, then the finance one's. The values are read
from the reconciler's derived tables (``rc_records``, ``rc_events``,
``rc_person_events``), in chunks: memory grows with the breaks, not with the ledger.

Because a record's breaks all fall in its group, and the report's amount at risk counts
each record at fault once (:func:`~reconcile.reports._report.at_risk_total`), the
groups' amounts at risk add up exactly to the summary's.

Example::

    from reconcile import fund_view, parse_by, run_reconcile

    report = run_reconcile(led)
    view = fund_view(led, report, parse_by("insurance,region"))
    for g in view.groups:
        print(g.key, g.breaks, money(g.at_risk_fen))
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from ledger import InputError, Ledger, printable
from reconcile.matching import _tables as t
from reconcile.matching._units import money
from reconcile.reports._report import Break, Report, at_risk_total
from schemas import gettext as _

GROUP_KEYS: tuple[str, ...] = ("insurance", "region")
"""What breaks can be grouped by (``--by``: one of them, or both separated by a comma)."""

INSURANCE_ORDER: tuple[str, ...] = ("pension", "medical", "unemployment", "work_injury",
                                    "maternity")
"""The insurances in the order groups are listed (INTERCHANGE §3); any other after them."""

SEVERITIES: tuple[str, ...] = ("high", "medium", "low")

_DOMAIN_ORDER = {"business": 0, "finance": 1, "archive": 2}
_CHUNK = 500

Fund = tuple[str | None, str | None]
"""(insurance, region) of a record; None where it has none."""


def parse_by(text: str) -> tuple[str, ...]:
    """``--by``: ``insurance``, ``region`` or both separated by a comma (in the order
    given, which is the order of the groups and their columns).

    Raises:
        InputError: an empty, unknown or repeated key.
    """
    keys = tuple(part.strip() for part in text.split(","))
    for key in keys:
        if key not in GROUP_KEYS:
            raise InputError(_("--by {value}: {key} is not a way to group breaks; give "
                               "insurance, region or insurance,region").format(
                value=printable(text), key=repr(printable(key))))
    if len(set(keys)) != len(keys):
        raise InputError(_("--by {value}: a key is named twice").format(
            value=printable(text)))
    return keys


@dataclass(frozen=True, slots=True)
class FundGroup:
    """The breaks of one insurance and/or region: counts and amounts at risk."""

    key: tuple[str | None, ...]
    """The values of the view's ``keys``, in their order; None: the break has none."""
    breaks: int = 0
    by_severity: dict[str, int] = field(default_factory=dict)
    by_code: dict[str, int] = field(default_factory=dict)
    at_risk_fen: int = 0
    """What its breaks not resolved put at risk, each record at fault counted once."""
    at_risk_resolved_fen: int = 0
    """What its resolved breaks put at risk."""
    risk_by_code: dict[str, int] = field(default_factory=dict)
    """Per code, the amounts at risk of its breaks not resolved, added up (what a chart of
    the fund shows beside each code; not in the JSON)."""


@dataclass(frozen=True, slots=True)
class FundView:
    """A report's breaks by insurance and/or region: one :class:`FundGroup` per value met."""

    keys: tuple[str, ...]
    groups: tuple[FundGroup, ...]

    def to_json(self) -> dict[str, Any]:
        """The ``by`` member of ``--json`` (FORMAT.md §7.5): codes and money strings."""
        return {"keys": list(self.keys), "groups": [
            {**dict(zip(self.keys, g.key, strict=True)), "breaks": g.breaks,
             "by_severity": g.by_severity, "by_code": g.by_code,
             "amount_at_risk": money(g.at_risk_fen),
             "amount_at_risk_resolved": money(g.at_risk_resolved_fen)}
            for g in self.groups]}


def _resolved(b: Break) -> bool:
    return b.status == "resolved"


def _order(keys: Sequence[str], key: tuple[str | None, ...]) -> tuple[Any, ...]:
    """Insurances in :data:`INSURANCE_ORDER`, regions by code; None last."""
    out: list[Any] = []
    for name, value in zip(keys, key, strict=True):
        if value is None:
            out.append((2, 0, ""))
        elif name == "insurance" and value in INSURANCE_ORDER:
            out.append((0, INSURANCE_ORDER.index(value), value))
        else:
            out.append((1, 0, value))
    return tuple(out)


def group_breaks(report: Report, funds: Mapping[str, Fund], keys: Sequence[str]) -> FundView:
    """The groups of ``report``'s breaks given each first record's (insurance, region)
    (``funds``; a record it lacks has neither), with no database: see :func:`fund_view`."""
    members: dict[tuple[str | None, ...], list[Break]] = {}
    for b in report.breaks:
        insurance, region = funds.get(b.records[0], (None, None)) if b.records else (None, None)
        values = {"insurance": insurance, "region": region}
        members.setdefault(tuple(values[k] for k in keys), []).append(b)
    groups = []
    for key in sorted(members, key=lambda k: _order(keys, k)):
        bs = members[key]
        severities = Counter(str(b.severity) for b in bs)
        groups.append(FundGroup(
            key=key, breaks=len(bs),
            by_severity={s: severities.get(s, 0) for s in SEVERITIES},
            by_code=dict(sorted(Counter(b.code for b in bs).items())),
            at_risk_fen=at_risk_total(b for b in bs if not _resolved(b)),
            at_risk_resolved_fen=at_risk_total(b for b in bs if _resolved(b)),
            risk_by_code=_risk_by_code(bs)))
    return FundView(tuple(keys), tuple(groups))


def _risk_by_code(breaks: Iterable[Break]) -> dict[str, int]:
    out: dict[str, int] = {}
    for b in breaks:
        out[b.code] = out.get(b.code, 0) + (0 if _resolved(b) else b.at_risk_fen)
    return out


def funds_of(conn: Connection, ids: Iterable[str]) -> dict[str, Fund]:
    """(insurance, region) of each record id the derived tables hold (module docstring:
    the business record's first when an id names records of two domains)."""
    r, e, p = t.records.c, t.events.c, t.person_events.c
    found: dict[str, tuple[int, Fund]] = {}
    wanted = sorted(set(ids))
    for i in range(0, len(wanted), _CHUNK):
        q = (select(r.record_id, r.domain, r.region, e.insurance, p.insurance)
             .select_from(t.records.outerjoin(t.events, e.seq == r.seq)
                          .outerjoin(t.person_events, p.seq == r.seq))
             .where(r.record_id.in_(wanted[i:i + _CHUNK])))
        for rid, domain, region, ev_ins, person_ins in conn.execute(q):
            rank = _DOMAIN_ORDER.get(str(domain), 9)
            if str(rid) in found and found[str(rid)][0] <= rank:
                continue
            insurance = ev_ins if ev_ins is not None else person_ins
            if insurance == "all":  # a termination of every insurance: no one fund's
                insurance = None
            found[str(rid)] = (rank, (None if insurance is None else str(insurance),
                                      None if region is None else str(region)))
    return {rid: fund for rid, (_rank, fund) in found.items()}


def fund_view(ledger: Ledger, report: Report, keys: Sequence[str]) -> FundView:
    """``report``'s breaks grouped by ``keys`` (:func:`parse_by`): each break in the group
    of its first record's insurance and region (module docstring), read from the
    derived tables the run that made the report refreshed."""
    firsts = {b.records[0] for b in report.breaks if b.records}
    if not firsts:
        return group_breaks(report, {}, keys)
    with ledger.store.reader() as conn:
        funds = funds_of(conn, firsts)
    return group_breaks(report, funds, keys)


__all__ = ["GROUP_KEYS", "FundGroup", "FundView", "fund_view", "funds_of", "group_breaks",
           "parse_by"]
