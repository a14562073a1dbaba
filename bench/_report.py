"""Results: one :class:`Result` per figure, printed beside its baseline, and the summary.

Every figure is measured against a baseline taken in the same run on the same
machine, and the *ratio* is what we quote (shared machines are noisy; absolute
seconds are not comparable between runs). For times the ratio is
``baseline / ours`` (1.0 = as fast as the raw baseline, higher is better). For
memory growth it is ``small / large`` (1.0 = perfectly flat).

A target is either on the ratio (``ratio >= x``) or on our figure itself
(``ours <= x``, e.g. a proof's median milliseconds or peak RSS in MB).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

TargetKind = Literal["ratio>=", "ours<=", "none"]

_T0 = time.monotonic()


def log(message: str) -> None:
    """A progress line on stderr, stamped with the time since the run started."""
    elapsed = time.monotonic() - _T0
    print(f"[{elapsed:8.1f}s] {message}", file=sys.stderr, flush=True)


def fmt_count(n: int) -> str:
    return f"{n:,}"


def fmt_rate(per_second: float) -> str:
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f}M"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.1f}k"
    return f"{per_second:.0f}"


def fmt_ratio(ratio: float) -> str:
    """Two decimals, or two significant digits below 0.1 (so 0.004 does not print as 0.00)."""
    return f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.2g}"


def fmt_value(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "MB":
        return f"{value:.0f} MB"
    return f"{value:g} {unit}"


@dataclass
class Result:
    """One benchmark figure beside its same-run baseline."""

    name: str
    backend: str
    size: int
    size_label: str
    unit: str
    ours: float
    baseline: float
    baseline_label: str
    ratio: float
    target_kind: TargetKind = "none"
    target: float = 0.0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool | None:
        if self.target_kind == "ratio>=":
            return self.ratio >= self.target
        if self.target_kind == "ours<=":
            return self.ours <= self.target
        return None

    @property
    def status(self) -> str:
        return {True: "OK", False: "MISS", None: "-"}[self.ok]

    @property
    def target_text(self) -> str:
        if self.target_kind == "ratio>=":
            return f">= {self.target:g}"
        if self.target_kind == "ours<=":
            return f"<= {fmt_value(self.target, self.unit)}"
        return "-"

    @property
    def size_text(self) -> str:
        return fmt_count(self.size) if self.size else "-"

    @property
    def title(self) -> str:
        return f"{self.name}/{self.backend}"

    def line(self) -> str:
        """``ingest/postgresql  1,000,000 records  ours 41.2 s (24.3k rec/s)  baseline ...``."""
        note = f" ({self.note})" if self.note else ""
        return (
            f"{self.title:<32} {self.size_text:>11} {self.size_label:<8} "
            f"ours {fmt_value(self.ours, self.unit)}{note}  "
            f"baseline {self.baseline_label} {fmt_value(self.baseline, self.unit)}  "
            f"ratio {fmt_ratio(self.ratio)}  target {self.target_text}  {self.status}"
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(ok=self.ok, status=self.status, target_text=self.target_text)
        return d


def time_result(
    name: str,
    backend: str,
    size: int,
    size_label: str,
    ours_s: float,
    baseline_s: float,
    baseline_label: str,
    *,
    target: float | None = None,
    rate_unit: str = "",
    extra: dict[str, Any] | None = None,
) -> Result:
    """A timing in seconds; ratio ``baseline / ours``; optional ``ratio >= target``."""
    note = f"{fmt_rate(size / ours_s)} {rate_unit}/s" if rate_unit and ours_s > 0 else ""
    return Result(
        name, backend, size, size_label, "s", ours_s, baseline_s, baseline_label,
        baseline_s / ours_s if ours_s > 0 else float("inf"),
        "ratio>=" if target is not None else "none", target or 0.0, note, extra or {},
    )


def summary(results: list[Result]) -> str:
    """A fixed-width table of every result."""
    head = ("benchmark", "size", "ours", "baseline", "ratio", "target", "status")
    rows = [head] + [
        (
            r.title, r.size_text, fmt_value(r.ours, r.unit),
            f"{r.baseline_label} {fmt_value(r.baseline, r.unit)}", fmt_ratio(r.ratio),
            r.target_text, r.status,
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    out = []
    for k, row in enumerate(rows):
        out.append("  ".join(
            cell.ljust(w) if i in (0, 3, 5, 6) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
