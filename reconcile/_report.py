"""The reconciliation report: breaks, expected items, summary, and its JSON form.

A :class:`Break` has a stable id: ``"BRK-"`` and the first 16 hex digits of
SHA-256 over its code, field and sorted record ids, so the same finding keeps its
id from one run to the next (and a ticket can refer to it).

Severity per code (:data:`SEVERITY`): ``high`` for money with no business event
behind it (``ORPHAN_MOVEMENT``) and integrity failures; ``medium`` for money that
does not add up or cannot be attributed (``UNSETTLED_EVENT``, ``AMOUNT_MISMATCH``,
``AMBIGUOUS_MATCH``); ``low`` for process findings (``LATE_SETTLEMENT``,
``MISSING_VOUCHER``).

*Amount at risk* of a break: the unsettled part of an event, the amount of an
orphan or ambiguous movement, the absolute difference of a mismatch; zero for
late settlements and missing vouchers (the money itself is accounted for).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reconcile._units import money

Severity = Literal["high", "medium", "low"]

SEVERITY: dict[str, Severity] = {
    "ORPHAN_MOVEMENT": "high",
    "LEDGER_INTEGRITY": "high",
    "FIXITY_FAILURE": "high",
    "UNSETTLED_EVENT": "medium",
    "AMOUNT_MISMATCH": "medium",
    "AMBIGUOUS_MATCH": "medium",
    "LATE_SETTLEMENT": "low",
    "MISSING_VOUCHER": "low",
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def break_id(code: str, field: str, records: tuple[str, ...]) -> str:
    """``BRK-`` + 16 hex of SHA-256(code, field, sorted record ids), NUL-separated."""
    material = "\x00".join([code, field, *sorted(records)]).encode()
    return "BRK-" + hashlib.sha256(material).hexdigest()[:16]


class Break(_Model):
    """One finding: something is wrong as of the run's date."""

    id: str
    code: str
    severity: Severity
    records: tuple[str, ...]
    """Interchange ids involved, the record at fault first."""
    amounts: dict[str, str]
    """Money strings by role, e.g. ``{"event": "3456.78", "allocated": "3456.68"}``."""
    field: str
    """The interchange field at fault (``amount``, ``allocations``, ``refs`` ...)."""
    message: str
    at_risk_fen: int = Field(default=0, exclude=True)

    @classmethod
    def make(cls, code: str, records: tuple[str, ...], amounts: dict[str, int], field: str,
             message: str, at_risk_fen: int = 0) -> Break:
        return cls(id=break_id(code, field, records), code=code, severity=SEVERITY[code],
                   records=records, amounts={k: money(v) for k, v in amounts.items()},
                   field=field, message=message, at_risk_fen=at_risk_fen)


class Expected(_Model):
    """Not (yet) a break: still inside its window on the run's date."""

    code: str
    """The break it becomes if nothing changes by ``until``."""
    records: tuple[str, ...]
    amounts: dict[str, str]
    field: str
    until: str
    """Last day of the window (``YYYY-MM-DD``)."""
    message: str


class RunInfo(_Model):
    as_of: str
    started_at: str
    finished_at: str
    ledger_size: int
    decoded: int
    """Entries decoded into the derived tables by this run (incremental refresh)."""
    backend: str
    rules: dict[str, int]


class Summary(_Model):
    breaks: int
    by_code: dict[str, int]
    amount_at_risk: str
    expected: int


class Report(_Model):
    """What ``run_reconcile`` returns; :meth:`to_json` is the ``--json`` form."""

    run: RunInfo
    summary: Summary
    breaks: tuple[Break, ...]
    expected: tuple[Expected, ...]

    @classmethod
    def build(cls, run: RunInfo, breaks: list[Break], expected: list[Expected]) -> Report:
        unique = {b.id: b for b in breaks}
        ordered = sorted(unique.values(), key=lambda b: (b.code, b.records, b.id))
        counts = Counter(b.code for b in ordered)
        summary = Summary(
            breaks=len(ordered), by_code=dict(sorted(counts.items())),
            amount_at_risk=money(sum(b.at_risk_fen for b in ordered)), expected=len(expected))
        exp = sorted(expected, key=lambda x: (x.code, x.records))
        return cls(run=run, summary=summary, breaks=tuple(ordered), expected=tuple(exp))

    @property
    def clean(self) -> bool:
        return not self.breaks

    def codes(self) -> Counter[str]:
        return Counter(b.code for b in self.breaks)

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per code: code, severity, breaks, amount at risk (for a terminal table)."""
        rows: dict[str, list[int]] = {}
        for b in self.breaks:
            n_risk = rows.setdefault(b.code, [0, 0])
            n_risk[0] += 1
            n_risk[1] += b.at_risk_fen
        return [{"code": code, "severity": SEVERITY[code], "breaks": n, "amount_at_risk": money(r)}
                for code, (n, r) in sorted(rows.items())]

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
